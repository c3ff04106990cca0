"""tcp server的基本过程 (seed 003)."""

import socket
import sys

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 7788

# socket创建套接字
tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
# 绑定端口
tcp.bind(("127.1", PORT))
# 设置为被动监听
tcp.listen(128)
while True:
    # 等待客户端的连接
    # accept阻塞等待链接
    new_client_socket, client_addr = tcp.accept()  # 返回元组: 新的套接字,(客户端的ip,端口)
    # 有客户端connect后,阻塞解除,接下来的收发都是用这个新的socket
    while True:
        # 处理请求,先收,再发,因此,这里会阻塞等待这个new_client_socket接收到消息
        recv_data = new_client_socket.recv(1024)
        print(recv_data)
        # 当recv解阻塞时,有两种情况,1.客户端发送了消息 ;2.客户端调用了close()
        # 通过判断recv_data是否为空,那么判断出客户端断开了链接
        if recv_data:
            # 收到消息后,我们返回一下,非必要的
            new_client_socket.send("服务器返回的消息".encode())
        else:
            break
    new_client_socket.close()
