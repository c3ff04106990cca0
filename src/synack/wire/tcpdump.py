"""Segments as tcpdump prints them, and as fields for a machine-readable trace.

The line for a segment follows tcpdump's own layout, so anyone who reads tcpdump
reads it without a legend::

    12:00:00.000100 Out IP 127.0.0.1.40000 > 127.0.0.1.7007: Flags [S], seq 1794125314, win 65535, options [mss 1448,sackOK,TS val 1 ecr 0,nop,wscale 7], length 0
    12:00:00.000300 In  IP 127.0.0.1.7007 > 127.0.0.1.40000: Flags [S.], seq 893214721, ack 1794125315, ...
    12:00:00.000350 Out IP 127.0.0.1.40000 > 127.0.0.1.7007: Flags [P.], seq 1:1437, ack 1, win 512, options [nop,nop,TS val 2 ecr 2], length 1436

``In``/``Out`` say which way the segment went, as ``tcpdump -i any`` does. As in
tcpdump, sequence and acknowledgement numbers (and SACK blocks) are shown relative
to each direction's initial sequence number once the connection's SYNs have been
seen (`Relative`), and absolute on SYNs and before; the window is the raw field,
not scaled. Nothing here reads a clock: the caller formats the time stamp.
"""

from __future__ import annotations

import struct
from typing import Any

# source port, destination port, seq, ack, data offset<<4, flags, window, checksum, urgent
_HEADER = struct.Struct("!HHIIBBHHH")
_FIN, _SYN, _RST, _PSH, _ACK, _URG, _ECE, _CWR = (1 << i for i in range(8))
_MASK = 0xFFFFFFFF

# tcpdump's letters in tcpdump's order (print-tcp.c's tcp_flag_values).
_LETTERS = (
    (_FIN, "F"),
    (_SYN, "S"),
    (_RST, "R"),
    (_PSH, "P"),
    (_ACK, "."),
    (_URG, "U"),
    (_ECE, "E"),
    (_CWR, "W"),
)

Quad = tuple[bytes, int, bytes, int]  # source address, port, destination address, port


def flag_letters(flags: int) -> str:
    """``S``, ``S.``, ``P.``, ``FP.``, ``R.``: tcpdump's ``Flags [...]``; "none" for none."""
    return "".join(letter for bit, letter in _LETTERS if flags & bit) or "none"


def ip_text(addr: bytes) -> str:
    if len(addr) == 4:
        return f"{addr[0]}.{addr[1]}.{addr[2]}.{addr[3]}"
    return ":".join(addr[i : i + 2].hex() for i in range(0, len(addr), 2))


class Relative:
    """Each direction's initial sequence number, as tcpdump tracks them.

    A SYN sets the base of its direction (a new connection on a reused four-tuple
    counts afresh); numbers are relative only once both directions' bases are known.
    """

    def __init__(self) -> None:
        self._isn: dict[Quad, int] = {}

    def bases(self, quad: Quad, seq: int, flags: int) -> tuple[int, int] | None:
        """(this direction's ISN, the other's) to subtract, or None to show absolute numbers."""
        if flags & _SYN:
            self._isn[quad] = seq
            return None
        mine = self._isn.get(quad)
        if mine is None:
            return None
        theirs = self._isn.get((quad[2], quad[3], quad[0], quad[1]))
        return None if theirs is None else (mine, theirs)

    def forget(self, local: bytes, lport: int, remote: bytes, rport: int) -> None:
        """The connection is gone: drop both directions' bases."""
        self._isn.pop((local, lport, remote, rport), None)
        self._isn.pop((remote, rport, local, lport), None)

    def __len__(self) -> int:
        return len(self._isn)


def options(data: bytes | bytearray | memoryview, hlen: int) -> list[tuple[int, bytes]]:
    """The options in header order as (kind, value bytes); NOPs and EOL included.

    A malformed option ends the list with (-1, the rest), which tcpdump calls a bad option.
    """
    out: list[tuple[int, bytes]] = []
    i, end = 20, min(hlen, len(data))
    while i < end:
        kind = data[i]
        if kind in (0, 1):
            out.append((kind, b""))
            i += 1
            if kind == 0:
                break
            continue
        size = data[i + 1] if i + 1 < end else 0
        if size < 2 or i + size > end:
            out.append((-1, bytes(data[i:end])))
            break
        out.append((kind, bytes(data[i + 2 : i + size])))
        i += size
    return out


def _option_text(kind: int, value: bytes, ack_base: int) -> str:
    if kind == 0:
        return "eol"
    if kind == 1:
        return "nop"
    if kind == 2 and len(value) == 2:
        return f"mss {int.from_bytes(value, 'big')}"
    if kind == 3 and len(value) == 1:
        return f"wscale {value[0]}"
    if kind == 4 and not value:
        return "sackOK"
    if kind == 5 and len(value) % 8 == 0:
        blocks = "".join(
            f"{{{(int.from_bytes(value[j : j + 4], 'big') - ack_base) & _MASK}:"
            f"{(int.from_bytes(value[j + 4 : j + 8], 'big') - ack_base) & _MASK}}}"
            for j in range(0, len(value), 8)
        )
        return f"sack {len(value) // 8} {blocks}"
    if kind == 8 and len(value) == 8:
        val, ecr = struct.unpack("!II", value)
        return f"TS val {val} ecr {ecr}"
    if kind == -1:
        return "bad opt"
    return f"unknown-{kind} 0x{value.hex()}" if value else f"unknown-{kind}"


def segment_line(
    stamp: str,
    outgoing: bool,
    segment: bytes | bytearray | memoryview,
    src: bytes,
    dst: bytes,
    relative: Relative,
) -> str:
    """One segment from `src` to `dst` (packed addresses) as tcpdump would print it."""
    where = "Out" if outgoing else "In "
    if len(segment) < 20:
        return f"{stamp} {where} IP {ip_text(src)} > {ip_text(dst)}: tcp {len(segment)} [bad hdr length]"
    sport, dport, seq, ack, off, flags, window, _csum, urgent = _HEADER.unpack_from(segment)
    hlen = (off >> 4) * 4
    head = f"{stamp} {where} IP {ip_text(src)}.{sport} > {ip_text(dst)}.{dport}: "
    if hlen < 20 or hlen > len(segment):
        return f"{head}tcp {len(segment)} [bad hdr length {hlen}]"
    length = len(segment) - hlen
    bases = relative.bases((src, sport, dst, dport), seq, flags)
    mine, theirs = bases if bases is not None else (0, 0)
    text = f"{head}Flags [{flag_letters(flags)}]"
    if length or flags & (_SYN | _FIN | _RST):
        rseq = (seq - mine) & _MASK
        text += f", seq {rseq}:{(rseq + length) & _MASK}" if length else f", seq {rseq}"
    if flags & _ACK:
        text += f", ack {(ack - theirs) & _MASK}"
    text += f", win {window}"
    if flags & _URG:
        text += f", urg {urgent}"
    if hlen > 20:
        text += (
            ", options ["
            + ",".join(_option_text(k, v, theirs) for k, v in options(segment, hlen))
            + "]"
        )
    return f"{text}, length {length}"


def state_line(
    stamp: str, local: bytes, lport: int, remote: bytes, rport: int, old: str, new: str
) -> str:
    """A state change of the connection from (local, lport) to (remote, rport)."""
    return f"{stamp} State {ip_text(local)}.{lport} > {ip_text(remote)}.{rport}: {old} -> {new}"


def segment_fields(segment: bytes | bytearray | memoryview) -> dict[str, Any]:
    """The header of `segment` as JSON-ready fields (absolute numbers, raw window)."""
    sport, dport, seq, ack, off, flags, window, _csum, _urg = _HEADER.unpack_from(segment)
    hlen = (off >> 4) * 4
    fields: dict[str, Any] = {
        "sport": sport,
        "dport": dport,
        "flags": flag_letters(flags),
        "seq": seq,
        "ack": ack if flags & _ACK else None,
        "win": window,
        "len": max(len(segment) - hlen, 0),
    }
    opts: dict[str, Any] = {}
    for kind, value in options(segment, hlen) if hlen > 20 else ():
        if kind == 2 and len(value) == 2:
            opts["mss"] = int.from_bytes(value, "big")
        elif kind == 3 and len(value) == 1:
            opts["wscale"] = value[0]
        elif kind == 4:
            opts["sackOK"] = True
        elif kind == 5 and len(value) % 8 == 0:
            opts["sack"] = [
                list(struct.unpack_from("!II", value, j)) for j in range(0, len(value), 8)
            ]
        elif kind == 8 and len(value) == 8:
            opts["ts"] = list(struct.unpack("!II", value))
    if opts:
        fields["options"] = opts
    return fields
