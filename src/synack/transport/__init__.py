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

Two things are added here for every transport at once. A host ``unix:PATH`` is
a Unix socket (`address`), for the transports that have one. ``tls=`` wraps the
whole stream in TLS (`tls`): the connection is made in clear and upgraded with
``loop.start_tls`` before the app sees it, so the fast paths then take their
generic routes (no kernel TLS in Python 3.11: no sendfile under TLS).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket as _socket
from typing import IO

from . import tls as _tls
from .address import UNIX_PREFIX, format_address, is_unix, peer_name, unix_path
from .base import (
    STREAM_LIMIT,
    BulkReader,
    ClientHandler,
    Server,
    StreamBulkReader,
    Transport,
    UnsupportedAddress,
)
from .os import OsTransport
from .registry import Registry
from .synack import SynackTcpTransport
from .tls import ClientTLS, ServerTLS, TLSError, TLSFailure, TLSVerificationError
from .unix import DEFAULT_MODE as UNIX_MODE
from .unix import AddressInUse

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
    host: str,
    port: int,
    *,
    transport: str = DEFAULT_TRANSPORT,
    limit: int = STREAM_LIMIT,
    tls: ClientTLS | None = None,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to `host`:`port`, or to the Unix socket of a ``unix:PATH`` host.

    Raises `OSError` (refused, unreachable...) as the OS does. With `tls`, the
    streams returned are TLS streams whose server passed `tls`'s check; a failed
    handshake or check is a `TLSError` (`TLSVerificationError`), one line.
    """
    chosen = get(transport)
    path = unix_path(host)
    if path is None:
        reader, writer = await chosen.open_connection(host, port, limit=limit)
    else:
        reader, writer = await chosen.open_unix_connection(path, limit=limit)
    if tls is None:
        return reader, writer
    return await _tls.connect(
        reader,
        writer,
        tls,
        peer=format_address(host, port),
        hostname=None if path is not None else host,
        limit=limit,
    )


async def start_server(
    handler: ClientHandler,
    host: str,
    port: int,
    *,
    transport: str = DEFAULT_TRANSPORT,
    backlog: int = 128,
    limit: int = STREAM_LIMIT,
    tls: ServerTLS | None = None,
    on_tls_failure: TLSFailure | None = None,
    unix_mode: int = UNIX_MODE,
) -> Server:
    """Listen on `host`:`port`, or on a Unix socket for a ``unix:PATH`` host.

    A restart never meets "Address already in use": a TCP listener reuses the
    address, and a Unix socket file that nobody answers on any more is replaced
    (one a live server answers on is an `AddressInUse`). A Unix socket file is
    made with `unix_mode` and removed by ``close``.

    With `tls`, `handler` sees only connections whose TLS handshake succeeded;
    the others are closed and reported to `on_tls_failure` as (peer, reason).
    """
    chosen = get(transport)
    if tls is not None:
        handler = _tls.serving(handler, tls, limit=limit, on_failure=on_tls_failure)
    path = unix_path(host)
    if path is None:
        return await chosen.start_server(handler, host, port, backlog=backlog, limit=limit)
    return await chosen.start_unix_server(
        handler, path, backlog=backlog, limit=limit, mode=unix_mode
    )


def supports_unix(transport: str) -> bool:
    """Whether `transport` can carry ``unix:PATH`` addresses."""
    return type(get(transport)).start_unix_server is not Transport.start_unix_server


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


def set_datagram_buffers(transport: asyncio.BaseTransport, size: int) -> None:
    """Ask for `size`-byte receive and send buffers on a datagram endpoint's socket.

    For UDP apps (the netem relay) whose bursts would overflow the default buffers;
    the kernel caps the size (net.core.rmem_max / wmem_max) and a refusal is ignored.
    """
    sock = transport.get_extra_info("socket")
    if sock is None:
        return
    for option in (_socket.SO_RCVBUF, _socket.SO_SNDBUF):
        with contextlib.suppress(OSError):
            sock.setsockopt(_socket.SOL_SOCKET, option, size)


def set_nodelay(writer: asyncio.StreamWriter, *, transport: str = DEFAULT_TRANSPORT) -> None:
    """Disable Nagle's algorithm where the transport has such a switch."""
    get(transport).set_nodelay(writer)


__all__ = [
    "DEFAULT_TRANSPORT",
    "STREAM_LIMIT",
    "TRANSPORTS",
    "UNIX_MODE",
    "UNIX_PREFIX",
    "AddressInUse",
    "BulkReader",
    "ClientHandler",
    "ClientTLS",
    "OsTransport",
    "Registry",
    "Server",
    "ServerTLS",
    "StreamBulkReader",
    "TLSError",
    "TLSFailure",
    "TLSVerificationError",
    "Transport",
    "UnsupportedAddress",
    "bulk_reader",
    "format_address",
    "get",
    "is_unix",
    "names",
    "open_connection",
    "peer_name",
    "register",
    "sendfile",
    "set_datagram_buffers",
    "set_nodelay",
    "start_server",
    "supports_unix",
    "unix_path",
]
