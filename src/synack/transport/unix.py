"""The socket file of a Unix-socket server: made with safe permissions, cleared when stale,
removed at shutdown, and never taken from a live server.

A Unix socket's file outlives its server when the server is killed (SIGKILL, a
crash): the next ``bind`` then fails with "Address already in use" although
nobody listens. So before binding, a socket already at the path is probed with
a connect. Refused means nobody listens (a stale file): it is removed. Answered
(or a full backlog) means a live server: we refuse to start and leave it alone.
Anything that is not a socket is never removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import stat

from synack.errors import UserError, os_reason

from .address import UNIX_PREFIX
from .base import Server

# Owner only: a Unix socket's mode is its access control (connecting needs write
# permission), and a chat or file server should not be open to every local user
# unless its operator says so (``mode=0o660`` shares it with the file's group).
DEFAULT_MODE = 0o600


class AddressInUse(UserError):
    """Another server answers on the socket path."""


def check_mode(mode: int) -> int:
    """A socket mode must let its owner read and write, and grant nothing but read/write."""
    if mode & ~0o666 or mode & 0o600 != 0o600:
        raise ValueError(f"socket mode {mode:o}: must give the owner rw and no execute bits")
    return mode


def clear_stale(path: str) -> None:
    """Remove a socket file at `path` that no server answers on; refuse if one does, or if
    what is there is not a socket."""
    shown = UNIX_PREFIX + path
    try:
        before = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(before.st_mode):
        raise UserError(f"cannot listen on {shown}: something other than a socket is there")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.setblocking(False)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        pass  # nobody listens: stale
    except FileNotFoundError:
        return  # gone meanwhile
    except BlockingIOError:
        raise AddressInUse(f"address in use: another server answers at {shown}") from None
    except OSError as exc:
        raise UserError(
            f"cannot listen on {shown}: cannot tell whether a server answers there "
            f"({os_reason(exc)})"
        ) from None
    else:
        raise AddressInUse(f"address in use: another server answers at {shown}")
    finally:
        probe.close()
    # Remove only the file we probed, should another starter have replaced it meanwhile.
    with contextlib.suppress(FileNotFoundError):
        now = os.lstat(path)
        if (now.st_dev, now.st_ino) == (before.st_dev, before.st_ino):
            os.unlink(path)


def bind(path: str, mode: int = DEFAULT_MODE) -> tuple[socket.socket, tuple[int, int]]:
    """A stream socket bound at `path` with `mode`, and the file's (device, inode).

    The mode is set by the umask around ``bind``, so the file never exists with
    a wider one (a ``chmod`` afterwards would leave a window). The umask is
    process-wide: a file another thread creates in that instant gets a narrower
    mode, never a wider one.
    """
    check_mode(mode)
    clear_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        old = os.umask(0o777 & ~mode)
        try:
            sock.bind(path)
        finally:
            os.umask(old)
        st = os.lstat(path)
    except BaseException:
        sock.close()
        raise
    return sock, (st.st_dev, st.st_ino)


def remove(path: str, identity: tuple[int, int]) -> None:
    """Remove the socket file at `path` if it is still ours (not one a later server made)."""
    with contextlib.suppress(FileNotFoundError):
        st = os.lstat(path)
        if (st.st_dev, st.st_ino) == identity:
            os.unlink(path)


class UnixServer(Server):
    """An `asyncio.Server` on a Unix socket; closing it removes its socket file."""

    def __init__(self, inner: asyncio.Server, path: str, identity: tuple[int, int]) -> None:
        self._inner = inner
        self._path = path
        self._identity = identity

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [(UNIX_PREFIX + self._path, 0)]

    def close(self) -> None:
        remove(self._path, self._identity)
        self._inner.close()

    async def wait_closed(self) -> None:
        await self._inner.wait_closed()
