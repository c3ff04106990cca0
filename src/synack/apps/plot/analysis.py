"""A TCP connection read from a capture, as the series its graphs draw. No plotting here.

A capture (ours, or tcpdump's of the kernel's TCP) is split into connections by
four-tuple. For one connection, the direction that carried more payload is the
*sender*; what the graphs show is seen from where the capture was taken, as
tcptrace and Wireshark show it:

* **time-sequence** (Stevens, tcptrace): each data segment as a vertical bar from
  its first to its last sequence number, in another colour when it carries bytes
  sent before (a retransmission); the receiver's cumulative ACK as a step line; the
  edge of the window it offers (ACK + window << scale, the scale from its SYN); the
  blocks it SACKs.
* **throughput**: bytes newly acknowledged per interval (goodput), beside bytes
  sent per interval (retransmissions included); an interval is the median RTT, or
  a hundredth of the connection when that is longer.
* **RTT samples**: from timestamps (an ACK that acknowledges new data, less the
  time the segment whose TSval it echoes was first seen), else from sequence
  numbers (the ACK that first covers the end of a segment sent once; Karn's rule).

Sequence numbers are relative to the sender's initial sequence number (its SYN, or
its first segment when the capture began later) and unwrapped past 2**32.
"""

from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass, field

from synack.wire.pcap import ip_payload, read_packets
from synack.wire.seq import unwrap
from synack.wire.tcpdump import ip_text, options

_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_TCP = struct.Struct("!HHIIBBHHH")
_SYN, _ACK, _FIN, _RST = 0x02, 0x10, 0x01, 0x04
MAX_BINS = 100  # throughput intervals across the connection's duration, at most
MIN_INTERVAL = 0.001

Endpoint = tuple[bytes, int]


@dataclass(frozen=True, slots=True)
class Packet:
    """One TCP segment of a capture, its header as fields."""

    t: float
    src: Endpoint
    dst: Endpoint
    seq: int
    ack: int
    flags: int
    window: int
    length: int  # payload bytes (from the IP lengths: a short snaplen does not shrink it)
    wscale: int | None = None
    sack: tuple[tuple[int, int], ...] = ()
    ts: tuple[int, int] | None = None  # (TSval, TSecr)


@dataclass
class Flow:
    """The packets of one connection (both directions), in capture order."""

    a: Endpoint  # the end that sent the first packet seen
    b: Endpoint
    packets: list[Packet] = field(default_factory=list)

    def payload(self, src: Endpoint) -> int:
        return sum(p.length for p in self.packets if p.src == src)

    @property
    def duration(self) -> float:
        return self.packets[-1].t - self.packets[0].t if self.packets else 0.0

    def describe(self) -> str:
        return (
            f"{endpoint_text(self.a)} <-> {endpoint_text(self.b)}: {len(self.packets)} packets, "
            f"{self.payload(self.a)} + {self.payload(self.b)} bytes, {self.duration:.3f} s"
        )


def endpoint_text(ep: Endpoint) -> str:
    return f"{ip_text(ep[0])}:{ep[1]}"


def parse_capture(data: bytes) -> list[Packet]:
    """Every IPv4 TCP segment in a pcap file (other packets are skipped)."""
    linktype, records = read_packets(data)
    out: list[Packet] = []
    for t, frame in records:
        packet = ip_payload(linktype, frame)
        if packet is None or len(packet) < 40:
            continue
        vihl, _tos, total, _id, frag, _ttl, proto, _c, src, dst = _IPV4.unpack_from(packet)
        ihl = (vihl & 0x0F) * 4
        if proto != 6 or frag & 0x3FFF or ihl < 20 or len(packet) < ihl + 20:
            continue
        sport, dport, seq, ack, off, flags, window, _csum, _urg = _TCP.unpack_from(packet, ihl)
        hlen = (off >> 4) * 4
        segment = packet[ihl:]
        wscale: int | None = None
        sack: tuple[tuple[int, int], ...] = ()
        ts: tuple[int, int] | None = None
        if hlen > 20:
            for kind, value in options(segment, hlen):
                if kind == 3 and len(value) == 1:
                    wscale = value[0]
                elif kind == 5 and len(value) % 8 == 0:
                    sack = tuple(
                        struct.unpack_from("!II", value, j) for j in range(0, len(value), 8)
                    )
                elif kind == 8 and len(value) == 8:
                    val, ecr = struct.unpack("!II", value)
                    ts = (val, ecr)
        length = max((total or len(packet)) - ihl - hlen, 0)
        out.append(
            Packet(t, (src, sport), (dst, dport), seq, ack, flags, window, length, wscale, sack, ts)
        )
    return out


def flows(packets: list[Packet]) -> list[Flow]:
    """The connections in `packets`, most payload first (ties: first seen first)."""
    found: dict[frozenset[Endpoint], Flow] = {}
    for p in packets:
        key = frozenset((p.src, p.dst))
        flow = found.get(key)
        if flow is None:
            flow = found[key] = Flow(p.src, p.dst)
        flow.packets.append(p)
    ordered = list(found.values())
    ordered.sort(key=lambda f: -(f.payload(f.a) + f.payload(f.b)))
    return ordered


@dataclass
class Series:
    """What the three graphs of one direction of a connection draw."""

    sender: Endpoint
    receiver: Endpoint
    start: float  # capture time of the connection's first packet; series times count from it
    segments: list[tuple[float, int, int]] = field(default_factory=list)  # t, first, end
    retransmissions: list[tuple[float, int, int]] = field(default_factory=list)
    acks: list[tuple[float, int]] = field(default_factory=list)
    rwnd: list[tuple[float, int]] = field(default_factory=list)  # t, ack + window
    sack: list[tuple[float, int, int]] = field(default_factory=list)
    interval: float = 0.0
    goodput: list[tuple[float, float]] = field(default_factory=list)  # t, bytes per second
    sent_rate: list[tuple[float, float]] = field(default_factory=list)
    rtt: list[tuple[float, float]] = field(default_factory=list)  # t, seconds
    rtt_source: str = "none"  # "timestamps", "sequence numbers" or "none"
    window_scale: int | None = None  # None: no SYN with the option was seen

    @property
    def title(self) -> str:
        return f"{endpoint_text(self.sender)} → {endpoint_text(self.receiver)}"


def analyze(flow: Flow, sender: Endpoint | None = None) -> Series:
    """The series of `flow` in the direction from `sender` (default: the one with more data)."""
    if sender is None:
        sender = flow.a if flow.payload(flow.a) >= flow.payload(flow.b) else flow.b
    receiver = flow.b if sender == flow.a else flow.a
    packets = flow.packets
    start = packets[0].t if packets else 0.0
    series = Series(sender, receiver, start)

    # Window scaling applies only when both SYNs carried the option (RFC 7323 §2.2).
    syn_scale = {p.src: p.wscale for p in packets if p.flags & _SYN}
    if sender in syn_scale and receiver in syn_scale:
        both = syn_scale[sender] is not None and syn_scale[receiver] is not None
        series.window_scale = syn_scale[receiver] if both else 0
    scale = series.window_scale or 0

    base: int | None = None  # the sender's ISN (32-bit)
    for p in packets:
        if p.src == sender and (p.flags & _SYN or base is None):
            base = p.seq
            if p.flags & _SYN:
                break
    if base is None:
        return series
    near = 0  # last unwrapped value: numbers are unwrapped around it

    def rel(x: int) -> int:
        nonlocal near
        near = unwrap((x - base) & 0xFFFFFFFF, near)
        return near

    highest = 0  # end of the highest byte seen sent
    first_sent: dict[int, float] = {}  # sender's TSval -> when first seen
    sent_once: dict[int, tuple[float, bool]] = {}  # segment end -> (time, retransmitted)
    ends: list[int] = []
    cum_ack = None
    acked_events: list[tuple[float, int]] = []
    sent_events: list[tuple[float, int]] = []
    for p in packets:
        t = p.t - start
        if p.src == sender:
            if p.flags & _SYN:
                continue
            first = rel(p.seq)
            end = first + p.length + (1 if p.flags & _FIN else 0)
            if p.length == 0:
                continue
            sent_events.append((t, p.length))
            if first < highest:
                series.retransmissions.append((t, first, end))
                for e in _ends_between(ends, first, end):
                    sent_once[e] = (sent_once[e][0], True)  # Karn: no sample from these
            else:
                series.segments.append((t, first, end))
                sent_once[end] = (t, False)
                ends.append(end)
            highest = max(highest, end)
            if p.ts is not None and p.ts[0] not in first_sent:
                first_sent[p.ts[0]] = t
        elif p.flags & _ACK and not p.flags & _RST:
            ack = rel(p.ack)
            window = p.window if p.flags & _SYN else p.window << scale
            series.acks.append((t, ack))
            series.rwnd.append((t, ack + window))
            for left, right in p.sack:
                series.sack.append((t, rel(left), rel(right)))
            if cum_ack is None:
                cum_ack = ack
                continue
            if ack <= cum_ack:
                continue
            acked_events.append((t, ack - cum_ack))
            sample = None
            if p.ts is not None and p.ts[1] in first_sent:
                sample = t - first_sent[p.ts[1]]
                series.rtt_source = "timestamps"
            elif series.rtt_source != "timestamps":
                covered = _ends_between(ends, cum_ack, ack)
                if covered:
                    when, again = sent_once[covered[-1]]
                    if not again:
                        sample = t - when
                        series.rtt_source = "sequence numbers"
            if sample is not None and sample >= 0:
                series.rtt.append((t, sample))
            cum_ack = ack

    duration = packets[-1].t - start if packets else 0.0
    # Rates over less than a round trip only show the bursts TCP sends in.
    rtt = sorted(r for _t, r in series.rtt)[len(series.rtt) // 2] if series.rtt else 0.0
    series.interval = max(duration / MAX_BINS, rtt, MIN_INTERVAL)
    series.goodput = _rate(acked_events, series.interval, duration)
    series.sent_rate = _rate(sent_events, series.interval, duration)
    return series


def _ends_between(ends: list[int], low: int, high: int) -> list[int]:
    """Segment ends in (low, high], in send order (ends of first transmissions only grow)."""
    return ends[bisect.bisect_right(ends, low) : bisect.bisect_right(ends, high)]


def _rate(
    events: list[tuple[float, int]], interval: float, duration: float
) -> list[tuple[float, float]]:
    """Bytes per second in consecutive intervals, each point at its interval's middle."""
    if not events:
        return []
    bins = [0] * (int(duration / interval) + 1)
    for t, n in events:
        bins[min(int(t / interval), len(bins) - 1)] += n
    return [((i + 0.5) * interval, n / interval) for i, n in enumerate(bins)]
