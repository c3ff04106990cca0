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
    pseudo_header_sum,
    segment_sum_ok,
    tcp_checksum,
    tcp_checksum_ok,
)
from synack.wire.tcp import (
    HEADER,
    HEADER_SIZE,
    HEADER_TS,
    HEADER_TS_SIZE,
    OFFSET_PLAIN,
    OFFSET_TS,
    TS_PREFIX,
    Flags,
    MalformedSegment,
    Options,
    Segment,
    build_segment,
    encode_options,
    encode_sack,
    encode_timestamps,
    flags_text,
    header_sum,
    pack_ack,
    pack_ack_sack,
    pack_burst,
    pack_data,
    pack_segment,
    parse_options,
    parse_segment,
    sack_option_size,
    unpack_header,
    unpack_timestamps,
    unpack_ts_sack,
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


# ---------------------------------------------------------------------------- the shortcuts
#
# What a connection uses per segment instead of the general codec. Each must give
# exactly the general codec's bytes and fields, and a checksum the RFC 1071 reference
# accepts, across random input: sequence numbers anywhere in 32 bits, at the wrap, and
# unwrapped past 2**32 (the packers take them modulo 2**32), payloads of odd lengths.

MASK = 0xFFFFFFFF
seqs = st.one_of(u32, st.integers(MASK - 3000, MASK), st.integers(0, 1 << 40))
# The addresses for the checksum, or None: no checksum (Config.checksum off).
endpoints = st.one_of(
    st.none(),
    st.tuples(st.binary(min_size=4, max_size=4), st.binary(min_size=4, max_size=4)),
)


def reference_segment(
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    window: int,
    options: bytes,
    payload: bytes,
    addrs: tuple[bytes, bytes] | None,
    urgent: int = 0,
) -> bytes:
    """A segment laid out by hand from RFC 9293 §3.1, its checksum by `reference_checksum`."""
    hlen = HEADER_SIZE + len(options)
    head = struct.pack(
        "!HHIIBBHHH",
        sport,
        dport,
        seq & MASK,
        ack & MASK,
        (hlen // 4) << 4,
        flags,
        window,
        0,
        urgent,
    )
    data = head + options + payload
    if addrs is None:
        return data
    csum = reference_checksum(pseudo_header(*addrs, len(data)) + data)
    return data[:16] + struct.pack("!H", csum) + data[18:]


def assert_valid(data: bytes, addrs: tuple[bytes, bytes] | None) -> None:
    if addrs is not None:
        assert reference_checksum(pseudo_header(*addrs, len(data)) + data) == 0
        assert tcp_checksum_ok(*addrs, data)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(u16, u16, u32, u32, st.integers(0, 255), st.integers(0, 255), u16, u16)
def test_header_sum_is_the_ones_complement_sum_of_the_header(
    sport: int, dport: int, seq: int, ack: int, offset: int, flags: int, window: int, urg: int
) -> None:
    packed = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, offset, flags, window, 0, urg)
    assert header_sum(sport, dport, seq, ack, offset, flags, window, urg) % 0xFFFF == ones_sum(
        packed
    )


@settings(max_examples=300, deadline=None, derandomize=True)
@given(segments(), endpoints)
def test_pack_segment_is_the_rfc_layout(
    segment: Segment, addrs: tuple[bytes, bytes] | None
) -> None:
    opts = encode_options(segment.options)
    args = (segment.src_port, segment.dst_port, segment.seq, segment.ack, int(segment.flags))
    expected = reference_segment(
        *args, segment.window, opts, segment.payload, addrs, segment.urgent
    )
    pseudo = pseudo_header_sum(*addrs) if addrs else None
    packed = pack_segment(
        *args, segment.window, opts, memoryview(segment.payload), pseudo, urgent=segment.urgent
    )
    assert packed == expected
    src, dst = addrs if addrs else (None, None)
    assert build_segment(segment, src=src, dst=dst) == expected
    assert_valid(packed, addrs)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(
    u16,
    u16,
    seqs,
    seqs,
    st.sampled_from([Flags.ACK, Flags.ACK | Flags.PSH, Flags.ACK | Flags.FIN])
    | st.integers(0, 255),
    u16,
    st.none() | st.tuples(u32, u32),
    endpoints,
)
def test_pack_ack_equals_the_general_builder(
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    window: int,
    ts: tuple[int, int] | None,
    addrs: tuple[bytes, bytes] | None,
) -> None:
    pseudo = pseudo_header_sum(*addrs) if addrs else None
    tsval, tsecr = ts if ts is not None else (None, 0)
    packed = pack_ack(sport, dport, seq, ack, flags, window, tsval, tsecr, pseudo)
    general = Segment(
        sport, dport, seq & MASK, ack & MASK, Flags(flags), window, options=Options(timestamps=ts)
    )
    src, dst = addrs if addrs else (None, None)
    assert packed == build_segment(general, src=src, dst=dst)
    opts = encode_timestamps(*ts) if ts is not None else b""
    assert packed == reference_segment(sport, dport, seq, ack, flags, window, opts, b"", addrs)
    assert_valid(packed, addrs)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(
    u16,
    u16,
    seqs,
    seqs,
    st.sampled_from([Flags.ACK, Flags.ACK | Flags.ECE]) | st.integers(0, 255),
    u16,
    st.tuples(u32, u32),
    st.lists(st.tuples(seqs, seqs), min_size=1, max_size=3),
    endpoints,
)
def test_pack_ack_sack_equals_the_general_builder(
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    window: int,
    ts: tuple[int, int],
    blocks: list[tuple[int, int]],
    addrs: tuple[bytes, bytes] | None,
) -> None:
    """Edges are given unwrapped (beyond 2**32), as the receiver keeps them."""
    pseudo = pseudo_header_sum(*addrs) if addrs else None
    packed = pack_ack_sack(sport, dport, seq, ack, flags, window, *ts, blocks, pseudo)
    opts = encode_timestamps(*ts) + encode_sack(blocks)
    assert packed == pack_segment(sport, dport, seq, ack, flags, window, opts, b"", pseudo)
    assert packed == reference_segment(sport, dport, seq, ack, flags, window, opts, b"", addrs)
    assert_valid(packed, addrs)


def test_pack_ack_at_negative_zero() -> None:
    """The one checksum value with two spellings: a segment whose words sum to 0xFFFF
    carries checksum 0, from the arithmetic as from the byte sum."""
    for ts in (None, (123, 456)):
        tsval, tsecr = ts if ts is not None else (None, 0)
        pseudo = pseudo_header_sum(SRC, DST)
        zero_window = struct.unpack_from(
            "!H", pack_ack(1, 2, 3, 4, 0x10, 0, tsval, tsecr, pseudo), 16
        )
        window = zero_window[0]  # adding it to the sum brings the sum to 0xFFFF
        packed = pack_ack(1, 2, 3, 4, 0x10, window, tsval, tsecr, pseudo)
        assert packed[16:18] == b"\x00\x00"
        general = Segment(1, 2, 3, 4, Flags.ACK, window, options=Options(timestamps=ts))
        assert packed == build_segment(general, src=SRC, dst=DST)
        assert_valid(packed, (SRC, DST))


@settings(max_examples=400, deadline=None, derandomize=True)
@given(
    u16,
    u16,
    seqs,
    seqs,
    st.sampled_from([Flags.ACK | Flags.PSH, Flags.ACK]) | st.integers(0, 255),
    u16,
    st.none() | st.tuples(u32, u32),
    st.binary(min_size=1, max_size=1500) | st.sampled_from([b"\x00", b"\xff" * 1447]),
    endpoints,
)
def test_pack_data_equals_the_general_builder(
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    window: int,
    ts: tuple[int, int] | None,
    payload: bytes,
    addrs: tuple[bytes, bytes] | None,
) -> None:
    pseudo = pseudo_header_sum(*addrs) if addrs else None
    tsval, tsecr = ts if ts is not None else (None, 0)
    opts = encode_timestamps(*ts) if ts is not None else b""
    with memoryview(bytearray(payload)) as view:  # as the send buffer hands it out
        packed = pack_data(sport, dport, seq, ack, flags, window, tsval, tsecr, view, pseudo)
    assert packed == pack_segment(sport, dport, seq, ack, flags, window, opts, payload, pseudo)
    assert packed == reference_segment(sport, dport, seq, ack, flags, window, opts, payload, addrs)
    assert_valid(packed, addrs)


def test_pack_data_at_negative_zero() -> None:
    """A segment whose words sum to 0xFFFF carries checksum 0, as `pack_segment` writes it."""
    pseudo = pseudo_header_sum(SRC, DST)
    for ts in (None, (123, 456)):
        tsval, tsecr = ts if ts is not None else (None, 0)
        opts = encode_timestamps(*ts) if ts is not None else b""
        for payload in (b"\x01", b"\x12\x34\x56"):
            csum = pack_data(1, 2, 3, 4, 0x18, 0, tsval, tsecr, payload, pseudo)[16:18]
            window = int.from_bytes(csum, "big")  # brings the sum to 0xFFFF
            packed = pack_data(1, 2, 3, 4, 0x18, window, tsval, tsecr, payload, pseudo)
            assert packed[16:18] == b"\x00\x00"
            assert packed == pack_segment(1, 2, 3, 4, 0x18, window, opts, payload, pseudo)
            assert_valid(packed, (SRC, DST))


@st.composite
def burst_options(draw: st.DrawFn) -> bytes:
    """What a connection puts on a burst (NOP NOP TS, SACK blocks), or any options."""
    blocks = tuple(draw(st.lists(st.tuples(u32, u32), max_size=3)))
    return draw(
        st.sampled_from([b"", encode_timestamps(7, MASK), encode_sack(blocks[:1])])
        | st.builds(lambda a, b: encode_timestamps(a, b) + encode_sack(blocks), u32, u32)
        | options().map(encode_options)
    )


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    u16,
    u16,
    seqs,
    seqs,
    st.sampled_from([Flags.ACK, 0]) | st.integers(0, 255),
    u16,
    burst_options(),
    st.binary(max_size=3000),
    st.integers(1, 1500),
    st.sampled_from([0, Flags.PSH, Flags.FIN, Flags.PSH | Flags.FIN]),
    endpoints,
)
def test_pack_burst_equals_the_general_builder_segment_by_segment(
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    window: int,
    opts: bytes,
    payload: bytes,
    mss: int,
    last_flags: int,
    addrs: tuple[bytes, bytes] | None,
) -> None:
    if len(payload) // mss > 200:
        mss = len(payload) // 200 + 1  # keep an example under a few hundred segments
    pseudo = pseudo_header_sum(*addrs) if addrs else None
    out: list[bytes] = []
    with memoryview(payload) as view:
        pack_burst(out, sport, dport, seq, ack, flags, window, opts, view, mss, last_flags, pseudo)
    starts = range(0, len(payload), mss)
    assert len(out) == len(starts)
    src, dst = addrs if addrs else (None, None)
    parsed_options = parse_options(opts, 0, len(opts))
    for start, packed in zip(starts, out, strict=True):
        part = payload[start : start + mss]
        f = flags | last_flags if start + len(part) == len(payload) else flags
        general = Segment(
            sport,
            dport,
            (seq + start) & MASK,
            ack & MASK,
            Flags(f),
            window,
            options=parsed_options,
            payload=part,
        )
        assert encode_options(parsed_options) == opts  # so the general builder lays out `opts`
        assert packed == build_segment(general, src=src, dst=dst)
        assert packed == reference_segment(
            sport, dport, seq + start, ack, f, window, opts, part, addrs
        )
        assert_valid(packed, addrs)


def test_pack_burst_at_negative_zero_and_odd_lengths() -> None:
    pseudo = pseudo_header_sum(SRC, DST)
    opts = encode_timestamps(1, 2)
    for size in (1, 2, 3, 1447, 1448):
        out: list[bytes] = []
        pack_burst(out, 1, 2, 3, 4, 0x10, 0, opts, b"\x5a" * size, 1448, 0x08, pseudo)
        window = struct.unpack_from("!H", out[0], 16)[0]  # the sum becomes 0xFFFF
        out.clear()
        pack_burst(out, 1, 2, 3, 4, 0x10, window, opts, b"\x5a" * size, 1448, 0x08, pseudo)
        [packed] = out
        assert packed[16:18] == b"\x00\x00"
        general = Segment(
            1, 2, 3, 4, Flags.ACK | Flags.PSH, window, options=Options(timestamps=(1, 2))
        )
        general.payload = b"\x5a" * size
        assert packed == build_segment(general, src=SRC, dst=DST)
        assert_valid(packed, (SRC, DST))


@settings(max_examples=300, deadline=None, derandomize=True)
@given(segments(), st.binary(min_size=4, max_size=4))
def test_header_layouts_unpack_what_the_general_builder_packs(
    segment: Segment, tsval: bytes
) -> None:
    plain = build_segment(
        Segment(
            segment.src_port,
            segment.dst_port,
            segment.seq,
            segment.ack,
            segment.flags,
            segment.window,
            segment.urgent,
            payload=segment.payload,
        ),
        src=SRC,
        dst=DST,
    )
    fields = HEADER.unpack_from(plain)
    assert fields[4] == OFFSET_PLAIN
    ts = (int.from_bytes(tsval, "big"), segment.ack)
    with_ts = build_segment(
        Segment(
            segment.src_port,
            segment.dst_port,
            segment.seq,
            segment.ack,
            segment.flags,
            segment.window,
            segment.urgent,
            Options(timestamps=ts),
            segment.payload,
        ),
        src=SRC,
        dst=DST,
    )
    parsed = parse_segment(with_ts, src=SRC, dst=DST)
    assert HEADER_TS.unpack_from(with_ts) == (
        parsed.src_port,
        parsed.dst_port,
        parsed.seq,
        parsed.ack,
        OFFSET_TS,
        int(parsed.flags),
        parsed.window,
        parsed.checksum,
        parsed.urgent,
        TS_PREFIX,
        *ts,
    )
    assert len(with_ts) - len(parsed.payload) == HEADER_TS_SIZE
    assert unpack_timestamps(with_ts, HEADER_TS_SIZE) == ts == parsed.options.timestamps
    assert unpack_timestamps(plain, HEADER_SIZE) is None


def _unpack_or_none(data: bytes) -> tuple[int, ...] | None:
    try:
        return unpack_header(data)
    except MalformedSegment:
        return None


@settings(max_examples=600, deadline=None, derandomize=True)
@given(st.integers(0, 15), st.binary(max_size=44), st.binary(max_size=8), st.integers(0, 70))
def test_unpack_header_and_timestamps_agree_with_the_general_parser(
    offset: int, opts: bytes, payload: bytes, cut: int
) -> None:
    """Random option areas, lying data offsets and truncations: where the shortcuts
    answer, the general parser gives the same; where they refuse, so does it."""
    data = header(opts, payload, offset=offset)[: cut if cut < 70 else None]
    fields = _unpack_or_none(data)
    hlen = (data[12] >> 4) * 4 if len(data) > 12 else 0
    assert (fields is None) == (len(data) < HEADER_SIZE or not HEADER_SIZE <= hlen <= len(data))
    try:
        seg = parse_segment(data)
    except MalformedSegment:
        seg = None
    if fields is None:
        assert seg is None
        return
    sport, dport, seq, ack, length, flags, window, csum, urg = fields
    assert length == hlen
    ts = unpack_timestamps(data, hlen)
    assert (ts is not None) == (
        hlen == HEADER_TS_SIZE and data[HEADER_SIZE : HEADER_SIZE + 4] == TS_PREFIX
    )
    if seg is not None:
        assert (sport, dport, seq, ack, flags, window, csum, urg) == (
            seg.src_port,
            seg.dst_port,
            seg.seq,
            seg.ack,
            int(seg.flags),
            seg.window,
            seg.checksum,
            seg.urgent,
        )
        assert seg.payload == data[hlen:]
        if ts is not None:
            assert seg.options.timestamps == ts


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    st.binary(min_size=4, max_size=4),
    st.binary(min_size=4, max_size=4),
    st.binary(max_size=200),
    st.data(),
)
def test_segment_sum_ok_is_the_reference(
    src: bytes, dst: bytes, raw: bytes, data: st.DataObject
) -> None:
    segment = bytearray(raw)
    if len(segment) >= 18 and data.draw(st.booleans()):  # a correct checksum, half the time
        segment[16:18] = b"\x00\x00"
        segment[16:18] = struct.pack(
            "!H", reference_checksum(pseudo_header(src, dst, len(segment)) + bytes(segment))
        )
    expected = reference_checksum(pseudo_header(src, dst, len(segment)) + bytes(segment)) == 0
    assert segment_sum_ok(pseudo_header_sum(src, dst), segment) == expected
    assert segment_sum_ok(pseudo_header_sum(src, dst), memoryview(segment)) == expected


@settings(max_examples=200, deadline=None, derandomize=True)
@given(u32, u32, st.lists(st.tuples(seqs, seqs), max_size=4))
def test_option_encoders_are_encode_options(
    tsval: int, tsecr: int, blocks: list[tuple[int, int]]
) -> None:
    assert encode_timestamps(tsval, tsecr) == encode_options(Options(timestamps=(tsval, tsecr)))
    masked = tuple((left & MASK, right & MASK) for left, right in blocks)
    assert encode_sack(blocks) == encode_options(Options(sack_blocks=masked))


@settings(max_examples=400, deadline=None, derandomize=True)
@given(
    st.tuples(u32, u32),
    st.lists(st.tuples(u32, u32), max_size=3),
    st.integers(-1, 39),
    st.integers(0, 255),
    st.binary(max_size=8),
)
def test_unpack_ts_sack_agrees_with_the_general_parser(
    ts: tuple[int, int],
    blocks: list[tuple[int, int]],
    where: int,
    byte: int,
    payload: bytes,
) -> None:
    """NOP NOP TS NOP NOP SACK, as every ACK reporting holes carries it, intact or with
    one byte of its options changed: where the shortcut answers, the general parser
    reads the same; the intact layout with one to three blocks it always answers."""
    sack = encode_sack(blocks)
    assert len(sack) == sack_option_size(len(blocks))
    opts = bytearray(encode_timestamps(*ts) + sack)
    if 0 <= where < len(opts):
        opts[where] = byte
    data = header(bytes(opts), payload)
    hlen = HEADER_SIZE + len(opts)
    fast = unpack_ts_sack(data, hlen)
    try:
        parsed = parse_options(data, HEADER_SIZE, hlen)
    except MalformedSegment:
        parsed = None
    if fast is not None:
        assert parsed == Options(timestamps=fast[0], sack_blocks=fast[1])
    intact = where < 0 or where >= len(opts) or opts == encode_timestamps(*ts) + sack
    if intact and blocks:
        assert fast == (ts, tuple(blocks))
    if not blocks:
        assert fast is None  # timestamps alone: unpack_timestamps' layout
