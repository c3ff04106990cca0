"""The terminal renderer: a lesson run as a ladder diagram with narration beside it.

    time     client 198.18.0.1                    server 198.18.0.2:80
             |CLOSED                                           LISTEN|
      0.000s |SYN_SENT                                               |  narration...
      0.000s |-- SYN seq=0 len=0 -------------------------------->|
      0.010s |                                             SYN_RCVD|

Two vertical lines stand for the two ends; each segment is one arrow with its
flags, seq, ack and length; states are written inside the line of the end that
entered them; a lost segment's arrow stops at an X where it was dropped. The
ladder itself is ASCII (its characters are one column wide in every terminal,
CJK ones included); text in other scripts is padded by display width
(`unicodedata.east_asian_width`: W and F take two columns), so the lines stay
aligned in Chinese too. Colour is added only on a terminal, by the caller.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

from synack.apps.lessons.i18n import text
from synack.apps.lessons.model import (
    ArrowRecord,
    BytesRecord,
    CallRecord,
    LessonRun,
    NoteRecord,
    Record,
    SectionRecord,
    SegmentRecord,
    StateRecord,
    TimerRecord,
)
from synack.apps.lessons.trace import flag_names

TIME_WIDTH = 9  # "  12.345s"
LEFT = TIME_WIDTH + 1  # column of the left line
ARROW = 44  # columns between the two lines
RIGHT = LEFT + 1 + ARROW  # column of the right line
NARRATION = RIGHT + 3  # where narration starts
MIN_NARRATION = 24  # below this the narration goes under the ladder rows instead
DEFAULT_WIDTH = 110

# Closing punctuation that must not start a line (it stays with the character before).
_NO_LINE_START = set("，。、；：！？）」』】》”’,.;:!?)")


def char_width(ch: str) -> int:
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def display_width(s: str) -> int:
    """Columns `s` takes in a terminal."""
    return sum(char_width(ch) for ch in s)


def pad(s: str, width: int) -> str:
    """`s` cut or padded with spaces to exactly `width` columns."""
    out: list[str] = []
    used = 0
    for ch in s:
        w = char_width(ch)
        if used + w > width:
            break
        out.append(ch)
        used += w
    return "".join(out) + " " * (width - used)


def pad_left(s: str, width: int) -> str:
    """`s` right-aligned in `width` columns."""
    return " " * max(0, width - display_width(s)) + pad(s, min(width, display_width(s)))


def wrap(s: str, width: int) -> list[str]:
    """Wrap by display width: between words in English, between characters in Chinese
    (never putting closing punctuation at the start of a line)."""
    tokens: list[str] = []  # words, single CJK characters, and single spaces
    for ch in s:
        if ch == " ":
            tokens.append(" ")
        elif ch in _NO_LINE_START and tokens and tokens[-1] != " ":
            tokens[-1] += ch
        elif char_width(ch) == 2:
            tokens.append(ch)
        elif tokens and tokens[-1] != " " and char_width(tokens[-1][-1]) == 1:
            tokens[-1] += ch
        else:
            tokens.append(ch)
    lines: list[str] = []
    line = ""
    for token in tokens:
        if token == " ":
            if line:
                line += " "
            continue
        if line and display_width(line + token) > width:
            lines.append(line.rstrip(" "))
            line = ""
        while display_width(token) > width:  # a word longer than the line
            head = pad(token, width).rstrip(" ")
            lines.append(head)
            token = token[len(head) :]
        line += token
    if line.strip():
        lines.append(line.rstrip(" "))
    return lines or [""]


# A line of output: spans of (text, style); style "" is plain.
Span = tuple[str, str]


@dataclass(slots=True)
class Line:
    spans: list[Span] = field(default_factory=list)
    ladder: bool = False  # a row of the ladder (both vertical lines drawn)
    narrated: bool = False  # narration already sits beside this row
    table: bool = False  # part of a table of bytes
    state_row: tuple[float, int, str] | None = None  # (time, side, label) of a state row

    @property
    def plain(self) -> str:
        return "".join(s for s, _ in self.spans).rstrip(" ")

    def add(self, s: str, style: str = "") -> Line:
        self.spans.append((s, style))
        return self


STYLE = {
    "client": "cyan",
    "server": "magenta",
    "lost": "bold red",
    "state": "bold green",
    "timer": "yellow",
    "call": "bold",
    "time": "dim",
    "heading": "bold",
    "pass": "bold green",
    "fail": "bold red",
    "field": "",
    "hex": "cyan",
    "layer": "bold",
}


def segment_label(r: SegmentRecord, lang: str) -> str:
    """Flags, seq, ack and length: "SYN+ACK seq=0 ack=1 len=0"."""
    label = f"{flag_names_short(r.flags)} seq={r.seq}"
    if r.ack is not None:
        label += f" ack={r.ack}"
    label += f" len={r.length}"
    if r.tag:
        label = f"{r.tag} {label}"
    if r.retransmission:
        label = f"{text(lang, 'tag.retransmission')} {label}"
    return label


def flag_names_short(letters: str) -> str:
    """tcpdump letters to names; the ACK that rides on every segment after the SYN is
    kept, so "P." is "PSH+ACK" as Wireshark writes it."""
    bits = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, ".": 0x10, "U": 0x20, "E": 0x40, "W": 0x80}
    value = 0
    for ch in letters:
        value |= bits.get(ch, 0)
    return flag_names(value)


class Renderer:
    """Lays a run out as lines; `lines()` is what the CLI prints and the tests read."""

    def __init__(self, run: LessonRun, lang: str, width: int = DEFAULT_WIDTH) -> None:
        self.run = run
        self.lang = lang
        self.width = width
        self.side = {run.ends[0].id: 0, run.ends[1].id: 1}
        self.out: list[Line] = []
        self.narration_width = width - NARRATION
        self.beside = self.narration_width >= MIN_NARRATION
        self._need_header = True
        self._last_t: float | None = None  # time of the last row drawn

    def t(self, key: str, **params: object) -> str:
        return text(self.lang, key, **params)

    # ------------------------------------------------------------------ structure

    def lines(self) -> list[Line]:
        from synack.apps.lessons import lessons

        lesson = lessons()[self.run.name]
        self.heading(self.t(lesson.title), top=True)
        records = self.run.records
        for i, r in enumerate(records):
            if isinstance(r, SegmentRecord):
                if r.background or r.event == "delivered":
                    continue
                if r.event == "sent" and _dropped_next(r, records[i + 1 : i + 2]):
                    continue  # drawn once, as the lost arrow
                self.segment(r)
            elif isinstance(r, ArrowRecord):
                self.arrow(r)
            elif isinstance(r, StateRecord):
                self.state(r)
            elif isinstance(r, CallRecord):
                self.call(r)
            elif isinstance(r, TimerRecord):
                self.timer(r)
            elif isinstance(r, NoteRecord):
                self.narrate(self.t(r.key, **r.params), r.t)
            elif isinstance(r, SectionRecord):
                self.heading(self.t(r.key, **r.params))
            elif isinstance(r, BytesRecord):
                self.bytes_table(r)
        self.verdict()
        return self.out

    def heading(self, title: str, *, top: bool = False) -> None:
        if not top:
            self.out.append(Line())
        self.out.append(Line().add(f"== {title} ==", STYLE["heading"]))
        self._need_header = True  # drawn before the first row of the ladder below

    def header(self) -> None:
        left, right = self.run.ends
        roles = Line()
        roles.add(" " * LEFT)
        roles.add(pad(self.t(left.role), ARROW // 2), STYLE[left.id])
        roles.add(pad_left(self.t(right.role), ARROW + 2 - ARROW // 2), STYLE[right.id])
        addresses = Line()
        addresses.add(" " * LEFT)
        addresses.add(pad(left.address, ARROW // 2), STYLE[left.id])
        addresses.add(pad_left(right.address, ARROW + 2 - ARROW // 2), STYLE[right.id])
        self.out.extend((roles, addresses))
        self._need_header = False
        self.row("", [(" " * ARROW, "")])

    # ------------------------------------------------------------------ rows

    def time_text(self, t: float) -> str:
        if not self.run.virtual_time:
            return ""
        return f"{t:8.3f}s"

    def row(self, time: str, cell: list[Span], narration: str = "") -> Line:
        """One ladder row: time, left line, the cell between the lines, right line."""
        if self._need_header:
            self.header()
        line = Line(ladder=True)
        line.add(pad_left(time, TIME_WIDTH), STYLE["time"])
        line.add(" |")
        line.spans.extend(cell)
        line.add("|")
        if narration:
            line.add("  " + narration)
        self.out.append(line)
        return line

    def event_row(self, t: float, cell: list[Span]) -> Line:
        self._last_t = t
        return self.row(self.time_text(t), cell)

    def state(self, r: StateRecord) -> None:
        label = f"{r.tag} {r.state}" if r.tag else r.state
        side = self.side[r.end]
        prev = self.out[-1] if self.out else None
        # Two ends changing at the same moment share a row when the names fit.
        if prev is not None and prev.state_row is not None and not prev.narrated:
            t, other_side, other = prev.state_row
            if t == r.t and other_side != side:
                left, right = (other, label) if side == 1 else (label, other)
                if display_width(left) + display_width(right) + 2 <= ARROW:
                    self.out.pop()
                    self._state_line(r.t, left, right)  # full: no third name joins it
                    return
        line = self._state_line(r.t, label, "") if side == 0 else self._state_line(r.t, "", label)
        line.state_row = (r.t, side, label)

    def _state_line(self, t: float, left: str, right: str) -> Line:
        gap = ARROW - display_width(left) - display_width(right)
        return self.event_row(t, [(left, STYLE["state"]), (" " * gap, ""), (right, STYLE["state"])])

    def call(self, r: CallRecord) -> None:
        label = pad(r.label, min(display_width(r.label), ARROW)).rstrip(" ")
        gap = " " * (ARROW - display_width(label))
        if self.side[r.end] == 0:
            self.event_row(r.t, [(label, STYLE["call"]), (gap, "")])
        else:
            self.event_row(r.t, [(gap, ""), (label, STYLE["call"])])

    def timer(self, r: TimerRecord) -> None:
        label = f"RTO {r.rto:g}s! -> " + ("ETIMEDOUT" if r.gave_up else f"{r.next_rto:g}s")
        if r.tag:
            label = f"{r.tag} {label}"
        if self.side[r.end] == 0:
            cell = [("(" + label + ")", STYLE["timer"]), (" " * (ARROW - len(label) - 2), "")]
        else:
            cell = [(" " * (ARROW - len(label) - 2), ""), ("(" + label + ")", STYLE["timer"])]
        self.event_row(r.t, cell)

    def segment(self, r: SegmentRecord) -> None:
        style = STYLE["lost"] if r.event == "lost" else STYLE.get(r.src, "")
        self.event_row(
            r.t,
            self._arrow_cell(
                segment_label(r, self.lang),
                rightward=self.side.get(r.src, 0) == 0,
                lost=r.event == "lost",
                at_end=r.reason == "unreachable",
                style=style,
            ),
        )

    def arrow(self, r: ArrowRecord) -> None:
        style = STYLE["lost"] if r.lost else STYLE.get(r.src, "")
        self.event_row(
            r.t,
            self._arrow_cell(
                r.label, rightward=self.side[r.src] == 0, lost=r.lost, at_end=False, style=style
            ),
        )

    def _arrow_cell(
        self, label: str, *, rightward: bool, lost: bool, at_end: bool, style: str
    ) -> list[Span]:
        """`|-- label ------>|`, `|<------ label --|`, or a lost one: `|-- label ---X     |`."""
        label = pad(label, min(display_width(label), ARROW - 7)).rstrip(" ")
        body = f"-- {label} "
        if lost:
            reach = ARROW - 1 if at_end else max(display_width(body) + 3, ARROW * 3 // 5)
            shaft = body + "-" * (reach - display_width(body)) + "X"
            if rightward:
                return [(shaft, style), (" " * (ARROW - display_width(shaft)), "")]
            mirrored = "X" + "-" * (reach - display_width(body)) + f" {label} --"
            return [(" " * (ARROW - display_width(mirrored)), ""), (mirrored, style)]
        if rightward:
            return [(body + "-" * (ARROW - display_width(body) - 1) + ">", style)]
        tail = f" {label} --"
        return [("<" + "-" * (ARROW - display_width(tail) - 1) + tail, style)]

    # ------------------------------------------------------------------ narration

    def narrate(self, s: str, t: float) -> None:
        """Narration beside the ladder: on the row before it if that row has none yet and
        nothing has happened since; otherwise on rows of its own, starting with its time."""
        prev = self.out[-1] if self.out else None
        if not self.beside or (prev is not None and prev.table):
            for piece in wrap(s, max(20, self.width - 4)):
                self.out.append(Line(table=prev is not None and prev.table).add("    " + piece))
            return
        pieces = wrap(s, self.narration_width)
        same_moment = t == self._last_t or not self.run.virtual_time
        if prev is not None and prev.ladder and not prev.narrated and same_moment:
            prev.add("  " + pieces[0])
            prev.narrated = True
            pieces = pieces[1:]
        elif not same_moment:
            self.row(self.time_text(t), [(" " * ARROW, "")], pieces[0]).narrated = True
            self._last_t = t
            pieces = pieces[1:]
        for piece in pieces:
            self.row("", [(" " * ARROW, "")], piece).narrated = True

    # ------------------------------------------------------------------ bytes

    def bytes_table(self, r: BytesRecord) -> None:
        self.out.append(Line(table=True))
        for piece in wrap(self.t(r.key, **r.params), self.width):
            self.out.append(Line(table=True).add(piece, STYLE["heading"]))
        name_width = max(display_width(self.t(f.name)) for f in r.fields) + 2
        for f in r.fields:
            shown = f.raw[:12]
            hexes = " ".join(f"{b:02x}" for b in shown) + (" .." if len(f.raw) > 12 else "")
            line = Line(table=True)
            line.add(f"    {f.offset:04x}  ")
            line.add(pad(hexes, 39), STYLE["hex"])
            line.add(pad(self.t(f.name), name_width), STYLE["field"])
            line.add(f.value)
            self.out.append(line)

    # ------------------------------------------------------------------ verdict

    def verdict(self) -> None:
        v = self.run.verdict
        if v is None:
            return
        self.out.append(Line())
        if v.passed:
            mark, style, key = "✓", STYLE["pass"], "verdict.holds"
        else:
            mark, style, key = "✗", STYLE["fail"], "verdict.fails"
        first, *rest = wrap(self.t(key, claim_key=v.claim), self.width - 2)
        self.out.append(Line().add(f"{mark} {first}", style))
        for piece in rest:
            self.out.append(Line().add(f"  {piece}", style))
        for check in v.checks:
            mark = "✓" if check.passed else "✗"
            first, *rest = wrap(self.t(check.key, **check.params), self.width - 6)
            self.out.append(
                Line()
                .add(f"  {mark} ", STYLE["pass"] if check.passed else STYLE["fail"])
                .add(first)
            )
            for piece in rest:
                self.out.append(Line().add(f"    {piece}"))


def _dropped_next(sent: SegmentRecord, following: list[Record]) -> bool:
    """Whether the record after `sent` is the same segment lost at the same moment."""
    return bool(following) and (
        isinstance(lost := following[0], SegmentRecord)
        and lost.event == "lost"
        and lost.t == sent.t
        and lost.data == sent.data
    )


def render(run: LessonRun, lang: str, width: int = DEFAULT_WIDTH) -> list[Line]:
    return Renderer(run, lang, width).lines()
