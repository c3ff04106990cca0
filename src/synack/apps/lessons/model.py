"""A lesson run as data: a timeline of records, and the verdict on the lesson's claim.

Lessons produce these; renderers consume them (the terminal ladder in `ladder.py`,
and `to_json` for anything else, such as a web page). Nothing here is worded in a
language: text is a catalogue key with parameters (`i18n.py`), so one run can be
shown in English and in Chinese alike.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Param = str | int | float
Params = dict[str, Param]
SegmentEvent = Literal["sent", "delivered", "lost"]


@dataclass(frozen=True, slots=True)
class End:
    """One of the two vertical lines of the ladder: a role and where it lives."""

    id: str  # "client" / "server": what records name in `src`, `dst` and `end`
    role: str  # catalogue key of its name ("end.client")
    address: str  # "198.18.0.1:40000", or just the host when it stands for many ports


@dataclass(frozen=True, slots=True)
class SegmentRecord:
    """A TCP segment on the virtual network: sent, delivered or lost on the way."""

    t: float
    event: SegmentEvent
    src: str  # end id
    dst: str
    flags: str  # tcpdump's letters: "S", "S.", "P.", "F."...
    seq: int  # relative to the sender's initial sequence number, as Wireshark shows it
    ack: int | None  # relative to the receiver's ISN; None when the ACK flag is off
    length: int  # payload bytes
    window: int
    tag: str = ""  # which connection, where one end holds several ("#2")
    retransmission: bool = False
    background: bool = False  # part of a crowd (a flood): counted, not drawn one by one
    reason: str = ""  # for "lost": "link" (the lesson dropped it), "unreachable"...
    src_ip: str = ""
    dst_ip: str = ""
    data: bytes = field(default=b"", repr=False)  # the segment's bytes, for pcap files
    # The sender's congestion state as the segment left (None: no watched connection sent
    # it), so a live view can plot cwnd, SRTT and bytes in flight on virtual time.
    cwnd: int | None = None
    srtt: float | None = None
    inflight: int | None = None

    kind: Literal["segment"] = "segment"


@dataclass(frozen=True, slots=True)
class ArrowRecord:
    """An application-level transfer between the ends (a send, a datagram) on real sockets."""

    t: float
    src: str
    dst: str
    label: str  # language-neutral: code or bytes, such as send(b'hello')
    lost: bool = False

    kind: Literal["arrow"] = "arrow"


@dataclass(frozen=True, slots=True)
class CallRecord:
    """A socket call at one end and what it returned (language-neutral code)."""

    t: float
    end: str
    label: str  # such as recv(1024) -> b'helloworld'

    kind: Literal["call"] = "call"


@dataclass(frozen=True, slots=True)
class StateRecord:
    """A state an end entered (named as the course notes and netstat name it: SYN_RCVD)."""

    t: float
    end: str
    state: str
    tag: str = ""

    kind: Literal["state"] = "state"


@dataclass(frozen=True, slots=True)
class TimerRecord:
    """A retransmission timer expired at an end after `rto` seconds; `next_rto` is the
    (backed-off) next one, unless the connection gave up."""

    t: float
    end: str
    count: int  # timeouts so far on this connection
    rto: float  # the timeout that expired
    next_rto: float
    gave_up: bool  # this timeout ended the connection (ETIMEDOUT)
    tag: str = ""

    kind: Literal["timer"] = "timer"


@dataclass(frozen=True, slots=True)
class NoteRecord:
    """Narration: a catalogue key and its parameters, optionally about one end."""

    t: float
    key: str
    params: Params = field(default_factory=dict)
    end: str | None = None

    kind: Literal["note"] = "note"


@dataclass(frozen=True, slots=True)
class SectionRecord:
    """The start of a part of the lesson (a heading; the ladder starts afresh)."""

    t: float
    key: str
    params: Params = field(default_factory=dict)

    kind: Literal["section"] = "section"


@dataclass(frozen=True, slots=True)
class FieldRow:
    """One header field of a packet laid out in bytes (the `layers` lesson)."""

    layer: str  # catalogue key of the layer ("layer.tcp")
    name: str  # catalogue key of the field ("field.tcp.seq")
    offset: int  # within the whole frame
    raw: bytes
    value: str  # language-neutral rendering of the value


@dataclass(frozen=True, slots=True)
class BytesRecord:
    """A packet shown as bytes, field by field, with the layer each belongs to."""

    t: float
    key: str  # catalogue key of its title
    fields: tuple[FieldRow, ...]
    params: Params = field(default_factory=dict)

    kind: Literal["bytes"] = "bytes"


Record = (
    SegmentRecord
    | ArrowRecord
    | CallRecord
    | StateRecord
    | TimerRecord
    | NoteRecord
    | SectionRecord
    | BytesRecord
)


@dataclass(frozen=True, slots=True)
class Check:
    """One piece of evidence for the claim, worded by a catalogue key."""

    key: str
    params: Params
    passed: bool


@dataclass(frozen=True, slots=True)
class Verdict:
    """The lesson's claim, whether it held, and the evidence it was judged on."""

    claim: str  # catalogue key
    checks: tuple[Check, ...]
    evidence: dict[str, Any]  # machine-readable facts, for tests and other renderers

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(check.passed for check in self.checks)


@dataclass(slots=True)
class LessonRun:
    """Everything one lesson produced."""

    name: str
    ends: tuple[End, End]
    virtual_time: bool  # times are the fake network's (the same every run)
    records: list[Record] = field(default_factory=list)
    verdict: Verdict | None = None

    def segments(
        self, event: str = "sent", *, background: bool | None = False
    ) -> list[SegmentRecord]:
        """The segment records of one kind (by default the foreground ones only)."""
        return [
            r
            for r in self.records
            if isinstance(r, SegmentRecord)
            and r.event == event
            and (background is None or r.background is background)
        ]

    def states(self, end: str, tag: str | None = None) -> list[str]:
        """The states an end went through, in order (of one connection, if `tag` is given)."""
        return [
            r.state
            for r in self.records
            if isinstance(r, StateRecord) and r.end == end and (tag is None or r.tag == tag)
        ]

    def end_time(self) -> float:
        """The time of the last record (0 for none)."""
        return max((r.t for r in self.records), default=0.0)

    def to_json(self) -> dict[str, Any]:
        """The run as plain data (segment bytes as hex), for JSON."""

        def record(r: Record) -> dict[str, Any]:
            d = asdict(r)
            if isinstance(r, SegmentRecord):
                d["data"] = r.data.hex()
            if isinstance(r, BytesRecord):
                for f in d["fields"]:
                    f["raw"] = f["raw"].hex()
            return d

        verdict = self.verdict
        return {
            "lesson": self.name,
            "virtual_time": self.virtual_time,
            "ends": [asdict(e) for e in self.ends],
            "records": [record(r) for r in self.records],
            "verdict": None
            if verdict is None
            else {
                "claim": verdict.claim,
                "passed": verdict.passed,
                "checks": [asdict(c) for c in verdict.checks],
                "evidence": verdict.evidence,
            },
        }
