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
from synack.wire.ipv4 import (  # the IPv4 header is shared with the pcap writer
    DEFAULT_TTL,
    DONT_FRAGMENT,
    IPV4,
    PROTO_TCP,
    PROTO_UDP,
    ipv4_checksum_ok,
    ipv4_header,
)

__all__ = [
    "DEFAULT_TTL",
    "DONT_FRAGMENT",
    "ETHERNET",
    "ETHERNET_MIN",
    "ETHERTYPE_IPV4",
    "IPV4",
    "PROTO_TCP",
    "PROTO_UDP",
    "UDP",
    "ethernet_frame",
    "ipv4_checksum_ok",
    "ipv4_header",
    "mac_text",
    "udp_datagram",
]

UDP = struct.Struct("!HHHH")
ETHERNET = struct.Struct("!6s6sH")
ETHERTYPE_IPV4 = 0x0800
ETHERNET_MIN = 60  # frame size without the FCS; shorter frames are padded


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
