"""Addresses as apps hold them: ``(host, port)``, where a host ``unix:PATH`` names a Unix socket.

The ``unix:`` form (as gunicorn and uvicorn write it) lets a Unix socket travel
through every app's ``host, port`` parameters unchanged; the seam alone tells
the two kinds apart, and the port of a Unix address is ignored (0).
"""

from __future__ import annotations

import asyncio
import socket
import struct

UNIX_PREFIX = "unix:"


def unix_path(host: str) -> str | None:
    """The socket path of a ``unix:PATH`` host; None for an IP address or a name."""
    return host[len(UNIX_PREFIX) :] if host.startswith(UNIX_PREFIX) else None


def is_unix(host: str) -> bool:
    return host.startswith(UNIX_PREFIX)


def format_address(host: str, port: int) -> str:
    """How an address is shown: ``unix:PATH``, ``HOST:PORT`` or ``[V6]:PORT``."""
    if is_unix(host):
        return host
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def peer_name(writer: asyncio.StreamWriter) -> str:
    """Who is at the other end, for logs: ``HOST:PORT``, or for a Unix socket the peer's
    process and user (``unix:pid=123,uid=1000``, from SO_PEERCRED: Unix peers have no
    address of their own)."""
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return format_address(str(peer[0]), int(peer[1]))
    sock = writer.get_extra_info("socket")
    cred = getattr(socket, "SO_PEERCRED", None)
    if sock is not None and cred is not None and sock.family == socket.AF_UNIX:
        try:
            raw = sock.getsockopt(socket.SOL_SOCKET, cred, struct.calcsize("3i"))
        except OSError:
            return UNIX_PREFIX.rstrip(":")
        pid, uid, _gid = struct.unpack("3i", raw)
        return f"{UNIX_PREFIX}pid={pid},uid={uid}"
    return str(peer) if peer else "?"
