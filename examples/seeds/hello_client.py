"""客户端 (seed 000, section 3; seeds 001 and 002 show the same program)."""

import socket
import sys

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 8080

# 1.生成socket对象指定类型和协议
client = socket.socket()
# 2.通过地址链接服务端
client.connect(("127.0.0.1", PORT))
# 3.直接给服务端发送消息
client.send("你好,我是客户端,你是谁".encode())
# 4.接收服务端发送过来的消息 1024是字节数
data = client.recv(1024)
print(data.decode("utf8"))
# 5.断开与服务端的链接
client.close()
