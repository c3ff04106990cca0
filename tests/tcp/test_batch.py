"""The batch entry changes nothing: ``Host.handle_segments(list)`` is ``handle_segment``
on each segment in turn.

A driver hands the host all the segments one read brought (a GRO read is one peer's
burst), and a connection takes its run of in-order data in one pass with its control
block in local variables (`Connection._predicted_run`). Two server hosts, identical
but for how they are fed, get the same batches: one segment by segment, the other
whole. After every batch both must have emitted the same segment bytes, reported the
same events and counters, and hold the same control blocks (`test_fastpath.observe`),
so that a shortcut that forgets a variable fails at the batch where it does.

The batches are a real client's segments (two connections from one address, so a
batch mixes four-tuples), then lost, duplicated, reordered, corrupted, cut short,
sent to a port nobody listens on, or followed by the client's FIN and its RST;
timestamps, SACK and checksums on and off. Examples are derandomized.
"""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from synack.tcp import Config, Connection, Host
from synack.tcp.endpoint import Datagram

from .test_fastpath import EQUIVALENCE, differences, observe

SECRET = b"batch-entry-equivalence".ljust(32, b".")
CLIENT, SERVER = "198.18.0.1", "198.18.0.2"
PORT = 80
POOL = random.Random(11).randbytes(1 << 18)

FLAVOURS: list[dict[str, Any]] = [
    {},  # timestamps, SACK, window scaling, CUBIC
    {"timestamps": False, "sack": False, "window_scaling": False, "congestion_control": "newreno"},
    {"checksum": False},
    {"receive_buffer": 6000, "send_buffer": 6000, "mss": 536, "window_scaling": False},
    {"delayed_ack": False, "timestamps": False},
]


def assert_same(step: object, a: Any, b: Any) -> None:
    if a != b:
        diff = "\n  ".join(differences(a, b)[:20])
        raise AssertionError(
            f"fed one by one (left) and in batches differ after {step!r}:\n  {diff}"
        )


class Twins:
    """A client host and two server hosts fed alike: one segment by segment, one in batches."""

    def __init__(self, changes: dict[str, Any]) -> None:
        config = Config(secret=SECRET, **changes)
        self.now = 0.0
        self.client = Host(CLIENT, config)
        self.servers = (Host(SERVER, config), Host(SERVER, config))
        for server in self.servers:
            server.listen(PORT)
        self.clients = [
            self.client.connect((SERVER, PORT), self.now, local_port=40000 + i) for i in range(2)
        ]
        self.accepted: tuple[list[Connection], list[Connection]] = ([], [])
        for _ in range(10):  # the handshakes
            self.deliver(self.client.segments_to_send(self.now), batched=False)
            self.answer()
        assert len(self.accepted[0]) == 2, "the handshakes did not finish"

    def deliver(self, datagrams: list[Datagram], *, batched: bool = True) -> None:
        """The client's segments to both servers: one by one, and (if `batched`) as one batch."""
        segments = [segment for segment, _src, _dst in datagrams]
        single, batch = self.servers
        for segment in segments:
            single.handle_segment(segment, CLIENT, self.now)
        if batched:
            batch.handle_segments(segments, CLIENT, self.now)
        else:
            for segment in segments:
                batch.handle_segment(segment, CLIENT, self.now)

    def answer(self, drop: frozenset[int] = frozenset()) -> None:
        """Compare what both servers now say and show; the first one's answers reach the client."""
        observed = []
        for server, accepted in zip(self.servers, self.accepted, strict=True):
            events = [(type(e).__name__, id(e) * 0) for e in server.ready()]
            while (conn := server.accept(PORT)) is not None:
                accepted.append(conn)
            out = [
                (bytes(segment), src, dst)
                for segment, src, dst in server.segments_to_send(self.now)
            ]
            observed.append(
                {
                    "ready": events,
                    "out": out,
                    "stats": dict(server.stats),
                    "timer": server.get_timer(),
                    "conns": [observe(conn) for conn in accepted],
                }
            )
        assert_same(("answer", self.now), observed[0], observed[1])
        for i, (segment, _src, _dst) in enumerate(observed[0]["out"]):
            if i not in drop:
                self.client.handle_segment(segment, SERVER, self.now)

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for host in (self.client, *self.servers):
            deadline = host.get_timer()
            if deadline is not None and deadline <= self.now:
                host.handle_timer(self.now)


def mangle(segments: list[bytes], ops: list[tuple[str, int]]) -> list[bytes]:
    """The client's burst as a network (or an attacker) might deliver it."""
    out = list(segments)
    for op, k in ops:
        if not out:
            break
        i = k % len(out)
        if op == "drop":
            del out[i]
        elif op == "duplicate":
            out.insert(i, out[i])
        elif op == "swap" and len(out) > 1:
            j = (i + 1) % len(out)
            out[i], out[j] = out[j], out[i]
        elif op == "corrupt":
            data = bytearray(out[i])
            data[min(len(data) - 1, 20 + k % 40)] ^= 0x5A
            out[i] = bytes(data)
        elif op == "truncate":
            out[i] = out[i][: k % 20]
        elif op == "no such port":
            data = bytearray(out[i])
            data[2:4] = (PORT + 1).to_bytes(2, "big")
            out.insert(i, bytes(data))
    return out


steps = st.one_of(
    st.tuples(st.just("send"), st.integers(0, 1), st.sampled_from([1, 1448, 20_000, 70_000])),
    st.tuples(
        st.just("burst"),
        st.lists(
            st.tuples(
                st.sampled_from(
                    ["drop", "duplicate", "swap", "corrupt", "truncate", "no such port"]
                ),
                st.integers(0, 1000),
            ),
            max_size=4,
        ),
    ),
    st.tuples(st.just("read"), st.integers(0, 1), st.sampled_from([-1, 1000])),
    st.tuples(st.just("time"), st.sampled_from([0.001, 0.05, 0.3, 2.0])),
    st.tuples(st.just("shutdown"), st.integers(0, 1)),
    st.tuples(st.just("abort"), st.integers(0, 1)),
    st.tuples(st.just("lose answers"), st.integers(0, 1000)),
)


@EQUIVALENCE
@given(
    st.sampled_from(range(len(FLAVOURS))),
    st.lists(steps, min_size=5, max_size=30),
)
def test_a_batch_is_its_segments_in_turn(flavour: int, program: list[tuple[Any, ...]]) -> None:
    twins = Twins(FLAVOURS[flavour])
    offset = 0
    lose: frozenset[int] = frozenset()
    for step in [*program, ("burst", []), ("time", 0.3), ("burst", [])]:
        kind = step[0]
        if kind == "send":
            conn = twins.clients[step[1]]
            if conn.state.value in ("ESTABLISHED", "CLOSE-WAIT"):
                conn.send(POOL[offset : offset + step[2]])
                offset = (offset + step[2]) % (len(POOL) // 2)
            continue
        if kind == "read":
            results = []
            for accepted in twins.accepted:
                conn = accepted[step[1]]
                results.append(conn.receive(step[2]) if conn.receive_available else b"")
            assert_same(step, results[0], results[1])
        elif kind == "time":
            twins.advance(step[1])
        elif kind == "shutdown":
            conn = twins.clients[step[1]]
            if conn.state.value in ("ESTABLISHED", "CLOSE-WAIT"):
                conn.shutdown()
        elif kind == "abort":
            twins.clients[step[1]].abort()
        elif kind == "lose answers":
            lose = frozenset({step[1] % 7, step[1] % 3})
            continue
        out = twins.client.segments_to_send(twins.now)
        burst = mangle(
            [bytes(segment) for segment, _s, _d in out], step[1] if kind == "burst" else []
        )
        twins.deliver([(segment, b"", b"") for segment in burst])
        twins.answer(lose)
        lose = frozenset()


def test_a_bulk_run_takes_the_batch_path(monkeypatch: Any) -> None:
    """The comparison means something only if the batch path runs: count what the run
    loop took during a lossless bulk transfer fed in batches."""
    taken = {"segments": 0}
    original = Connection._predicted_run

    def counting(self: Connection, segments: Any, i: int, now: float) -> int:
        reached = original(self, segments, i, now)
        taken["segments"] += reached - i
        return reached

    monkeypatch.setattr(Connection, "_predicted_run", counting)
    twins = Twins({})
    twins.clients[0].send(POOL[:200_000])
    for _ in range(40):
        out = twins.client.segments_to_send(twins.now)
        twins.deliver(out)
        twins.answer()
        for accepted in twins.accepted:
            accepted[0].receive()
        twins.advance(0.001)
    assert twins.accepted[1][0].info()["bytes_received"] == 200_000
    assert taken["segments"] > 200_000 // 1448 * 3 // 4


def test_events_waiting_says_whether_ready_has_something() -> None:
    twins = Twins({})
    server = twins.servers[1]
    drain(server)
    assert not server.events_waiting
    twins.clients[0].send(b"x" * 100)
    segments = [segment for segment, _s, _d in twins.client.segments_to_send(twins.now)]
    server.handle_segments(segments, CLIENT, twins.now)
    assert server.events_waiting  # before segments_to_send
    server.segments_to_send(twins.now)
    assert server.events_waiting  # and after it
    drain(server)
    assert not server.events_waiting


def drain(host: Host) -> None:
    for endpoint in host.ready():
        while endpoint.next_event() is not None:
            pass
