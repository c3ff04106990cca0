"""The frame codec of docs/PROTOCOL.md §1: any split of a valid stream decodes the same,
and every kind of bad input gives its typed error without buffering a body it refuses."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synack.wire.frame import (
    HEADER,
    HEADER_SIZE,
    MAGIC,
    BlobData,
    BlobEnd,
    BlobStart,
    FrameDecoder,
    FrameError,
    FrameType,
    MalformedFrame,
    Message,
    OversizedFrame,
    TruncatedFrame,
    encode_blob,
    encode_blob_header,
    encode_message,
    sniff,
)

# --- strategies -------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
bodies = st.dictionaries(st.text(max_size=10), json_values, max_size=5)
frames = st.lists(
    st.one_of(
        bodies.map(lambda b: ("message", b)),
        st.binary(max_size=300).map(lambda b: ("blob", b)),
    ),
    max_size=8,
)


def encode(items: list[tuple[str, Any]]) -> bytes:
    return b"".join(encode_message(v) if k == "message" else encode_blob(v) for k, v in items)


def normalize(events: list[object]) -> list[tuple[str, Any]]:
    """Blob data may arrive in any number of pieces; glue each blob's pieces back together."""
    out: list[tuple[str, Any]] = []
    blob: bytearray | None = None
    for ev in events:
        if isinstance(ev, Message):
            assert blob is None
            out.append(("message", ev.body))
        elif isinstance(ev, BlobStart):
            assert blob is None
            blob = bytearray()
            size = ev.size
        elif isinstance(ev, BlobData):
            assert blob is not None
            blob += ev.data
        elif isinstance(ev, BlobEnd):
            assert blob is not None and len(blob) == size
            out.append(("blob", bytes(blob)))
            blob = None
    assert blob is None
    return out


def decode_pieces(pieces: list[bytes], **limits: int) -> list[object]:
    dec = FrameDecoder(**limits)
    events: list[object] = []
    for piece in pieces:
        dec.feed(piece)
        events.extend(dec)
    dec.feed_eof()
    events.extend(dec)
    assert dec.buffered == 0 and not dec.in_frame
    return events


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


# --- valid streams ----------------------------------------------------------------------


@given(frames)
@settings(max_examples=80, deadline=None)
def test_one_byte_at_a_time_gives_the_same_events(items: list[tuple[str, Any]]) -> None:
    data = encode(items)
    pieces = [data[i : i + 1] for i in range(len(data))]
    assert normalize(decode_pieces(pieces)) == [(k, v) for k, v in items]


@given(frames, st.lists(st.integers(min_value=0, max_value=10_000), max_size=30))
@settings(max_examples=100, deadline=None)
def test_random_coalescing_gives_the_same_events(
    items: list[tuple[str, Any]], cuts: list[int]
) -> None:
    data = encode(items)
    assert normalize(decode_pieces(split_at(data, cuts))) == items


def test_every_single_split_point() -> None:
    items: list[tuple[str, Any]] = [
        ("message", {"op": "hello", "nick": "zoë"}),
        ("blob", bytes(range(40))),
        ("blob", b""),
        ("message", {"op": "say", "text": "two\nlines"}),
    ]
    data = encode(items)
    for i in range(len(data) + 1):
        assert normalize(decode_pieces([data[:i], data[i:]])) == items, i


def test_blob_pieces_are_views_of_fed_data_not_copies() -> None:
    dec = FrameDecoder()
    payload = b"x" * 1000
    dec.feed(encode_blob_header(len(payload)) + payload)
    assert dec.next_event() == BlobStart(1000)
    piece = dec.next_event()
    assert isinstance(piece, BlobData) and isinstance(piece.data, memoryview)
    assert bytes(piece.data) == payload
    assert dec.next_event() == BlobEnd()


def test_eof_after_a_complete_blob_is_not_truncation() -> None:
    dec = FrameDecoder()
    dec.feed(encode_blob(b"abc"))
    assert isinstance(dec.next_event(), BlobStart)
    assert isinstance(dec.next_event(), BlobData)
    dec.feed_eof()  # all 3 bytes arrived; only BlobEnd is still to be pulled
    assert dec.next_event() == BlobEnd()


# --- malformed ----------------------------------------------------------------------------


def message_frame(raw: bytes) -> bytes:
    return HEADER.pack(FrameType.MESSAGE, len(raw)) + raw


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"[1, 2]",
        b'"a string"',
        b"\xff\xfe{}",
        b'{"x": NaN}',
        b'{"x": Infinity}',
        b'{"x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    ],
    ids=["empty", "text", "array", "string", "bad-utf8", "nan", "infinity", "deep-nesting"],
)
def test_malformed_message_bodies(raw: bytes) -> None:
    dec = FrameDecoder(max_message=1 << 20)
    dec.feed(message_frame(raw))
    with pytest.raises(MalformedFrame):
        dec.next_event()


@pytest.mark.parametrize("kind", [0, 3, 255])
def test_unknown_frame_type(kind: int) -> None:
    dec = FrameDecoder()
    dec.feed(HEADER.pack(kind, 2) + b"{}")
    with pytest.raises(MalformedFrame, match="unknown frame type"):
        dec.next_event()


def test_a_broken_decoder_stays_broken() -> None:
    dec = FrameDecoder()
    dec.feed(message_frame(b"[]") + encode_message({"op": "ok"}))
    with pytest.raises(MalformedFrame):
        dec.next_event()
    assert dec.buffered == 0
    dec.feed(encode_message({"op": "ok"}))
    with pytest.raises(MalformedFrame):
        dec.next_event()


# --- truncated ----------------------------------------------------------------------------


def test_truncation_at_every_position_inside_a_frame() -> None:
    data = encode([("message", {"op": "say", "text": "hi"}), ("blob", b"0123456789")])
    first_len = len(encode_message({"op": "say", "text": "hi"}))
    for cut in range(1, len(data)):
        dec = FrameDecoder()
        dec.feed(data[:cut])
        list(dec)
        if cut == first_len:
            dec.feed_eof()  # a frame boundary: a clean end
            continue
        with pytest.raises(TruncatedFrame):
            dec.feed_eof()


@given(frames)
@settings(max_examples=30, deadline=None)
def test_eof_at_frame_boundaries_is_clean(items: list[tuple[str, Any]]) -> None:
    decode_pieces([encode(items)])  # asserts no error and nothing left over


# --- oversized ----------------------------------------------------------------------------


def test_oversized_message_is_refused_on_its_header_alone() -> None:
    dec = FrameDecoder(max_message=100)
    dec.feed(HEADER.pack(FrameType.MESSAGE, 101))  # no body byte fed at all
    with pytest.raises(OversizedFrame, match="101 bytes exceeds 100"):
        dec.next_event()
    assert dec.buffered == 0


def test_oversized_check_does_not_wait_for_the_body() -> None:
    dec = FrameDecoder(max_message=1000)
    dec.feed(HEADER.pack(FrameType.MESSAGE, 2**63) + b"{" * 10)
    with pytest.raises(OversizedFrame):
        dec.next_event()
    assert dec.buffered == 0  # what had been fed is released, not kept


def test_header_split_before_oversize_is_detected_at_the_last_header_byte() -> None:
    header = HEADER.pack(FrameType.BLOB, 5001)
    dec = FrameDecoder(max_blob=5000)
    for b in header[:-1]:
        dec.feed(bytes([b]))
        assert dec.next_event() is None
    dec.feed(header[-1:])
    with pytest.raises(OversizedFrame, match="blob of 5001"):
        dec.next_event()


def test_message_exactly_at_the_limit_is_accepted() -> None:
    body = {"t": "x" * 50}
    frame = encode_message(body)
    dec = FrameDecoder(max_message=len(frame) - HEADER_SIZE)
    dec.feed(frame)
    assert dec.next_event() == Message(body)


def test_all_frame_errors_share_a_base() -> None:
    for cls in (MalformedFrame, OversizedFrame, TruncatedFrame):
        assert issubclass(cls, FrameError)


# --- encoding and sniffing ----------------------------------------------------------------


def test_encoding_matches_the_protocol_document() -> None:
    frame = encode_message({"op": "say", "text": "é"})
    payload = json.dumps({"op": "say", "text": "é"}, ensure_ascii=False, separators=(",", ":"))
    assert frame == b"\x01" + len(payload.encode()).to_bytes(8, "big") + payload.encode()
    assert encode_blob(b"ab") == b"\x02" + (2).to_bytes(8, "big") + b"ab"
    with pytest.raises(ValueError):
        encode_blob_header(-1)


@pytest.mark.parametrize(
    ("prefix", "verdict"),
    [
        (b"", None),
        (b"\x00", None),
        (b"\x00SN", None),
        (MAGIC, "framed"),
        (MAGIC + b"\x01rest", "framed"),
        (b"alice\r\n", "line"),
        (b"\x00X", "line"),
        (b"\xff\xfb\x01", "line"),  # telnet negotiation
    ],
)
def test_sniff(prefix: bytes, verdict: str | None) -> None:
    assert sniff(prefix) == verdict
