"""服务端 (seed 000, section 3; seeds 001 and 002 show the same program)."""

import socket
import sys

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 8080

# 1.产生一个socket对象并指定采用的通信版本和协议(TCP)
server = socket.socket()
# 2.绑定一个固定的地址(服务端必备的条件)
server.bind(("127.0.0.1", PORT))
# 3.设立半连接池
server.listen(5)
# 4.等待连接
sock, addr = server.accept()
print(sock, addr)
# 5.服务
data = sock.recv(1024)
print(data.decode("utf8"))
sock.send("我是服务端,专门为您服务的".encode())
# 6.关闭双向通道
sock.close()
# 7.关闭服务端
server.close()
