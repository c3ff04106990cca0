"""Segment-level TCP scenarios in a small text format, after packetdrill.

A scenario is a script that plays the *peer* of one `synack.tcp.Connection`:
it injects segments, expects segments, lets virtual time pass and calls the
connection's API, one step per line. It runs in milliseconds, on virtual time,
and a failing line is reported by its number with the expected and the actual
segment side by side. The full guide, with examples, is ``docs/SCENARIOS.md``.

    # Active open, one write, and the peer's ACK.
    0     call conn.connect()
    +0    > S 0:0(0) win 65535 <mss 1460,sackOK,TS val 0 ecr 0,nop,wscale 6>
    +0.1  < S. 0:0(0) ack 1 win 65535 <mss 1460,nop,wscale 7>
    +0    > . 1:1(0) ack 1
    +0    expect state ESTABLISHED
    +0    call conn.send(b"hello") = 5
    +0    > P. 1:6(5) ack 1 "hello"
    +0.1  < . 1:1(0) ack 6 win 1000
    +5    > nothing

Lines (``#`` starts a comment; blank lines are ignored):

``config NAME=VALUE ...``
    Overrides fields of `synack.tcp.Config` (Python literals; ``on``/``off``
    also work). Only before the first timed line.
``peer isn=N``
    The peer's initial sequence number (default 1000000), e.g. just below
    2**32 to carry the stream across the wrap.

Every other line starts with a time: ``1.5`` (seconds since the start),
``+0.2`` (after the previous line), or ``*`` (outbound only: whenever the
next segment is sent), kept in whole microseconds. Timers of the connection
fire at their exact deadlines as the clock passes them. Then one action:

``< FLAGS START:END(LEN) [ack N] [win N] [<OPTIONS>] ["payload"]``
    Inject a segment from the peer (the checksum is filled in). FLAGS are
    tcpdump's letters ``S F R P U E W`` and ``.`` for ACK. Sequence numbers
    are relative to the peer's ISN, the ack to ours, as in packetdrill.
    ``win`` defaults to 65535; a payload not given is LEN zero bytes.
``> FLAGS START:END(LEN) [ack N] [win N] [<OPTIONS>] ["payload"]``
    Expect the next segment the connection sends, at this time (within the
    tolerance, 4 ms by default). Numbers are relative to our ISN (the ack to
    the peer's). ``win``, options and payload are checked only when written;
    ``<>`` means "no options", and ``?`` matches any value of win or a TS field.
``> nothing``
    Nothing has been sent that an earlier line did not expect, up to now.
``call conn.METHOD(ARGS) [= RESULT | raises ERROR]``
    Call ``connect`` (the time is passed for you), ``listen``, ``send``,
    ``receive``, ``receive_into`` (given a buffer size; the bytes filled are
    the result), ``shutdown``, ``close`` or ``abort`` with literal arguments
    (``b"x" * 3000`` is allowed), and check what it returns or raises (the
    exception's class or a base class).
``expect state NAME``, ``expect event NAME[(ERROR)]``, ``expect no events``,
``expect conn.ATTRIBUTE OP LITERAL``
    Check the RFC 9293 state, the next event (state changes are not
    events here; ``expect state`` covers them), or a public attribute
    (``==`` between floats allows rounding in the ninth digit).

OPTIONS are ``mss N``, ``wscale N``, ``sackOK``, ``sack L:R ...``,
``TS val N ecr N``, ``nop`` and ``eol``, separated by commas; inbound they are
encoded in the order written. The TS clock of the connection is shown
relative to its random offset, so its TSval reads as virtual milliseconds;
SACK edges are relative like the sequence numbers they describe.

Every segment the connection sends must be expected by a ``>`` line before
the clock moves past it (or the script ends): silence is checked, too.
Before our ISN is chosen (a RST from CLOSED or LISTEN) our numbers are absolute.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Final

from synack.tcp.config import Config
from synack.tcp.connection import Connection
from synack.tcp.events import Event, Reset, StateChanged, TimedOut
from synack.tcp.isn import ts_offset
from synack.tcp.state import State
from synack.wire.checksum import address_bytes
from synack.wire.seq import MASK
from synack.wire.tcp import (
    HEADER,
    HEADER_SIZE,
    Flags,
    MalformedSegment,
    OptionKind,
    Options,
    fill_checksum,
    joined,
    parse_options,
    parse_segment,
)

__all__ = [
    "DEFAULT_LOCAL",
    "DEFAULT_PEER_ISN",
    "DEFAULT_REMOTE",
    "DEFAULT_TOLERANCE",
    "Scenario",
    "ScenarioError",
    "ScenarioFailure",
    "ScenarioResult",
    "ScenarioSyntaxError",
    "parse_scenario",
    "run_scenario",
]

DEFAULT_LOCAL: Final = ("192.0.2.1", 8080)  # documentation addresses (RFC 5737): no real host
DEFAULT_REMOTE: Final = ("192.0.2.2", 40000)
DEFAULT_PEER_ISN: Final = 1_000_000
DEFAULT_TOLERANCE: Final = 0.004  # packetdrill's default: 4 ms
DEFAULT_SECRET: Final = b"synack-scenario-secret".ljust(32, b".")
DEFAULT_WINDOW: Final = 65535
# Bounds that stop a runaway script (an ACK war, a timer that re-arms at the same instant).
MAX_TIMER_FIRINGS: Final = 100_000
MAX_WAIT_FOR_ANY: Final = 86_400.0
TRACE_IN_FAILURE: Final = 8
# A timer due this close after a line's time counts as due at it (float rounding).
TIME_EPSILON: Final = 1e-9


class ScenarioError(Exception):
    """A scenario could not be read, or did not go as written.

    The message is one line naming the file and line, then (for a failure) the
    details; a command-line front end can print it as it is. (The testing layer
    sits on wire and tcp only, so this is not a `synack.errors.UserError`.)
    """


class ScenarioSyntaxError(ScenarioError, ValueError):
    """A line of the script is not in the scenario format."""


class ScenarioFailure(ScenarioError, AssertionError):
    """The connection did not behave as a line expected."""


# ---------------------------------------------------------------------------- the script

_FLAG_LETTERS: Final = {
    "S": Flags.SYN,
    "F": Flags.FIN,
    "R": Flags.RST,
    "P": Flags.PSH,
    "U": Flags.URG,
    "E": Flags.ECE,
    "W": Flags.CWR,
    ".": Flags.ACK,
}
WILDCARD: Final = -1  # "?" in an expected field


@dataclass(frozen=True, slots=True)
class OptionSpec:
    """One TCP option as written: ``kind`` is mss, wscale, sackOK, sack, TS, nop or eol."""

    kind: str
    values: tuple[int, ...] = ()  # WILDCARD where "?" was written


@dataclass(frozen=True, slots=True)
class SegmentSpec:
    """A segment line with its numbers still relative."""

    inbound: bool
    flags: int
    start: int
    length: int
    ack: int | None
    win: int | None  # None: not checked (outbound) or the default (inbound)
    options: tuple[OptionSpec, ...] | None  # None: not checked (outbound) or none (inbound)
    payload: bytes | None


@dataclass(frozen=True, slots=True)
class NothingSent:
    pass


@dataclass(frozen=True, slots=True)
class Call:
    text: str
    method: str
    args: tuple[Any, ...]
    result: Any
    check_result: bool
    raises: str | None


@dataclass(frozen=True, slots=True)
class ExpectState:
    state: State


@dataclass(frozen=True, slots=True)
class ExpectEvent:
    name: str | None  # None: no events
    error: str | None


@dataclass(frozen=True, slots=True)
class ExpectAttribute:
    name: str
    op: str
    value: Any


Action = SegmentSpec | NothingSent | Call | ExpectState | ExpectEvent | ExpectAttribute


@dataclass(frozen=True, slots=True)
class Step:
    lineno: int
    text: str  # the line as written, comment removed
    action_text: str  # the same without its time column
    time: int | None  # microseconds (as packetdrill counts); None: "*"
    relative: bool
    action: Action


@dataclass(frozen=True, slots=True)
class Scenario:
    """A parsed script: its name (for messages), config overrides, peer ISN and steps."""

    name: str
    config: dict[str, Any]
    peer_isn: int
    steps: tuple[Step, ...]


_TIME_RE: Final = re.compile(r"(\*|\+?(?:\d+\.?\d*|\.\d+))(?=\s|$)")
_SEG_RE: Final = re.compile(r"([<>])\s+([SFRPUEW.]+)\s+(\d+):(\d+)\((\d+)\)(.*)$")
_STRING_RE: Final = re.compile(r"""b?(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')""")
_CALL_METHODS: Final = frozenset(
    {"connect", "listen", "send", "receive", "receive_into", "shutdown", "close", "abort"}
)
_COMPARE: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_WORDS: Final = {"on": True, "off": False, "true": True, "false": False, "none": None}


def _strip_comment(line: str) -> str:
    quote = ""
    escaped = False
    for i, ch in enumerate(line):
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            return line[:i]
    return line


def parse_scenario(text: str, name: str = "<scenario>") -> Scenario:
    """Parse a script; raises `ScenarioSyntaxError` naming the first bad line."""
    config: dict[str, Any] = {}
    peer_isn = DEFAULT_PEER_ISN
    steps: list[Step] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = _strip_comment(raw).strip()
        if not line:
            continue

        def fail(message: str, lineno: int = lineno) -> ScenarioSyntaxError:
            return ScenarioSyntaxError(f"{name}:{lineno}: {message}")

        head = line.split(None, 1)[0]
        if head in ("config", "peer"):
            if steps:
                raise fail(f"'{head}' must come before the first timed line")
            settings = _parse_settings(line[len(head) :], fail)
            if head == "config":
                known = {f.name for f in fields(Config)}
                for key in settings:
                    if key not in known:
                        raise fail(f"Config has no field {key!r}")
                config.update(settings)
            else:
                for key, value in settings.items():
                    if key != "isn" or not isinstance(value, int) or not 0 <= value <= MASK:
                        raise fail("peer takes isn=N with 0 <= N < 2**32")
                    peer_isn = value
            continue
        m = _TIME_RE.match(line)
        if m is None:
            raise fail(f"expected a time (0, 1.5, +0.1 or *) or config/peer, got {head!r}")
        word = m.group(1)
        rest = line[m.end() :].strip()
        if not rest:
            raise fail("a time needs an action after it")
        action = _parse_action(rest, fail)
        if word == "*":
            if not isinstance(action, SegmentSpec) or action.inbound:
                raise fail("'*' is only for outbound segments (>)")
            steps.append(Step(lineno, line, rest, None, False, action))
        else:
            relative = word.startswith("+")
            micros = round(float(word.lstrip("+")) * 1_000_000)
            steps.append(Step(lineno, line, rest, micros, relative, action))
    if not steps:
        raise ScenarioSyntaxError(f"{name}: the scenario has no steps")
    return Scenario(name, config, peer_isn, tuple(steps))


def _parse_settings(text: str, fail: Callable[[str], ScenarioSyntaxError]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in text.split():
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise fail(f"expected NAME=VALUE, got {item!r}")
        if value.lower() in _WORDS:
            out[key] = _WORDS[value.lower()]
            continue
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise fail(f"{key}: {value!r} is not a literal") from None
    return out


def _parse_action(text: str, fail: Callable[[str], ScenarioSyntaxError]) -> Action:
    if text[0] in "<>":
        if re.fullmatch(r">\s+nothing", text):
            return NothingSent()
        return _parse_segment(text, fail)
    word, _, rest = text.partition(" ")
    rest = rest.strip()
    if word == "call":
        return _parse_call(rest, fail)
    if word == "expect":
        return _parse_expect(rest, fail)
    raise fail(f"unknown action {word!r} (use <, >, call or expect)")


def _parse_segment(text: str, fail: Callable[[str], ScenarioSyntaxError]) -> SegmentSpec:
    m = _SEG_RE.match(text)
    if m is None:
        raise fail("a segment is written  < FLAGS START:END(LEN) [ack N] [win N] [<opts>]")
    direction, letters, start_s, end_s, len_s, rest = m.groups()
    inbound = direction == "<"
    flags = 0
    for ch in letters:
        flags |= _FLAG_LETTERS[ch]
    start, end, length = int(start_s), int(end_s), int(len_s)
    if end - start != length:
        raise fail(f"{start}:{end} spans {end - start} bytes but LEN says {length}")
    ack: int | None = None
    win: int | None = None
    options: tuple[OptionSpec, ...] | None = None
    payload: bytes | None = None
    rest = rest.strip()
    while rest:
        if rest.startswith("ack "):
            value, rest = _next_word(rest[4:])
            ack = _number(value, fail, "ack", wildcard=False)
        elif rest.startswith("win "):
            value, rest = _next_word(rest[4:])
            win = _number(value, fail, "win", wildcard=not inbound)
            if win > 0xFFFF:
                raise fail(f"win {win} does not fit the 16-bit window field")
        elif rest.startswith("<"):
            close = rest.find(">")
            if close < 0:
                raise fail("options start with < and end with >")
            options = _parse_options(rest[1:close], fail, inbound)
            rest = rest[close + 1 :].strip()
        elif (s := _STRING_RE.match(rest)) is not None:
            literal = ast.literal_eval(s.group(0))
            payload = literal.encode() if isinstance(literal, str) else literal
            rest = rest[s.end() :].strip()
        else:
            raise fail(f"unexpected {rest.split()[0]!r} in a segment")
    if flags & Flags.ACK and ack is None:
        raise fail("a segment with the ACK flag (.) needs 'ack N'")
    if ack is not None and not flags & Flags.ACK:
        raise fail("'ack N' needs the ACK flag (.)")
    if payload is not None and len(payload) != length:
        raise fail(f"the payload has {len(payload)} bytes but LEN says {length}")
    return SegmentSpec(inbound, flags, start, length, ack, win, options, payload)


def _next_word(text: str) -> tuple[str, str]:
    parts = text.strip().split(None, 1)
    if not parts:
        return "", ""
    return parts[0], parts[1].strip() if len(parts) > 1 else ""


def _number(
    word: str, fail: Callable[[str], ScenarioSyntaxError], what: str, *, wildcard: bool
) -> int:
    if word == "?" and wildcard:
        return WILDCARD
    if not word.isdigit():
        raise fail(f"{what} needs a number{' or ?' if wildcard else ''}, got {word!r}")
    return int(word)


def _parse_options(
    text: str, fail: Callable[[str], ScenarioSyntaxError], inbound: bool
) -> tuple[OptionSpec, ...]:
    out: list[OptionSpec] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        words = item.split()
        kind = words[0]
        if kind in ("nop", "eol", "sackOK") and len(words) == 1:
            out.append(OptionSpec(kind))
        elif kind in ("mss", "wscale") and len(words) == 2:
            out.append(OptionSpec(kind, (_number(words[1], fail, kind, wildcard=False),)))
        elif kind == "TS" and len(words) == 5 and words[1] == "val" and words[3] == "ecr":
            val = _number(words[2], fail, "TS val", wildcard=not inbound)
            ecr = _number(words[4], fail, "TS ecr", wildcard=not inbound)
            out.append(OptionSpec(kind, (val, ecr)))
        elif kind == "sack" and len(words) >= 2:
            edges: list[int] = []
            for block in words[1:]:
                left, sep, right = block.partition(":")
                if not sep or not left.isdigit() or not right.isdigit():
                    raise fail(f"a SACK block is written L:R, got {block!r}")
                edges += (int(left), int(right))
            out.append(OptionSpec(kind, tuple(edges)))
        else:
            raise fail(
                f"unknown option {item!r} (mss N, wscale N, sackOK, sack L:R, "
                "TS val N ecr N, nop, eol)"
            )
    return tuple(out)


def _literal(node: ast.expr) -> Any:
    """A literal, or ``bytes * int`` / ``str * int`` (to write large payloads briefly)."""
    if (
        isinstance(node, ast.BinOp)
        and isinstance(node.op, ast.Mult)
        and isinstance(node.left, ast.Constant)
        and isinstance(node.right, ast.Constant)
        and isinstance(node.left.value, bytes | str)
        and isinstance(node.right.value, int)
        and not isinstance(node.right.value, bool)
        and 0 <= node.right.value <= 1 << 26
    ):
        return node.left.value * node.right.value
    return ast.literal_eval(node)


def _parse_call(text: str, fail: Callable[[str], ScenarioSyntaxError]) -> Call:
    expr, raises = text, None
    result: Any = None
    check = False
    m = re.search(r"\)\s*(=|raises)\s*(.+)$", text)
    if m is not None:
        expr = text[: m.start() + 1]
        if m.group(1) == "raises":
            raises = m.group(2).strip()
            if not raises.isidentifier():
                raise fail(f"raises needs an exception name, got {raises!r}")
        else:
            try:
                result = _literal(ast.parse(m.group(2).strip(), mode="eval").body)
            except (ValueError, SyntaxError):
                raise fail(f"the result {m.group(2).strip()!r} is not a literal") from None
            check = True
    try:
        node = ast.parse(expr, mode="eval").body
    except SyntaxError:
        raise fail(f"cannot read the call {expr!r}") from None
    if not (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "conn"
        and not node.keywords
    ):
        raise fail("a call is written  call conn.METHOD(ARGS)")
    method = node.func.attr
    if method not in _CALL_METHODS:
        raise fail(f"conn.{method} is not one of {', '.join(sorted(_CALL_METHODS))}")
    try:
        args = tuple(_literal(arg) for arg in node.args)
    except (ValueError, SyntaxError, TypeError):
        raise fail('call arguments must be literals (b"x" * 3000 is allowed)') from None
    if method == "connect" and args:
        raise fail("conn.connect() takes no arguments here: the scenario's clock is passed")
    return Call(expr.strip(), method, args, result, check, raises)


def _parse_expect(text: str, fail: Callable[[str], ScenarioSyntaxError]) -> Action:
    words = text.split()
    if len(words) == 2 and words[0] == "state":
        name = words[1].upper().replace("_", "-")
        for state in State:
            if state.value == name:
                return ExpectState(state)
        raise fail(f"unknown state {words[1]!r} (RFC 9293 names, e.g. SYN-SENT)")
    if words in (["no", "events"], ["no", "event"]):
        return ExpectEvent(None, None)
    if len(words) == 2 and words[0] == "event":
        m = re.fullmatch(r"([A-Za-z]+)(?:\(([A-Za-z]+)\))?", words[1])
        if m is None:
            raise fail(f"an event is written NAME or NAME(ERROR), got {words[1]!r}")
        return ExpectEvent(m.group(1), m.group(2))
    m = re.fullmatch(r"conn\.([a-z_][a-z_0-9]*)\s*(==|!=|<=|>=|<|>)\s*(.+)", text)
    if m is not None:
        if m.group(1).startswith("_"):
            raise fail("only public attributes of conn can be checked")
        try:
            value = _literal(ast.parse(m.group(3), mode="eval").body)
        except (ValueError, SyntaxError):
            raise fail(f"{m.group(3)!r} is not a literal") from None
        return ExpectAttribute(m.group(1), m.group(2), value)
    raise fail(
        "expect state NAME | expect event NAME | expect no events | expect conn.ATTRIBUTE == VALUE"
    )


# ---------------------------------------------------------------------------- segments as text

_OPTION_NAMES: Final = {
    OptionKind.MSS: "mss",
    OptionKind.WSCALE: "wscale",
    OptionKind.SACK_PERMITTED: "sackOK",
    OptionKind.SACK: "sack",
    OptionKind.TIMESTAMPS: "TS",
}


def _flags_letters(flags: int) -> str:
    """Flags the way the scenario format writes them: S F R P U E W, then . for ACK."""
    text = "".join(ch for ch, bit in _FLAG_LETTERS.items() if ch != "." and flags & bit)
    return text + ("." if flags & Flags.ACK else "")


@dataclass(frozen=True, slots=True)
class _Frame:
    """How to turn absolute wire numbers into the script's relative ones, per direction."""

    seq_base: int
    ack_base: int
    ts_val_base: int
    ts_ecr_base: int


def _option_items(data: bytes, hlen: int, frame: _Frame) -> list[str]:
    """The options of a segment in wire order, as a script writes them."""
    items: list[str] = []
    i = HEADER_SIZE
    while i < hlen:
        kind = data[i]
        if kind == OptionKind.EOL:
            items.append("eol")
            break
        if kind == OptionKind.NOP:
            items.append("nop")
            i += 1
            continue
        length = data[i + 1] if i + 1 < hlen else 0
        if length < 2 or i + length > hlen:
            items.append(f"<bad option {kind}>")
            break
        body = data[i + 2 : i + length]
        if kind == OptionKind.MSS and length == 4:
            items.append(f"mss {int.from_bytes(body, 'big')}")
        elif kind == OptionKind.WSCALE and length == 3:
            items.append(f"wscale {body[0]}")
        elif kind == OptionKind.SACK_PERMITTED and length == 2:
            items.append("sackOK")
        elif kind == OptionKind.TIMESTAMPS and length == 10:
            val = (int.from_bytes(body[:4], "big") - frame.ts_val_base) & MASK
            ecr = (int.from_bytes(body[4:], "big") - frame.ts_ecr_base) & MASK
            items.append(f"TS val {val} ecr {ecr}")
        elif kind == OptionKind.SACK and (length - 2) % 8 == 0:
            blocks = [
                f"{(int.from_bytes(body[j : j + 4], 'big') - frame.ack_base) & MASK}:"
                f"{(int.from_bytes(body[j + 4 : j + 8], 'big') - frame.ack_base) & MASK}"
                for j in range(0, length - 2, 8)
            ]
            items.append("sack " + " ".join(blocks))
        else:
            items.append(f"opt-{kind}")
        i += length
    return items


def _describe(data: bytes, frame: _Frame, direction: str) -> str:
    """A segment in the script's own syntax, numbers relative (paste it into a script)."""
    if len(data) < HEADER_SIZE:
        return f"{direction} <{len(data)} bytes: shorter than a TCP header>"
    _sp, _dp, seq, ack, off, flags, window, _c, _u = HEADER.unpack_from(data)
    hlen = min(max((off >> 4) * 4, HEADER_SIZE), len(data))
    n = len(data) - hlen
    start = (seq - frame.seq_base) & MASK
    text = f"{direction} {_flags_letters(flags) or '-'} {start}:{start + n}({n})"
    if flags & Flags.ACK:
        text += f" ack {(ack - frame.ack_base) & MASK}"
    text += f" win {window}"
    if hlen > HEADER_SIZE:
        text += f" <{','.join(_option_items(data, hlen, frame))}>"
    if n and n <= 24:
        text += f" {bytes(data[hlen:])!r}"
    return text


def _tcpdump(data: bytes, src: tuple[str, int], dst: tuple[str, int]) -> str:
    """The same segment as ``tcpdump -S -n`` prints it, with absolute numbers."""
    if len(data) < HEADER_SIZE:
        return f"{src[0]}.{src[1]} > {dst[0]}.{dst[1]}: {len(data)} bytes, not TCP"
    _sp, _dp, seq, ack, off, flags, window, _c, _u = HEADER.unpack_from(data)
    hlen = min(max((off >> 4) * 4, HEADER_SIZE), len(data))
    n = len(data) - hlen
    letters = "".join(ch for ch, bit in _FLAG_LETTERS.items() if flags & bit)
    text = f"{src[0]}.{src[1]} > {dst[0]}.{dst[1]}: Flags [{letters or 'none'}], seq {seq}"
    if n:
        text += f":{(seq + n) & MASK}"
    if flags & Flags.ACK:
        text += f", ack {ack}"
    text += f", win {window}"
    if hlen > HEADER_SIZE:
        absolute = _Frame(0, 0, 0, 0)
        text += f", options [{','.join(_option_items(data, hlen, absolute))}]"
    return f"{text}, length {n}"


# ---------------------------------------------------------------------------- running


@dataclass(slots=True)
class ScenarioResult:
    """What a finished run leaves: the connection (to inspect further) and the trace."""

    connection: Connection
    trace: list[str]
    now: float


def run_scenario(
    source: str | Path,
    config: Config | None = None,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    local: tuple[str, int] = DEFAULT_LOCAL,
    remote: tuple[str, int] = DEFAULT_REMOTE,
) -> ScenarioResult:
    """Run a scenario given as text or as a path to a ``.pkt`` file.

    `config` is the base configuration; the script's ``config`` line overrides
    it. Raises `ScenarioSyntaxError` for a bad script and `ScenarioFailure` (an
    AssertionError, so test runners report it as a failure) for the first line
    the connection does not satisfy.
    """
    if isinstance(source, Path) or ("\n" not in source and source.endswith(".pkt")):
        path = Path(source)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ScenarioError(f"cannot read scenario {path}: {exc}") from None
        scenario = parse_scenario(text, str(path))
    else:
        scenario = parse_scenario(source)
    return _Runner(scenario, config, tolerance, local, remote).run()


class _Runner:
    """Plays the peer: the driver loop of a real stack, with a script instead of a network."""

    def __init__(
        self,
        scenario: Scenario,
        config: Config | None,
        tolerance: float,
        local: tuple[str, int],
        remote: tuple[str, int],
    ) -> None:
        base = config if config is not None else Config()
        if base.secret is None:
            base = replace(base, secret=DEFAULT_SECRET)
        try:
            cfg = replace(base, **scenario.config)
        except (TypeError, ValueError) as exc:
            raise ScenarioSyntaxError(f"{scenario.name}: config: {exc}") from None
        assert cfg.secret is not None
        self.scenario = scenario
        self.tolerance = tolerance
        self.local = local
        self.remote = remote
        self.local_ip = address_bytes(local[0])
        self.remote_ip = address_bytes(remote[0])
        self.conn = Connection(local, remote, cfg)
        self.peer_isn = scenario.peer_isn
        self.ts_offset = ts_offset(cfg.secret, self.local_ip, local[1], self.remote_ip, remote[1])
        self.check_checksum = cfg.checksum
        self.now = 0.0  # the connection's clock: never goes back
        self.pending: deque[tuple[float, bytes]] = deque()  # sent, not yet expected
        self.events: deque[Event] = deque()
        self.trace: list[str] = []
        self.step: Step = scenario.steps[0]

    # -- frames of reference

    def _outbound_frame(self) -> _Frame:
        return _Frame(self.conn.iss, self.peer_isn, self.ts_offset, 0)

    def _inbound_frame(self) -> _Frame:
        return _Frame(self.peer_isn, self.conn.iss, 0, self.ts_offset)

    # -- the driver loop

    def _collect(self) -> None:
        self._drain_events()
        for data in self.conn.segments_to_send(self.now):
            seg = joined(data)
            self.pending.append((self.now, seg))
            self.trace.append(f"{self.now:9.3f} {_describe(seg, self._outbound_frame(), '>')}")
        self._drain_events()

    def _drain_events(self) -> None:
        while (event := self.conn.next_event()) is not None:
            if isinstance(event, StateChanged):
                self.trace.append(f"{self.now:9.3f} state {event.old} -> {event.new}")
            else:
                self.events.append(event)
                self.trace.append(f"{self.now:9.3f} event {_event_text(event)}")

    def _advance(self, to: float, *, until_sent: bool = False) -> None:
        """Let the clock reach `to`, firing each timer at its deadline."""
        for _ in range(MAX_TIMER_FIRINGS):
            if until_sent and self.pending:
                return
            deadline = self.conn.get_timer()
            if deadline is None or deadline > to + TIME_EPSILON:
                break
            self.now = max(self.now, deadline)
            self.conn.handle_timer(self.now)
            self._collect()
        else:
            raise self._failure(f"timers fired {MAX_TIMER_FIRINGS} times before {to:.3f}")
        if not until_sent:
            self.now = max(self.now, to)

    def run(self) -> ScenarioResult:
        # The script's clock, in whole microseconds so that "+0.1" ten times is exactly 1 s:
        # when the previous line happened.
        clock = 0
        for step in self.scenario.steps:
            self.step = step
            action = step.action
            if step.time is None:
                clock = round(self._expect_any_time(action) * 1_000_000)
                continue
            at_us = clock + step.time if step.relative else step.time
            if at_us < clock:
                raise ScenarioSyntaxError(
                    f"{self.scenario.name}:{step.lineno}: time {at_us / 1e6:.6f} is before "
                    f"the previous line's {clock / 1e6:.6f}"
                )
            clock = at_us
            at = at_us / 1_000_000
            if isinstance(action, SegmentSpec) and not action.inbound:
                clock = round(self._expect_segment(action, at) * 1_000_000)
                continue
            self._advance(at)
            if isinstance(action, NothingSent):
                if self.pending:
                    raise self._unexpected(self.pending[0], "nothing sent")
                continue
            self._check_unexpected(at)
            if isinstance(action, SegmentSpec):
                self._inject(action)
            elif isinstance(action, Call):
                self._call(action)
            elif isinstance(action, ExpectState):
                if self.conn.state is not action.state:
                    raise self._failure(
                        "wrong state", f"state {action.state}", f"state {self.conn.state}"
                    )
            elif isinstance(action, ExpectEvent):
                self._expect_event(action)
            else:
                self._expect_attribute(action)
        if self.pending:
            raise self._unexpected(self.pending[0], "the end of the scenario")
        return ScenarioResult(self.conn, self.trace, self.now)

    # -- outbound

    def _expect_segment(self, spec: SegmentSpec, at: float) -> float:
        tol = self.tolerance
        self._advance(at)
        if not self.pending:
            # A timer just after `at`, within the tolerance, still counts as "at".
            deadline = self.conn.get_timer()
            if deadline is not None and deadline <= at + tol:
                self._advance(deadline)
        if not self.pending:
            deadline = self.conn.get_timer()
            when = f"next timer at {deadline:.3f}" if deadline is not None else "no timer armed"
            raise self._failure(
                "expected a segment, but nothing was sent",
                self.step.action_text,
                f"nothing ({when})",
            )
        sent_at, data = self.pending[0]
        if sent_at < at - tol:
            raise self._unexpected(self.pending[0], f"this line's time {at:.3f}")
        self.pending.popleft()
        self._match(spec, data)
        return sent_at

    def _expect_any_time(self, action: Action) -> float:
        assert isinstance(action, SegmentSpec)
        self._advance(self.now + MAX_WAIT_FOR_ANY, until_sent=True)
        if not self.pending:
            raise self._failure(
                "expected a segment at some time, but nothing was ever sent",
                self.step.action_text,
                "nothing",
            )
        sent_at, data = self.pending.popleft()
        self._match(action, data)
        return sent_at

    def _check_unexpected(self, at: float) -> None:
        if self.pending and self.pending[0][0] < at - self.tolerance:
            raise self._unexpected(self.pending[0], f"time {at:.3f}")

    def _match(self, spec: SegmentSpec, data: bytes) -> None:
        frame = self._outbound_frame()
        actual = _describe(data, frame, ">")
        try:
            seg = parse_segment(
                data,
                src=self.local_ip if self.check_checksum else None,
                dst=self.remote_ip if self.check_checksum else None,
            )
        except MalformedSegment as exc:
            raise self._failure(
                f"the connection sent a malformed segment ({exc})",
                self.step.action_text,
                actual,
                data,
            ) from None
        diffs: list[str] = []
        if seg.flags != spec.flags:
            diffs.append("flags")
        if (seg.seq - frame.seq_base) & MASK != spec.start or len(seg.payload) != spec.length:
            diffs.append("seq")
        if spec.ack is not None and (seg.ack - frame.ack_base) & MASK != spec.ack:
            diffs.append("ack")
        if spec.win is not None and spec.win != WILDCARD and seg.window != spec.win:
            diffs.append("win")
        if spec.options is not None and not self._options_match(spec.options, seg.options):
            diffs.append("options")
        if spec.payload is not None and seg.payload != spec.payload:
            diffs.append("payload")
        if diffs:
            raise self._failure(
                f"outbound segment differs in {', '.join(diffs)}",
                self.step.action_text,
                actual,
                data,
            )
        self.trace.append(f"{self.now:9.3f} matched line {self.step.lineno}")

    def _options_match(self, specs: tuple[OptionSpec, ...], actual: Options) -> bool:
        want = Options()
        ts: tuple[int, int] | None = None
        for spec in specs:
            if spec.kind == "mss":
                want.mss = spec.values[0]
            elif spec.kind == "wscale":
                want.wscale = spec.values[0]
            elif spec.kind == "sackOK":
                want.sack_permitted = True
            elif spec.kind == "sack":
                v = spec.values
                want.sack_blocks = tuple(
                    ((v[i] + self.peer_isn) & MASK, (v[i + 1] + self.peer_isn) & MASK)
                    for i in range(0, len(v), 2)
                )
            elif spec.kind == "TS":
                ts = spec.values[0], spec.values[1]
        if ts is not None:
            got = actual.timestamps
            if got is None:
                return False
            val, ecr = ts
            if val != WILDCARD and (got[0] - self.ts_offset) & MASK != val:
                return False
            if ecr != WILDCARD and got[1] != ecr:
                return False
            want.timestamps = got
        return want == actual

    # -- inbound

    def _inject(self, spec: SegmentSpec) -> None:
        seq = (self.peer_isn + spec.start) & MASK
        ack = (self.conn.iss + spec.ack) & MASK if spec.ack is not None else 0
        opts = self._encode_options(spec.options or ())
        payload = spec.payload if spec.payload is not None else bytes(spec.length)
        hlen = HEADER_SIZE + len(opts)
        win = DEFAULT_WINDOW if spec.win is None else spec.win
        buf = bytearray(hlen + len(payload))
        HEADER.pack_into(
            buf, 0, self.remote[1], self.local[1], seq, ack, (hlen // 4) << 4, spec.flags, win, 0, 0
        )
        buf[HEADER_SIZE:hlen] = opts
        buf[hlen:] = payload
        fill_checksum(buf, self.remote_ip, self.local_ip)
        data = bytes(buf)
        self.trace.append(f"{self.now:9.3f} {_describe(data, self._inbound_frame(), '<')}")
        self.conn.handle_segment(data, self.now)
        self._collect()

    def _encode_options(self, specs: tuple[OptionSpec, ...]) -> bytes:
        out = bytearray()
        for spec in specs:
            v = spec.values
            if spec.kind == "nop":
                out.append(OptionKind.NOP)
            elif spec.kind == "eol":
                out.append(OptionKind.EOL)
            elif spec.kind == "mss":
                out += bytes((OptionKind.MSS, 4)) + (v[0] & 0xFFFF).to_bytes(2, "big")
            elif spec.kind == "wscale":
                out += bytes((OptionKind.WSCALE, 3, v[0] & 0xFF))
            elif spec.kind == "sackOK":
                out += bytes((OptionKind.SACK_PERMITTED, 2))
            elif spec.kind == "TS":
                ecr = (v[1] + self.ts_offset) & MASK
                out += bytes((OptionKind.TIMESTAMPS, 10)) + (v[0] & MASK).to_bytes(4, "big")
                out += ecr.to_bytes(4, "big")
            elif spec.kind == "sack":
                out += bytes((OptionKind.SACK, 2 + 4 * len(v)))
                for edge in v:
                    out += ((edge + self.conn.iss) & MASK).to_bytes(4, "big")
        if len(out) % 4:
            out += bytes(4 - len(out) % 4)  # EOL padding, as the header length needs
        if len(out) > 40:
            raise self._failure(f"the options take {len(out)} bytes; at most 40 fit")
        # Make sure what we send is what the wire codec would read back.
        try:
            parse_options(bytes(out), 0, len(out))
        except MalformedSegment as exc:
            raise self._failure(f"the options written are malformed: {exc}") from None
        return bytes(out)

    # -- API calls and expectations

    def _call(self, call: Call) -> None:
        conn = self.conn
        args = (self.now,) if call.method == "connect" else call.args
        if call.method == "receive_into":
            if len(args) != 1 or not isinstance(args[0], int):
                raise self._failure("receive_into takes a buffer size, e.g. receive_into(100)")
            buf = bytearray(args[0])
            method: Callable[..., Any] = conn.receive_into
            args = (buf,)
        else:
            method = getattr(conn, call.method)
        shown = call.text
        try:
            result = method(*args)
        except Exception as exc:  # the script may expect any error the API raises
            self._collect()
            names = [cls.__name__ for cls in type(exc).__mro__]
            if call.raises is not None and call.raises in names:
                self.trace.append(f"{self.now:9.3f} call {shown}: {type(exc).__name__}")
                return
            raise self._failure(
                f"the call raised {type(exc).__name__}: {exc}",
                f"raises {call.raises}" if call.raises else "no exception",
                f"{type(exc).__name__}: {exc}",
            ) from None
        if call.method == "receive_into" and isinstance(result, int):
            result = bytes(buf[:result])
        self.trace.append(f"{self.now:9.3f} call {shown} -> {result!r}")
        self._collect()
        if call.raises is not None:
            raise self._failure(
                f"the call returned {result!r}", f"raises {call.raises}", repr(result)
            )
        if call.check_result and result != call.result:
            raise self._failure("the call returned something else", repr(call.result), repr(result))

    def _expect_event(self, expect: ExpectEvent) -> None:
        if expect.name is None:
            if self.events:
                raise self._failure(
                    "an event is waiting",
                    "no events",
                    ", ".join(_event_text(e) for e in self.events),
                )
            return
        if not self.events:
            raise self._failure("no event is waiting", _want_event(expect), "no events")
        event = self.events.popleft()
        error = getattr(event, "error", None)
        got_error = type(error).__name__ if error is not None else None
        error_names = [c.__name__ for c in type(error).__mro__] if error is not None else []
        if type(event).__name__ != expect.name or (
            expect.error is not None and expect.error not in error_names
        ):
            raise self._failure(
                "a different event came next",
                _want_event(expect),
                _event_text(event) if got_error else type(event).__name__,
            )

    def _expect_attribute(self, expect: ExpectAttribute) -> None:
        try:
            value = getattr(self.conn, expect.name)
        except AttributeError:
            raise self._failure(f"the connection has no attribute {expect.name!r}") from None
        if callable(value):
            raise self._failure(f"conn.{expect.name} is a method; call it with 'call'")
        if not _compare(expect.op, value, expect.value):
            raise self._failure(
                f"conn.{expect.name} is {value!r}",
                f"conn.{expect.name} {expect.op} {expect.value!r}",
                f"conn.{expect.name} == {value!r}",
            )

    # -- failures

    def _unexpected(self, item: tuple[float, bytes], before: str) -> ScenarioFailure:
        sent_at, data = item
        return self._failure(
            f"the connection sent a segment at {sent_at:.3f} that no line expected before {before}",
            "(no segment)",
            f"{_describe(data, self._outbound_frame(), '>')}",
            data,
        )

    def _failure(
        self,
        what: str,
        expected: str | None = None,
        actual: str | None = None,
        data: bytes | None = None,
    ) -> ScenarioFailure:
        step = self.step
        lines = [f"{self.scenario.name}:{step.lineno}: {what}"]
        if expected is not None:
            lines.append(f"  expected: {expected}")
        else:
            lines.append(f"  line:     {step.text}")
        if actual is not None:
            lines.append(f"  actual:   {actual}")
        if data is not None:
            lines.append(f"  tcpdump:  {_tcpdump(data, self.local, self.remote)}")
        if self.trace:
            lines.append("  recent trace:")
            lines += [f"    {line}" for line in self.trace[-TRACE_IN_FAILURE:]]
        return ScenarioFailure("\n".join(lines))


def _compare(op: str, actual: Any, expected: Any) -> bool:
    """``actual OP expected``; floats are equal when they agree to nine digits, so that
    ``conn.rto == 0.3`` holds for 0.30000000000000004."""
    if op in ("==", "!=") and isinstance(actual, float | int) and isinstance(expected, float):
        close = math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-12)
        return close if op == "==" else not close
    return _COMPARE[op](actual, expected)


def _event_text(event: Event) -> str:
    if isinstance(event, Reset | TimedOut):
        return f"{type(event).__name__}({type(event.error).__name__})"
    return type(event).__name__


def _want_event(expect: ExpectEvent) -> str:
    return f"{expect.name}({expect.error})" if expect.error else str(expect.name)
