"""使用tcp进行文件下载, server (seed 003)."""

import socket
import sys

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 7788


def send_file2client(new_client_socket, client_addr):
    # 1.接受客户端需要下载的文件名
    file_name = new_client_socket.recv(1024).decode("utf-8")
    print("客户端(%s)下载的文件是:%s" % (str(client_addr), file_name))  # noqa: UP031
    # 2.打开这个文件,读取数据
    file_content = None
    try:
        f = open(file_name, "rb")  # noqa: SIM115
        file_content = f.read()
        f.close()
    except Exception:
        print("没有要下载的文件(%s)" % file_name)  # noqa: UP031
    # 3.发送文件的数据给客户端
    if file_content:
        new_client_socket.send(file_content)


def main():
    # socket创建套接字
    tcp_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # 绑定端口
    tcp_socket.bind(("127.1", PORT))
    # 设置为被动监听
    tcp_socket.listen(128)
    while True:
        # accept阻塞等待链接
        new_client_socket, client_addr = tcp_socket.accept()
        # 调用函数,发送文件
        send_file2client(new_client_socket, client_addr)
        # 关闭套接字
        new_client_socket.close()
    tcp_socket.close()


if __name__ == "__main__":
    main()
