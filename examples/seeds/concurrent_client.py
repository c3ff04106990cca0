"""socket聊天并发实现, client (seed 001)."""

import os
import socket
import sys

ip_port = ("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 9999)
sk = socket.socket()
sk.connect_ex(ip_port)

try:
    while 1:
        msg = sk.recv(1024).decode("utf-8")
        if not msg:
            break
        print(msg)
        sk.send(str(os.getpid()).encode("utf-8"))
finally:
    sk.close()
