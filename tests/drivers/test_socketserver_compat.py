"""`synack.socketserver` against the standard `socketserver`: the same scenario, run
once with the standard module (the kernel's TCP on 127.0.0.1, clients on the standard
`socket`) and once with ours (clients on `synack.socket`), must observe the same.

Each scenario takes a `Side` (the server module and the socket module its clients
use) and returns a list of observations; the test compares the two lists. Every wait
is bounded; where the kernel's answer depends on a race, the scenario waits for it
with ``select``/``poll``, which also checks our readiness descriptors.
Differences that are deliberate are listed in docs/SOCKET.md and tested at the end.
"""

from __future__ import annotations

import contextlib
import errno
import io
import re
import select
import selectors
import socket as std
import socketserver as std_socketserver
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest

import synack.socket as ours
from synack import socketserver as ours_socketserver

from .compat import LIMIT, Background, outcome

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Side:
    ss: ModuleType  # socketserver
    m: ModuleType  # socket, for the clients

    def connect(self, address: tuple[str, int]) -> Any:
        return self.m.create_connection(address, timeout=LIMIT)


KERNEL = Side(std_socketserver, std)
SYNACK = Side(ours_socketserver, ours)


@contextlib.contextmanager
def serving(server: Any) -> Iterator[tuple[str, int]]:
    """serve_forever on a thread; on leaving, shutdown() (bounded) and the thread ends."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield server.server_address
    finally:
        Background(server.shutdown).join()
        thread.join(LIMIT)
        assert not thread.is_alive(), "serve_forever did not return after shutdown()"


def wait_readable(sock: Any) -> bool:
    return bool(select.select([sock], [], [], LIMIT)[0])


def wait_hangup(sock: Any) -> bool:
    """Until the connection has ended (POLLHUP), without taking its error."""
    poller = select.poll()
    poller.register(sock, 0)
    return bool(poller.poll(LIMIT * 1000))


def waited(event: threading.Event) -> bool:
    return event.wait(LIMIT)


class Reverse(std_socketserver.BaseRequestHandler):
    """The same handler serves both sides: the handlers are the standard classes."""

    def handle(self) -> None:
        self.request.settimeout(LIMIT)
        data = self.request.recv(1024)
        self.request.sendall(data[::-1])


def normalised(text: str) -> list[str]:
    """handle_error's output without what differs from run to run (port, paths)."""
    text = re.sub(r"\('127\.0\.0\.1', \d+\)", "('127.0.0.1', PORT)", text)
    lines = text.splitlines()
    return [lines[0], lines[1], lines[2], lines[-2], lines[-1]] if len(lines) > 4 else lines


# ------------------------------------------------------------------ scenarios


def serve_forever_and_shutdown(s: Side) -> list[Any]:
    server = s.ss.TCPServer((HOST, 0), Reverse)
    out: list[Any] = []
    with serving(server) as address, s.connect(address) as client:
        client.sendall(b"stressed")
        out += [client.recv(100), client.recv(100)]
    # Stopped but not closed: the listener still completes handshakes into its queue.
    late = s.connect(address)
    out.append(server.fileno() >= 0)
    server.server_close()
    assert wait_readable(late)
    out.append(outcome(lambda: late.recv(10)))  # the queued connection is reset
    late.close()
    out.append(server.fileno())
    out.append(outcome(lambda: s.connect(address).close()))
    out.append(outcome(server.serve_forever))  # a closed server cannot be registered
    server.server_close()  # twice is harmless
    return out


def shutdown_from_a_handler_thread(s: Side) -> list[Any]:
    """A threading server's handler asks the server to stop (the standard idiom: from
    another thread than serve_forever's)."""
    stopped = threading.Event()

    class Stop(std_socketserver.StreamRequestHandler):
        def handle(self) -> None:
            line = self.rfile.readline()
            self.wfile.write(b"bye " + line)
            Background(self.server.shutdown).join()
            stopped.set()

    server = s.ss.ThreadingTCPServer((HOST, 0), Stop)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    with s.connect(server.server_address) as client:
        client.sendall(b"stop\n")
        got = [client.recv(100), client.recv(100)]
    thread.join(LIMIT)
    got += [thread.is_alive(), waited(stopped)]
    server.server_close()
    return got


def handle_request_and_its_timeout(s: Side) -> list[Any]:
    calls: list[str] = []

    class Quick(s.ss.TCPServer):  # type: ignore[name-defined]
        timeout = 0.05

        def handle_timeout(self) -> str:
            calls.append("timeout")
            return "handled timeout"

    out: list[Any] = []
    with Quick((HOST, 0), Reverse) as server:
        out.append(server.handle_request())  # nobody comes
        server.timeout = None
        server.socket.settimeout(0.05)  # the older way to bound handle_request
        out.append(server.handle_request())
        server.socket.settimeout(None)
        server.timeout = LIMIT
        with s.connect(server.server_address) as client:
            client.sendall(b"abc")
            out.append(server.handle_request())  # a client is waiting: served
            out += [client.recv(10), client.recv(10)]
    out.append(calls)
    return out


def context_manager(s: Side) -> list[Any]:
    with s.ss.TCPServer((HOST, 0), Reverse) as server:
        entered = server
        address = server.server_address
        inside = server.fileno() >= 0
    out = [
        entered is server,
        inside,
        server.fileno(),
        outcome(server.socket.getsockname),
        outcome(lambda: s.connect(address).close()),
    ]
    return out


def server_address_after_binding_port_0(s: Side) -> list[Any]:
    out: list[Any] = []
    server = s.ss.TCPServer((HOST, 0), Reverse, bind_and_activate=False)
    out += [server.server_address, server.fileno() >= 0]
    server.allow_reuse_address = True
    server.server_bind()
    server.server_activate()
    host, port = server.server_address
    out += [
        type(server.server_address).__name__,
        host,
        port > 0,
        server.socket.getsockname() == server.server_address,
        server.socket.getsockopt(s.m.SOL_SOCKET, s.m.SO_REUSEADDR),
        server.socket.getsockopt(s.m.SOL_SOCKET, s.m.SO_ACCEPTCONN),
        server.socket.gettimeout(),
    ]
    server.server_close()
    with s.ss.TCPServer(("localhost", 0), Reverse) as named:
        out.append(named.server_address[0])
    return out


def restart_on_the_same_port(s: Side, old_reuse: bool = True) -> list[Any]:
    """A server that served a connection closed it first (shutdown_request), so the
    port has a connection in TIME-WAIT when the server is closed and started again."""

    class Old(s.ss.TCPServer):  # type: ignore[name-defined]
        allow_reuse_address = old_reuse

    class New(s.ss.TCPServer):  # type: ignore[name-defined]
        allow_reuse_address = True

    class Plain(s.ss.TCPServer):  # type: ignore[name-defined]
        allow_reuse_address = False

    old = Old((HOST, 0), Reverse)
    address = old.server_address
    with s.connect(address) as client:
        client.sendall(b"once")
        old.handle_request()
        out: list[Any] = [client.recv(10), client.recv(10)]
    old.server_close()
    out.append(outcome(lambda: Plain(address, Reverse).server_close()))
    try:
        new = New(address, Reverse)
    except OSError as exc:
        return [*out, ("OSError", exc.errno)]
    # From a port of its own: Linux would reuse the old client's four-tuple.
    with new, s.m.create_connection(address, timeout=LIMIT, source_address=(HOST, 0)) as c:
        c.sendall(b"again")
        new.handle_request()
        out.append(c.recv(10))
    return out


def no_restart_unless_the_old_server_reused(s: Side) -> list[Any]:
    return restart_on_the_same_port(s, old_reuse=False)


def block_on_close_joins_the_handlers(s: Side, daemon: bool = False) -> list[Any]:
    started = threading.Event()
    release = threading.Event()

    class Slow(std_socketserver.BaseRequestHandler):
        def handle(self) -> None:
            started.set()
            assert release.wait(LIMIT)
            self.request.sendall(b"late")  # after the listener has closed

    class Server(s.ss.ThreadingTCPServer):  # type: ignore[name-defined]
        daemon_threads = daemon

    server = Server((HOST, 0), Slow)
    with serving(server) as address:
        client = s.connect(address)
        assert waited(started)
    closer = Background(server.server_close)
    # block_on_close: server_close waits for the handler; daemon threads: it does not.
    # (Waiting a little for something that should not happen is the only way to see it.)
    closed_before_the_handler = closer.done.wait(LIMIT if daemon else 0.3)
    release.set()
    closer.join()
    out = [closed_before_the_handler, client.recv(10), client.recv(10), server.fileno()]
    client.close()
    return out


def daemon_threads_are_not_joined(s: Side) -> list[Any]:
    return block_on_close_joins_the_handlers(s, daemon=True)


def stream_handler_files_and_options(s: Side) -> list[Any]:
    seen: list[Any] = []

    class Files(std_socketserver.StreamRequestHandler):
        rbufsize = 0  # rfile is the raw SocketIO
        wbufsize = -1  # wfile buffered: finish() flushes it
        disable_nagle_algorithm = True

        def handle(self) -> None:
            seen.append(type(self.rfile).__name__)
            seen.append(type(self.wfile).__name__)
            seen.append(self.request.getsockopt(s.m.IPPROTO_TCP, s.m.TCP_NODELAY))
            seen.append(self.request.gettimeout())
            seen.append(self.client_address == self.request.getpeername())
            for line in self.rfile:
                self.wfile.write(line.upper())  # never flushed here

    class Defaults(std_socketserver.StreamRequestHandler):
        def handle(self) -> None:
            seen.append(type(self.rfile).__name__)
            seen.append(type(self.wfile).__name__)
            seen.append(self.request.getsockopt(s.m.IPPROTO_TCP, s.m.TCP_NODELAY))
            seen.append(self.wfile.fileno() == self.request.fileno())
            data = self.rfile.read()  # to the end of the stream
            seen.append(self.wfile.write(data[::-1]))

    out: list[Any] = []
    with s.ss.TCPServer((HOST, 0), Files) as server, s.connect(server.server_address) as c:
        c.sendall(b"one\ntwo\n")
        c.shutdown(s.m.SHUT_WR)
        server.handle_request()
        out += [c.recv(100), c.recv(100)]
    with s.ss.TCPServer((HOST, 0), Defaults) as server, s.connect(server.server_address) as c:
        c.sendall(b"backwards")
        c.shutdown(s.m.SHUT_WR)
        server.handle_request()
        out += [c.recv(100), c.recv(100)]
    return [seen, out]


def stream_handler_timeout(s: Side) -> list[Any]:
    seen: list[Any] = []
    errors: list[str] = []

    class Patient(std_socketserver.StreamRequestHandler):
        timeout = 0.2

        def handle(self) -> None:
            seen.append(self.request.gettimeout())
            seen.append(outcome(self.rfile.readline))
            seen.append(outcome(self.rfile.readline))  # SocketIO after a timeout
            self.wfile.write(b"too slow\n")

    class Server(s.ss.TCPServer):  # type: ignore[name-defined]
        def handle_error(self, request: Any, client_address: Any) -> None:
            errors.append("handle_error")

    with Server((HOST, 0), Patient) as server, s.connect(server.server_address) as c:
        server.handle_request()
        out = [c.recv(100), c.recv(100)]
    return [seen, out, errors]


def finish_and_handle_error_after_an_exception(s: Side, threading_: bool = False) -> list[Any]:
    calls: list[str] = []

    class Failing(std_socketserver.StreamRequestHandler):
        def handle(self) -> None:
            calls.append("handle")
            self.wfile.write(b"partial\n")
            raise ValueError("boom")

        def finish(self) -> None:
            calls.append("finish")
            super().finish()

    stderr = io.StringIO()
    kind = s.ss.ThreadingTCPServer if threading_ else s.ss.TCPServer
    with (
        contextlib.redirect_stderr(stderr),
        kind((HOST, 0), Failing) as server,
        s.connect(server.server_address) as c,
    ):
        server.handle_request()
        out: list[Any] = [c.recv(100), c.recv(100)]
        server.server_close()  # joins a threading server's handler
    return [calls, out, normalised(stderr.getvalue())]


def handle_error_in_a_handler_thread(s: Side) -> list[Any]:
    return finish_and_handle_error_after_an_exception(s, threading_=True)


def verify_request_false(s: Side) -> list[Any]:
    handled: list[Any] = []

    class Picky(s.ss.TCPServer):  # type: ignore[name-defined]
        def verify_request(self, request: Any, client_address: Any) -> bool:
            handled.append(("verify", client_address == request.getpeername()))
            return False

    class Record(std_socketserver.BaseRequestHandler):
        def handle(self) -> None:
            handled.append("handle")

    with Picky((HOST, 0), Record) as server:
        with s.connect(server.server_address) as quiet:
            server.handle_request()
            out: list[Any] = [outcome(lambda: quiet.recv(10))]  # FIN: the end of the stream
        with s.connect(server.server_address) as talker:
            talker.sendall(b"unread")
            server.handle_request()  # closed with unread data: FIN, then RST
            assert wait_hangup(talker)
            # The end of the stream, twice; the reset (EPIPE after the FIN) stays pending.
            out += [outcome(lambda: talker.recv(10)), outcome(lambda: talker.recv(10))]
            out.append(talker.getsockopt(s.m.SOL_SOCKET, s.m.SO_ERROR))
    return [handled, out]


def shutdown_request_sends_fin_while_the_socket_stays_open(s: Side) -> list[Any]:
    """shutdown_request shuts writing before close_request, so the client sees the end
    of the stream even when the request socket is kept open (close_request overridden,
    or a makefile() object left open)."""
    kept: list[Any] = []

    class Keeping(s.ss.TCPServer):  # type: ignore[name-defined]
        def close_request(self, request: Any) -> None:
            kept.append(request)

    class Leaking(std_socketserver.StreamRequestHandler):
        def handle(self) -> None:
            self.wfile.write(self.rfile.readline())

        def finish(self) -> None:
            kept.append(self.rfile)  # never closed: close() leaves the socket open

    out: list[Any] = []
    with Keeping((HOST, 0), Reverse) as server, s.connect(server.server_address) as c:
        c.sendall(b"kept")
        server.handle_request()
        out += [c.recv(10), outcome(lambda: c.recv(10))]
        request = kept.pop()
        c.sendall(b"more")  # the client may still send: the request socket reads it
        out.append(outcome(lambda: request.recv(10)))
        request.close()
    with s.ss.TCPServer((HOST, 0), Leaking) as server, s.connect(server.server_address) as c:
        c.sendall(b"leaked\n")
        server.handle_request()
        out += [c.recv(10), outcome(lambda: c.recv(10))]
        rfile = kept.pop()
        out.append(rfile.closed)
        rfile.close()
    return out


def process_request_overridden(s: Side) -> list[Any]:
    """A server that handles the request itself and calls shutdown_request."""
    order: list[str] = []

    class Custom(s.ss.TCPServer):  # type: ignore[name-defined]
        def process_request(self, request: Any, client_address: Any) -> None:
            order.append("process")
            request.sendall(b"direct")
            self.shutdown_request(request)
            order.append(str(request.fileno()))

    with Custom((HOST, 0), Reverse) as server, s.connect(server.server_address) as c:
        server.handle_request()
        out = [c.recv(10), c.recv(10)]
    return [order, out]


def shutdown_request_on_a_closed_request(s: Side) -> list[Any]:
    """A handler that closes its request itself: shutdown_request's SHUT_WR fails
    (EBADF), which the standard server ignores; nothing is reported."""

    class Closing(std_socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.sendall(b"closed it")
            self.request.close()

    stderr = io.StringIO()
    with (
        contextlib.redirect_stderr(stderr),
        s.ss.TCPServer((HOST, 0), Closing) as server,
        s.connect(server.server_address) as c,
    ):
        server.handle_request()
        out = [c.recv(100), c.recv(100)]
    return [out, stderr.getvalue()]


def selectors_on_the_server(s: Side) -> list[Any]:
    out: list[Any] = []
    with s.ss.TCPServer((HOST, 0), Reverse) as server, selectors.DefaultSelector() as sel:
        sel.register(server, selectors.EVENT_READ)
        out.append(sel.select(0))
        with s.connect(server.server_address) as c:
            ready = sel.select(LIMIT)
            out.append([(key.fileobj is server, events) for key, events in ready])
            c.sendall(b"sel")
            server.handle_request()
            out.append(sel.select(0))  # the queue is empty again
            out += [c.recv(10), c.recv(10)]
        sel.unregister(server)
        poller = select.poll()
        poller.register(server.fileno(), select.POLLIN)
        out.append(poller.poll(0))
    return out


def request_queue_size(s: Side) -> list[Any]:
    """Clients that connect before the server accepts wait in its queue, in order."""

    class Queue(s.ss.TCPServer):  # type: ignore[name-defined]
        request_queue_size = 3

    with Queue((HOST, 0), Reverse) as server:
        clients = [s.connect(server.server_address) for _ in range(3)]
        for i, c in enumerate(clients):
            c.sendall(f"client {i}".encode())
        for _ in clients:
            server.handle_request()
        out = [c.recv(100) for c in clients]
        out += [c.recv(100) for c in clients]
        for c in clients:
            c.close()
    return out


def a_client_that_connects_and_closes_at_once(s: Side) -> list[Any]:
    seen: list[Any] = []

    class Look(std_socketserver.StreamRequestHandler):
        def handle(self) -> None:
            seen.append(self.rfile.readline())
            seen.append(outcome(self.request.getpeername) == ("ok", self.client_address))

    with s.ss.TCPServer((HOST, 0), Look) as server:
        c = s.connect(server.server_address)
        c.close()
        assert wait_readable(server)
        server.handle_request()
    return seen


def a_client_that_resets_before_it_is_accepted(s: Side) -> list[Any]:
    """The server has shown it readable, then the client resets: the kernel still hands
    the connection to accept(), whose first recv reports the reset."""
    seen: list[Any] = []

    class Look(std_socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.settimeout(LIMIT)
            assert wait_hangup(self.request)
            seen.append(outcome(lambda: self.request.recv(10)))
            seen.append(outcome(lambda: self.request.recv(10)))

    errors: list[str] = []

    class Server(s.ss.TCPServer):  # type: ignore[name-defined]
        def handle_error(self, request: Any, client_address: Any) -> None:
            errors.append("handle_error")

    with Server((HOST, 0), Look) as server:
        c = s.connect(server.server_address)
        assert wait_readable(server)
        c.setsockopt(s.m.SOL_SOCKET, s.m.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
        Background(server.handle_request).join()
    return [seen, errors]


def many_clients_at_once(s: Side, threading_: bool = True, count: int = 30) -> list[Any]:

    class Upper(std_socketserver.StreamRequestHandler):
        def handle(self) -> None:
            for line in self.rfile:
                self.wfile.write(line.upper())

    kind = s.ss.ThreadingTCPServer if threading_ else s.ss.TCPServer
    server = kind((HOST, 0), Upper)
    go = threading.Event()

    def client(i: int) -> list[bytes]:
        assert go.wait(LIMIT)
        with s.connect(server.server_address) as c, c.makefile("rwb") as f:
            got = []
            for j in range(3):
                f.write(f"client {i} line {j}\n".encode())
                f.flush()
                got.append(f.readline())
            c.shutdown(s.m.SHUT_WR)
            got.append(f.read())
            return got

    with serving(server):
        clients = [Background(lambda i=i: client(i)) for i in range(count)]
        go.set()
        answers = [c.join() for c in clients]
    server.server_close()
    return [
        a == [f"CLIENT {i} LINE {j}\n".encode() for j in range(3)] + [b""]
        for i, a in enumerate(answers)
    ]


def many_clients_at_a_one_at_a_time_server(s: Side) -> list[Any]:
    # Twice the backlog of 5, so some SYNs find the queue full and are retried (after 1
    # s, then 3 s...), as on Linux; 30 made the last clients' retries, on a loaded
    # machine, outlast the join's bound.
    return many_clients_at_once(s, threading_=False, count=10)


def restart_while_a_connection_is_open(s: Side, reuse: bool = True) -> list[Any]:
    """A threading server closed while a handler still serves a client; a new server
    starts on the same port and serves another, the old handler still answering."""
    started = threading.Event()
    release = threading.Event()

    class Chat(std_socketserver.StreamRequestHandler):
        def handle(self) -> None:
            started.set()
            for line in self.rfile:
                self.wfile.write(line.upper())
                if line == b"wait\n":
                    assert release.wait(LIMIT)

    class Old(s.ss.ThreadingTCPServer):  # type: ignore[name-defined]
        allow_reuse_address = reuse
        daemon_threads = True

    class New(s.ss.ThreadingTCPServer):  # type: ignore[name-defined]
        allow_reuse_address = True

    old = Old((HOST, 0), Chat)
    address = old.server_address
    with serving(old):
        first = s.connect(address)
        first.sendall(b"hello\n")
        out: list[Any] = [first.recv(100)]
    old.server_close()  # the handler goes on
    try:
        new = New(address, Chat)
    except OSError as exc:
        first.close()
        return [*out, ("OSError", exc.errno)]
    with new, serving(new):
        with s.m.create_connection(address, timeout=LIMIT, source_address=(HOST, 0)) as c:
            c.sendall(b"second\n")
            out.append(c.recv(100))
            first.sendall(b"still there\n")
            out.append(first.recv(100))
            c.shutdown(s.m.SHUT_WR)
            out.append(c.recv(100))
        first.close()
    return out


def no_restart_while_a_connection_is_open_unless_reused(s: Side) -> list[Any]:
    return restart_while_a_connection_is_open(s, reuse=False)


SCENARIOS: list[Callable[[Side], list[Any]]] = [
    serve_forever_and_shutdown,
    shutdown_from_a_handler_thread,
    handle_request_and_its_timeout,
    context_manager,
    server_address_after_binding_port_0,
    restart_on_the_same_port,
    no_restart_unless_the_old_server_reused,
    block_on_close_joins_the_handlers,
    daemon_threads_are_not_joined,
    stream_handler_files_and_options,
    stream_handler_timeout,
    finish_and_handle_error_after_an_exception,
    handle_error_in_a_handler_thread,
    verify_request_false,
    shutdown_request_sends_fin_while_the_socket_stays_open,
    process_request_overridden,
    shutdown_request_on_a_closed_request,
    selectors_on_the_server,
    request_queue_size,
    a_client_that_connects_and_closes_at_once,
    a_client_that_resets_before_it_is_accepted,
    many_clients_at_once,
    many_clients_at_a_one_at_a_time_server,
    restart_while_a_connection_is_open,
    no_restart_while_a_connection_is_open_unless_reused,
]


@pytest.mark.timeout(90)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__ for s in SCENARIOS])
def test_same_results_as_the_standard_socketserver(scenario: Callable[[Side], list[Any]]) -> None:
    kernel = scenario(KERNEL)
    synack = scenario(SYNACK)
    assert synack == kernel


# ------------------------------------------------------------------ differences by design


@pytest.mark.parametrize("wildcard", ["", "0.0.0.0"])
def test_a_server_needs_an_address_of_its_own(wildcard: str) -> None:
    """The kernel's server on ("", port) listens on every address; ours listens on one,
    so the constructor asks for it (and closes the socket it made)."""
    made: list[Any] = []

    class Server(ours_socketserver.TCPServer):
        def server_close(self) -> None:
            made.append(self.socket)
            super().server_close()

    with pytest.raises(OSError) as caught:
        Server((wildcard, 0), Reverse)
    assert caught.value.errno == errno.EADDRNOTAVAIL
    assert "127.0.0.1" in str(caught.value)
    assert [s.fileno() for s in made] == [-1]


def test_allow_reuse_port_is_refused_clearly() -> None:
    """SO_REUSEPORT would let two UDP sockets share a port; the standard server sets it
    for allow_reuse_port, so ours refuses in the constructor with the reason."""

    class Sharing(ours_socketserver.TCPServer):
        allow_reuse_port = True

    with pytest.raises(OSError) as caught:
        Sharing((HOST, 0), Reverse)
    assert caught.value.errno == errno.ENOPROTOOPT
    assert "SO_REUSEPORT" in str(caught.value)
