"""Per-state test harness for the sans-IO connection, in the manner of smoltcp's TCP tests.

The test plays the peer. `SEND` and `RECV` are segment templates (wire `Segment`s)
that a test fills in with ``replace``; `send` injects a segment with a correct
checksum, `recv` returns what the connection transmits (checksums verified), and
`recv_nothing` asserts silence. Builders such as `established()` drive a fresh
connection into a state with real segments, never by poking its fields.

Time is virtual: each `Sock` carries its own ``now``; `fire` runs the next timer
at its deadline and `advance` lets time pass, running every timer on the way.

Numbers: our ISS is the real RFC 6528 ISN for the test four-tuple at time 0
(`LOCAL_ISS`, deterministic because the secret is fixed); the peer's is `REMOTE_ISS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from synack.tcp import Config, Connection, State
from synack.tcp.events import Event, Reset, StateChanged, TimedOut
from synack.tcp.isn import isn, ts_offset
from synack.wire.checksum import address_bytes
from synack.wire.seq import MASK
from synack.wire.tcp import Flags, Options, Segment, build_segment, parse_segment

LOCAL = ("192.0.2.1", 8080)
REMOTE = ("192.0.2.2", 40000)
LOCAL_IP = address_bytes(LOCAL[0])
REMOTE_IP = address_bytes(REMOTE[0])
SECRET = b"synack-per-state-tests".ljust(32, b".")
LOCAL_ISS = isn(SECRET, LOCAL_IP, LOCAL[1], REMOTE_IP, REMOTE[1], 0.0)
REMOTE_ISS = 3_000_000
TS_OFFSET = ts_offset(SECRET, LOCAL_IP, LOCAL[1], REMOTE_IP, REMOTE[1])
PEER_MSS = 1460
MSS = 1460  # what a plain connection (no timestamps) carries per full segment
WINDOW = 65535  # a plain connection's window: no scaling, default buffers

S, A, F, R, P = Flags.SYN, Flags.ACK, Flags.FIN, Flags.RST, Flags.PSH

# What the peer sends once synchronized: the next byte, acknowledging our SYN.
SEND = Segment(
    src_port=REMOTE[1],
    dst_port=LOCAL[1],
    seq=REMOTE_ISS + 1,
    ack=LOCAL_ISS + 1,
    flags=A,
    window=WINDOW,
)
# What a plain connection sends once synchronized.
RECV = Segment(
    src_port=LOCAL[1],
    dst_port=REMOTE[1],
    seq=LOCAL_ISS + 1,
    ack=REMOTE_ISS + 1,
    flags=A,
    window=WINDOW,
)


def seg(template: Segment, **changes: Any) -> Segment:
    """`replace` that also takes ``mss=``, ``wscale=``, ``sack_permitted=``, ``sack=``,
    ``ts=`` for the options, and masks sequence numbers to 32 bits."""
    option_names = {
        "mss": "mss",
        "wscale": "wscale",
        "sack_permitted": "sack_permitted",
        "sack": "sack_blocks",
        "ts": "timestamps",
    }
    opts = {option_names[k]: changes.pop(k) for k in list(changes) if k in option_names}
    out = replace(template, **changes)
    if opts:
        out.options = replace(template.options, **opts)
    if out.options.sack_blocks:
        out.options = replace(
            out.options,
            sack_blocks=tuple(
                (left & MASK, right & MASK) for left, right in out.options.sack_blocks
            ),
        )
    out.seq &= MASK
    out.ack &= MASK
    return out


def config(**changes: Any) -> Config:
    """A plain connection: no timestamps, SACK or window scaling unless asked for.

    Each option is tested on its own; the handshake tests cover the defaults.
    """
    base: dict[str, Any] = {
        "secret": SECRET,
        "timestamps": False,
        "sack": False,
        "window_scaling": False,
    }
    base.update(changes)
    return Config(**base)


@dataclass
class Sock:
    """A connection under test and its virtual clock."""

    conn: Connection
    now: float = 0.0
    events: list[Event] = field(default_factory=list)  # taken, not yet asserted
    states: list[State] = field(default_factory=list)  # every state entered, in order

    def at(self, now: float) -> Sock:
        assert now >= self.now, "virtual time never goes back"
        self.now = now
        return self


def state(s: Sock) -> State:
    """The connection's state (a call, so that type checkers do not narrow it between steps)."""
    return s.conn.state


def _take_events(s: Sock) -> None:
    while (event := s.conn.next_event()) is not None:
        if isinstance(event, StateChanged):
            s.states.append(event.new)
        else:
            s.events.append(event)


def send(s: Sock, segment: Segment) -> None:
    """Deliver `segment` from the peer, with its checksum filled in."""
    s.conn.handle_segment(build_segment(segment, src=REMOTE_IP, dst=LOCAL_IP), s.now)
    _take_events(s)


def send_raw(s: Sock, data: bytes) -> None:
    s.conn.handle_segment(data, s.now)
    _take_events(s)


def recv(s: Sock) -> list[Segment]:
    """Everything the connection transmits now, decoded (a bad checksum fails the test)."""
    out = []
    for data in s.conn.segments_to_send(s.now):
        segment = parse_segment(data, src=LOCAL_IP, dst=REMOTE_IP)
        assert (segment.src_port, segment.dst_port) == (LOCAL[1], REMOTE[1])
        segment.checksum = 0
        out.append(segment)
    _take_events(s)
    return out


def shape(x: Segment) -> tuple[int, int, int, int]:
    """Flags, seq, ack and length: what the state builders check (the window and the
    options depend on the config under test, and have tests of their own)."""
    return int(x.flags), x.seq & MASK, x.ack & MASK, len(x.payload)


def recv_nothing(s: Sock) -> None:
    got = recv(s)
    assert got == [], f"expected silence, the connection sent {got}"


def fire(s: Sock) -> list[Segment]:
    """Run the next timer at its deadline; returns what the connection sends then."""
    deadline = s.conn.get_timer()
    assert deadline is not None, "no timer is armed"
    s.now = max(s.now, deadline)
    s.conn.handle_timer(s.now)
    _take_events(s)
    return recv(s)


def advance(s: Sock, to: float, limit: int = 10_000) -> list[tuple[float, Segment]]:
    """Let time pass to `to`, running every timer at its deadline; what was sent, and when."""
    sent: list[tuple[float, Segment]] = []
    for _ in range(limit):
        deadline = s.conn.get_timer()
        if deadline is None or deadline > to:
            break
        sent += [(s.now if s.now > deadline else deadline, x) for x in fire(s)]
    else:
        raise AssertionError(f"more than {limit} timers before {to}")
    s.now = max(s.now, to)
    return sent


def events(s: Sock) -> list[str]:
    """Events since the last call, as text: "Connected", "Reset(ConnectionRefused)"."""
    _take_events(s)
    out = []
    for event in s.events:
        if isinstance(event, Reset | TimedOut):
            out.append(f"{type(event).__name__}({type(event.error).__name__})")
        else:
            out.append(type(event).__name__)
    s.events.clear()
    return out


def tsval(now: float) -> int:
    """Our TSval at `now`: the virtual clock in ms plus the connection's offset (RFC 7323 §5.4)."""
    return (int(now * 1000) + TS_OFFSET) & MASK


# ---------------------------------------------------------------------------- state builders

SYN_OPTIONS = Options(mss=PEER_MSS)


def closed(**cfg: Any) -> Sock:
    return Sock(Connection(LOCAL, REMOTE, config(**cfg)))


def listen(**cfg: Any) -> Sock:
    s = closed(**cfg)
    s.conn.listen()
    _take_events(s)
    return s


def syn_sent(**cfg: Any) -> Sock:
    """Our SYN is out (and consumed from the output)."""
    s = closed(**cfg)
    s.conn.connect(s.now)
    [syn] = recv(s)
    assert syn.flags == S and syn.seq == s.conn.iss & MASK
    return s


def syn_received(**cfg: Any) -> Sock:
    """Passive open: the peer's SYN arrived, our SYN-ACK is out."""
    s = listen(**cfg)
    send(s, seg(SEND, seq=REMOTE_ISS, ack=0, flags=S, mss=PEER_MSS))
    [synack] = recv(s)
    assert synack.flags == S | A and synack.seq == s.conn.iss & MASK
    return s


def established(peer: dict[str, Any] | None = None, rtt: float = 0.0, **cfg: Any) -> Sock:
    """Active open completed: SYN, SYN-ACK (`rtt` seconds later, with the options in
    `peer` besides the MSS: wscale=, sack_permitted=, ts=), ACK."""
    s = syn_sent(**cfg)
    s.at(rtt)
    send(s, seg(SEND, seq=REMOTE_ISS, flags=S | A, mss=PEER_MSS, **(peer or {})))
    assert [shape(x) for x in recv(s)] == [shape(RECV)]
    assert s.conn.state is State.ESTABLISHED
    events(s)
    return s


def established_passive(**cfg: Any) -> Sock:
    s = syn_received(**cfg)
    send(s, SEND)
    recv_nothing(s)
    assert s.conn.state is State.ESTABLISHED
    events(s)
    return s


def fin_wait_1(**cfg: Any) -> Sock:
    s = established(**cfg)
    s.conn.shutdown()
    assert [shape(x) for x in recv(s)] == [shape(seg(RECV, flags=F | A))]
    assert s.conn.state is State.FIN_WAIT_1
    return s


def fin_wait_2(**cfg: Any) -> Sock:
    s = fin_wait_1(**cfg)
    send(s, seg(SEND, ack=LOCAL_ISS + 2))
    recv_nothing(s)
    assert s.conn.state is State.FIN_WAIT_2
    return s


def closing(**cfg: Any) -> Sock:
    """Simultaneous close: the peer's FIN crossed ours."""
    s = fin_wait_1(**cfg)
    send(s, seg(SEND, flags=F | A))
    assert [shape(x) for x in recv(s)] == [shape(seg(RECV, seq=LOCAL_ISS + 2, ack=REMOTE_ISS + 2))]
    assert s.conn.state is State.CLOSING
    return s


def time_wait(**cfg: Any) -> Sock:
    s = fin_wait_2(**cfg)
    send(s, seg(SEND, flags=F | A, ack=LOCAL_ISS + 2))
    assert [shape(x) for x in recv(s)] == [shape(seg(RECV, seq=LOCAL_ISS + 2, ack=REMOTE_ISS + 2))]
    assert s.conn.state is State.TIME_WAIT
    return s


def close_wait(**cfg: Any) -> Sock:
    s = established(**cfg)
    send(s, seg(SEND, flags=F | A))
    assert [shape(x) for x in recv(s)] == [shape(seg(RECV, ack=REMOTE_ISS + 2))]
    assert s.conn.state is State.CLOSE_WAIT
    assert events(s) == ["EndOfStream"]
    return s


def last_ack(**cfg: Any) -> Sock:
    s = close_wait(**cfg)
    s.conn.shutdown()
    assert [shape(x) for x in recv(s)] == [shape(seg(RECV, flags=F | A, ack=REMOTE_ISS + 2))]
    assert s.conn.state is State.LAST_ACK
    return s


BUILDERS: dict[State, Callable[..., Sock]] = {
    State.CLOSED: closed,
    State.LISTEN: listen,
    State.SYN_SENT: syn_sent,
    State.SYN_RECEIVED: syn_received,
    State.ESTABLISHED: established,
    State.FIN_WAIT_1: fin_wait_1,
    State.FIN_WAIT_2: fin_wait_2,
    State.CLOSING: closing,
    State.TIME_WAIT: time_wait,
    State.CLOSE_WAIT: close_wait,
    State.LAST_ACK: last_ack,
}


ALL_STATES: list[State] = sorted(BUILDERS, key=lambda st: st.value)


@pytest.fixture(params=ALL_STATES, ids=str)
def any_state(request: pytest.FixtureRequest) -> Sock:
    """A connection in each of the eleven states in turn."""
    return BUILDERS[request.param]()
