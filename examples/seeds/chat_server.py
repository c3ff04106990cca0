"""优化服务端 (seed 000, section 4, with the fixes that seed 002 lists)."""

import socket
import sys

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 8081

# 1.产生一个socket对象并指定采用的通信版本和协议(TCP)
server = socket.socket()
# 服务端多次重启可能会报错 Address already in use: 方式2
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
# 2.绑定一个固定的地址(服务端必备的条件)
server.bind(("127.0.0.1", PORT))
# 3.设立半连接池
server.listen(5)
while True:
    # 4.等待连接
    sock, addr = server.accept()
    while True:
        try:
            # 5.服务
            data = sock.recv(1024)
            if len(data) == 0:
                break
            print(f"来自于客户端{addr}的消息>>>>", data.decode("utf8"))
            msg = input("请输入发送给客户端的消息(不能发空消息)>>>:").strip()
            while len(msg) == 0:
                msg = input("请输入发送给客户端的消息(不能发空消息)>>>:").strip()
            sock.send(msg.encode("utf8"))
        except BaseException:
            break
    sock.close()
