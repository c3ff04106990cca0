"""tcp socket client的基本流程 (seed 003)."""

import socket
import sys

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 7788

# 創建socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
# 使用
ipaddr = ("127.0.0.1", PORT)  # 服务器的ip addr
s.connect(ipaddr)  # 连接服务器
# 发送数据
send_msg = "sasa"
s.send(send_msg.encode("utf-8"))
# 接受数据
recvData = s.recv(1024)  # 一次接收的字符数
print("recved msg:", recvData.decode("utf-8"))
# 關閉
s.close()
