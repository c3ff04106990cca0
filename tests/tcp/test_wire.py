"""The wire codec: TCP header and options, the Internet checksum, malformed input."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synack.wire.checksum import (
    address_bytes,
    internet_checksum,
    ones_sum,
    tcp_checksum,
    tcp_checksum_ok,
)
from synack.wire.tcp import (
    HEADER_SIZE,
    Flags,
    MalformedSegment,
    Options,
    Segment,
    build_segment,
    encode_options,
    flags_text,
    parse_options,
    parse_segment,
)

SRC = address_bytes("192.0.2.1")
DST = address_bytes("198.51.100.7")


# ---------------------------------------------------------------------------- a reference checksum


def reference_checksum(data: bytes) -> int:
    """RFC 1071 the long way: add 16-bit words, fold the carries back in, complement."""
    if len(data) % 2:
        data += b"\x00"
    total = 0
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def pseudo_header(src: bytes, dst: bytes, length: int) -> bytes:
    """RFC 9293 §3.1: source, destination, zero, PTCL (6), TCP length."""
    return src + dst + struct.pack("!BBH", 0, 6, length)


def test_rfc1071_example() -> None:
    # RFC 1071 §3's worked example: the words 0001 f203 f4f5 f6f7 sum to ddf2.
    data = bytes.fromhex("0001f203f4f5f6f7")
    assert ones_sum(data) == 0xDDF2
    assert internet_checksum(data) == 0x220D == reference_checksum(data)


def test_checksum_of_a_known_ipv4_header() -> None:
    # The IPv4 header of Wikipedia's "IPv4 header checksum" example: checksum b861.
    header = bytes.fromhex("450000730000400040110000c0a80001c0a800c7")
    assert internet_checksum(header) == 0xB861 == reference_checksum(header)


def test_checksum_edge_values() -> None:
    assert internet_checksum(b"") == reference_checksum(b"") == 0xFFFF
    assert internet_checksum(bytes(8)) == reference_checksum(bytes(8)) == 0xFFFF
    assert internet_checksum(b"\xff\xff") == reference_checksum(b"\xff\xff") == 0
    assert internet_checksum(b"\x01") == reference_checksum(b"\x01") == 0xFEFF


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.binary(max_size=300))
def test_internet_checksum_matches_reference(data: bytes) -> None:
    assert internet_checksum(data) == reference_checksum(data)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    st.binary(min_size=4, max_size=4),
    st.binary(min_size=4, max_size=4),
    st.binary(min_size=HEADER_SIZE, max_size=200),
)
def test_tcp_checksum_over_the_ipv4_pseudo_header(src: bytes, dst: bytes, raw: bytes) -> None:
    segment = raw[:16] + b"\x00\x00" + raw[18:]  # the checksum field counts as zero
    expected = reference_checksum(pseudo_header(src, dst, len(segment)) + segment)
    assert tcp_checksum(src, dst, segment) == expected
    filled = segment[:16] + struct.pack("!H", tcp_checksum(src, dst, segment)) + segment[18:]
    assert tcp_checksum_ok(src, dst, filled)
    assert reference_checksum(pseudo_header(src, dst, len(filled)) + filled) == 0


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.binary(min_size=HEADER_SIZE, max_size=120), st.data())
def test_any_single_bit_flip_is_caught(raw: bytes, data: st.DataObject) -> None:
    segment = bytearray(raw)
    segment[16:18] = b"\x00\x00"
    segment[16:18] = struct.pack("!H", tcp_checksum(SRC, DST, segment))
    assert tcp_checksum_ok(SRC, DST, segment)
    bit = data.draw(st.integers(0, len(segment) * 8 - 1))
    segment[bit // 8] ^= 1 << (bit % 8)
    assert not tcp_checksum_ok(SRC, DST, segment)


def test_pseudo_header_uses_the_addresses() -> None:
    segment = build_segment(Segment(1, 2, 3, flags=Flags.SYN), src=SRC, dst=DST)
    assert tcp_checksum_ok(SRC, DST, segment)
    assert not tcp_checksum_ok(DST, address_bytes("192.0.2.99"), segment)
    with pytest.raises(MalformedSegment, match="checksum"):
        parse_segment(segment, src=SRC, dst=address_bytes("192.0.2.99"))


# ---------------------------------------------------------------------------- header and options

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)


@st.composite
def options(draw: st.DrawFn) -> Options:
    opts = Options(
        mss=draw(st.none() | u16),
        wscale=draw(st.none() | st.integers(0, 255)),
        sack_permitted=draw(st.booleans()),
        timestamps=draw(st.none() | st.tuples(u32, u32)),
    )
    room = 40 - len(encode_options(opts)) - 4  # NOP NOP kind length
    if room >= 8:
        opts.sack_blocks = tuple(draw(st.lists(st.tuples(u32, u32), max_size=min(4, room // 8))))
    return opts


@st.composite
def segments(draw: st.DrawFn) -> Segment:
    return Segment(
        src_port=draw(u16),
        dst_port=draw(u16),
        seq=draw(u32),
        ack=draw(u32),
        flags=Flags(draw(st.integers(0, 255))),
        window=draw(u16),
        urgent=draw(u16),
        options=draw(options()),
        payload=draw(st.binary(max_size=64)),
    )


@settings(max_examples=300, deadline=None, derandomize=True)
@given(segments())
def test_build_then_parse_round_trips(segment: Segment) -> None:
    data = build_segment(segment, src=SRC, dst=DST)
    assert len(data) % 4 == len(segment.payload) % 4  # the header is whole 32-bit words
    parsed = parse_segment(data, src=SRC, dst=DST)  # verifies the checksum
    assert parsed.checksum == struct.unpack_from("!H", data, 16)[0]
    parsed.checksum = 0
    assert parsed == segment
    assert build_segment(parsed, src=SRC, dst=DST) == data


@settings(max_examples=200, deadline=None, derandomize=True)
@given(options())
def test_options_round_trip_and_are_padded(opts: Options) -> None:
    raw = encode_options(opts)
    assert len(raw) % 4 == 0 and len(raw) <= 40
    assert parse_options(raw, 0, len(raw)) == opts


def test_option_encodings_are_the_rfc_ones() -> None:
    assert encode_options(Options(mss=1460)) == bytes.fromhex("020405b4")
    assert encode_options(Options(wscale=7)) == bytes.fromhex("01030307")
    assert encode_options(Options(sack_permitted=True)) == bytes.fromhex("01010402")
    assert encode_options(Options(timestamps=(1, 2))) == bytes.fromhex("0101080a0000000100000002")
    assert encode_options(Options(sack_blocks=((10, 20),))) == bytes.fromhex(
        "0101050a0000000a00000014"
    )
    # The SYN layout Linux sends: MSS, SACK-permitted+TS, NOP+wscale.
    assert encode_options(
        Options(mss=1460, wscale=7, sack_permitted=True, timestamps=(5, 0))
    ) == bytes.fromhex("020405b40402080a000000050000000001030307")


def header(
    options: bytes = b"", payload: bytes = b"", *, offset: int | None = None, flags: int = 0x10
) -> bytes:
    words = (HEADER_SIZE + len(options)) // 4 if offset is None else offset
    return struct.pack("!HHIIBBHHH", 1, 2, 3, 4, words << 4, flags, 100, 0, 0) + options + payload


def test_nop_eol_and_unknown_options() -> None:
    raw = (
        b"\x01"  # NOP
        + b"\x1e\x06abcd"  # kind 30, unknown: skipped by its length
        + b"\x02\x04\x05\xb4"  # MSS 1460
        + b"\x01\x03\x03\x09"  # NOP, wscale 9
        + b"\x00"  # EOL: the rest is padding, not options
        + b"\x04\x02\x00\x00"
    )  # looks like SACK-permitted, but after EOL
    assert len(raw) == 20
    seg = parse_segment(header(raw, b"data"))
    assert seg.options == Options(mss=1460, wscale=9)
    assert seg.payload == b"data"
    assert parse_options(b"\x00\x02\x04\x05\xb4", 0, 5) == Options()


def test_sack_blocks_and_timestamps_parse() -> None:
    raw = (
        b"\x01\x01\x08\x0a"
        + struct.pack("!II", 7, 8)
        + b"\x01\x01\x05\x12"
        + struct.pack("!IIII", 100, 200, 300, 400)
    )
    seg = parse_segment(header(raw))
    assert seg.options.timestamps == (7, 8)
    assert seg.options.sack_blocks == ((100, 200), (300, 400))
    assert seg.seg_len == 0


def test_seg_len_counts_syn_and_fin() -> None:
    assert Segment(1, 2, 0, flags=Flags.SYN | Flags.FIN, payload=b"abc").seg_len == 5
    assert Segment(1, 2, 0, flags=Flags.ACK).seg_len == 0


def test_build_without_addresses_keeps_the_given_checksum() -> None:
    data = build_segment(Segment(1, 2, 3, checksum=0xBEEF))
    assert data[16:18] == b"\xbe\xef"


def test_flags_text_is_tcpdumps() -> None:
    assert flags_text(Flags.SYN | Flags.ACK) == "S."
    assert flags_text(Flags.FIN | Flags.PSH | Flags.ACK) == "FP."
    assert flags_text(0) == "none"


# ---------------------------------------------------------------------------- malformed input

MALFORMED = {
    "empty": b"",
    "shorter than a header": header()[:19],
    "data offset below 5": header(offset=4),
    "data offset past the end": header(offset=6),
    "option without its length byte": header(b"\x01\x01\x01\x02"),
    "option length 0": header(b"\x1e\x00\x00\x00"),
    "option length 1": header(b"\x1e\x01\x00\x00"),
    "option longer than the header": header(b"\x1e\x08\x00\x00"),
    "MSS of length 3": header(b"\x02\x03\x05\x00"),
    "MSS of length 5": header(b"\x02\x05\x05\xb4\x00\x00\x00\x00"),
    "window scale of length 4": header(b"\x03\x04\x07\x00"),
    "SACK-permitted of length 3": header(b"\x04\x03\x00\x00"),
    "timestamps of length 8": header(b"\x08\x08" + bytes(6)),
    "SACK without blocks": header(b"\x05\x02\x00\x00"),
    "SACK with half a block": header(b"\x05\x06" + bytes(6)),
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_segments_raise_one_typed_error(data: bytes) -> None:
    with pytest.raises(MalformedSegment):
        parse_segment(data)
    assert issubclass(MalformedSegment, ValueError)


@settings(max_examples=800, deadline=None, derandomize=True)
@given(st.binary(max_size=80))
def test_fuzz_random_bytes(data: bytes) -> None:
    for src, dst in ((None, None), (SRC, DST)):
        try:
            seg = parse_segment(data, src=src, dst=dst)
        except MalformedSegment:
            continue
        assert isinstance(seg, Segment)
        assert len(data) >= HEADER_SIZE


@settings(max_examples=800, deadline=None, derandomize=True)
@given(st.integers(0, 15), st.binary(max_size=44), st.binary(max_size=8))
def test_fuzz_option_area(offset: int, opts: bytes, payload: bytes) -> None:
    """Random options behind a valid fixed header: the parser's hardest input."""
    data = header(opts, payload, offset=offset)
    try:
        seg = parse_segment(data)
    except MalformedSegment:
        return
    hlen = offset * 4
    assert seg.payload == data[hlen:]
    assert all(0 <= left <= 0xFFFFFFFF for left, _ in seg.options.sack_blocks)
