"""使用tcp进行文件下载, client (seed 003)."""

import socket


def main():
    # 1.创建套接字
    tcp_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # 2.获取服务器的ip port
    dest_ip = input("ip:")
    dest_port = int(input("port:"))
    # 3.连接服务器
    tcp_socket.connect((dest_ip, dest_port))
    # 4.获取下载的名字
    download_file_name = input("input the file name")
    # 5.将名字发送到服务器
    tcp_socket.send(download_file_name.encode("utf-8"))
    # 6.接受文件中的数据, 直到服务器关闭连接
    recv_data = b""
    while True:
        chunk = tcp_socket.recv(1024)  # 1k
        if not chunk:
            break
        recv_data += chunk
    if recv_data:
        # 7.保存文件中的数据
        with open("[new]" + download_file_name, "wb") as f:
            f.write(recv_data)
    # 8.关闭套接字
    tcp_socket.close()


if __name__ == "__main__":
    main()
