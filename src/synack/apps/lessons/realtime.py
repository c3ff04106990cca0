"""Recording a lesson that runs on real loopback sockets.

The timeline records the same kinds of things as on the virtual network, at the
level the socket API shows them: what each end sent (arrows), the calls it made and
what they returned, and the narration. Times are real and differ from run to run,
so the ladder draws no time column for these lessons; what happened, in what order,
and the verdict are the same every run.
"""

from __future__ import annotations

import time

from synack.apps.lessons.model import (
    ArrowRecord,
    CallRecord,
    End,
    LessonRun,
    NoteRecord,
    Param,
    SectionRecord,
)


class Tape:
    """A lesson run recorded as it happens."""

    def __init__(self, name: str, ends: tuple[End, End]) -> None:
        self.run = LessonRun(name, ends, virtual_time=False)
        self._start = time.monotonic()

    def t(self) -> float:
        return round(time.monotonic() - self._start, 6)

    def arrow(self, src: str, dst: str, label: str, *, lost: bool = False) -> None:
        self.run.records.append(ArrowRecord(self.t(), src, dst, label, lost))

    def call(self, end: str, label: str) -> None:
        self.run.records.append(CallRecord(self.t(), end, label))

    def note(self, key: str, end: str | None = None, **params: Param) -> None:
        self.run.records.append(NoteRecord(self.t(), key, dict(params), end))

    def section(self, key: str, **params: Param) -> None:
        self.run.records.append(SectionRecord(self.t(), key, dict(params)))
