"""The headers a TCP segment travels in on a real network: IPv4, UDP and Ethernet.

synack's TCP hands out bare segments (the fake network and the UDP carrier need no
more). To show a segment as it would cross a real wire -- in a pcap file, or byte
by byte in the `layers` lesson -- these functions build the headers around it,
with correct checksums.
"""

from __future__ import annotations

import struct
import zlib

from synack.wire.checksum import internet_checksum

IPV4 = struct.Struct(
    "!BBHHHBBH4s4s"
)  # version/IHL, DSCP/ECN, total length, id, flags/frag, TTL, proto, checksum, src, dst
UDP = struct.Struct("!HHHH")
ETHERNET = struct.Struct("!6s6sH")
ETHERTYPE_IPV4 = 0x0800
PROTO_TCP = 6
PROTO_UDP = 17
DONT_FRAGMENT = 0x4000
DEFAULT_TTL = 64
ETHERNET_MIN = 60  # frame size without the FCS; shorter frames are padded


def ipv4_header(src: bytes, dst: bytes, proto: int, payload_length: int, ident: int) -> bytes:
    """A 20-byte IPv4 header (no options, Don't Fragment set) with its checksum."""
    fields = [
        0x45,  # version 4, header length 5 words
        0,
        20 + payload_length,
        ident & 0xFFFF,
        DONT_FRAGMENT,
        DEFAULT_TTL,
        proto,
        0,
        src,
        dst,
    ]
    header = IPV4.pack(*fields)
    fields[7] = internet_checksum(header)
    return IPV4.pack(*fields)


def ipv4_checksum_ok(header: bytes) -> bool:
    """True when an IPv4 header, checksum included, sums to zero (RFC 1071)."""
    return internet_checksum(header) == 0


def udp_datagram(src: bytes, dst: bytes, sport: int, dport: int, payload: bytes) -> bytes:
    """A UDP header and `payload`, with the checksum over the IPv4 pseudo-header (RFC 768)."""
    length = 8 + len(payload)
    pseudo = src + dst + struct.pack("!BBH", 0, PROTO_UDP, length)
    header = UDP.pack(sport, dport, length, 0)
    checksum = internet_checksum(pseudo + header + payload) or 0xFFFF  # 0 means "none" in UDP
    return UDP.pack(sport, dport, length, checksum) + payload


def ethernet_frame(dst_mac: bytes, src_mac: bytes, packet: bytes) -> tuple[bytes, bytes]:
    """(frame, FCS): the Ethernet II header, the IPv4 packet, padding to the minimum
    size, and the CRC-32 frame check sequence the network card appends."""
    frame = ETHERNET.pack(dst_mac, src_mac, ETHERTYPE_IPV4) + packet
    if len(frame) < ETHERNET_MIN:
        frame += bytes(ETHERNET_MIN - len(frame))
    return frame, struct.pack("<I", zlib.crc32(frame))


def mac_text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)
