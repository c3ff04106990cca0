"""A lesson's segments as a pcap file that Wireshark and tcpdump open as ordinary TCP.

Each segment is written as the IPv4 packet it would travel in (`packets.ipv4_header`,
protocol 6), with link type RAW: the file holds IP packets and no link layer. The
segments already carry TCP checksums computed for the lesson hosts' addresses, so
the synthesized IPv4 header uses those same addresses and every checksum verifies.
Timestamps are the lesson's virtual seconds (counted from the epoch, 1970-01-01).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from pathlib import Path

from synack.apps.lessons.model import SegmentRecord
from synack.apps.lessons.packets import PROTO_TCP, ipv4_header

MAGIC = 0xA1B2C3D4  # microsecond timestamps
LINKTYPE_RAW = 101  # each record is an IPv4 (or IPv6) packet, no link header
SNAPLEN = 65535
FILE_HEADER = struct.Struct("<IHHiIII")
RECORD_HEADER = struct.Struct("<IIII")


def packets(records: Iterable[SegmentRecord]) -> list[tuple[float, bytes]]:
    """(time, IPv4 packet) for each segment, identification numbers counted per sender."""
    ident: dict[bytes, int] = {}
    out: list[tuple[float, bytes]] = []
    for r in records:
        src = bytes(int(x) for x in r.src_ip.split("."))
        dst = bytes(int(x) for x in r.dst_ip.split("."))
        n = ident.get(src, 0) + 1
        ident[src] = n
        out.append((r.t, ipv4_header(src, dst, PROTO_TCP, len(r.data), n) + r.data))
    return out


def write_pcap(path: str | Path, records: Iterable[SegmentRecord]) -> int:
    """Write the segments (as sent) to `path`; returns the number of packets written."""
    rows = packets(records)
    with open(path, "wb") as f:
        f.write(FILE_HEADER.pack(MAGIC, 2, 4, 0, 0, SNAPLEN, LINKTYPE_RAW))
        for t, packet in rows:
            micros = round(t * 1_000_000)
            sec, usec = divmod(micros, 1_000_000)
            f.write(RECORD_HEADER.pack(sec, usec, len(packet), len(packet)))
            f.write(packet)
    return len(rows)
