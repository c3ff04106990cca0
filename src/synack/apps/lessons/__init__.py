"""`synack lesson`: each claim of the course notes, made to happen and checked.

A lesson sets a situation up, makes the thing happen -- on synack's own TCP over the
virtual-time network where timing matters (every segment and state the same on every
run), on real loopback sockets where the lesson is about the socket API -- and
returns a `LessonRun`: a timeline of records and a verdict on its claim. Renderers
draw the run (`ladder.py` for the terminal); the run itself is plain data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Literal

from synack.apps.lessons.model import LessonRun


@dataclass(frozen=True, slots=True)
class Lesson:
    name: str
    title: str  # catalogue key
    summary: str  # catalogue key
    setting: Literal["virtual", "loopback"]  # synack's TCP on virtual time, or real sockets
    run: Callable[[], LessonRun]
    tcp: bool = True  # False for a lesson with no TCP at all: no segments for --pcap


NAMES = (
    "layers",
    "handshake",
    "close",
    "time-wait",
    "retransmit",
    "sticky",
    "backlog",
    "syn-flood",
    "udp",
    "many-clients",
    "download",
)


@cache
def lessons() -> dict[str, Lesson]:
    """The lessons by name, in teaching order (imported on first use, so the CLI starts fast)."""
    from synack.apps.lessons import closing as closing
    from synack.apps.lessons import handshake as handshake
    from synack.apps.lessons import layers as layers
    from synack.apps.lessons import queues as queues
    from synack.apps.lessons import retransmit as retransmit
    from synack.apps.lessons import streams as streams
    from synack.apps.lessons import udp as udp

    found = [
        Lesson("layers", "layers.title", "layers.summary", "virtual", layers.run),
        Lesson("handshake", "hs.title", "hs.summary", "virtual", handshake.run),
        Lesson("close", "close.title", "close.summary", "virtual", closing.run_close),
        Lesson("time-wait", "tw.title", "tw.summary", "virtual", closing.run_time_wait),
        Lesson("retransmit", "rt.title", "rt.summary", "virtual", retransmit.run),
        Lesson("sticky", "sticky.title", "sticky.summary", "loopback", streams.run_sticky),
        Lesson("backlog", "bl.title", "bl.summary", "virtual", queues.run_backlog),
        Lesson("syn-flood", "sf.title", "sf.summary", "virtual", queues.run_syn_flood),
        Lesson("udp", "udp.title", "udp.summary", "loopback", udp.run, tcp=False),
        Lesson("many-clients", "mc.title", "mc.summary", "loopback", streams.run_many_clients),
        Lesson("download", "dl.title", "dl.summary", "loopback", streams.run_download),
    ]
    assert tuple(lesson.name for lesson in found) == NAMES
    return {lesson.name: lesson for lesson in found}


__all__ = ["NAMES", "Lesson", "LessonRun", "lessons"]
