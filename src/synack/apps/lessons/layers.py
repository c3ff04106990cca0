"""`layers`: one chat message, wrapped layer by layer as it would travel on a real network.

The message is sent for real, over synack's TCP on the virtual network; the segment
that carries it is taken from the wire and wrapped as a real network would wrap it:
the application's frame inside the TCP segment, inside an IPv4 packet, inside an
Ethernet frame. Every header field is shown as bytes with its name, and each layer
with its place in the OSI and TCP/IP models. Beside it, labelled as such: what
synack's own carriage puts around the same segment instead (one UDP datagram).

Claim: each layer only adds its own header (and the Ethernet trailer) around the
layer above, unchanged; unwrapping the frame layer by layer gives back the message.
"""

from __future__ import annotations

import struct
import zlib

from synack.apps.lessons.common import check, open_pair, verdict
from synack.apps.lessons.model import BytesRecord, FieldRow, LessonRun
from synack.apps.lessons.packets import (
    ETHERNET,
    IPV4,
    PROTO_TCP,
    PROTO_UDP,
    UDP,
    ethernet_frame,
    ipv4_checksum_ok,
    ipv4_header,
    mac_text,
    udp_datagram,
)
from synack.apps.lessons.scene import Scene
from synack.apps.lessons.trace import flag_names, ip_text
from synack.wire.checksum import internet_checksum
from synack.wire.frame import HEADER as FRAME_HEADER
from synack.wire.frame import FrameDecoder, Message, encode_message
from synack.wire.tcp import HEADER as TCP_HEADER
from synack.wire.tcp import checksum_ok, parse_options

# The CRC-32 that synack's carriage puts after each segment (docs/PROTOCOL.md §5.3).
CRC_TRAILER = 4

MESSAGE = {"op": "say", "text": "你好, bob!"}
CLIENT_MAC = bytes.fromhex("020000000001")  # made up, locally administered
SERVER_MAC = bytes.fromhex("020000000002")


def _row(layer: str, name: str, data: bytes, start: int, end: int, value: str) -> FieldRow:
    return FieldRow(layer, name, start, data[start:end], value)


def _app_rows(frame: bytes) -> list[FieldRow]:
    kind, length = FRAME_HEADER.unpack_from(frame)
    body = frame[FRAME_HEADER.size :]
    return [
        _row("layer.app", "field.app.type", frame, 0, 1, f"{kind} (MESSAGE)"),
        _row("layer.app", "field.app.length", frame, 1, 9, str(length)),
        _row("layer.app", "field.app.body", frame, 9, len(frame), body.decode()),
    ]


def _tcp_rows(seg: bytes) -> list[FieldRow]:
    sport, dport, seq, ack, off, flags, window, csum, urg = TCP_HEADER.unpack_from(seg)
    hlen = (off >> 4) * 4
    opts = parse_options(seg, 20, hlen)
    described = []
    if opts.timestamps is not None:
        described.append(f"NOP, NOP, TS val={opts.timestamps[0]} ecr={opts.timestamps[1]}")
    layer = "layer.tcp"
    return [
        _row(layer, "field.tcp.sport", seg, 0, 2, str(sport)),
        _row(layer, "field.tcp.dport", seg, 2, 4, str(dport)),
        _row(layer, "field.tcp.seq", seg, 4, 8, str(seq)),
        _row(layer, "field.tcp.ack", seg, 8, 12, str(ack)),
        _row(layer, "field.tcp.offset", seg, 12, 13, f"{off >> 4} × 4 = {hlen}"),
        _row(layer, "field.tcp.flags", seg, 13, 14, f"0x{flags:02x} {flag_names(flags)}"),
        _row(layer, "field.tcp.window", seg, 14, 16, str(window)),
        _row(layer, "field.tcp.checksum", seg, 16, 18, f"0x{csum:04x}"),
        _row(layer, "field.tcp.urgent", seg, 18, 20, str(urg)),
        _row(layer, "field.tcp.options", seg, 20, hlen, "; ".join(described) or "-"),
        _row(layer, "field.tcp.data", seg, hlen, len(seg), f"{len(seg) - hlen}"),
    ]


def _ip_rows(packet: bytes, inner: str) -> list[FieldRow]:
    vihl, tos, total, ident, frag, ttl, proto, csum, src, dst = IPV4.unpack_from(packet)
    layer = "layer.ip"
    names = {PROTO_TCP: "TCP", PROTO_UDP: "UDP"}
    return [
        _row(layer, "field.ip.version", packet, 0, 1, f"{vihl >> 4}, {vihl & 15} × 4 = 20"),
        _row(layer, "field.ip.tos", packet, 1, 2, f"{tos}"),
        _row(layer, "field.ip.length", packet, 2, 4, str(total)),
        _row(layer, "field.ip.id", packet, 4, 6, str(ident)),
        _row(layer, "field.ip.frag", packet, 6, 8, f"0x{frag:04x} DF"),
        _row(layer, "field.ip.ttl", packet, 8, 9, str(ttl)),
        _row(layer, "field.ip.protocol", packet, 9, 10, f"{proto} ({names.get(proto, '?')})"),
        _row(layer, "field.ip.checksum", packet, 10, 12, f"0x{csum:04x}"),
        _row(layer, "field.ip.src", packet, 12, 16, ip_text(src)),
        _row(layer, "field.ip.dst", packet, 16, 20, ip_text(dst)),
        _row(layer, inner, packet, 20, len(packet), f"{len(packet) - 20}"),
    ]


def _ethernet_rows(frame: bytes, fcs: bytes) -> list[FieldRow]:
    dst, src, ethertype = ETHERNET.unpack_from(frame)
    layer = "layer.ethernet"
    whole = frame + fcs
    return [
        _row(layer, "field.eth.dst", whole, 0, 6, mac_text(dst)),
        _row(layer, "field.eth.src", whole, 6, 12, mac_text(src)),
        _row(layer, "field.eth.type", whole, 12, 14, f"0x{ethertype:04x} (IPv4)"),
        _row(layer, "field.eth.data", whole, 14, len(frame), f"{len(frame) - 14}"),
        _row(layer, "field.eth.fcs", whole, len(frame), len(whole), f"0x{fcs[::-1].hex()}"),
    ]


def _udp_rows(datagram: bytes) -> list[FieldRow]:
    sport, dport, length, csum = UDP.unpack_from(datagram)
    layer = "layer.udp"
    end = len(datagram) - CRC_TRAILER
    return [
        _row(layer, "field.udp.sport", datagram, 0, 2, str(sport)),
        _row(layer, "field.udp.dport", datagram, 2, 4, str(dport)),
        _row(layer, "field.udp.length", datagram, 4, 6, str(length)),
        _row(layer, "field.udp.checksum", datagram, 6, 8, f"0x{csum:04x}"),
        _row(layer, "field.udp.data", datagram, 8, end, f"{end - 8}"),
        _row(layer, "field.udp.crc32", datagram, end, len(datagram), f"0x{datagram[end:].hex()}"),
    ]


def _table(scene: Scene, key: str, rows: list[FieldRow], **params: str | int) -> None:
    scene.run.records.append(BytesRecord(scene.t(), key, tuple(rows), dict(params)))


def _unwrap(wire: bytes) -> dict[str, object] | None:
    """Take the frame apart as a receiver would, layer by layer; the message, or None."""
    _dst, _src, ethertype = ETHERNET.unpack_from(wire)
    packet = wire[ETHERNET.size :]
    total = struct.unpack_from("!H", packet, 2)[0]
    if ethertype != 0x0800 or not ipv4_checksum_ok(packet[:20]) or packet[9] != PROTO_TCP:
        return None
    src, dst = packet[12:16], packet[16:20]
    seg = packet[20:total]
    if not checksum_ok(src, dst, seg):
        return None
    hlen = (seg[12] >> 4) * 4
    decoder = FrameDecoder()
    decoder.feed(seg[hlen:])
    event = decoder.next_event()
    return event.body if isinstance(event, Message) else None


def run() -> LessonRun:
    pair = open_pair("layers")
    scene, client, server = pair.scene, pair.client, pair.server
    app = encode_message(MESSAGE)
    scene.note("layers.send", text=str(MESSAGE["text"]))
    client.send(app)
    sent = scene.until_sent("client", "P.")
    scene.run_until(lambda: server.receive_available >= len(app), 5.0, "the message")
    delivered = server.receive()
    scene.note("layers.intro")

    segment = sent.data
    src = bytes(int(x) for x in sent.src_ip.split("."))
    dst = bytes(int(x) for x in sent.dst_ip.split("."))
    packet = ipv4_header(src, dst, PROTO_TCP, len(segment), 1) + segment
    frame, fcs = ethernet_frame(SERVER_MAC, CLIENT_MAC, packet)
    hlen = (segment[12] >> 4) * 4

    _table(scene, "layers.table.app", _app_rows(app), n=len(app))
    scene.note("layers.app")
    _table(scene, "layers.table.tcp", _tcp_rows(segment), n=len(segment), header=hlen)
    scene.note("layers.tcp", header=hlen)
    _table(scene, "layers.table.ip", _ip_rows(packet, "field.ip.data_tcp"), n=len(packet))
    scene.note("layers.ip")
    _table(scene, "layers.table.ethernet", _ethernet_rows(frame, fcs), n=len(frame) + len(fcs))
    scene.note("layers.ethernet")
    scene.note("layers.physical", bits=(len(frame) + len(fcs) + 8) * 8)

    # docs/PROTOCOL.md §5: one segment per datagram, followed by its CRC-32.
    carried = segment + zlib.crc32(segment).to_bytes(CRC_TRAILER, "big")
    udp = udp_datagram(src, dst, sent_ports(segment)[0], sent_ports(segment)[1], carried)
    outer = ipv4_header(src, dst, PROTO_UDP, len(udp), 1) + udp
    _table(scene, "layers.table.udp", _udp_rows(udp), n=len(udp))
    _table(scene, "layers.table.udp_ip", _ip_rows(outer, "field.ip.data_udp"), n=len(outer))
    scene.note("layers.carriage", extra=len(outer) - len(packet))

    unwrapped = _unwrap(frame)
    ip_total = struct.unpack_from("!H", packet, 2)[0]
    run = scene.run
    run.verdict = verdict(
        "layers.claim",
        [
            check(
                "layers.check.tcp",
                segment[hlen:] == app and delivered == app,
                n=len(app),
                header=hlen,
            ),
            check(
                "layers.check.ip",
                ip_total == 20 + len(segment)
                and packet[9] == PROTO_TCP
                and ipv4_checksum_ok(packet[:20])
                and checksum_ok(src, dst, segment),
                n=ip_total,
            ),
            check(
                "layers.check.ethernet",
                frame[12:14] == b"\x08\x00" and frame[14:] == packet and len(fcs) == 4,
                n=len(frame) + len(fcs),
            ),
            check("layers.check.unwrap", unwrapped == MESSAGE, text=str(MESSAGE["text"])),
            check(
                "layers.check.udp",
                udp[8:-CRC_TRAILER] == segment
                and zlib.crc32(segment) == int.from_bytes(udp[-CRC_TRAILER:], "big")
                and internet_checksum(src + dst + struct.pack("!BBH", 0, PROTO_UDP, len(udp)) + udp)
                == 0,
                n=len(udp),
            ),
        ],
        app_frame=len(app),
        tcp_header=hlen,
        tcp_segment=len(segment),
        ip_packet=len(packet),
        ethernet_frame=len(frame) + len(fcs),
        udp_datagram=len(udp),
        unwrapped=unwrapped,
        frame_hex=(frame + fcs).hex(),
    )
    return run


def sent_ports(segment: bytes) -> tuple[int, int]:
    sport, dport = struct.unpack_from("!HH", segment)
    return sport, dport
