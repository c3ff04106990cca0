"""Segments as people read them: relative sequence numbers, flag names, tcpdump lines.

Shared by the lessons and `synack demo`, which both show synack's own TCP at work
on the virtual network.
"""

from __future__ import annotations

from synack.wire.tcp import Flags, Segment, flags_text, parse_segment

MASK = 0xFFFFFFFF

# The order people say them in: "SYN+ACK", "FIN+ACK", "PSH+ACK".
_NAMES = (
    (Flags.SYN, "SYN"),
    (Flags.FIN, "FIN"),
    (Flags.RST, "RST"),
    (Flags.PSH, "PSH"),
    (Flags.URG, "URG"),
    (Flags.ECE, "ECE"),
    (Flags.CWR, "CWR"),
    (Flags.ACK, "ACK"),
)


def flag_names(flags: int) -> str:
    """The flags by name, joined by '+' ("SYN+ACK"); "none" for none."""
    return "+".join(name for bit, name in _NAMES if flags & bit) or "none"


def ip_text(addr: bytes) -> str:
    return ".".join(str(b) for b in addr) if len(addr) == 4 else addr.hex()


class SeqTracker:
    """Sequence numbers relative to each direction's initial sequence number (ISN).

    This is how tcpdump and Wireshark show them: the SYN is seq 0, its ACK is ack 1.
    A SYN sets the base of its direction (so a new connection on a reused four-tuple
    counts afresh); a direction first seen without a SYN counts from that segment.
    """

    def __init__(self) -> None:
        self._isn: dict[tuple[bytes, int, bytes, int], int] = {}

    def isn(self, src: bytes, sport: int, dst: bytes, dport: int) -> int | None:
        """The ISN seen from (src, sport) to (dst, dport), if any."""
        return self._isn.get((src, sport, dst, dport))

    def relative(self, seg: Segment, src: bytes, dst: bytes) -> tuple[int, int | None]:
        """(seq, ack) of `seg` relative to the ISNs; ack is None without the ACK flag,
        and absolute when the other direction's ISN is unknown."""
        key = (src, seg.src_port, dst, seg.dst_port)
        if seg.flags & Flags.SYN:
            self._isn[key] = seg.seq
        base = self._isn.setdefault(key, seg.seq)
        seq = (seg.seq - base) & MASK
        if not seg.flags & Flags.ACK:
            return seq, None
        peer = self._isn.get((dst, seg.dst_port, src, seg.src_port))
        return seq, seg.ack if peer is None else (seg.ack - peer) & MASK


def tcpdump_line(now: float, data: bytes, src: bytes, dst: bytes, tracker: SeqTracker) -> str:
    """One segment as tcpdump prints it, with relative sequence numbers."""
    seg = parse_segment(data)
    seq, ack = tracker.relative(seg, src, dst)
    text = (
        f"{now * 1000:7.1f} ms  {ip_text(src)}.{seg.src_port} > {ip_text(dst)}.{seg.dst_port}: "
        f"[{flags_text(seg.flags)}] seq {seq}"
    )
    if seg.payload:
        text += f":{(seq + len(seg.payload)) & MASK}"
    if ack is not None:
        text += f" ack {ack}"
    text += f" win {seg.window}"
    opts = seg.options
    extra = [f"mss {opts.mss}"] if opts.mss else []
    if opts.wscale is not None:
        extra.append(f"wscale {opts.wscale}")
    if opts.sack_permitted:
        extra.append("sackOK")
    if extra:
        text += " <" + ",".join(extra) + ">"
    if seg.payload:
        text += f" length {len(seg.payload)} {bytes(seg.payload)!r}"
    return text
