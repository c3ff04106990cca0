"""Datagram encoding for UDP chat (docs/PROTOCOL.md §3): one JSON object per datagram.

UDP keeps message boundaries, so no length prefix is needed; what it does not
keep is order, uniqueness or delivery, which the ``seq``/``ack`` fields address.
"""

from __future__ import annotations

import json
from typing import Any

from synack.apps.chat.protocol import MAX_DATAGRAM, ChatError, ErrorCode

Event = dict[str, Any]

# Room left for the server's per-peer ``,"seq":N`` when it relays an event.
SEQ_ROOM = 24


def encode(event: Event) -> bytes:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()


def decode(data: bytes) -> Event:
    """One datagram to a JSON object; ChatError(BAD_REQUEST) for anything else."""
    if len(data) > MAX_DATAGRAM:
        raise ChatError(ErrorCode.TOO_LONG, f"datagram of {len(data)} bytes exceeds {MAX_DATAGRAM}")
    try:
        body = json.loads(data.decode("utf-8"), parse_constant=_reject)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ChatError(ErrorCode.BAD_REQUEST, "datagram is not a UTF-8 JSON object") from None
    if not isinstance(body, dict):
        raise ChatError(ErrorCode.BAD_REQUEST, "datagram is not a JSON object")
    return body


def _reject(name: str) -> Any:
    raise ValueError(name)


def with_seq(data: bytes, seq: int) -> bytes:
    """Add ``"seq": seq`` to an encoded object without encoding it again (fan-out path)."""
    return b'%s,"seq":%d}' % (data[:-1], seq) if data != b"{}" else b'{"seq":%d}' % seq


def check_relay(event: Event) -> None:
    """Refuse a message whose relayed datagram would not fit MAX_DATAGRAM."""
    size = len(encode(event)) + SEQ_ROOM
    if size > MAX_DATAGRAM:
        raise ChatError(
            ErrorCode.TOO_LONG,
            f"message too long for one datagram ({size} > {MAX_DATAGRAM} bytes); shorten it",
        )


def fit(event: Event) -> bytes:
    """Encode a reply, trimming its longest list (who, rooms, welcome) until it fits."""
    data = encode(event)
    if len(data) + SEQ_ROOM <= MAX_DATAGRAM:
        return data
    lists = [k for k, v in event.items() if isinstance(v, list)]
    if not lists:
        return data  # the callers check messages with check_relay before they get here
    event = dict(event)
    key = max(lists, key=lambda k: len(event[k]))
    items = list(event[key])
    dropped = 0
    while items and len(data) + SEQ_ROOM > MAX_DATAGRAM:
        cut = max(1, len(items) // 8)
        del items[-cut:]
        dropped += cut
        event[key] = items
        event["more"] = dropped
        data = encode(event)
    return data
