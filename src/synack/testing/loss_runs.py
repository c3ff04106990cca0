"""Seeded loss-recovery runs on the fake network, for benches and tests alike.

Two workloads, each reading the core only through its public face (the connection's
``stats``, ``srtt``, ``rto``, ``snd_una``) and the network's packet tap:

* `bulk_transfer`: one direction, random loss each way once the handshake is done.
  Goodput is set against the Mathis estimate, and every retransmission timeout the
  sender takes is judged by `RtoAudit`.
* `request_response`: a small request, a larger answer whose last segment is lost once,
  again and again. Each answer's repair is set against RFC 8985's probe timeout.

`RtoAudit` states the rule RACK (RFC 8985) makes possible: once a segment sent after
the oldest unacknowledged one's last transmission has been delivered, and an ACK saying
so (its SACK) has come back, the sender knows the older one is lost and needs no timer.
An RTO after that, beyond RACK's reordering window, was avoidable.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from synack.tcp.config import Config
from synack.tcp.connection import Connection
from synack.tcp.endpoint import Datagram, Endpoint
from synack.testing.fakenet import FakeNetwork, Link, PacketEvent, Tap, connected_pair
from synack.wire.seq import MASK
from synack.wire.tcp import parse_options, unpack_header, unpack_timestamps

CLIENT = "198.18.0.1"
SERVER = "198.18.0.2"
_FIN, _SYN = 0x01, 0x02
# RFC 8985 §7.2: "WCDelAckT stands for worst case delayed ACK timer ... RECOMMENDED
# value is 200 ms", added to the PTO when one segment is in flight.
WCDELACKT = 0.2
# With more segments in flight, the core adds Config.probe_timeout_min: on the fake
# network, Linux's 2 ms minimum timer (TCP_TIMEOUT_MIN_US).
PTO_MIN = 0.002


# The classic recovery (RFC 6675's duplicate-ACK threshold, no probes, no RACK, no PRR):
# each switch that the core has, by its Config field, set to its classic value.
CLASSIC = {"tail_loss_probe": False, "rack": False, "prr": False}


def classic_config(base: Config | None = None) -> tuple[Config, list[str]]:
    """`base` (the defaults if None) with every classic switch of `CLASSIC` the core has;
    and which ones those were, so a run can say what "classic" meant."""
    base = base if base is not None else Config()
    names = {f.name for f in dataclasses.fields(Config)}
    found: dict[str, Any] = {k: v for k, v in CLASSIC.items() if k in names}
    return dataclasses.replace(base, **found), [f"{k}={v}" for k, v in found.items()]


def mathis(mss: int, rtt: float, p: float) -> float:
    """The Mathis et al. (1997) ceiling on a loss-based sender's steady rate, bytes/s:
    MSS/RTT * sqrt(3/2)/sqrt(p), with p the probability that a data segment is lost."""
    return mss / rtt * math.sqrt(1.5) / math.sqrt(p)


def pto_bound(srtt: float, rto: float, flight: int, mss: int) -> float:
    """RFC 8985 §7.2's PTO for a sender in this state: 2*SRTT, plus WCDelAckT with one
    segment in flight (else Config.probe_timeout_min), no later than the RTO ("PTO =
    min(PTO, RTO)"; the RTO restarts on the ACK that arms the probe, RFC 6298 (5.3))."""
    pto = 2 * srtt + (WCDELACKT if flight <= mss else PTO_MIN)
    return min(pto, rto)


def _seg_len(data: bytes | bytearray) -> tuple[int, int, int, int]:
    """(seq, ack, sequence space used, header length) of one segment."""
    _sp, _dp, seq, ack, hlen, flags, _w, _c, _u = unpack_header(data)
    return seq, ack, len(data) - hlen + (flags & _FIN) + ((flags & _SYN) >> 1), hlen


class RtoKind(StrEnum):
    """What the sender could have known when its retransmission timer fired."""

    AVOIDABLE = "avoidable"  # a later segment and its SACK got through: RACK would repair
    UNREVEALED = "unrevealed"  # later segments went out, but they or their ACKs were lost
    NOTHING_LATER = "nothing later"  # no segment went out after the last copy of SND.UNA


@dataclass(frozen=True, slots=True)
class RtoVerdict:
    at: float  # when the timer fired
    una: int  # SND.UNA, bytes from the start of the audit
    last_sent: float  # when the segment at SND.UNA was last transmitted
    kind: RtoKind
    # For AVOIDABLE: when the later segment was sent and when its SACK reached the sender.
    later_sent: float | None = None
    sack_arrived: float | None = None


class RtoAudit:
    """The packet tap and timer watch that judge a sender's RTOs (see the module's text).

    Attach it with `install`: it takes the network's tap and wraps the sender's endpoint
    to see each timer fire. "Sent after" is by order of transmission, so a burst sent at
    one instant is ordered as RACK orders it (RFC 8985 §6.2: by sequence among equal
    times). The allowance for RACK's reordering window is the SRTT when the timer fires
    (§6.2: RACK.reo_wnd is at most SRTT).
    """

    def __init__(self, sender: Connection, sender_ip: bytes, receiver_ip: bytes) -> None:
        self.sender = sender
        self.sender_ip = sender_ip
        self.receiver_ip = receiver_ip
        self.origin = sender.snd_una
        self._origin32 = sender.snd_una & MASK
        self._order = 0  # counts the packets sent and delivered, in the order they were
        self._sent_as: dict[int, int] = {}  # id(packet) -> its place when it was sent
        self._sent: list[tuple[int, float, int, int]] = []  # data sent: (order, time, start, end)
        # Data delivered: (time, order, order sent, start, end).
        self._delivered: list[tuple[float, int, int, int, int]] = []
        # ACKs with SACK blocks that reached the sender: (time, order sent, blocks).
        self._sacks: list[tuple[float, int, tuple[tuple[int, int], ...]]] = []
        self.verdicts: list[RtoVerdict] = []

    def install(self, net: FakeNetwork) -> None:
        net.tap = self.tap
        inner = net.detach(self.sender_ip)
        net.attach(self.sender_ip, _TimerWatch(inner, self))

    def tap(
        self,
        now: float,
        event: PacketEvent,
        data: bytes | bytearray,
        src: bytes,
        dst: bytes,
    ) -> None:
        self._order += 1
        order = self._order
        if event is PacketEvent.SENT:
            self._sent_as[id(data)] = order
            if src == self.sender_ip:
                seq, _ack, n, _h = _seg_len(data)
                if n:
                    start = (seq - self._origin32) & MASK
                    self._sent.append((order, now, start, start + n))
        elif event is PacketEvent.DELIVERED:
            sent = self._sent_as.get(id(data), order)
            if src == self.sender_ip:
                seq, _ack, n, _h = _seg_len(data)
                if n:
                    start = (seq - self._origin32) & MASK
                    self._delivered.append((now, order, sent, start, start + n))
            elif src == self.receiver_ip:
                _seq, _ack, _n, hlen = _seg_len(data)
                if hlen > 20 and unpack_timestamps(data, hlen) is None:
                    blocks = parse_options(data, 20, hlen).sack_blocks
                    if blocks:
                        origin = self._origin32
                        rel = tuple(
                            ((left - origin) & MASK, (right - origin) & MASK)
                            for left, right in blocks
                        )
                        self._sacks.append((now, sent, rel))

    def judge(self, now: float) -> RtoVerdict:
        """The verdict on an RTO that fired at `now` (called by the timer watch)."""
        una = self.sender.snd_una - self.origin
        sent = self._sent
        last, last_time = next(
            ((order, t) for order, t, s, e in reversed(sent) if s <= una < e), (0, -math.inf)
        )
        if not sent or sent[-1][0] <= last:
            verdict = RtoVerdict(now, una, last_time, RtoKind.NOTHING_LATER)
        else:
            verdict = self._look_for_sack(now, una, last, last_time)
        self.verdicts.append(verdict)
        return verdict

    def _look_for_sack(self, now: float, una: int, last: int, last_time: float) -> RtoVerdict:
        horizon = now - (self.sender.srtt or 0.0)
        delivered = self._delivered
        later = [d for d in delivered[bisect.bisect_left(delivered, (last_time,)) :] if d[2] > last]
        for arrived, acked_as, blocks in self._sacks[
            bisect.bisect_left(self._sacks, (last_time,)) :
        ]:
            if arrived > horizon:
                break
            for _t, order, sent, s, e in later:
                if order > acked_as:
                    break  # delivered after this ACK was sent
                if any(left <= s and e <= right for left, right in blocks):
                    sent_time = next(x[1] for x in self._sent if x[0] == sent)
                    return RtoVerdict(now, una, last_time, RtoKind.AVOIDABLE, sent_time, arrived)
        return RtoVerdict(now, una, last_time, RtoKind.UNREVEALED)

    @property
    def avoidable(self) -> list[RtoVerdict]:
        return [v for v in self.verdicts if v.kind is RtoKind.AVOIDABLE]


class _TimerWatch:
    """An endpoint that passes everything through and tells the audit of each RTO."""

    def __init__(self, inner: Endpoint, audit: RtoAudit) -> None:
        self.inner = inner
        self.audit = audit
        self.handle_segment = inner.handle_segment
        self.segments_to_send = inner.segments_to_send
        self.get_timer = inner.get_timer

    def handle_timer(self, now: float) -> None:
        before = self.audit.sender.stats["timeouts"]
        self.inner.handle_timer(now)
        if self.audit.sender.stats["timeouts"] > before:
            self.audit.judge(now)


# ---------------------------------------------------------------------------- bulk


@dataclass(frozen=True, slots=True)
class BulkRun:
    size: int  # bytes moved
    rtt: float  # the path's round trip, seconds
    loss: float  # per-direction loss probability after the handshake
    seed: int
    seconds: float  # virtual time from the first send to the last byte received
    mss: int  # payload bytes per full segment
    rtos: int  # the sender's retransmission timeouts
    retransmits: int
    loss_probes: int
    max_srtt: float  # the highest SRTT the sender had
    verdicts: tuple[RtoVerdict, ...]

    @property
    def goodput(self) -> float:
        return self.size / self.seconds

    @property
    def mathis(self) -> float:
        return mathis(self.mss, self.rtt, self.loss)

    @property
    def avoidable(self) -> int:
        return sum(v.kind is RtoKind.AVOIDABLE for v in self.verdicts)


def bulk_transfer(
    size: int,
    rtt: float,
    loss: float,
    seed: int,
    config: Config | None = None,
    *,
    timeout: float = 7200.0,
    tap: Tap | None = None,
) -> BulkRun:
    """Move `size` random bytes client -> server over a path of `rtt` with `loss` each way
    (from the end of the handshake on); the sender's application keeps its buffer full.
    `tap`, if given, is told of every packet after the audit."""
    net = FakeNetwork(seed=seed, link=Link(delay=rtt / 2))
    client, server = connected_pair(net, config, client_address=CLIENT, server_address=SERVER)
    net.set_default_link(Link(delay=rtt / 2, loss=loss))
    audit = RtoAudit(client, client.local_ip, server.local_ip)
    audit.install(net)
    if tap is not None:
        audit_tap, user_tap = audit.tap, tap

        def both(
            now: float, event: PacketEvent, data: bytes | bytearray, src: bytes, dst: bytes
        ) -> None:
            audit_tap(now, event, data, src, dst)
            user_tap(now, event, data, src, dst)

        net.tap = both
    chunk = memoryview(random.Random(seed).randbytes(1 << 20))
    sent = received = 0
    worst_srtt = 0.0

    def feed(now: float) -> None:
        nonlocal sent, worst_srtt
        srtt = client.srtt
        if srtt is not None and srtt > worst_srtt:
            worst_srtt = srtt
        while sent < size and client.send_space:
            n = client.send(chunk[: min(len(chunk), size - sent, client.send_space)])
            if not n:
                break
            sent += n

    def drain(now: float) -> None:
        nonlocal received
        data = server.receive()
        while data:
            received += len(data)
            data = server.receive()

    net.set_app(CLIENT, feed)
    net.set_app(SERVER, drain)
    start = net.now
    feed(start)
    done = net.run_until(lambda: received >= size, timeout, what="the whole transfer")
    if received != size:
        raise AssertionError(f"received {received} of {size} bytes")
    stats = client.stats
    return BulkRun(
        size=size,
        rtt=rtt,
        loss=loss,
        seed=seed,
        seconds=done - start,
        mss=client.snd_mss,
        rtos=stats["timeouts"],
        retransmits=stats["retransmits"],
        loss_probes=stats["loss_probes"],
        max_srtt=worst_srtt,
        verdicts=tuple(audit.verdicts),
    )


# ---------------------------------------------------------------------------- request/response


@dataclass(frozen=True, slots=True)
class TailRepair:
    """One answer whose last segment was lost once."""

    started: float  # the request was handed to send()
    lost: float  # the last segment's first transmission (dropped)
    armed: float  # the last event that (re)armed the probe timer before the repair
    pto: float  # RFC 8985 §7.2's PTO as of `armed`
    completed: float  # the client had the whole answer (the repair arrived)

    @property
    def latency(self) -> float:
        return self.completed - self.started

    @property
    def after_loss(self) -> float:
        return self.completed - self.lost

    def within(self, rtt: float) -> bool:
        """Repaired (arrived) within the PTO plus one round trip of the probe's arming."""
        return self.completed <= self.armed + self.pto + rtt + 1e-9


@dataclass(frozen=True, slots=True)
class RequestResponseRun:
    rtt: float
    seed: int
    repairs: tuple[TailRepair, ...]
    rtos: int  # the server's retransmission timeouts
    loss_probes: int

    @property
    def latencies(self) -> list[float]:
        return [r.latency for r in self.repairs]

    @property
    def late(self) -> list[TailRepair]:
        return [r for r in self.repairs if not r.within(self.rtt)]


class _TailDropper:
    """The server's endpoint, losing the first transmission of each answer's last segment
    and noting when the probe timer was last armed (RFC 8985 §7.2: on an original
    transmission, and on an ACK of new data) before the repair went out."""

    def __init__(self, inner: Endpoint, conn: Connection) -> None:
        self.inner = inner
        self.conn = conn
        self.handle_segment = inner.handle_segment
        self.get_timer = inner.get_timer
        self.handle_timer = inner.handle_timer
        self.target = -1  # the 32-bit end of the segment to lose
        self.lost_at: float | None = None
        self.arm: tuple[float, float] = (0.0, 0.0)  # (when, PTO)
        self.repair_arm: tuple[float, float] | None = None
        self._una = conn.snd_una

    def rearm(self, now: float) -> None:
        conn = self.conn
        self.arm = (
            now,
            pto_bound(conn.srtt or conn.rto, conn.rto, conn.snd_max - conn.snd_una, conn.snd_mss),
        )

    def on_event(self, now: float) -> None:
        """The server's app hook: after each input, before its output is collected."""
        if self.conn.snd_una != self._una:
            self._una = self.conn.snd_una
            self.rearm(now)

    def segments_to_send(self, now: float) -> Iterable[Datagram]:
        out = []
        for datagram in self.inner.segments_to_send(now):
            seq, _ack, n, _h = _seg_len(datagram[0])
            if n and self.target >= 0 and (seq + n) & MASK == self.target:
                if self.lost_at is None:
                    self.lost_at = now
                    self.rearm(now)
                    continue
                if self.repair_arm is None:
                    self.repair_arm = self.arm
            out.append(datagram)
        return out


def request_response(
    rtt: float,
    count: int,
    seed: int,
    config: Config | None = None,
    *,
    request: int = 100,
    response: int = 10 * 1024,
) -> RequestResponseRun:
    """`count` requests of `request` bytes, each answered with `response` random bytes
    whose last segment is lost once; the next request goes as soon as an answer is
    whole (back to back, so no idle restart). No other loss."""
    net = FakeNetwork(seed=seed, link=Link(delay=rtt / 2))
    client, server = connected_pair(net, config, client_address=CLIENT, server_address=SERVER)
    dropper = _TailDropper(net.detach(SERVER), server)
    answer = random.Random(seed).randbytes(response)
    asked = 0
    got = 0

    def on_server(now: float) -> None:
        nonlocal asked
        dropper.on_event(now)
        asked += len(server.receive())
        if asked >= request:
            asked -= request
            server.send(answer)

    def on_client(now: float) -> None:
        nonlocal got
        got += len(client.receive())

    def answered() -> bool:
        return got >= response

    net.attach(SERVER, dropper, app=on_server)
    net.set_app(CLIENT, on_client)
    repairs: list[TailRepair] = []
    for _ in range(count):
        dropper.target = (server.snd_max + response) & MASK
        dropper.lost_at = None
        dropper.repair_arm = None
        got = 0
        started = net.now
        client.send(b"q" * request)
        completed = net.run_until(answered, 120.0, what="an answer")
        if dropper.lost_at is None or dropper.repair_arm is None:
            raise AssertionError("the answer's last segment was not lost and resent")
        armed, pto = dropper.repair_arm
        repairs.append(TailRepair(started, dropper.lost_at, armed, pto, completed))
    stats = server.stats
    return RequestResponseRun(rtt, seed, tuple(repairs), stats["timeouts"], stats["loss_probes"])
