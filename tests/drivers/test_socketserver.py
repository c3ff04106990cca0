"""`synack.socketserver`: the standard servers and handlers on our TCP."""

from __future__ import annotations

import os
import socketserver as std_socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import synack.socket as ours
from synack import socketserver

LIMIT = 10.0
HOST = "127.0.0.1"


class LineEcho(socketserver.StreamRequestHandler):
    """Upper-cases each line, through makefile() and the unbuffered writer."""

    def handle(self) -> None:
        for line in self.rfile:
            self.wfile.write(line.upper())


class Reverse(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data = self.request.recv(1024)
        self.request.sendall(data[::-1])


@contextmanager
def running(server: Any) -> Iterator[tuple[str, int]]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server.server_address
    finally:
        server.shutdown()
        thread.join(LIMIT)
        server.server_close()
        assert not thread.is_alive()


def test_threading_tcp_server_serves_many_clients_at_once() -> None:
    server = socketserver.ThreadingTCPServer((HOST, 0), LineEcho)
    assert isinstance(server.socket, ours.socket) and type(server.socket) is ours.socket
    failures: list[BaseException] = []

    def client(i: int) -> None:
        try:
            with ours.create_connection(address, timeout=LIMIT) as sock, sock.makefile("rwb") as f:
                for j in range(25):
                    f.write(f"client {i} line {j}\n".encode())
                    f.flush()
                    assert f.readline() == f"CLIENT {i} LINE {j}\n".encode()
        except BaseException as exc:
            failures.append(exc)

    with running(server) as address:
        threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(LIMIT)
    assert not failures, failures
    assert not any(t.is_alive() for t in threads)


def test_tcp_server_serves_one_client_after_another() -> None:
    with socketserver.TCPServer((HOST, 0), Reverse) as server, running(server) as address:
        for word in (b"stressed", b"drawer", b"reward"):
            with ours.create_connection(address, timeout=LIMIT) as sock:
                sock.sendall(word)
                assert sock.recv(100) == word[::-1]
                assert sock.recv(100) == b""  # shutdown_request: the server hangs up


def test_handle_request_honours_the_server_timeout() -> None:
    class Quick(socketserver.TCPServer):
        timeout = 0.05
        timed_out = False

        def handle_timeout(self) -> None:
            self.timed_out = True

    with Quick((HOST, 0), Reverse) as server:
        server.handle_request()  # nobody connects
        assert server.timed_out


def test_the_server_address_and_reuse_address() -> None:
    class Reusing(socketserver.TCPServer):
        allow_reuse_address = True

    with Reusing((HOST, 0), Reverse) as server:
        host, port = server.server_address
        assert host == HOST and port > 0
        assert server.socket.getsockopt(ours.SOL_SOCKET, ours.SO_REUSEADDR) == 1
        assert server.fileno() == server.socket.fileno() >= 0


def test_forking_tcp_servers_are_refused_with_the_reason() -> None:
    with pytest.raises(NotImplementedError, match=r"fork.*ThreadingTCPServer"):
        socketserver.ForkingTCPServer((HOST, 0), Reverse)

    class Mine(std_socketserver.ForkingMixIn, socketserver.TCPServer):
        pass

    with pytest.raises(NotImplementedError):
        Mine((HOST, 0), Reverse)


def test_udp_servers_are_the_operating_systems() -> None:
    class Echo(socketserver.DatagramRequestHandler):
        def handle(self) -> None:
            self.wfile.write(self.rfile.read().upper())

    assert socketserver.UDPServer is std_socketserver.UDPServer
    with (
        socketserver.UDPServer((HOST, 0), Echo) as server,
        running(server) as address,
        ours.socket(ours.AF_INET, ours.SOCK_DGRAM) as udp,
    ):
        udp.settimeout(LIMIT)
        udp.sendto(b"datagram", address)
        assert udp.recvfrom(100)[0] == b"DATAGRAM"


def test_a_large_reply_through_the_stream_handler() -> None:
    body = os.urandom(2_000_000)

    class Big(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            self.rfile.readline()
            self.wfile.write(body)

    with (
        socketserver.ThreadingTCPServer((HOST, 0), Big) as server,
        running(server) as address,
        ours.create_connection(address, timeout=LIMIT) as sock,
        sock.makefile("rwb") as f,
    ):
        f.write(b"send it\n")
        f.flush()
        assert f.read() == body
