"""The vocabulary of the file transfer protocol (docs/PROTOCOL.md §4).

Operations, typed error codes, the rules a path on the wire must follow, and
the one record both sides exchange about a file (`Entry`). Both the server and
the client import this module, so the two can never disagree on a name.
"""

from __future__ import annotations

import errno
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from synack.errors import UserError

APP = "files"

# Bulk I/O moves in pieces of this size: large enough that per-piece Python
# work vanishes next to the copying, small enough that memory stays constant.
CHUNK = 1 << 20

# A file being received is written under this suffix beside its destination and
# renamed only once its SHA-256 matches; the server refuses uploads to such names.
PART_SUFFIX = ".synack-part"

# Listings travel in several MESSAGE frames, each kept well under the 64 KiB limit.
LISTING_BATCH_BYTES = 32 * 1024
MAX_PATH_BYTES = 4096

# The server's defaults, here so that the command line can show them without
# importing the server.
DEFAULT_PORT = 8041
DEFAULT_IDLE_TIMEOUT = 300.0


class Op(StrEnum):
    HELLO = "hello"
    WELCOME = "welcome"
    ERROR = "error"
    STAT = "stat"
    LIST = "list"
    ENTRIES = "entries"
    END = "end"
    GET = "get"
    FILE = "file"
    SENT = "sent"
    PUT = "put"
    READY = "ready"
    STORED = "stored"
    MKDIR = "mkdir"
    MADE = "made"


class ErrorCode(StrEnum):
    """The ``code`` of an ``error`` message; PROTOCOL.md §4.6 says when each is sent."""

    VERSION = "version"
    BAD_REQUEST = "bad-request"
    BAD_PATH = "bad-path"
    OUTSIDE_ROOT = "outside-root"
    NOT_REGULAR = "not-regular"
    READ_ONLY = "read-only"
    NOT_FOUND = "not-found"
    PERMISSION = "permission"
    EXISTS = "exists"
    IS_DIR = "is-dir"
    NOT_DIR = "not-dir"
    BAD_OFFSET = "bad-offset"
    CHANGED = "changed"
    CHECKSUM = "checksum"
    BUSY = "busy"
    NO_SPACE = "no-space"
    IO = "io"


class FilesError(UserError):
    """A refusal with a typed code: raised where it happens, carried on the wire as ``error``."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def printable(text: str) -> str:
    """`text` safe to show on a terminal: control and format characters escaped.

    Names and messages come from the other side of the network; printed raw,
    an escape sequence in one could drive the terminal or hide what it says.
    """
    if text.isprintable():
        return text
    return "".join(
        ch
        if ch == " " or unicodedata.category(ch)[0] not in "CZ"
        else ch.encode("unicode_escape").decode()
        for ch in text
    )


class RemoteError(FilesError):
    """The server refused a request (its code and sentence, as received)."""

    def __str__(self) -> str:
        return f"server refused: {printable(self.message)}"


class ProtocolError(UserError):
    """The peer sent something this protocol does not allow; the connection is done."""


class ConnectionClosed(UserError):
    """The peer went away before the exchange was complete."""


_ERRNO_CODES: dict[int, ErrorCode] = {
    errno.ENOENT: ErrorCode.NOT_FOUND,
    errno.EACCES: ErrorCode.PERMISSION,
    errno.EPERM: ErrorCode.PERMISSION,
    errno.EROFS: ErrorCode.PERMISSION,
    errno.ENOSPC: ErrorCode.NO_SPACE,
    errno.EDQUOT: ErrorCode.NO_SPACE,
    errno.EFBIG: ErrorCode.NO_SPACE,
    errno.ENOTDIR: ErrorCode.NOT_DIR,
    errno.EISDIR: ErrorCode.IS_DIR,
    errno.EEXIST: ErrorCode.EXISTS,
    errno.ENAMETOOLONG: ErrorCode.BAD_PATH,
    errno.ELOOP: ErrorCode.BAD_PATH,
}

_CODE_WORDS: dict[ErrorCode, str] = {
    ErrorCode.NOT_FOUND: "no such file or directory",
    ErrorCode.PERMISSION: "permission denied",
    ErrorCode.NO_SPACE: "no space left on the device",
    ErrorCode.NOT_DIR: "not a directory",
    ErrorCode.IS_DIR: "is a directory",
    ErrorCode.EXISTS: "already exists",
    ErrorCode.BAD_PATH: "bad path",
}


def from_os_error(exc: OSError, what: str) -> FilesError:
    """An `OSError` met while handling `what` (a path as the user wrote it), as a typed refusal."""
    code = _ERRNO_CODES.get(exc.errno or 0, ErrorCode.IO)
    if exc.errno == errno.ELOOP:
        reason = "too many levels of symbolic links"
    elif exc.errno == errno.ENAMETOOLONG:
        reason = "name too long"
    else:
        reason = _CODE_WORDS.get(code) or (exc.strerror or str(exc)).lower()
    return FilesError(code, f"{what}: {reason}")


def split_path(path: object) -> tuple[str, ...]:
    """The components of a path on the wire, or `FilesError` ``bad_path``.

    A wire path is relative to the served root, ``/``-separated, with no empty,
    ``.`` or ``..`` component and no NUL byte; ``""`` names the root itself.
    """
    if not isinstance(path, str):
        raise FilesError(ErrorCode.BAD_REQUEST, "'path' must be a string")
    shown = path if len(path) <= 200 else path[:200] + "..."
    if "\0" in path:
        raise FilesError(ErrorCode.BAD_PATH, f"{shown!r}: a path may not contain a NUL byte")
    try:
        size = len(path.encode("utf-8"))
    except UnicodeEncodeError:
        raise FilesError(ErrorCode.BAD_PATH, f"{shown!r}: not valid UTF-8") from None
    if size > MAX_PATH_BYTES:
        raise FilesError(ErrorCode.BAD_PATH, f"{shown!r}: longer than {MAX_PATH_BYTES} bytes")
    if path.startswith("/"):
        raise FilesError(ErrorCode.BAD_PATH, f"{shown!r}: absolute paths are not served")
    if path == "":
        return ()
    parts = tuple(path.split("/"))
    if ".." in parts:
        raise FilesError(ErrorCode.BAD_PATH, f"{shown!r}: '..' may not appear in a path")
    if "" in parts or "." in parts:
        raise FilesError(ErrorCode.BAD_PATH, f"{shown!r}: empty or '.' path component")
    return parts


def normalize(path: str) -> str:
    """What a user typed for a remote path, in wire form: ``.``/``/`` trimmed, not validated.

    Only cosmetic slashes go; anything the server must judge (``..``, NUL,
    a leading ``/`` on a real path) is left for the server to refuse.
    """
    while path.startswith("./"):
        path = path[2:]
    if path in (".", "/"):
        return ""
    while len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    return path


def join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def basename(path: str) -> str:
    return path.rpartition("/")[2]


class Kind(StrEnum):
    FILE = "file"
    DIR = "dir"
    # Listed so a user sees it, but never served: a device, FIFO, socket, a
    # broken symlink or one that leads out of the served root.
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Entry:
    """One file or directory as the server describes it; `path` is relative to the root."""

    path: str
    kind: Kind
    size: int
    mtime_ns: int

    def to_wire(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "type": self.kind.value,
            "size": self.size,
            "mtime_ns": self.mtime_ns,
        }

    @classmethod
    def from_wire(cls, raw: object) -> Entry:
        if not isinstance(raw, dict):
            raise ProtocolError("an entry is not a JSON object")
        path, kind, size, mtime = (
            raw.get("path"),
            raw.get("type"),
            raw.get("size"),
            raw.get("mtime_ns"),
        )
        if not isinstance(path, str) or not isinstance(kind, str) or kind not in _KINDS:
            raise ProtocolError(f"malformed entry {raw!r}")
        if not isinstance(size, int) or not _is_count(size):
            raise ProtocolError(f"malformed entry {raw!r}")
        if not isinstance(mtime, int) or isinstance(mtime, bool):
            raise ProtocolError(f"malformed entry {raw!r}")
        return cls(path, Kind(kind), size, mtime)


_KINDS = frozenset(k.value for k in Kind)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def count_field(message: dict[str, Any], name: str) -> int:
    """A non-negative integer field of a request or reply."""
    value = message.get(name)
    if not _is_count(value):
        raise FilesError(ErrorCode.BAD_REQUEST, f"{name!r} must be a non-negative integer")
    assert isinstance(value, int)
    return value


def flag_field(message: dict[str, Any], name: str) -> bool:
    value = message.get(name, False)
    if not isinstance(value, bool):
        raise FilesError(ErrorCode.BAD_REQUEST, f"{name!r} must be true or false")
    return value


def digest_field(message: dict[str, Any]) -> str:
    value = message.get("sha256")
    if not isinstance(value, str) or len(value) != 64 or value.strip("0123456789abcdef"):
        raise FilesError(ErrorCode.BAD_REQUEST, "'sha256' must be 64 lowercase hex digits")
    return value


# The ``sent`` trailer can follow the body late: the sender may still be hashing
# the whole file (a resumed transfer sends only its tail). Waits for it allow
# the idle timeout plus the time to hash `size` bytes at this (slow-disk) rate.
SLOWEST_HASH_RATE = 50_000_000


# A sender whose peer reads slowly (sendfile blocks) allows the idle timeout
# plus the time to move the bytes of one call at this rate.
SLOWEST_LINK_RATE = 100_000


def trailer_timeout(timeout: float | None, size: int) -> float | None:
    return None if timeout is None else timeout + size / SLOWEST_HASH_RATE
