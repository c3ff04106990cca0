"""`synack.socket` where it is ours alone: the threading model of
`synack.drivers.blocking`, fork, process exit, and what passes through to the
operating system. (Behaviour shared with the kernel's socket is compared in
test_socket_compat.py.)
"""

from __future__ import annotations

import errno
import gc
import os
import random
import select
import selectors
import socket as std
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

import pytest

import synack.socket as ours
from synack.drivers import blocking

LIMIT = 10.0
HOST = "127.0.0.1"


def spawn(target: Callable[[], Any]) -> Callable[[], Any]:
    """Run `target` on a thread; the returned join gives its result or raises its error."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = target()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def join() -> Any:
        thread.join(LIMIT)
        assert not thread.is_alive(), "thread did not finish"
        if "error" in box:
            raise box["error"]
        return box.get("result")

    return join


def listening() -> Any:
    srv = ours.socket()
    srv.bind((HOST, 0))
    srv.listen()
    srv.settimeout(LIMIT)
    return srv


def eventually(condition: Callable[[], bool]) -> None:
    """Wait (bounded) for something another thread or the background thread does."""
    deadline = time.monotonic() + LIMIT
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.005)


# ------------------------------------------------------------------ what is not ours


def test_other_kinds_of_socket_are_the_operating_systems() -> None:
    udp = ours.socket(ours.AF_INET, ours.SOCK_DGRAM)
    unix_a, unix_b = ours.socketpair()
    unix = ours.socket(ours.AF_UNIX, ours.SOCK_STREAM)
    try:
        for sock in (udp, unix_a, unix):
            assert type(sock) is std.socket
            assert isinstance(sock, ours.socket)  # as with the standard module
        udp.bind((HOST, 0))
        udp.sendto(b"datagram", udp.getsockname())
        assert udp.recvfrom(100)[0] == b"datagram"
        unix_a.sendall(b"local")
        assert unix_b.recv(10) == b"local"
    finally:
        for sock in (udp, unix_a, unix_b, unix):
            sock.close()
    assert type(ours.socket()) is ours.socket
    assert ours.getaddrinfo is std.getaddrinfo and ours.timeout is std.timeout


def test_ipv6_streams_are_refused_rather_than_given_the_kernels_tcp() -> None:
    with pytest.raises(OSError) as caught:
        ours.socket(ours.AF_INET6, ours.SOCK_STREAM)
    assert caught.value.errno == errno.EAFNOSUPPORT
    assert "IPv4" in str(caught.value)
    with pytest.raises(OSError) as caught:
        ours.create_server(("::1", 0), family=ours.AF_INET6)
    assert caught.value.errno == errno.EAFNOSUPPORT
    assert ours.has_dualstack_ipv6() is False


# ------------------------------------------------------------------ the threading model


def test_a_blocking_ping_pong_barely_wakes_the_background_thread() -> None:
    """Each side's thread does its own protocol work while it waits in recv; leaving
    and re-entering the engine on every call must not wake the background thread."""
    srv = listening()

    def echo() -> None:
        conn, _ = srv.accept()
        with conn:
            while data := conn.recv(100):
                conn.sendall(data)

    done = spawn(echo)
    client = ours.create_connection(srv.getsockname(), timeout=LIMIT)
    client.sendall(b"warm up")
    assert client.recv(100) == b"warm up"
    background = blocking._background()
    rounds = 400
    turns = background.turns
    started = time.monotonic()
    for i in range(rounds):
        message = f"ping {i}".encode()
        client.sendall(message)
        assert client.recv(100) == message
    elapsed = time.monotonic() - started
    turns = background.turns - turns
    client.close()
    done()
    srv.close()
    # Bounded by time (a turn per RECHECK while calls come and go, and as many again for
    # timers of engines earlier tests left closing), not by the number of calls.
    assert turns <= 2 * elapsed / blocking.RECHECK + 25
    assert turns < rounds / 2


def test_threads_blocked_on_one_port_each_get_their_own_bytes() -> None:
    """Every connection accepted from one listener shares its engine: one thread drives
    it, the others wait on their own condition and are woken for their own data."""
    srv = listening()
    count = 12
    clients = [ours.create_connection(srv.getsockname(), timeout=LIMIT) for _ in range(count)]
    accepted = [srv.accept()[0] for _ in range(count)]
    by_port = {conn.getpeername()[1]: conn for conn in accepted}

    def reader(conn: Any) -> bytes:
        conn.settimeout(LIMIT)
        chunks = []
        while data := conn.recv(4096):
            chunks.append(data)
        return b"".join(chunks)

    joins = {port: spawn(lambda c=conn: reader(c)) for port, conn in by_port.items()}
    payloads = {c.getsockname()[1]: os.urandom(random.randrange(1, 200_000)) for c in clients}
    order = list(clients)
    random.shuffle(order)
    for client in order:
        client.sendall(payloads[client.getsockname()[1]])
        client.shutdown(ours.SHUT_WR)
    for port, join in joins.items():
        assert join() == payloads[port]
    for sock in [*clients, *accepted, srv]:
        sock.close()


def test_close_from_another_thread_wakes_a_blocked_call() -> None:
    """The kernel leaves a thread blocked in recv or accept when another closes the
    socket; ours wakes it with EBADF (docs/SOCKET.md)."""
    srv = listening()
    srv.settimeout(None)
    client = ours.create_connection(srv.getsockname(), timeout=LIMIT)
    conn, _ = srv.accept()
    client.settimeout(None)

    def blocked(call: Callable[[], Any]) -> int | None:
        try:
            call()
        except OSError as exc:
            return exc.errno
        return None

    receiving = spawn(lambda: blocked(lambda: client.recv(10)))
    accepting = spawn(lambda: blocked(srv.accept))
    eventually(lambda: client._stream.waiting > 0 or client._stream.engine.driver is not None)
    eventually(lambda: srv._acceptor.waiting > 0 or srv._acceptor.engine.driver is not None)
    client.close()
    srv.close()
    assert receiving() == errno.EBADF
    assert accepting() == errno.EBADF
    conn.close()


def test_the_background_thread_acknowledges_while_nobody_calls() -> None:
    """No thread is inside either engine: the background thread takes the data in,
    acknowledges it and runs the timers."""
    srv = listening()
    client = ours.create_connection(srv.getsockname(), timeout=LIMIT)
    conn, _ = srv.accept()
    client.sendall(os.urandom(1_000_000))  # fits the peer's window: nobody need read
    stream = client._stream

    def delivered() -> bool:
        with stream.engine.lock:  # not in the middle of the background thread's work
            return stream.conn.unsent == 0 and stream.conn.unacked == 0

    eventually(delivered)
    assert conn._stream.conn.receive_available == 1_000_000
    for sock in (client, conn, srv):
        sock.close()


def test_a_selectors_loop_serves_non_blocking_sockets() -> None:
    """The standard library's selectors echo server, on our sockets' descriptors."""
    srv = listening()
    srv.setblocking(False)
    stop = threading.Event()

    def serve() -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(srv, selectors.EVENT_READ)
            while not stop.is_set():
                for key, _ in sel.select(0.05):
                    sock = key.fileobj
                    if sock is srv:
                        conn, _ = srv.accept()
                        conn.setblocking(False)
                        sel.register(conn, selectors.EVENT_READ)
                        continue
                    try:
                        data = sock.recv(65536)  # type: ignore[union-attr]
                    except BlockingIOError:
                        continue
                    if data:
                        sock.sendall(data)  # type: ignore[union-attr]
                    else:
                        sel.unregister(sock)
                        sock.close()  # type: ignore[union-attr]

    server = spawn(serve)

    def client(i: int) -> bool:
        payload = os.urandom(50_000 + i)
        with ours.create_connection(srv.getsockname(), timeout=LIMIT) as sock:
            sock.sendall(payload)
            sock.shutdown(ours.SHUT_WR)
            got = bytearray()
            while data := sock.recv(65536):
                got += data
        return bytes(got) == payload

    joins = [spawn(lambda i=i: client(i)) for i in range(8)]
    assert all(join() for join in joins)
    stop.set()
    server()
    srv.close()


def test_poll_reports_a_hang_up_once_the_connection_has_ended() -> None:
    srv = listening()
    client = ours.create_connection(srv.getsockname(), timeout=LIMIT)
    conn, _ = srv.accept()
    poller = select.poll()
    poller.register(client, select.POLLIN)
    assert poller.poll(0) == []
    conn.shutdown(ours.SHUT_WR)
    assert poller.poll(LIMIT * 1000)[0][1] & select.POLLIN
    assert not poller.poll(0)[0][1] & select.POLLHUP  # half closed only
    client.shutdown(ours.SHUT_WR)
    eventually(lambda: bool(poller.poll(0)[0][1] & select.POLLHUP))
    for sock in (client, conn, srv):
        sock.close()


# ------------------------------------------------------------------ lifetime


def test_an_unclosed_socket_warns_and_its_peer_sees_the_end() -> None:
    srv = listening()
    client = ours.create_connection(srv.getsockname(), timeout=LIMIT)
    conn, _ = srv.accept()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del client
        gc.collect()
    assert any(issubclass(w.category, ResourceWarning) for w in caught)
    assert conn.recv(10) == b""  # the finaliser closed it: FIN
    conn.close()
    srv.close()


def test_a_closed_port_is_released() -> None:
    srv = listening()
    address = srv.getsockname()
    srv.close()
    with std.socket(std.AF_INET, std.SOCK_DGRAM) as udp:
        udp.bind(address)  # the UDP port is free again


def test_a_forked_child_is_told_it_cannot_use_its_parents_sockets() -> None:
    srv = listening()
    client = ours.create_connection(srv.getsockname(), timeout=LIMIT)
    conn, _ = srv.accept()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what a send says, and leave without cleaning up
        os.close(read)
        try:
            client.send(b"from the child")
            message = "sent"
        except OSError as exc:
            message = f"{exc.errno} {exc.strerror}"
        os.write(write, message.encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        said = pipe.read().decode()
    assert os.waitpid(pid, 0)[1] == 0
    assert said.startswith(f"{errno.EBADF} ")
    assert "fork" in said
    client.sendall(b"from the parent")  # the parent's connection is untouched
    assert conn.recv(100) == b"from the parent"
    for sock in (client, conn, srv):
        sock.close()


CHILD = textwrap.dedent(
    """
    import sys
    import synack.socket as socket

    sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    sock.sendall(bytes(range(256)) * int(sys.argv[2]))
    # and exit without closing: the exit linger sends the rest, then FIN
    """
)


def test_a_process_that_exits_closes_its_connections_with_fin_after_its_data() -> None:
    srv = listening()
    repeats = 12_000  # 3 MB: more than the send call leaves delivered when it returns
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(srv.getsockname()[1]), str(repeats)])
    conn, _ = srv.accept()
    conn.settimeout(LIMIT)
    chunks = []
    while data := conn.recv(1 << 20):
        chunks.append(data)
    assert b"".join(chunks) == bytes(range(256)) * repeats
    assert child.wait(LIMIT) == 0
    conn.close()
    srv.close()


CLEAN = textwrap.dedent(
    """
    import synack.socket as socket

    srv = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(srv.getsockname())
    conn, _ = srv.accept()
    client.sendall(b"hi")
    assert conn.recv(10) == b"hi"
    client.close()  # first: TIME-WAIT here, held by this process until it exits
    assert conn.recv(10) == b""
    conn.close()
    srv.close()
    del client, conn, srv
    import gc; gc.collect()
    """
)


def test_a_process_that_closed_everything_exits_cleanly_and_silently() -> None:
    """With every socket closed, the exit linger has only TIME-WAIT left to end; the
    process exits 0 and says nothing, even in development mode (warnings shown)."""
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-c", CLEAN], capture_output=True, text=True, timeout=LIMIT
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


KILLED = textwrap.dedent(
    """
    import sys
    import synack.socket as socket

    sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    sock.sendall(b"hello")
    sys.stdin.read()  # until the parent kills it (or, failing that, closes stdin)
    """
)


def test_a_peer_killed_outright_is_found_by_the_next_send_as_a_reset() -> None:
    """SIGKILL: no exit linger, no FIN, no RST; only the closed UDP port is left. Our
    next segment draws an ICMP port-unreachable, the probe one RTO later another, and
    recv raises ConnectionResetError (docs/PROTOCOL.md §5.4) instead of waiting for the
    retransmission limit (about 15 minutes with the default timers)."""
    srv = listening()
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED, str(srv.getsockname()[1])], stdin=subprocess.PIPE
    )
    try:
        conn, _ = srv.accept()
        conn.settimeout(LIMIT)
        assert conn.recv(5) == b"hello"
        child.kill()
        child.wait(LIMIT)
        started = time.monotonic()
        conn.sendall(b"anyone there?")
        with pytest.raises(ConnectionResetError):
            conn.recv(100)
        assert time.monotonic() - started < 3.0
        with pytest.raises(BrokenPipeError):  # as after any reset
            conn.send(b"again")
        conn.close()
    finally:
        if child.poll() is None:
            child.kill()
        assert child.stdin is not None
        child.stdin.close()
        child.wait(LIMIT)
        srv.close()
