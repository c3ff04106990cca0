"""TCP segments on the wire (RFC 9293 §3.1): header, options, payload.

`parse_segment` and `build_segment` are the complete, readable codec used by
listeners, tools and tests. Beside them live the shortcuts a connection takes for
every segment of a bulk transfer, each giving exactly what the general codec
gives (tests/tcp/test_wire.py checks that on random input):

* `HEADER_TS` unpacks or packs the fixed header together with NOP NOP TS, the
  options nearly every established-state segment carries (RFC 7323 Appendix A),
  in one struct call; `OFFSET_PLAIN` and `OFFSET_TS` are the two layouts' data
  offset bytes.
* `unpack_header` is the fixed header with its data offset checked, and
  `unpack_timestamps` the timestamps when the options are exactly that layout.
* `pack_segment` packs a header, already encoded options and a payload, with
  the checksum (`build_segment` is `encode_options` and then this).
* `pack_ack` and `pack_burst` pack pure ACKs and runs of data segments with the
  checksum computed from the header's field values (`header_sum`), so that only
  the payload is summed as bytes.

Everything packs sequence and acknowledgement numbers modulo 2**32, so callers
may pass unwrapped ones. Malformed input raises `MalformedSegment` and nothing
else: a segment is either understood whole or refused whole.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag

from synack.wire.checksum import finish, ones_sum, pseudo_header_sum, segment_sum_ok

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
TS_VALUES = struct.Struct("!II")  # TSval, TSecr
# The fixed header and then NOP NOP TS: the fields of HEADER, TS_PREFIX, TSval, TSecr.
HEADER_TS = struct.Struct("!HHIIBBHHH4sII")
HEADER_TS_SIZE = HEADER_TS.size  # 32
# The data offset byte (header length in 32-bit words, in the high nibble) of each layout.
OFFSET_PLAIN = (HEADER_SIZE >> 2) << 4  # 0x50
OFFSET_TS = (HEADER_TS_SIZE >> 2) << 4  # 0x80
# The ones'-complement sum of TS_PREFIX's two words, NOP NOP and kind 8, length 10.
_TS_PREFIX_SUM = 0x0101 + 0x080A
_MASK = 0xFFFFFFFF


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
_U32X2 = TS_VALUES
_SACK_PREFIX = bytes((OptionKind.NOP, OptionKind.NOP, OptionKind.SACK))


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
            out += encode_timestamps(*opts.timestamps)
        if opts.sack_permitted:
            out += b"\x01\x01\x04\x02"
    if opts.wscale is not None:
        out += struct.pack("!BBBB", OptionKind.NOP, OptionKind.WSCALE, 3, opts.wscale)
    if opts.sack_blocks:
        out += encode_sack(opts.sack_blocks)
    if len(out) % 4:
        out += b"\x01" * (4 - len(out) % 4)
    if len(out) > MAX_OPTIONS_SIZE:
        raise ValueError(f"options take {len(out)} bytes; at most {MAX_OPTIONS_SIZE} fit")
    return bytes(out)


def encode_timestamps(tsval: int, tsecr: int) -> bytes:
    """NOP NOP TS(TSval, TSecr): the timestamps option as RFC 7323 Appendix A lays it out."""
    return TS_OPTION.pack(TS_PREFIX, tsval, tsecr)


def sack_option_size(count: int) -> int:
    """len(encode_sack(blocks)) for `count` blocks, without building them."""
    return len(_SACK_PREFIX) + 1 + 8 * count if count > 0 else 0


def encode_sack(blocks: Sequence[tuple[int, int]]) -> bytes:
    """NOP NOP SACK with `blocks` (RFC 2018 §3), edges taken modulo 2**32; empty: nothing."""
    if not blocks:
        return b""
    return (
        _SACK_PREFIX
        + bytes((2 + 8 * len(blocks),))
        + b"".join(_U32X2.pack(left & _MASK, right & _MASK) for left, right in blocks)
    )


def unpack_header(
    data: bytes | bytearray | memoryview,
) -> tuple[int, int, int, int, int, int, int, int, int]:
    """The fixed header: (sport, dport, seq, ack, header length in bytes, flags, window,
    checksum, urgent pointer).

    RFC 9293 §3.1: the data offset counts 32-bit words and "indicates where the data
    begins"; one below five or past the end of the segment is MalformedSegment.
    """
    n = len(data)
    if n < HEADER_SIZE:
        raise MalformedSegment(f"segment of {n} bytes is shorter than a TCP header")
    sport, dport, seq, ack, off, flags, window, csum, urg = HEADER.unpack_from(data)
    hlen = (off >> 4) << 2
    if hlen < HEADER_SIZE or hlen > n:
        raise MalformedSegment(f"data offset {off >> 4} does not fit a {n}-byte segment")
    return sport, dport, seq, ack, hlen, flags, window, csum, urg


def unpack_timestamps(data: bytes | bytearray | memoryview, hlen: int) -> tuple[int, int] | None:
    """(TSval, TSecr) when the options (header length `hlen`, as checked by
    `unpack_header`) are exactly NOP NOP TS; otherwise None, and `parse_options` must
    read them. Where it answers, it agrees with `parse_options`."""
    if hlen == HEADER_TS_SIZE and data[HEADER_SIZE : HEADER_SIZE + 4] == TS_PREFIX:
        return TS_VALUES.unpack_from(data, HEADER_SIZE + 4)
    return None


# NOP NOP SACK after NOP NOP TS: the options of an ACK that reports holes, with one to
# three blocks (the most that fit beside the timestamps).
_SACK_AFTER_TS = bytes((OptionKind.NOP, OptionKind.NOP, OptionKind.SACK))
_SACK_EDGES = {size: struct.Struct("!" + "I" * (size >> 2)) for size in (8, 16, 24)}


def unpack_ts_sack(
    data: bytes | bytearray | memoryview, hlen: int
) -> tuple[tuple[int, int], tuple[tuple[int, int], ...]] | None:
    """((TSval, TSecr), SACK blocks) when the options (header length `hlen`, as checked
    by `unpack_header`) are exactly NOP NOP TS NOP NOP SACK; otherwise None, and
    `parse_options` must read them. Where it answers, it agrees with `parse_options`:
    it spares the general parser on every ACK of a lossy transfer."""
    size = hlen - HEADER_TS_SIZE - 4  # the blocks' bytes
    edges = _SACK_EDGES.get(size)
    if (
        edges is None
        or data[HEADER_SIZE : HEADER_SIZE + 4] != TS_PREFIX
        or data[HEADER_TS_SIZE : HEADER_TS_SIZE + 3] != _SACK_AFTER_TS
        or data[HEADER_TS_SIZE + 3] != size + 2
    ):
        return None
    flat = edges.unpack_from(data, HEADER_TS_SIZE + 4)
    return TS_VALUES.unpack_from(data, HEADER_SIZE + 4), tuple(
        zip(flat[::2], flat[1::2], strict=True)
    )


def parse_segment(
    data: bytes | bytearray | memoryview, *, src: bytes | None = None, dst: bytes | None = None
) -> Segment:
    """Decode one segment. With `src` and `dst` (packed addresses) the checksum is verified."""
    sport, dport, seq, ack, hlen, flags, window, csum, urg = unpack_header(data)
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
    pseudo = pseudo_header_sum(src, dst) if src is not None and dst is not None else None
    return pack_segment(
        seg.src_port,
        seg.dst_port,
        seg.seq,
        seg.ack,
        int(seg.flags),
        seg.window,
        encode_options(seg.options),
        seg.payload,
        pseudo,
        urgent=seg.urgent,
        checksum=0 if src else seg.checksum,
    )


def pack_segment(
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    window: int,
    options: bytes,
    payload: bytes | bytearray | memoryview = b"",
    pseudo: int | None = None,
    *,
    urgent: int = 0,
    checksum: int = 0,
) -> bytes:
    """A segment from its fields, its options already encoded (a multiple of four bytes).

    With `pseudo` (the addresses' part of the pseudo-header, `pseudo_header_sum`) the
    checksum is computed over the whole segment; without, the field holds `checksum`.
    """
    hlen = _header_length(options)
    buf = bytearray(hlen)
    HEADER.pack_into(
        buf,
        0,
        sport,
        dport,
        seq & _MASK,
        ack & _MASK,
        (hlen >> 2) << 4,
        flags,
        window,
        checksum if pseudo is None else 0,
        urgent,
    )
    buf[HEADER_SIZE:] = options
    buf += payload
    if pseudo is not None:
        _U16.pack_into(buf, CHECKSUM_OFFSET, finish(pseudo + len(buf) + ones_sum(buf)))
    return bytes(buf)


def _header_length(options: bytes) -> int:
    """The header length for already encoded `options`, which must fill whole words."""
    if len(options) & 3 or len(options) > MAX_OPTIONS_SIZE:
        raise ValueError(f"{len(options)} bytes of options do not fill a TCP header")
    return HEADER_SIZE + len(options)


def header_sum(
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    offset: int,
    flags: int,
    window: int,
    urgent: int = 0,
) -> int:
    """A number congruent, modulo 0xFFFF, to the ones'-complement sum of the fixed
    header's words with a zero checksum field (`offset` is the data offset byte; `seq`
    and `ack` are 32-bit).

    Ones'-complement addition of 16-bit words is addition modulo 0xFFFF (the
    end-around carry adds 2**16 back as 1), in any order and grouping (RFC 1071 §2).
    A 32-bit field's two words add up to hi + lo ≡ hi * 2**16 + lo, its value, and the
    word holding the data offset and the flags is offset * 256 + flags: so the header's
    sum is the plain sum of its field values, computed without packing a byte.
    """
    return sport + dport + seq + ack + (offset << 8) + flags + window + urgent


def pack_ack(
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    window: int,
    tsval: int | None,
    tsecr: int,
    pseudo: int | None,
) -> bytes:
    """A segment without payload whose options are NOP NOP TS(`tsval`, `tsecr`), or
    none when `tsval` is None: the shape of nearly every pure ACK.

    Equal to `pack_segment` with those options; the checksum (when `pseudo` is given)
    is `header_sum` plus the pseudo-header's length and the option words, written out
    here because a bulk transfer's receiver packs one of these for every two segments.
    """
    seq &= _MASK
    ack &= _MASK
    csum = 0
    if tsval is None:
        if pseudo is not None:
            csum = (
                pseudo
                + HEADER_SIZE
                + sport
                + dport
                + seq
                + ack
                + (OFFSET_PLAIN << 8)
                + flags
                + window
            ) % 0xFFFF
            csum = 0xFFFF - csum if csum else 0
        return HEADER.pack(sport, dport, seq, ack, OFFSET_PLAIN, flags, window, csum, 0)
    if pseudo is not None:
        csum = (
            pseudo
            + HEADER_TS_SIZE
            + sport
            + dport
            + seq
            + ack
            + (OFFSET_TS << 8)
            + flags
            + window
            + _TS_PREFIX_SUM
            + tsval
            + tsecr
        ) % 0xFFFF
        csum = 0xFFFF - csum if csum else 0
    return HEADER_TS.pack(
        sport, dport, seq, ack, OFFSET_TS, flags, window, csum, 0, TS_PREFIX, tsval, tsecr
    )


def pack_data(
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    window: int,
    tsval: int | None,
    tsecr: int,
    payload: bytes | bytearray | memoryview,
    pseudo: int | None,
) -> bytes:
    """`pack_ack` with a payload: one segment whose options are NOP NOP TS(`tsval`,
    `tsecr`), or none when `tsval` is None. A request or a response is one of these;
    `pack_burst` would loop and sum the options for it.

    Equal to `pack_segment` with those options; the checksum sums the payload's words
    as `ones_sum` does and reduces them before adding the header's (adding to the
    payload's big number would copy it).
    """
    seq &= _MASK
    ack &= _MASK
    n = len(payload)
    csum = 0
    if pseudo is not None:
        x = int.from_bytes(payload, "big")
        if n & 1:
            x <<= 8  # an odd last byte is the high half of a word padded with zero
        csum = pseudo + n + sport + dport + seq + ack + flags + window + x % 0xFFFF
    if tsval is None:
        if pseudo is not None:
            csum = (csum + HEADER_SIZE + (OFFSET_PLAIN << 8)) % 0xFFFF
            csum = 0xFFFF - csum if csum else 0
        return HEADER.pack(sport, dport, seq, ack, OFFSET_PLAIN, flags, window, csum, 0) + payload
    if pseudo is not None:
        csum = (csum + HEADER_TS_SIZE + (OFFSET_TS << 8) + _TS_PREFIX_SUM + tsval + tsecr) % 0xFFFF
        csum = 0xFFFF - csum if csum else 0
    return (
        HEADER_TS.pack(
            sport, dport, seq, ack, OFFSET_TS, flags, window, csum, 0, TS_PREFIX, tsval, tsecr
        )
        + payload
    )


# The fixed header, NOP NOP TS and NOP NOP SACK with one to three blocks: an ACK that
# reports holes. Key: the number of blocks.
_HEADER_TS_SACK = {n: struct.Struct("!HHIIBBHHH4sII3sB" + "II" * n) for n in (1, 2, 3)}
# The ones'-complement sum of NOP NOP SACK and its length byte, but for 8 * blocks.
_SACK_PREFIX_SUM = 0x0101 + (OptionKind.SACK << 8) + 2


def pack_ack_sack(
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    window: int,
    tsval: int,
    tsecr: int,
    blocks: Sequence[tuple[int, int]],
    pseudo: int | None,
) -> bytes:
    """A segment without payload whose options are NOP NOP TS(`tsval`, `tsecr`) NOP NOP
    SACK(`blocks`, one to three, edges taken modulo 2**32): what a receiver with holes
    sends for every segment that arrives (RFC 5681 §4.2's immediate duplicate ACK).

    Equal to `pack_segment` with those options; the checksum is summed arithmetically,
    as `pack_ack` sums it."""
    seq &= _MASK
    ack &= _MASK
    count = len(blocks)
    hlen = HEADER_TS_SIZE + 4 + 8 * count
    offset = (hlen >> 2) << 4
    edges = [edge & _MASK for block in blocks for edge in block]
    csum = 0
    if pseudo is not None:
        csum = (
            pseudo
            + hlen
            + sport
            + dport
            + seq
            + ack
            + (offset << 8)
            + flags
            + window
            + _TS_PREFIX_SUM
            + tsval
            + tsecr
            + _SACK_PREFIX_SUM
            + 8 * count
            + sum(edges)
        ) % 0xFFFF
        csum = 0xFFFF - csum if csum else 0
    return _HEADER_TS_SACK[count].pack(
        sport,
        dport,
        seq,
        ack,
        offset,
        flags,
        window,
        csum,
        0,
        TS_PREFIX,
        tsval,
        tsecr,
        _SACK_AFTER_TS,
        2 + 8 * count,
        *edges,
    )


# A segment as its header (options included) and a view of its payload, for a driver
# that sends with gathered writes (sendmsg with several buffers): the payload is not
# copied into a segment of its own on its way out. See `pack_burst`'s `gather_from`.
Gathered = tuple[bytes, memoryview]
Outgoing = bytes | Gathered  # a segment to transmit: joined, or gathered


def joined(segment: Outgoing) -> bytes:
    """The segment as one `bytes` (a copy only when it came gathered)."""
    if isinstance(segment, tuple):
        return b"".join(segment)
    return segment


def pack_burst(
    out: list[Outgoing],
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    window: int,
    options: bytes,
    payload: bytes | bytearray | memoryview,
    mss: int,
    last_flags: int,
    pseudo: int | None,
    gather_from: int = 0,
) -> None:
    """Append to `out` the segments that carry `payload` from `seq`, `mss` bytes each
    but the last, as a NIC's segmentation offload cuts them: every segment has the same
    ack, window and options and `flags`; the last one also `last_flags` (PSH, FIN).

    Each is equal to `pack_segment` of its part; the checksum (when `pseudo` is given)
    sums the header and options once for the burst, by `header_sum`, and per segment
    only its sequence number, flags, length and payload bytes. A segment whose payload
    is `gather_from` bytes or more (when not 0) comes `Gathered`: its header and a
    view of `payload`, which must stay unchanged until the segment is sent.
    """
    total = len(payload)
    hlen = _header_length(options)
    offset = (hlen >> 2) << 4
    ack &= _MASK
    base = 0
    if pseudo is not None:
        # The pseudo-header (addresses, protocol, TCP length less the payload's, added
        # per segment), the header fields that do not vary, and the options' words.
        base = pseudo + hlen + header_sum(sport, dport, 0, ack, offset, 0, window)
        if options:
            base += ones_sum(options)
    pack = HEADER.pack
    join = b"".join
    from_bytes = int.from_bytes
    # No segment is longer than mss: below the threshold, no test per segment.
    gather = gather_from if gather_from and mss >= gather_from else 0
    start = 0
    while start < total:
        end = start + mss
        if end >= total:
            end = total
            f = flags | last_flags
        else:
            f = flags
        part = payload[start:end]
        s = (seq + start) & _MASK
        csum = 0
        if pseudo is not None:
            n = end - start
            x = from_bytes(part, "big")
            if n & 1:
                x <<= 8  # an odd last byte is the high half of a word padded with zero
            # The payload's big number is reduced first: adding to it would copy it.
            csum = (base + s + f + n + x % 0xFFFF) % 0xFFFF
            csum = 0xFFFF - csum if csum else 0
        if gather and end - start >= gather:
            header = pack(sport, dport, s, ack, offset, f, window, csum, 0) + options
            out.append((header, memoryview(part)))  # a view of a view, or of `bytes`
        else:
            out.append(
                join((pack(sport, dport, s, ack, offset, f, window, csum, 0), options, part))
            )
        start = end


def fill_checksum(buf: bytearray, src: bytes, dst: bytes, pseudo: int | None = None) -> None:
    """Compute and store the checksum of the segment in `buf` (its field must be zero)."""
    if pseudo is None:
        pseudo = pseudo_header_sum(src, dst)
    _U16.pack_into(buf, CHECKSUM_OFFSET, finish(pseudo + len(buf) + ones_sum(buf)))


def checksum_ok(src: bytes, dst: bytes, data: bytes | bytearray | memoryview) -> bool:
    return segment_sum_ok(pseudo_header_sum(src, dst), data)


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
