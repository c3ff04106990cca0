"""pcap files (the classic libpcap format): TCP segments as IPv4 packets, and back.

**Writing.** Every segment is stored as the IPv4 packet it would travel in on an
IP path: a synthesized 20-byte header (protocol 6, TTL 64, Don't Fragment, the
identification counted by the writer) before the segment, with link type RAW (the
file holds IP packets and no link layer). The TCP checksum is computed afresh over
the IPv4 pseudo-header: on synack's default carriage the segment's own checksum
field is zero (docs/PROTOCOL.md §5.3), and where it is not, the result is the
same. So Wireshark and tshark decode a UDP-carried connection as plain TCP, with
every checksum verifying. `synack.drivers.trace` writes files with these pieces;
the lessons write theirs with `write_records`.

**Reading.** `read_packets` takes a whole file (either byte order, micro- or
nanosecond timestamps) and `ip_payload` finds the IPv4 packet in a record of the
link types tcpdump writes on Linux (RAW, IPv4, Ethernet, Linux cooked v1 and v2,
BSD loopback), so `synack plot` reads the kernel's captures as well as ours.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

from synack.wire.checksum import tcp_checksum
from synack.wire.ipv4 import PROTO_TCP, ipv4_header

MAGIC = 0xA1B2C3D4  # microsecond timestamps
MAGIC_NS = 0xA1B23C4D  # nanosecond timestamps
VERSION = (2, 4)
SNAPLEN = 262144  # tcpdump's default
FILE_HEADER = struct.Struct("<IHHiIII")  # magic, major, minor, zone, sigfigs, snaplen, linktype
RECORD_HEADER = struct.Struct("<IIII")  # seconds, micro- or nanoseconds, captured, original

LINKTYPE_NULL = 0  # BSD loopback: a 4-byte address family in host order
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101  # each record is an IPv4 (or IPv6) packet, no link header
LINKTYPE_LINUX_SLL = 113  # tcpdump -i any (libpcap before 1.10)
LINKTYPE_IPV4 = 228
LINKTYPE_LINUX_SLL2 = 276  # tcpdump -i any (libpcap 1.10 and later)
_ETHERTYPE_IPV4 = 0x0800
_ETHERTYPE_VLAN = (0x8100, 0x88A8)
_CHECKSUM = 16  # offset of the TCP checksum field


class PcapError(ValueError):
    """Bytes that are not a pcap file this reader understands."""


def file_header(linktype: int = LINKTYPE_RAW, snaplen: int = SNAPLEN) -> bytes:
    """The 24 bytes that open a pcap file (little-endian, microsecond timestamps)."""
    return FILE_HEADER.pack(MAGIC, *VERSION, 0, 0, snaplen, linktype)


def record(t: float, packet: bytes | bytearray | memoryview) -> bytes:
    """One record: the header (time `t` in seconds since the epoch) and the packet."""
    sec, usec = divmod(round(t * 1_000_000), 1_000_000)
    n = len(packet)
    return RECORD_HEADER.pack(sec, usec, n, n) + bytes(packet)


def tcp_packet(
    segment: bytes | bytearray | memoryview, src: bytes, dst: bytes, ident: int
) -> bytes:
    """`segment` from `src` to `dst` (4-byte addresses) as an IPv4 packet, checksums filled."""
    seg = bytearray(segment)
    if len(seg) >= _CHECKSUM + 2:
        seg[_CHECKSUM : _CHECKSUM + 2] = b"\0\0"
        struct.pack_into("!H", seg, _CHECKSUM, tcp_checksum(src, dst, seg))
    return ipv4_header(src, dst, PROTO_TCP, len(seg), ident) + seg


def write_records(rows: Iterable[tuple[float, bytes]]) -> Iterator[bytes]:
    """A whole file's bytes, piece by piece: the header, then a record per (time, packet)."""
    yield file_header()
    for t, packet in rows:
        yield record(t, packet)


def read_packets(data: bytes | bytearray | memoryview) -> tuple[int, list[tuple[float, bytes]]]:
    """(link type, [(time, record bytes)]) of a pcap file; a truncated last record is dropped."""
    if len(data) < FILE_HEADER.size:
        raise PcapError("too short for a pcap file header")
    magic = struct.unpack_from("<I", data)[0]
    if magic in (MAGIC, MAGIC_NS):
        order = "<"
    elif magic in (_swap32(MAGIC), _swap32(MAGIC_NS)):
        order = ">"
        magic = _swap32(magic)
    elif magic == 0x0A0D0D0A:
        raise PcapError("a pcapng file: convert it with 'editcap -F pcap IN OUT'")
    else:
        raise PcapError(f"not a pcap file (magic {magic:#010x})")
    scale = 1e-9 if magic == MAGIC_NS else 1e-6
    linktype = struct.unpack_from(order + "I", data, 20)[0] & 0x0FFFFFFF
    rec = struct.Struct(order + "IIII")
    out: list[tuple[float, bytes]] = []
    at = FILE_HEADER.size
    end = len(data)
    while at + rec.size <= end:
        sec, frac, incl, _orig = rec.unpack_from(data, at)
        at += rec.size
        if at + incl > end:
            break
        out.append((sec + frac * scale, bytes(data[at : at + incl])))
        at += incl
    return linktype, out


def ip_payload(linktype: int, frame: bytes) -> bytes | None:
    """The IPv4 packet in one record of `linktype`, or None (another protocol or link)."""
    if linktype in (LINKTYPE_RAW, LINKTYPE_IPV4):
        return frame if frame[:1] and frame[0] >> 4 == 4 else None
    if linktype == LINKTYPE_ETHERNET:
        at, ethertype = 14, _u16(frame, 12)
        while ethertype in _ETHERTYPE_VLAN:
            ethertype, at = _u16(frame, at + 2), at + 4
    elif linktype == LINKTYPE_LINUX_SLL:
        at, ethertype = 16, _u16(frame, 14)
    elif linktype == LINKTYPE_LINUX_SLL2:
        at, ethertype = 20, _u16(frame, 0)
    elif linktype == LINKTYPE_NULL:
        if len(frame) < 4:
            return None
        family = struct.unpack_from("<I", frame)[0]
        if family > 0xFFFF:
            family = struct.unpack_from(">I", frame)[0]
        at, ethertype = 4, _ETHERTYPE_IPV4 if family == 2 else -1
    else:
        return None
    return frame[at:] if ethertype == _ETHERTYPE_IPV4 else None


def _u16(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 2], "big") if len(data) >= at + 2 else -1


def _swap32(x: int) -> int:
    return int.from_bytes(x.to_bytes(4, "little"), "big")
