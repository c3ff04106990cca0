"""A listening endpoint: `listen(backlog)` with a SYN queue, an accept queue and SYN cookies.

As in Linux, the two queues are bounded by the backlog:

* the *SYN queue* holds half-open connections (SYN received, SYN-ACK sent). When it
  holds `backlog` entries, further SYNs are answered statelessly with SYN cookies
  (RFC 4987 §3.6) -- or, with cookies off, dropped, which is what a SYN flood
  exploits;
* the *accept queue* holds established connections the application has not yet
  accepted. It is full above `backlog` entries; then SYNs are dropped and a final
  ACK is dropped too, so the client retransmits and gets in once the application
  calls `accept`.

Half-open entries are full `Connection` objects in SYN-RECEIVED: they retransmit
their SYN-ACK on their own timer and expire after `synack_retries`.

A connection reaching the accept queue is announced by the `ConnectionAvailable`
event (``next_event``), as a listening socket becomes readable.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from synack.tcp.config import Config
from synack.tcp.connection import ACK, RST, SYN, Address, Connection, window_scale_for
from synack.tcp.events import ConnectionAvailable
from synack.tcp.isn import new_secret, ts_offset
from synack.tcp.state import State
from synack.tcp.syncookies import (
    check_cookie,
    decode_ts_options,
    encode_ts_options,
    make_cookie,
)
from synack.wire.checksum import address_bytes
from synack.wire.tcp import (
    HEADER,
    HEADER_SIZE,
    Flags,
    MalformedSegment,
    Options,
    Segment,
    build_segment,
    checksum_ok,
    joined,
    parse_options,
)

SOMAXCONN = 4096  # Linux's default net.core.somaxconn caps every backlog
# Accept cookies only while the SYN queue has overflowed recently (Linux does the
# same), so that a guessed cookie is worthless when there is no flood.
COOKIE_WINDOW = 120.0

RemoteKey = tuple[bytes, int]
Outbound = tuple[bytearray | bytes, RemoteKey]


class Listener:
    """Passive opens on one local address and port."""

    # Set by a `Host` that owns this listener: called on ``accept``/``close`` so the
    # host learns of work it did not cause itself. None when standalone.
    _wake: Callable[[Listener], object] | None = None

    def __init__(
        self,
        local: Address,
        config: Config | None = None,
        backlog: int = 128,
        *,
        syn_cookies: bool = True,
    ) -> None:
        cfg = config if config is not None else Config()
        if cfg.secret is None:
            cfg = _with_secret(cfg)
        self.config = cfg
        self.local_ip = address_bytes(local[0])
        self.local_port = local[1]
        self.backlog = max(0, min(backlog, SOMAXCONN))
        self.syn_cookies = syn_cookies
        self._secret: bytes = cfg.secret or b""
        self._syn_queue: dict[RemoteKey, Connection] = {}
        self._accept_queue: deque[Connection] = deque()
        self._established: dict[RemoteKey, Connection] = {}  # accept-queue members by peer
        self._out: list[Outbound] = []
        self._events: deque[ConnectionAvailable] = deque()
        self._last_overflow: float | None = None
        self.closed = False
        self.stats: dict[str, int] = dict.fromkeys(
            (
                "syns",
                "syns_dropped",
                "cookies_sent",
                "cookies_accepted",
                "cookies_rejected",
                "listen_overflows",
                "resets_sent",
                "expired",
            ),
            0,
        )

    # ------------------------------------------------------------------ queues

    @property
    def syn_queue_length(self) -> int:
        return len(self._syn_queue)

    @property
    def accept_queue_length(self) -> int:
        return len(self._accept_queue)

    def _syn_queue_full(self) -> bool:
        # Linux's inet_csk_reqsk_queue_is_full(): "qlen >= sk_max_ack_backlog".
        return len(self._syn_queue) >= self.backlog

    def _accept_queue_full(self) -> bool:
        # Linux's sk_acceptq_is_full(): "ack_backlog > max_ack_backlog".
        return len(self._accept_queue) > self.backlog

    def accept(self) -> Connection | None:
        """The oldest established connection not yet accepted, or None.

        From now on its segments must be routed to it directly, not to the listener.
        """
        if self._wake is not None:
            self._wake(self)
        while self._accept_queue:
            conn = self._accept_queue.popleft()
            self._established.pop(conn.remote, None)
            return conn
        return None

    def owns(self, remote: RemoteKey) -> Connection | None:
        """The half-open or not-yet-accepted connection with this peer, if any."""
        return self._syn_queue.get(remote) or self._established.get(remote)

    def close(self) -> None:
        """Stop listening: half-open connections are dropped, unaccepted ones reset."""
        if self._wake is not None:
            self._wake(self)
        self.closed = True
        for conn in self._children():
            conn.abort()
            for seg in conn.segments_to_send(0.0):
                self._out.append((joined(seg), conn.remote))
        self._syn_queue.clear()
        self._accept_queue.clear()
        self._established.clear()

    # ------------------------------------------------------------------ segments

    def handle_segment(
        self,
        data: bytes | bytearray | memoryview,
        remote_ip: str | bytes,
        now: float,
        *,
        isn_floor: int | None = None,
    ) -> None:
        """A segment addressed to our port from `remote_ip`.

        `isn_floor`: a SYN that takes over a TIME-WAIT four-tuple must get an ISN above
        the old incarnation's sequence numbers (the host passes the bound).
        """
        rip = address_bytes(remote_ip)
        if len(data) < HEADER_SIZE:
            return
        sport, _dport, seq, ack, off, flags, _wnd, _csum, _urg = HEADER.unpack_from(data)
        if not HEADER_SIZE <= (off >> 4) * 4 <= len(data):
            return  # a bad data offset: not a segment anyone can answer
        key = (rip, sport)
        conn = self._syn_queue.get(key)
        if conn is not None:
            self._to_half_open(conn, key, data, flags, now)
            return
        conn = self._established.get(key)
        if conn is not None:
            conn.handle_segment(data, now)
            self._collect(conn, now)
            return
        if self.closed:
            return
        if self.config.checksum and not checksum_ok(rip, self.local_ip, data):
            return
        if flags & RST:  # "An incoming RST should be ignored."
            return
        if flags & ACK:
            if flags & SYN or not self._try_cookie(data, key, seq, ack, now):
                # "Any acknowledgment is bad if it arrives on a connection still in the
                # LISTEN state. An acceptable reset segment should be formed."
                self._reset(key, ack)
            return
        if not flags & SYN:
            return
        self.stats["syns"] += 1
        if self._accept_queue_full():
            self.stats["listen_overflows"] += 1
            self.stats["syns_dropped"] += 1
            return
        if self._syn_queue_full():
            self._last_overflow = now
            if self.syn_cookies:
                self._send_cookie(data, key, seq, off, now)
            else:
                self.stats["syns_dropped"] += 1
            return
        conn = Connection((self.local_ip, self.local_port), key, self.config)
        conn.isn_floor = isn_floor
        conn.listen()
        conn.handle_segment(data, now)
        if conn.state is State.SYN_RECEIVED:
            self._syn_queue[key] = conn
        self._collect(conn, now)

    def _to_half_open(
        self,
        conn: Connection,
        key: RemoteKey,
        data: bytes | bytearray | memoryview,
        flags: int,
        now: float,
    ) -> None:
        if flags & ACK and not flags & (RST | SYN) and self._accept_queue_full():
            # The handshake would complete, but there is no room to queue the result:
            # drop the ACK as Linux does; our SYN-ACK retransmission brings it back.
            self.stats["listen_overflows"] += 1
            return
        conn.handle_segment(data, now)
        self._collect(conn, now)
        self._settle(conn, key)

    def _settle(self, conn: Connection, key: RemoteKey) -> None:
        state = conn.state
        if state is State.SYN_RECEIVED:
            return
        del self._syn_queue[key]
        if state is State.CLOSED or state is State.LISTEN:
            # Expired (SYN-ACK retries ran out) or reset: a RST returns a passive
            # half-open connection to LISTEN (RFC 9293 §3.10.7.4), i.e. it is forgotten.
            if conn.error is not None:
                self.stats["expired"] += 1
            return
        self._enqueue(conn, key)

    def _enqueue(self, conn: Connection, key: RemoteKey) -> None:
        if not self._accept_queue:
            self._events.append(ConnectionAvailable())
        self._accept_queue.append(conn)
        self._established[key] = conn

    def _reset(self, key: RemoteKey, ack: int) -> None:
        seg = Segment(self.local_port, key[1], seq=ack, flags=Flags.RST)
        self._out.append((self._build(seg, key[0]), key))
        self.stats["resets_sent"] += 1

    def _build(self, seg: Segment, remote_ip: bytes) -> bytes:
        if self.config.checksum:
            return build_segment(seg, src=self.local_ip, dst=remote_ip)
        return build_segment(seg)

    # ------------------------------------------------------------------ SYN cookies

    def _send_cookie(
        self, data: bytes | bytearray | memoryview, key: RemoteKey, seq: int, off: int, now: float
    ) -> None:
        hlen = (off >> 4) * 4
        try:
            opts = parse_options(data, HEADER_SIZE, hlen) if hlen > HEADER_SIZE else Options()
        except MalformedSegment:
            return
        cfg = self.config
        client_mss = opts.mss or 536
        cookie = make_cookie(
            self._secret, self.local_ip, self.local_port, key[0], key[1], seq, client_mss, now
        )
        out = Options(mss=cfg.mss)
        peer_wscale: int | None = None
        if cfg.window_scaling and opts.wscale is not None and opts.timestamps is not None:
            out.wscale = window_scale_for(cfg.receive_buffer)  # ours, as a stateful SYN-ACK
            # What the cookie must remember is the *client's* shift (RFC 7323 §2.3: its
            # windows are scaled by the shift it sent), as Linux's cookie_init_timestamp().
            peer_wscale = min(opts.wscale, 14)
        sack = cfg.sack and opts.sack_permitted and opts.timestamps is not None
        out.sack_permitted = sack
        if cfg.timestamps and opts.timestamps is not None:
            off_ts = ts_offset(self._secret, self.local_ip, self.local_port, key[0], key[1])
            tsval = (int(now * 1000) + off_ts) & 0xFFFFFFFF
            out.timestamps = (encode_ts_options(tsval, peer_wscale, sack), opts.timestamps[0])
        seg = Segment(
            self.local_port,
            key[1],
            seq=cookie,
            ack=(seq + 1) & 0xFFFFFFFF,
            flags=Flags.SYN | Flags.ACK,
            window=min(cfg.receive_buffer, 0xFFFF),
            options=out,
        )
        self._out.append((self._build(seg, key[0]), key))
        self.stats["cookies_sent"] += 1

    def _try_cookie(
        self, data: bytes | bytearray | memoryview, key: RemoteKey, seq: int, ack: int, now: float
    ) -> bool:
        """Complete a handshake from a cookie; False if the ACK does not carry a valid one."""
        if not self.syn_cookies or self._last_overflow is None:
            return False
        if now - self._last_overflow > COOKIE_WINDOW:
            return False
        client_isn = (seq - 1) & 0xFFFFFFFF
        cookie = (ack - 1) & 0xFFFFFFFF
        mss = check_cookie(
            self._secret, self.local_ip, self.local_port, key[0], key[1], client_isn, cookie, now
        )
        if mss is None:
            self.stats["cookies_rejected"] += 1
            return False
        if self._accept_queue_full():
            self.stats["listen_overflows"] += 1
            return True  # valid, but no room: drop it silently, the client will retry
        off = data[12]
        hlen = (off >> 4) * 4
        try:
            opts = parse_options(data, HEADER_SIZE, hlen) if hlen > HEADER_SIZE else Options()
        except MalformedSegment:
            return False
        wscale: int | None = None
        sack = False
        tsval: int | None = None
        if opts.timestamps is not None and self.config.timestamps:
            tsval = opts.timestamps[0]
            wscale, sack = decode_ts_options(opts.timestamps[1])
        conn = Connection((self.local_ip, self.local_port), key, self.config)
        conn.open_from_cookie(client_isn, cookie, mss, wscale, sack, tsval, now)
        conn.handle_segment(data, now)
        self._collect(conn, now)
        if conn.state is State.CLOSED:
            return True
        self.stats["cookies_accepted"] += 1
        self._enqueue(conn, key)
        return True

    # ------------------------------------------------------------------ events, output, timers

    def next_event(self) -> ConnectionAvailable | None:
        """The oldest event not yet taken, or None."""
        return self._events.popleft() if self._events else None

    def _collect(self, conn: Connection, now: float) -> None:
        for seg in conn.segments_to_send(now):
            self._out.append((joined(seg), conn.remote))

    @property
    def has_output(self) -> bool:
        """Whether ``segments_to_send`` might return anything (a cheap check for hosts)."""
        return bool(self._out or self._syn_queue or self._accept_queue)

    def segments_to_send(self, now: float) -> list[Outbound]:
        """Segments to transmit, each with the (address, port) of the peer it is for."""
        out = self._out
        self._out = []
        for conn in self._children():
            for seg in conn.segments_to_send(now):
                out.append((joined(seg), conn.remote))
        return out

    def _children(self) -> list[Connection]:
        """Every connection still in our care: half-open, or established but not accepted."""
        return [*self._syn_queue.values(), *self._accept_queue]

    def get_timer(self) -> float | None:
        times = [t for t in (conn.get_timer() for conn in self._children()) if t is not None]
        return min(times) if times else None

    def handle_timer(self, now: float) -> None:
        for key, conn in list(self._syn_queue.items()):
            t = conn.get_timer()
            if t is not None and t <= now:
                conn.handle_timer(now)
                self._settle(conn, key)
        for conn in list(self._accept_queue):
            t = conn.get_timer()
            if t is not None and t <= now:
                conn.handle_timer(now)


def _with_secret(cfg: Config) -> Config:
    from dataclasses import replace

    return replace(cfg, secret=new_secret())
