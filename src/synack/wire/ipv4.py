"""The IPv4 header (RFC 791): emit with its checksum, parse back.

synack's TCP travels in UDP, so no IPv4 header of ours ever crosses a wire; one is
synthesized where a segment must look like a real packet: a pcap file that
Wireshark decodes as plain TCP (`synack.wire.pcap`), the lessons' byte-by-byte
view. Parsing is for reading captures back (`synack plot`), ours or tcpdump's.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from synack.wire.checksum import internet_checksum

# version/IHL, DSCP/ECN, total length, identification, flags/fragment offset, TTL,
# protocol, header checksum, source, destination
IPV4 = struct.Struct("!BBHHHBBH4s4s")
IPV4_HEADER_SIZE = IPV4.size  # 20: no options
PROTO_TCP = 6
PROTO_UDP = 17
DONT_FRAGMENT = 0x4000
MORE_FRAGMENTS = 0x2000
DEFAULT_TTL = 64  # Linux's net.ipv4.ip_default_ttl


class MalformedPacket(ValueError):
    """Bytes that are not a whole, unfragmented IPv4 packet."""


def ipv4_header(
    src: bytes,
    dst: bytes,
    proto: int,
    payload_length: int,
    ident: int,
    ttl: int = DEFAULT_TTL,
) -> bytes:
    """A 20-byte IPv4 header (no options, Don't Fragment set) with its checksum."""
    if len(src) != 4 or len(dst) != 4:
        raise ValueError("IPv4 addresses are 4 bytes")
    total = IPV4_HEADER_SIZE + payload_length
    if total > 0xFFFF:
        raise ValueError(f"an IPv4 packet holds at most 65535 bytes, not {total}")
    fields = [0x45, 0, total, ident & 0xFFFF, DONT_FRAGMENT, ttl, proto, 0, src, dst]
    fields[7] = internet_checksum(IPV4.pack(*fields))
    return IPV4.pack(*fields)


def ipv4_checksum_ok(header: bytes | bytearray | memoryview) -> bool:
    """True when an IPv4 header, checksum included, sums to zero (RFC 1071)."""
    return internet_checksum(header) == 0


@dataclass(frozen=True, slots=True)
class Ipv4Packet:
    src: bytes
    dst: bytes
    proto: int
    ident: int
    ttl: int
    payload: bytes


def parse_ipv4(packet: bytes | bytearray | memoryview) -> Ipv4Packet:
    """The header fields and payload of one IPv4 packet.

    The payload is cut at the header's total length (a link layer may pad a short
    packet); a fragment is refused, since its payload is not a whole segment.
    """
    if len(packet) < IPV4_HEADER_SIZE:
        raise MalformedPacket(f"{len(packet)} bytes cannot hold an IPv4 header")
    vihl, _tos, total, ident, frag, ttl, proto, _csum, src, dst = IPV4.unpack_from(packet)
    if vihl >> 4 != 4:
        raise MalformedPacket(f"IP version {vihl >> 4}, not 4")
    hlen = (vihl & 0x0F) * 4
    if hlen < IPV4_HEADER_SIZE or total < hlen or total > len(packet):
        raise MalformedPacket(
            f"header length {hlen}, total length {total}, {len(packet)} bytes captured"
        )
    if frag & (MORE_FRAGMENTS | 0x1FFF):
        raise MalformedPacket("a fragment")
    return Ipv4Packet(src, dst, proto, ident, ttl, bytes(packet[hlen:total]))
