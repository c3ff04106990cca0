"""The seam between apps and transports: asyncio streams, chosen by name.

Apps never touch sockets. They ask this module for a `StreamReader` and
`StreamWriter` pair (client side) or a server that hands them such pairs, and
name the transport underneath: ``"os"`` is the operating system's TCP. A later
transport (our own TCP) plugs in here without any app code changing.
"""

from __future__ import annotations

import asyncio
from asyncio import selector_events
from collections.abc import Awaitable, Callable
from typing import IO

TRANSPORTS = ("os",)
DEFAULT_TRANSPORT = "os"

# StreamReader buffer limit: large enough that one read drains a socket's worth.
STREAM_LIMIT = 1 << 20

# The stdlib's socket transport; it can swap in a BufferedProtocol mid-stream (see `readinto`).
_SOCKET_TRANSPORT: type = getattr(selector_events, "_SelectorSocketTransport", type(None))

ClientHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Server:
    """A listening server; `close()` stops accepting, `sockets` names its addresses."""

    def __init__(self, inner: asyncio.Server) -> None:
        self._inner = inner

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [s.getsockname()[:2] for s in self._inner.sockets]

    def close(self) -> None:
        self._inner.close()

    async def wait_closed(self) -> None:
        await self._inner.wait_closed()

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        await self.wait_closed()


def _check(transport: str) -> None:
    if transport not in TRANSPORTS:
        raise ValueError(f"unknown transport {transport!r} (choose from {', '.join(TRANSPORTS)})")


async def open_connection(
    host: str, port: int, *, transport: str = DEFAULT_TRANSPORT, limit: int = STREAM_LIMIT
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to `host`:`port`; raises `OSError` (refused, unreachable...) as the OS does."""
    _check(transport)
    return await asyncio.open_connection(host, port, limit=limit)


async def start_server(
    handler: ClientHandler,
    host: str,
    port: int,
    *,
    transport: str = DEFAULT_TRANSPORT,
    backlog: int = 128,
    limit: int = STREAM_LIMIT,
) -> Server:
    """Listen on `host`:`port` with SO_REUSEADDR, so a restart never meets "Address already in use"."""
    _check(transport)
    inner = await asyncio.start_server(
        handler, host, port, backlog=backlog, limit=limit, reuse_address=True
    )
    return Server(inner)


async def sendfile(writer: asyncio.StreamWriter, file: IO[bytes], offset: int, count: int) -> int:
    """Send `count` bytes of `file` from `offset`: zero-copy `os.sendfile` where the
    transport allows, plain reads and writes otherwise."""
    await writer.drain()
    loop = asyncio.get_running_loop()
    return await loop.sendfile(writer.transport, file, offset, count, fallback=True)


class BulkReader:
    """Bulk data (a file body) from a stream straight into the caller's buffers.

    With the OS transport the bytes go from the socket into the caller's buffer
    in one copy, as with ``recv_into``, instead of through the StreamReader's
    own buffer (three copies; measured 3x slower). While open it stands in for
    the stream's protocol; reading is paused between `readinto` calls, so no
    byte beyond what the caller asked for is consumed. Close it (or use it as a
    context manager) before reading the stream normally again. If a
    `readinto` is cancelled, the stream position is lost: close the connection.
    """

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader
        self._filler: _Filler | None = None

    async def readinto(self, buffer: memoryview) -> int:
        """Read what has arrived into `buffer` (at least one byte, at most ``len(buffer)``),
        as ``recv_into`` does; 0 only at the end of the stream."""
        view = buffer.cast("B") if buffer.format != "B" else buffer
        if not view:
            return 0
        reader = self._reader
        if self._filler is None:
            # Bytes the StreamReader already holds come first (a private attribute,
            # but one every CPython since 3.4 has; the seam is where that knowledge lives).
            if reader._buffer:  # type: ignore[attr-defined]
                chunk = await reader.read(len(view))
                view[: len(chunk)] = chunk
                return len(chunk)
            if reader.at_eof():
                return 0
            if (exc := reader.exception()) is not None:
                raise exc
            transport: asyncio.Transport | None = getattr(reader, "_transport", None)
            if (
                transport is None
                or not isinstance(transport, _SOCKET_TRANSPORT)
                or transport.is_closing()
            ):
                chunk = await reader.read(len(view))
                view[: len(chunk)] = chunk
                return len(chunk)
            self._filler = _Filler(transport)
        return await self._filler.fill(view)

    def close(self) -> None:
        """Give the stream back to its StreamReader."""
        if self._filler is not None:
            self._filler.restore()
            self._filler = None

    def __enter__(self) -> BulkReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Filler(asyncio.BufferedProtocol):
    """Stands in for a stream's protocol: one ``recv_into`` per `fill`.

    Reading is paused whenever no buffer is waiting (from inside
    `buffer_updated`), so the transport never reads on its own account.
    """

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._original = transport.get_protocol()
        self._view = memoryview(b"")
        self._filled = 0
        self._done: asyncio.Future[int] | None = None
        self._lost: BaseException | None = None
        self._eof = False
        transport.set_protocol(self)
        transport.pause_reading()

    async def fill(self, view: memoryview) -> int:
        if self._lost is not None:
            raise self._lost
        if self._eof or not view:
            return 0
        self._view = view
        self._filled = 0
        self._done = asyncio.get_running_loop().create_future()
        self._transport.resume_reading()
        try:
            return await self._done
        finally:
            self._done = None
            if not self._transport.is_closing():
                self._transport.pause_reading()

    def restore(self) -> None:
        if self._transport.get_protocol() is self:
            self._transport.set_protocol(self._original)
            if not self._transport.is_closing():
                self._transport.resume_reading()

    def _finish(self) -> None:
        if self._done is not None and not self._done.done():
            if self._lost is not None and not self._filled:
                self._done.set_exception(self._lost)
            else:
                self._done.set_result(self._filled)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view[self._filled :]

    def buffer_updated(self, nbytes: int) -> None:
        self._filled += nbytes
        self._transport.pause_reading()
        self._finish()

    def eof_received(self) -> bool | None:
        self._eof = True
        self._finish()
        return self._original.eof_received()  # type: ignore[attr-defined, no-any-return]

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = exc if exc is not None else ConnectionResetError("connection lost")
        self._eof = True
        self._finish()
        self._original.connection_lost(exc)

    def pause_writing(self) -> None:
        self._original.pause_writing()

    def resume_writing(self) -> None:
        self._original.resume_writing()


def set_nodelay(writer: asyncio.StreamWriter) -> None:
    """Disable Nagle's algorithm where the transport has a socket to set it on."""
    import socket

    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


__all__ = [
    "DEFAULT_TRANSPORT",
    "TRANSPORTS",
    "BulkReader",
    "Server",
    "open_connection",
    "sendfile",
    "set_nodelay",
    "start_server",
]
