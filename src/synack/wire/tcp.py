"""TCP segments on the wire (RFC 9293 §3.1): header, options, payload.

`parse_segment` and `build_segment` are the complete, readable codec used by
listeners, tools and tests. The connection's hot path packs and unpacks the
fixed header itself with `HEADER` and calls `parse_options` only when a
segment's options are not the common timestamps-only layout.

Malformed input raises `MalformedSegment` and nothing else: a segment is
either understood whole or refused whole.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag

from synack.wire.checksum import finish, ones_sum, pseudo_header_sum

# source port, destination port, seq, ack, data offset<<4, flags, window, checksum, urgent pointer
HEADER = struct.Struct("!HHIIBBHHH")
HEADER_SIZE = HEADER.size  # 20
MAX_HEADER_SIZE = 60
MAX_OPTIONS_SIZE = MAX_HEADER_SIZE - HEADER_SIZE
CHECKSUM_OFFSET = 16

# The layout nearly every established-state segment carries: NOP NOP TS(10).
TS_PREFIX = b"\x01\x01\x08\x0a"
TS_OPTION = struct.Struct("!4sII")
TS_OPTION_SIZE = TS_OPTION.size  # 12


class MalformedSegment(ValueError):
    """Bytes that are not a well-formed TCP segment."""


class Flags(IntFlag):
    FIN = 0x01
    SYN = 0x02
    RST = 0x04
    PSH = 0x08
    ACK = 0x10
    URG = 0x20
    ECE = 0x40
    CWR = 0x80


class OptionKind(IntEnum):
    EOL = 0
    NOP = 1
    MSS = 2  # RFC 9293 §3.2
    WSCALE = 3  # RFC 7323 §2
    SACK_PERMITTED = 4  # RFC 2018 §2
    SACK = 5  # RFC 2018 §3
    TIMESTAMPS = 8  # RFC 7323 §3


# Option kinds whose length is fixed: a different length is malformed.
_FIXED_LENGTH = {
    OptionKind.MSS: 4,
    OptionKind.WSCALE: 3,
    OptionKind.SACK_PERMITTED: 2,
    OptionKind.TIMESTAMPS: 10,
}

_U16 = struct.Struct("!H")
_U32X2 = struct.Struct("!II")


@dataclass(slots=True)
class Options:
    mss: int | None = None
    wscale: int | None = None
    sack_permitted: bool = False
    sack_blocks: tuple[tuple[int, int], ...] = ()  # (left edge, right edge), 32-bit
    timestamps: tuple[int, int] | None = None  # (TSval, TSecr)


@dataclass(slots=True)
class Segment:
    src_port: int
    dst_port: int
    seq: int
    ack: int = 0
    flags: Flags = Flags(0)  # noqa: RUF009 (an immutable enum value)
    window: int = 0
    urgent: int = 0
    options: Options = field(default_factory=Options)
    payload: bytes = b""
    checksum: int = 0

    @property
    def seg_len(self) -> int:
        """Sequence space consumed: payload plus one each for SYN and FIN (RFC 9293 §3.4)."""
        return (
            len(self.payload)
            + (1 if self.flags & Flags.SYN else 0)
            + (1 if self.flags & Flags.FIN else 0)
        )


def parse_options(data: bytes | bytearray | memoryview, start: int, end: int) -> Options:
    """Options in ``data[start:end]``; unknown kinds are skipped by their length."""
    if end > len(data):
        raise MalformedSegment(f"options end at byte {end} of a {len(data)}-byte segment")
    opts = Options()
    i = start
    while i < end:
        kind = data[i]
        if kind == OptionKind.EOL:
            break
        if kind == OptionKind.NOP:
            i += 1
            continue
        if i + 1 >= end:
            raise MalformedSegment(f"option {kind} has no length byte")
        length = data[i + 1]
        if length < 2 or i + length > end:
            raise MalformedSegment(f"option {kind} has bad length {length}")
        fixed = _FIXED_LENGTH.get(kind)  # type: ignore[call-overload]
        if fixed is not None and length != fixed:
            raise MalformedSegment(f"option {kind} has length {length}, expected {fixed}")
        if kind == OptionKind.MSS:
            opts.mss = _U16.unpack_from(data, i + 2)[0]
        elif kind == OptionKind.WSCALE:
            opts.wscale = data[i + 2]
        elif kind == OptionKind.SACK_PERMITTED:
            opts.sack_permitted = True
        elif kind == OptionKind.TIMESTAMPS:
            opts.timestamps = _U32X2.unpack_from(data, i + 2)
        elif kind == OptionKind.SACK:
            if (length - 2) % 8 or length == 2:
                raise MalformedSegment(f"SACK option has bad length {length}")
            opts.sack_blocks = tuple(
                _U32X2.unpack_from(data, j) for j in range(i + 2, i + length, 8)
            )
        i += length
    return opts


def encode_options(opts: Options) -> bytes:
    """Options in the order Linux sends them, NOP-padded to a multiple of four bytes."""
    out = bytearray()
    if opts.mss is not None:
        out += struct.pack("!BBH", OptionKind.MSS, 4, opts.mss)
    if opts.sack_permitted and opts.timestamps is not None:
        out += struct.pack(
            "!BBBBII", OptionKind.SACK_PERMITTED, 2, OptionKind.TIMESTAMPS, 10, *opts.timestamps
        )
    else:
        if opts.timestamps is not None:
            out += TS_OPTION.pack(TS_PREFIX, *opts.timestamps)
        if opts.sack_permitted:
            out += b"\x01\x01\x04\x02"
    if opts.wscale is not None:
        out += struct.pack("!BBBB", OptionKind.NOP, OptionKind.WSCALE, 3, opts.wscale)
    if opts.sack_blocks:
        out += b"\x01\x01" + struct.pack("!BB", OptionKind.SACK, 2 + 8 * len(opts.sack_blocks))
        for left, right in opts.sack_blocks:
            out += _U32X2.pack(left & 0xFFFFFFFF, right & 0xFFFFFFFF)
    if len(out) % 4:
        out += b"\x01" * (4 - len(out) % 4)
    if len(out) > MAX_OPTIONS_SIZE:
        raise ValueError(f"options take {len(out)} bytes; at most {MAX_OPTIONS_SIZE} fit")
    return bytes(out)


def parse_segment(
    data: bytes | bytearray | memoryview, *, src: bytes | None = None, dst: bytes | None = None
) -> Segment:
    """Decode one segment. With `src` and `dst` (packed addresses) the checksum is verified."""
    n = len(data)
    if n < HEADER_SIZE:
        raise MalformedSegment(f"segment of {n} bytes is shorter than a TCP header")
    sport, dport, seq, ack, off, flags, window, csum, urg = HEADER.unpack_from(data)
    hlen = (off >> 4) * 4
    if hlen < HEADER_SIZE or hlen > n:
        raise MalformedSegment(f"data offset {off >> 4} does not fit a {n}-byte segment")
    if src is not None and dst is not None and not checksum_ok(src, dst, data):
        raise MalformedSegment("bad checksum")
    return Segment(
        src_port=sport,
        dst_port=dport,
        seq=seq,
        ack=ack,
        flags=Flags(flags),
        window=window,
        urgent=urg,
        options=parse_options(data, HEADER_SIZE, hlen) if hlen > HEADER_SIZE else Options(),
        payload=bytes(data[hlen:]),
        checksum=csum,
    )


def build_segment(seg: Segment, *, src: bytes | None = None, dst: bytes | None = None) -> bytes:
    """Encode `seg`. With `src` and `dst` (packed addresses) the checksum is filled in;
    otherwise it is left as ``seg.checksum`` (zero unless set)."""
    opts = encode_options(seg.options)
    hlen = HEADER_SIZE + len(opts)
    buf = bytearray(hlen + len(seg.payload))
    HEADER.pack_into(
        buf,
        0,
        seg.src_port,
        seg.dst_port,
        seg.seq & 0xFFFFFFFF,
        seg.ack & 0xFFFFFFFF,
        (hlen // 4) << 4,
        int(seg.flags),
        seg.window,
        0 if src else seg.checksum,
        seg.urgent,
    )
    buf[HEADER_SIZE:hlen] = opts
    buf[hlen:] = seg.payload
    if src is not None and dst is not None:
        fill_checksum(buf, src, dst)
    return bytes(buf)


def fill_checksum(buf: bytearray, src: bytes, dst: bytes, pseudo: int | None = None) -> None:
    """Compute and store the checksum of the segment in `buf` (its field must be zero)."""
    if pseudo is None:
        pseudo = pseudo_header_sum(src, dst)
    _U16.pack_into(buf, CHECKSUM_OFFSET, finish(pseudo + len(buf) + ones_sum(buf)))


def checksum_ok(src: bytes, dst: bytes, data: bytes | bytearray | memoryview) -> bool:
    return (pseudo_header_sum(src, dst) + len(data) + ones_sum(data)) % 0xFFFF == 0


def flags_text(flags: int) -> str:
    """tcpdump's flag letters: S F R P . (ACK) U E W."""
    letters = [
        ("S", Flags.SYN),
        ("F", Flags.FIN),
        ("R", Flags.RST),
        ("P", Flags.PSH),
        ("U", Flags.URG),
        ("E", Flags.ECE),
        ("W", Flags.CWR),
        (".", Flags.ACK),
    ]
    return "".join(ch for ch, bit in letters if flags & bit) or "none"
