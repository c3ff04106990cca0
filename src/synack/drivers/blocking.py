"""Our TCP for blocking callers (`synack.socket`), carried in UDP.

**The threading model.** One `BlockingEngine` owns one UDP socket (one local TCP port:
a listener and every connection accepted from it, or one client) with its
connections and timers; one lock guards all of it. Nothing runs an engine on a
schedule of its own:

* A thread blocked in a call (``recv``, ``accept``, ``connect``, ``sendall``...) drives
  the engine itself. It polls the UDP socket with a timeout set by the earlier of the
  host's timer and its own deadline; then, holding the lock, it feeds what arrived to
  the host, runs due timers, hands out events and sends what is due. The datagram is
  read, processed and answered on the thread that wants it: a wake-up on the other
  vCPU costs more than the protocol work, so no packet is handed between threads.
* Other threads blocked on the same engine (say, one per connection of a threading
  server) wait on their own socket's condition variable and are woken only when
  their connection has news. When the driving thread leaves, it hands the role to
  one of them.
* A call that does not block (``send`` with room, a non-blocking ``recv``) does its
  work and sends what it caused at once; it wakes the driving thread only when it
  moved the engine's deadline earlier than that thread's poll, or left datagrams
  waiting for the UDP socket to drain.
* While no caller is inside an engine, one background thread per process (started
  with the first engine, sleeping without a timeout when there is nothing to do)
  services it: it watches the UDP sockets of all such engines with epoll, runs their
  timers and keeps the readiness descriptors current. Entering an engine only takes
  its socket out of that epoll set, which wakes nobody. Leaving it queues the engine
  for the background thread's next turn, at most `RECHECK` seconds away while callers
  come and go, so a blocking loop of ``recv`` calls does not wake that thread once
  per call (its thread returns long before then, and the visit finds it inside
  again); an engine whose sockets someone may ``select`` on is handed over at once.

**Readiness.** ``fileno()`` of our socket is one end of an AF_UNIX socket pair
(`Readiness`), so ``select``, ``poll`` and ``selectors`` see it as they see a kernel
socket: readable when a byte waits in it (written when data, end of stream, an error
or a connection to accept is there), writable while its small send buffer has room
(filled when our TCP send buffer fills, drained when `SendSpace` comes). When the
peer's FIN has come (or reading was shut) the other end shuts its writing, and
``poll`` reports POLLRDHUP; when a connection has ended both ways the other end is
closed, and ``poll`` reports POLLHUP, as for the kernel's socket (it cannot report
POLLERR).

**Fork.** A user-space TCP lives in one process. A forked child finds the engines
it inherited closed (its copies of their descriptors are released, so the parent's
connections are untouched) and any call on an inherited socket fails with a message
that says so.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import heapq
import itertools
import math
import os
import select
import socket
import sys
import threading
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from time import monotonic
from typing import Any

from synack.drivers.engine import Engine, config_for, os_error, port_closed_at_peer
from synack.drivers.udp import CarrierConfig, CarrierError, UdpCarrier
from synack.tcp import (
    Config,
    Connection,
    EndOfStream,
    Host,
    Listener,
    PortInUse,
    Reset,
    SendSpace,
    State,
    StateChanged,
    TCPError,
    TimedOut,
)

__all__ = [
    "RECHECK",
    "Acceptor",
    "BlockingEngine",
    "Readiness",
    "Stream",
    "bind_engine",
    "client_engine",
    "defer",
    "error",
]

# How late the background thread may notice a deadline left behind by a caller who
# just returned, while callers keep entering and leaving (no timer of TCP needs better:
# the delayed ACK allows 40 ms, the retransmission timeout 200 ms at least).
RECHECK = 0.02

_POLLIN = select.POLLIN | select.POLLERR
_POLLOUT = select.POLLOUT
_EPOLLIN = select.EPOLLIN
_EPOLLOUT = select.EPOLLOUT
_EPOLL_READ = select.EPOLLIN | select.EPOLLERR | select.EPOLLHUP

_CONNECTING = (State.SYN_SENT, State.SYN_RECEIVED)
_CLOSED = State.CLOSED
_FILL = bytes(65536)


def error(code: int, message: str | None = None) -> OSError:
    """An OSError as the kernel would raise it (the subclass follows from the errno)."""
    return OSError(code, message or os.strerror(code))


def _timed_out() -> TimeoutError:
    return TimeoutError("timed out")  # what the standard socket's settimeout raises


def _would_block(code: int = errno.EAGAIN) -> BlockingIOError:
    return BlockingIOError(code, os.strerror(code))


def _forked() -> OSError:
    return error(
        errno.EBADF,
        "this synack socket was opened before fork(): our TCP lives in the process that "
        "opened it (use threads, or open sockets after the fork)",
    )


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else monotonic() + timeout


# ---------------------------------------------------------------------- readiness


class Readiness:
    """A descriptor that ``select`` sees as readable and writable when we say so.

    The read end of an AF_UNIX stream pair: readable while a byte waits in it,
    writable while its own send buffer (set to the minimum) is not full. Changes cost
    one system call each and happen only on a change of state.
    """

    def __init__(self, readable: bool, writable: bool) -> None:
        self._ours, self._other = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._ours.setblocking(False)
        self._other.setblocking(False)
        self._ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)  # the kernel's minimum
        self._readable = False
        self._writable = True
        self.read_ended = False
        self.hung_up = False
        self.set(readable, writable)

    def fileno(self) -> int:
        return self._ours.fileno()

    def set(self, readable: bool, writable: bool) -> None:
        """Two system calls at most, writability first: a ``select`` may wake between
        them (one waiting for a connect to finish watches writability)."""
        if self.hung_up:
            return
        readable = readable or self.read_ended
        if writable != self._writable:
            self._writable = writable
            with contextlib.suppress(BlockingIOError):
                if writable:
                    self._other.recv(len(_FILL))
                else:
                    self._ours.send(_FILL)  # takes a few KB: enough to end writability
        if readable != self._readable:
            self._readable = readable
            if readable:
                self._other.send(b"\0")
            else:
                self._ours.recv(16)

    def end_read(self) -> None:
        """For good: readable (end of file) and POLLRDHUP, as the kernel's socket is
        once the peer's FIN has come or reading was shut. Shutting the other end's
        writing does both at once, so a ``poll`` woken by one sees the other."""
        if not self.read_ended and not self.hung_up:
            self.read_ended = True
            self._readable = True
            self._other.shutdown(socket.SHUT_WR)

    def hang_up(self) -> None:
        """For good: readable (end of file), writable, and POLLHUP."""
        if not self.hung_up:
            self.set(self._readable, True)
            self.hung_up = True
            self._other.close()

    def close(self) -> None:
        self._ours.close()
        self._other.close()


# ---------------------------------------------------------------------- owners


class _Owner:
    """What a user's socket holds in an engine: a connection or a listener."""

    def __init__(self, engine: BlockingEngine, readiness: Readiness | None) -> None:
        self.engine = engine
        self.cond = threading.Condition(engine.lock)
        self.waiting = 0  # threads in cond.wait
        self.closed = False  # closed by its user
        self._readiness: Readiness | None = None
        self.readiness = readiness

    @property
    def readiness(self) -> Readiness | None:
        return self._readiness

    @readiness.setter
    def readiness(self, readiness: Readiness | None) -> None:
        """Under the lock. The engine counts the sockets someone may ``select`` on."""
        had = self._readiness is not None
        self._readiness = readiness
        self.engine.selected += (readiness is not None) - had

    def release_readiness(self) -> Readiness | None:
        """Stop keeping the descriptor current and hand it back (a failed connect)."""
        engine = self.engine
        if engine.forked:
            return None
        with engine.lock:
            readiness = self.readiness
            self.readiness = None
            return readiness

    def readable(self) -> bool:
        raise NotImplementedError

    def writable(self) -> bool:
        raise NotImplementedError

    def on_events(self) -> None:
        raise NotImplementedError

    def hung_up(self) -> bool:
        """Nothing can change any more (Linux's POLLHUP: both directions shut)."""
        return False

    def read_ended(self) -> bool:
        """Nothing more will be read (Linux's POLLRDHUP: the peer's FIN, or SHUT_RD)."""
        return False

    def notify(self) -> None:
        """Under the lock: something changed; wake whoever waits for this socket."""
        if self.waiting:
            self.cond.notify_all()
        engine = self.engine
        if engine.driver_owner is self and engine.driver != threading.get_ident():
            engine.kick()  # its thread is polling the UDP socket for this news
        self.refresh()

    def refresh(self) -> None:
        readiness = self.readiness
        if readiness is not None:
            if self.read_ended():
                readiness.end_read()  # before set(): it makes the socket readable too
            readiness.set(self.readable(), self.writable())
            if self.hung_up():
                readiness.hang_up()

    def attach(self, readiness: Readiness) -> None:
        """Start keeping `readiness` current (the user asked for ``fileno()``)."""
        engine = self.engine
        if engine.forked:
            raise _forked()
        with engine.lock:
            self.readiness = readiness
            self.refresh()

    def _enter(self) -> BlockingEngine:
        engine = self.engine
        if engine.forked:
            raise _forked()
        return engine


class Stream(_Owner):
    """One connection as a blocking socket sees it.

    Errors follow the kernel's socket: an error (reset, refusal, timeout) is reported
    once -- by the next ``recv``, ``send`` or ``SO_ERROR`` -- after which reads give
    b"" and writes EPIPE, as Linux does once ``sk_err`` has been taken.
    """

    def __init__(
        self, engine: BlockingEngine, conn: Connection, readiness: Readiness | None = None
    ) -> None:
        super().__init__(engine, readiness)
        self.conn = conn
        self.error: int | None = None  # reported once, like the kernel's sk_err
        self.connected = False  # reached ESTABLISHED at some point
        self.eof_seen = False
        self.shut_rd = False
        self.shut_wr = False
        self.blocked = False  # a send found the buffer full; writable again on SendSpace
        self.peeked = bytearray()  # taken from the connection by MSG_PEEK, not yet read
        engine.owners[conn] = self
        self.on_events()

    # -- state ---------------------------------------------------------------------

    def on_events(self) -> None:
        conn = self.conn
        while (event := conn.next_event()) is not None:
            kind = type(event)
            if kind is Reset or kind is TimedOut:
                assert isinstance(event, Reset | TimedOut)
                code = os_error(event.error).errno or errno.EIO
                if code == errno.ECONNRESET and self.eof_seen and not self.shut_wr:
                    code = errno.EPIPE  # Linux: a reset in CLOSE-WAIT is a broken pipe
                self.error = code
            elif kind is EndOfStream:
                self.eof_seen = True
            elif kind is SendSpace:
                self.blocked = False
            elif kind is StateChanged and self.engine.engine.observer is not None:
                assert isinstance(event, StateChanged)
                self.engine.engine.state_changed(conn, event, monotonic())
        if not self.connected and conn.state not in _CONNECTING and conn.state is not _CLOSED:
            self.connected = True

    def hung_up(self) -> bool:
        if not self.connected:
            return False  # a failed connect may be tried again on the same socket
        state = self.conn.state
        return (
            state is _CLOSED
            or state is State.TIME_WAIT
            or ((self.eof_seen or self.shut_rd) and self.shut_wr)
        )

    def read_ended(self) -> bool:
        return self.eof_seen or self.shut_rd

    @property
    def connecting(self) -> bool:
        return self.conn.state in _CONNECTING and self.error is None

    def readable(self) -> bool:
        conn = self.conn
        if conn.state in _CONNECTING:
            return self.error is not None
        return bool(
            self.peeked
            or conn.receive_available
            or conn.at_eof
            or self.error is not None
            or self.shut_rd
            or conn.state is _CLOSED
        )

    def writable(self) -> bool:
        conn = self.conn
        if self.error is not None or self.shut_wr or conn.state is _CLOSED:
            return True
        return conn.state not in _CONNECTING and not self.blocked

    def take_error(self) -> int:
        """The pending error's errno (0 if none), now reported (SO_ERROR)."""
        engine = self._enter()
        with engine.lock:
            code = self.error or 0
            self.error = None
            self.refresh()
            return code

    def _raise_error(self) -> None:
        code = self.error
        if code is not None:
            self.error = None
            self.refresh()
            raise error(code)

    def _nothing_to_read(self) -> None:
        """Under the lock, a read that found nothing: the pending error, if any --
        unless the peer's FIN has come. Then Linux's recv returns the end of the stream
        and leaves the error (a reset that followed the FIN) for send or SO_ERROR."""
        if not self.eof_seen:
            self._raise_error()

    # -- connecting -----------------------------------------------------------------

    def wait_connected(self, timeout: float | None) -> None:
        """Block until the handshake completes; raise as ``connect`` raises."""
        engine = self._enter()
        with engine.lock:
            try:

                def ready() -> bool:
                    return self.closed or not self.connecting

                if not ready():
                    if timeout == 0:
                        raise _would_block(errno.EINPROGRESS)
                    if not engine.wait(self, ready, _deadline(timeout)):
                        raise _timed_out()
                self.check_connected()
            finally:
                engine.finish()

    def attempt_outcome(self) -> int:
        """For a ``connect`` after a non-blocking one: EALREADY while connecting, 0
        once connected, else the failed attempt's error (reported now)."""
        engine = self._enter()
        with engine.lock:
            if self.connecting:
                return errno.EALREADY
            if self.connected and self.error is None and self.conn.state is not _CLOSED:
                return 0
            code = self.error or errno.ECONNABORTED
            self.error = None
            return code

    def check_connected(self) -> None:
        """Under the lock: raise the outcome of a finished handshake, if it failed."""
        if self.closed:
            raise error(errno.EBADF)
        if self.connecting:
            raise _would_block(errno.EALREADY)
        self._raise_error()
        if not self.connected:
            raise error(errno.ECONNABORTED)

    # -- receiving ------------------------------------------------------------------

    def _can_read(self) -> bool:
        conn = self.conn
        return bool(
            self.closed
            or self.peeked
            or conn.receive_available
            or conn.at_eof
            or self.error is not None
            or self.shut_rd
            or conn.state is _CLOSED
        )

    def _wait_readable(self, engine: BlockingEngine, timeout: float | None) -> None:
        if self._can_read():
            return
        if timeout == 0:
            engine.pump()
            if not self._can_read():
                raise _would_block()
        elif not engine.wait(self, self._can_read, _deadline(timeout)):
            raise _timed_out()

    def recv(self, size: int, timeout: float | None, *, peek: bool = False) -> bytes:
        """Up to `size` bytes; b"" at the end of the stream."""
        engine = self._enter()
        with engine.lock:
            try:
                self._wait_readable(engine, timeout)
                if self.closed:
                    raise error(errno.EBADF)
                peeked = self.peeked
                conn = self.conn
                if peek:
                    if len(peeked) < size and conn.receive_available:
                        peeked += conn.receive(size - len(peeked))
                        engine.settle()
                    if peeked:
                        return bytes(peeked[:size])
                elif peeked:
                    data = bytes(peeked[:size])
                    del peeked[:size]
                    if len(data) < size and conn.receive_available:
                        data += conn.receive(size - len(data))
                        engine.settle()
                    self.refresh()
                    return data
                elif conn.receive_available:
                    data = conn.receive(size)
                    engine.settle()
                    self.refresh()
                    return data
                self._nothing_to_read()
                return b""
            finally:
                engine.finish()

    def recv_into(self, view: memoryview, timeout: float | None, *, whole: bool = False) -> int:
        """Like `recv`, into `view` (a writable byte view); returns the count.

        With `whole` (MSG_WAITALL on a blocking socket) it waits until `view` is full
        or the stream ends or fails; what came before an end or error is returned and
        the error left for the next call, as Linux does, so no received byte is lost.
        """
        engine = self._enter()
        with engine.lock:
            try:
                self._wait_readable(engine, timeout)
                if self.closed:
                    raise error(errno.EBADF)
                n = self._take_into(view, engine)
                if not n:
                    self._nothing_to_read()
                    return 0
                while whole and n < len(view):
                    self._wait_readable(engine, None)
                    more = 0 if self.closed else self._take_into(view[n:], engine)
                    if not more:
                        break
                    n += more
                return n
            finally:
                engine.finish()

    def _take_into(self, view: memoryview, engine: BlockingEngine) -> int:
        """Under the lock: copy what has arrived (peeked bytes first) into `view`."""
        peeked = self.peeked
        conn = self.conn
        n = 0
        if peeked:
            n = min(len(peeked), len(view))
            view[:n] = peeked[:n]
            del peeked[:n]
        if n < len(view) and conn.receive_available:
            n += conn.receive_into(view[n:])
            engine.settle()
        if n:
            self.refresh()
        return n

    # -- sending --------------------------------------------------------------------

    def _check_send(self) -> None:
        if self.closed:
            raise error(errno.EBADF)
        self._raise_error()
        if self.shut_wr or self.conn.state is _CLOSED:
            raise error(errno.EPIPE)

    def _can_send(self) -> bool:
        conn = self.conn
        return bool(
            self.closed
            or self.shut_wr  # by another thread: a sender waiting for room gets EPIPE
            or self.error is not None
            or conn.state is _CLOSED
            or (conn.state not in _CONNECTING and conn.send_space > 0)
        )

    def send(self, data: memoryview, timeout: float | None, *, whole: bool) -> int:
        """Queue bytes for sending; with `whole`, all of them (waiting for room).

        Without `whole`, returns as soon as some bytes were queued, as a socket with a
        timeout does; the timeout (None: block, 0: never wait) bounds the whole call.
        """
        engine = self._enter()
        deadline = _deadline(timeout)
        total = len(data)
        sent = 0
        with engine.lock:
            try:
                while True:
                    if not self._can_send():
                        if timeout == 0:
                            engine.pump()
                        elif not engine.wait(self, self._can_send, deadline):
                            raise _timed_out()
                        if not self._can_send():
                            # Not a partial return: `send` has returned after its first
                            # bytes, and `sendall` raises as the standard module does.
                            raise _would_block()
                    self._check_send()
                    try:
                        n = self.conn.send(data[sent:])
                    except TCPError as exc:  # its error event has not been handed out yet
                        engine.dispatch()
                        self._raise_error()
                        raise error(errno.EPIPE) from exc
                    sent += n
                    if sent < total:
                        self.blocked = True
                    if n:
                        engine.settle()
                    if sent == total or (sent and not whole):
                        break
                    self.refresh()  # full: unwritable while this call waits for room
                self.refresh()
                return sent
            finally:
                engine.finish()

    # -- closing --------------------------------------------------------------------

    def shutdown(self, read: bool, write: bool) -> None:
        engine = self._enter()
        with engine.lock:
            conn = self.conn
            if conn.state is _CLOSED or conn.state is State.TIME_WAIT or self.connecting:
                raise error(errno.ENOTCONN)
            if read:
                self.shut_rd = True
            if write and not self.shut_wr:
                self.shut_wr = True
                with contextlib.suppress(TCPError):  # already gone: its events say how
                    conn.shutdown()
                engine.settle()
            self.notify()

    def set_config(self, **changes: Any) -> None:
        """Change the connection's settings (TCP_NODELAY, keepalive...) from now on."""
        engine = self._enter()
        with engine.lock:
            conn = self.conn
            conn.config = replace(conn.config, **changes)
            _touch(conn)
            engine.settle()

    def close(self, *, abort: bool = False) -> None:
        """The user is done: FIN (or RST for unread data, or `abort`); the engine
        finishes the closing handshake on its own."""
        engine = self.engine
        if engine.forked:
            self._forget_readiness()
            return
        with engine.lock:
            self._close_locked(abort)

    def _close_locked(self, abort: bool) -> None:
        if self.closed:
            return
        self.closed = True
        engine = self.engine
        conn = self.conn
        if self.peeked and not abort:
            # Bytes taken by MSG_PEEK and never read are unread data: RST, as for the rest.
            self.peeked.clear()
            abort = True
        if not engine.closed:
            if abort:
                conn.abort()
            else:
                conn.close()
        engine.owners.pop(conn, None)
        if self.waiting:
            self.cond.notify_all()
        if engine.driver_owner is self and engine.driver != threading.get_ident():
            engine.kick()
        self._forget_readiness()
        if not engine.closed:
            engine.settle()

    def _forget_readiness(self) -> None:
        if self.readiness is not None:
            self.readiness.close()
            self.readiness = None


class Acceptor(_Owner):
    """A listening socket: a listener and its accept queue."""

    def __init__(
        self,
        engine: BlockingEngine,
        backlog: int,
        config: Config,
        readiness: Readiness | None = None,
    ) -> None:
        super().__init__(engine, readiness)
        try:
            self.listener = engine.host.listen(engine.port, backlog, config=config)
        except PortInUse:
            raise error(errno.EADDRINUSE) from None
        self.stopped = False  # shutdown(SHUT_RD): accept fails with EINVAL from now on
        engine.owners[self.listener] = self

    def on_events(self) -> None:
        while self.listener.next_event() is not None:
            pass  # readiness is the accept queue's length

    def readable(self) -> bool:
        return self.stopped or self.listener.accept_queue_length > 0

    def hung_up(self) -> bool:
        return self.stopped

    def writable(self) -> bool:
        return False

    def set_backlog(self, backlog: int) -> None:
        engine = self._enter()
        with engine.lock:
            self.listener.backlog = backlog

    def set_config(self, **changes: Any) -> None:
        """Settings for the connections accepted from now on (the kernel's inheritance)."""
        engine = self._enter()
        with engine.lock:
            self.listener.config = replace(self.listener.config, **changes)

    def _can_accept(self) -> bool:
        return self.closed or self.stopped or self.listener.accept_queue_length > 0

    def accept(self, timeout: float | None, readiness: Readiness | None = None) -> Stream:
        engine = self._enter()
        with engine.lock:
            try:
                if not self._can_accept():
                    if timeout == 0:
                        engine.pump()
                        if not self._can_accept():
                            raise _would_block()
                    elif not engine.wait(self, self._can_accept, _deadline(timeout)):
                        raise _timed_out()
                if self.closed:
                    raise error(errno.EBADF)
                if self.stopped:
                    raise error(errno.EINVAL)
                conn = engine.host.accept(engine.port)
                assert conn is not None
                stream = Stream(engine, conn, readiness)
                # It was established to be queued, even if a reset has ended it since:
                # hung up (POLLHUP), as the kernel's socket accepted in TCP_CLOSE is.
                stream.connected = True
                engine.settle()
                self.refresh()
                return stream
            finally:
                engine.finish()

    def stop(self) -> None:
        """shutdown(SHUT_RD) on a listening socket: stop listening, wake ``accept``."""
        engine = self._enter()
        with engine.lock:
            if not self.stopped:
                self.stopped = True
                engine.host.unlisten(engine.port)
                engine.owners.pop(self.listener, None)
                engine.settle()
            self.notify()

    def close(self) -> None:
        engine = self.engine
        if engine.forked:
            if self.readiness is not None:
                self.readiness.close()
                self.readiness = None
            return
        with engine.lock:
            if self.closed:
                return
            self.closed = True
            if not self.stopped and not engine.closed:
                engine.host.unlisten(engine.port)  # unaccepted connections are reset
            engine.owners.pop(self.listener, None)
            if self.waiting:
                self.cond.notify_all()
            if engine.driver_owner is self and engine.driver != threading.get_ident():
                engine.kick()
            if self.readiness is not None:
                self.readiness.close()
                self.readiness = None
            if not engine.closed:
                engine.settle()


def _touch(conn: Connection) -> None:
    """Tell the host that `conn` has work: a changed option (TCP_NODELAY releases what
    Nagle held, SO_KEEPALIVE arms its timer) acts at the connection's next output,
    which the core's wake hook schedules as a user call would."""
    wake = conn._wake
    if wake is not None:
        wake(conn)


# ---------------------------------------------------------------------- the engine


class BlockingEngine:
    """An `Engine` shared by threads: a lock, a driver role, and hand-over to the
    background thread (see the module docstring)."""

    def __init__(self, carrier: UdpCarrier, host: Host) -> None:
        self.engine = Engine(carrier, host)
        self.host = host
        self.carrier = carrier
        self.port = self.engine.port
        self.address: str = carrier.sockname[0]
        self.lock = threading.Lock()
        self.owners: dict[Connection | Listener, _Owner] = {}
        self.claims = 0  # user sockets holding this port (bound, listening or connected)
        self.reuse = False  # SO_REUSEADDR of the socket that bound it (or listened on it)
        self.selected = 0  # its sockets whose fileno() was asked for: select may watch them
        self.closed = False
        self.forked = False
        self.backlogged = False  # datagrams wait for the UDP socket to drain
        # The thread that polls the UDP socket for its blocked call, and for whom.
        self.driver: int | None = None
        self.driver_owner: _Owner | None = None
        self.waiting: dict[_Owner, int] = {}  # owners with threads in cond.wait
        # While the driver polls: its deadline and whether it watches for POLLOUT.
        self.polling = False
        self.poll_deadline = math.inf
        self.poll_out = False
        self.udp_fd = carrier.fileno()
        self.wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.kicked = False
        self.poller = select.poll()
        self.poller.register(self.udp_fd, _POLLIN)
        self.poller.register(self.wake_fd, select.POLLIN)
        self.poll_events = _POLLIN
        # Background hand-over state (guarded by this lock and the background's mutex).
        self.bg_registered = False
        self.bg_events = 0
        self.bg_timer: float | None = None
        _engines.add(self)

    # -- the driver role --------------------------------------------------------------

    def wait(self, owner: _Owner, ready: Callable[[], bool], deadline: float | None) -> bool:
        """Under the lock: block until ``ready()`` or `deadline` (monotonic seconds).

        Drives the engine while no other thread does; the role stays with the caller
        until `finish` (so a loop of waits does not hand it back and forth).
        """
        me = threading.get_ident()
        waited = False
        try:
            while True:
                if ready():
                    return True
                if owner.closed or self.closed:
                    return ready()
                now = monotonic()
                if deadline is not None and now >= deadline:
                    return False
                if self.driver is None:
                    self.driver = me
                    if self.bg_registered:
                        _background().detach(self)
                if self.driver == me:
                    self.driver_owner = owner
                    self._poll(now, deadline)
                else:
                    waited = True
                    self.waiting[owner] = self.waiting.get(owner, 0) + 1
                    owner.waiting += 1
                    try:
                        owner.cond.wait(None if deadline is None else deadline - now)
                    finally:
                        owner.waiting -= 1
                        left = self.waiting[owner] - 1
                        if left:
                            self.waiting[owner] = left
                        else:
                            del self.waiting[owner]
        finally:
            if waited and self.driver is None and not self.closed:
                self._leave()  # a hand-over may have been meant for us: pass it on

    def finish(self) -> None:
        """Under the lock: the caller leaves the engine; give up the driver role."""
        if self.driver == threading.get_ident():
            self.driver = None
            self.driver_owner = None
            if not self.closed:
                self._leave()

    def _leave(self) -> None:
        """Nobody drives: hand the role to a waiting thread, or to the background."""
        if self.waiting:
            next(iter(self.waiting)).cond.notify()
        else:
            self._hand_to_background()

    def _poll(self, now: float, deadline: float | None) -> None:
        """One turn of the driver: poll the UDP socket (lock released), then service."""
        t = self.host.get_timer()
        until = deadline if t is None else (t if deadline is None else min(t, deadline))
        events = _POLLIN | (_POLLOUT if self.backlogged else 0)
        if events != self.poll_events:
            self.poller.modify(self.udp_fd, events)
            self.poll_events = events
        self.polling = True
        self.poll_deadline = math.inf if until is None else until
        self.poll_out = self.backlogged
        timeout = None if until is None else max(0.0, (until - now) * 1000.0)
        self.lock.release()
        try:
            fired = self.poller.poll(timeout)
        finally:
            self.lock.acquire()
            self.polling = False
        readable = writable = False
        for fd, ev in fired:
            if fd == self.wake_fd:
                self._drain_wake()
            else:
                readable = bool(ev & _POLLIN)
                writable = bool(ev & _POLLOUT)
        if not self.closed:
            self.service(monotonic(), readable, writable)

    def kick(self) -> None:
        """Wake the thread polling this engine (it re-reads deadline and events)."""
        if not self.kicked and not self.closed:
            self.kicked = True
            os.eventfd_write(self.wake_fd, 1)

    def _drain_wake(self) -> None:
        self.kicked = False
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self.wake_fd)

    # -- protocol work ------------------------------------------------------------------

    def service(self, now: float, readable: bool, writable: bool) -> None:
        """Under the lock: take in datagrams, run due timers, hand out events, send."""
        engine = self.engine
        if readable:
            for error in engine.receive(now):
                self._unreachable(error, now)
        if self.backlogged and writable:
            self.backlogged = not engine.flush_backlog()
        host = self.host
        t = host.get_timer()
        if t is not None and t <= now:
            host.handle_timer(now)
        self.dispatch()
        self.backlogged = not engine.transmit(now)
        self.dispatch()
        self._maybe_close()

    def pump(self) -> None:
        """Under the lock, for a call that will not wait: take in whatever arrived."""
        if self.closed:
            return
        now = monotonic()
        self.service(now, True, self.backlogged)
        self._after_call(now)

    def settle(self) -> None:
        """Under the lock, after a user call: send what it caused, hand out events, and
        make sure whoever watches this engine will wake in time."""
        if self.closed:
            return
        now = monotonic()
        self.backlogged = not self.engine.transmit(now)
        self.dispatch()
        self._after_call(now)
        self._maybe_close()

    def _after_call(self, now: float) -> None:
        if self.closed:
            return
        t = self.host.get_timer()
        if self.polling:
            if (t is not None and t < self.poll_deadline) or (
                self.backlogged and not self.poll_out
            ):
                self.kick()
        elif self.bg_registered:
            _background().update(self, t, now)
        elif self.driver is None and not self.waiting:
            self._hand_to_background()

    def dispatch(self) -> None:
        """Hand each endpoint's events to its socket; drain those nobody owns."""
        owners = self.owners
        for endpoint in self.host.ready():
            owner = owners.get(endpoint)
            if owner is None:
                # Closed by its user, finishing its handshakes alone: only a trace hears.
                while (event := endpoint.next_event()) is not None:
                    if isinstance(event, StateChanged) and isinstance(endpoint, Connection):
                        self.engine.state_changed(endpoint, event, monotonic())
            else:
                owner.on_events()
                owner.notify()

    def _unreachable(self, error: CarrierError, now: float) -> None:
        """An ICMP error: fail a connection being opened to that address at once (RFC
        5461 §4.1 allows it; no process is there to answer with RST), as aio does; after
        the handshake the core judges a port-unreachable (`Host.port_unreachable`)."""
        code, addr = error.errno, error.dest
        rip = socket.inet_aton(addr[0])
        if port_closed_at_peer(error):
            self.host.port_unreachable(error.quoted, rip, now)
        for conn in list(self.host.connections.values()):
            if conn.remote == (rip, addr[1]) and conn.state is State.SYN_SENT:
                owner = self.owners.get(conn)
                conn.abort()
                if isinstance(owner, Stream):
                    owner.error = code

    # -- background hand-over ------------------------------------------------------------

    def _hand_to_background(self) -> None:
        """Nobody is inside. If someone may ``select`` on one of its sockets, the
        background thread watches it from now on; otherwise it looks at it on its next
        turn (at most RECHECK away), so that a caller who comes straight back -- a loop
        of ``recv`` calls -- costs it nothing."""
        if self.closed or self.forked:
            return
        if self.selected:
            events = _EPOLLIN | (_EPOLLOUT if self.backlogged else 0)
            _background().attach(self, events, self.host.get_timer(), monotonic())
        else:
            _background().visit_soon(self, monotonic())

    def background_visit(self, now: float, events: int) -> None:
        """The background thread's turn (lock held): service, then stay watched."""
        if self.closed or self.forked:
            return
        if self.driver is not None or self.waiting:
            if self.bg_registered:
                _background().detach(self)  # a caller is inside; it does the work
            return
        self.service(now, bool(events & _EPOLL_READ), bool(events & _EPOLLOUT))
        if not self.closed:
            events = _EPOLLIN | (_EPOLLOUT if self.backlogged else 0)
            _background().attach(self, events, self.host.get_timer(), monotonic())

    # -- lifetime -------------------------------------------------------------------------

    def _maybe_close(self) -> None:
        if self.closed or self.claims or self.host.connections or self.host.listeners:
            return
        self.close()

    def close(self) -> None:
        """Under the lock: release the UDP socket (nothing is left to carry)."""
        if self.closed:
            return
        self.closed = True
        if self.bg_registered:
            _background().detach(self)
        with _registry_lock:
            key = (self.address, self.port)
            if _bound.get(key) is self:
                del _bound[key]
        self.engine.close()
        os.close(self.wake_fd)
        for owner in self.waiting:
            owner.cond.notify_all()

    def release_claim(self) -> None:
        """A user socket on this port closed."""
        if self.forked:
            return
        with self.lock:
            self.claims -= 1
            self._maybe_close()

    def connect(
        self, remote: tuple[str, int], config: Config, readiness: Readiness | None
    ) -> Stream:
        """Send a SYN from this port to `remote`; the stream waits in SYN-SENT."""
        if self.forked:
            raise _forked()
        with self.lock:
            if self.closed:
                raise error(errno.EBADF)
            try:
                conn = self.host.connect(remote, monotonic(), local_port=self.port, config=config)
            except PortInUse:
                raise error(errno.EADDRNOTAVAIL) from None
            stream = Stream(self, conn, readiness)
            self.settle()
            return stream

    def listen(
        self, backlog: int, config: Config, readiness: Readiness | None, *, reuse: bool = False
    ) -> Acceptor:
        if self.forked:
            raise _forked()
        with self.lock:
            if self.closed:
                raise error(errno.EBADF)
            acceptor = Acceptor(self, backlog, config, readiness)
            self.reuse = reuse
            self.settle()
            return acceptor

    def _forsake(self) -> None:
        """In a forked child: drop our copies of the descriptors; touch nothing else."""
        self.forked = True
        if self.closed:
            # Closed in the parent already: its descriptor numbers may belong to something
            # else by now (a subprocess's pipes, between fork and exec), so leave them be.
            return
        self.closed = True
        self.engine.close()
        with contextlib.suppress(OSError):
            os.close(self.wake_fd)
        for owner in list(self.owners.values()):
            if owner.readiness is not None:
                owner.readiness.close()
                owner.readiness = None


# ---------------------------------------------------------------------- opening ports

_registry_lock = threading.Lock()
_bound: dict[tuple[str, int], BlockingEngine] = {}


def _open(ip: str, port: int, carrier: CarrierConfig | None) -> BlockingEngine:
    cfg = carrier if carrier is not None else CarrierConfig()
    udp = UdpCarrier(cfg)
    try:
        udp.bind(ip, port)
    except BaseException:
        udp.close()
        raise
    engine = BlockingEngine(udp, Host(ip, config_for(cfg, None)))
    engine.claims = 1
    _bound[(ip, engine.port)] = engine
    return engine


def bind_engine(
    ip: str, port: int, *, reuse: bool = False, carrier: CarrierConfig | None = None
) -> BlockingEngine:
    """The engine for a socket bound to (ip, port), holding one claim on it.

    A port is a UDP port, so the kernel answers EADDRINUSE when any socket holds it.
    One exception, as SO_REUSEADDR makes for the kernel's TCP: a port where nothing
    listens -- carried for connections whose listener has closed (in TIME-WAIT, or
    still open: sockets accepted before the close), or held by a socket bound but not
    listening -- is shared with a new socket, if both it and the socket that held the
    port set SO_REUSEADDR (Linux asks it of both; accepted sockets inherit the
    listener's). Listening there is then refused while another socket listens.
    """
    while True:
        with _registry_lock:
            existing = _bound.get((ip, port)) if port else None
            if existing is None or existing.closed:
                engine = _open(ip, port, carrier)
                engine.reuse = reuse
                return engine
        with existing.lock:
            if existing.closed:
                continue
            if reuse and existing.reuse and not existing.host.listeners:
                existing.claims += 1
                return existing
        raise error(errno.EADDRINUSE)


def client_engine(remote: tuple[str, int], carrier: CarrierConfig | None = None) -> BlockingEngine:
    """A new engine on an ephemeral port of the address the kernel would send from to
    `remote`, never `remote` itself: the port just released by a socket that was
    listening there can come back, and a SYN to oneself opens a connection to oneself."""
    ip, port = remote
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((ip, 9))  # a UDP connect sends nothing; it picks the route
        source = str(probe.getsockname()[0])
    while True:
        with _registry_lock:
            engine = _open(source, 0, carrier)
        if (engine.address, engine.port) != (ip, port):
            return engine
        engine.release_claim()  # closes it; the next port will differ


# ---------------------------------------------------------------------- the background


class _Background:
    """The one thread that services engines no caller is inside (module docstring)."""

    def __init__(self) -> None:
        self.epoll = select.epoll()
        self.wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.epoll.register(self.wake_fd, select.EPOLLIN)
        self.mutex = threading.Lock()
        self.fds: dict[int, BlockingEngine] = {}
        self.pending: dict[BlockingEngine, None] = {}  # engines to look at on the next turn
        self.pending_since = 0.0
        self.heap: list[tuple[float, int, BlockingEngine]] = []
        self.tiebreak = itertools.count()
        self.sleeping = False
        self.wake_at = math.inf
        self.handovers = 0  # hand-overs so far; a change since the last turn means activity
        self.seen = 0
        self.kicked = False
        self.stopping = False
        self.turns = 0  # wake-ups of the thread (tests check that callers cause few)
        self.thread = threading.Thread(target=self._run, name="synack-background", daemon=True)
        self.thread.start()

    # Called with the engine's lock held.

    def attach(self, engine: BlockingEngine, events: int, t: float | None, now: float) -> None:
        with self.mutex:
            if not engine.bg_registered:
                self.epoll.register(engine.udp_fd, events)
                self.fds[engine.udp_fd] = engine
                engine.bg_registered = True
                engine.bg_events = events
            elif events != engine.bg_events:
                self.epoll.modify(engine.udp_fd, events)
                engine.bg_events = events
            self.handovers += 1
            self._schedule(engine, t, now)

    def update(self, engine: BlockingEngine, t: float | None, now: float) -> None:
        events = _EPOLLIN | (_EPOLLOUT if engine.backlogged else 0)
        if t == engine.bg_timer and events == engine.bg_events:
            return
        with self.mutex:
            if events != engine.bg_events:
                self.epoll.modify(engine.udp_fd, events)
                engine.bg_events = events
            self._schedule(engine, t, now)

    def visit_soon(self, engine: BlockingEngine, now: float) -> None:
        """Look at `engine` about RECHECK from now (a caller just left it)."""
        with self.mutex:
            if not self.pending:
                self.pending_since = now
            self.pending[engine] = None
            self.handovers += 1
            if self.sleeping and now + RECHECK < self.wake_at:
                self._kick()

    def detach(self, engine: BlockingEngine) -> None:
        with self.mutex:
            if engine.bg_registered:
                engine.bg_registered = False
                self.fds.pop(engine.udp_fd, None)
                with contextlib.suppress(OSError, ValueError):
                    self.epoll.unregister(engine.udp_fd)

    def _schedule(self, engine: BlockingEngine, t: float | None, now: float) -> None:
        engine.bg_timer = t
        if t is None:
            return
        heap = self.heap
        heapq.heappush(heap, (t, next(self.tiebreak), engine))
        if len(heap) > 2 * len(self.fds) + 64:
            # Mostly stale entries (engines that moved their deadline, left or closed):
            # rebuild from the live ones, so closed engines are not kept alive.
            tiebreak = self.tiebreak
            self.heap = [
                (e.bg_timer, next(tiebreak), e) for e in self.fds.values() if e.bg_timer is not None
            ]
            heapq.heapify(self.heap)
        if self.sleeping and t + RECHECK < self.wake_at:
            self._kick()

    def _kick(self) -> None:
        if not self.kicked:
            self.kicked = True
            os.eventfd_write(self.wake_fd, 1)

    def poke(self) -> None:
        """Wake the thread from anywhere, taking no lock (a finaliser may call this)."""
        os.eventfd_write(self.wake_fd, 1)

    # The thread.

    def _next_timer(self) -> float | None:
        heap = self.heap
        while heap:
            t, _, engine = heap[0]
            if engine.bg_registered and engine.bg_timer == t:
                return t
            heapq.heappop(heap)
        return None

    def _run(self) -> None:
        epoll = self.epoll
        while True:
            with self.mutex:
                if self.stopping:
                    return
                now = monotonic()
                busy = self.handovers != self.seen
                self.seen = self.handovers
                t = self._next_timer()
                until = math.inf if t is None else t
                if busy:
                    until = min(until, now + RECHECK)
                if self.pending:
                    until = min(until, self.pending_since + RECHECK)
                if _deferred:
                    until = now
                self.wake_at = until
                self.sleeping = True
                timeout = -1.0 if until == math.inf else max(0.0, until - now)
            fired = epoll.poll(timeout)
            with self.mutex:
                self.sleeping = False
                self.turns += 1
                now = monotonic()
                visit = {}
                if self.pending and now >= self.pending_since + RECHECK:
                    visit = self.pending
                    self.pending = {}
                events: dict[BlockingEngine, int] = {}
                for fd, ev in fired:
                    if fd == self.wake_fd:
                        self.kicked = False
                        with contextlib.suppress(BlockingIOError):
                            os.eventfd_read(self.wake_fd)
                        continue
                    engine = self.fds.get(fd)
                    if engine is not None:
                        events[engine] = events.get(engine, 0) | ev
                        visit[engine] = None
                heap = self.heap
                while heap and heap[0][0] <= now:
                    t, _, engine = heapq.heappop(heap)
                    if engine.bg_registered and engine.bg_timer == t:
                        visit[engine] = None
            while _deferred:
                _run_deferred(_deferred.popleft())
            for engine in visit:
                with engine.lock:
                    try:
                        engine.background_visit(monotonic(), events.get(engine, 0))
                    except Exception:
                        sys.excepthook(*sys.exc_info())

    def stop(self) -> None:
        with self.mutex:
            self.stopping = True
            self._kick()
        if self.thread is not threading.current_thread():
            self.thread.join(1.0)


_bg: _Background | None = None
_bg_lock = threading.Lock()


def _background() -> _Background:
    global _bg
    bg = _bg
    if bg is None:
        with _bg_lock:
            bg = _bg
            if bg is None:
                bg = _bg = _Background()
    return bg


# Closes requested by finalisers: a finaliser may run while its own thread holds an
# engine's lock (the collector runs anywhere), so it only queues the work here.
_deferred: deque[Callable[[], None]] = deque()


def _run_deferred(job: Callable[[], None]) -> None:
    try:
        job()
    except Exception:
        sys.excepthook(*sys.exc_info())


def defer(job: Callable[[], None]) -> None:
    """Run `job` on the background thread soon (for ``__del__``)."""
    if _exiting:
        return  # the exit linger closes every connection anyway
    _deferred.append(job)
    _background().poke()


# ---------------------------------------------------------------------- exit and fork

_engines: weakref.WeakSet[BlockingEngine] = weakref.WeakSet()
_exiting = False


def _at_exit() -> None:
    """Before `engine.close_all` (registered earlier, so it runs later): stop the
    background thread and hold every engine's lock, so that no daemon thread still
    inside a call touches an engine while the exit linger closes its connections."""
    global _exiting
    _exiting = True
    if _bg is not None:
        _bg.stop()
    for engine in list(_engines):
        engine.lock.acquire(timeout=1.0)


def _after_fork_in_child() -> None:
    global _bg, _registry_lock, _bg_lock
    _registry_lock = threading.Lock()
    _bg_lock = threading.Lock()
    bg = _bg
    _bg = None
    if bg is not None:
        with contextlib.suppress(OSError):
            os.close(bg.wake_fd)
        bg.epoll.close()
    _deferred.clear()
    _bound.clear()
    for engine in list(_engines):
        engine._forsake()


atexit.register(_at_exit)
os.register_at_fork(after_in_child=_after_fork_in_child)
