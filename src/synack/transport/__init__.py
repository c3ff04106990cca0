"""The seam between apps and transports: asyncio streams, chosen by name.

Apps never touch sockets. They ask this module for a `StreamReader` and
`StreamWriter` pair (client side) or a `Server` that hands them such pairs,
naming the transport underneath (``transport="os"``: the operating system's
TCP). Each transport implements `Transport` and is found by name in a registry,
so a new one (our own TCP) plugs in here without any app code changing.

The functions below are what apps call; each looks the transport up by name
and hands the call on. The fast paths (`bulk_reader`, `sendfile`,
`set_nodelay`) are safe on any stream: a transport uses its shortcut only on
streams it recognises.
"""

from __future__ import annotations

import asyncio
from typing import IO

from .base import (
    STREAM_LIMIT,
    BulkReader,
    ClientHandler,
    Server,
    StreamBulkReader,
    Transport,
)
from .os import OsTransport
from .registry import Registry
from .synack import SynackTcpTransport

_registry = Registry()
register = _registry.register
get = _registry.get
names = _registry.names

register(OsTransport())
register(SynackTcpTransport())

DEFAULT_TRANSPORT = "os"
# The built-in transports' names (the CLI offers `names()`, which also sees later ones).
TRANSPORTS = names()


async def open_connection(
    host: str, port: int, *, transport: str = DEFAULT_TRANSPORT, limit: int = STREAM_LIMIT
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to `host`:`port`; raises `OSError` (refused, unreachable...) as the OS does."""
    return await get(transport).open_connection(host, port, limit=limit)


async def start_server(
    handler: ClientHandler,
    host: str,
    port: int,
    *,
    transport: str = DEFAULT_TRANSPORT,
    backlog: int = 128,
    limit: int = STREAM_LIMIT,
) -> Server:
    """Listen on `host`:`port`; a restart never meets "Address already in use"."""
    return await get(transport).start_server(handler, host, port, backlog=backlog, limit=limit)


def bulk_reader(reader: asyncio.StreamReader, *, transport: str = DEFAULT_TRANSPORT) -> BulkReader:
    """A `BulkReader` that reads a body from `reader` into the caller's buffers."""
    return get(transport).bulk_reader(reader)


async def sendfile(
    writer: asyncio.StreamWriter,
    file: IO[bytes],
    offset: int,
    count: int,
    *,
    transport: str = DEFAULT_TRANSPORT,
) -> int:
    """Send `count` bytes of `file` from `offset` (fewer only if the file ends first):
    zero-copy where the transport can, plain reads and writes otherwise."""
    return await get(transport).sendfile(writer, file, offset, count)


def set_nodelay(writer: asyncio.StreamWriter, *, transport: str = DEFAULT_TRANSPORT) -> None:
    """Disable Nagle's algorithm where the transport has such a switch."""
    get(transport).set_nodelay(writer)


__all__ = [
    "DEFAULT_TRANSPORT",
    "STREAM_LIMIT",
    "TRANSPORTS",
    "BulkReader",
    "ClientHandler",
    "OsTransport",
    "Registry",
    "Server",
    "StreamBulkReader",
    "Transport",
    "bulk_reader",
    "get",
    "names",
    "open_connection",
    "register",
    "sendfile",
    "set_nodelay",
    "start_server",
]
