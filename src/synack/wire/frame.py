"""The synack application framing: length before data (the "sticky packet" fix).

TCP delivers a byte stream with no message boundaries; one ``recv`` may return
half a message or three. Every frame therefore starts with a fixed header that
says what follows and how long it is, and the receiver reads exactly that many
bytes. The format is specified in ``docs/PROTOCOL.md``:

    +--------+--------------------------+-------------------+
    | type:1 | length: 8, big-endian    | body: length bytes|
    +--------+--------------------------+-------------------+

``MESSAGE`` bodies are a UTF-8 JSON object, held whole (and so capped small);
``BLOB`` bodies are raw bytes streamed through in pieces, never held whole, so a
multi-gigabyte file costs no more memory than a chat line.

`FrameDecoder` is sans-IO: feed it bytes as they arrive, in any split, and pull
events. Every length is checked against its limit before a byte is buffered.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, NoReturn

# A framed peer sends this before anything else. It starts with NUL, which no
# text line typed into nc or telnet does, so a server can tell the two apart.
MAGIC = b"\x00SNK"
PROTOCOL_VERSION = 1

HEADER = struct.Struct("!BQ")
HEADER_SIZE = HEADER.size

DEFAULT_MAX_MESSAGE = 64 * 1024
DEFAULT_MAX_BLOB = 1 << 62


class FrameType(IntEnum):
    MESSAGE = 1
    BLOB = 2


class FrameError(Exception):
    """The peer broke the framing; the connection cannot be trusted further."""


class MalformedFrame(FrameError):
    """Unknown frame type, or a message body that is not a UTF-8 JSON object."""


class OversizedFrame(FrameError):
    """A frame announced a length above the limit for its type."""


class TruncatedFrame(FrameError):
    """The stream ended in the middle of a frame."""


@dataclass(frozen=True, slots=True)
class Message:
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class BlobStart:
    size: int


@dataclass(frozen=True, slots=True)
class BlobData:
    # A view of bytes the caller fed in (or a copy of buffered bytes); valid
    # for as long as the caller keeps it, since fed data is never mutated.
    data: bytes | memoryview


@dataclass(frozen=True, slots=True)
class BlobEnd:
    pass


Event = Message | BlobStart | BlobData | BlobEnd

_BLOB_END = BlobEnd()


# Made once: json.dumps/json.loads with options build a new coder on every call, which
# cost a chat server as much as the coding itself.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def encode_message(body: dict[str, Any]) -> bytes:
    """One MESSAGE frame. Compact JSON, non-ASCII kept as UTF-8."""
    payload = _ENCODER.encode(body).encode()
    return HEADER.pack(FrameType.MESSAGE, len(payload)) + payload


def encode_blob_header(size: int) -> bytes:
    """The header of a BLOB frame; exactly `size` raw bytes must follow."""
    if size < 0:
        raise ValueError("blob size must be non-negative")
    return HEADER.pack(FrameType.BLOB, size)


def encode_blob(data: bytes) -> bytes:
    return encode_blob_header(len(data)) + data


def sniff(prefix: bytes) -> str | None:
    """Tell a framed peer from a text (line mode) peer by its first bytes.

    Returns ``"framed"``, ``"line"``, or None when `prefix` is still too short to tell.
    """
    n = min(len(prefix), len(MAGIC))
    if prefix[:n] != MAGIC[:n]:
        return "line"
    return "framed" if n == len(MAGIC) else None


def _decode_body(raw: bytes | memoryview) -> dict[str, Any]:
    try:
        body = _DECODER.decode(str(raw, "utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedFrame(f"message is not UTF-8 JSON: {exc}") from None
    except RecursionError:
        # Deeply nested arrays exhaust the parser's stack; that is the peer's fault.
        raise MalformedFrame("message is nested too deeply") from None
    if not isinstance(body, dict):
        raise MalformedFrame("message is not a JSON object")
    return body


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


class FrameDecoder:
    """Turns a byte stream split anywhere into frame events.

    After a `FrameError` the decoder is poisoned: the stream position is lost,
    and the connection should be closed.
    """

    __slots__ = ("_blob_left", "_broken", "_buffered", "_chunks", "_max_blob", "_max_message")

    def __init__(
        self, *, max_message: int = DEFAULT_MAX_MESSAGE, max_blob: int = DEFAULT_MAX_BLOB
    ) -> None:
        self._max_message = max_message
        self._max_blob = max_blob
        # A list, not a deque: it rarely holds more than two chunks, and an empty deque
        # costs about 600 bytes, a lot for each of thousands of idle chat connections.
        self._chunks: list[memoryview] = []
        self._buffered = 0
        # None: expecting a header. Otherwise: bytes of the current blob still to come.
        self._blob_left: int | None = None
        self._broken: FrameError | None = None

    @property
    def buffered(self) -> int:
        """Bytes fed but not yet returned as events."""
        return self._buffered

    @property
    def in_frame(self) -> bool:
        """True between the first byte of a frame and its last."""
        # A blob whose last byte has arrived is complete even before BlobEnd is pulled.
        return bool(self._blob_left) or self._buffered > 0

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if data:
            if not isinstance(data, bytes):
                data = bytes(data)  # we keep views of it; it must not change
            self._chunks.append(memoryview(data))
            self._buffered += len(data)

    def feed_eof(self) -> None:
        """The peer closed its side. Raises `TruncatedFrame` if a frame was cut off."""
        if self.in_frame:
            self._fail(TruncatedFrame("connection closed in the middle of a frame"))

    def __iter__(self) -> FrameDecoder:
        return self

    def __next__(self) -> Event:
        event = self.next_event()
        if event is None:
            raise StopIteration
        return event

    def next_event(self) -> Event | None:
        """The next complete event, or None until more bytes are fed."""
        if self._broken is not None:
            raise self._broken
        if self._blob_left is not None:
            return self._next_blob_event()
        if self._buffered < HEADER_SIZE:
            return None
        head = self._chunks[0]
        if len(head) >= HEADER_SIZE:
            kind, length = HEADER.unpack_from(head)
        else:
            kind, length = HEADER.unpack(self._gather(HEADER_SIZE, consume=False))
        if kind == FrameType.MESSAGE:
            if length > self._max_message:
                self._fail(OversizedFrame(f"message of {length} bytes exceeds {self._max_message}"))
            end = HEADER_SIZE + length
            if self._buffered < end:
                return None
            if len(head) >= end:
                # The whole frame in the first chunk (the usual case when many small
                # messages arrive in one read): decode it in place, no copy.
                if len(head) == end:
                    del self._chunks[0]
                else:
                    self._chunks[0] = head[end:]
                self._buffered -= end
                try:
                    return Message(_decode_body(head[HEADER_SIZE:end]))
                except FrameError as exc:
                    self._fail(exc)
            self._take(HEADER_SIZE)
            try:
                return Message(_decode_body(self._take(length)))
            except FrameError as exc:
                self._fail(exc)
        if kind == FrameType.BLOB:
            if length > self._max_blob:
                self._fail(OversizedFrame(f"blob of {length} bytes exceeds {self._max_blob}"))
            self._take(HEADER_SIZE)
            self._blob_left = length
            return BlobStart(length)
        self._fail(MalformedFrame(f"unknown frame type {kind}"))

    def _next_blob_event(self) -> Event | None:
        left = self._blob_left
        assert left is not None
        if left == 0:
            self._blob_left = None
            return _BLOB_END
        if not self._chunks:
            return None
        head = self._chunks[0]
        if len(head) <= left:
            del self._chunks[0]
            piece = head
        else:
            piece = head[:left]
            self._chunks[0] = head[left:]
        self._buffered -= len(piece)
        self._blob_left = left - len(piece)
        return BlobData(piece)

    def _take(self, n: int) -> bytes:
        return self._gather(n, consume=True)

    def _gather(self, n: int, *, consume: bool) -> bytes:
        out = bytearray()
        chunks = self._chunks
        i = 0
        while len(out) < n:
            chunk = chunks[i]
            need = n - len(out)
            out += chunk[:need]
            if consume:
                if len(chunk) <= need:
                    del chunks[0]
                else:
                    chunks[0] = chunk[need:]
            else:
                i += 1
        if consume:
            self._buffered -= n
        return bytes(out)

    def _fail(self, exc: FrameError) -> NoReturn:
        self._broken = exc
        self._chunks.clear()
        self._buffered = 0
        raise exc
