"""One TCP connection: its transmission control block and state machine (RFC 9293 §3.10).

The connection is sans-IO. Its driver feeds it

* segments that arrived (``handle_segment(data, now)``),
* application calls (``connect``, ``send``, ``receive``, ``shutdown``, ``close``, ``abort``),
* the passing of time (``handle_timer(now)`` once ``get_timer()`` is due),

and collects what it produces: segments to transmit (``segments_to_send(now)``), events
(``next_event()``), and the next deadline (``get_timer()``). ``now`` is seconds on any
monotonic clock; the connection never reads one.

Sequence numbers are kept *unwrapped*: plain integers that start at the 32-bit ISN and
grow past 2**32, so that every comparison below is an ordinary ``<``. Incoming 32-bit
values are unwrapped next to the number they must be near (``seq_diff``), and outgoing
ones are masked with ``& MASK``.

Segment processing follows the order of RFC 9293 §3.10.7.4 ("first check sequence
number", "second check the RST bit", ...); the comments quote the clause each block
implements.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from typing import Any

from synack.tcp.config import Config
from synack.tcp.congestion import CongestionControl, make_congestion_control
from synack.tcp.errors import (
    ConnectionClosing,
    ConnectionDoesNotExist,
    ConnectionRefused,
    ConnectionReset,
    ConnectionTimedOut,
    TCPError,
)
from synack.tcp.events import (
    Closed,
    Connected,
    DataAvailable,
    EndOfStream,
    Event,
    Reset,
    SendSpace,
    StateChanged,
    TimedOut,
)
from synack.tcp.isn import isn as make_isn
from synack.tcp.isn import new_secret, ts_offset
from synack.tcp.ranges import RangeSet
from synack.tcp.rate import RateSampler
from synack.tcp.recovery import DUP_THRESH, PTO_MIN, Recovery
from synack.tcp.rtt import RttEstimator
from synack.tcp.sendbuf import SendBuffer
from synack.tcp.state import ACCEPTS_SEND, RECEIVES_TEXT, SENT_FIN, SYNCHRONIZED, State
from synack.wire.checksum import address_bytes, pseudo_header_sum, segment_sum_ok
from synack.wire.seq import MASK, seq_lt
from synack.wire.tcp import (
    HEADER,
    HEADER_SIZE,
    HEADER_TS,
    HEADER_TS_SIZE,
    OFFSET_PLAIN,
    OFFSET_TS,
    TS_PREFIX,
    MalformedSegment,
    Options,
    Outgoing,
    encode_options,
    encode_sack,
    encode_timestamps,
    pack_ack,
    pack_ack_sack,
    pack_burst,
    pack_data,
    pack_segment,
    parse_options,
    sack_option_size,
    unpack_header,
    unpack_timestamps,
    unpack_ts_sack,
)

_ESTABLISHED = State.ESTABLISHED
# Fieldless and frozen: one instance serves every connection (one less object per message).
_DATA_AVAILABLE = DataAvailable()
# The states entered by taking the peer's FIN, whose number is then RCV.NXT - 1.
_AFTER_PEER_FIN = (State.CLOSE_WAIT, State.CLOSING, State.LAST_ACK)
# Bound once: header prediction unpacks with one of these per segment (wire's layouts).
_unpack_plain = HEADER.unpack_from
_unpack_ts = HEADER_TS.unpack_from

FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10

Address = tuple[str | bytes, int]

# Without an MSS option the peer can take 536 octets (RFC 9293 §3.7.1, IPv4).
DEFAULT_PEER_MSS = 536
# The smallest MSS we let a peer impose (Linux's tcp_min_snd_mss).
MIN_SND_MSS = 48
# RFC 7323 §5.5: a TS.Recent older than 24 days may have wrapped; PAWS must not use it.
PAWS_IDLE_LIMIT = 24 * 24 * 3600.0
# Segments acknowledged at once at the start of a connection, so that slow start is not
# slowed by delayed ACKs (Linux's "quick ACK" mode does the same).
QUICKACK_SEGMENTS = 16
# The ACKs one batch of arrivals may owe before the one that ends it (see `_ack_points`);
# even, as a full list is thinned to every second point.
ACK_POINTS_MAX = 4
# Probes sent, one RTO apart, after a port-unreachable while waiting for a second one
# (`port_unreachable`); then TCP's own timers watch the peer again.
GONE_PROBES = 3
# The receive queue keeps one `bytes` per segment's payload, except that a payload of at
# most RCV_MERGE // 2 bytes joins the last one while both fit in RCV_MERGE (a copy of
# at most that): a `bytes` object costs about 50 bytes of its own, so a peer's small
# segments, held unread, would otherwise take up to 50 times the window's memory.
# Every payload kept alone then has RCV_MERGE // 2 bytes or more, on average: the
# overhead stays under 5%. Full segments of an MTU of 1500 or more are never merged.
RCV_MERGE = 2048


def window_scale_for(buffer: int) -> int:
    """The smallest shift that lets a 16-bit window field cover `buffer` (at most 14, RFC 7323)."""
    shift = 0
    while (buffer >> shift) > 0xFFFF and shift < 14:
        shift += 1
    return shift


class _Inbound:
    """A parsed incoming segment, with sequence numbers still 32-bit."""

    __slots__ = ("ack", "flags", "opts", "payload", "seq", "tsecr", "tsval", "wnd")

    def __init__(
        self,
        seq: int,
        ack: int,
        flags: int,
        wnd: int,
        payload: memoryview,
        tsval: int | None,
        tsecr: int,
        opts: Options | None,
    ) -> None:
        self.seq = seq
        self.ack = ack
        self.flags = flags
        self.wnd = wnd
        self.payload = payload
        self.tsval = tsval
        self.tsecr = tsecr
        self.opts = opts


class Connection:
    """A TCP connection between `local` and `remote`, each an (address, port) pair."""

    # Slots, not a dict per instance: the control block has over a hundred fields, and
    # their dict was about 6.5 KB of every connection (a chat server holds thousands).
    # __dict__ stays for what a test or a debugger hangs on a connection.
    __slots__ = (
        "__dict__",
        "__weakref__",
        "_ack_now",
        "_ack_owe_at",
        "_ack_points",
        "_ack_thinned",
        "_cc",
        "_challenge_at",
        "_challenge_tokens",
        "_checksum",
        "_close_at",
        "_comp_ack_at",
        "_comp_acks",
        "_comp_cap",
        "_comp_last",
        "_comp_rate_at",
        "_comp_rate_bytes",
        "_comp_rcv_nxt",
        "_comp_runs",
        "_csum_pseudo",
        "_delack_at",
        "_dsack",
        "_dupacks_sent",
        "_eof",
        "_events",
        "_fin_queued",
        "_fin_seq",
        "_force_send",
        "_gather_from",
        "_gone_confirm_at",
        "_gone_heard",
        "_gone_keepalive_at",
        "_gone_probes",
        "_gone_since",
        "_handshake_timed",
        "_keepalive_at",
        "_last_ack_sent",
        "_last_recv",
        "_last_send",
        "_ooo_bytes",
        "_ooo_data",
        "_ooo_ranges",
        "_ooo_starts",
        "_opened",
        "_opt_len",
        "_pace_at",
        "_pace_next",
        "_passive",
        "_peer_mss",
        "_persist_at",
        "_persist_backoff",
        "_prediction",
        "_probes",
        "_pseudo",
        "_queued",
        "_quickack",
        "_rate",
        "_rcv_adv",
        "_rcv_chunks",
        "_rcv_fin_seq",
        "_rcv_first",
        "_rcv_limit",
        "_rcv_mss",
        "_rcv_off",
        "_rcv_queued",
        "_rcv_wscale",
        "_read_closed",
        "_readable_signalled",
        "_rec",
        "_retries",
        "_rto_at",
        "_rtt",
        "_rtt_seq",
        "_rtt_time",
        "_rxt_ts",
        "_rxt_ts_end",
        "_sack_ok",
        "_sack_recent",
        "_sack_run_end",
        "_secret",
        "_send_blocked",
        "_send_limit",
        "_send_resume",
        "_snd_sml",
        "_snd_wscale",
        "_sndbuf",
        "_syn_pending",
        "_ts_offset",
        "_ts_ok",
        "_ts_recent",
        "_ts_recent_at",
        "_una_since",
        "_wake",
        "_ws_ok",
        "bytes_in",
        "bytes_out",
        "config",
        "counters",
        "error",
        "irs",
        "isn_floor",
        "iss",
        "local_ip",
        "local_port",
        "max_snd_wnd",
        "rcv_nxt",
        "remote_ip",
        "remote_port",
        "segs_in",
        "segs_out",
        "snd_max",
        "snd_mss",
        "snd_nxt",
        "snd_una",
        "snd_wl1",
        "snd_wl2",
        "snd_wnd",
        "state",
    )

    def __init__(self, local: Address, remote: Address, config: Config | None = None) -> None:
        cfg = config if config is not None else Config()
        self.config = cfg
        # Set by a `Host` that owns this connection: called by the user calls that can
        # create output, timers or events (send, receive, shutdown, close, abort), so the
        # host need not scan idle connections. None when standalone.
        self._wake: Callable[[Connection], object] | None = None
        self.local_ip = address_bytes(local[0])
        self.local_port = local[1]
        self.remote_ip = address_bytes(remote[0])
        self.remote_port = remote[1]
        if len(self.local_ip) != len(self.remote_ip):
            raise ValueError("local and remote addresses are of different families")
        self._secret = cfg.secret if cfg.secret is not None else new_secret()
        # The pseudo-header sum is the same in both directions (addition commutes).
        self._pseudo = pseudo_header_sum(self.local_ip, self.remote_ip)
        self._checksum = cfg.checksum
        # What wire's packers take: the pseudo-header sum, or None for no checksum.
        self._csum_pseudo = self._pseudo if cfg.checksum else None
        self._prediction = cfg.header_prediction  # see Config.header_prediction
        self._gather_from = cfg.gather_from  # see Config.gather_from

        self.state = State.CLOSED
        self._opened = False  # connect() or listen() was called: a TCB opens only once
        # A lower bound (32-bit, modulo 2**32) for our ISN: set when this connection
        # reuses the four-tuple of one still in TIME-WAIT (RFC 9293 §3.6.1).
        self.isn_floor: int | None = None
        # A list: an empty deque is 760 bytes on every connection, and a connection
        # rarely holds more than a few events at once (pop(0) of a few is cheap).
        self._events: list[Event] = []
        self.error: TCPError | None = None
        self._passive = False

        # -- send sequence variables (RFC 9293 §3.3.1), unwrapped --
        self.iss = 0
        self.snd_una = 0
        self.snd_nxt = 0  # next new sequence number to send
        self.snd_max = 0  # highest sequence number sent, plus one
        self.snd_wnd = 0
        self.snd_wl1 = 0
        self.snd_wl2 = 0
        self.max_snd_wnd = 0
        self._snd_wscale = 0  # shift applied to windows the peer advertises
        self._sndbuf = SendBuffer()  # bytes [SND.UNA's data, queued end)
        self._send_limit = cfg.send_buffer
        # A writer that filled the buffer hears SendSpace once a quarter of it is free.
        # Waiting for half (as this once did) starved the sender under loss: a hole
        # holds SND.UNA, so unacknowledged data stays queued for two round trips and
        # more, and with over half of the buffer in flight nothing new was written
        # while the window had room (bench/side_by_side.py, BBR at 40 MB/s and 1% loss:
        # 24.9 -> 31.5 MB/s, docs/benchmarks.md). Linux wakes a writer at a third free
        # (sk_stream_write_space); a quarter costs at most four wakes per buffer's worth.
        self._send_resume = cfg.send_buffer - (cfg.send_buffer >> 2)
        self._send_blocked = False
        self._fin_queued = False
        self._fin_seq = -1  # sequence number of our FIN, once queued
        self._syn_pending = False  # (re)send SYN or SYN-ACK at the next output

        # -- receive sequence variables, unwrapped --
        self.irs = 0
        self.rcv_nxt = 0
        self._rcv_adv = 0  # right edge of the window we advertised (RCV.NXT + RCV.WND)
        self._rcv_wscale = 0
        # Received in-order bytes not yet read: one `bytes` per segment, in order, of
        # which the first has been read up to _rcv_off; _rcv_queued counts them. A queue
        # of the segments' own payloads, not one buffer: nothing is ever moved to make
        # room (a buffer read from the front had its unread rest moved to the front, a
        # copy of up to the whole window, 10% of a 64 KiB-segment receiver's time), a
        # read of whole segments joins them in one copy, and an emptied queue holds no
        # memory. Each payload is a block of its own size, which glibc keeps in its
        # heap and reuses (blocks of 128 KiB or more it would map and unmap afresh).
        # A list read from _rcv_first (payloads read are replaced by b"" at once, and
        # cut off in bulk): an empty deque alone is 760 bytes, on every connection.
        self._rcv_chunks: list[bytes] = []
        self._rcv_first = 0
        self._rcv_off = 0
        self._rcv_queued = 0
        self._rcv_limit = cfg.receive_buffer
        self._readable_signalled = False
        self._ooo_starts: list[int] = []  # out-of-order segments, sorted by start
        self._ooo_data: list[bytes] = []
        self._ooo_bytes = 0
        self._ooo_ranges = RangeSet()  # what the out-of-order queue holds, merged: SACK blocks
        self._sack_recent: list[int] = []  # seqs of recent out-of-order arrivals, newest first
        self._sack_run_end = -1  # where the latest out-of-order arrival ended
        self._dsack: tuple[int, int] | None = None  # a duplicate to report (RFC 2883), once
        self._rcv_fin_seq = -1
        self._eof = False  # the peer's FIN has been delivered
        self._read_closed = False  # close() was called: arriving data is answered with RST

        # -- negotiated options --
        self._peer_mss = DEFAULT_PEER_MSS
        self._ts_ok = False
        self._sack_ok = False
        self._ws_ok = False
        self._ts_offset = 0
        self._ts_recent = 0
        self._ts_recent_at = 0.0
        self._last_ack_sent = 0
        self._opt_len = 0  # bytes of options on every non-SYN segment (12 with timestamps)
        self.snd_mss = DEFAULT_PEER_MSS  # payload bytes per full segment we send
        self._rcv_mss = cfg.mss  # payload bytes per full segment we expect

        # -- acknowledgement generation --
        self._ack_now = False
        # RFC 5681 §4.2: "an ACK SHOULD be generated for at least every second full-sized
        # segment". A driver hands over all that one pass read (GRO bursts) before it
        # asks what to send, so the ACKs owed within it are kept here, as (RCV.NXT,
        # TS.Recent) when each fell due, and sent before anything queued after them
        # (`_flush_ack_points`). One ACK for the whole pass would be a stretch ACK: the
        # sender's slow start would grow by HyStart++'s L = 8 segments per ACK instead of
        # the segments it covered, and a lost one would silence the burst. At most
        # ACK_POINTS_MAX per pass, spread over it (`_owe_ack`), about Linux's density of
        # one ACK per GRO packet when a pass is large.
        self._ack_points: list[tuple[int, int]] = []
        self._ack_thinned = 0  # the points are 2 segments << this apart, at least
        self._ack_owe_at = 0  # the RCV.NXT before which no new point can fall due
        self._delack_at: float | None = None
        self._quickack = QUICKACK_SEGMENTS
        self._queued: list[Outgoing] = []  # control segments built on arrival (dupACKs, RSTs)
        # SACK compression (Config.comp_sack_nr), as Linux's compressed_ack: ACKs owed
        # and folded into the one the timer sends, the RCV.NXT the immediate duplicate
        # ACKs were counted for, and how many of those were sent.
        self._comp_acks = 0
        self._comp_runs = 0  # runs of arrivals (see _note_sack) since the last ACK
        self._comp_rcv_nxt = -1
        self._dupacks_sent = 0
        self._comp_ack_at: float | None = None
        # How many ACKs may be folded into one (_comp_limit), from the rate data came in
        # over the round trip that began at _comp_rate_at with bytes_in at _comp_rate_bytes
        # and the one before it.
        self._comp_cap = 0
        self._comp_last = 0  # segments per delay in the round trip measured last
        self._comp_rate_at = -1.0
        self._comp_rate_bytes = 0

        # -- retransmission and recovery --
        self._rtt = RttEstimator(cfg.rto_initial, cfg.rto_min, cfg.rto_max)
        self._cc: CongestionControl = make_congestion_control(
            cfg.congestion_control, self.snd_mss, cfg.initial_window
        )
        self._rto_at: float | None = None
        self._retries = 0
        self._una_since = 0.0  # when the oldest unacknowledged data was (re)sent or acked last
        self._rtt_seq = -1  # Karn timing of one segment when timestamps are off
        self._rtt_time = 0.0
        # With timestamps: our TSval on the latest retransmission (-1: no retransmitted
        # data is outstanding), and the end of the retransmitted data, for Karn's rule.
        self._rxt_ts = -1
        self._rxt_ts_end = 0
        # Loss detection and recovery: the scoreboard, tail loss probes, undo (recovery.py).
        self._rec = Recovery(
            self._rtt,
            DEFAULT_PEER_MSS,
            tlp=cfg.tail_loss_probe,
            rack=cfg.rack,
            prr=cfg.prr,
            pto_min=PTO_MIN if cfg.probe_timeout_min is None else cfg.probe_timeout_min,
        )
        # Delivery-rate samples and pacing, only for a congestion control that asks for
        # them (BBR): the sampler, the earliest time the next paced burst may leave, and
        # the timer set while data waits for it. The core paces through get_timer.
        self._rate: RateSampler | None = None
        self._pace_next = 0.0
        self._pace_at: float | None = None
        self._persist_at: float | None = None
        self._handshake_timed = True
        self._last_send = 0.0
        self._force_send = False
        self._snd_sml = 0  # end of the last short segment sent (Nagle, Minshall's variant)
        self._persist_backoff = 0
        self._probes = 0  # unanswered window or keepalive probes
        self._keepalive_at: float | None = None  # keepalive, or the gone peer's probe
        self._last_recv = 0.0
        # A port-unreachable said the peer's process may be gone (`port_unreachable`):
        # since when, `segs_in` then (a count, not `_last_recv`: a segment handed in at
        # the error's very `now`, after it, is heard too), when a second one confirms
        # it, probes sent.
        self._gone_since: float | None = None
        self._gone_heard = 0
        self._gone_confirm_at = 0.0
        self._gone_probes = 0
        self._gone_keepalive_at: float | None = None  # keepalive's own deadline meanwhile
        self._close_at: float | None = None  # TIME-WAIT or orphaned FIN-WAIT-2 expiry
        self._challenge_tokens = float(cfg.challenge_ack_limit)
        self._challenge_at = 0.0

        # Counters, as Linux keeps them for TCP_INFO and netstat. The four touched by
        # every segment are plain attributes (cheaper than a dict on the hot path).
        self.segs_out = 0
        self.segs_in = 0
        self.bytes_out = 0
        self.bytes_in = 0
        self.counters: dict[str, int] = dict.fromkeys(
            (
                "retransmits",
                "fast_retransmits",
                "timeouts",
                "dropped",
                "bad_checksum",
                "out_of_order",
                "challenge_acks",
                "port_unreachable",  # ICMP port-unreachables acted on
                "icmp_ignored",  # ICMP errors quoting a sequence number not in flight
            ),
            0,
        )

    # ------------------------------------------------------------------ properties

    @property
    def local(self) -> tuple[bytes, int]:
        return self.local_ip, self.local_port

    @property
    def remote(self) -> tuple[bytes, int]:
        return self.remote_ip, self.remote_port

    @property
    def send_space(self) -> int:
        """Bytes ``send`` would accept now."""
        return max(0, self._send_limit - len(self._sndbuf))

    @property
    def receive_available(self) -> int:
        """Bytes ``receive`` would return now."""
        return self._rcv_queued

    @property
    def at_eof(self) -> bool:
        """The peer has finished sending and every byte it sent has been received."""
        return self._eof and not self._rcv_queued

    @property
    def unsent(self) -> int:
        """Bytes queued by ``send`` and not yet transmitted once."""
        buf = self._sndbuf
        return max(buf.end - max(self.snd_nxt, buf.seq), 0)

    @property
    def unacked(self) -> int:
        """Bytes (and SYN/FIN) sent but not yet acknowledged."""
        return self.snd_max - self.snd_una

    @property
    def cwnd(self) -> int:
        return self._cc.cwnd

    @property
    def ssthresh(self) -> int:
        return self._cc.ssthresh

    @property
    def srtt(self) -> float | None:
        return self._rtt.srtt

    @property
    def rto(self) -> float:
        return self._rtt.rto

    @property
    def stats(self) -> dict[str, int]:
        """Every counter: segments and bytes each way, retransmissions, drops by cause."""
        return {
            "segments_sent": self.segs_out,
            "segments_received": self.segs_in,
            "bytes_sent": self.bytes_out,
            "bytes_received": self.bytes_in,
            **self.counters,
            **self._rec.counters,
        }

    def info(self) -> dict[str, Any]:
        """A snapshot of the control block, like Linux's TCP_INFO."""
        return {
            "state": self.state.value,
            "snd_una": self.snd_una & MASK,
            "snd_nxt": self.snd_max & MASK,
            "rcv_nxt": self.rcv_nxt & MASK,
            "snd_wnd": self.snd_wnd,
            "rcv_wnd": self._rcv_adv - self.rcv_nxt,
            "snd_mss": self.snd_mss,
            "cwnd": self._cc.cwnd,
            "ssthresh": self._cc.ssthresh,
            "srtt": self._rtt.srtt,
            "rttvar": self._rtt.rttvar,
            "rto": self._rtt.rto,
            "congestion_control": self._cc.name,
            "sack": self._sack_ok,
            "timestamps": self._ts_ok,
            "window_scaling": self._ws_ok,
            "in_recovery": self._rec.in_recovery,
            **self.stats,
        }

    # ------------------------------------------------------------------ events and timers

    def next_event(self) -> Event | None:
        """The oldest event not yet taken, or None."""
        return self._events.pop(0) if self._events else None

    def get_timer(self) -> float | None:
        """When ``handle_timer`` must next be called, or None if no timer is running."""
        # Written out, not a loop over a tuple: this runs once or twice per segment and
        # most of the timers are off. The recovery's two are read directly.
        best = self._rto_at
        rec = self._rec
        t = rec.reo_at
        if t is not None and (best is None or t < best):
            best = t
        t = rec.pto_at
        if t is not None and (best is None or t < best):
            best = t
        t = self._pace_at
        if t is not None and (best is None or t < best):
            best = t
        t = self._delack_at
        if t is not None and (best is None or t < best):
            best = t
        t = self._comp_ack_at
        if t is not None and (best is None or t < best):
            best = t
        t = self._persist_at
        if t is not None and (best is None or t < best):
            best = t
        t = self._keepalive_at
        if t is not None and (best is None or t < best):
            best = t
        t = self._close_at
        if t is not None and (best is None or t < best):
            best = t
        return best

    # ------------------------------------------------------------------ user calls

    def _check_openable(self) -> None:
        if self.state is not State.CLOSED:
            raise ConnectionClosing("connection already exists")
        if self._opened:
            # RFC 9293 §3.10.1: OPEN creates a new TCB. This object *is* a TCB, and the old
            # one's buffers and error must not leak into a new stream: make a new Connection.
            raise ConnectionDoesNotExist("this connection has ended; open a new Connection")
        self._opened = True

    def connect(self, now: float) -> None:
        """Active OPEN (RFC 9293 §3.10.1): send SYN and enter SYN-SENT."""
        self._check_openable()
        self._choose_iss(now)
        self._syn_pending = True
        self._set_state(State.SYN_SENT)

    def listen(self) -> None:
        """Passive OPEN for this single connection: wait in LISTEN for a SYN."""
        self._check_openable()
        self._passive = True
        self._set_state(State.LISTEN)

    def send(self, data: bytes | bytearray | memoryview) -> int:
        """Queue bytes to send; returns how many fit in the send buffer (maybe 0).

        RFC 9293 §3.10.2: allowed from SYN-SENT to CLOSE-WAIT; after our FIN,
        "error: connection closing".
        """
        state = self.state
        if state not in ACCEPTS_SEND:
            if self.error is not None:
                raise self.error
            if state in SENT_FIN or self._fin_queued:
                raise ConnectionClosing("connection closing")
            raise ConnectionDoesNotExist("connection does not exist")
        if self._fin_queued:
            raise ConnectionClosing("connection closing")
        buf = self._sndbuf
        room = self._send_limit - (buf.end - buf.seq)
        n = len(data)
        if n > room:
            n = max(room, 0)
            self._send_blocked = True
            data = memoryview(data)[:n]
        if n:
            buf.append(data)
            if self._wake is not None:
                self._wake(self)
        return n

    def receive(self, max_bytes: int = -1) -> bytes:
        """Take up to `max_bytes` received bytes (all, if negative); b"" when none are waiting.

        Whether the stream has ended is ``at_eof``; reading may open the receive
        window, so call ``segments_to_send`` afterwards.
        """
        queued = self._rcv_queued
        if not queued:
            if self.error is not None and not self._eof:
                raise self.error
            return b""
        n = queued if max_bytes < 0 or max_bytes > queued else max_bytes
        chunks = self._rcv_chunks
        i = self._rcv_first
        off = self._rcv_off
        first = chunks[i]
        rest = len(first) - off
        if n < rest:  # inside the first payload
            data = first[off : off + n]
            off += n
        elif n == rest:  # the first payload, to its end: no copy if it is whole
            data = first[off:] if off else first
            chunks[i] = b""
            i += 1
            off = 0
        else:  # several payloads: one copy
            parts: list[bytes | memoryview] = [memoryview(first)[off:] if off else first]
            chunks[i] = b""
            i += 1
            off = 0
            need = n - rest
            while need:
                chunk = chunks[i]
                size = len(chunk)
                if size > need:
                    parts.append(memoryview(chunk)[:need])
                    off = need
                    break
                parts.append(chunk)
                chunks[i] = b""
                i += 1
                need -= size
            data = b"".join(parts)
        self._rcv_taken(i, off)
        self._rcv_queued = queued - n
        self._after_read()
        if self._wake is not None:
            self._wake(self)
        return data

    def receive_into(self, target: bytearray | memoryview) -> int:
        """Copy received bytes into `target`; returns the count (0 when none are waiting)."""
        queued = self._rcv_queued
        n = min(queued, len(target))
        if n == 0:
            if not queued and self.error is not None and not self._eof:
                raise self.error  # as receive: only once what arrived has been read
            return 0
        chunks = self._rcv_chunks
        i = self._rcv_first
        off = self._rcv_off
        at = 0
        while at < n:
            chunk = chunks[i]
            take = min(len(chunk) - off, n - at)
            target[at : at + take] = memoryview(chunk)[off : off + take]
            at += take
            off += take
            if off == len(chunk):
                chunks[i] = b""
                i += 1
                off = 0
        self._rcv_taken(i, off)
        self._rcv_queued = queued - n
        self._after_read()
        if self._wake is not None:
            self._wake(self)
        return n

    def _rcv_taken(self, i: int, off: int) -> None:
        """The user has read the payloads before the `i`-th and `off` bytes of it: an
        emptied queue lets go of its list; a read-out front half is cut off (each
        pointer moves once, on average)."""
        chunks = self._rcv_chunks
        if i == len(chunks):
            chunks.clear()
            i = 0
        elif i >= 32 and i << 1 >= len(chunks):
            del chunks[:i]
            i = 0
        self._rcv_first = i
        self._rcv_off = off

    def _rcv_append(self, data: bytes | memoryview) -> None:
        """Queue in-order bytes for the user (a copy, unless they are already `bytes`),
        a small payload joined to the last one (see RCV_MERGE)."""
        n = len(data)
        chunks = self._rcv_chunks
        if n <= RCV_MERGE >> 1 and chunks and len(chunks[-1]) + n <= RCV_MERGE:
            chunks[-1] += data
        else:
            chunks.append(bytes(data))
        self._rcv_queued += n

    def shutdown(self) -> None:
        """Stop sending (RFC 9293 CLOSE, as ``shutdown(SHUT_WR)``): a FIN follows the queued data.

        The other direction stays open: data keeps arriving until the peer's FIN.
        """
        if self._wake is not None:
            self._wake(self)
        state = self.state
        if state is State.CLOSED:
            raise self.error or ConnectionDoesNotExist("connection does not exist")
        if state is State.LISTEN:
            self._terminate()  # "Any outstanding RECEIVEs are returned ... delete TCB"
            return
        if state is State.SYN_SENT:
            # "Delete the TCB and return 'error: closing' responses to any queued SENDs."
            self._terminate()
            return
        if self._fin_queued:
            return
        self._fin_queued = True
        self._fin_seq = self._sndbuf.end
        if state is State.ESTABLISHED:
            self._set_state(State.FIN_WAIT_1)
        elif state is State.CLOSE_WAIT:
            self._set_state(State.LAST_ACK)
        elif state is State.SYN_RECEIVED and not self._sndbuf:
            # RFC 9293 §3.10.4: "If no SENDs have been issued and there is no pending data
            # to send, then form a FIN segment and send it, and enter FIN-WAIT-1 state;
            # otherwise, queue for processing after entering ESTABLISHED state."
            self._set_state(State.FIN_WAIT_1)

    def close(self) -> None:
        """Close both directions, like ``socket.close()``.

        Unread received data means the application lost something, so the peer is
        told with RST instead of FIN (RFC 9293 §3.6.1 / RFC 2525 §2.17); data that
        arrives after close is answered with RST too.
        """
        if self._wake is not None:
            self._wake(self)
        if self.state in (State.CLOSED, State.LISTEN, State.SYN_SENT):
            self._terminate()
            return
        if self._rcv_queued and self.state in SYNCHRONIZED:
            self._rcv_drop()
            if self.state is State.TIME_WAIT:
                return  # both FINs are done: TIME-WAIT still lasts its 2*MSL (MUST-13)
            # As Linux's tcp_close(): "Unread data was tossed", so reset the connection,
            # in every synchronized state (LAST-ACK and CLOSING included).
            self._queued.append(self._build_rst(self._rst_seq()))
            self._sndbuf.clear()
            self._terminate()
            return
        self._read_closed = True
        self.shutdown()
        if self.state is State.FIN_WAIT_2 and self._close_at is None:
            # Already half-closed: nobody will ever read, so FIN-WAIT-2 may not last for
            # ever (Linux's tcp_fin_timeout), counted from the last sign of activity.
            self._close_at = max(self._last_recv, self._last_send) + self.config.fin_wait_2_timeout

    def abort(self) -> None:
        """ABORT (RFC 9293 §3.10.5): send RST if synchronized and forget the connection."""
        if self._wake is not None:
            self._wake(self)
        if self.state in (
            State.SYN_RECEIVED,
            State.ESTABLISHED,
            State.FIN_WAIT_1,
            State.FIN_WAIT_2,
            State.CLOSE_WAIT,
        ):
            self._queued.append(self._build_rst(self._rst_seq()))
        # "All queued SENDs and RECEIVEs should be given 'reset' responses": nothing of
        # this connection is delivered after an abort.
        self._sndbuf.clear()
        self._rcv_drop()
        self._terminate()

    def _rcv_drop(self) -> None:
        """Forget what was received and not read, and the memory that held it."""
        self._rcv_chunks = []
        self._rcv_first = self._rcv_off = self._rcv_queued = 0

    # ------------------------------------------------------------------ passive opening helpers

    def _choose_iss(self, now: float) -> None:
        iss = make_isn(
            self._secret, self.local_ip, self.local_port, self.remote_ip, self.remote_port, now
        )
        floor = self.isn_floor
        if floor is not None and seq_lt(iss, floor):
            iss = floor
        self._set_iss(iss, now)

    def _set_iss(self, iss: int, now: float) -> None:
        self.iss = iss
        self.snd_una = self.snd_nxt = self.snd_max = iss
        self._sndbuf.rebase(iss + 1)
        self._rec.reset(iss)
        self._una_since = now
        if self.config.timestamps:
            self._ts_offset = ts_offset(
                self._secret, self.local_ip, self.local_port, self.remote_ip, self.remote_port
            )
        if self._fin_queued:
            self._fin_seq = self._sndbuf.end

    def _choose_wscale(self) -> int:
        return window_scale_for(self._rcv_limit)

    def _negotiate(self, opts: Options | None, tsval: int | None, now: float) -> None:
        """Settle MSS, window scale, SACK and timestamps from the peer's SYN or SYN-ACK.

        An option is used when the config enables it and the peer's SYN carries it: on an
        active open our SYN offered every enabled option; on a passive open our SYN-ACK
        echoes only what is used (RFC 7323 §2.2, RFC 2018 §2).
        """
        cfg = self.config
        o = opts if opts is not None else Options()
        # An MSS option of 1 would make every byte a segment, at the peer's whim: clamp
        # as Linux does (tcp_min_snd_mss, after CVE-2019-11479).
        self._peer_mss = max(o.mss, MIN_SND_MSS) if o.mss else DEFAULT_PEER_MSS
        # RFC 7323 §2.2: scaling only if both SYNs carry the option; shifts above 14 are 14.
        self._ws_ok = cfg.window_scaling and o.wscale is not None
        if self._ws_ok:
            self._snd_wscale = min(o.wscale or 0, 14)
            self._rcv_wscale = self._choose_wscale()
        else:
            self._snd_wscale = self._rcv_wscale = 0
            self._rcv_limit = min(self._rcv_limit, 0xFFFF)
        self._sack_ok = cfg.sack and o.sack_permitted
        self._ts_ok = cfg.timestamps and tsval is not None
        if self._ts_ok:
            assert tsval is not None
            self._ts_recent = tsval
            self._ts_recent_at = now  # RFC 7323 §5.5's 24-day clock starts here
        self._opt_len = 12 if self._ts_ok else 0
        # RFC 9293 §3.7.1: Eff.snd.MSS = min(SendMSS+20, MMS_S) - TCPhdrsize - IPoptionsize.
        self.snd_mss = max(min(self._peer_mss, cfg.mss) - self._opt_len, 1)
        # What a full segment from the peer holds: our MSS and its own both bound it
        # (Linux goes on measuring; _rcv_mss grows if larger segments arrive).
        self._rcv_mss = max(min(cfg.mss, self._peer_mss) - self._opt_len, 1)
        self._cc = make_congestion_control(cfg.congestion_control, self.snd_mss, cfg.initial_window)
        self._rate = RateSampler() if self._cc.uses_rate_samples else None
        if self._rate is not None:
            # PRR is a loss-based sender's way down to ssthresh; a model-based one sets
            # its own window in recovery (BBR: packet conservation, then its model), as
            # Linux's tcp_cong_control skips PRR for a congestion control with its own
            # cong_control.
            self._rec.prr = False
        self._rec.sack_ok = self._sack_ok
        self._rec.mss = self.snd_mss

    # ------------------------------------------------------------------ inbound segments

    def handle_segment(self, data: bytes | bytearray | memoryview, now: float) -> None:
        """Process one arriving segment (the TCP header and its payload)."""
        if self.state is _ESTABLISHED and self._prediction and self._predicted(data, now):
            return
        seg = self._parse(data)
        if seg is None:
            return
        self.segs_in += 1
        self._last_recv = now
        state = self.state
        if state in SYNCHRONIZED or state is State.SYN_RECEIVED:
            self._segment_synchronized(seg, now)
        elif state is State.SYN_SENT:
            self._segment_syn_sent(seg, now)
        elif state is State.LISTEN:
            self._segment_listen(seg, now)
        else:
            self._segment_closed(seg)

    def handle_segments(
        self, segments: Sequence[bytes | bytearray | memoryview], start: int, now: float
    ) -> int:
        """Process ``segments[start]`` and the segments after it that carry this
        connection's ports, as ``handle_segment`` would one by one; returns the index of
        the first segment not taken (``len(segments)`` when all were).

        The batch entry a driver uses for the datagrams of one read (a GRO read is one
        peer's burst): a run of in-order data segments takes one pass with the control
        block in local variables (`_predicted_run`); anything else goes to
        ``handle_segment``. It stops early at another four-tuple's segment, and after a
        segment that put the connection in TIME-WAIT, whose segments the host routes
        differently (a new SYN may take the four-tuple over).
        """
        n = len(segments)
        i = start
        lport = self.local_port
        rport = self.remote_port
        while i < n:
            if self.state is _ESTABLISHED and self._prediction:
                i = self._predicted_run(segments, i, now)
                if i >= n:
                    break
            data = segments[i]
            if i > start and (
                len(data) < HEADER_SIZE
                or (data[0] << 8 | data[1]) != rport
                or (data[2] << 8 | data[3]) != lport
            ):
                break  # the host routes it (and counts it if it is not a segment)
            self.handle_segment(data, now)
            i += 1
            if self.state is State.TIME_WAIT:
                break
        return i

    def _predicted(self, data: bytes | bytearray | memoryview, now: float) -> bool:
        """Header prediction (Van Jacobson's, as RFC 7323 Appendix A sketches it).

        In a bulk transfer nearly every segment is either the next in-order data
        segment or a pure ACK of new data, in ESTABLISHED, with nothing unusual
        pending. Such a segment is handled here in one pass; anything else returns
        False and takes the full path of RFC 9293 §3.10.7.4. The two must agree: this
        is only a shortcut through the same rules.
        """
        rec = self._rec
        if (
            self._ooo_starts
            or rec.sacked.starts  # (RangeSet's __bool__, without the call)
            or rec.in_recovery
            or rec.rto_recovery  # F-RTO and Eifel watch each ACK (_after_rto_ack)
            or self._fin_seq >= 0
            or self._rcv_fin_seq >= 0
            or self._read_closed
            or rec.high_rxt < rec.lost_edge
        ):
            return False
        n = len(data)
        # Only the layout every segment of this connection should carry: NOP NOP TS
        # once timestamps are in use (RFC 7323 §3.2: then "the TSopt MUST be sent in
        # every non-<RST> segment"), no options otherwise.
        if self._ts_ok:
            if n < HEADER_TS_SIZE:
                return False
            (_sp, _dp, seq, ack, off, flags, wnd, _c, _u, tsp, tsval, tsecr) = _unpack_ts(data)
            if off != OFFSET_TS or tsp != TS_PREFIX:
                return False
            ts_recent = self._ts_recent
            if (tsval - ts_recent) & MASK >= 0x80000000:
                return False  # PAWS must look at it
            hlen = HEADER_TS_SIZE
        else:
            if n < HEADER_SIZE:
                return False
            _sp, _dp, seq, ack, off, flags, wnd, _c, _u = _unpack_plain(data)
            if off != OFFSET_PLAIN:
                return False
            tsval = -1
            tsecr = 0
            hlen = HEADER_SIZE
        if flags | PSH != ACK | PSH:
            return False
        rcv_nxt = self.rcv_nxt
        if seq != rcv_nxt & MASK:
            return False
        una = self.snd_una
        d = (ack - una) & MASK
        if d >= 0x80000000 or una + d > self.snd_max:
            return False
        # The window update rule of §3.10.7.4 ("If (SND.WL1 < SEG.SEQ or (SND.WL1 =
        # SEG.SEQ and SND.WL2 =< SEG.ACK)), set SND.WND <- SEG.WND ...") is applied below
        # unconditionally, so it must hold. It fails when a segment beyond a hole (a
        # window update sent after data that was lost) has moved SND.WL1 past RCV.NXT:
        # the retransmission that fills the hole carries an older window.
        wl1 = self.snd_wl1
        if wl1 > rcv_nxt or (wl1 == rcv_nxt and self.snd_wl2 > una + d):
            return False
        plen = n - hlen
        if plen > self._rcv_adv - rcv_nxt:
            return False
        if plen == 0 and d == 0:
            return False  # a duplicate ACK or a window update: the full path decides
        if self._checksum and not segment_sum_ok(self._pseudo, data):
            return False  # the full path counts and drops it
        self.segs_in += 1
        self._last_recv = now
        if tsval >= 0 and rcv_nxt <= self._last_ack_sent:
            self._ts_recent = tsval  # RFC 7323 §4.3: SEG.SEQ =< Last.ACK.sent
            self._ts_recent_at = now
        self._probes = 0
        if d:
            if self._rate is None:
                if una + d == self.snd_max and self._rxt_ts < 0:
                    self._ack_all(una + d, tsecr, now)
                else:
                    self._ack_advance(una + d, tsecr, now)
            else:
                prior = self._rec.pipe(una, self.snd_max)
                self._ack_advance(una + d, tsecr, now)
                self._sample_rate(prior, una + d - 1, now)
        # The window update (its rule was checked above).
        wnd <<= self._snd_wscale
        if wnd != self.snd_wnd:
            if wnd > self.snd_wnd and wnd:
                self._persist_at = None
                self._persist_backoff = 0
            self.snd_wnd = wnd
            if wnd > self.max_snd_wnd:
                self.max_snd_wnd = wnd
        self.snd_wl1 = rcv_nxt
        self.snd_wl2 = self.snd_una
        if plen:
            was_empty = not self._rcv_queued
            self._rcv_append(memoryview(data)[hlen:])
            rcv_nxt += plen
            self.rcv_nxt = rcv_nxt
            self.bytes_in += plen
            self._in_order_data(now, rcv_nxt, was_empty, False)
        return True

    def _predicted_run(
        self, segments: Sequence[bytes | bytearray | memoryview], i: int, now: float
    ) -> int:
        """`_predicted` for a run of in-order data segments that acknowledge nothing new
        (a bulk receiver's every segment), with the control block held in local variables
        for the run and written back once; returns the index of the first segment it
        did not take. Each segment passes the very checks `_predicted` makes, and takes
        its very steps: the run only saves the attribute traffic and the calls.
        """
        rec = self._rec
        if (
            self._ooo_starts
            or rec.sacked.starts  # (RangeSet's __bool__, without the call)
            or rec.in_recovery
            or self._fin_seq >= 0
            or self._rcv_fin_seq >= 0
            or self._read_closed
            or rec.high_rxt < rec.lost_edge
        ):
            return i
        n = len(segments)
        ts_ok = self._ts_ok
        checksum = self._checksum
        pseudo = self._pseudo
        lport = self.local_port
        rport = self.remote_port
        una = self.snd_una
        una32 = una & MASK
        rcv_nxt = self.rcv_nxt
        rcv_adv = self._rcv_adv
        wl1 = self.snd_wl1
        wl2 = self.snd_wl2
        ts_recent = self._ts_recent
        last_ack_sent = self._last_ack_sent
        wscale = self._snd_wscale
        snd_wnd = self.snd_wnd
        two_segments = 2 * self._rcv_mss
        delayed_ack = self.config.delayed_ack
        quickack = self._quickack
        owe_at = self._ack_owe_at
        chunks = self._rcv_chunks
        chunks_append = chunks.append
        queued = self._rcv_queued
        begin = i
        while i < n:
            data = segments[i]
            m = len(data)
            if ts_ok:
                if m < HEADER_TS_SIZE:
                    break
                (sp, dp, seq, ack, off, flags, wnd, _c, _u, tsp, tsval, _e) = _unpack_ts(data)
                if off != OFFSET_TS or tsp != TS_PREFIX:
                    break
                if (tsval - ts_recent) & MASK >= 0x80000000:
                    break  # PAWS must look at it
                hlen = HEADER_TS_SIZE
            else:
                if m < HEADER_SIZE:
                    break
                sp, dp, seq, ack, off, flags, wnd, _c, _u = _unpack_plain(data)
                if off != OFFSET_PLAIN:
                    break
                tsval = -1
                hlen = HEADER_SIZE
            plen = m - hlen
            if (
                sp != rport
                or dp != lport
                or flags | PSH != ACK | PSH
                or seq != rcv_nxt & MASK
                or ack != una32  # new data acknowledged: _predicted's other half
                or wl1 > rcv_nxt
                or (wl1 == rcv_nxt and wl2 > una)
                or plen == 0
                or plen > rcv_adv - rcv_nxt
                or (checksum and not segment_sum_ok(pseudo, data))
            ):
                break
            if tsval >= 0 and rcv_nxt <= last_ack_sent:
                ts_recent = tsval  # RFC 7323 §4.3: SEG.SEQ =< Last.ACK.sent
                self._ts_recent_at = now
            wnd <<= wscale
            if wnd != snd_wnd:
                if wnd > snd_wnd and wnd:
                    self._persist_at = None
                    self._persist_backoff = 0
                snd_wnd = wnd
                if wnd > self.max_snd_wnd:
                    self.max_snd_wnd = wnd
            wl1 = rcv_nxt
            wl2 = una
            if not queued and not self._readable_signalled:
                self._readable_signalled = True
                self._events.append(_DATA_AVAILABLE)
            # _rcv_append's, inline.
            if plen <= RCV_MERGE >> 1 and chunks and len(chunks[-1]) + plen <= RCV_MERGE:
                chunks[-1] += memoryview(data)[hlen:]
            else:
                chunks_append(bytes(memoryview(data)[hlen:]))
            queued += plen
            rcv_nxt += plen
            # _in_order_data's choice (RFC 5681 §4.2), with its variables local.
            if quickack > 0 or rcv_nxt - last_ack_sent >= two_segments or not delayed_ack:
                if quickack > 0:
                    quickack -= 1
                self._ack_now = True
                if rcv_nxt >= owe_at:
                    last_ack_sent = self._owe_ack(rcv_nxt, ts_recent, last_ack_sent)
                    owe_at = self._ack_owe_at
            elif self._delack_at is None:
                self._delack_at = now + self.config.delayed_ack_timeout
            i += 1
        if i > begin:
            taken = i - begin
            self.segs_in += taken
            self.bytes_in += rcv_nxt - self.rcv_nxt
            self._last_recv = now
            self._probes = 0
            self._ts_recent = ts_recent
            self.snd_wnd = snd_wnd
            self.snd_wl1 = wl1
            self.snd_wl2 = wl2
            self.rcv_nxt = rcv_nxt
            self._rcv_queued = queued
            self._quickack = quickack
            self._last_ack_sent = last_ack_sent
        return i

    def _in_order_data(self, now: float, rcv_nxt: int, was_empty: bool, filled_hole: bool) -> None:
        """In-order bytes were queued for the user (RCV.NXT is now `rcv_nxt`): tell the
        user if the buffer was empty, and acknowledge now or arm the delayed ACK."""
        if was_empty and not self._readable_signalled:
            self._readable_signalled = True
            self._events.append(_DATA_AVAILABLE)
        # RFC 5681 §4.2: ACK at least every second full-sized segment, and at once
        # when a segment fills in all or part of a gap.
        if (
            filled_hole
            or self._quickack > 0
            or rcv_nxt - self._last_ack_sent >= 2 * self._rcv_mss
            or not self.config.delayed_ack
        ):
            if self._quickack > 0:
                self._quickack -= 1
            self._ack_now = True
            if not filled_hole and not self._ooo_starts and rcv_nxt >= self._ack_owe_at:
                self._last_ack_sent = self._owe_ack(rcv_nxt, self._ts_recent, self._last_ack_sent)
        elif self._delack_at is None:
            # Why 40 ms: a bulk transfer never waits on this timer, since every
            # second full segment is acknowledged at once; it only delays the ACK
            # of a lone segment (a request, or the odd end of a flight), hoping to
            # piggyback it on a reply. 40 ms (Linux's minimum) is far below the
            # 500 ms RFC 9293 §3.8.6.3 allows and below the 200 ms RTO floor, so a
            # delayed ACK can never trigger a spurious retransmission.
            self._delack_at = now + self.config.delayed_ack_timeout

    def _owe_ack(self, rcv_nxt: int, ts_recent: int, last_ack_sent: int) -> int:
        """An ACK fell due at `rcv_nxt` before the driver asked what to send: keep it
        as a point (`_ack_points`) and return Last.ACK.sent, which the point moves.

        Moving it makes the segment that starts at the point the one TS.Recent follows
        next (RFC 7323 §4.3), so each point's ACK echoes the earliest segment it
        acknowledges. A full list is thinned to every second point, each kept one taking
        the echo of the one dropped before it, and later points come twice as far apart.
        `_ack_owe_at` says when the next may fall due, so that the callers' per-segment
        loops do not call here for every segment of a large pass.
        """
        points = self._ack_points
        apart = (2 * self._rcv_mss) << self._ack_thinned
        if points:
            if len(points) >= ACK_POINTS_MAX and rcv_nxt - last_ack_sent >= apart:
                points[:] = [(points[k + 1][0], points[k][1]) for k in range(0, len(points), 2)]
                self._ack_thinned += 1
                apart <<= 1
            if rcv_nxt - last_ack_sent < apart:
                self._ack_owe_at = last_ack_sent + apart
                return last_ack_sent
        points.append((rcv_nxt, ts_recent))
        self._ack_owe_at = rcv_nxt + apart
        return rcv_nxt

    def _parse(self, data: bytes | bytearray | memoryview) -> _Inbound | None:
        try:
            _sp, _dp, seq, ack, hlen, flags, wnd, _csum, _urg = unpack_header(data)
        except MalformedSegment:
            self.counters["dropped"] += 1
            return None
        if self._checksum and not segment_sum_ok(self._pseudo, data):
            self.counters["bad_checksum"] += 1
            return None
        tsval: int | None = None
        tsecr = 0
        opts: Options | None = None
        ts = unpack_timestamps(data, hlen)
        if ts is not None:
            tsval, tsecr = ts
        elif (ts_sack := unpack_ts_sack(data, hlen)) is not None:
            ts, blocks = ts_sack
            tsval, tsecr = ts
            opts = Options(sack_blocks=blocks, timestamps=ts)
        elif hlen > HEADER_SIZE:
            try:
                opts = parse_options(data, HEADER_SIZE, hlen)
            except MalformedSegment:
                self.counters["dropped"] += 1
                return None
            if opts.timestamps is not None:
                tsval, tsecr = opts.timestamps
        return _Inbound(seq, ack, flags, wnd, memoryview(data)[hlen:], tsval, tsecr, opts)

    def _segment_closed(self, seg: _Inbound) -> None:
        """RFC 9293 §3.10.7.1: in CLOSED every segment but a RST draws a RST."""
        if not seg.flags & RST:
            self._queued.append(self._reset_for(seg))

    def _reset_for(self, seg: _Inbound) -> bytes:
        """The RST answering an unacceptable segment when no connection is synchronized.

        "If the ACK bit is off, sequence number zero is used, <SEQ=0><ACK=SEG.SEQ+SEG.LEN>
        <CTL=RST,ACK>. If the ACK bit is on, <SEQ=SEG.ACK><CTL=RST>."
        """
        if seg.flags & ACK:
            return self._build(seg.ack, 0, RST, 0)
        seg_len = len(seg.payload) + (1 if seg.flags & SYN else 0) + (1 if seg.flags & FIN else 0)
        return self._build(0, (seg.seq + seg_len) & MASK, RST | ACK, 0)

    def _segment_listen(self, seg: _Inbound, now: float) -> None:
        """RFC 9293 §3.10.7.2: LISTEN."""
        flags = seg.flags
        if flags & RST:  # "An incoming RST should be ignored."
            return
        if flags & ACK:  # "Any acknowledgment is bad ... form a reset segment"
            self._queued.append(self._build(seg.ack, 0, RST, 0))
            return
        if not flags & SYN:  # "Any other control or text-bearing segment ... drop it"
            return
        self._accept_syn(seg, now)

    def _accept_syn(self, seg: _Inbound, now: float, iss: int | None = None) -> None:
        """Take a SYN as a passive open: SYN-ACK queued, state SYN-RECEIVED."""
        self._passive = True
        self.irs = seg.seq
        self.rcv_nxt = seg.seq + 1
        self._rcv_adv = self.rcv_nxt
        self._negotiate(seg.opts, seg.tsval, now)
        if iss is None:
            self._choose_iss(now)
        else:
            self._set_iss(iss, now)
        self.snd_wl1 = seg.seq
        self.snd_wl2 = self.iss
        self.snd_wnd = seg.wnd  # "Window field in a SYN segment itself is never scaled."
        self._syn_pending = True
        self._set_state(State.SYN_RECEIVED)
        # Data in a SYN is not queued: the peer will resend what we do not acknowledge.

    def open_from_cookie(
        self,
        syn_seq: int,
        iss: int,
        mss: int,
        wscale: int | None,
        sack: bool,
        tsval: int | None,
        now: float,
    ) -> None:
        """Rebuild the SYN-RECEIVED state a SYN cookie stood for (see `syncookies`).

        `syn_seq` is the client's ISN and `iss` our cookie; the final ACK that proved
        the cookie must be fed to ``handle_segment`` next.
        """
        opts = Options(mss=mss, wscale=wscale, sack_permitted=sack)
        self._accept_syn(
            _Inbound(syn_seq, 0, SYN, 0, memoryview(b""), tsval, 0, opts), now, iss=iss
        )
        self._syn_pending = False
        self.snd_max = self.snd_nxt = self.iss + 1
        self._rcv_adv = self.rcv_nxt + min(self._rcv_limit, 0xFFFF)  # as the SYN-ACK said
        self._last_ack_sent = self.rcv_nxt
        self._handshake_timed = False  # when the SYN-ACK left is unknown: no RTT sample

    def _segment_syn_sent(self, seg: _Inbound, now: float) -> None:
        """RFC 9293 §3.10.7.3: SYN-SENT."""
        flags = seg.flags
        ack = 0
        if flags & ACK:
            ack = self._unwrap_ack(seg.ack)
            # "If SEG.ACK =< ISS or SEG.ACK > SND.NXT, send a reset (unless the RST bit
            # is set, if so drop the segment and return)."
            if ack <= self.iss or ack > self.snd_max:
                if not flags & RST:
                    self._queued.append(self._build(seg.ack, 0, RST, 0))
                return
        if flags & RST:
            # RFC 5961 §3.2 / RFC 9293: a RST is acceptable here only if it acknowledges our SYN.
            if flags & ACK:
                self._fail(ConnectionRefused("connection refused"))
            return
        if not flags & SYN:
            return
        self.irs = seg.seq
        self.rcv_nxt = seg.seq + 1
        self._rcv_adv = self.rcv_nxt
        self._negotiate(seg.opts, seg.tsval, now)
        if flags & ACK:
            self.snd_una = ack
            self.snd_wnd = seg.wnd  # never scaled in a SYN
            self.snd_wl1 = seg.seq
            self.snd_wl2 = ack
            self.max_snd_wnd = self.snd_wnd
            self._handshake_done(now)
            self._syn_pending = False
            # "If SND.UNA > ISS (our SYN has been ACKed), change the connection state to
            # ESTABLISHED, form an ACK segment and send it."
            self._set_state(State.ESTABLISHED)
            self._ack_now = True
            self._keepalive_restart(now)
            # Our SYN offered this window (unscaled, as in every SYN).
            self._rcv_adv = self.rcv_nxt + min(self._rcv_limit, 0xFFFF)
            if seg.payload or flags & FIN:
                # "If there are other controls or text in the segment, then continue
                # processing at the sixth step ... where the URG bit is checked."
                self._process_text(seg, self.rcv_nxt, now)
        else:
            # Simultaneous open: "enter SYN-RECEIVED, form a SYN,ACK segment and send it".
            self.snd_wnd = seg.wnd
            self.snd_wl1 = seg.seq
            self._syn_pending = True
            self._set_state(State.SYN_RECEIVED)

    def _handshake_done(self, now: float) -> None:
        """Our SYN (or SYN-ACK) was acknowledged: measure it and set the starting windows."""
        lost = self._retries > 0
        if self._handshake_timed and not lost:  # Karn: no sample from a retransmitted SYN
            self._rtt.sample(max(now - self._una_since, 0.0))
        # RFC 6298 §5.7: after a SYN timeout with no sample, the RTO starts at 3 s.
        self._rtt.on_handshake_complete(lost)
        if lost:
            # RFC 5681 §3.1: "If the SYN or SYN/ACK is lost, the initial window used by a
            # sender after a correctly transmitted SYN MUST be one segment."
            self._cc.on_syn_loss()
        self._retries = 0
        self._rto_at = None
        self._una_since = now

    def _segment_synchronized(self, seg: _Inbound, now: float) -> None:
        """RFC 9293 §3.10.7.4: SYN-RECEIVED and every synchronized state."""
        flags = seg.flags
        state = self.state
        rcv_nxt = self.rcv_nxt
        d = (seg.seq - rcv_nxt) & MASK
        seq = rcv_nxt + (d - 0x100000000 if d >= 0x80000000 else d)
        payload = seg.payload
        plen = len(payload)
        seg_len = plen + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)

        if (
            state is State.SYN_RECEIVED
            and not self._passive
            and flags & SYN
            and flags & ACK
            and seq == self.irs
            and seg_len == 1
        ):
            # The peer's SYN-ACK of a simultaneous open: it carries the ACK we need
            # (Linux makes the same exception before its sequence check).
            self._process_ack(seg, self._unwrap_ack(seg.ack), seq, now)
            return

        if (
            state is State.SYN_RECEIVED
            and self._passive
            and flags & SYN
            and not flags & ACK
            and seq == self.irs
        ):
            self._syn_pending = True  # the peer resent its SYN: resend our SYN-ACK
            return

        # PAWS, RFC 7323 §5.3: a segment whose TSval is older than TS.Recent is a stale
        # duplicate; acknowledge and drop it (R1), unless TS.Recent is too old to trust.
        tsval = seg.tsval
        if (
            self._ts_ok
            and tsval is not None
            and not flags & RST
            and (tsval - self._ts_recent) & MASK >= 0x80000000
        ):
            if now - self._ts_recent_at <= PAWS_IDLE_LIMIT:
                self.counters["dropped"] += 1
                self._ack_now = True
                return
            self._ts_recent = tsval

        # "first check sequence number"
        rcv_wnd = self._rcv_adv - rcv_nxt
        if rcv_wnd < 0:
            rcv_wnd = 0
        if seg_len == 0:
            ok = seq == rcv_nxt if rcv_wnd == 0 else rcv_nxt <= seq < rcv_nxt + rcv_wnd
        elif rcv_wnd == 0:
            ok = False
        else:
            end = seq + seg_len - 1
            ok = rcv_nxt <= seq < rcv_nxt + rcv_wnd or rcv_nxt <= end < rcv_nxt + rcv_wnd
        if not ok:
            if flags & RST:
                # RFC 5961 §3.2: out of the window, "silently drop the segment" -- but
                # for Linux's exception (tcp_reset_check), which we share: after the
                # peer's FIN, a RST at that FIN's own number, RCV.NXT - 1, is the abort
                # of a peer whose FIN we took but did not yet acknowledge (see _rst_seq).
                if seq == rcv_nxt - 1 and state in _AFTER_PEER_FIN:
                    if state is State.CLOSE_WAIT:
                        self._fail(ConnectionReset("connection reset by peer"))
                    else:
                        self._terminate()
                return
            if self._read_closed and seq >= rcv_nxt and plen:
                self._reset_after_close()
                return
            if state is State.TIME_WAIT and flags & FIN:
                self._close_at = now + 2 * self.config.msl  # "restart the 2 MSL timeout"

            # "If the RCV.WND is zero, no segments will be acceptable, but special
            # allowance should be made to accept valid ACKs" (window probes carry them).
            if rcv_wnd == 0 and seq == rcv_nxt and flags & ACK and state in SYNCHRONIZED:
                ack = self._unwrap_ack(seg.ack)
                if self.snd_una - self.max_snd_wnd <= ack <= self.snd_max:
                    # RFC 7323 §4.3 (2) holds for it too (SEG.SEQ = Last.ACK.sent), as
                    # in Linux, whose tcp_sequence() passes a probe at RCV.NXT: our
                    # answer echoes the probe's TSval, the prober's RTT sample is true.
                    self._take_tsval(seg, seq, now)
                    self._process_ack_field(seg, ack, seq, now)
            self.counters["dropped"] += 1
            if plen and seq < rcv_nxt:
                # RFC 2883 §4.1.1: data already acknowledged (our ACK was lost, or the
                # retransmission was spurious) is reported in a D-SACK block.
                self._note_dsack(seq, min(seq + plen, rcv_nxt))
            self._send_ack_immediately(now)
            return

        # "second check the RST bit" with RFC 5961 §3.2: reset only when SEG.SEQ is
        # exactly RCV.NXT; any other in-window RST draws a challenge ACK.
        if flags & RST:
            if seq != rcv_nxt:
                self._challenge_ack(now)
                return
            if state is State.SYN_RECEIVED:
                if self._passive:
                    # "return this connection to LISTEN state and return. The user need
                    # not be informed."
                    self._return_to_listen()
                else:
                    self._fail(ConnectionRefused("connection refused"))
            elif state in (State.CLOSING, State.LAST_ACK, State.TIME_WAIT):
                self._terminate()
            else:
                self._fail(ConnectionReset("connection reset by peer"))
            return

        # "fourth, check the SYN bit": RFC 5961 §4.2, any SYN here draws a challenge ACK.
        if flags & SYN:
            self._challenge_ack(now)
            return

        # "fifth check the ACK field" (TS.Recent is updated there, once the segment is
        # known to be acceptable: see _take_tsval).
        if not flags & ACK:
            return
        self._process_ack(seg, self._unwrap_ack(seg.ack), seq, now)

    def _take_tsval(self, seg: _Inbound, seq: int, now: float) -> None:
        """RFC 7323 §4.3 (2): "If: SEG.TSval >= TS.Recent and SEG.SEQ <= Last.ACK.sent then
        SEG.TSval is copied to TS.Recent; otherwise, it is ignored." TS.Recent follows the
        segment that covers Last.ACK.sent, so that the echo measures the full round trip.

        Only for a segment that is accepted: one dropped for its ACK (RFC 5961 §5.2) must
        not move TS.Recent, or PAWS would discard the next valid segment. Header
        prediction does the same update (it only ever sees acceptable segments)."""
        tsval = seg.tsval
        if (
            tsval is not None
            and self._ts_ok
            and seq <= self._last_ack_sent
            and (tsval - self._ts_recent) & MASK < 0x80000000
        ):
            self._ts_recent = tsval
            self._ts_recent_at = now

    def _process_ack(self, seg: _Inbound, ack: int, seq: int, now: float) -> None:
        state = self.state
        if state is State.SYN_RECEIVED:
            # "If SND.UNA < SEG.ACK =< SND.NXT, then enter ESTABLISHED state ... If the
            # segment acknowledgment is not acceptable, form a reset segment."
            if not self.snd_una < ack <= self.snd_max:
                self._queued.append(self._build(seg.ack, 0, RST, 0))
                return
            self._take_tsval(seg, seq, now)
            self.snd_una = ack
            self._handshake_done(now)
            # RFC 7323 §2.2: the window of a <SYN,ACK> "MUST NOT be scaled".
            self.snd_wnd = seg.wnd if seg.flags & SYN else seg.wnd << self._snd_wscale
            self.snd_wl1 = seq
            self.snd_wl2 = ack
            self.max_snd_wnd = self.snd_wnd
            self._syn_pending = False
            self._set_state(State.ESTABLISHED)
            self._keepalive_restart(now)
            if self._fin_queued:
                self._set_state(State.FIN_WAIT_1)
        elif state is State.TIME_WAIT:
            # "The only thing that can arrive in this state is a retransmission of the
            # remote FIN. Acknowledge it, and restart the 2 MSL timeout."
            self._take_tsval(seg, seq, now)
            if seg.flags & FIN:
                self._close_at = now + 2 * self.config.msl
            # Whatever else passed the sequence check is acknowledged too, as Linux
            # (tcp_timewait_state_process) and FreeBSD (tcp_twcheck) do, so the peer
            # learns where we stand; but not a bare ACK at RCV.NXT, which needs no
            # answer (both stacks stay silent there: answering could start an ACK war).
            if seg.flags & FIN or seg.payload or seq != self.rcv_nxt:
                self._ack_now = True
            return
        # RFC 5961 §5.2: accept SEG.ACK only in [SND.UNA - MAX.SND.WND, SND.NXT];
        # "If the ACK acks something not yet sent (SEG.ACK > SND.NXT) then send an ACK,
        # drop the segment, and return."
        if ack > self.snd_max or ack < self.snd_una - self.max_snd_wnd:
            self.counters["dropped"] += 1
            self._challenge_ack(now)
            return
        self._take_tsval(seg, seq, now)
        self._process_ack_field(seg, ack, seq, now)
        if self.state is State.CLOSED:
            return
        # "sixth, check the URG bit": urgent data is delivered inline (RFC 6093 §4).
        # "seventh, process the segment text"
        payload = seg.payload
        if payload or seg.flags & FIN:
            self._process_text(seg, seq, now)

    def _unwrap_ack(self, ack32: int) -> int:
        una = self.snd_una
        d = (ack32 - una) & MASK
        return una + (d - 0x100000000 if d >= 0x80000000 else d)

    # ------------------------------------------------------------------ the ACK field

    def _process_ack_field(self, seg: _Inbound, ack: int, seq: int, now: float) -> None:
        snd_una = self.snd_una
        wnd = seg.wnd if seg.flags & SYN else seg.wnd << self._snd_wscale
        opts = seg.opts
        rec = self._rec
        new_sack = False
        rate = self._rate
        sack = opts is not None and opts.sack_blocks and self._sack_ok
        # The flight before this ACK (Linux's prior_in_flight), taken before its SACK
        # blocks change the scoreboard: the congestion control judges by it whether the
        # window was in use, and the rate sampler sets it beside the sample.
        prior_in_flight = rec.pipe(snd_una, self.snd_max) if sack or rate is not None else -1
        dsack: tuple[int, int] | None = None
        if sack:
            assert opts is not None
            dsack = rec.dsack_of(opts.sack_blocks, seg.ack, snd_una)
            if dsack is not None:
                rec.on_dsack(dsack[0], dsack[1], snd_una, self.snd_max)
                if rec.rack:
                    rec.rack_on_dsack(dsack[0], dsack[1], snd_una, ack, now)
            # RFC 2883 §4: a D-SACK block reports a duplicate, not data newly held above
            # SND.UNA; the scoreboard (RFC 6675 Update ()) takes the blocks after it.
            blocks = opts.sack_blocks[1:] if dsack is not None else opts.sack_blocks
            new_sack = rec.on_sack(blocks, snd_una, self.snd_max, now, ack)
        elif not seg.payload and wnd == self.snd_wnd and rec.tlp_end >= 0:
            rec.on_plain_duplicate_ack(ack, snd_una)
        self._probes = 0
        if rec.rto_recovery and rec.undo_cc is not None:
            self._after_rto_ack(seg, ack, new_sack, now)
        if ack > snd_una:
            self._ack_advance(ack, seg.tsecr, now, prior_in_flight)
        if self._sack_ok:
            # RFC 6675 §2: with SACK, a duplicate ACK is one that SACKs octets not SACKed
            # before -- "even if it carries new data, changes the advertised window, or
            # moves the cumulative acknowledgment point" -- and only such an ACK is.
            if new_sack:
                self._duplicate_ack(now)
                rec.pto_at = None  # §7.2: no PTO while the scoreboard holds SACKed data
                if rec.tlp_reveals_loss(self._cc, self.snd_una, self.snd_max, now):
                    self._rtt_seq = -1  # Karn
            if rec.undo_dsacked:
                self._cc = rec.undo(self._cc)
            if rec.in_recovery and rec.prr:
                # RFC 9937: how much this ACK lets the recovery send.
                rec.prr_on_ack(
                    self._cc.ssthresh, self.snd_una - snd_una, self.snd_una, self.snd_max
                )
        elif (
            ack == snd_una
            and self.snd_max > snd_una
            and not seg.payload
            and not seg.flags & (SYN | FIN)
            and wnd == self.snd_wnd
        ):
            # RFC 5681 §2: no data, no SYN/FIN, data outstanding, the same window.
            self._duplicate_ack(now)
        # "If SND.UNA =< SEG.ACK =< SND.NXT, the send window should be updated. If
        # (SND.WL1 < SEG.SEQ or (SND.WL1 = SEG.SEQ and SND.WL2 =< SEG.ACK)), set
        # SND.WND <- SEG.WND, set SND.WL1 <- SEG.SEQ, and set SND.WL2 <- SEG.ACK."
        if ack >= self.snd_una and (
            self.snd_wl1 < seq or (self.snd_wl1 == seq and self.snd_wl2 <= ack)
        ):
            opened = wnd > self.snd_wnd
            self.snd_wnd = wnd
            self.snd_wl1 = seq
            self.snd_wl2 = ack
            if wnd > self.max_snd_wnd:
                self.max_snd_wnd = wnd
            if opened and wnd:
                self._persist_at = None
                self._persist_backoff = 0
        if rate is not None and (new_sack or ack > snd_una):
            newest = ack - 1
            if new_sack and opts is not None:
                # RFC 2018 §4: the first block holds the segment that triggered the ACK
                # (the next one when the first reports a duplicate, RFC 2883).
                blocks = opts.sack_blocks
                block = blocks[1] if dsack is not None and len(blocks) > 1 else blocks[0]
                newest = max(newest, self._unwrap_ack(block[1]) - 1)
            self._sample_rate(prior_in_flight, newest, now)

    def _after_rto_ack(self, seg: _Inbound, ack: int, new_sack: bool, now: float) -> None:
        """An ACK after a timeout that may yet prove spurious (F-RTO, Eifel detection:
        Recovery.on_ack_after_rto); if it does, undo the timeout's reduction."""
        rec = self._rec
        echo_ms = -1
        if self._ts_ok and seg.tsecr:
            echo_ms = int(now * 1000) - ((self._ts_now(now) - seg.tsecr) & MASK)
        nxt = self.snd_nxt
        new_data = self._sndbuf.end > nxt and self.snd_wl2 + self.snd_wnd > nxt
        una = self.snd_una
        if rec.on_ack_after_rto(ack - una, ack, self.snd_max, echo_ms, new_data, new_sack):
            self._cc = rec.undo_timeout(self._cc, una)

    def _sample_rate(self, prior_in_flight: int, newest: int, now: float) -> None:
        """Give the congestion control this ACK's delivery-rate sample (BBR only)."""
        rate = self._rate
        assert rate is not None
        rec = self._rec
        cc = self._cc
        rs = rate.on_ack(self.snd_una, rec.sacked.total, newest, now, cc.min_rtt)
        rs.prior_in_flight = prior_in_flight
        rs.in_flight = rec.pipe(self.snd_una, self.snd_max)
        cc.on_rate_sample(rs, now)

    def _ack_advance(self, ack: int, tsecr: int, now: float, in_flight: int = -1) -> None:
        """New data acknowledged: free it, measure, grow the window, move the state on.
        `in_flight`: the pipe before this ACK, when its SACK blocks have since changed it."""
        snd_una = self.snd_una
        acked = ack - snd_una
        rec = self._rec
        if in_flight < 0:
            in_flight = rec.pipe(snd_una, self.snd_max)
        self.snd_una = ack
        if self.snd_nxt < ack:
            self.snd_nxt = ack
        self._retries = 0
        self._una_since = now

        # RTT: the timestamp echo (RFC 7323 §4.1, only for ACKs that advance the left
        # edge) or the one timed segment (RFC 6298 §3, Karn's rule).
        echo_ms = -1  # when the echoed TSval was sent, on our clock in ms
        if self._ts_ok and tsecr:
            rtt_ms = (((int(now * 1000) + self._ts_offset) & MASK) - tsecr) & MASK
            echo_ms = int(now * 1000) - rtt_ms
            rxt_ts = self._rxt_ts
            if rxt_ts >= 0:
                # Karn's rule (RFC 6298 §3) still holds with timestamps when the echo
                # does not name the transmission that drew the ACK. RFC 7323 §4.3 (2)
                # lets only an accepted segment set TS.Recent, so a retransmission that
                # arrives as a duplicate (the first copy's ACK was lost) is answered with
                # an older TS.Recent; measured from it, the sample spans the RTO wait,
                # and a few such samples under heavy loss drive SRTT and the RTO to tens
                # of seconds. So while retransmitted data is unacknowledged, an echo older
                # than the latest retransmission gives no sample: RFC 7323 §4.1 says a
                # TSecr "MAY" be used, so refusing it is allowed. (Linux's sender takes
                # such samples; receivers differ -- FreeBSD's echoes a duplicate's own
                # TSval, ours follows §4.3 -- so the sender must not count on either.)
                if 0 < (rxt_ts - tsecr) & MASK < 0x80000000:
                    rtt_ms = MASK  # the echo predates the latest retransmission
                if ack >= self._rxt_ts_end:
                    self._rxt_ts = -1  # every retransmitted byte is acknowledged now
            if rtt_ms < 0x80000000:
                self._rtt.sample(rtt_ms / 1000.0, max(1, in_flight // self.snd_mss))
                rec.tlp_sampled = True
        elif self._rtt_seq >= 0 and ack >= self._rtt_seq:
            self._rtt.sample(now - self._rtt_time)
            self._rtt_seq = -1
            rec.tlp_sampled = True

        # Free acknowledged bytes; the SYN and FIN occupy sequence space but no buffer.
        self._sndbuf.release(ack)
        rec.on_ack_advance(self._cc, acked, ack, self.snd_max, now, in_flight, echo_ms)

        # RFC 6298 §5.2-5.3: stop the timer when all is acknowledged, else restart it.
        if ack >= self.snd_max:
            self._rto_at = None
        else:
            self._rto_at = now + self._rtt.rto
        if rec.tlp:
            if rec.tlp_end >= 0:
                rec.after_ack_advance_tlp(self._cc, ack, now)
            # RFC 8985 §7.2: restart the PTO "upon receiving an ACK that cumulatively
            # acknowledges new data".
            rec.arm_tlp(
                self.snd_una,
                self.snd_max,
                self.snd_una == self.iss,
                self._rtt.srtt,
                self._rto_at,
                now,
            )

        if self._send_blocked and len(self._sndbuf) <= self._send_resume:
            self._send_blocked = False
            self._events.append(SendSpace())

        if self._fin_seq >= 0 and ack > self._fin_seq:
            self._our_fin_acked(now)

    def _ack_all(self, ack: int, tsecr: int, now: float) -> None:
        """`_ack_advance` for an ACK of everything sent (SND.MAX), from header prediction:
        a request's or a response's ACK. Prediction has ruled out SACKed data, recovery,
        F-RTO and a FIN; the caller, a retransmission still timed by a timestamp and BBR's
        rate sample. What is left is `_ack_advance` with nothing in flight after it: the
        retransmission timer stops, and the loss probe timer with it."""
        snd_una = self.snd_una
        acked = ack - snd_una
        rec = self._rec
        in_flight = rec.pipe(snd_una, ack)
        self.snd_una = ack
        if self.snd_nxt < ack:
            self.snd_nxt = ack
        self._retries = 0
        self._una_since = now
        echo_ms = -1
        if self._ts_ok and tsecr:
            # RFC 7323 §4.1: the timestamp echo of an ACK that advances the left edge.
            ms = int(now * 1000)
            rtt_ms = (((ms + self._ts_offset) & MASK) - tsecr) & MASK
            echo_ms = ms - rtt_ms
            if rtt_ms < 0x80000000:
                self._rtt.sample(rtt_ms / 1000.0, max(1, in_flight // self.snd_mss))
                rec.tlp_sampled = True
        elif self._rtt_seq >= 0 and ack >= self._rtt_seq:
            self._rtt.sample(now - self._rtt_time)  # RFC 6298 §3: the one timed segment
            self._rtt_seq = -1
            rec.tlp_sampled = True
        self._sndbuf.release(ack)
        rec.on_ack_advance(self._cc, acked, ack, ack, now, in_flight, echo_ms)
        self._rto_at = None  # RFC 6298 §5.2: "all outstanding data has been acknowledged"
        if rec.tlp:
            if rec.tlp_end >= 0:
                rec.after_ack_advance_tlp(self._cc, ack, now)
            rec.pto_at = None  # RFC 8985 §7.2: no probe with nothing in flight (arm_tlp)
        if self._send_blocked and len(self._sndbuf) <= self._send_resume:
            self._send_blocked = False
            self._events.append(SendSpace())

    def _our_fin_acked(self, now: float) -> None:
        state = self.state
        if state is State.FIN_WAIT_1:
            self._set_state(State.FIN_WAIT_2)
            if self._read_closed:
                self._close_at = now + self.config.fin_wait_2_timeout
        elif state is State.CLOSING:
            self._enter_time_wait(now)
        elif state is State.LAST_ACK:
            self._terminate()

    def _duplicate_ack(self, now: float) -> None:
        if self._rec.on_duplicate_ack(self._cc, self.snd_una, self.snd_max, now):
            self._rtt_seq = -1  # Karn

    # ------------------------------------------------------------------ segment text and FIN

    def _process_text(self, seg: _Inbound, seq: int, now: float) -> None:
        state = self.state
        payload = seg.payload
        fin = seg.flags & FIN
        if state not in RECEIVES_TEXT:
            # "This should not occur, since a FIN has been received from the remote side.
            # Ignore the segment text." A FIN may still be a retransmission to acknowledge.
            if fin:
                self._ack_now = True
            return
        if self._read_closed and payload and seq + len(payload) > self.rcv_nxt:
            self._reset_after_close()
            return
        rcv_nxt = self.rcv_nxt
        # Trim what lies before RCV.NXT (already received) or beyond the window.
        dup_below = dup_end = -1
        if seq < rcv_nxt:
            if payload:
                # RFC 2883 §4.2: the part already received is reported (below).
                dup_below, dup_end = seq, rcv_nxt
            payload = payload[rcv_nxt - seq :]
            seq = rcv_nxt
        limit = self._rcv_adv
        if seq + len(payload) > limit:
            payload = payload[: max(limit - seq, 0)]
            fin = 0
        plen = len(payload)
        if fin:
            self._rcv_fin_seq = seq + plen
            if seq > rcv_nxt and not plen:
                self._send_ack_immediately(now)  # a FIN beyond a hole: a duplicate ACK
        if plen:
            self.bytes_in += plen
            if seq == rcv_nxt:
                was_empty = not self._rcv_queued
                self._rcv_append(payload)
                rcv_nxt += plen
                filled_hole = False
                if self._ooo_starts:
                    rcv_nxt = self._drain_ooo(rcv_nxt)
                    filled_hole = True
                self.rcv_nxt = rcv_nxt
                self._in_order_data(now, rcv_nxt, was_empty, filled_hole)
            else:
                self._store_ooo(seq, payload)
                self.counters["out_of_order"] += 1
                self._ack_out_of_order(now)
        if self._rcv_fin_seq >= 0 and self.rcv_nxt == self._rcv_fin_seq:
            self._process_fin(now)
        if dup_below >= 0 and self._sack_ok:
            # Reported at once, in an ACK of everything the rest of the segment brought.
            self._note_dsack(dup_below, dup_end)
            self._send_ack_immediately(now)

    def _ack_out_of_order(self, now: float) -> None:
        """RFC 5681 §4.2: "an immediate duplicate ACK" for an out-of-order segment,
        with Linux's SACK compression (Config.comp_sack_nr): the first three for one
        RCV.NXT at once, which is all fast retransmit needs, then at most one per
        5% of the RTT (or comp_sack_delay), or at once after _comp_limit were held
        back. Each ACK still carries the SACK blocks of everything held, so the sender
        learns as much, from fewer ACKs; a D-SACK block is never held back."""
        cfg = self.config
        srtt = self._rtt.srtt
        delay = cfg.comp_sack_delay
        if srtt is not None and srtt / 20 < delay:
            delay = srtt / 20
        if (
            not self._sack_ok
            or self._dsack
            or self._comp_acks >= self._comp_limit(now, delay, srtt)
            # A second run since the last ACK (a new hole, or a retransmission landing
            # below): the blocks of both runs go at once, first and second (the
            # arrivals' order, _sack_blocks), while the first run's block is still
            # among the three an ACK holds beside timestamps. Held longer, a block that
            # changed could go unreported, and its segments be retransmitted for
            # nothing (Linux sends at once when its SACK table overflows,
            # tcp_sack_new_ofo_skb).
            or self._comp_runs >= 2
        ):
            self._send_ack_immediately(now)
            return
        if self._comp_rcv_nxt != self.rcv_nxt:
            self._comp_rcv_nxt = self.rcv_nxt
            self._dupacks_sent = 0
        if self._dupacks_sent < DUP_THRESH:
            self._dupacks_sent += 1
            self._send_ack_immediately(now)
            return
        self._comp_acks += 1
        if self._comp_ack_at is None:
            self._comp_ack_at = now + delay

    def _comp_limit(self, now: float, delay: float, srtt: float | None) -> int:
        """How many ACKs to fold into one: comp_sack_nr, but no more than the segments
        that arrive within `delay` at the rate data came in over the faster of the
        last two round trips, less the one the ACK is for (none below two a delay: a
        window under 2 * RTT/delay, 40 segments, is never folded). Two, because a
        paced sender's rate swings from one round trip to the next (BBR through the
        netem relay: 1 to 27 segments a millisecond), and a slow one should not
        unfold the next.

        Linux caps only by comp_sack_nr: behind a bottleneck, arrivals come spaced
        out, and its timer folds what arrives within the delay, about RTT/delay ACKs a
        round trip whatever the window. A burst that arrives at one instant (every
        burst on the fake network; an unpaced sender's at line rate) would have all
        but three of its ACKs folded into one, one ACK a round trip: when that one
        is lost the sender has nothing to clock data out by or to find a lost
        retransmission with, and waits for its RTO (bench/recovery.py, CUBIC at 1 ms
        and 5% loss each way: 0.8 RTOs per MB against 0.3, 0.73x the goodput). So a
        burst is acknowledged as if the path had spaced it. The rate is measured from
        one out-of-order arrival to the first an SRTT or more later (the SRTT, not
        Linux's min(rcv_rtt_est, SRTT): we keep no receiver RTT estimate); the first
        of all measures nothing."""
        start = self._comp_rate_at
        span = now - start
        if start < 0 or span >= (srtt if srtt is not None else 20 * delay):
            got = self.bytes_in - self._comp_rate_bytes
            per_delay = int(got * delay / (span * self._rcv_mss)) if start >= 0 and span > 0 else 0
            best = per_delay if per_delay > self._comp_last else self._comp_last
            self._comp_last = per_delay
            self._comp_cap = min(best - 1, self.config.comp_sack_nr)
            self._comp_rate_at = now
            self._comp_rate_bytes = self.bytes_in
        return self._comp_cap

    def _store_ooo(self, seq: int, payload: memoryview) -> None:
        end = seq + len(payload)
        self._note_sack(seq, end)
        ranges = self._ooo_ranges
        if not ranges or seq >= ranges.ends[-1]:
            # Above all that is held (after a hole, the segments that follow it): no
            # duplicate, nothing to trim, a new last segment; a small one that follows
            # the last on joins it, as in the receive queue (RCV_MERGE), so that a
            # peer's small segments above a hole take the memory of their bytes.
            ranges.add(seq, end)
            datas = self._ooo_data
            n = end - seq
            if (
                n <= RCV_MERGE >> 1
                and datas
                and self._ooo_starts[-1] + len(datas[-1]) == seq
                and len(datas[-1]) + n <= RCV_MERGE
            ):
                datas[-1] += payload
            else:
                self._ooo_starts.append(seq)
                datas.append(bytes(payload))
            self._ooo_bytes += n
            return
        held = ranges.find_overlap(seq, end)
        if held is not None:
            # RFC 2883 §4.1.3: a duplicate of data already held out of order is reported
            # in a D-SACK block (the part that overlaps the first block held, as Linux).
            self._note_dsack(max(seq, held[0]), min(end, held[1]))
        ranges.add(seq, end)
        starts = self._ooo_starts
        datas = self._ooo_data
        i = bisect.bisect_left(starts, seq)
        if i > 0:
            prev_end = starts[i - 1] + len(datas[i - 1])
            if prev_end >= end:
                return  # wholly a duplicate
            if prev_end > seq:
                payload = payload[prev_end - seq :]
                seq = prev_end
        # Remove later segments the new one covers entirely; trim it before a partial one.
        while i < len(starts) and starts[i] < end:
            other_end = starts[i] + len(datas[i])
            if other_end <= end:
                self._ooo_bytes -= len(datas[i])
                del starts[i]
                del datas[i]
            else:
                payload = payload[: starts[i] - seq]
                end = starts[i]
                break
        if end > seq:
            starts.insert(i, seq)
            datas.insert(i, bytes(payload))
            self._ooo_bytes += end - seq

    def _note_dsack(self, start: int, end: int) -> None:
        """RFC 2883 §4: a segment the receiver already had is reported in the first SACK
        block of the ACK it draws (a D-SACK block); "each duplicate contiguous sequence
        of data received is reported in at most one D-SACK block", so it is sent once,
        by the immediate ACK that follows."""
        if self._sack_ok and end > start:
            self._dsack = (start, end)

    def _note_sack(self, seq: int, end: int) -> None:
        """Remember where an out-of-order arrival went, for the SACK blocks' order, and
        count the runs of arrivals that continue one another (a burst after a hole)
        since the last ACK, for SACK compression."""
        recent = self._sack_recent
        recent.insert(0, seq)
        del recent[4:]
        if seq != self._sack_run_end or not self._comp_runs:
            self._comp_runs += 1  # a new run, or the one an ACK reported going on
        self._sack_run_end = end

    def _drain_ooo(self, rcv_nxt: int) -> int:
        starts = self._ooo_starts
        datas = self._ooo_data
        while starts and starts[0] <= rcv_nxt:
            start = starts.pop(0)
            data = datas.pop(0)
            self._ooo_bytes -= len(data)
            end = start + len(data)
            if end > rcv_nxt:
                self._rcv_append(data if start == rcv_nxt else memoryview(data)[rcv_nxt - start :])
                rcv_nxt = end
        self._ooo_ranges.trim_below(rcv_nxt)
        if not starts:
            self._sack_recent.clear()
        return rcv_nxt

    def _sack_blocks(self) -> list[tuple[int, int]]:
        """Up to three (with timestamps) or four SACK blocks (RFC 2018 §4): first the
        block holding the latest arrival, then those of earlier arrivals, then the rest.
        (Ranges are taken by index, disjoint and so distinct: this runs on every ACK of
        a receiver with holes.)"""
        ranges = self._ooo_ranges
        room = 3 if self._ts_ok else 4
        starts = ranges.starts
        ends = ranges.ends
        picked: list[int] = []
        for seq in self._sack_recent:
            i = bisect.bisect_right(starts, seq) - 1  # RangeSet.find
            if i >= 0 and seq < ends[i] and i not in picked:
                picked.append(i)
                if len(picked) == room:
                    break
        i = len(starts) - 1
        while len(picked) < room and i >= 0:
            if i not in picked:
                picked.append(i)
            i -= 1
        return [(starts[i], ends[i]) for i in picked]

    def _process_fin(self, now: float) -> None:
        """RFC 9293 §3.10.7.4 "eighth, check the FIN bit"."""
        self.rcv_nxt += 1
        self._rcv_fin_seq = -1
        self._ack_now = True
        points = self._ack_points
        if points and points[-1][0] == self.rcv_nxt - 1:
            # The ACK of the FIN stands for the one owed for the data before it, and
            # echoes that one's TSval (RFC 7323 §4.3), not the FIN's.
            self._ts_recent = points.pop()[1]
        if not self._eof:
            self._eof = True
            self._events.append(EndOfStream())
        state = self.state
        if state in (State.SYN_RECEIVED, State.ESTABLISHED):
            self._set_state(State.CLOSE_WAIT)
        elif state is State.FIN_WAIT_1:
            # "If our FIN has been ACKed ... enter TIME-WAIT ... otherwise, enter CLOSING."
            if self._fin_seq >= 0 and self.snd_una > self._fin_seq:
                self._enter_time_wait(now)
            else:
                self._set_state(State.CLOSING)
        elif state is State.FIN_WAIT_2:
            self._enter_time_wait(now)

    def _enter_time_wait(self, now: float) -> None:
        self._set_state(State.TIME_WAIT)
        # "Start the time-wait timer, turn off the other timers."
        self._rto_at = self._persist_at = self._keepalive_at = self._delack_at = None
        self._comp_ack_at = None
        self._rec.stop_timers()
        self._close_at = now + 2 * self.config.msl

    def _reset_after_close(self) -> None:
        """Data for a connection its user has closed: nobody will read it (RFC 9293 §3.10.7.4)."""
        self._queued.append(self._build_rst(self._rst_seq()))
        self._fail(ConnectionReset("connection reset: data arrived after close"))

    # ------------------------------------------------------------------ reading side effects

    def _after_read(self) -> None:
        if not self._rcv_queued:
            self._readable_signalled = False
        if self.state not in RECEIVES_TEXT:
            return
        # Send a window update when reading opened the window a lot (RFC 9293
        # §3.8.6.2.2): at least doubled it, or by half the buffer, and by at least a segment.
        current = self._rcv_adv - self.rcv_nxt
        free = self._rcv_limit - self._rcv_queued - self._ooo_bytes
        gain = free - current
        if gain >= self._rcv_mss and (gain >= current or gain >= self._rcv_limit // 2):
            self._ack_now = True

    # ------------------------------------------------------------------ timers

    # Each timer: the attribute holding its deadline, and what runs when it passes, in the
    # order they are checked. Any of them may end the connection, which stops the rest.
    _TIMERS = (
        ("_close_at", "_close_timer"),  # TIME-WAIT's 2*MSL, or an orphan's FIN-WAIT-2
        # The PTO is capped at the RTO's deadline and, when both are due, goes first: the
        # probe then re-arms the RTO (RFC 8985 §7.3), as Linux's one timer does.
        ("_recovery_at", "_recovery_timer"),
        ("_rto_at", "_retransmit_timeout"),
        ("_persist_at", "_window_probe"),
        ("_pace_at", "_pacing_timer"),
        ("_keepalive_at", "_keepalive_probe"),
        ("_delack_at", "_delayed_ack_timer"),
        ("_comp_ack_at", "_delayed_ack_timer"),  # the compressed SACKs are due
    )

    def handle_timer(self, now: float) -> None:
        """Run every timer whose deadline has passed."""
        for deadline, handler in self._TIMERS:
            when = getattr(self, deadline)
            if when is not None and now >= when:
                setattr(self, deadline, None)
                getattr(self, handler)(now)
                if self.state is State.CLOSED:
                    return

    def _close_timer(self, now: float) -> None:
        if self.state is State.FIN_WAIT_2:
            self._queued.append(self._build_rst(self._rst_seq()))
        self._terminate()

    def _delayed_ack_timer(self, now: float) -> None:
        self._ack_now = True

    def _pacing_timer(self, now: float) -> None:
        """The pacing time of data that waits has come: segments_to_send sends it."""

    def _retransmit_timeout(self, now: float) -> None:
        """RFC 6298 §5.4-5.6 (and RFC 5681 §3.1 for the window)."""
        reo_at = self._rec.reo_at
        if reo_at is not None and reo_at > now:
            # RACK's reordering timer (RFC 8985 §6.2) is pending: RACK judges the flight
            # then, and the RTO waits for it, as in Linux, where the reordering timer
            # takes the RTO timer's place. RFC 8985 arms the timer for the latest of the
            # segments in doubt, so it may fall a hair after an RTO that an earlier
            # one's loss (RACK could tell it) would otherwise meet.
            self._rto_at = reo_at
            return
        self._retries += 1
        self.counters["timeouts"] += 1
        cfg = self.config
        # Our SYN is still unacknowledged (SYN-SENT, SYN-RECEIVED, or FIN-WAIT-1 entered
        # from SYN-RECEIVED by a close): the handshake's own retry limits apply.
        handshaking = self.snd_una == self.iss
        if handshaking:
            limit = cfg.synack_retries if self._passive else cfg.syn_retries
            if self._retries > limit:
                self._fail(ConnectionTimedOut("connection timed out"))
                return
        else:
            give_up = self._retries > cfg.max_retransmits
            if cfg.user_timeout is not None and now - self._una_since >= cfg.user_timeout:
                give_up = True
            if give_up:
                self._fail(ConnectionTimedOut("connection timed out"))
                return
        self._rtt.backoff()
        self._rtt_seq = -1  # Karn's rule: no sample from a retransmitted segment
        if handshaking:
            self._syn_pending = True
            self._rto_at = now + self._rtt.rto
            if self._fin_seq >= 0:  # a FIN sent after the SYN-ACK goes again too
                self._rec.resend_from(self._sndbuf.seq, self.snd_max)
            return
        # The loss window: go back to SND.UNA and resend, in slow start, whatever the
        # scoreboard does not show as received (RFC 6675 §5.1).
        self._rec.on_rto(self._cc, self.snd_una, self.snd_max, now, self._retries)
        self._rto_at = now + self._rtt.rto

    # ------------------------------------------------------------------ tail loss probe

    @property
    def _recovery_at(self) -> float | None:
        """The recovery's own timer (RACK's reordering timer or the PTO), in the table
        of timers below."""
        return self._rec.timer_at

    @_recovery_at.setter
    def _recovery_at(self, value: float | None) -> None:
        """Nothing: `_recovery_timer` clears whichever of the two timers it ran."""

    def _recovery_timer(self, now: float) -> None:
        """RACK's reordering timer (RFC 8985 §6.2) or the PTO (§7.3) expired."""
        rec = self._rec
        if self.state not in SYNCHRONIZED or self.snd_max <= self.snd_una:
            rec.stop_timers()
            return
        if rec.reo_at is not None and now >= rec.reo_at:
            rec.on_reorder_timeout(self._cc, self.snd_una, self.snd_max, now)
            rto_at = self._rto_at
            if rto_at is not None and rto_at <= now and rec.resends(self.snd_una):
                # The RTO is due too (it waited for this timer: `_retransmit_timeout`),
                # but RACK has found the segment at SND.UNA lost and it goes again now:
                # the RTO restarts from that retransmission (RFC 6298 (5.1)), as Linux
                # re-arms it once its reordering timer has run (tcp_rack_reo_timeout).
                self._rto_at = now + self._rtt.rto
        if rec.pto_at is None or now < rec.pto_at:
            return
        # The PTO: send one probe to draw an ACK (and its SACK blocks) from the peer,
        # then leave the rest to the RTO.
        # "After attempting to send a loss probe, regardless of whether a loss probe was
        # sent, the sender MUST re-arm the RTO timer, not the PTO timer, if the
        # FlightSize is not zero." A probe is a transmission: the RTO restarts from it.
        # A skipped probe sent nothing, so the RTO keeps the deadline RFC 6298 §5.1 gave
        # it when the data went out (the PTO was capped at it, §7.2), as Linux's
        # tcp_rearm_rto offsets it from the head's transmission: restarting it in full
        # here would add a whole PTO to the repair (490 ms instead of 245 with one
        # request in flight at a 40 ms RTT).
        if rec.probe_due():
            self._send_probe(now)
            self._rto_at = now + self._rtt.rto
        elif self._rto_at is None:
            self._rto_at = now + self._rtt.rto

    def _send_probe(self, now: float) -> None:
        self._flush_ack_points(now)
        out = self._queued
        mss = self.snd_mss - self._sack_option_size()
        buf = self._sndbuf
        buf_seq = buf.seq
        data_end = buf.end
        nxt = max(self.snd_nxt, buf_seq)
        edge = self.snd_wl2 + self.snd_wnd
        if nxt < data_end and edge > nxt:
            # "the sender SHOULD transmit a previously unsent data segment, if one exists
            # and the receive window allows, and increment the FlightSize accordingly"
            # (one segment beyond cwnd).
            end = min(nxt + mss, data_end, edge)
            fin = end == self._fin_seq
            start = nxt
            self._send_range(out, nxt, end, now, retransmit=False, fin=fin)
            self.snd_nxt = end + 1 if fin else end
            if self.snd_nxt > self.snd_max:
                self.snd_max = self.snd_nxt
            retrans = False
        else:
            # "If such an unsent segment is not available, then the sender SHOULD
            # retransmit the highest-sequence segment sent so far and set TLP.is_retrans
            # to true." (Its last MSS of data, and the FIN if that was sent.)
            start = max(min(self.snd_max, data_end) - mss, self.snd_una, buf_seq)
            self._send_range(out, start, self.snd_max, now, retransmit=True)
            retrans = True
        self._rec.on_probe_sent(start, self.snd_max, retrans)

    def _window_probe(self, now: float) -> None:
        """Persist timer (RFC 9293 §3.8.6.1): probe a zero window so a lost update cannot
        deadlock the connection. Like Linux we send an old sequence number that the peer
        must acknowledge with its current window. Probing never stops while the peer
        answers; it is abandoned only if probes go unanswered as long as retransmissions
        would be."""
        if self.state not in SYNCHRONIZED:
            return
        usable = self.snd_wl2 + self.snd_wnd - max(self.snd_nxt, self._sndbuf.seq)
        if usable > 0:
            self._force_send = True  # a small window: the SWS override timeout has passed
            return
        # The usable window is closed (SND.WND may still be non-zero: an update the WL1/WL2
        # rule would not take leaves the right edge at SND.NXT). Probe it.
        self._probes += 1
        if self._probes > self.config.max_retransmits:
            self._fail(ConnectionTimedOut("connection timed out (window probes)"))
            return
        self._flush_ack_points(now)
        self._queued.append(self._build(self.snd_una - 1, self.rcv_nxt, ACK, now))
        self._persist_backoff += 1
        self._persist_at = now + self._persist_interval()

    def _persist_interval(self) -> float:
        base = max(self._rtt.rto, self.config.rto_min)
        return float(min(base * (1 << min(self._persist_backoff, 16)), self.config.rto_max))

    def _keepalive_restart(self, now: float) -> None:
        if self.config.keepalive and self.state in (State.ESTABLISHED, State.CLOSE_WAIT):
            self._keepalive_at = now + self.config.keepalive_idle

    def _keepalive_probe(self, now: float) -> None:
        """RFC 9293 §3.8.4: after an idle period, a segment with SEG.SEQ = SND.NXT-1 that
        the peer must acknowledge; `keepalive_count` unanswered probes end the connection."""
        if self._gone_since is not None:
            self._gone_probe(now)  # the timer is the gone peer's probe's for now
            return
        cfg = self.config
        if not cfg.keepalive or self.state not in (State.ESTABLISHED, State.CLOSE_WAIT):
            return
        if self.snd_max > self.snd_una or self.unsent:
            # RFC 9293 §3.8.4 MUST-26: "only ... when no sent data is outstanding"; the
            # retransmission timer watches the peer meanwhile.
            self._keepalive_at = now + cfg.keepalive_idle
            return
        due = self._last_recv + cfg.keepalive_idle
        if now < due and self._probes == 0:
            # Heard from the peer since the timer was set. (Compare with the deadline
            # itself: `now - last < idle` can round differently and re-arm for ever.)
            self._keepalive_at = due
            return
        if self._probes >= cfg.keepalive_count:
            self._fail(ConnectionTimedOut("connection timed out (keepalive)"))
            return
        self._probes += 1
        self._flush_ack_points(now)
        self._queued.append(self._build(self.snd_una - 1, self.rcv_nxt, ACK, now))
        self._keepalive_at = now + cfg.keepalive_interval

    # ------------------------------------------------------------------ a peer gone

    def port_unreachable(self, seq32: int, now: float) -> None:
        """The carrier says no process holds the peer's port: an ICMP port-unreachable
        that quotes a segment we sent with sequence number `seq32`.

        RFC 5461 §4.1 and RFC 5927 §5.2: after the handshake such an error must not end
        a connection on its own (it is unauthenticated), so it starts a check instead.
        It counts only if it quotes a sequence number we may have sent and not seen
        acknowledged (RFC 5927 §4.1, Linux's check in tcp_v4_err; a probe's is SND.UNA
        - 1). One RTO later, if nothing was heard from the peer, a probe it must answer
        goes out (SEG.SEQ = SND.UNA - 1, as a keepalive's); a second port-unreachable
        that comes at least that RTO after the first, with still nothing heard, ends
        the connection as the RST would that the peer's kernel sends for a process that
        dies. A kernel's TCP learns it at once; without this, after the retransmission
        limit (RFC 9293 §3.8.3's R2, minutes) or never, when we were only receiving.
        In CLOSING and LAST-ACK the user has closed, and the connection ends quietly,
        as a RST ends it there (RFC 9293 §3.10.7.4). The probe borrows keepalive's
        timer; keepalive gets its own deadline back when the check stands down.
        SYN-SENT is the engine's to judge (the error refuses the connection at once).
        """
        state = self.state
        if state not in SYNCHRONIZED or state is State.TIME_WAIT:
            return
        seq = self._unwrap_ack(seq32)
        if not self.snd_una - 1 <= seq <= self.snd_max:
            self.counters["icmp_ignored"] += 1
            return
        self.counters["port_unreachable"] += 1
        if self._gone_since is None or self.segs_in > self._gone_heard:
            # The first sign, or the peer has been heard from since the last one.
            wait = max(self._rtt.base_rto, self.config.rto_min)
            if self._gone_since is None:
                self._gone_keepalive_at = self._keepalive_at
            self._gone_since = now
            self._gone_heard = self.segs_in
            self._gone_confirm_at = now + wait
            self._gone_probes = 0
            self._keepalive_at = now + wait
            return
        if now >= self._gone_confirm_at:
            if state is State.CLOSING or state is State.LAST_ACK:
                self._terminate()  # as a RST there: the user has closed already
            else:
                self._fail(ConnectionReset("connection reset: nothing listens at the peer's port"))

    def _gone_probe(self, now: float) -> None:
        """One RTO after a port-unreachable: ask the peer for an ACK, or stand down."""
        if self.segs_in > self._gone_heard or self._gone_probes >= GONE_PROBES:
            # The peer spoke, or no second error came (ICMP is rate-limited and filtered
            # on the way): TCP's own timers watch the peer from here.
            # Keepalive goes on where it was (probing, it may be due at once).
            self._gone_since = None
            saved = self._gone_keepalive_at
            self._gone_keepalive_at = None
            if saved is not None:
                self._keepalive_at = saved if saved > now else now
            else:
                self._keepalive_restart(now)
            return
        self._gone_probes += 1
        self._flush_ack_points(now)
        self._queued.append(self._build(self.snd_una - 1, self.rcv_nxt, ACK, now))
        self._keepalive_at = now + max(self._rtt.base_rto, self.config.rto_min)

    # ------------------------------------------------------------------ outbound segments

    def segments_to_send(self, now: float) -> list[Outgoing]:
        """Every segment the connection wants transmitted now, in order: each a `bytes`,
        but a large one `Gathered` where Config.gather_from asks for it."""
        self._rec.fs_snd_max = -1  # a chance to send: the next batch of ACKs starts here
        if self._ack_points:
            self._flush_ack_points(now)
        out = self._queued
        state = self.state
        if (
            state is _ESTABLISHED
            and not out
            and not self._ack_now
            and self.snd_nxt >= self._sndbuf.end
            and self._rec.high_rxt >= self._rec.lost_edge
            and self._fin_seq < 0
            and not self._rec.rxt_again
            and self._prediction
        ):
            # The common case of nothing to say, decided cheaply. A shortcut past the
            # full path below, so Config.header_prediction turns it off too.
            return []
        if (
            state is _ESTABLISHED
            and not out
            and self.snd_una == self.snd_max
            and self._prediction
            and (small := self._send_small(now)) is not None
        ):
            return small
        self._queued = []
        if state is State.CLOSED or state is State.LISTEN:
            return out
        if self._syn_pending:
            self._send_syn(out, now)
            if state is State.SYN_SENT or state is State.SYN_RECEIVED:
                return out
        if state is State.SYN_SENT:
            return out
        if state is not State.TIME_WAIT and state is not State.SYN_RECEIVED:
            self._transmit(out, now)
        if self._ack_now:
            self._send_pure_ack(out, now)
        if self._keepalive_at is None and self.config.keepalive:
            self._keepalive_restart(now)
        return out

    def _send_small(self, now: float) -> list[Outgoing] | None:
        """`segments_to_send` for a request or a response: at most one segment of data
        queued on an ESTABLISHED connection with nothing in flight, as `_transmit` and
        `_send_new` would send it, without their general cases; None where any of those
        could apply (the full path decides). The caller checked ESTABLISHED, nothing
        queued and SND.UNA = SND.MAX.

        With nothing in flight, no SACK blocks to send, no retransmission due, no
        pacing, no rate sampling, no FIN and no idle restart, `_transmit` comes down to:
        the window and the congestion window allow the segment (the pipe is empty),
        Nagle holds nothing (no short segment is unacknowledged), and `_send_new`'s
        one segment carries PSH.
        """
        rec = self._rec
        buf = self._sndbuf
        nxt = self.snd_nxt
        if nxt < buf.seq:  # the SYN is not data
            nxt = buf.seq
        data_end = buf.end
        avail = data_end - nxt
        mss = self.snd_mss
        una = self.snd_una
        cc = self._cc
        if (
            avail <= 0
            or avail > mss
            or self._fin_seq >= 0
            or self._syn_pending
            or self._ooo_starts  # SACK blocks would ride on the segment
            or cc.pacing_rate
            or self._rate is not None
            or rec.rxt_again
            or rec.high_rxt < rec.lost_edge
            or rec.in_recovery  # PRR's window
            or rec.dupacks  # limited transmit
            or self._snd_sml > una  # Nagle might hold a short segment
            or now - self._last_send > self._rtt.rto  # RFC 5681 §4.1's restart
            or avail > self.snd_wl2 + self.snd_wnd - nxt
            or avail > cc.cwnd - rec.pipe(una, una)
        ):
            return None
        self._force_send = False  # it only lets a held short segment go: none is held
        end = nxt + avail
        out: list[Outgoing] = [
            pack_data(
                self.local_port,
                self.remote_port,
                nxt,
                self.rcv_nxt,
                ACK | PSH,  # PSH: the end of the queued data
                self._window_field(),
                (int(now * 1000) + self._ts_offset) & MASK if self._ts_ok else None,
                self._ts_recent,
                buf.view(nxt, avail),
                self._csum_pseudo,
            )
        ]
        self.segs_out += 1
        rec.on_send(nxt, end, False, now)
        if avail < mss:
            self._snd_sml = end
        self.bytes_out += avail
        if not self._ts_ok and self._rtt_seq < 0:
            self._rtt_seq = end
            self._rtt_time = now
        # _data_sent: RFC 6298 (5.1), the retransmission timer starts.
        if self._rto_at is None:
            self._rto_at = now + self._rtt.rto
            self._una_since = now
        self._persist_at = None
        self._last_send = now
        self._after_ack_sent()
        self.snd_nxt = end
        if end > self.snd_max:
            self.snd_max = end
        if rec.tlp:
            # RFC 8985 §7.2: "after transmitting new data"
            rec.arm_tlp(una, self.snd_max, una == self.iss, self._rtt.srtt, self._rto_at, now)
        if self._keepalive_at is None and self.config.keepalive:
            self._keepalive_restart(now)
        return out

    def _send_syn(self, out: list[Outgoing], now: float) -> None:
        cfg = self.config
        opts = Options(mss=cfg.mss)
        # A <SYN> offers every enabled option; a <SYN,ACK> (passive or simultaneous
        # open) answers the peer's SYN and carries only what it offered: RFC 7323 §2.2
        # and §3.2 allow WS and TSopt in a <SYN,ACK> "only if" received in the <SYN>.
        active = self.state is State.SYN_SENT
        if (active or self._ws_ok) and cfg.window_scaling:
            self._rcv_wscale = self._choose_wscale()
            opts.wscale = self._rcv_wscale
        if (active and cfg.sack) or self._sack_ok:
            opts.sack_permitted = True
        if (active and cfg.timestamps) or self._ts_ok:
            opts.timestamps = (self._ts_now(now), self._ts_recent if self._ts_ok else 0)
        flags = SYN
        ack = 0
        if self.state is not State.SYN_SENT:  # the peer's SYN is known: SYN-ACK
            flags |= ACK
            ack = self.rcv_nxt
        window = min(self._rcv_limit, 0xFFFF)  # the window of a SYN is never scaled
        self._rcv_adv = self.rcv_nxt + window
        seg = self._build_with_options(self.iss, ack, flags, window, encode_options(opts))
        out.append(seg)
        self._syn_pending = False
        if self.snd_max == self.iss:
            self.snd_max = self.snd_nxt = self.iss + 1
            self._una_since = now
        if self._retries:
            self.counters["retransmits"] += 1
        if self._rto_at is None:
            self._rto_at = now + self._rtt.rto
        self._last_ack_sent = self.rcv_nxt
        self._ack_now = False

    def _transmit(self, out: list[Outgoing], now: float) -> None:
        """Send what the windows allow: retransmissions first, then new data, then FIN."""
        # Options take room from the payload (RFC 9293 §3.7.1): SACK blocks, when they
        # ride on data segments, make the segments that much shorter.
        mss = self.snd_mss - self._sack_option_size()
        cwnd = self._cc.cwnd
        buf = self._sndbuf
        buf_seq = buf.seq
        data_end = buf.end
        fin_seq = self._fin_seq
        wnd_edge = self.snd_wl2 + self.snd_wnd

        # 0. Pacing, when the congestion control asks for it (BBR): at most one send
        # quantum per pacing time; retransmissions count against it too.
        pacing = self._cc.pacing_rate
        budget = -1  # bytes this call may send; -1: unpaced
        if pacing:
            self._pace_at = None
            budget = 0 if now < self._pace_next else max(self._cc.send_quantum, mss)
        spent = 0

        # 1. Retransmit what is deemed lost (after an RTO, or in fast recovery): first
        # retransmissions found lost themselves (already counted in the pipe), then the
        # holes below the loss edge.
        rec = self._rec
        if budget and (rec.rxt_again or rec.high_rxt < rec.lost_edge):
            for start, end in rec.retransmissions(self.snd_una, self.snd_max, mss, cwnd):
                self._send_range(out, start, end, now, retransmit=True)
                spent += end - start

        # 2. New data, as the receive window, the congestion window, Nagle and
        # sender-side SWS avoidance allow (RFC 9293 §3.8.6.2.1).
        force = self._force_send
        self._force_send = False
        nxt = self.snd_nxt
        if nxt < buf_seq:  # the SYN is not data
            nxt = buf_seq
        avail = data_end - nxt
        if avail > 0:
            if self.snd_max == self.snd_una and now - self._last_send > self._rtt.rto:
                # RFC 5681 §4.1: after an idle period longer than the RTO, the ACK clock
                # is lost; restart from no more than the initial window.
                self._cc.restart_after_idle(now)
                cwnd = self._cc.cwnd
            room = rec.send_room(cwnd, self.snd_una, self.snd_max, mss)
            peer_room = wnd_edge - nxt
            if peer_room < room:
                room = peer_room
            if budget >= 0 and room > budget - spent:
                room = max(budget - spent, 0)
                if room < avail:
                    self._pace_at = self._pace_next  # more may go at the next pacing time
            usable = avail if avail < room else room
            count, tail = divmod(usable, mss) if usable > 0 else (0, 0)
            if tail and not force:
                if usable == avail:
                    # The end of the queued data. Nagle (RFC 9293 §3.7.4) as Linux applies
                    # it (Minshall's refinement): hold a short segment only while an
                    # earlier short segment is unacknowledged, unless no_delay.
                    # The segment that carries the FIN is exempt, as in Linux: after
                    # shutdown no later write can join it.
                    if (
                        not self.config.no_delay
                        and self._snd_sml > self.snd_una
                        and fin_seq != data_end
                    ):
                        tail = 0
                elif tail < self.max_snd_wnd >> 1:
                    # More queued than the windows allow: sender SWS avoidance sends a
                    # short segment only if it is at least half the largest window
                    # the peer ever offered (the persist timer is the override).
                    tail = 0
            if count or tail:
                flight = self.snd_max - self.snd_una
                nxt = self._send_new(
                    out, now, nxt, count, tail, data_end, fin_seq, mss, self._sack_option()
                )
                self.snd_nxt = nxt
                if nxt > self.snd_max:
                    self.snd_max = nxt
                if rec.tlp:
                    # RFC 8985 §7.2: "after transmitting new data"
                    rec.arm_tlp(
                        self.snd_una,
                        self.snd_max,
                        self.snd_una == self.iss,
                        self._rtt.srtt,
                        self._rto_at,
                        now,
                    )
                if rec.dupacks > 0:  # limited transmit's count; nothing otherwise
                    rec.on_new_data_sent(flight, cwnd, self.snd_una, self.snd_max)
                spent += count * mss + tail
            if self._rate is not None and nxt >= data_end:
                # draft-cheng-iccrg-delivery-rate-estimation §3.4: everything queued is
                # sent and the window has room: what follows is application-limited.
                pipe = rec.pipe(self.snd_una, self.snd_max)
                if pipe + mss <= cwnd and not rec.rxt_again and rec.high_rxt >= rec.lost_edge:
                    self._rate.on_app_limited(pipe)
            if nxt < data_end and self.snd_max <= self.snd_una:
                # Data waits and nothing is in flight to bring an ACK: a zero or too-small
                # window. The persist timer probes it (RFC 9293 §3.8.6.1).
                self._arm_persist(now)

        if spent and pacing:
            # The next burst leaves after this one's time at the pacing rate; a timer
            # that fired late may take up to one quantum of the time it lost.
            base = now - self._cc.send_quantum / pacing
            if self._pace_next > base:
                base = self._pace_next
            self._pace_next = base + spent / pacing
            if self._pace_at is not None:
                self._pace_at = self._pace_next
        elif budget == 0 and (avail > 0 or rec.rxt_again or rec.high_rxt < rec.lost_edge):
            self._pace_at = self._pace_next  # all of it waits for the pacing time

        # 3. A FIN with no data left to carry it.
        if fin_seq >= 0 and max(self.snd_nxt, buf_seq) == fin_seq:
            self._send_range(out, fin_seq, fin_seq, now, retransmit=False, fin=True)
            self.snd_nxt = fin_seq + 1
            if self.snd_max < self.snd_nxt:
                self.snd_max = self.snd_nxt
            if rec.tlp:
                rec.arm_tlp(  # a lone FIN is new data too
                    self.snd_una,
                    self.snd_max,
                    self.snd_una == self.iss,
                    self._rtt.srtt,
                    self._rto_at,
                    now,
                )

    def _send_new(
        self,
        out: list[Outgoing],
        now: float,
        nxt: int,
        count: int,
        tail: int,
        data_end: int,
        fin_seq: int,
        mss: int,
        sack_option: bytes,
    ) -> int:
        """The hot path: `count` full segments and one of `tail` bytes, from `nxt`.

        wire's `pack_burst` cuts them from the send buffer, summing each header's
        checksum arithmetically; with header prediction off, each is built by the
        general builder instead, as a retransmission is (see Config.header_prediction).
        """
        sent = count * mss + tail
        end = nxt + sent
        # Only the last segment can end where the queued data (and so the FIN) does.
        last = PSH if end == data_end else 0
        if end == fin_seq:
            last |= FIN
        if self._prediction:
            # The options are the same on every segment of the burst: NOP NOP TS, and
            # the SACK blocks while the receive queue has holes (RFC 2018 §4). The
            # buffer gives the burst in runs of whole segments, one run unless it
            # crosses the end of one of the buffer's chunks.
            window = self._window_field()
            options = self._ts_option(now) + sack_option
            seq = nxt
            for run in self._sndbuf.runs(nxt, sent, mss):
                n = len(run)
                pack_burst(
                    out,
                    self.local_port,
                    self.remote_port,
                    seq,
                    self.rcv_nxt,
                    ACK,
                    window,
                    options,
                    run,
                    mss,
                    last if seq + n == end else 0,
                    self._csum_pseudo,
                    self._gather_from,
                )
                seq += n
            self.segs_out += count + (1 if tail else 0)
        else:
            for i in range(count + (1 if tail else 0)):
                n = mss if i < count else tail
                flags = ACK | last if i * mss + n == sent else ACK
                out.append(self._build_data(nxt + i * mss, flags, n, now))
        self._rec.on_send(nxt, end, last & FIN != 0, now)
        if self._rate is not None:
            self._rate.on_send_range(nxt, now, self.snd_max == self.snd_una)
        nxt = end + 1 if last & FIN else end
        if tail:
            self._snd_sml = nxt
        self.bytes_out += sent
        if not self._ts_ok and self._rtt_seq < 0:
            self._rtt_seq = nxt
            self._rtt_time = now
        self._data_sent(now)
        self._after_ack_sent()
        return nxt

    def _data_sent(self, now: float) -> None:
        """Data (or a FIN) went out: RFC 6298 (5.1), start the retransmission timer if
        it is not running; the persist timer has no more reason to run."""
        if self._rto_at is None:
            self._rto_at = now + self._rtt.rto
            if self.snd_una == self.snd_max:
                self._una_since = now
        self._persist_at = None
        self._last_send = now

    def _arm_persist(self, now: float) -> None:
        if self._persist_at is None and self._rto_at is None:
            self._persist_at = now + self._persist_interval()

    def _send_range(
        self,
        out: list[Outgoing],
        start: int,
        end: int,
        now: float,
        *,
        retransmit: bool,
        fin: bool = False,
    ) -> None:
        """Build the segment carrying [start, end) of the stream (and FIN if asked)."""
        data_end = self._sndbuf.end
        flags = ACK
        if end > data_end:  # only the FIN can lie beyond the data
            end = data_end
            fin = self._fin_seq == data_end
        if fin:
            flags |= FIN
        n = end - start
        if n > 0 and end == data_end:
            flags |= PSH
        seg = self._build_data(start, flags, n, now)
        out.append(seg)
        stats = self.counters
        self.segs_out += 1
        if retransmit:
            stats["retransmits"] += 1
            self._rtt_seq = -1
            if self._ts_ok:  # Karn's rule with timestamps: see _ack_advance
                self._rxt_ts = self._ts_now(now)
                end_seq = end + 1 if fin else end
                if end_seq > self._rxt_ts_end:
                    self._rxt_ts_end = end_seq
        else:
            self.bytes_out += n
            if not self._ts_ok and self._rtt_seq < 0 and n:
                self._rtt_seq = end
                self._rtt_time = now
            if self._rate is not None and n:
                self._rate.on_send_range(start, now, self.snd_max == self.snd_una)
        self._rec.on_transmit(start, end, fin, now, self.snd_max, retransmit)
        self._data_sent(now)

    def _send_pure_ack(self, out: list[Outgoing], now: float) -> None:
        if not self._prediction or (self._ooo_starts and self._sack_ok) or self._dsack:
            out.append(self._build(self.snd_max, self.rcv_nxt, ACK, now, sack=True))
            return
        # Half of a bulk transfer's segments are pure ACKs: wire packs them in one
        # call, with the checksum summed arithmetically.
        window = self._window_field()
        out.append(
            pack_ack(
                self.local_port,
                self.remote_port,
                self.snd_max,
                self.rcv_nxt,
                ACK,
                window,
                (int(now * 1000) + self._ts_offset) & MASK if self._ts_ok else None,
                self._ts_recent,
                self._csum_pseudo,
            )
        )
        self.segs_out += 1
        self._after_ack_sent()

    def _flush_ack_points(self, now: float) -> None:
        """Queue the ACKs a batch of arrivals owed (`_ack_points`), oldest first.

        Called at the start of `segments_to_send` (there only when some are owed: it is
        the hot path) and before anything else is queued (a duplicate ACK, a probe, a
        keepalive), so each ACK goes out in its place with
        that moment's window and SND.MAX. A point at RCV.NXT is left to the segment that
        follows, which acknowledges RCV.NXT too; it echoes the point's TSval, not that
        of a later segment that brought no data (RFC 7323 §4.3). Each ACK advertises the
        right edge of now, rounded up to the window scale as `_window_field` rounds, and
        never one below an edge already advertised (RFC 7323 §2.4).
        """
        points = self._ack_points
        if not points:
            return
        self._ack_points = []
        self._ack_thinned = 0
        self._ack_owe_at = 0
        rcv_nxt = self.rcv_nxt
        if points[-1][0] == rcv_nxt:
            self._ts_recent = points.pop()[1]
        if not points or self.state is State.CLOSED:
            return
        self._window_field()  # moves _rcv_adv to the edge an ACK of RCV.NXT gives now
        shift = self._rcv_wscale
        round_up = (1 << shift) - 1
        tsval = self._ts_now(now) if self._ts_ok else None
        lport = self.local_port
        rport = self.remote_port
        seq = self.snd_max
        pseudo = self._csum_pseudo
        out = self._queued
        for ack, tsecr in points:
            edge = self._rcv_adv
            field = (edge - ack + round_up) >> shift
            if field > 0xFFFF:
                field = 0xFFFF
            if ack + (field << shift) > edge:
                self._rcv_adv = ack + (field << shift)
            out.append(pack_ack(lport, rport, seq, ack, ACK, field, tsval, tsecr, pseudo))
        self.segs_out += len(points)

    def _send_ack_immediately(self, now: float) -> None:
        """Queue an ACK now, separately from any data (a duplicate ACK must be pure)."""
        self._flush_ack_points(now)
        self._queued.append(self._build(self.snd_max, self.rcv_nxt, ACK, now, sack=True))

    def _challenge_ack(self, now: float) -> None:
        """RFC 5961 §3.2/§4.2/§5.2's challenge ACK, rate-limited as §7 asks."""
        cfg = self.config
        tokens = self._challenge_tokens + (now - self._challenge_at) * cfg.challenge_ack_limit
        self._challenge_at = now
        tokens = min(tokens, float(cfg.challenge_ack_limit))
        if tokens >= 1.0:
            self._challenge_tokens = tokens - 1.0
            self.counters["challenge_acks"] += 1
            self._send_ack_immediately(now)
        else:
            self._challenge_tokens = tokens

    def _ts_now(self, now: float) -> int:
        return (int(now * 1000) + self._ts_offset) & MASK

    def _window_field(self) -> int:
        """The window to advertise, with receiver-side SWS avoidance (RFC 9293 §3.8.6.2.2).

        The right edge moves only when it can move by min(half the buffer, one
        segment), and never moves left (RFC 7323 §2.4).
        """
        rcv_nxt = self.rcv_nxt
        free = self._rcv_limit - self._rcv_queued - self._ooo_bytes
        edge = rcv_nxt + (free if free > 0 else 0)
        adv = self._rcv_adv
        if edge > adv and edge - adv >= min(self._rcv_limit >> 1, self._rcv_mss):
            adv = edge
        wnd = adv - rcv_nxt
        if wnd < 0:
            wnd = 0
        shift = self._rcv_wscale
        field = (wnd + (1 << shift) - 1) >> shift  # round up: the edge never recedes
        if field > 0xFFFF:
            field = 0xFFFF
        adv = rcv_nxt + (field << shift)
        if adv > self._rcv_adv:
            self._rcv_adv = adv
        return field

    def _after_ack_sent(self) -> None:
        self._ack_now = False
        self._delack_at = None
        self._comp_runs = 0
        if self._comp_acks:  # this ACK carries what the compressed ones would have
            self._comp_acks = 0
            self._comp_ack_at = None
        self._last_ack_sent = self.rcv_nxt

    def _ts_option(self, now: float) -> bytes:
        """NOP NOP TS(TSval, TSecr) when timestamps are in use, else nothing."""
        if self._ts_ok:
            return encode_timestamps(self._ts_now(now), self._ts_recent)
        return b""

    def _sack_option(self) -> bytes:
        """NOP NOP SACK with our blocks, while out-of-order data is held (RFC 2018 §4:
        "in all ACKs which do not ACK the highest sequence number" received)."""
        if not (self._sack_ok and self._ooo_starts):
            return b""
        return encode_sack(self._sack_blocks())

    def _sack_option_size(self) -> int:
        """len(self._sack_option()), without building it (a receiver of bulk data with
        holes would otherwise build its blocks twice per ACK): as many blocks as the
        option has room for, or as there are ranges held."""
        if not (self._sack_ok and self._ooo_starts):
            return 0
        held = len(self._ooo_ranges)
        room = 3 if self._ts_ok else 4
        return sack_option_size(held if held < room else room)

    def _ack_sack_blocks(self) -> list[tuple[int, int]]:
        """The SACK blocks of an ACK without data: a pending D-SACK block first (RFC
        2883 §4: the first block of the SACK option should be a D-SACK block naming the
        duplicate that triggered the ACK), then as many of our blocks as still fit, the
        one holding the duplicate first ("the second SACK block in that SACK option
        should specify that (possibly larger) block of data"; _note_sack made it the
        most recent)."""
        dsack = self._dsack
        if dsack is None:
            if not (self._sack_ok and self._ooo_starts):
                return []
            return self._sack_blocks()
        self._dsack = None
        room = 2 if self._ts_ok else 3
        blocks = [dsack]
        if self._ooo_starts:
            blocks += self._sack_blocks()[:room]
        return blocks

    def _build_data(self, seq: int, flags: int, n: int, now: float) -> bytes:
        """One data (or FIN) segment off the hot path: retransmissions and lone FINs."""
        opts = self._ts_option(now) + self._sack_option()
        seg = self._build_with_options(
            seq, self.rcv_nxt, flags, self._window_field(), opts, self._sndbuf.view(seq, n)
        )
        self._after_ack_sent()
        return seg

    def _build(self, seq: int, ack: int, flags: int, now: float, *, sack: bool = False) -> bytes:
        """A segment without data: an ACK, a RST or a probe."""
        if flags & RST:
            return self._build_with_options(seq, ack, flags, 0, b"")
        blocks = self._ack_sack_blocks() if sack else []
        if blocks and self._ts_ok:
            # A receiver with holes sends one of these per segment: packed in one
            # call, its checksum summed arithmetically (as _send_ack's pack_ack).
            self.segs_out += 1
            seg = pack_ack_sack(
                self.local_port,
                self.remote_port,
                seq,
                ack,
                flags,
                self._window_field(),
                self._ts_now(now),
                self._ts_recent,
                blocks,
                self._csum_pseudo,
            )
            if flags & ACK:
                self._after_ack_sent()
            return seg
        opts = self._ts_option(now) + encode_sack(blocks)
        seg = self._build_with_options(seq, ack, flags, self._window_field(), opts)
        if flags & ACK:
            self._after_ack_sent()
        return seg

    def _rst_seq(self) -> int:
        """The sequence number of a RST sent from a synchronized state (an abort, a close
        with unread data, data after close): the number the peer expects next.

        RFC 9293 §3.10.5 says SND.NXT, which counts our FIN once it is out. While the FIN
        is unacknowledged the peer may not have taken it in (lost, or refused by a zero
        window), and then a RST one past it is no exact match for its RCV.NXT: an RFC 5961
        §3.2 peer answers with a challenge ACK instead of resetting (or, with a zero
        window, drops it). So until the FIN is acknowledged the RST carries the FIN's own
        number, as BSD stacks do; a peer that did take the FIN sees RCV.NXT - 1, which
        Linux (tcp_reset_check) and we (_segment_synchronized) accept after a FIN."""
        fin = self._fin_seq
        if 0 <= fin < self.snd_max and self.snd_una <= fin:
            return fin
        return self.snd_max

    def _build_rst(self, seq: int) -> bytes:
        return self._build_with_options(seq, self.rcv_nxt, RST | ACK, 0, b"")

    def _build_with_options(
        self,
        seq: int,
        ack: int,
        flags: int,
        window: int,
        opts: bytes,
        payload: bytes | memoryview = b"",
    ) -> bytes:
        """Any segment, by wire's general builder (the checksum summed over its bytes)."""
        self.segs_out += 1
        return pack_segment(
            self.local_port,
            self.remote_port,
            seq,
            ack,
            flags,
            window,
            opts,
            payload,
            self._csum_pseudo,
        )

    # ------------------------------------------------------------------ state changes

    def _set_state(self, new: State) -> None:
        old = self.state
        if old is new:
            return
        self.state = new
        self._events.append(StateChanged(old, new))
        if new is State.ESTABLISHED:
            self._events.append(Connected())

    def _return_to_listen(self) -> None:
        """Forget the half-open connection and wait for a new SYN, keeping events and stats."""
        events = self._events
        kept = (self.segs_in, self.segs_out, self.bytes_in, self.bytes_out, self.counters)
        secret = self._secret
        self.__init__(  # type: ignore[misc]
            (self.local_ip, self.local_port), (self.remote_ip, self.remote_port), self.config
        )
        self._events = events
        self.segs_in, self.segs_out, self.bytes_in, self.bytes_out, self.counters = kept
        self._secret = secret
        self._opened = True
        self._passive = True
        self.state = State.LISTEN
        events.append(StateChanged(State.SYN_RECEIVED, State.LISTEN))

    def _fail(self, error: TCPError) -> None:
        """End the connection with an error the user will see."""
        self.error = error
        self._events.append(
            TimedOut(error) if isinstance(error, ConnectionTimedOut) else Reset(error)
        )
        self._terminate()

    def _terminate(self) -> None:
        """Enter CLOSED: stop every timer, drop queued data, and say so."""
        if self.state is State.CLOSED:
            return
        self._rto_at = self._persist_at = self._keepalive_at = self._delack_at = None
        self._close_at = self._pace_at = self._comp_ack_at = None
        self._rec.stop_timers()
        self._ack_now = False
        self._ack_points.clear()
        self._ack_thinned = 0
        self._ack_owe_at = 0
        self._syn_pending = False
        self._sndbuf.clear()
        self._ooo_starts.clear()
        self._ooo_data.clear()
        self._ooo_ranges.clear()
        self._ooo_bytes = 0
        self._set_state(State.CLOSED)
        self._events.append(Closed())
