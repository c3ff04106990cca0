"""The standard `socket` module with synack's own TCP underneath: change one import.

    import synack.socket as socket

    server = socket.socket()          # AF_INET, SOCK_STREAM: our TCP, carried in UDP
    server.bind(("127.0.0.1", 8080))
    server.listen(5)
    conn, addr = server.accept()

Every public name of the standard module is here (constants, exception classes,
``getaddrinfo``, ``inet_aton``...). `socket`, `SocketType`, `create_connection` and
`create_server` are ours for IPv4 stream sockets; everything else is the operating
system's: ``socket(AF_INET, SOCK_DGRAM)``, AF_UNIX sockets, ``socketpair()`` and
``fromfd()`` give standard sockets. An IPv6 stream socket is refused with
EAFNOSUPPORT rather than quietly given the kernel's TCP: our TCP carries IPv4 only,
and a program that asked for ours should not find it is not using it.

Calls return and raise what the kernel's socket would (``tests/drivers/
test_socket_compat.py`` runs the same scenarios against both and compares);
docs/SOCKET.md lists where they differ and why (fork, TIME-WAIT, UDP ports,
listening on 0.0.0.0). The threading model is in `synack.drivers.blocking`.
"""

from __future__ import annotations

import errno as _errno
import io as _io
import math as _math
import operator as _operator
import socket as _std
import struct as _struct
import threading as _threading
import warnings as _warnings
from dataclasses import replace as _replace
from socket import *  # noqa: F403  (re-exported: every public name of the standard module)
from socket import AddressInfo, MsgFlag, SocketIO
from typing import Any

from synack.drivers import blocking as _blocking
from synack.drivers.udp import CarrierConfig
from synack.tcp import Config as _Config
from synack.tcp import State as _State

__all__ = [
    *_std.__all__,
    "AddressInfo",
    "MsgFlag",
    "SocketIO",
]

_AF_INET = _std.AF_INET
_SOCK_STREAM = _std.SOCK_STREAM
_TYPE_FLAGS = getattr(_std, "SOCK_NONBLOCK", 0) | getattr(_std, "SOCK_CLOEXEC", 0)
_SOL_SOCKET = _std.SOL_SOCKET
_IPPROTO_TCP = _std.IPPROTO_TCP
_DEFAULTS = _Config()
# What the kernel's getsockopt reports for SO_SNDBUF / SO_RCVBUF: twice what was asked
# (it counts its bookkeeping), within these bounds (SOCK_MIN_SNDBUF / SOCK_MIN_RCVBUF).
_MIN_SNDBUF = 4608
_MIN_RCVBUF = 2304
# TCP_MAXSEG before a connection has its MSS: Linux's TCP_MSS_DEFAULT (RFC 1122).
_MSS_DEFAULT = 536
_INT = _struct.Struct("i")
_LINGER = _struct.Struct("ii")
_UNSET = object()
# Flags recv understands; MSG_NOSIGNAL and MSG_CMSG_CLOEXEC change nothing here.
_MSG_PEEK = _std.MSG_PEEK
_MSG_WAITALL = _std.MSG_WAITALL
_MSG_DONTWAIT = _std.MSG_DONTWAIT
_MSG_HARMLESS = getattr(_std, "MSG_NOSIGNAL", 0) | getattr(_std, "MSG_CMSG_CLOEXEC", 0)
_SEND_FLAGS = _MSG_DONTWAIT | _MSG_HARMLESS | getattr(_std, "MSG_MORE", 0)
_RECV_FLAGS = _MSG_PEEK | _MSG_WAITALL | _MSG_DONTWAIT | _MSG_HARMLESS

carrier = CarrierConfig()
"""How new sockets carry their segments (MTU, GSO/GRO); set it before opening them."""


def _sysctl(path: str, default: int) -> int:
    try:
        with open(path) as f:
            return int(f.read())
    except (OSError, ValueError):
        return default


def _error(code: int) -> OSError:
    return _blocking.error(code)


def _ipv4(host: Any) -> str:
    """A dotted-quad address for `host`, resolved as the kernel's AF_INET socket would."""
    if isinstance(host, bytes | bytearray):
        host = bytes(host).decode("idna")
    if not isinstance(host, str):
        raise TypeError(f"str, bytes or bytearray expected, not {type(host).__name__}")
    if host == "":
        return "0.0.0.0"
    if host == "<broadcast>":
        return "255.255.255.255"
    try:
        return _std.inet_ntop(_AF_INET, _std.inet_pton(_AF_INET, host))
    except OSError:
        pass
    infos = _std.getaddrinfo(host, None, _AF_INET, _SOCK_STREAM)
    return str(infos[0][4][0])


def _address(address: Any, op: str) -> tuple[str, int]:
    if not isinstance(address, tuple):
        raise TypeError(f"{op}(): AF_INET address must be tuple, not {type(address).__name__}")
    if len(address) != 2:
        raise TypeError("AF_INET address must be a pair (host, port)")
    host, port = address
    port = _operator.index(port)
    if not 0 <= port <= 0xFFFF:
        raise OverflowError(f"{op}(): port must be 0-65535.")
    return _ipv4(host), port


def _c_int(value: Any) -> int:
    """An argument the standard module takes as a C int: TypeError or OverflowError
    as it raises them."""
    number = _operator.index(value)
    if not -(2**31) <= number < 2**31:
        raise OverflowError(
            "signed integer is greater than maximum"
            if number > 0
            else "signed integer is less than minimum"
        )
    return number


def _timeout_value(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, float):
        if _math.isnan(value):
            raise ValueError("Invalid value NaN (not a number)")
        seconds = value
    else:
        seconds = float(_operator.index(value))
    if seconds < 0:
        raise ValueError("Timeout value out of range")
    if seconds > 2**62:
        raise OverflowError("timestamp out of range for platform time_t")
    return seconds


def _bytes_view(data: Any) -> memoryview:
    try:
        view = memoryview(data)
    except TypeError:
        raise TypeError(f"a bytes-like object is required, not '{type(data).__name__}'") from None
    if not view.c_contiguous:
        raise BufferError("memoryview: underlying buffer is not C-contiguous")
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


def _writable_view(buffer: Any, op: str) -> memoryview:
    """A byte view of `buffer` to receive into. What the standard module refuses
    (read-only, not contiguous) is refused before anything is taken from the stream."""
    try:
        view = memoryview(buffer)
    except TypeError:
        view = None
    if view is None or view.readonly or not view.c_contiguous:
        raise TypeError(
            f"{op}() argument 1 must be read-write bytes-like object, not {type(buffer).__name__}"
        )
    return view.cast("B")


def _unwildcard(ip: str) -> None:
    if ip == "0.0.0.0":
        raise OSError(
            _errno.EADDRNOTAVAIL,
            "synack.socket listens on one address; bind to one (e.g. 127.0.0.1), not 0.0.0.0",
        )


class _SocketMeta(type):
    """``isinstance(x, synack.socket.socket)`` holds for the operating system's sockets
    this module hands out too (UDP, AF_UNIX), as it would with the standard module."""

    def __instancecheck__(cls, instance: Any) -> bool:
        if type.__instancecheck__(cls, instance):
            return True
        return cls is _Socket and isinstance(instance, _std.socket)


class _Socket(metaclass=_SocketMeta):
    """An IPv4 stream socket on synack's TCP; any other kind is the operating system's.

    Published as ``synack.socket.socket``; type checkers see the standard class's
    interface there, which this one follows.
    """

    def __new__(
        cls, family: int = -1, type: int = -1, proto: int = -1, fileno: int | None = None
    ) -> Any:
        fam = _AF_INET if family == -1 else family
        kind = _SOCK_STREAM if type == -1 else type
        if fileno is None and fam == _AF_INET and kind & ~_TYPE_FLAGS == _SOCK_STREAM:
            return super().__new__(cls)
        if fileno is None and fam == _std.AF_INET6 and kind & ~_TYPE_FLAGS == _SOCK_STREAM:
            raise OSError(
                _errno.EAFNOSUPPORT,
                "synack's TCP carries IPv4 only; use the standard socket module for IPv6",
            )
        return _std.socket(family, type, proto, fileno)

    def __init__(
        self, family: int = -1, type: int = -1, proto: int = -1, fileno: int | None = None
    ) -> None:
        kind = _SOCK_STREAM if type == -1 else type
        if proto not in (-1, 0, _IPPROTO_TCP):
            raise _error(_errno.EPROTONOSUPPORT)
        self._setup(0 if proto == -1 else proto, bool(kind & getattr(_std, "SOCK_NONBLOCK", 0)))

    def _setup(self, proto: int, nonblocking: bool = False) -> None:
        self._proto = proto
        self._timeout: float | None = 0.0 if nonblocking else _std.getdefaulttimeout()
        self._lock = _threading.Lock()  # bind/connect/listen/close/fileno transitions
        self._engine: _blocking.BlockingEngine | None = None
        self._stream: _blocking.Stream | None = None
        self._acceptor: _blocking.Acceptor | None = None
        self._readiness: _blocking.Readiness | None = None
        # Linux's sock->state SS_CONNECTING: a connect made without blocking (a timeout
        # or non-blocking mode) is reported by the next connect() call.
        self._pending_connect = False
        self._closed = False  # close() was called
        self._gone = False  # ...and really closed (no makefile() object left)
        self._io_refs = 0
        self._laddr: tuple[str, int] | None = None
        self._raddr: tuple[str, int] | None = None
        # Options: Config fields the user changed, and the socket-level ones.
        self._changes: dict[str, Any] = {}
        self._reuseaddr = 0
        self._linger = (0, 0)
        self._sndbuf: int | None = None
        self._rcvbuf: int | None = None

    @classmethod
    def _accepted(cls, parent: _Socket, stream: _blocking.Stream) -> _Socket:
        sock: _Socket = object.__new__(_Socket)
        sock._setup(parent._proto)
        sock._engine = stream.engine
        sock._stream = stream
        sock._changes = dict(parent._changes)
        sock._sndbuf, sock._rcvbuf = parent._sndbuf, parent._rcvbuf
        sock._reuseaddr = parent._reuseaddr
        sock._laddr = parent._laddr
        conn = stream.conn
        sock._raddr = (_std.inet_ntoa(conn.remote_ip), conn.remote_port)
        with stream.engine.lock:
            stream.engine.claims += 1
        return sock

    # -- identity --------------------------------------------------------------------

    @property
    def family(self) -> _std.AddressFamily:
        return _std.AddressFamily.AF_INET

    @property
    def type(self) -> _std.SocketKind:
        return _std.SocketKind.SOCK_STREAM

    @property
    def proto(self) -> int:
        return self._proto

    @property
    def timeout(self) -> float | None:
        return self._timeout

    def __repr__(self) -> str:
        closed = " [closed]" if self._closed else ""
        fd = self._readiness.fileno() if self._readiness is not None and not self._gone else -1
        text = (
            f"<{type(self).__module__}.{type(self).__qualname__}{closed} fd={fd}, "
            f"family={int(_AF_INET)}, type={int(_SOCK_STREAM)}, proto={self._proto}"
        )
        if not self._gone:
            text += f", laddr={self._laddr or ('0.0.0.0', 0)}"
            if self._raddr is not None:
                text += f", raddr={self._raddr}"
        return text + ">"

    def __getstate__(self) -> Any:
        raise TypeError(f"cannot pickle {type(self).__name__!r} object")

    def __enter__(self) -> _Socket:
        return self

    def __exit__(self, *args: object) -> None:
        if not self._closed:
            self.close()

    def __del__(self) -> None:
        if getattr(self, "_gone", True):
            return
        _warnings.warn(f"unclosed {self!r}", ResourceWarning, source=self, stacklevel=1)
        _blocking.defer(self._real_close)

    # -- checks ----------------------------------------------------------------------

    def _check(self) -> None:
        if self._gone:
            raise _error(_errno.EBADF)

    def _connected(self) -> _blocking.Stream:
        """The stream of a connected (or once connected) socket, else ENOTCONN."""
        self._check()
        stream = self._stream
        if stream is None:
            raise _error(_errno.ENOTCONN)
        return stream

    def _config(self, engine: _blocking.BlockingEngine) -> _Config:
        base = engine.host.config
        changes = dict(self._changes)
        floor = 2 * base.mss
        if self._sndbuf is not None:
            changes["send_buffer"] = max(self._sndbuf, floor)
        if self._rcvbuf is not None:
            changes["receive_buffer"] = max(self._rcvbuf, floor)
        return _replace(base, **changes) if changes else base

    # -- opening -----------------------------------------------------------------------

    def bind(self, address: tuple[str, int]) -> None:
        self._check()
        ip, port = _address(address, "bind")
        with self._lock:
            self._check()
            if self._engine is not None or self._stream is not None:
                raise _error(_errno.EINVAL)
            _unwildcard(ip)
            engine = _blocking.bind_engine(ip, port, reuse=bool(self._reuseaddr), carrier=carrier)
            self._engine = engine
            self._laddr = (engine.address, engine.port)

    def listen(self, *backlog: int) -> None:
        self._check()
        if len(backlog) > 1:
            raise TypeError(f"listen expected at most 1 argument, got {len(backlog)}")
        size = max(0, _c_int(backlog[0])) if backlog else min(_std.SOMAXCONN, 128)
        with self._lock:
            self._check()
            if self._acceptor is not None:
                if self._acceptor.stopped:
                    raise OSError(
                        _errno.EOPNOTSUPP,
                        "a synack listener stopped by shutdown() does not listen again; "
                        "open a new socket",
                    )
                self._acceptor.set_backlog(size)
                return
            if self._stream is not None:
                raise _error(_errno.EINVAL)
            engine = self._engine
            if engine is None:
                raise OSError(
                    _errno.EADDRNOTAVAIL,
                    "synack.socket listens on one address; bind((address, port)) before listen()",
                )
            self._acceptor = engine.listen(
                size, self._config(engine), self._readiness, reuse=bool(self._reuseaddr)
            )

    def accept(self) -> tuple[_Socket, tuple[str, int]]:
        self._check()
        acceptor = self._acceptor
        if acceptor is None:
            raise _error(_errno.EINVAL)
        stream = acceptor.accept(self._timeout)
        sock = _Socket._accepted(self, stream)
        if _std.getdefaulttimeout() is None and self._timeout:
            sock._timeout = None
        assert sock._raddr is not None
        return sock, sock._raddr

    def _connect(self, address: Any) -> None:
        self._check()
        ip, port = _address(address, "connect")
        with self._lock:
            self._check()
            if self._acceptor is not None:
                raise _error(_errno.EISCONN)
            stream = self._stream
            if stream is not None:
                if not self._pending_connect:
                    raise _error(_errno.EISCONN)
                code = stream.attempt_outcome()
                if code == _errno.EALREADY:
                    raise _error(code)
                self._pending_connect = False
                if code:
                    self._drop_stream(stream)  # a failed attempt, reported once
                    raise _error(code)
                return
            engine = self._engine
            if engine is None or engine.closed:
                if self._laddr is not None:
                    engine = _blocking.bind_engine(*self._laddr, reuse=True, carrier=carrier)
                else:
                    engine = _blocking.client_engine((ip, port), carrier)
                self._engine = engine
                self._laddr = (engine.address, engine.port)
            stream = engine.connect((ip, port), self._config(engine), self._readiness)
            self._stream = stream
            self._raddr = (ip, port)
            self._pending_connect = self._timeout is not None
        try:
            stream.wait_connected(self._timeout)
        except OSError as exc:
            # A blocking connect that failed leaves the socket unconnected; one with a
            # timeout is a non-blocking connect underneath (as in the standard module),
            # which Linux leaves "connecting" until the next connect() says ECONNABORTED.
            if self._timeout is None and not isinstance(exc, TimeoutError):
                self._forget_failure(stream)
            raise

    def _forget_failure(self, stream: _blocking.Stream) -> None:
        with self._lock:
            if self._stream is stream:
                self._drop_stream(stream)

    def _drop_stream(self, stream: _blocking.Stream) -> None:
        """A connect that failed leaves the socket unconnected, as the kernel's does."""
        self._stream = None
        self._raddr = None
        readiness = stream.release_readiness()  # the socket keeps its descriptor
        stream.close()
        if readiness is not None and not self._gone:
            readiness.set(True, True)

    def connect(self, address: tuple[str, int]) -> None:
        self._connect(address)

    def connect_ex(self, address: tuple[str, int]) -> int:
        if self._gone:
            return _errno.EBADF
        try:
            self._connect(address)
        except TimeoutError as exc:
            return exc.errno or _errno.EAGAIN  # the standard module's EWOULDBLOCK
        except (_std.gaierror, _std.herror):
            raise
        except OSError as exc:
            if exc.errno is None:
                raise
            return exc.errno
        return 0

    # -- receiving ---------------------------------------------------------------------

    def _recv_stream(self, flags: int) -> _blocking.Stream:
        self._check()
        if flags & ~_RECV_FLAGS:
            raise _error(_errno.EOPNOTSUPP)
        return self._connected()

    def _call_timeout(self, flags: int) -> float | None:
        """MSG_DONTWAIT makes a blocking socket's call not wait; with a timeout set,
        the standard module polls for up to the timeout before it, so the call waits
        as if the flag were not there."""
        if flags & _MSG_DONTWAIT and self._timeout is None:
            return 0.0
        return self._timeout

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        bufsize = _operator.index(bufsize)
        if bufsize < 0:
            raise ValueError("negative buffersize in recv")
        stream = self._recv_stream(flags)
        if bufsize == 0:
            return b""
        timeout = self._call_timeout(flags)
        if flags & _MSG_PEEK:
            return stream.recv(bufsize, timeout, peek=True)
        if flags & _MSG_WAITALL and timeout is None:
            return self._recv_whole(stream, bufsize)
        return stream.recv(bufsize, timeout)

    @staticmethod
    def _recv_whole(stream: _blocking.Stream, bufsize: int) -> bytes:
        """MSG_WAITALL on a blocking socket: `bufsize` bytes, fewer only at the end of
        the stream or an error (which the next call reports). With a timeout, or
        without blocking, the standard module polls and then receives what is there,
        so MSG_WAITALL waits only here."""
        buffer = bytearray(bufsize)
        n = stream.recv_into(memoryview(buffer), None, whole=True)
        return bytes(buffer) if n == bufsize else bytes(buffer[:n])

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        return self._recv_into(_writable_view(buffer, "recv_into"), nbytes, flags)

    def _recv_into(self, view: memoryview, nbytes: int, flags: int) -> int:
        nbytes = _operator.index(nbytes)
        if nbytes < 0:
            raise ValueError("negative buffersize in recv_into")
        if nbytes > len(view):
            raise ValueError("buffer too small for requested bytes")
        stream = self._recv_stream(flags)
        if nbytes:
            view = view[:nbytes]
        if not len(view):
            return 0
        timeout = self._call_timeout(flags)
        if flags & _MSG_PEEK:
            data = stream.recv(len(view), timeout, peek=True)
            view[: len(data)] = data
            return len(data)
        whole = bool(flags & _MSG_WAITALL) and timeout is None  # as in _recv_whole
        return stream.recv_into(view, timeout, whole=whole)

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, None]:
        return self.recv(bufsize, flags), None

    def recvfrom_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> tuple[int, None]:
        return self.recv_into(buffer, nbytes, flags), None

    def recvmsg(
        self, bufsize: int, ancbufsize: int = 0, flags: int = 0
    ) -> tuple[bytes, list[Any], int, None]:
        return self.recv(bufsize, flags), [], 0, None

    def recvmsg_into(
        self, buffers: Any, ancbufsize: int = 0, flags: int = 0
    ) -> tuple[int, list[Any], int, None]:
        """Scatter one receive over `buffers` in order, as the kernel's readv does."""
        try:
            views = [_writable_view(b, "recvmsg_into") for b in buffers]
        except TypeError:
            raise TypeError(
                "recvmsg_into() argument 1 must be an iterable of single-segment read-write buffers"
            ) from None
        whole = bytearray(sum(len(v) for v in views))
        n = self._recv_into(memoryview(whole), 0, flags)
        start = 0
        for view in views:
            if start >= n:
                break
            part = min(len(view), n - start)
            view[:part] = whole[start : start + part]
            start += part
        return n, [], 0, None

    # -- sending -----------------------------------------------------------------------

    def _send_stream(self, flags: int) -> _blocking.Stream:
        self._check()
        if flags & ~_SEND_FLAGS:
            raise _error(_errno.EOPNOTSUPP)
        stream = self._stream
        if stream is None:
            raise _error(_errno.EPIPE)  # Linux: sending on an unconnected TCP socket
        return stream

    def send(self, data: Any, flags: int = 0) -> int:
        view = _bytes_view(data)
        stream = self._send_stream(flags)
        timeout = self._call_timeout(flags)
        return stream.send(view, timeout, whole=timeout is None)

    def sendall(self, data: Any, flags: int = 0) -> None:
        view = _bytes_view(data)
        stream = self._send_stream(flags)
        stream.send(view, self._call_timeout(flags), whole=True)

    def sendto(self, data: Any, flags_or_address: Any, address: Any = _UNSET) -> int:
        flags = 0 if address is _UNSET else flags_or_address
        return self.send(data, flags)  # connected TCP: Linux ignores the address

    def sendmsg(self, buffers: Any, ancdata: Any = (), flags: int = 0, address: Any = None) -> int:
        if ancdata:
            raise _error(_errno.EOPNOTSUPP)
        return self.send(b"".join(bytes(_bytes_view(b)) for b in buffers), flags)

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        """Send a file's bytes (read and sent in blocks: there is no kernel TCP for
        ``os.sendfile``); the file's position ends after the last byte sent."""
        if "b" not in getattr(file, "mode", "b"):
            raise ValueError("file should be opened in binary mode")
        if count is not None:
            if not isinstance(count, int):
                raise TypeError(f"count must be a positive integer (got {count!r})")
            if count <= 0:
                raise ValueError(f"count must be a positive integer (got {count!r})")
        self._check()
        if self._timeout == 0:
            raise ValueError("non-blocking sockets are not supported")
        if offset:
            file.seek(offset)
        block = 256 * 1024 if count is None else min(count, 256 * 1024)
        total = 0
        try:
            while count is None or total < count:
                want = block if count is None else min(block, count - total)
                data = file.read(want)
                if not data:
                    break
                self.sendall(data)
                total += len(data)
            return total
        finally:
            if total > 0 and hasattr(file, "seek"):
                file.seek(offset + total)

    # -- closing -----------------------------------------------------------------------

    def shutdown(self, how: int) -> None:
        how = _c_int(how)
        self._check()
        if how not in (_std.SHUT_RD, _std.SHUT_WR, _std.SHUT_RDWR):
            raise _error(_errno.EINVAL)
        read = how != _std.SHUT_WR
        write = how != _std.SHUT_RD
        acceptor = self._acceptor
        if acceptor is not None:
            if read:
                acceptor.stop()
            return
        self._connected().shutdown(read, write)

    def close(self) -> None:
        self._closed = True
        if self._io_refs <= 0:
            self._real_close()

    def _decref_socketios(self) -> None:
        if self._io_refs > 0:
            self._io_refs -= 1
        if self._closed:
            self.close()

    def _real_close(self) -> None:
        with self._lock:
            if self._gone:
                return
            self._gone = True
            self._closed = True
            stream, acceptor, engine = self._stream, self._acceptor, self._engine
            readiness = self._readiness
            self._stream = self._acceptor = None
            self._engine = None
            self._readiness = None
        if stream is not None:
            stream.close(abort=self._linger == (1, 0))  # SO_LINGER (on, 0 s): RST
        if acceptor is not None:
            acceptor.close()
        if readiness is not None:
            readiness.close()
        if engine is not None:
            engine.release_claim()

    def detach(self) -> int:
        raise OSError(
            _errno.EOPNOTSUPP,
            "a synack socket has no operating-system descriptor to detach",
        )

    def dup(self) -> _Socket:
        raise OSError(
            _errno.EOPNOTSUPP,
            "a synack socket cannot be duplicated: its connection lives in this object",
        )

    # -- addresses ---------------------------------------------------------------------

    def getsockname(self) -> tuple[str, int]:
        self._check()
        return self._laddr or ("0.0.0.0", 0)

    def getpeername(self) -> tuple[str, int]:
        stream = self._connected()
        state = stream.conn.state
        if self._raddr is None or not stream.connected or state in _GONE:
            raise _error(_errno.ENOTCONN)
        return self._raddr

    # -- readiness and blocking ----------------------------------------------------------

    def fileno(self) -> int:
        """A descriptor ``select``/``poll``/``selectors`` see as this socket (-1 if closed)."""
        if self._gone:
            return -1
        with self._lock:
            if self._gone:
                return -1
            readiness = self._readiness
            if readiness is None:
                owner = self._stream or self._acceptor
                readiness = _blocking.Readiness(owner is None, True)
                if owner is not None:
                    try:
                        owner.attach(readiness)
                    except BaseException:
                        readiness.close()
                        raise
                self._readiness = readiness
            return readiness.fileno()

    def settimeout(self, value: float | None) -> None:
        timeout = _timeout_value(value)
        self._check()
        self._timeout = timeout

    def gettimeout(self) -> float | None:
        return self._timeout

    def setblocking(self, flag: bool) -> None:
        self._check()
        self._timeout = None if flag else 0.0

    def getblocking(self) -> bool:
        return self._timeout != 0.0

    def get_inheritable(self) -> bool:
        return False

    def set_inheritable(self, inheritable: bool) -> None:
        if inheritable:
            raise OSError(
                _errno.EOPNOTSUPP,
                "a synack socket lives in this process; a child cannot inherit it",
            )

    # -- options -----------------------------------------------------------------------

    def setsockopt(self, level: int, optname: int, value: Any, optlen: int | None = None) -> None:
        self._check()
        if value is None:
            value = bytes(optlen or 0)
        key = (level, optname)
        if key == (_SOL_SOCKET, _std.SO_LINGER):
            if isinstance(value, int) or len(value) < _LINGER.size:
                raise _error(_errno.EINVAL)
            onoff, seconds = _LINGER.unpack_from(value)
            self._linger = (1 if onoff else 0, seconds)
            return
        if isinstance(value, int):
            number = value
        else:
            if len(value) < _INT.size:
                raise _error(_errno.EINVAL)
            number = _INT.unpack_from(value)[0]
        if key == (_SOL_SOCKET, _std.SO_REUSEADDR):
            self._reuseaddr = 1 if number else 0
        elif key == (_SOL_SOCKET, getattr(_std, "SO_REUSEPORT", -1)):
            if number:
                raise OSError(
                    _errno.ENOPROTOOPT,
                    "SO_REUSEPORT would let two UDP sockets share a port: one would "
                    "receive the other's segments; synack.socket does not offer it",
                )
        elif key == (_SOL_SOCKET, _std.SO_SNDBUF):
            self._sndbuf = self._buffer(number, "wmem_max", "send_buffer")
        elif key == (_SOL_SOCKET, _std.SO_RCVBUF):
            self._rcvbuf = self._buffer(number, "rmem_max", "receive_buffer")
        elif key == (_SOL_SOCKET, _std.SO_KEEPALIVE):
            self._change(keepalive=bool(number))
        elif key == (_IPPROTO_TCP, _std.TCP_NODELAY):
            self._change(no_delay=bool(number))
        elif key in _KEEPALIVE_TUNING:
            if number < 1:
                raise _error(_errno.EINVAL)
            field = _KEEPALIVE_TUNING[key]
            self._change(**{field: number if field == "keepalive_count" else float(number)})
        elif key == (_IPPROTO_TCP, getattr(_std, "TCP_USER_TIMEOUT", -1)):
            if number < 0:
                raise _error(_errno.EINVAL)
            self._change(user_timeout=number / 1000.0 if number else None)
        else:
            raise _error(_errno.ENOPROTOOPT)

    def _buffer(self, requested: int, sysctl: str, field: str) -> int:
        """The payload room for SO_SNDBUF/SO_RCVBUF: what was asked (capped as Linux
        caps it); getsockopt reports twice that, as Linux does."""
        cap = _sysctl(f"/proc/sys/net/core/{sysctl}", 212992)
        room = max(min(max(requested, 0), cap), 1)
        # An open connection keeps the buffers (and window scale) of its handshake.
        owner = self._acceptor
        if owner is not None:
            engine = owner.engine
            owner.set_config(**{field: max(room, 2 * engine.host.config.mss)})
        return room

    def _change(self, **changes: Any) -> None:
        self._changes.update(changes)
        owner = self._stream or self._acceptor
        if owner is not None:
            owner.set_config(**changes)

    def _option(self, field: str) -> Any:
        if field in self._changes:
            return self._changes[field]
        return getattr(_DEFAULTS, field)

    def getsockopt(self, level: int, optname: int, buflen: int | None = None) -> int | bytes:
        self._check()
        if buflen is not None and buflen != 0 and not 0 < buflen <= 1024:
            raise OSError("getsockopt buflen out of range")  # the standard module's check
        key = (level, optname)
        if key == (_SOL_SOCKET, _std.SO_LINGER):
            if not buflen:
                return self._linger[0]
            return _LINGER.pack(*self._linger)[:buflen]
        value = self._int_option(key)
        if not buflen:  # 0, the standard default, also asks for an int
            return value
        return _INT.pack(value)[:buflen].ljust(min(buflen, _INT.size), b"\0")

    def _int_option(self, key: tuple[int, int]) -> int:
        if key == (_SOL_SOCKET, _std.SO_REUSEADDR):
            return self._reuseaddr
        if key == (_SOL_SOCKET, getattr(_std, "SO_REUSEPORT", -1)):
            return 0
        if key == (_SOL_SOCKET, _std.SO_KEEPALIVE):
            return int(bool(self._option("keepalive")))
        if key == (_SOL_SOCKET, _std.SO_SNDBUF):
            room = self._sndbuf if self._sndbuf is not None else _DEFAULTS.send_buffer
            return max(room * 2, _MIN_SNDBUF)
        if key == (_SOL_SOCKET, _std.SO_RCVBUF):
            room = self._rcvbuf if self._rcvbuf is not None else _DEFAULTS.receive_buffer
            return max(room * 2, _MIN_RCVBUF)
        if key == (_SOL_SOCKET, _std.SO_ERROR):
            stream = self._stream
            return 0 if stream is None else stream.take_error()
        if key == (_SOL_SOCKET, _std.SO_TYPE):
            return int(_SOCK_STREAM)
        if key == (_SOL_SOCKET, getattr(_std, "SO_DOMAIN", -1)):
            return int(_AF_INET)
        if key == (_SOL_SOCKET, getattr(_std, "SO_PROTOCOL", -1)):
            return _IPPROTO_TCP
        if key == (_SOL_SOCKET, getattr(_std, "SO_ACCEPTCONN", -1)):
            acceptor = self._acceptor
            return 1 if acceptor is not None and not acceptor.stopped else 0
        if key == (_IPPROTO_TCP, _std.TCP_NODELAY):
            return int(bool(self._option("no_delay")))
        if key == (_IPPROTO_TCP, getattr(_std, "TCP_MAXSEG", -1)):
            stream = self._stream
            if stream is not None and stream.connected:
                return int(stream.conn.snd_mss)
            return _MSS_DEFAULT
        if key in _KEEPALIVE_TUNING:
            return int(self._option(_KEEPALIVE_TUNING[key]))
        if key == (_IPPROTO_TCP, getattr(_std, "TCP_USER_TIMEOUT", -1)):
            timeout = self._option("user_timeout")
            return 0 if timeout is None else round(timeout * 1000)
        raise _error(_errno.ENOPROTOOPT)

    # -- files -------------------------------------------------------------------------

    def makefile(
        self,
        mode: str = "r",
        buffering: int | None = None,
        *,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
    ) -> Any:
        """A file object on the socket, as the standard ``makefile`` makes it."""
        if not set(mode) <= {"r", "w", "b"}:
            raise ValueError(f"invalid mode {mode!r} (only r, w, b allowed)")
        writing = "w" in mode
        reading = "r" in mode or not writing
        raw = SocketIO(self, ("r" if reading else "") + ("w" if writing else ""))  # type: ignore[arg-type]
        self._io_refs += 1
        size = _io.DEFAULT_BUFFER_SIZE if buffering is None or buffering < 0 else buffering
        if size == 0:
            if "b" not in mode:
                raise ValueError("unbuffered streams must be binary")
            return raw
        buffer: Any
        if reading and writing:
            buffer = _io.BufferedRWPair(raw, raw, size)
        elif reading:
            buffer = _io.BufferedReader(raw, size)
        else:
            buffer = _io.BufferedWriter(raw, size)
        if "b" in mode:
            return buffer
        text = _io.TextIOWrapper(buffer, _io.text_encoding(encoding), errors, newline)
        text.mode = mode  # type: ignore[misc]
        return text


_GONE = (_State.CLOSED, _State.TIME_WAIT)  # Linux's socket is TCP_CLOSE in both
_KEEPALIVE_TUNING = {
    (_IPPROTO_TCP, getattr(_std, "TCP_KEEPIDLE", -1)): "keepalive_idle",
    (_IPPROTO_TCP, getattr(_std, "TCP_KEEPINTVL", -1)): "keepalive_interval",
    (_IPPROTO_TCP, getattr(_std, "TCP_KEEPCNT", -1)): "keepalive_count",
}

_Socket.__name__ = _Socket.__qualname__ = "socket"
socket = SocketType = _Socket  # type: ignore[misc, assignment]


def _create_connection(
    address: tuple[str, int],
    timeout: Any = _std._GLOBAL_DEFAULT_TIMEOUT,  # type: ignore[attr-defined]
    source_address: tuple[str, int] | None = None,
    *,
    all_errors: bool = False,
) -> _Socket:
    """Connect to (host, port) on our TCP, trying each IPv4 address of the host."""
    host, port = address
    errors: list[Exception] = []
    for _family, _kind, proto, _name, sockaddr in _std.getaddrinfo(
        host, port, _AF_INET, _SOCK_STREAM
    ):
        sock = _Socket(_AF_INET, _SOCK_STREAM, proto)
        try:
            if timeout is not _std._GLOBAL_DEFAULT_TIMEOUT:  # type: ignore[attr-defined]
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect((str(sockaddr[0]), int(sockaddr[1])))
            errors.clear()
            return sock
        except OSError as exc:
            errors.append(exc)
            sock.close()
    if not errors:
        raise OSError("getaddrinfo returns an empty list")
    try:
        if all_errors:
            raise ExceptionGroup("create_connection failed", errors)
        raise errors[0]
    finally:
        errors = []


def _create_server(
    address: tuple[str, int],
    *,
    family: int = _AF_INET,
    backlog: int | None = None,
    reuse_port: bool = False,
    dualstack_ipv6: bool = False,
) -> _Socket:
    """A listening socket on our TCP, bound to `address` (SO_REUSEADDR set, as the
    standard function sets it on POSIX)."""
    if family != _AF_INET:
        raise OSError(
            _errno.EAFNOSUPPORT,
            "synack's TCP carries IPv4 only; use the standard socket module for IPv6",
        )
    if dualstack_ipv6:
        raise ValueError("dualstack_ipv6 requires AF_INET6 family")
    sock = _Socket(_AF_INET, _SOCK_STREAM)
    try:
        sock.setsockopt(_SOL_SOCKET, _std.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(_SOL_SOCKET, _std.SO_REUSEPORT, 1)
        sock.bind(address)
        if backlog is None:
            sock.listen()
        else:
            sock.listen(backlog)
        return sock
    except BaseException:
        sock.close()
        raise


def _has_dualstack_ipv6() -> bool:
    """False: synack's TCP carries IPv4 only."""
    return False


_create_connection.__name__ = _create_connection.__qualname__ = "create_connection"
_create_server.__name__ = _create_server.__qualname__ = "create_server"
_has_dualstack_ipv6.__name__ = _has_dualstack_ipv6.__qualname__ = "has_dualstack_ipv6"
create_connection = _create_connection  # type: ignore[assignment]
create_server = _create_server  # type: ignore[assignment]
has_dualstack_ipv6 = _has_dualstack_ipv6
