"""Our TCP on an asyncio event loop, carried in UDP: no helper threads.

The shape is aioquic's driver around its sans-IO core. One `Engine` owns one UDP
socket (a `UdpCarrier`) and the `Host` of the connections on its port. The loop
watches the socket (``add_reader``) and keeps one timer (``call_at``) per engine.
Every receive pass hands the host what it read, in batches (a GRO read is one
peer's burst), then one `LoopEngine.service` pass hands events to the transports,
sends everything due and re-arms the timer only if the deadline came earlier (a
deadline that moved later lets the armed timer fire early and re-arm: the RTO moves
with every ACK). Application writes between inputs schedule one pass per loop
iteration (``call_soon``), so a burst of small writes leaves as one burst of
segments; on a TCP_NODELAY connection (the default, as asyncio sets it on its own
TCP sockets) a write, and on any connection a ``close``, is sent at once, as
asyncio's own transports and the kernel do.

Each connection is a real `asyncio.Transport` (`SynackTransport`), so the
standard `StreamReader`/`StreamWriter`, any `asyncio.Protocol` or
`BufferedProtocol`, and ``loop.start_tls`` work on it unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import socket
import weakref
from asyncio import constants, sslproto, transports, trsock
from collections.abc import Callable
from dataclasses import replace
from ssl import SSLContext, create_default_context
from typing import TYPE_CHECKING, Any

from synack.drivers.engine import Engine, config_for, os_error, port_closed_at_peer
from synack.drivers.udp import CarrierConfig, CarrierError, UdpCarrier
from synack.tcp import (
    Closed,
    Config,
    Connected,
    ConnectionRefused,
    DataAvailable,
    EndOfStream,
    Host,
    Listener,
    Reset,
    SendSpace,
    State,
    StateChanged,
    TCPError,
    TimedOut,
)
from synack.tcp.connection import Connection

logger = logging.getLogger("asyncio")  # where asyncio's transports log
# Writes to a lost connection dropped quietly before each is warned about (asyncio's).
LOG_THRESHOLD_FOR_CONNLOST_WRITES = 5
# The most bytes one `data_received` call gets, the rest waiting for the next loop
# iteration: what asyncio's socket transports read per wake-up (their max_size). A
# bulk receive pass may bring a megabyte; handed on whole, it takes the bytes object
# and a StreamReader's buffer past glibc's mmap threshold, and each pass then pays a
# page fault for every 4 KiB of them (measured at MTU 1500: 0.8 faults per segment
# received). In these pieces, with the reader running between them, memory is reused.
DELIVER_MAX = 256 * 1024


class LoopEngine:
    """An `Engine` on an event loop: the loop watches its socket and keeps its one timer."""

    def __init__(self, loop: asyncio.AbstractEventLoop, carrier: UdpCarrier, host: Host) -> None:
        self.loop = loop
        self.engine = Engine(carrier, host)
        self.host = host
        self.port = self.engine.port
        self.transports: dict[Connection, SynackTransport] = {}
        self.watchers: dict[Connection, Callable[[Connection], None]] = {}
        self.acceptors: dict[Listener, Callable[[Connection], None]] = {}
        # The server on this port, listening or not yet: it keeps the socket open.
        self.server: SynackServer | None = None
        self.unreachable: dict[tuple[str, int], int] = {}  # destination -> errno
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._scheduled = False
        self._servicing = False  # inside service(): its own transmit sends what writes add
        self._kicked_inside = False  # kick() was called inside the current service pass
        self._writing = False
        self.now = loop.time()  # the current service pass's time, for the trace's state lines
        self.engine.exit_hook = self._exiting
        loop.add_reader(carrier.fileno(), self._readable)
        _bound[(socket.inet_ntoa(host.address), self.port)] = self

    @property
    def closed(self) -> bool:
        return self.engine.closed

    # -- input ------------------------------------------------------------------------

    def _readable(self) -> None:
        now = self.loop.time()
        for error in self.engine.receive(now):
            self._icmp_error(error, now)
        self.service(now)

    def _icmp_error(self, error: CarrierError, now: float) -> None:
        """RFC 5461 §4.1 lets a connection being opened act on a port unreachable at
        once (no process is there to answer with RST); after the handshake the core
        judges a port-unreachable (`Host.port_unreachable`: a check, not an end)."""
        code, addr = error.errno, error.dest
        self.unreachable[addr] = code
        if port_closed_at_peer(error):
            self.host.port_unreachable(error.quoted, socket.inet_aton(addr[0]), now)
        rip = socket.inet_aton(addr[0])
        for conn in list(self.host.connections.values()):
            if conn.remote == (rip, addr[1]) and conn.state is State.SYN_SENT:
                watcher = self.watchers.pop(conn, None)
                conn.abort()
                if watcher is not None:
                    conn.error = ConnectionRefused("connection refused")
                    watcher(conn)

    def _fire(self, when: float) -> None:
        self._timer = None
        self._timer_at = None
        # asyncio may run a timer up to its clock resolution early; the deadline is due.
        now = max(self.loop.time(), when)
        self.host.handle_timer(now)
        self.service(now)

    # -- output -----------------------------------------------------------------------

    def kick(self) -> None:
        """Something changed outside an input: run one service pass this loop iteration.

        From inside a service pass (a protocol acting on its events) only noted: the
        pass's own transmit sends what the change made due, and another pass follows
        only if it left events to hand out."""
        if self._servicing:
            self._kicked_inside = True
        elif not self._scheduled and not self.engine.closed:
            self._scheduled = True
            self.loop.call_soon(self._kicked)

    def _kicked(self) -> None:
        if self._scheduled:
            self.service(self.loop.time())

    def push(self) -> None:
        """Send now what an application call made due, as asyncio's own transports send
        in ``write`` and the kernel sends a FIN in ``close``, instead of in a service
        pass on the next loop iteration (which a request/response exchange would pay for
        on every message, and which input arriving first could overtake). Inside a
        service pass the pass's own transmit sends it."""
        if self._servicing or self.engine.closed:
            return
        now = self.loop.time()
        self.now = now
        self._transmit(now)
        if self.host.events_waiting:
            self.kick()

    def service(self, now: float) -> None:
        """Hand out events, send what is due, and re-arm the timer if the deadline came earlier."""
        self._scheduled = False
        engine = self.engine
        if engine.closed:
            return
        self.now = now
        self._servicing = True
        self._kicked_inside = False
        try:
            self._hand_out(now)
        finally:
            self._servicing = False
        self._transmit(now)
        host = self.host
        if self._kicked_inside and host.events_waiting:
            self.kick()
        if not host.connections and not self.watchers and self.server is None:
            self.close()  # idle: nothing left to carry

    def _hand_out(self, now: float) -> None:
        """Each endpoint's new events to its transport, watcher or acceptor."""
        engine = self.engine
        for endpoint in self.host.ready():
            if isinstance(endpoint, Listener):
                self._accept_all(endpoint)
                continue
            transport = self.transports.get(endpoint)
            if transport is not None:
                transport._events()
                continue
            watcher = self.watchers.get(endpoint)
            if watcher is not None:
                watcher(endpoint)
            else:
                # An orphan (closed by its user) finishing its handshakes: only a trace listens.
                while (event := endpoint.next_event()) is not None:
                    if isinstance(event, StateChanged):
                        engine.state_changed(endpoint, event, now)

    def _transmit(self, now: float) -> None:
        """Send what is due, and re-arm the loop's timer if the deadline came earlier."""
        engine = self.engine
        if not engine.transmit(now) and not self._writing:
            self._writing = True
            self.loop.add_writer(engine.fileno(), self._writable)
        # The loop's timer is re-armed only when the deadline comes earlier. A deadline
        # that moved later (the RTO restarted by every ACK) or went away leaves it armed:
        # it fires early, finds nothing due, and is armed again for the real deadline.
        # Cancelling and re-arming an asyncio timer on every segment costs more than one
        # early wake-up per RTO interval.
        t = self.host.get_timer()
        armed = self._timer_at
        if t is not None and (armed is None or t < armed):
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = t
            self._timer = self.loop.call_at(t, self._fire, t)

    def _writable(self) -> None:
        if self.engine.flush_backlog():
            self._writing = False
            self.loop.remove_writer(self.engine.fileno())

    def _exiting(self) -> None:
        """The process is exiting (its loop is gone): each transport hands on what it
        still holds, then closes as ``close()`` would; a connect in progress is dropped."""
        for conn in list(self.watchers):
            conn.abort()
        self.watchers.clear()
        for transport in list(self.transports.values()):
            transport._exit()
        for conn in list(self.host.connections.values()):
            if conn not in self.transports and conn.state is State.ESTABLISHED:
                conn.close()  # accepted but never handed to a protocol

    # -- listeners --------------------------------------------------------------------

    def _accept_all(self, listener: Listener) -> None:
        acceptor = self.acceptors.get(listener)
        while listener.next_event() is not None:
            pass
        if acceptor is None:
            return
        while (conn := self.host.accept(listener.local_port)) is not None:
            acceptor(conn)

    def close(self) -> None:
        """Stop watching the socket and close it (nothing is left to carry)."""
        engine = self.engine
        if engine.closed:
            return
        if self._timer is not None:
            self._timer.cancel()
        fd = engine.fileno()
        self.loop.remove_reader(fd)
        if self._writing:
            self.loop.remove_writer(fd)
        engine.close()
        key = (socket.inet_ntoa(self.host.address), self.port)
        if _bound.get(key) is self:
            del _bound[key]


# The engine bound to each local (ip, port) in this process, so that a new server can
# listen beside the connections an earlier one on that port left behind.
_bound: weakref.WeakValueDictionary[tuple[str, int], LoopEngine] = weakref.WeakValueDictionary()

# What write() takes; a tuple, as `bytes | bytearray | memoryview` is built on each call.
_BYTES_LIKE = (bytes, bytearray, memoryview)


class SynackTransport(transports._FlowControlMixin, asyncio.Transport):
    """One connection of our TCP as an asyncio transport (stream semantics, flow control).

    Bytes the connection's send buffer cannot take yet wait here; that is the
    write buffer that ``drain`` and ``get_write_buffer_size`` see, as the kernel's
    socket buffer sits below asyncio's own. The write-buffer limits and the calls to
    ``pause_writing``/``resume_writing`` are asyncio's own `_FlowControlMixin`'s, as
    in its socket and TLS transports; ``loop.sendfile`` takes only such a transport.
    """

    _start_tls_compatible = True  # loop.start_tls needs nothing more than a Transport
    # No kernel socket to hand the file to: loop.sendfile writes it through write().
    _sendfile_compatible = constants._SendfileMode.FALLBACK

    # What _FlowControlMixin defines and typeshed leaves out.
    _loop: asyncio.AbstractEventLoop
    _protocol_paused: bool
    if TYPE_CHECKING:

        def _maybe_pause_protocol(self) -> None: ...
        def _maybe_resume_protocol(self) -> None: ...

    def __init__(
        self,
        engine: LoopEngine,
        conn: Connection,
        protocol: asyncio.BaseProtocol,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(extra, engine.loop)
        self._engine = engine
        self._conn = conn
        self._protocol = protocol
        self._pending = bytearray()
        self._eof_pending = False  # write_eof() waits for the pending bytes
        self._eof_written = False
        self._closing = False
        self._lost = False
        self._reading = True
        self._eof_delivered = False
        # Nonzero once the connection is closed or lost (the protocol hears no error from
        # then on); it counts the writes made since, as asyncio's transports do.
        self._conn_lost = 0
        # What the protocol's connection_lost hears after _close_connection (None: clean).
        self._close_exc: BaseException | None = None
        self._more: asyncio.Handle | None = None  # _deliver_more, when due
        engine.transports[conn] = self

    def _start(self) -> None:
        self._protocol.connection_made(self)
        self._events()

    # -- events from the engine ---------------------------------------------------------

    def _events(self) -> None:
        conn = self._conn
        while (event := conn.next_event()) is not None:
            handler = _HANDLERS.get(type(event))
            if handler is not None:
                handler(self, event)

    def _on_data(self, _event: object) -> None:
        self._deliver()

    def _deliver_more(self) -> None:
        self._more = None
        if not self._lost:
            self._deliver()

    def _on_eof(self, _event: object) -> None:
        self._deliver()

    def _on_space(self, _event: object) -> None:
        self._flush()

    def _on_error(self, event: Reset | TimedOut) -> None:
        # After close() handed everything to the connection, the protocol has been told
        # (connection_lost(None), or _force_close's error, is on its way) and, as with a
        # kernel socket closed by then, a reset that follows is nobody's to hear.
        self._connection_lost(self._close_exc if self._conn_lost else os_error(event.error))

    def _on_closed(self, _event: object) -> None:
        # A close with received bytes unread ends the connection at once (RST): its
        # Closed may be handed out before the connection_lost _close_connection queued,
        # and must carry the same error.
        self._connection_lost(self._close_exc)

    def _on_state(self, event: StateChanged) -> None:
        engine = self._engine
        engine.engine.state_changed(self._conn, event, engine.now)

    def _deliver(self) -> None:
        """Give the protocol what has arrived, then the end of the stream once.

        A protocol that takes bytes objects gets at most `DELIVER_MAX` per call; the
        rest, and the end of the stream, follow on the next loop iteration."""
        if self._more is not None:
            return  # the rest is due on the next iteration (_deliver_more)
        conn = self._conn
        protocol = self._protocol
        # A protocol's callback that raises ends its own connection, as on asyncio's
        # transports (the loop's exception handler is told), and no other: it must not
        # escape into the engine's pass over every connection on the socket.
        step = ""
        try:
            while self._reading and not self._lost and conn.receive_available:
                if isinstance(protocol, asyncio.BufferedProtocol):
                    step = "get_buffer"
                    view = memoryview(protocol.get_buffer(conn.receive_available)).cast("B")
                    if not len(view):
                        raise RuntimeError("get_buffer() returned an empty buffer")
                    n = conn.receive_into(view)
                    step = "buffer_updated"
                    protocol.buffer_updated(n)
                else:
                    step = "data_received"
                    protocol.data_received(conn.receive(DELIVER_MAX))  # type: ignore[attr-defined]
                    if conn.receive_available:
                        self._more = self._engine.loop.call_soon(self._deliver_more)
                        break
            if self._reading and not self._lost and conn.at_eof and not self._eof_delivered:
                self._eof_delivered = True
                step = "eof_received"
                keep_open = protocol.eof_received()  # type: ignore[attr-defined]
                if not keep_open:
                    self.close()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, f"Fatal error: protocol.{step}() call failed.")
        self._engine.kick()  # reading may have opened the window

    def _fatal_error(self, exc: BaseException, message: str) -> None:
        """As asyncio's transports: tell the loop's exception handler (an OSError only
        in debug mode), then close at once with `exc` for the protocol."""
        loop = self._engine.loop
        if not isinstance(exc, OSError):
            loop.call_exception_handler(
                {
                    "message": message,
                    "exception": exc,
                    "transport": self,
                    "protocol": self._protocol,
                }
            )
        elif loop.get_debug():
            logger.debug("%r: %s", self, message, exc_info=True)
        self._force_close(exc)

    def _flush(self) -> None:
        """Move pending bytes into the connection's send buffer as room appears."""
        pending = self._pending
        conn = self._conn
        if pending:
            try:
                n = conn.send(pending)
            except TCPError:
                pending.clear()  # the connection failed; its error event says how
                return
            del pending[:n]
        if not pending:
            if self._eof_pending and not self._eof_written:
                self._shutdown()
            if self._closing and not self._conn_lost:  # close() waited for these bytes
                self._close_connection()
        self._maybe_resume_protocol()
        self._engine.kick()

    def _exit(self) -> None:
        """At exit, with no loop left: move pending bytes on, then close the connection."""
        self._closing = True
        self._reading = False
        pending = self._pending
        if pending:
            with contextlib.suppress(TCPError):
                del pending[: self._conn.send(pending)]
        if not pending:
            self._lost = True
            self._engine.transports.pop(self._conn, None)
            with contextlib.suppress(TCPError):
                self._conn.close()

    def _shutdown(self) -> None:
        self._eof_written = True
        with contextlib.suppress(TCPError):  # failed or closed: its error event says so
            self._conn.shutdown()

    def _close_connection(self, exc: BaseException | None = None) -> None:
        """Close the connection as closing a kernel socket does (`Connection.close`): FIN
        after the bytes it holds, or RST if received bytes were left unread. The protocol
        hears `exc` (None: a clean close) on the next loop iteration, whatever follows."""
        self._conn_lost += 1
        self._close_exc = exc
        with contextlib.suppress(TCPError):
            self._conn.close()
        self._engine.push()  # the data written before close, then FIN (or RST), go now
        self._engine.kick()
        self._engine.loop.call_soon(self._connection_lost, exc)

    def _connection_lost(self, exc: BaseException | None) -> None:
        if self._lost:
            return
        self._lost = True
        self._closing = True
        self._conn_lost = max(self._conn_lost, 1)
        self._pending.clear()
        self._engine.transports.pop(self._conn, None)
        try:
            self._protocol.connection_lost(exc)  # type: ignore[arg-type]
        finally:
            self._engine.kick()

    # -- asyncio.WriteTransport ---------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not isinstance(data, _BYTES_LIKE):
            raise TypeError(f"data: expecting a bytes-like instance, got {type(data).__name__}")
        if self._eof_pending or self._eof_written:
            raise RuntimeError("Cannot call write() after write_eof()")
        if not data:
            return
        if self._conn_lost:
            self._write_lost()
            return
        if not self._pending:
            try:
                n = self._conn.send(data)
            except TCPError:
                return  # the connection failed; its error event says how
            if n == len(data):
                if self._conn.config.no_delay:
                    self._engine.push()
                else:
                    self._engine.kick()  # this loop turn's writes go out together
                return
            data = memoryview(data)[n:]
        self._pending += data
        self._engine.kick()
        self._maybe_pause_protocol()

    def _write_lost(self) -> None:
        """Drop a write to a connection closed, aborted or lost; from the fifth on, warn
        as asyncio's transports do: a program writing into a dead connection is told."""
        if self._conn_lost >= LOG_THRESHOLD_FOR_CONNLOST_WRITES:
            logger.warning("socket.send() raised exception.")
        self._conn_lost += 1

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def write_eof(self) -> None:
        if self._eof_pending or self._eof_written or self._closing:
            return
        self._eof_pending = True
        if not self._pending:
            self._shutdown()
            self._engine.kick()

    def can_write_eof(self) -> bool:
        return True

    def get_write_buffer_size(self) -> int:
        return len(self._pending)

    def abort(self) -> None:
        self._force_close(None)

    def _force_close(self, exc: BaseException | None) -> None:
        """Close at once, dropping the bytes that wait here, and report `exc` to the
        protocol. asyncio's socket transports do that and close their socket, so the
        kernel still sends what its buffer holds and then FIN (RST only if received bytes
        are unread): the peer reads to the end of the stream, and so it does here. The
        name is the selector transports': asyncio's TLS layer calls it on a failed
        handshake and on an abort over TLS."""
        if self._conn_lost:
            return
        self._closing = True
        self._reading = False
        self._pending.clear()
        self._close_connection(exc)

    # -- asyncio.ReadTransport ----------------------------------------------------------

    def is_reading(self) -> bool:
        return self._reading and not self._closing

    def pause_reading(self) -> None:
        # What stays unread fills the receive buffer and closes the window: TCP's own
        # flow control carries the pause back to the sender.
        self._reading = False

    def resume_reading(self) -> None:
        if self._reading or self._closing:
            return
        self._reading = True
        self._engine.loop.call_soon(self._resumed)

    def _resumed(self) -> None:
        if self._reading and not self._lost:
            self._deliver()

    # -- asyncio.BaseTransport ----------------------------------------------------------

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._reading = False
        if not self._pending:
            self._close_connection()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    @property
    def connection(self) -> Connection:
        """The core's connection underneath, for ``info()`` and tracing."""
        return self._conn

    def set_no_delay(self, on: bool) -> None:
        """TCP_NODELAY: send small segments at once instead of waiting (Nagle)."""
        conn = self._conn
        if conn.config.no_delay != on:
            conn.config = replace(conn.config, no_delay=on)

    def __repr__(self) -> str:
        return f"<SynackTransport {self._conn.state.value} {self.get_extra_info('peername')}>"


_HANDLERS: dict[type, Callable[[SynackTransport, Any], None]] = {
    DataAvailable: SynackTransport._on_data,
    EndOfStream: SynackTransport._on_eof,
    SendSpace: SynackTransport._on_space,
    Reset: SynackTransport._on_error,
    TimedOut: SynackTransport._on_error,
    Closed: SynackTransport._on_closed,
    StateChanged: SynackTransport._on_state,  # for the trace (Engine.state_changed)
}


# -- opening connections and servers ----------------------------------------------------


def _asyncio_config(carrier: CarrierConfig, config: Config | None) -> Config:
    """`config_for`, with TCP_NODELAY on unless the caller's `Config` says otherwise:
    asyncio's own TCP transports set it on every socket (since Python 3.6), so a
    write is sent at once, not held by Nagle's algorithm."""
    if config is None:
        return replace(config_for(carrier, None), no_delay=True)
    return config_for(carrier, config)


def _source_address(ip: str) -> str:
    """The local address the kernel would send from to `ip` (a connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((ip, 9))
        return str(probe.getsockname()[0])


def _names(conn: Connection) -> dict[str, Any]:
    return {
        "peername": (socket.inet_ntoa(conn.remote_ip), conn.remote_port),
        "sockname": (socket.inet_ntoa(conn.local_ip), conn.local_port),
        "socket": None,  # no OS socket: the connection lives in this process
    }


async def _resolve(host: str | None, port: int) -> tuple[str, int]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, family=socket.AF_INET, type=socket.SOCK_DGRAM)
    if not infos:
        raise OSError(errno.EADDRNOTAVAIL, f"no IPv4 address for {host!r}")
    ip, resolved = infos[0][4][:2]
    return str(ip), int(resolved)


def _check_client_tls(
    ssl: bool | SSLContext | None,
    host: str,
    server_hostname: str | None,
    handshake_timeout: float | None,
    shutdown_timeout: float | None,
) -> str | None:
    """Refuse what ``loop.create_connection`` refuses, before any packet is sent, and
    return the name to check the server's certificate against (`host` by default)."""
    if server_hostname is not None and not ssl:
        raise ValueError("server_hostname is only meaningful with ssl")
    if server_hostname is None and ssl:
        if not host:
            raise ValueError("You must set server_hostname when using ssl without a host")
        server_hostname = host
    if handshake_timeout is not None and not ssl:
        raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
    if shutdown_timeout is not None and not ssl:
        raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")
    return server_hostname


def _check_server_tls(
    ssl: SSLContext | None, handshake_timeout: float | None, shutdown_timeout: float | None
) -> None:
    """Refuse what ``loop.create_server`` refuses."""
    if isinstance(ssl, bool):
        raise TypeError("ssl argument must be an SSLContext or None")
    if handshake_timeout is not None and ssl is None:
        raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
    if shutdown_timeout is not None and ssl is None:
        raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")


def _client_context(ssl: bool | SSLContext, server_hostname: str | None) -> SSLContext:
    """The context ``ssl=True`` stands for, as asyncio makes it: the system's defaults,
    without the name check when no name is given."""
    if isinstance(ssl, SSLContext):
        return ssl
    context = create_default_context()
    if not server_hostname:
        context.check_hostname = False
    return context


def _tls_layer(
    protocol: asyncio.BaseProtocol,
    context: SSLContext,
    *,
    server_side: bool,
    server_hostname: str | None,
    handshake_timeout: float | None,
    shutdown_timeout: float | None,
) -> tuple[sslproto.SSLProtocol, asyncio.Future[None]]:
    """asyncio's own TLS layer, as its ``ssl=`` connections put it between the socket's
    transport and `protocol`; the future is done when the handshake is."""
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()
    layer = sslproto.SSLProtocol(
        loop,
        protocol,
        context,
        waiter,
        server_side,
        server_hostname,
        ssl_handshake_timeout=handshake_timeout,  # type: ignore[arg-type]  # a float works
        ssl_shutdown_timeout=shutdown_timeout,
    )
    return layer, waiter


async def _connect(
    host: str, port: int, config: Config | None, carrier: CarrierConfig | None
) -> tuple[LoopEngine, Connection]:
    """A new port, and a connection on it through its handshake."""
    loop = asyncio.get_running_loop()
    ip, port = await _resolve(host, port)
    carrier_cfg = carrier if carrier is not None else CarrierConfig()
    udp = UdpCarrier(carrier_cfg)
    try:
        udp.bind(_source_address(ip), 0)
    except BaseException:
        udp.close()
        raise
    engine = LoopEngine(loop, udp, Host(udp.sockname[0], _asyncio_config(carrier_cfg, config)))
    conn = engine.host.connect((ip, port), loop.time(), local_port=engine.port)
    done: asyncio.Future[None] = loop.create_future()

    def watch(c: Connection) -> None:
        while (event := c.next_event()) is not None:
            if isinstance(event, Connected) and not done.done():
                done.set_result(None)
            elif isinstance(event, Reset | TimedOut) and not done.done():
                done.set_exception(os_error(event.error))
            elif isinstance(event, StateChanged):
                engine.engine.state_changed(c, event, engine.now)
        if c.error is not None and not done.done():
            done.set_exception(os_error(c.error))

    engine.watchers[conn] = watch
    engine.kick()
    try:
        await done
    except BaseException:
        engine.watchers.pop(conn, None)
        conn.abort()
        engine.kick()
        raise
    engine.watchers.pop(conn, None)
    return engine, conn


async def create_connection(
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    host: str,
    port: int,
    *,
    ssl: bool | SSLContext | None = None,
    server_hostname: str | None = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
    config: Config | None = None,
    carrier: CarrierConfig | None = None,
) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
    """``loop.create_connection`` on our TCP: handshake (and TLS's, with `ssl`), then a
    transport and protocol."""
    server_hostname = _check_client_tls(
        ssl, host, server_hostname, ssl_handshake_timeout, ssl_shutdown_timeout
    )
    engine, conn = await _connect(host, port, config, carrier)
    protocol = protocol_factory()
    if not ssl:
        transport = SynackTransport(engine, conn, protocol, _names(conn))
        transport._start()
        return transport, protocol
    layer, handshake = _tls_layer(
        protocol,
        _client_context(ssl, server_hostname),
        server_side=False,
        server_hostname=server_hostname,
        handshake_timeout=ssl_handshake_timeout,
        shutdown_timeout=ssl_shutdown_timeout,
    )
    transport = SynackTransport(engine, conn, layer, _names(conn))
    transport._start()
    # Taken before the await, as asyncio's own create_connection does: a connection
    # lost right after the handshake clears the layer's reference.
    app_transport = layer._app_transport
    try:
        await handshake
    except BaseException:
        transport.abort()
        raise
    return app_transport, protocol


class SynackServer:
    """A port of our TCP with the calls of `asyncio.Server`: ``sockets``, ``is_serving``,
    ``start_serving``, ``serve_forever``, ``close``, ``wait_closed``, ``async with``.

    Until it serves (``start_serving=False``) the port is bound and a connect to it is
    refused, as a kernel socket bound but not listening refuses one.
    """

    def __init__(
        self, engine: LoopEngine, accept: Callable[[Connection], None], backlog: int
    ) -> None:
        self._engine = engine
        self._accept = accept
        self._backlog = backlog
        self._listener: Listener | None = None
        self._closed: asyncio.Event = asyncio.Event()
        self._serving_forever: asyncio.Future[None] | None = None
        engine.server = self

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [] if self._closed.is_set() else [self._engine.engine.carrier.sockname]

    @property
    def sockets(self) -> tuple[trsock.TransportSocket, ...]:
        """The UDP socket that carries the port, as `asyncio.Server` lists its listening
        sockets: its ``getsockname()`` is the server's address (its type is SOCK_DGRAM)."""
        if self._closed.is_set():
            return ()
        return (trsock.TransportSocket(self._engine.engine.carrier.sock),)

    @property
    def engine(self) -> LoopEngine:
        return self._engine

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._engine.loop

    def is_serving(self) -> bool:
        return self._listener is not None

    def _start_serving(self) -> None:
        if self._listener is not None or self._closed.is_set():
            return
        engine = self._engine
        self._listener = engine.host.listen(engine.port, self._backlog)
        engine.acceptors[self._listener] = self._accept

    async def start_serving(self) -> None:
        self._start_serving()

    async def serve_forever(self) -> None:
        """Serve until cancelled, then close (as `asyncio.Server.serve_forever`)."""
        if self._serving_forever is not None:
            raise RuntimeError(f"server {self!r} is already being awaited on serve_forever()")
        if self._closed.is_set():
            raise RuntimeError(f"server {self!r} is closed")
        self._start_serving()
        self._serving_forever = self._engine.loop.create_future()
        try:
            await self._serving_forever
        except asyncio.CancelledError:
            try:
                self.close()
                await self.wait_closed()
            finally:
                raise
        finally:
            self._serving_forever = None

    def close(self) -> None:
        """Stop accepting; connections already accepted carry on (as `asyncio.Server`)."""
        if self._closed.is_set():
            return
        self._closed.set()
        engine = self._engine
        listener, self._listener = self._listener, None
        if listener is not None:
            engine.host.unlisten(listener.local_port)
            engine.acceptors.pop(listener, None)
        if engine.server is self:
            engine.server = None
        if self._serving_forever is not None and not self._serving_forever.done():
            self._serving_forever.cancel()
            self._serving_forever = None
        engine.kick()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def __aenter__(self) -> SynackServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        await self.wait_closed()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} sockets={self.sockets!r}>"


async def create_server(
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    host: str | None = None,
    port: int | None = None,
    *,
    backlog: int = 128,
    ssl: SSLContext | None = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
    start_serving: bool = True,
    config: Config | None = None,
    carrier: CarrierConfig | None = None,
) -> SynackServer:
    """``loop.create_server`` on our TCP: one UDP socket on `port` carries every connection
    (each one through TLS's handshake first, with `ssl`)."""
    _check_server_tls(ssl, ssl_handshake_timeout, ssl_shutdown_timeout)
    loop = asyncio.get_running_loop()
    # No host (every interface, to asyncio) is the one address getaddrinfo gives: loopback.
    ip, port = await _resolve(host or None, port or 0)
    if ip == "0.0.0.0":
        raise OSError(
            errno.EADDRNOTAVAIL,
            "our TCP listens on one address; give it one (e.g. 127.0.0.1), not 0.0.0.0",
        )
    engine = _bound.get((ip, port)) if port else None
    if engine is not None and engine.loop is loop and not engine.closed:
        # The port's socket still carries an earlier server's connections (closing, or in
        # TIME-WAIT): listen beside them, as SO_REUSEADDR lets a kernel TCP restart.
        if engine.server is not None:
            raise OSError(errno.EADDRINUSE, "Address already in use")
    else:
        carrier_cfg = carrier if carrier is not None else CarrierConfig()
        udp = UdpCarrier(carrier_cfg)
        try:
            udp.bind(ip, port)
        except BaseException:
            udp.close()
            raise
        engine = LoopEngine(loop, udp, Host(ip, _asyncio_config(carrier_cfg, config)))

    def accepted(conn: Connection) -> None:
        protocol = protocol_factory()
        if ssl is None:
            SynackTransport(engine, conn, protocol, _names(conn))._start()
            return
        layer, handshake = _tls_layer(
            protocol,
            ssl,
            server_side=True,
            server_hostname=None,
            handshake_timeout=ssl_handshake_timeout,
            shutdown_timeout=ssl_shutdown_timeout,
        )
        transport = SynackTransport(engine, conn, layer, _names(conn))
        handshake.add_done_callback(functools.partial(_handshake_done, transport, protocol))
        transport._start()

    server = SynackServer(engine, accepted, backlog)
    if start_serving:
        server._start_serving()
    return server


def _handshake_done(
    transport: SynackTransport, protocol: asyncio.BaseProtocol, handshake: asyncio.Future[None]
) -> None:
    """An accepted connection whose TLS handshake failed is closed, and reported only in
    debug mode, as asyncio's servers do: its protocol never saw it."""
    if handshake.cancelled() or handshake.exception() is None:
        return
    transport.close()
    loop = transport._engine.loop
    if loop.get_debug():
        loop.call_exception_handler(
            {
                "message": "Error on transport creation for incoming connection",
                "exception": handshake.exception(),
                "protocol": protocol,
                "transport": transport,
            }
        )


async def open_connection(
    host: str,
    port: int,
    *,
    limit: int = 2**16,
    ssl: bool | SSLContext | None = None,
    server_hostname: str | None = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
    config: Config | None = None,
    carrier: CarrierConfig | None = None,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """`asyncio.open_connection` on our TCP."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport, _ = await create_connection(
        lambda: protocol,
        host,
        port,
        ssl=ssl,
        server_hostname=server_hostname,
        ssl_handshake_timeout=ssl_handshake_timeout,
        ssl_shutdown_timeout=ssl_shutdown_timeout,
        config=config,
        carrier=carrier,
    )
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)


async def start_server(
    client_connected_cb: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any],
    host: str | None = None,
    port: int | None = None,
    *,
    limit: int = 2**16,
    backlog: int = 128,
    ssl: SSLContext | None = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
    start_serving: bool = True,
    config: Config | None = None,
    carrier: CarrierConfig | None = None,
) -> SynackServer:
    """`asyncio.start_server` on our TCP."""
    loop = asyncio.get_running_loop()

    def factory() -> asyncio.StreamReaderProtocol:
        reader = asyncio.StreamReader(limit=limit, loop=loop)
        return asyncio.StreamReaderProtocol(reader, client_connected_cb, loop=loop)

    return await create_server(
        factory,
        host,
        port,
        backlog=backlog,
        ssl=ssl,
        ssl_handshake_timeout=ssl_handshake_timeout,
        ssl_shutdown_timeout=ssl_shutdown_timeout,
        start_serving=start_serving,
        config=config,
        carrier=carrier,
    )
