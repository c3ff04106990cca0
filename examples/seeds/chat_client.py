"""优化客户端 (seed 000, section 4)."""

import socket
import sys

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 8081

# 1.生成socket对象指定类型和协议
client = socket.socket()
# 2.通过地址链接服务端
client.connect(("127.0.0.1", PORT))
while True:
    try:
        msg = input("请输入您想要发给服务端的消息>>>").strip()
    except EOFError:
        break
    if len(msg) == 0:
        print("不能发送空消息哦")
        continue
    # 3.直接给服务端发送消息
    client.send(msg.encode("utf8"))
    # 4.接收服务端发送过来的消息 1024是字节数
    data = client.recv(1024)
    print("来自服务端的消息>>>>", data.decode("utf8"))
# 5.断开与服务端的链接
client.close()
