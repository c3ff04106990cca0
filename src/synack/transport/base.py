"""What every transport offers apps: the `Transport`, `Server` and `BulkReader` interfaces.

A transport hands out real asyncio `StreamReader`/`StreamWriter` pairs, so apps
work on any of them unchanged. The fast paths (bulk reads into a caller's
buffer, sendfile, no-delay) have generic defaults here that use only the public
stream API; a transport overrides them where it knows a quicker way.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Awaitable, Callable
from typing import IO, ClassVar, Protocol, Self

from synack.errors import UserError

# StreamReader buffer limit: large enough that one read drains a socket's worth.
STREAM_LIMIT = 1 << 20

# Bytes per read in the generic sendfile: big enough that per-call costs vanish.
SENDFILE_CHUNK = 1 << 18

ClientHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Server(Protocol):
    """A listening server, described by the addresses it listens on (never by OS sockets).

    A protocol, so that a driver's server fits without importing this layer;
    subclass it explicitly to inherit the async context manager.
    """

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """The (host, port) pairs actually bound (a port 0 request shows its real port)."""
        ...

    def close(self) -> None:
        """Stop accepting; connections already made are left to their handlers."""
        ...

    async def wait_closed(self) -> None:
        """Wait until the listener is closed."""
        ...

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        await self.wait_closed()


class BulkReader(abc.ABC):
    """Bulk data (a file body) from a stream straight into the caller's buffers.

    Use it as a context manager around the body; read the stream normally only
    after it is closed. If a `readinto` is cancelled, the stream position is
    lost: close the connection.
    """

    @abc.abstractmethod
    async def readinto(self, buffer: memoryview) -> int:
        """Read what has arrived into `buffer` (at least one byte, at most ``len(buffer)``),
        as ``recv_into`` does; 0 only at the end of the stream."""

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to undo by default
        """Give the stream back to its StreamReader."""

    def __enter__(self) -> BulkReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StreamBulkReader(BulkReader):
    """The generic bulk reader: through the StreamReader, one extra copy per read."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    async def readinto(self, buffer: memoryview) -> int:
        view = buffer.cast("B") if buffer.format != "B" else buffer
        if not view:
            return 0
        chunk = await self._reader.read(len(view))
        view[: len(chunk)] = chunk
        return len(chunk)


class UnsupportedAddress(UserError):
    """The transport has no form for this kind of address (a Unix socket on a TCP over UDP)."""


class Transport(abc.ABC):
    """One way of carrying TCP streams for apps, chosen by `name` (``--transport NAME``).

    A transport must implement `open_connection` and `start_server`; the fast
    paths below are optional, and their defaults work on any stream.
    """

    name: ClassVar[str]
    # Why a transport that does not override the Unix-socket calls has none.
    no_unix_sockets: ClassVar[str] = "has no Unix-socket form"

    @abc.abstractmethod
    async def open_connection(
        self, host: str, port: int, *, limit: int = STREAM_LIMIT
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Connect to `host`:`port`; a refused or unreachable peer raises `OSError`."""

    @abc.abstractmethod
    async def start_server(
        self,
        handler: ClientHandler,
        host: str,
        port: int,
        *,
        backlog: int = 128,
        limit: int = STREAM_LIMIT,
    ) -> Server:
        """Listen on `host`:`port` and run `handler` for each connection accepted.

        A restart on the same port must not meet "Address already in use".
        """

    async def open_unix_connection(
        self, path: str, *, limit: int = STREAM_LIMIT
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Connect to the Unix socket at `path`; the default: `UnsupportedAddress`."""
        raise UnsupportedAddress(f"the {self.name} transport {self.no_unix_sockets}")

    async def start_unix_server(
        self,
        handler: ClientHandler,
        path: str,
        *,
        backlog: int = 128,
        limit: int = STREAM_LIMIT,
        mode: int = 0o600,
    ) -> Server:
        """Listen on a Unix socket at `path`, made with `mode`, removed again by ``close``;
        a stale socket file is replaced, a live server's never. The default:
        `UnsupportedAddress`."""
        raise UnsupportedAddress(f"the {self.name} transport {self.no_unix_sockets}")

    def bulk_reader(self, reader: asyncio.StreamReader) -> BulkReader:
        """A `BulkReader` for `reader`; the default reads through the StreamReader."""
        return StreamBulkReader(reader)

    async def sendfile(
        self, writer: asyncio.StreamWriter, file: IO[bytes], offset: int, count: int
    ) -> int:
        """Send `count` bytes of `file` from `offset`; fewer only if the file ends first.

        Like `loop.sendfile`, leaves the file position at ``offset`` plus the bytes
        sent. The default reads in a thread (a slow disk must not stall the loop)
        and writes in chunks, waiting for `drain` each time.
        """
        file.seek(offset)
        sent = 0
        while sent < count:
            chunk = await asyncio.to_thread(file.read, min(SENDFILE_CHUNK, count - sent))
            if not chunk:
                break
            writer.write(chunk)
            sent += len(chunk)
            await writer.drain()
        return sent

    def set_nodelay(self, writer: asyncio.StreamWriter) -> None:  # noqa: B027 - optional
        """Send small writes at once (no Nagle); a no-op where there is no such choice."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
