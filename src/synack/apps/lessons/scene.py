"""The stage of a lesson on synack's own TCP: hosts on the virtual network, and a
recorder that turns everything they do into timeline records.

The lesson is the application: it opens, accepts, sends and closes, and the scene
records each segment the network carries (sent, delivered, lost), each state a
watched connection enters, each retransmission timeout, and the lesson's
narration. Virtual time and fixed seeds make every run record the same timeline.

Each host is attached through a thin wrapper (`_Stage`), an endpoint of the fake
network that hands everything to the host and then looks: it drains the events
of the connections the lesson watches (the lesson is their application), finds
the half-open connections a listener creates, and drops the segments a lesson
asked to lose, so a chosen segment is lost every run rather than by chance.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from synack.apps.lessons.model import (
    End,
    LessonRun,
    NoteRecord,
    Param,
    Record,
    SectionRecord,
    SegmentEvent,
    SegmentRecord,
    StateRecord,
    TimerRecord,
)
from synack.apps.lessons.trace import SeqTracker, ip_text
from synack.tcp import Config, Connection, State, StateChanged
from synack.tcp.events import Event
from synack.tcp.host import Host
from synack.testing import Datagram, FakeNetwork, Link, PacketEvent
from synack.wire.checksum import address_bytes
from synack.wire.tcp import HEADER, HEADER_SIZE, Flags, flags_text, parse_segment

# The names the course notes (and netstat) use; the rest are the RFC's with underscores.
_NOTES_NAMES = {State.SYN_RECEIVED: "SYN_RCVD"}

_LOST = {
    PacketEvent.LOST: "link",
    PacketEvent.QUEUE_DROP: "queue",
    PacketEvent.UNREACHABLE: "unreachable",
}


def state_name(state: State) -> str:
    """A state as the course notes write it: SYN_SENT, SYN_RCVD, FIN_WAIT_1..."""
    return _NOTES_NAMES.get(state, state.name)


@dataclass(frozen=True, slots=True)
class Seen:
    """What a drop rule is shown of a segment about to leave."""

    src: str  # end id
    dst: str
    flags: str  # tcpdump letters
    seq: int  # relative
    length: int
    tag: str


@dataclass(slots=True)
class _Drop:
    match: Callable[[Seen], bool]
    left: int | None  # how many more to drop; None: every match


class _Stage:
    """A host as the network sees it, with the scene looking over its shoulder."""

    def __init__(self, scene: Scene, host: Host, end: str) -> None:
        self.scene = scene
        self.host = host
        self.end = end

    def handle_segment(self, data: bytes | bytearray, src: bytes, now: float) -> None:
        self.host.handle_segment(data, src, now)
        self.scene._discover(self, data, src)
        self.scene._drain(now)

    def handle_timer(self, now: float) -> None:
        scene = self.scene
        mine = [c for c, w in scene._watched.items() if w.stage is self]
        before = {c: (c.counters["timeouts"], c.rto) for c in mine}
        self.host.handle_timer(now)
        for conn in mine:
            count = conn.counters["timeouts"]
            if count != before[conn][0]:
                w = scene._watched[conn]
                gave_up = conn.state is State.CLOSED
                scene.run.records.append(
                    TimerRecord(
                        scene.t(now),
                        w.end,
                        count,
                        round(before[conn][1], 6),
                        round(conn.rto, 6),
                        gave_up,
                        w.tag,
                    )
                )
        scene._drain(now)

    def segments_to_send(self, now: float) -> list[Datagram]:
        out = list(self.host.segments_to_send(now))
        scene = self.scene
        scene._drain(now)
        if not scene._drops:
            return out
        return [d for d in out if not scene._dropped(d, now)]

    def get_timer(self) -> float | None:
        return self.host.get_timer()


@dataclass(slots=True)
class _Watch:
    stage: _Stage
    end: str
    tag: str
    events: list[tuple[float, Event]]
    passive: bool


class Scene:
    """Two ends on a virtual network, and the timeline of what happens between them."""

    def __init__(
        self,
        name: str,
        ends: tuple[End, End],
        *,
        seed: int = 1,
        delay: float = 0.010,
        tag_connections: bool = False,
        run: LessonRun | None = None,
    ) -> None:
        # A later part of a lesson runs on a fresh network, added to the same run and
        # drawn after a time gap, so that its packets follow the earlier ones in a pcap.
        self.run = run if run is not None else LessonRun(name, ends, virtual_time=True)
        self.offset = 10.0 * (self.run.end_time() // 10 + 2) if run is not None else 0.0
        self._cursor = len(self.run.records)  # where `until` looks next
        self.net = FakeNetwork(seed=seed, link=Link(delay=delay))
        self.net.tap = self._tap
        self.tracker = SeqTracker()
        self._end_of: dict[bytes, str] = {}
        self._stages: dict[bytes, _Stage] = {}
        self._watched: dict[Connection, _Watch] = {}
        self._drops: list[_Drop] = []
        self._tag_connections = tag_connections
        self._tags: dict[tuple[bytes, int], str] = {}
        # How often each piece of sequence space was sent: a second time is a retransmission.
        self._sends: dict[tuple[bytes, int, bytes, int, int, int, int], int] = {}

    # ------------------------------------------------------------------ setting up

    def host(
        self,
        end: str,
        address: str,
        config: Config,
        *,
        app: Callable[[float], None] | None = None,
    ) -> Host:
        """A host at `address` standing for `end`, attached to the network."""
        host = Host(address, config)
        stage = _Stage(self, host, end)
        self._end_of[host.address] = end
        self._stages[host.address] = stage
        self.net.attach(host.address, stage, app=app)
        return host

    def alias(self, address: str, end: str) -> None:
        """Draw segments from and to `address` on `end`'s line (a helper that is not a Host)."""
        self._end_of[address_bytes(address)] = end

    def watch(self, conn: Connection, end: str) -> str:
        """Record `conn`'s states and keep its events (the lesson is its application).

        Returns the connection's tag ("#1"...) when the scene tags connections."""
        stage = self._stages[conn.local_ip]
        tag = self._tag_for(conn.local_ip, conn.local_port, conn.remote_ip, conn.remote_port)
        self._watched[conn] = _Watch(stage, end, tag, [], passive=False)
        self._drain(self.net.now)
        return tag

    def events(self, conn: Connection) -> list[tuple[float, Event]]:
        """The events of a watched connection so far, with their times."""
        return self._watched[conn].events

    def drop(self, match: Callable[[Seen], bool], count: int | None = 1) -> None:
        """Lose the next `count` segments that `match` (every one, with None) on the link."""
        self._drops.append(_Drop(match, count))

    # ------------------------------------------------------------------ narration

    def t(self, now: float | None = None) -> float:
        """A time for the records: virtual seconds, rounded to the microsecond."""
        return round(self.offset + (self.net.now if now is None else now), 6)

    def note(self, key: str, end: str | None = None, **params: Param) -> None:
        self.run.records.append(NoteRecord(self.t(), key, dict(params), end))

    def section(self, key: str, **params: Param) -> None:
        self.run.records.append(SectionRecord(self.t(), key, dict(params)))

    def mark(self, end: str, state: str, tag: str = "") -> None:
        """Write a state on an end that no connection reports (LISTEN, the first CLOSED)."""
        self.run.records.append(StateRecord(self.t(), end, state, tag))

    # ------------------------------------------------------------------ running

    def run_until(self, predicate: Callable[[], object], timeout: float, what: str) -> float:
        """Run until `predicate()` holds; `until` then looks only at records made after."""
        try:
            return self.net.run_until(predicate, timeout, what=what)
        finally:
            self._cursor = len(self.run.records)

    def run_for(self, seconds: float) -> None:
        self.net.run_for(seconds)
        self._drain(self.net.now)
        self._cursor = len(self.run.records)

    def until(self, match: Callable[[Record], bool], timeout: float, what: str) -> Record:
        """Run until there is a record that `match`es after the one the last `until`
        found (records already made count: one event often makes several)."""
        records = self.run.records
        found: list[Record] = []

        def made() -> bool:  # stays true once true: run_until asks again at the end
            if found:
                return True
            while self._cursor < len(records):
                r = records[self._cursor]
                self._cursor += 1
                if match(r):
                    found.append(r)
                    return True
            return False

        self.net.run_until(made, timeout, what=what)
        return found[0]

    def until_segment(
        self, match: Callable[[SegmentRecord], bool], timeout: float, what: str
    ) -> SegmentRecord:
        """`until` for a segment record."""
        r = self.until(lambda r: isinstance(r, SegmentRecord) and match(r), timeout, what)
        assert isinstance(r, SegmentRecord)
        return r

    def until_sent(self, src: str, flags: str, timeout: float = 10.0) -> SegmentRecord:
        """Run until `src` sends a segment with exactly these flags (tcpdump letters)."""
        return self.until_segment(
            lambda r: r.event == "sent" and r.src == src and r.flags == flags,
            timeout,
            f"{src} to send [{flags}]",
        )

    def until_state(self, end: str, state: str, timeout: float = 10.0) -> StateRecord:
        """Run until a connection at `end` enters `state` (the notes' name)."""
        r = self.until(
            lambda r: isinstance(r, StateRecord) and r.end == end and r.state == state,
            timeout,
            f"{end} to enter {state}",
        )
        assert isinstance(r, StateRecord)
        return r

    # ------------------------------------------------------------------ recording

    def _tag_for(self, a_ip: bytes, a_port: int, b_ip: bytes, b_port: int) -> str:
        """The tag of a connection: numbered by its client side, in order of appearance."""
        if not self._tag_connections:
            return ""
        client = (a_ip, a_port) if self._end_of.get(a_ip) == self.run.ends[0].id else (b_ip, b_port)
        tag = self._tags.get(client)
        if tag is None:
            tag = f"#{len(self._tags) + 1}"
            self._tags[client] = tag
        return tag

    def _discover(self, stage: _Stage, data: bytes | bytearray, src: bytes) -> None:
        """Watch the half-open connection a listener just made for a foreground peer."""
        if len(data) < HEADER_SIZE or src not in self._end_of:
            return
        sport, dport = HEADER.unpack_from(data)[:2]
        listener = stage.host.listeners.get(dport)
        if listener is None:
            return
        conn = listener.owns((src, sport))
        if conn is not None and conn not in self._watched:
            tag = self._tag_for(src, sport, stage.host.address, dport)
            self._watched[conn] = _Watch(stage, stage.end, tag, [], passive=True)

    def _drain(self, now: float) -> None:
        t = self.t(now)
        records = self.run.records
        for conn, w in self._watched.items():
            while (event := conn.next_event()) is not None:
                if isinstance(event, StateChanged):
                    if w.passive and event.new is State.LISTEN:
                        continue  # the listener's state, not news of this connection
                    records.append(StateRecord(t, w.end, state_name(event.new), w.tag))
                w.events.append((t, event))

    def _tap(
        self, now: float, event: PacketEvent, data: bytes | bytearray, src: bytes, dst: bytes
    ) -> None:
        if event is PacketEvent.SENT:
            self.run.records.append(self._record(now, "sent", data, src, dst))
        elif event is PacketEvent.DELIVERED:
            self.run.records.append(self._record(now, "delivered", data, src, dst))
        elif event in _LOST:
            self.run.records.append(self._record(now, "lost", data, src, dst, _LOST[event]))

    def _dropped(self, datagram: Datagram, now: float) -> bool:
        data, src, dst = datagram
        seen = self._seen(data, src, dst)
        for rule in self._drops:
            if rule.left != 0 and rule.match(seen):
                if rule.left is not None:
                    rule.left -= 1
                sent = self._record(now, "sent", data, src, dst)
                lost = self._record(now, "lost", data, src, dst, "link")
                self.run.records.extend((sent, lost))
                return True
        return False

    def _seen(self, data: bytes | bytearray, src: bytes, dst: bytes) -> Seen:
        """What a drop rule is shown (computed without counting the segment as sent)."""
        seg = parse_segment(data)
        isn = self.tracker.isn(src, seg.src_port, dst, seg.dst_port)
        base = seg.seq if isn is None or seg.flags & Flags.SYN else isn
        seq = (seg.seq - base) & 0xFFFFFFFF
        src_end = self._end_of.get(src, "")
        dst_end = self._end_of.get(dst, "")
        tag = self._tag_for(src, seg.src_port, dst, seg.dst_port) if src_end and dst_end else ""
        return Seen(src_end, dst_end, flags_text(seg.flags), seq, len(seg.payload), tag)

    def _record(
        self,
        now: float,
        event: SegmentEvent,
        data: bytes | bytearray,
        src: bytes,
        dst: bytes,
        reason: str = "",
    ) -> SegmentRecord:
        seg = parse_segment(data)
        seq, ack = self.tracker.relative(seg, src, dst)
        src_end = self._end_of.get(src, "")
        dst_end = self._end_of.get(dst, "")
        retransmission = False
        if seg.payload or seg.flags & (Flags.SYN | Flags.FIN):
            key = (
                src,
                seg.src_port,
                dst,
                seg.dst_port,
                seg.seq,
                len(seg.payload),
                int(seg.flags) & 3,
            )
            sends = self._sends.get(key, 0)
            if event == "sent":
                sends += 1
                self._sends[key] = sends
            retransmission = sends > 1
        background = not (src_end and dst_end)
        tag = "" if background else self._tag_for(src, seg.src_port, dst, seg.dst_port)
        sender = self._sender(src, seg.src_port, dst, seg.dst_port)
        srtt = None if sender is None else sender.srtt
        return SegmentRecord(
            t=self.t(now),
            event=event,
            src=src_end,
            dst=dst_end,
            flags=flags_text(seg.flags),
            seq=seq,
            ack=ack,
            length=len(seg.payload),
            window=seg.window,
            tag=tag,
            retransmission=retransmission,
            background=background,
            reason=reason,
            src_ip=ip_text(src),
            dst_ip=ip_text(dst),
            data=bytes(data),
            cwnd=None if sender is None else sender.cwnd,
            srtt=None if srtt is None else round(srtt, 6),
            inflight=None if sender is None else sender.unacked,
        )

    def _sender(self, src: bytes, sport: int, dst: bytes, dport: int) -> Connection | None:
        """The watched connection that sent a segment (None for a crowd's or a helper's)."""
        for conn in self._watched:
            if (
                conn.local_port == sport
                and conn.remote_port == dport
                and conn.local_ip == src
                and conn.remote_ip == dst
            ):
                return conn
        return None
