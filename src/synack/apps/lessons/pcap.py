"""A lesson's segments as a pcap file that Wireshark and tcpdump open as ordinary TCP.

The file format and the synthesized IPv4 packets are `synack.wire.pcap`'s, the same
the trace of a real connection writes (``--pcap``, ``SYNACK_PCAP``). Timestamps are
the lesson's virtual seconds (counted from the epoch, 1970-01-01); identification
numbers are counted per sender.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from synack.apps.lessons.model import SegmentRecord
from synack.wire.pcap import LINKTYPE_RAW, tcp_packet, write_records

__all__ = ["LINKTYPE_RAW", "packets", "write_pcap"]


def packets(records: Iterable[SegmentRecord]) -> list[tuple[float, bytes]]:
    """(time, IPv4 packet) for each segment, identification numbers counted per sender."""
    ident: dict[bytes, int] = {}
    out: list[tuple[float, bytes]] = []
    for r in records:
        src = bytes(int(x) for x in r.src_ip.split("."))
        dst = bytes(int(x) for x in r.dst_ip.split("."))
        n = ident.get(src, 0) + 1
        ident[src] = n
        out.append((r.t, tcp_packet(r.data, src, dst, n)))
    return out


def write_pcap(path: str | Path, records: Iterable[SegmentRecord]) -> int:
    """Write the segments (as sent) to `path`; returns the number of packets written."""
    rows = packets(records)
    with open(path, "wb") as f:
        for piece in write_records(rows):
            f.write(piece)
    return len(rows)
