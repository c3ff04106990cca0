"""`synack.asyncio` against asyncio's own TCP: the same scenario, run once with
`asyncio.open_connection`/`start_server` (the kernel's TCP on 127.0.0.1) and once with
ours, must make the same observations: return values, exception classes and errno,
the order of a protocol's events.

Each scenario takes an `Api` and returns a list of observations; `compare` runs it on
a fresh event loop for each and checks that the lists are equal. A scenario finds its
server's address as programs do, from ``server.sockets``. Every wait is bounded.
Differences that are deliberate are documented in `synack.asyncio`'s docstring and
tested at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import socket
import ssl
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import trustme

from synack import asyncio as ours

HOST = "127.0.0.1"
T = 5.0  # the bound on every wait for something that must happen
SCENARIO_LIMIT = 20.0  # the bound on one scenario
PENDING = 0.25  # how long a wait must stay unfinished to count as blocked


async def _loop_create_connection(
    factory: Callable[[], asyncio.BaseProtocol], host: str, port: int, **kw: Any
) -> tuple[asyncio.BaseTransport, asyncio.BaseProtocol]:
    return await asyncio.get_running_loop().create_connection(factory, host, port, **kw)


async def _loop_create_server(
    factory: Callable[[], asyncio.BaseProtocol], host: str, port: int, **kw: Any
) -> Any:
    return await asyncio.get_running_loop().create_server(factory, host, port, **kw)


@dataclass(frozen=True)
class Api:
    """The four calls a program makes, from asyncio or from synack."""

    name: str
    open_connection: Callable[..., Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]
    start_server: Callable[..., Awaitable[Any]]
    create_connection: Callable[..., Awaitable[tuple[Any, Any]]]
    create_server: Callable[..., Awaitable[Any]]


STD = Api(
    "asyncio",
    asyncio.open_connection,
    asyncio.start_server,
    _loop_create_connection,
    _loop_create_server,
)
OURS = Api(
    "synack",
    ours.open_connection,
    ours.start_server,
    ours.create_connection,
    ours.create_server,
)

Scenario = Callable[[Api], Awaitable[list[Any]]]


def compare(scenario: Scenario) -> list[Any]:
    """Run `scenario` with asyncio, then with synack; the observations must be equal."""

    async def bounded(api: Api) -> list[Any]:
        async with asyncio.timeout(SCENARIO_LIMIT):
            return await scenario(api)

    expected = asyncio.run(bounded(STD))
    got = asyncio.run(bounded(OURS))
    assert got == expected
    return got


async def outcome(awaitable: Awaitable[Any]) -> tuple[Any, ...]:
    """("ok", value) or what was raised: its class, and its errno or the stream's detail."""
    try:
        value = await asyncio.wait_for(awaitable, T)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # this scenario is cancelled, not only what it awaited
        return ("CancelledError",)
    except asyncio.IncompleteReadError as exc:
        return ("IncompleteReadError", exc.partial, exc.expected)
    except asyncio.LimitOverrunError as exc:
        return ("LimitOverrunError", exc.consumed)
    except OSError as exc:
        return (type(exc).__name__, exc.errno)
    except Exception as exc:
        return (type(exc).__name__,)
    return ("ok", value)


def call(function: Callable[[], Any]) -> tuple[Any, ...]:
    """`outcome` for a plain call."""
    try:
        value = function()
    except Exception as exc:
        return (type(exc).__name__, getattr(exc, "errno", None))
    return ("ok", value)


def address(server: Any) -> tuple[str, int]:
    """Where `server` listens, found as programs find it."""
    host, port = server.sockets[0].getsockname()[:2]
    return host, port


@dataclass
class End:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


@contextlib.asynccontextmanager
async def connected(api: Api, **kw: Any) -> AsyncIterator[tuple[Any, End, End]]:
    """A server, a client's streams and the accepted streams; all closed at the end."""
    accepted: asyncio.Queue[End] = asyncio.Queue()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.put_nowait(End(reader, writer))

    server = await api.start_server(handler, HOST, 0, **kw)
    try:
        client = End(*await asyncio.wait_for(api.open_connection(*address(server), **kw), T))
        peer = await asyncio.wait_for(accepted.get(), T)
        try:
            yield server, client, peer
        finally:
            for end in (client, peer):
                if not end.writer.transport.is_closing():
                    end.writer.transport.abort()
    finally:
        server.close()


class Recorder(asyncio.Protocol):
    """A protocol that notes its events in order."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.events: list[Any] = []
        self.made: asyncio.Future[asyncio.Transport] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        self.eof: asyncio.Future[None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.events.append("connection_made")
        self.made.set_result(transport)

    def data_received(self, data: bytes) -> None:
        if self.events[-1:] and self.events[-1][0] == "data_received":
            self.events[-1] = ("data_received", self.events[-1][1] + data)
        else:
            self.events.append(("data_received", data))

    def eof_received(self) -> bool:
        self.events.append("eof_received")
        self.eof.set_result(None)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.append(("connection_lost", None if exc is None else type(exc).__name__))
        self.lost.set_result(None)


async def recorded_pair(api: Api) -> tuple[Any, Recorder, Recorder]:
    """A server, the client's recorder and the accepted connection's, both connected."""
    accepted: asyncio.Future[Recorder] = asyncio.get_running_loop().create_future()

    def factory() -> Recorder:
        accepted.set_result(Recorder())
        return accepted.result()

    server = await api.create_server(factory, HOST, 0)
    _, client = await asyncio.wait_for(api.create_connection(Recorder, *address(server)), T)
    peer = await asyncio.wait_for(accepted, T)
    await asyncio.wait_for(peer.made, T)
    return server, client, peer


# --- the transport's state ------------------------------------------------------------


async def transport_state(api: Api) -> list[Any]:
    async with connected(api) as (server, client, peer):
        w = client.writer
        t = w.transport
        seen: list[Any] = [
            w.get_extra_info("peername") == address(server),
            w.get_extra_info("sockname") == peer.writer.get_extra_info("peername"),
            [w.get_extra_info(k) for k in ("sslcontext", "ssl_object", "peercert", "cipher")],
            w.get_extra_info("no such key", 42),
            t.get_write_buffer_limits(),
            t.get_write_buffer_size(),
            w.can_write_eof(),
            t.is_reading(),
        ]
        t.pause_reading()
        t.pause_reading()
        seen.append(t.is_reading())
        t.resume_reading()
        t.resume_reading()
        seen += [t.is_reading(), w.is_closing()]
        w.write_eof()
        w.write_eof()
        seen += [w.can_write_eof(), w.is_closing(), call(lambda: w.write(b"x"))]
        seen.append(await outcome(peer.reader.read()))
        w.close()
        seen += [w.is_closing(), t.is_reading(), call(lambda: w.write_eof())]
        seen.append(await outcome(w.wait_closed()))
        seen.append(await outcome(peer.reader.read()))
        return seen


def test_the_transports_state_answers_as_asyncios() -> None:
    compare(transport_state)


async def write_buffer_limits(api: Api) -> list[Any]:
    async with connected(api) as (_server, client, _peer):
        t = client.writer.transport
        seen = []
        for args in [(), (100,), (None, 10), (100, 10), (10, 100), (-1,), (0, 0)]:
            seen.append((args, call(functools.partial(t.set_write_buffer_limits, *args))))
            seen.append(t.get_write_buffer_limits())
        return seen


def test_write_buffer_limits_take_the_same_arguments() -> None:
    compare(write_buffer_limits)


# --- flow control and cancellation ------------------------------------------------------


async def write_until_blocked(writer: asyncio.StreamWriter) -> tuple[asyncio.Future[None], int]:
    """Write until ``drain`` stays blocked; the pending drain and how much was written."""
    chunk = bytes(1 << 20)
    written = 0
    while written < 256 << 20:
        writer.write(chunk)
        written += len(chunk)
        drain = asyncio.ensure_future(writer.drain())
        done, _ = await asyncio.wait({drain}, timeout=PENDING)
        if not done:
            return drain, written
    raise AssertionError("the peer took 256 MiB without reading")


async def paused_reading_holds_the_sender(api: Api) -> list[Any]:
    async with connected(api) as (_server, client, peer):
        peer.writer.transport.pause_reading()
        drain, written = await write_until_blocked(client.writer)
        seen: list[Any] = [peer.writer.transport.is_reading(), len(peer.reader._buffer) == 0]  # type: ignore[attr-defined]
        peer.writer.transport.resume_reading()
        seen.append(await outcome(peer.reader.readexactly(written)) == ("ok", bytes(written)))
        seen.append(await outcome(drain))
        return seen


def test_a_paused_reader_holds_the_peers_sender_back_until_resumed() -> None:
    compare(paused_reading_holds_the_sender)


async def cancelled_waits(api: Api) -> list[Any]:
    async with connected(api) as (_server, client, peer):
        reading = asyncio.ensure_future(client.reader.read(10))
        done, _ = await asyncio.wait({reading}, timeout=PENDING)
        reading.cancel()
        seen: list[Any] = [bool(done), await outcome(reading)]
        peer.writer.write(b"after")
        seen.append(await outcome(client.reader.read(10)))
        drain, written = await write_until_blocked(client.writer)
        drain.cancel()
        seen += [await outcome(drain), client.writer.transport.get_write_buffer_size() > 0]
        client.writer.write(b"end")
        received = asyncio.ensure_future(peer.reader.readexactly(written + 3))
        seen += [await outcome(client.writer.drain()), len(await received) == written + 3]
        return seen


def test_a_cancelled_read_or_drain_leaves_the_connection_usable() -> None:
    compare(cancelled_waits)


# --- reading ----------------------------------------------------------------------------


async def stream_limits(api: Api) -> list[Any]:
    async with connected(api, limit=10) as (_server, client, peer):
        client.writer.write(b"0123456789ABCDEF\nxyz")
        client.writer.write_eof()
        return [
            await outcome(peer.reader.readuntil(b"\n")),
            await outcome(peer.reader.readline()),
            await outcome(peer.reader.readexactly(10)),
            await outcome(peer.reader.read()),
        ]


def test_limit_overruns_and_a_short_readexactly_raise_the_same() -> None:
    compare(stream_limits)


async def reset_by_the_peer(api: Api) -> list[Any]:
    """A peer that aborts with bytes it never read resets the connection: the pending
    drain, the next read and ``wait_closed`` raise ConnectionResetError."""
    async with connected(api) as (_server, client, peer):
        drain, _written = await write_until_blocked(client.writer)
        peer.writer.transport.abort()
        return [
            await outcome(drain),
            await outcome(client.reader.read(10)),
            await outcome(client.writer.wait_closed()),
            client.writer.is_closing(),
        ]


def test_a_reset_reaches_drain_read_and_wait_closed() -> None:
    compare(reset_by_the_peer)


async def many_at_once(api: Api) -> list[Any]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.read())
        writer.close()

    async def client(server: Any, i: int) -> bool:
        reader, writer = await api.open_connection(*address(server))
        payload = bytes([i]) * (10_000 + i)
        writer.write(payload)
        writer.write_eof()
        got = await reader.read()
        writer.close()
        await writer.wait_closed()
        return got == payload

    async with await api.start_server(echo, HOST, 0) as server:
        results = await asyncio.wait_for(asyncio.gather(*(client(server, i) for i in range(50))), T)
    return [results.count(True)]


def test_fifty_connections_at_once() -> None:
    assert compare(many_at_once) == [50]


# --- the server -------------------------------------------------------------------------


async def closing_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"hi")
    writer.close()


async def greeting(api: Api, server: Any) -> tuple[Any, ...]:
    """What a client connecting to `server` gets: its greeting, or the error."""
    try:
        reader, writer = await asyncio.wait_for(api.open_connection(*address(server)), T)
    except OSError as exc:
        return (type(exc).__name__, exc.errno)
    try:
        return await outcome(reader.read())
    finally:
        writer.close()


async def server_lifecycle(api: Api) -> list[Any]:
    server = await api.start_server(closing_handler, HOST, 0, start_serving=False)
    loop = asyncio.get_running_loop()
    (sock,) = server.sockets
    seen: list[Any] = [
        server.get_loop() is loop,
        server.is_serving(),
        sock.getsockname()[0],
        await greeting(api, server),
    ]
    await server.start_serving()
    seen += [server.is_serving(), await greeting(api, server)]
    forever = asyncio.ensure_future(server.serve_forever())
    seen.append(await asyncio.wait({forever}, timeout=PENDING) == (set(), {forever}))
    seen.append(await outcome(server.serve_forever()))  # one serve_forever at a time
    forever.cancel()
    seen += [await outcome(forever), server.is_serving(), server.sockets]
    seen.append(await outcome(server.wait_closed()))
    seen.append(await outcome(server.serve_forever()))  # closed
    async with await api.start_server(closing_handler, HOST, 0) as server:
        seen += [server.is_serving(), await greeting(api, server)]
    seen += [server.is_serving(), server.sockets]
    return seen


def test_a_server_starts_serves_forever_and_closes_as_asyncios() -> None:
    compare(server_lifecycle)


async def failing_callback(api: Api) -> list[Any]:
    """A client_connected_cb that raises: asyncio reports it to the loop's handler and
    closes the connection, so the client reads the end of the stream."""
    loop = asyncio.get_running_loop()
    reported: list[Any] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context["message"]))

    async def broken(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise ValueError("broken handler")

    async with await api.start_server(broken, HOST, 0) as server:
        reader, writer = await asyncio.wait_for(api.open_connection(*address(server)), T)
        seen = [await outcome(reader.read()), reported]
        writer.close()
        return seen


def test_a_failing_client_connected_cb_is_reported_and_its_connection_closed() -> None:
    compare(failing_callback)


class Faulty(asyncio.BufferedProtocol):
    """A client protocol whose `how` callback fails; it records what it is told."""

    def __init__(self, how: str, lost: asyncio.Future[Any]) -> None:
        self.how = how
        self.lost = lost
        self.area = bytearray(64)

    def get_buffer(self, sizehint: int) -> bytearray:
        if self.how == "get_buffer raises":
            raise ValueError("no buffer")
        return bytearray() if self.how == "empty buffer" else self.area

    def buffer_updated(self, nbytes: int) -> None:
        if self.how == "buffer_updated raises":
            raise ValueError("bad bytes")

    def eof_received(self) -> bool:
        if self.how == "eof_received raises":
            raise ValueError("bad end")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set_result(None if exc is None else type(exc).__name__)


def failing_protocol(how: str) -> Scenario:
    async def scenario(api: Api) -> list[Any]:
        """A protocol callback that raises ends its own connection, reported to the
        loop's exception handler, and no other: a second connection on the same server
        goes on."""
        loop = asyncio.get_running_loop()
        reported: list[Any] = []
        loop.set_exception_handler(
            lambda _loop, context: reported.append(
                (context["message"], type(context.get("exception")).__name__)
            )
        )

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"hello")
            with contextlib.suppress(ConnectionError):
                await reader.read()  # until the client ends
                writer.close()

        async with await api.start_server(serve, HOST, 0) as server:
            lost: asyncio.Future[Any] = loop.create_future()
            transport, _ = await asyncio.wait_for(
                api.create_connection(lambda: Faulty(how, lost), *address(server)), T
            )
            if how == "eof_received raises":
                transport.write_eof()  # type: ignore[attr-defined]
            seen: list[Any] = [await outcome(asyncio.shield(lost))]
            reader, writer = await asyncio.wait_for(api.open_connection(*address(server)), T)
            seen.append(await outcome(reader.readexactly(5)))  # the other connection
            writer.close()
            transport.close()
            seen.append(reported)
            return seen

    return scenario


@pytest.mark.parametrize(
    "how",
    ["get_buffer raises", "empty buffer", "buffer_updated raises", "eof_received raises"],
)
def test_a_protocol_callback_that_raises_ends_only_its_connection(how: str) -> None:
    compare(failing_protocol(how))


# --- closing and aborting ---------------------------------------------------------------


async def abort_after_writing(api: Api) -> list[Any]:
    """asyncio's ``abort`` drops what waits in its own buffer and closes the socket: the
    kernel sends what it holds, then FIN (RST only for bytes received and unread)."""
    server, client, peer = await recorded_pair(api)
    transport = await client.made
    transport.write(b"last words")
    transport.abort()
    seen: list[Any] = [transport.is_closing(), call(lambda: transport.write(b"more"))]
    await asyncio.wait_for(peer.eof, T)
    (await peer.made).close()
    await asyncio.wait_for(asyncio.gather(client.lost, peer.lost), T)
    server.close()
    return [*seen, client.events, peer.events]


def test_abort_ends_the_peers_stream_after_the_bytes_already_written() -> None:
    client_events, peer_events = compare(abort_after_writing)[-2:]
    assert client_events == ["connection_made", ("connection_lost", None)]
    assert peer_events == [
        "connection_made",
        ("data_received", b"last words"),
        "eof_received",
        ("connection_lost", None),
    ]


async def abort_on_streams(api: Api) -> list[Any]:
    async with connected(api) as (_server, client, peer):
        client.writer.write(b"bye")
        client.writer.transport.abort()
        seen = [await outcome(peer.reader.read()), await outcome(client.writer.wait_closed())]
        peer.writer.close()
        return [*seen, await outcome(peer.writer.wait_closed())]


def test_after_an_abort_the_peer_reads_to_the_end_and_both_sides_close() -> None:
    compare(abort_on_streams)


class Warnings(logging.Handler):
    """Counts asyncio's warnings about writes to a closed connection."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "socket.send() raised exception.":
            self.count += 1


async def writes_after_close(api: Api) -> list[Any]:
    warnings = Warnings()
    logger = logging.getLogger("asyncio")
    logger.addHandler(warnings)
    try:
        async with connected(api) as (_server, client, peer):
            client.writer.close()
            seen = [call(lambda: client.writer.write(b"x")) for _ in range(7)]
            seen += [warnings.count, await outcome(peer.reader.read())]
            seen.append(await outcome(client.writer.wait_closed()))
            return seen
    finally:
        logger.removeHandler(warnings)


def test_writes_after_close_are_dropped_and_warned_about_from_the_fifth() -> None:
    assert compare(writes_after_close)[7] == 3


async def write_while_closing(api: Api) -> list[Any]:
    """With bytes still queued, ``close`` waits to send them, and asyncio's transports
    queue a write made meanwhile behind them."""
    async with connected(api) as (_server, client, peer):
        body = bytes(16 << 20)
        client.writer.write(body)
        seen: list[Any] = [client.writer.transport.get_write_buffer_size() > 0]
        client.writer.close()
        client.writer.write(b"tail")
        got = await outcome(peer.reader.read())
        seen += [got[0], len(got[1]), got[1][-4:]]
        seen.append(await outcome(client.writer.wait_closed()))
        return seen


def test_a_write_while_close_waits_for_queued_bytes_is_sent_after_them() -> None:
    compare(write_while_closing)


# --- TLS --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) contexts: a CA made for this run, a certificate for 127.0.0.1."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOST).configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


def tls_echo(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> Callable[[Api], Awaitable[list[Any]]]:
    async def scenario(api: Api) -> list[Any]:
        seen: list[Any] = []

        async def echo_line(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen.append(writer.get_extra_info("sslcontext") is server_context)
            writer.write(await reader.readline())
            writer.close()

        server = await api.start_server(echo_line, HOST, 0, ssl=server_context)
        try:
            reader, writer = await asyncio.wait_for(
                api.open_connection(*address(server), ssl=client_context), T
            )
            seen.append(writer.get_extra_info("sslcontext") is client_context)
            seen.append(writer.get_extra_info("peercert")["subjectAltName"])
            writer.write(b"hello\n")
            seen += [await outcome(reader.read()), writer.can_write_eof()]
            writer.close()
            seen.append(await outcome(writer.wait_closed()))
        finally:
            server.close()
        return seen

    return scenario


def test_ssl_on_open_connection_and_start_server(
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    compare(tls_echo(*tls))


def tls_error_while_unread(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> Callable[[Api], Awaitable[list[Any]]]:
    """A client closes while the server still floods it and it has stopped reading: the
    TLS layer fails (application data after close_notify) and aborts the transport with
    that error while received bytes wait unread. The error reaches wait_closed; on our
    TCP the RST for the unread bytes ended the connection at once and its Closed event
    was handed out first, so connection_lost heard None and wait_closed returned."""

    async def scenario(api: Api) -> list[Any]:
        async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                for _ in range(256):
                    writer.write(b"x" * 65536)
                    await writer.drain()
            writer.close()

        server = await api.start_server(flood, HOST, 0, ssl=server_context)
        try:
            reader, writer = await asyncio.wait_for(
                api.open_connection(*address(server), ssl=client_context), T
            )
            seen: list[Any] = [await outcome(reader.readexactly(10))]
            # Until the TLS layer stops reading the transport: the bytes behind wait unread.
            raw = writer.transport._ssl_protocol._transport  # type: ignore[attr-defined]
            async with asyncio.timeout(T):
                while raw.is_reading():
                    await asyncio.sleep(0.01)
            writer.close()
            seen.append(await outcome(writer.wait_closed()))
        finally:
            server.close()
        return seen

    return scenario


def test_a_tls_error_while_closing_with_bytes_unread_reaches_wait_closed(
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    assert compare(tls_error_while_unread(*tls))[1][0] == "SSLError"


async def read_to_the_end(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()
    writer.close()


def tls_refused(server_context: ssl.SSLContext) -> Callable[[Api], Awaitable[list[Any]]]:
    async def scenario(api: Api) -> list[Any]:
        async def never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            raise AssertionError("the handshake failed: no connection to hand over")

        seen: list[Any] = []
        server = await api.start_server(never, HOST, 0, ssl=server_context)
        try:
            untrusting = ssl.create_default_context()  # does not know this run's CA
            try:
                await asyncio.wait_for(api.open_connection(*address(server), ssl=untrusting), T)
            except ssl.SSLCertVerificationError as exc:
                seen.append(("SSLCertVerificationError", exc.verify_code))
            # A plain server that never answers the handshake: the timeout ends it.
            silent = await api.start_server(read_to_the_end, HOST, 0)
            connecting = api.open_connection(
                *address(silent), ssl=True, server_hostname="", ssl_handshake_timeout=0.2
            )
            seen.append(await outcome(connecting))
            silent.close()
        finally:
            server.close()
        return seen

    return scenario


def test_a_failed_or_timed_out_handshake_raises_the_same(
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    compare(tls_refused(tls[0]))


async def tls_arguments(api: Api) -> list[Any]:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    cases: list[tuple[Callable[..., Awaitable[Any]], dict[str, Any]]] = [
        (api.open_connection, {"server_hostname": "example.org"}),
        (api.open_connection, {"ssl_handshake_timeout": 1.0}),
        (api.open_connection, {"ssl_shutdown_timeout": 1.0}),
        (api.open_connection, {"ssl": True, "host": ""}),
    ]
    seen: list[Any] = []
    for function, kw in cases:
        host = kw.pop("host", HOST)
        try:
            await asyncio.wait_for(function(host, 9, **kw), T)
        except (ValueError, TypeError) as exc:
            seen.append((type(exc).__name__, str(exc)))
        except OSError:
            seen.append(("OSError",))  # got past the arguments
    for kw in ({"ssl": True}, {"ssl_handshake_timeout": 1.0}, {"ssl_shutdown_timeout": 1.0}):
        try:
            server = await api.start_server(handler, HOST, 0, **kw)
            server.close()
            seen.append("ok")
        except (ValueError, TypeError) as exc:
            seen.append((type(exc).__name__, str(exc)))
    return seen


def test_tls_arguments_are_checked_as_asyncio_checks_them() -> None:
    compare(tls_arguments)


def start_tls_on_streams(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> Callable[[Api], Awaitable[list[Any]]]:
    async def scenario(api: Api) -> list[Any]:
        seen: list[Any] = []

        async def upgrade(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen.append(await reader.readline())
            writer.write(b"OK\n")
            await writer.drain()
            await writer.start_tls(server_context)
            seen.append(writer.get_extra_info("sslcontext") is server_context)
            writer.write(await reader.readline())
            writer.close()

        async with connected_tls_free(api, upgrade) as (reader, writer):
            writer.write(b"STARTTLS\n")
            seen.append(await outcome(reader.readline()))
            await asyncio.wait_for(writer.start_tls(client_context, server_hostname=HOST), T)
            seen.append(writer.get_extra_info("sslcontext") is client_context)
            writer.write(b"secret\n")
            seen.append(await outcome(reader.read()))
            writer.close()
            seen.append(await outcome(writer.wait_closed()))
        return seen

    return scenario


@contextlib.asynccontextmanager
async def connected_tls_free(
    api: Api, handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    server = await api.start_server(handler, HOST, 0)
    try:
        yield await asyncio.wait_for(api.open_connection(*address(server)), T)
    finally:
        server.close()


def test_start_tls_on_a_stream_writer_both_sides(
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    compare(start_tls_on_streams(*tls))


# --- loop.sendfile ----------------------------------------------------------------------


async def sendfile_on_the_loop(api: Api) -> list[Any]:
    data = bytes(range(256)) * 4096
    async with connected(api) as (_server, client, peer):
        with tempfile.TemporaryFile() as file:
            file.write(data)
            file.seek(0)
            loop = asyncio.get_running_loop()
            reading = asyncio.ensure_future(peer.reader.readexactly(len(data) - 1000 + 5))
            sent = await outcome(loop.sendfile(client.writer.transport, file, 1000))
            client.writer.write(b"after")  # the stream goes on after the file
            got = await outcome(reading)
            return [
                sent,
                file.tell(),
                got[0],
                got[1] == data[1000:] + b"after",
                client.writer.transport.is_reading(),
            ]


def test_loop_sendfile_sends_the_file_and_the_stream_goes_on() -> None:
    compare(sendfile_on_the_loop)


# --- deliberate differences (documented in synack.asyncio's docstring) ------------------


@pytest.mark.parametrize("api", [STD, OURS], ids=lambda api: api.name)
def test_a_connection_has_no_kernel_socket_of_its_own(api: Api) -> None:
    async def scenario() -> None:
        async with connected(api) as (server, client, peer):
            sock = client.writer.get_extra_info("socket")
            if api is STD:
                assert sock.type == socket.SOCK_STREAM
            else:
                assert sock is None  # one UDP socket carries all of a port's connections
            assert client.writer.get_extra_info("peername") == address(server)
            (listening,) = server.sockets
            kind = socket.SOCK_STREAM if api is STD else socket.SOCK_DGRAM
            assert listening.type == kind
            assert peer.writer.get_extra_info("sockname") == listening.getsockname()

    asyncio.run(asyncio.wait_for(scenario(), SCENARIO_LIMIT))


def test_loop_sendfile_without_its_fallback_is_refused() -> None:
    async def scenario() -> None:
        async with connected(OURS) as (_server, client, _peer):
            loop = asyncio.get_running_loop()
            with tempfile.TemporaryFile() as file:
                file.write(b"x")
                file.seek(0)
                with pytest.raises(RuntimeError, match="native sendfile is not supported"):
                    await loop.sendfile(client.writer.transport, file, fallback=False)

    asyncio.run(asyncio.wait_for(scenario(), SCENARIO_LIMIT))


def test_a_server_without_a_host_listens_on_loopback_alone() -> None:
    async def scenario() -> list[tuple[str, int]]:
        names = []
        for host in (None, ""):
            server = await ours.start_server(closing_handler, host, 0)
            names.append(address(server))
            assert await greeting(OURS, server) == ("ok", b"hi")
            server.close()
        server = await ours.start_server(closing_handler, port=0)  # as asyncio's allows
        names.append(address(server))
        server.close()
        with pytest.raises(OSError) as caught:
            await ours.start_server(closing_handler, "0.0.0.0", 0)
        assert caught.value.errno == errno.EADDRNOTAVAIL
        return names

    assert [host for host, _ in asyncio.run(scenario())] == [HOST] * 3


def test_arguments_about_the_kernel_socket_are_not_taken() -> None:
    async def scenario() -> None:
        for kw in ({"reuse_address": True}, {"family": socket.AF_INET}, {"sock": None}):
            with pytest.raises(TypeError):
                await ours.start_server(closing_handler, HOST, 0, **kw)
        with pytest.raises(TypeError):
            await ours.open_connection(HOST, 9, local_addr=(HOST, 0))

    asyncio.run(asyncio.wait_for(scenario(), SCENARIO_LIMIT))
