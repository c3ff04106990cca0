"""Tcp并发编程-socketserver (seed 001): ThreadingTCPServer serves many clients at once.

The notes show this server with multiprocessing (a process per connection); they
name socketserver.ThreadingTCPServer as the way to serve several clients at once,
and that is what runs here. The conversation is the notes' talk().
"""

import socketserver
import sys

ip_port = ("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 9999)


class Talk(socketserver.BaseRequestHandler):
    def handle(self):
        conn = self.request
        for _ in range(3):
            conn.send("中国".encode())
            msg = conn.recv(1024)
            if not msg:
                break
            print(msg)
        # 一个client服务结束了之后,socketserver会帮助你conn.close


if __name__ == "__main__":
    # serve_forever: socketserver启动之后就会一直对外提供服务
    with socketserver.ThreadingTCPServer(ip_port, Talk) as sk:
        sk.serve_forever()
