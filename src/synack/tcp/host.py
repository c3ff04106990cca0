"""A host's TCP: every connection and listener on one address, and the demultiplexing
between them (RFC 9293 §3.10.7: a segment goes to the connection of its four-tuple,
else to a listener on its port, else it is answered as CLOSED answers).

Still sans-IO: the host takes segments with their source and destination addresses
and returns segments with theirs (`synack.tcp.endpoint.Datagram`). Drivers and the
fake network in `synack.testing` carry them.

The driver contract (aioquic's shape): for each datagram that arrives, or when the
deadline of ``get_timer`` has passed,

1. ``handle_segment(data, src, now)`` -- or ``handle_segments(list, src, now)`` for
   what one read brought from one peer, the same as each in turn -- or
   ``handle_timer(now)``;
2. ``ready()``: the connections and listeners with events waiting; drain each with
   its ``next_event()`` and let the application act (``send``, ``receive``,
   ``accept``, ``close``... are all allowed here);
3. ``segments_to_send(now)`` once, and transmit what it returns;
4. ``get_timer()`` once, and re-arm the one timer only if the deadline moved.

Readiness is the endpoints' own events. A connection is *readable* on
`DataAvailable`, *writable* again on `SendSpace`, and *closed* on `EndOfStream`
(the peer will send no more), `Reset`, `TimedOut` and finally `Closed`; a listener
has a connection to ``accept`` on `ConnectionAvailable`. Like ``epoll``'s edge
triggering, an endpoint is reported once per batch of new events.

The cost of a call does not grow with idle connections: the host keeps the set of
endpoints that an input, a timer or an application call touched (a connection or
listener calls its ``_wake`` hook on every user call that can create work), a
ready set, and each endpoint's deadline. From `HEAP_FROM` deadlines on, a heap
orders them, its stale entries skipped when they come to the top (an entry is stale
when its endpoint's deadline has since changed); below that, the few deadlines are
simply scanned, which costs less than keeping a heap for a connection whose deadline
moves with every message (the RTO armed on sending, the delayed ACK on receiving).
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import struct
from collections.abc import Sequence
from dataclasses import replace
from typing import cast

from synack.tcp.config import Config
from synack.tcp.connection import ACK, FIN, RST, SYN, Connection
from synack.tcp.endpoint import Datagram, GatheredDatagram
from synack.tcp.isn import new_secret
from synack.tcp.listener import Listener
from synack.tcp.state import State
from synack.wire.checksum import address_bytes
from synack.wire.seq import seq_gt
from synack.wire.tcp import (
    HEADER,
    HEADER_SIZE,
    Flags,
    Segment,
    build_segment,
    checksum_ok,
    joined,
    unpack_header,
)

_TIME_WAIT = State.TIME_WAIT
_PORTS_SEQ = struct.Struct("!HHI")  # a quoted TCP header's source and destination port, seq
_CLOSED = State.CLOSED

# Linux's default net.ipv4.ip_local_port_range.
EPHEMERAL_PORTS = range(32768, 61000)

# Deadlines from which the host keeps them in a heap, and below which it drops the heap
# again (apart, so that a count moving around one of them does not rebuild it each time).
HEAP_FROM = 32
SCAN_BELOW = 8

ConnKey = tuple[int, bytes, int]  # local port, remote address, remote port
Owned = Connection | Listener  # what the host tracks for readiness and timers


class PortInUse(OSError):
    """The port (or four-tuple) is already taken on this host."""


class Host:
    """TCP on one IP address: listeners, connections, and the routing between them."""

    def __init__(self, address: str | bytes, config: Config | None = None) -> None:
        cfg = config if config is not None else Config()
        if cfg.secret is None:
            cfg = replace(cfg, secret=new_secret())
        self.config = cfg
        self.address = address_bytes(address)
        self.listeners: dict[int, Listener] = {}
        self.connections: dict[ConnKey, Connection] = {}
        self._out: list[GatheredDatagram] = []
        seed = hashlib.blake2s(self.address, key=(cfg.secret or b"")[:32]).digest()
        self._next_port = EPHEMERAL_PORTS.start + int.from_bytes(seed[:4], "big") % len(
            EPHEMERAL_PORTS
        )
        self.stats: dict[str, int] = {
            "resets_sent": 0,
            "no_port": 0,
            "bad_segment": 0,
            "bad_icmp": 0,  # ICMP errors too short, or for no connection of ours
        }
        # Endpoints touched since the last segments_to_send (dicts: insertion-ordered,
        # so output order is deterministic).
        self._dirty: dict[Connection, None] = {}
        self._dirty_listeners: dict[Listener, None] = {}
        self._ready: dict[Owned, None] = {}  # events waiting since the last ready()
        # Each endpoint's deadline as last seen, in the order they were set (equal
        # deadlines run in that order). With many, the heap holds (deadline, tiebreak,
        # endpoint), and an entry whose deadline no longer matches is stale.
        self._timers: dict[Owned, float] = {}
        self._heap: list[tuple[float, int, Owned]] | None = None
        self._tiebreak = itertools.count()

    # ------------------------------------------------------------------ opening

    def listen(
        self,
        port: int,
        backlog: int = 128,
        *,
        syn_cookies: bool = True,
        config: Config | None = None,
    ) -> Listener:
        if port in self.listeners:
            raise PortInUse(f"port {port} is already listening")
        listener = Listener(
            (self.address, port), config or self.config, backlog, syn_cookies=syn_cookies
        )
        listener._wake = self._wake_listener
        self.listeners[port] = listener
        return listener

    def unlisten(self, port: int) -> None:
        listener = self.listeners.pop(port, None)
        if listener is not None:
            listener.close()
            for seg, remote in listener.segments_to_send(0.0):
                self._out.append((seg, self.address, remote[0]))
            listener._wake = None
            self._dirty_listeners.pop(listener, None)
            self._ready.pop(listener, None)
            self._timers.pop(listener, None)

    def connect(
        self,
        remote: tuple[str | bytes, int],
        now: float,
        *,
        local_port: int | None = None,
        config: Config | None = None,
    ) -> Connection:
        rip = address_bytes(remote[0])
        port = local_port if local_port is not None else self._ephemeral_port(rip, remote[1])
        key = (port, rip, remote[1])
        if key in self.connections:
            raise PortInUse(f"connection {port} -> {remote[1]} already exists")
        conn = Connection((self.address, port), (rip, remote[1]), config or self.config)
        conn.connect(now)
        self._adopt(key, conn)
        return conn

    def accept(self, port: int) -> Connection | None:
        """An established connection from the listener on `port`, now routed by the host."""
        listener = self.listeners.get(port)
        if listener is None:
            return None
        conn = listener.accept()
        if conn is not None:
            self._adopt((port, conn.remote_ip, conn.remote_port), conn)
        return conn

    def _adopt(self, key: ConnKey, conn: Connection) -> None:
        self.connections[key] = conn
        conn._wake = self._wake_connection
        self._dirty[conn] = None  # its output, timer and events are not yet accounted for

    def _wake_connection(self, conn: Connection) -> None:
        self._dirty[conn] = None

    def _wake_listener(self, listener: Listener) -> None:
        self._dirty_listeners[listener] = None

    def _ephemeral_port(self, rip: bytes, rport: int) -> int:
        span = len(EPHEMERAL_PORTS)
        for _ in range(span):
            port = self._next_port
            self._next_port = EPHEMERAL_PORTS.start + (port + 1 - EPHEMERAL_PORTS.start) % span
            if port not in self.listeners and (port, rip, rport) not in self.connections:
                return port
        raise PortInUse("no ephemeral port is free")

    # ------------------------------------------------------------------ segments

    def handle_segment(
        self, data: bytes | bytearray | memoryview, src: str | bytes, now: float
    ) -> None:
        """A segment from `src` addressed to this host."""
        if len(data) < HEADER_SIZE:
            self.stats["bad_segment"] += 1
            return
        sport, dport, seq, _ack, off, flags, _w, _c, _u = HEADER.unpack_from(data)
        rip = src if src.__class__ is bytes and len(src) in (4, 16) else address_bytes(src)
        conn = self.connections.get((dport, rip, sport))
        if conn is not None and conn.state is not _TIME_WAIT:
            conn.handle_segment(data, now)
            self._dirty[conn] = None
            return
        if not HEADER_SIZE <= (off >> 4) * 4 <= len(data):
            # RFC 9293 §3.1: a header that runs past its segment is not a segment; Linux
            # drops it as a bad packet rather than answering it.
            self.stats["bad_segment"] += 1
            return
        listener = self.listeners.get(dport)
        isn_floor: int | None = None
        if conn is not None:
            if (
                flags & SYN
                and not flags & (ACK | RST)
                and listener is not None
                and seq_gt(seq, conn.rcv_nxt & 0xFFFFFFFF)
                and (not self.config.checksum or checksum_ok(rip, self.address, data))
            ):
                # A new incarnation may take over a TIME-WAIT four-tuple when its ISN is
                # above the old connection's last sequence number, provided ours is also
                # "larger than the largest sequence number it used on the previous
                # connection incarnation" (RFC 9293 §3.6.1); Linux uses snd_nxt + 65537.
                isn_floor = (conn.snd_max + 65537) & 0xFFFFFFFF
                conn.abort()
                del self.connections[(dport, rip, sport)]
            else:
                conn.handle_segment(data, now)
                self._dirty[conn] = None
                return
        if listener is not None:
            listener.handle_segment(data, rip, now, isn_floor=isn_floor)
            self._dirty_listeners[listener] = None
            return
        self._closed_reset(data, rip, sport, dport, flags)

    def handle_segments(
        self, segments: Sequence[bytes | bytearray | memoryview], src: str | bytes, now: float
    ) -> None:
        """Segments from `src`, in order: the same as ``handle_segment`` on each in turn.

        The batch entry for what one read brought (a GRO read is one peer's burst, all of
        one four-tuple): a connection takes its run of segments in one call
        (`Connection.handle_segments`), so a bulk transfer's routing and call overhead is
        paid once per run instead of once per segment.
        """
        rip = src if src.__class__ is bytes and len(src) in (4, 16) else address_bytes(src)
        connections = self.connections
        dirty = self._dirty
        n = len(segments)
        i = 0
        while i < n:
            data = segments[i]
            if len(data) >= HEADER_SIZE:
                conn = connections.get((data[2] << 8 | data[3], rip, data[0] << 8 | data[1]))
                if conn is not None and conn.state is not _TIME_WAIT:
                    if i + 1 < n:
                        i = conn.handle_segments(segments, i, now)
                    else:  # one segment (a request, a response): nothing to batch
                        conn.handle_segment(data, now)
                        i = n
                    dirty[conn] = None
                    continue
            self.handle_segment(data, rip, now)
            i += 1

    def port_unreachable(
        self, quoted: bytes | bytearray | memoryview, dst: str | bytes, now: float
    ) -> None:
        """An ICMP port-unreachable for a segment we sent to `dst`, which it quotes from
        its first byte (the ports and the sequence number at least): that segment's
        connection judges it (`Connection.port_unreachable`)."""
        if len(quoted) < 8:
            self.stats["bad_icmp"] += 1
            return
        sport, dport, seq = _PORTS_SEQ.unpack_from(quoted)
        rip = dst if dst.__class__ is bytes and len(dst) in (4, 16) else address_bytes(dst)
        conn = self.connections.get((sport, rip, dport))
        if conn is None:
            self.stats["bad_icmp"] += 1
            return
        conn.port_unreachable(seq, now)
        self._dirty[conn] = None

    def _closed_reset(
        self, data: bytes | bytearray | memoryview, rip: bytes, sport: int, dport: int, flags: int
    ) -> None:
        """RFC 9293 §3.10.7.1: no connection, so answer anything but a RST with a RST."""
        self.stats["no_port"] += 1
        if flags & RST:
            return
        if self.config.checksum and not checksum_ok(rip, self.address, data):
            self.stats["bad_segment"] += 1
            return
        _sp, _dp, seq, ack, hlen, _f, _w, _c, _u = unpack_header(data)  # offset checked
        if flags & ACK:
            seg = Segment(dport, sport, seq=ack, flags=Flags.RST)
        else:
            seg_len = len(data) - hlen + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
            seg = Segment(
                dport, sport, seq=0, ack=(seq + seg_len) & 0xFFFFFFFF, flags=Flags.RST | Flags.ACK
            )
        out = (
            build_segment(seg, src=self.address, dst=rip)
            if self.config.checksum
            else build_segment(seg)
        )
        self._out.append((out, self.address, rip))
        self.stats["resets_sent"] += 1

    def segments_to_send(self, now: float) -> list[Datagram]:
        """Every segment due now from the endpoints touched since the last call."""
        return cast(list[Datagram], self._collect(now, True))

    def segments_to_send_gathered(self, now: float) -> list[GatheredDatagram]:
        """`segments_to_send` for a driver that sends with gathered writes: a large
        segment of a connection with Config.gather_from comes `Gathered`, its payload a
        view of the send buffer (valid until sent), not copied into a segment of its own."""
        return self._collect(now, False)

    def _collect(self, now: float, join: bool) -> list[GatheredDatagram]:
        out = self._out
        if out:
            self._out = []
        else:
            out = []
        if self._dirty_listeners:
            self._settle_listeners(out, now)
        dirty = self._dirty
        if not dirty:
            return out
        self._dirty = {}
        me = self.address
        timers = self._timers
        ready = self._ready
        for conn in dirty:
            segs = conn.segments_to_send(now)
            if segs:
                if join and conn._gather_from:
                    segs = [joined(seg) for seg in segs]
                rip = conn.remote_ip
                for seg in segs:
                    out.append((seg, me, rip))
            t = conn.get_timer()
            if t != timers.get(conn):
                self._schedule(conn, t)
            if conn._events:
                ready[conn] = None
            if conn.state is _CLOSED:
                self._forget(conn)
        return out

    def _settle_listeners(self, out: list[GatheredDatagram], now: float) -> None:
        dirty = self._dirty_listeners
        self._dirty_listeners = {}
        me = self.address
        for listener in dirty:
            for seg, remote in listener.segments_to_send(now):
                out.append((seg, me, remote[0]))
            t = listener.get_timer()
            if t != self._timers.get(listener):
                self._schedule(listener, t)
            if listener._events:
                self._ready[listener] = None

    def _forget(self, conn: Connection) -> None:
        """A connection reached CLOSED: stop routing to it (its events stay readable)."""
        key = (conn.local_port, conn.remote_ip, conn.remote_port)
        if self.connections.get(key) is conn:
            del self.connections[key]
        self._timers.pop(conn, None)
        conn._wake = None

    # ------------------------------------------------------------------ readiness

    def ready(self) -> list[Connection | Listener]:
        """The connections and listeners with events waiting, new since the last call.

        Drain each with its ``next_event()``. Edge-triggered: an endpoint whose events
        are left waiting is reported again only after something new touches it.
        """
        ready = self._ready
        for listener in self._dirty_listeners:
            if listener._events:
                ready[listener] = None
        for conn in self._dirty:
            if conn._events:
                ready[conn] = None
        if not ready:
            return []
        self._ready = {}
        return [endpoint for endpoint in ready if endpoint._events]

    @property
    def events_waiting(self) -> bool:
        """Whether ``ready()`` would report an endpoint now (without taking them)."""
        # Loops, not any() over generators: a driver asks after every message.
        for endpoint in self._ready:
            if endpoint._events:
                return True
        for conn in self._dirty:
            if conn._events:
                return True
        for listener in self._dirty_listeners:  # noqa: SIM110 (the loops above say why)
            if listener._events:
                return True
        return False

    # ------------------------------------------------------------------ timers

    def get_timer(self) -> float | None:
        """The earliest deadline of any connection or listener, or None."""
        if self._dirty or self._dirty_listeners:
            self._retime_dirty()
        timers = self._timers
        heap = self._heap
        if heap is None or len(timers) < SCAN_BELOW:
            self._heap = None
            return min(timers.values()) if timers else None
        while heap:
            t, _, endpoint = heap[0]
            if timers.get(endpoint) == t:
                return t
            heapq.heappop(heap)  # stale: that endpoint's deadline has moved
        return None

    def handle_timer(self, now: float) -> None:
        """Run the timers of exactly the endpoints whose deadline is at or before `now`."""
        if self._dirty or self._dirty_listeners:
            self._retime_dirty()
        timers = self._timers
        heap = self._heap
        due: dict[Owned, None] = {}
        if heap is None or len(timers) < SCAN_BELOW:
            self._heap = None
            # Earliest first; equal deadlines in the order they were set (a stable sort
            # of the dict's order), as the heap's tiebreak orders them.
            for endpoint in sorted((e for e in timers if timers[e] <= now), key=timers.__getitem__):
                del timers[endpoint]  # re-armed from its new deadline once settled
                due[endpoint] = None
        else:
            while heap and heap[0][0] <= now:
                t, _, endpoint = heapq.heappop(heap)
                if timers.get(endpoint) == t:
                    del timers[endpoint]
                    due[endpoint] = None
        for endpoint in due:
            endpoint.handle_timer(now)
            if isinstance(endpoint, Listener):
                self._dirty_listeners[endpoint] = None
            else:
                self._dirty[endpoint] = None

    def _retime_dirty(self) -> None:
        """Bring the deadlines up to date with endpoints touched since the last output."""
        timers = self._timers
        for listener in self._dirty_listeners:
            t = listener.get_timer()
            if t != timers.get(listener):
                self._schedule(listener, t)
        for conn in self._dirty:
            t = conn.get_timer()
            if t != timers.get(conn):
                self._schedule(conn, t)

    def _schedule(self, endpoint: Owned, t: float | None) -> None:
        """Record `endpoint`'s new deadline; in the heap, its older entries become stale."""
        timers = self._timers
        if t is None:
            timers.pop(endpoint, None)
            return
        if endpoint in timers:
            del timers[endpoint]  # set anew: it goes after the others set before it
        timers[endpoint] = t
        heap = self._heap
        if heap is not None:
            heapq.heappush(heap, (t, next(self._tiebreak), endpoint))
            if len(heap) > 2 * len(timers) + 64:
                self._build_heap()  # mostly stale entries (amortised O(1))
        elif len(timers) >= HEAP_FROM:
            self._build_heap()

    def _build_heap(self) -> None:
        """A heap of the live deadlines, ties in the order they were set."""
        tiebreak = self._tiebreak
        heap = [(d, next(tiebreak), e) for e, d in self._timers.items()]
        heapq.heapify(heap)
        self._heap = heap
