"""The fast paths change nothing anyone can see.

`Config.header_prediction=False` sends every arriving segment down the full path of
RFC 9293 §3.10.7.4, builds every outgoing segment with wire's general builder, and
skips the cheap "nothing to send" answer. Two copies of the same system, identical but
for that flag, get the same inputs; after every input they must have emitted the same
segment bytes, reported the same events (``next_event()``), returned the same data,
and show the same ``info()``, state and next deadline:

* whole worlds on the fake network: a connected pair driven by a random program of
  sends, receives, shutdowns, closes and time passing, over a seeded link that loses,
  duplicates, reorders and corrupts;
* request/response worlds: small messages answered one at a time, the case of
  `_send_small` (a write with nothing in flight) and `_ack_all` (an ACK of everything
  sent), with the writes, pauses and losses that send them to the full path;
* single connections in ESTABLISHED fed the same segment bytes, made to hit each
  branch of header prediction: in-order data, a pure ACK of new data, duplicate ACKs,
  window updates, segments out of the window, stale and missing timestamps, bad
  checksums, and flags prediction leaves to the full path; and flights acknowledged
  whole, with and without an RTT sample.

Beyond what a user sees, the whole control block must match too, so that a shortcut
that forgets a variable (a probe count, TS.Recent, SND.WL1) fails at the step where it
does, not many steps later or never. Examples are derandomized (as in test_fuzz.py),
so the suite is deterministic.
"""

from __future__ import annotations

import random
from collections import deque
from enum import Enum
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import synack.tcp.connection as connection_module
from synack.tcp import Config, Connection, TCPError
from synack.tcp.events import Event, Reset, TimedOut
from synack.testing import FakeNetwork, Link, NetworkTimeout, connected_pair
from synack.wire.seq import MASK
from synack.wire.tcp import HEADER_SIZE, Flags, Segment, build_segment, fill_checksum

from .conftest import LOCAL_IP, REMOTE_IP, SEND, Sock, established, seg

EQUIVALENCE = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,  # the same examples on every run
    database=None,
    # No "explain" phase: replaying a long failing program under a tracer takes minutes.
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

SECRET = b"fast-path-equivalence".ljust(32, b".")
# Random payload bytes (a zero payload would make checksums trivially agree).
POOL = random.Random(10).randbytes(1 << 17)
# The peer's byte stream: the byte at sequence number s is STREAM[s % PERIOD], so that
# overlapping segments agree (2**32 is a multiple of PERIOD).
PERIOD = 1 << 16
STREAM = POOL[:PERIOD] * 2


def describe(event: Event) -> tuple[str, ...]:
    """An event as comparable data (errors are exceptions, which compare by identity)."""
    if isinstance(event, Reset | TimedOut):
        return (type(event).__name__, type(event.error).__name__, str(event.error))
    return (repr(event),)


# Attributes that differ by design: the config (the flag), the flag's copy, the host's hook.
NOT_STATE = {"config", "_prediction", "_wake", "_events"}


def plain(value: object) -> object:
    """`value` as comparable data: objects (the congestion controller, the RTT estimator,
    range sets) by their attributes, exceptions by type and message."""
    if isinstance(value, BaseException):
        return (type(value).__name__, str(value))
    if isinstance(value, list | tuple | deque):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    names = [n for cls in type(value).__mro__ for n in getattr(cls, "__slots__", ())]
    if hasattr(value, "__dict__"):
        names += list(vars(value))
    if names and not isinstance(value, Enum):
        return (type(value).__name__, {n: plain(getattr(value, n, None)) for n in names})
    return value


def observe(conn: Connection) -> dict[str, Any]:
    """Everything a user of `conn` can see, draining its events; and, stricter than
    that, the whole control block, so that a shortcut that forgets a variable the user
    would only notice much later (a probe count, a timestamp) fails at once."""
    events = []
    while (event := conn.next_event()) is not None:
        events.append(describe(event))
    return {
        "events": events,
        "info": conn.info(),
        "state": conn.state,
        "timer": conn.get_timer(),
        "send_space": conn.send_space,
        "receive_available": conn.receive_available,
        "tcb": {k: plain(v) for k, v in vars(conn).items() if k not in NOT_STATE},
    }


def user_call(conn: Connection, call: tuple[Any, ...], data: bytes) -> object:
    """Apply one user call; what it returns, or the TCPError it raised."""
    kind = call[0]
    try:
        if kind == "send":
            return conn.send(data)
        if kind == "send and shutdown":  # the FIN rides on the last queued segment
            sent = conn.send(data)
            conn.shutdown()
            return sent
        if kind == "receive":
            return conn.receive(call[2])
        if kind == "shutdown":
            conn.shutdown()
        elif kind == "close":
            conn.close()
        return None
    except TCPError as error:
        return ("raised", type(error).__name__, str(error))


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Where `a` and `b` differ, as paths into them, with both values (shortened)."""
    if a == b:
        return []
    if isinstance(a, dict) and isinstance(b, dict):
        return [
            d for k in a.keys() | b.keys() for d in differences(a.get(k), b.get(k), f"{path}.{k}")
        ]
    if isinstance(a, list | tuple) and isinstance(b, list | tuple) and len(a) == len(b):
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in differences(x, y, f"{path}[{i}]")
        ]
    return [f"{path}: {a!r:.300} != {b!r:.300}"]


def assert_same(step: object, a: Any, b: Any) -> None:
    if a != b:
        diff = "\n  ".join(differences(a, b)[:20])
        raise AssertionError(f"prediction on (left) and off differ after {step!r}:\n  {diff}")


# ---------------------------------------------------------------------------- whole worlds


# Packet events after which an example stops (both worlds at the same event). Some
# programs end in an ACK war that would run on for the rest of the virtual time: both
# ends in FIN-WAIT-1 with full receive buffers, each FIN outside the other's zero
# window, each ACK answered with an ACK; link duplication multiplies the loops.
FLOOD = 20_000


class World:
    """Two hosts on a fake network with a connected pair; every packet event recorded."""

    def __init__(self, prediction: bool, changes: dict[str, Any], link: Link, seed: int) -> None:
        self.net = FakeNetwork(seed=seed, link=Link(delay=link.delay))
        self.wire: list[tuple[float, str, bytes, bytes, bytes]] = []
        self.seen = 0  # packet events observed so far
        self.net.tap = lambda now, event, data, src, dst: self.wire.append(
            (now, str(event), bytes(data), src, dst)
        )
        config = Config(secret=SECRET, header_prediction=prediction, **changes)
        self.conns = connected_pair(self.net, config)
        self.net.set_default_link(link)

    def run(self, seconds: float) -> None:
        """`run_for`, but stop once the example has put FLOOD packet events on the wire."""
        deadline = self.net.now + seconds
        try:
            self.net.run_until(lambda: self.events > FLOOD, seconds)
        except NetworkTimeout:
            self.net.run_for(max(deadline - self.net.now, 0.0))  # only time is left to pass

    @property
    def events(self) -> int:
        return self.seen + len(self.wire)

    def observe(self) -> dict[str, Any]:
        wire = self.wire[:]
        self.seen += len(wire)
        self.wire.clear()
        return {"now": self.net.now, "wire": wire, "conns": [observe(c) for c in self.conns]}


FLAVOURS: list[dict[str, Any]] = [
    {},  # Linux's defaults: timestamps, SACK, window scaling, CUBIC
    {"timestamps": False, "sack": False, "window_scaling": False, "congestion_control": "newreno"},
    {"checksum": False},
    {"timestamps": False, "mss": 1000, "no_delay": True, "delayed_ack": False},
    # Small buffers: windows close and open, zero-window probes, SWS avoidance.
    {"send_buffer": 5000, "receive_buffer": 5000, "mss": 536, "window_scaling": False},
    {"keepalive": True, "keepalive_idle": 0.5, "keepalive_interval": 0.2, "keepalive_count": 3},
    # Full segments gathered (header and payload apart) by the fast path, joined by the
    # host for the fake network: the same bytes on the wire as the full path's.
    {"gather_from": 1000},
]

links = st.builds(
    Link,
    delay=st.sampled_from([0.005, 0.0005, 0.03]),
    jitter=st.sampled_from([0.0, 0.002]),
    loss=st.sampled_from([0.02, 0.0, 0.1]),
    duplicate=st.sampled_from([0.0, 0.05]),
    reorder=st.sampled_from([0.0, 0.1]),
    corrupt=st.sampled_from([0.0, 0.03]),
)
sides = st.integers(0, 1)
sizes = st.sampled_from([60_000, 30_000, 14_480, 5000, 1448, 1449, 700, 1]) | st.integers(1, 60_000)
# Weighted towards traffic: a close or shutdown ends a direction for the rest.
KINDS_OF_CALL = ["send"] * 6 + ["receive"] * 4 + ["run"] * 4 + ["shutdown", "close"]
KINDS_OF_CALL += ["send and shutdown"]


@st.composite
def user_calls(draw: st.DrawFn) -> tuple[Any, ...]:
    kind = draw(st.sampled_from(KINDS_OF_CALL))
    if kind == "run":  # milliseconds
        return (kind, draw(st.sampled_from([1, 10, 50, 200, 1000]) | st.integers(0, 1500)))
    side = draw(sides)
    if kind.startswith("send"):
        return (kind, side, draw(sizes))
    if kind == "receive":
        return (kind, side, draw(st.sampled_from([-1, -1, 1, 1000]) | st.integers(0, 20_000)))
    return (kind, side)


@EQUIVALENCE
@given(
    st.sampled_from(range(len(FLAVOURS))),
    links,
    st.integers(0, 1 << 16),
    st.lists(user_calls(), min_size=10, max_size=40),
)
def test_worlds_with_and_without_prediction_are_indistinguishable(
    flavour: int, link: Link, seed: int, program: list[tuple[Any, ...]]
) -> None:
    run_both(FLAVOURS[flavour], link, seed, program)


def run_both(
    changes: dict[str, Any], link: Link, seed: int, program: list[tuple[Any, ...]]
) -> None:
    """Run `program` in a world with the fast paths and one without; compare after each step."""
    fast = World(True, changes, link, seed)
    slow = World(False, changes, link, seed)
    assert_same("the handshake", fast.observe(), slow.observe())
    offset = 0
    for step, call in enumerate([*program, ("run", 3000)]):
        results: list[object] = []
        for world in (fast, slow):
            if call[0] == "run":
                world.run(call[1] / 1000)
                results.append(None)
            else:
                data = POOL[offset : offset + call[2]] if call[0].startswith("send") else b""
                results.append(user_call(world.conns[call[1]], call, data))
                world.net.run_for(0.0)  # hand what the call produced to the network
        if call[0].startswith("send"):
            offset = (offset + call[2]) % (len(POOL) // 2)
        assert_same((step, call), results[0], results[1])
        assert_same((step, call), fast.observe(), slow.observe())
        if fast.events > FLOOD:
            break


# Request/response: one side writes a message, the other reads it and answers, each
# write at most a segment or just over (`Connection._send_small`'s case and its edges),
# on links mostly lossless (the case it is for) and sometimes not (the fallbacks), with
# pauses past the RTO (the idle restart it leaves to the full path).
RR_FLAVOURS = [*FLAVOURS, {"no_delay": True}, {"congestion_control": "bbr"}]
rr_links = st.builds(
    Link,
    delay=st.sampled_from([0.0005, 0.005, 0.03]),
    jitter=st.sampled_from([0.0, 0.002]),
    loss=st.sampled_from([0.0, 0.0, 0.02]),
    duplicate=st.sampled_from([0.0, 0.0, 0.05]),
    reorder=st.sampled_from([0.0, 0.0, 0.1]),
)
rr_sizes = st.sampled_from([1, 100, 1024, 1447, 1448, 1449, 3000]) | st.integers(1, 1448)
pauses = st.sampled_from([0, 1, 5, 50, 300, 1500])  # milliseconds


@st.composite
def exchange(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    """One request and its response, as user calls (either side may ask)."""
    asker = draw(sides)
    return [
        ("send", asker, draw(rr_sizes)),
        ("run", draw(pauses)),
        ("receive", 1 - asker, -1),
        ("send", 1 - asker, draw(rr_sizes)),
        ("run", draw(pauses)),
        ("receive", asker, -1),
    ]


@EQUIVALENCE
@given(
    st.sampled_from(range(len(RR_FLAVOURS))),
    rr_links,
    st.integers(0, 1 << 16),
    st.lists(exchange(), min_size=3, max_size=12),
)
def test_request_response_with_and_without_prediction_is_indistinguishable(
    flavour: int, link: Link, seed: int, exchanges: list[list[tuple[Any, ...]]]
) -> None:
    run_both(RR_FLAVOURS[flavour], link, seed, [call for ex in exchanges for call in ex])


def test_request_response_takes_the_short_paths(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The request/response comparison means something only if the fast world sends
    every message by `_send_small` and takes the ACK each carries by `_ack_all` (and
    the slow world never does)."""
    taken = {"tried": 0, "sent": 0, "acked": 0}
    send_small = Connection._send_small
    ack_all = Connection._ack_all

    def counting(self: Connection, now: float) -> list[bytes] | None:
        out = send_small(self, now)
        taken["tried"] += 1
        taken["sent"] += out is not None
        return out

    def counting_acks(self: Connection, ack: int, tsecr: int, now: float) -> None:
        taken["acked"] += 1
        ack_all(self, ack, tsecr, now)

    monkeypatch.setattr(Connection, "_send_small", counting)
    monkeypatch.setattr(Connection, "_ack_all", counting_acks)
    for prediction in (True, False):
        taken.update(tried=0, sent=0, acked=0)
        world = World(prediction, {"no_delay": True}, Link(delay=0.001), 1)
        client, server = world.conns
        for i in range(50):
            request = POOL[i * 1024 : (i + 1) * 1024]
            client.send(request)
            world.run(0.005)
            assert server.receive() == request
            server.send(request[::-1])
            world.run(0.005)
            assert client.receive() == request[::-1]
        if prediction:
            assert taken["sent"] == 100
            assert taken["acked"] == 99  # every message but the last acknowledges one
        else:
            assert taken == {"tried": 0, "sent": 0, "acked": 0}


def test_each_configuration_takes_its_own_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison means something only if the fast world takes the shortcuts and
    the slow world never does: count them through a lossless bulk transfer."""
    taken = {"tried": 0, "predicted": 0, "pack_burst": 0, "pack_ack": 0}
    predicted = Connection._predicted

    def counting_predicted(self: Connection, data: bytes, now: float) -> bool:
        hit = predicted(self, data, now)
        taken["tried"] += 1
        taken["predicted"] += hit
        return hit

    def counting(name: str) -> Any:
        original = getattr(connection_module, name)

        def wrapper(*args: Any) -> Any:
            taken[name] += 1
            return original(*args)

        return wrapper

    monkeypatch.setattr(Connection, "_predicted", counting_predicted)
    for name in ("pack_burst", "pack_ack"):
        monkeypatch.setattr(connection_module, name, counting(name))
    for prediction in (True, False):
        for key in taken:
            taken[key] = 0
        world = World(prediction, {}, Link(delay=0.001), 1)
        client, server = world.conns
        client.send(POOL)
        client.shutdown()
        received = bytearray()
        while not server.at_eof:
            world.net.run_for(0.01)
            received += server.receive()
        assert received == POOL
        if prediction:
            assert taken["predicted"] > len(POOL) // 1448 // 2
            assert taken["pack_burst"] > 0 and taken["pack_ack"] > 0
        else:
            assert taken == dict.fromkeys(taken, 0)


# ---------------------------------------------------------------------------- single segments

NEGOTIATED = {"timestamps": True, "sack": True, "window_scaling": True}
PEER_TS = 50_000


def pair(negotiated: bool, changes: dict[str, Any]) -> tuple[Sock, Sock]:
    """Two connections in ESTABLISHED, the same but for header prediction."""
    socks = []
    for prediction in (True, False):
        cfg = {**changes, "header_prediction": prediction}
        if negotiated:
            cfg.update(NEGOTIATED)
            peer = {"wscale": 7, "sack_permitted": True, "ts": (PEER_TS, 0)}
        else:
            peer = {}
        socks.append(established(peer=peer, **cfg))
    return socks[0], socks[1]


# What the peer sends, by the branch of header prediction it is aimed at.
KINDS = (
    ["data"] * 8  # the next in-order segment: predicted
    + ["ack"] * 6  # a pure ACK of new data: predicted
    + ["duplicate ACK", "window update", "window update ahead", "out of order", "fill", "old"]
    + ["beyond the window"]
    + ["stale timestamp", "no timestamp", "bad checksum", "ack beyond SND.MAX", "old ack"]
    + ["SACK", "other flags", "anything", "truncated", "bad data offset", "malformed option"]
)


@st.composite
def peer_segment(
    draw: st.DrawFn, conn: Connection, negotiated: bool, peer_ts: int, now: float = 0.0
) -> tuple[str, Segment]:
    """A segment from the peer, placed relative to the connection's variables so that it
    hits one of header prediction's branches (or just misses it), and what it aims at."""
    info = conn.info()
    rcv_nxt, una, nxt = info["rcv_nxt"], info["snd_una"], info["snd_nxt"]
    flight = (nxt - una) & MASK
    kind = draw(st.sampled_from(KINDS))
    seq = rcv_nxt
    ack = una + draw(st.integers(0, flight))
    flags = draw(st.sampled_from([Flags.ACK, Flags.ACK, Flags.ACK | Flags.PSH]))
    window = 0xFFFF
    size = 0
    # The echo: none, or one of our recent TSvals (an RTT sample, which the flight's
    # size weighs: RFC 7323 Appendix G).
    ours = (int(now * 1000) + conn._ts_offset) & MASK
    echo = draw(st.sampled_from([0, ours, (ours - 30) & MASK]))
    ts: tuple[int, int] | None = (peer_ts, echo) if negotiated else None
    sack: tuple[tuple[int, int], ...] = ()
    if kind == "data":
        size = draw(st.sampled_from([1448, 1448, 1]) | st.integers(1, 1448))
    elif kind == "ack":
        ack = una + draw(st.sampled_from([flight, 1]) | st.integers(1, max(flight, 1)))
    elif kind == "duplicate ACK":
        ack = una
    elif kind == "window update":
        ack = una
        window = draw(st.sampled_from([0, 1, 1000, 0xFFFF]) | st.integers(0, 0xFFFF))
    elif kind == "window update ahead":  # sent after data that is still missing
        seq += draw(st.integers(1, 3000))
        window = draw(st.integers(0, 0xFFFF))
    elif kind == "out of order":
        seq += draw(st.integers(1, 3000))
        size = draw(st.integers(1, 1448))
    elif kind == "fill":  # covers every hole "out of order" can leave
        size = 4500
    elif kind == "old":
        seq -= draw(st.integers(1, 3000))
        size = draw(st.integers(0, 1448))
    elif kind == "beyond the window":
        size = draw(st.integers(0, 1448))
        seq += info["rcv_wnd"] - draw(st.integers(0, size))
    elif kind == "stale timestamp":
        size = draw(st.integers(0, 1448))
        ts = ((peer_ts - draw(st.sampled_from([1, 1 << 20, (1 << 31) - 1]))) & MASK, 0)
    elif kind == "no timestamp":
        size = draw(st.sampled_from([0, 0, 1448]) | st.integers(0, 1448))
        ts = None if negotiated else (peer_ts, 0)
    elif kind == "ack beyond SND.MAX":
        ack = nxt + draw(st.integers(1, 1 << 20))
    elif kind == "old ack":
        ack = una - draw(st.integers(1, 1 << 20))
    elif kind == "SACK":
        left = una + draw(st.integers(0, flight))
        sack = ((left, left + draw(st.integers(1, 3000))),)
    elif kind == "other flags":
        size = draw(st.integers(0, 100))
        flags = draw(
            st.sampled_from([Flags.ACK | Flags.FIN, Flags.ACK | Flags.URG, Flags.ACK | Flags.ECE])
            | st.sampled_from([Flags.RST, Flags.ACK | Flags.RST, Flags.SYN, Flags(0)])
        )
    elif kind == "anything":
        seq = draw(st.integers(0, MASK))
        ack = draw(st.integers(0, MASK))
        flags = Flags(draw(st.integers(0, 255)))
        window = draw(st.integers(0, 0xFFFF))
        size = draw(st.integers(0, 2000))
    start = seq % PERIOD
    segment = seg(
        SEND,
        seq=seq,
        ack=ack,
        flags=flags,
        window=window,
        payload=STREAM[start : start + size],
        ts=ts,
    )
    if sack:
        segment = seg(segment, sack=sack)
    return kind, segment


def segment_bytes(kind: str, segment: Segment) -> bytes:
    data = bytearray(build_segment(segment, src=REMOTE_IP, dst=LOCAL_IP))
    hlen = (data[12] >> 4) * 4
    if kind == "bad checksum":
        data[16] ^= 0x40  # the full path counts and drops it
    elif kind == "truncated":
        del data[HEADER_SIZE - 1 :]
    elif kind == "bad data offset":
        data[12] = (data[12] & 0x0F) | 0x40  # four words: shorter than the fixed header
    elif kind == "malformed option":
        data[hlen:hlen] = b"\x1e\x00\x00\x00"  # an option of length zero
        data[12] = (data[12] & 0x0F) | ((hlen + 4) // 4) << 4
        data[16:18] = b"\x00\x00"
        fill_checksum(data, REMOTE_IP, LOCAL_IP)
    return bytes(data)


@EQUIVALENCE
@given(
    st.booleans(),
    st.sampled_from(
        [
            {},
            {"congestion_control": "newreno", "delayed_ack": False},
            {"receive_buffer": 4000, "send_buffer": 4000},  # windows the peer can overrun
            # Probes outstanding when the peer's data comes (the count must restart).
            {"keepalive": True, "keepalive_idle": 1.0, "keepalive_interval": 0.5},
        ]
    ),
    st.data(),
)
def test_the_same_segments_give_the_same_connection(
    negotiated: bool, changes: dict[str, Any], data: st.DataObject
) -> None:
    fast, slow = pair(negotiated, changes)
    now = 0.0
    peer_ts = PEER_TS
    for step in range(data.draw(st.integers(1, 50))):
        kind = data.draw(st.sampled_from(["segment"] * 6 + ["send", "receive", "time"]))
        outputs = []
        if kind == "segment":
            raw = segment_bytes(*data.draw(peer_segment(fast.conn, negotiated, peer_ts, now)))
            peer_ts = (peer_ts + data.draw(st.sampled_from([0, 1, 7]))) & MASK
            for s in (fast, slow):
                s.conn.handle_segment(raw, now)
        elif kind == "send":
            size = data.draw(st.integers(1, 20_000))
            outputs = [user_call(s.conn, ("send", 0, size), POOL[:size]) for s in (fast, slow)]
        elif kind == "receive":
            outputs = [user_call(s.conn, ("receive", 0, -1), b"") for s in (fast, slow)]
        else:
            now += data.draw(st.sampled_from([0.001, 0.05, 0.3, 2.0]))
            for s in (fast, slow):
                deadline = s.conn.get_timer()
                if deadline is not None and deadline <= now:
                    s.conn.handle_timer(now)
        sent = [s.conn.segments_to_send(now) for s in (fast, slow)]
        assert_same((step, kind), outputs[:1], outputs[1:])
        assert_same((step, kind, "segments"), sent[0], sent[1])
        assert_same((step, kind), observe(fast.conn), observe(slow.conn))


@EQUIVALENCE
@given(
    st.booleans(),
    st.sampled_from([{}, {"congestion_control": "newreno"}, {"delayed_ack": False}]),
    st.data(),
)
def test_acks_of_the_whole_flight_give_the_same_connection(
    negotiated: bool, changes: dict[str, Any], data: st.DataObject
) -> None:
    """`Connection._ack_all`'s case from every side: a flight of one segment or many
    (the RTT sample weighs the flight's size, RFC 7323 Appendix G), acknowledged whole
    by a pure ACK or by data, the echo timing it, missing, or not the flight's own."""
    fast, slow = pair(negotiated, changes)
    now = 0.0
    peer_ts = PEER_TS
    for step in range(data.draw(st.integers(1, 12))):
        size = data.draw(
            st.sampled_from([1, 1024, 1448, 2896, 5000, 14_480]) | st.integers(1, 30_000)
        )
        outputs = [user_call(s.conn, ("send", 0, size), POOL[:size]) for s in (fast, slow)]
        sent = [s.conn.segments_to_send(now) for s in (fast, slow)]
        assert_same((step, "send"), outputs[:1] + sent[:1], outputs[1:] + sent[1:])
        ours = (int(now * 1000) + fast.conn._ts_offset) & MASK  # the flight's TSval
        now += data.draw(st.sampled_from([0.0005, 0.01, 0.2]))
        info = fast.conn.info()
        echo = data.draw(st.sampled_from([ours, ours, 0, (ours - 50) & MASK]))
        start = info["rcv_nxt"] % PERIOD
        payload = STREAM[start : start + data.draw(st.sampled_from([0, 0, 100, 1448]))]
        segment = seg(
            SEND,
            seq=info["rcv_nxt"],
            ack=info["snd_nxt"],
            flags=Flags.ACK | Flags.PSH if payload else Flags.ACK,
            window=0xFFFF,
            payload=payload,
            ts=(peer_ts, echo) if negotiated else None,
        )
        raw = segment_bytes("ack", segment)
        peer_ts = (peer_ts + 1) & MASK
        for s in (fast, slow):
            s.conn.handle_segment(raw, now)
        sent = [s.conn.segments_to_send(now) for s in (fast, slow)]
        assert_same((step, "ack", "segments"), sent[0], sent[1])
        assert_same((step, "ack"), observe(fast.conn), observe(slow.conn))
