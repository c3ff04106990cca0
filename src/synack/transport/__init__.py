"""The seam between apps and transports: asyncio streams, chosen by name.

Apps never touch sockets. They ask this module for a `StreamReader` and
`StreamWriter` pair (client side) or a server that hands them such pairs, and
name the transport underneath: ``"os"`` is the operating system's TCP. A later
transport (our own TCP) plugs in here without any app code changing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import IO

TRANSPORTS = ("os",)
DEFAULT_TRANSPORT = "os"

# StreamReader buffer limit: large enough that one read drains a socket's worth.
STREAM_LIMIT = 1 << 20

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


async def sendfile(
    writer: asyncio.StreamWriter, file: IO[bytes], offset: int, count: int
) -> int:
    """Send `count` bytes of `file` from `offset`: zero-copy `os.sendfile` where the
    transport allows, plain reads and writes otherwise."""
    await writer.drain()
    loop = asyncio.get_running_loop()
    return await loop.sendfile(writer.transport, file, offset, count, fallback=True)


def set_nodelay(writer: asyncio.StreamWriter) -> None:
    """Disable Nagle's algorithm where the transport has a socket to set it on."""
    import socket

    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


__all__ = [
    "DEFAULT_TRANSPORT",
    "TRANSPORTS",
    "Server",
    "open_connection",
    "sendfile",
    "set_nodelay",
    "start_server",
]
