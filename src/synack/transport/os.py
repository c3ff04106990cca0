"""The ``os`` transport: the operating system's TCP, through asyncio's socket transports.

Everything that knows asyncio's internals (the selector socket transport, the
StreamReader's buffer, the socket under a stream) lives here and nowhere else;
on a stream this transport did not make, each fast path falls back to the
generic one.
"""

from __future__ import annotations

import asyncio
import socket
from asyncio import selector_events, sslproto
from typing import IO

from . import unix
from .base import STREAM_LIMIT, BulkReader, ClientHandler, Server, StreamBulkReader, Transport

# The stdlib's socket transport; it can swap in a BufferedProtocol mid-stream (see `_Filler`).
_SOCKET_TRANSPORT: type = getattr(selector_events, "_SelectorSocketTransport", type(None))


# The stdlib's TLS transport (over any transport): it decrypts straight into a
# BufferedProtocol's buffer, so a TLS body is copied once less, too.
_TLS_TRANSPORT: type = getattr(sslproto, "_SSLProtocolTransport", type(None))


def _is_socket_transport(transport: object) -> bool:
    return isinstance(transport, _SOCKET_TRANSPORT)


def _fills_buffers(transport: object) -> bool:
    """Whether `transport` takes a BufferedProtocol swapped in mid-stream (`_Filler`)."""
    return isinstance(transport, _SOCKET_TRANSPORT | _TLS_TRANSPORT)


class OsServer(Server):
    """An `asyncio.Server`, described by the addresses its sockets are bound to."""

    def __init__(self, inner: asyncio.Server) -> None:
        self._inner = inner

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [s.getsockname()[:2] for s in self._inner.sockets]

    def close(self) -> None:
        self._inner.close()

    async def wait_closed(self) -> None:
        await self._inner.wait_closed()


class OsTransport(Transport):
    """The kernel's TCP: zero-copy sendfile, ``recv_into`` bulk reads, TCP_NODELAY."""

    name = "os"

    async def open_connection(
        self, host: str, port: int, *, limit: int = STREAM_LIMIT
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(host, port, limit=limit)

    async def start_server(
        self,
        handler: ClientHandler,
        host: str,
        port: int,
        *,
        backlog: int = 128,
        limit: int = STREAM_LIMIT,
    ) -> Server:
        # SO_REUSEADDR, so that a restart never meets "Address already in use".
        inner = await asyncio.start_server(
            handler, host, port, backlog=backlog, limit=limit, reuse_address=True
        )
        return OsServer(inner)

    async def open_unix_connection(
        self, path: str, *, limit: int = STREAM_LIMIT
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_unix_connection(path, limit=limit)

    async def start_unix_server(
        self,
        handler: ClientHandler,
        path: str,
        *,
        backlog: int = 128,
        limit: int = STREAM_LIMIT,
        mode: int = unix.DEFAULT_MODE,
    ) -> Server:
        sock, identity = unix.bind(path, mode)
        try:
            inner = await asyncio.start_unix_server(
                handler, sock=sock, backlog=backlog, limit=limit
            )
        except BaseException:
            sock.close()
            unix.remove(path, identity)
            raise
        return unix.UnixServer(inner, path, identity)

    def bulk_reader(self, reader: asyncio.StreamReader) -> BulkReader:
        return FillingBulkReader(reader)

    async def sendfile(
        self, writer: asyncio.StreamWriter, file: IO[bytes], offset: int, count: int
    ) -> int:
        """Zero-copy `os.sendfile` on a plain socket stream; the generic loop otherwise
        (a TLS stream, or one another transport made)."""
        if not _is_socket_transport(writer.transport):
            return await super().sendfile(writer, file, offset, count)
        await writer.drain()
        loop = asyncio.get_running_loop()
        return await loop.sendfile(writer.transport, file, offset, count, fallback=True)

    def set_nodelay(self, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class FillingBulkReader(BulkReader):
    """Bytes go from the socket into the caller's buffer in one copy, as with ``recv_into``,
    instead of through the StreamReader's own buffer (three copies; measured 3x slower).
    On a TLS stream (over any transport) asyncio's TLS layer decrypts straight into
    the caller's buffer (measured: a TLS download's receiver CPU down by a third).

    While open it stands in for the stream's protocol; reading is paused between
    `readinto` calls, so no byte beyond what the caller asked for is consumed.
    Any other stream is read through its StreamReader.
    """

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader
        self._filler: _Filler | None = None

    async def readinto(self, buffer: memoryview) -> int:
        view = buffer.cast("B") if buffer.format != "B" else buffer
        if not view:
            return 0
        reader = self._reader
        if self._filler is None:
            # Bytes the StreamReader already holds come first (a private attribute,
            # but one every CPython since 3.4 has).
            if reader._buffer:  # type: ignore[attr-defined]
                return await StreamBulkReader(reader).readinto(view)
            if reader.at_eof():
                return 0
            if (exc := reader.exception()) is not None:
                raise exc
            transport: asyncio.Transport | None = getattr(reader, "_transport", None)
            if transport is None or not _fills_buffers(transport) or transport.is_closing():
                return await StreamBulkReader(reader).readinto(view)
            self._filler = _Filler(transport)
        return await self._filler.fill(view)

    def close(self) -> None:
        if self._filler is not None:
            self._filler.restore()
            self._filler = None


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
