"""synack.testing.fakenet: virtual time, links and their impairments, driving, observability."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from synack.tcp import Config, State
from synack.testing import fakenet
from synack.testing.fakenet import (
    DropCause,
    FakeNetwork,
    Link,
    Livelock,
    NetworkTimeout,
    PacketEvent,
    RawEndpoint,
    connected_pair,
    format_packet,
)
from synack.wire.tcp import Flags, Segment, build_segment

A, B, C = "198.18.0.1", "198.18.0.2", "198.18.0.3"
A_IP, B_IP = bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2])
SECRET = b"fakenet-tests".ljust(32, b".")


def config(**kw: object) -> Config:
    return Config(secret=SECRET, **kw)  # type: ignore[arg-type]


def numbered(i: int, size: int = 100) -> bytes:
    """A packet that says which it is: the number in its first four bytes."""
    return i.to_bytes(4, "big") + bytes(size - 4)


def number(packet: bytes) -> int:
    return int.from_bytes(packet[:4], "big")


def two_raw(net: FakeNetwork) -> tuple[RawEndpoint, RawEndpoint]:
    a, b = RawEndpoint(A), RawEndpoint(B)
    net.attach(A, a)
    net.attach(B, b)
    return a, b


def send_many(
    net: FakeNetwork, a: RawEndpoint, count: int, size: int = 100, spacing: float = 0.0
) -> None:
    """`count` numbered packets from a to B, `spacing` virtual seconds apart."""

    def sender(i: int) -> Callable[[], None]:
        return lambda: a.send(numbered(i, size), B)

    for i in range(count):
        if spacing:
            net.call_at(i * spacing, sender(i))
        else:
            a.send(numbered(i, size), B)


class Ticker:
    """An endpoint with timers at fixed times; records when each fired."""

    def __init__(self, times: list[float]) -> None:
        self.pending = sorted(times)
        self.fired: list[float] = []

    def handle_segment(self, data: bytes | bytearray, src: bytes, now: float) -> None:
        pass

    def segments_to_send(self, now: float) -> list[fakenet.Datagram]:
        return []

    def get_timer(self) -> float | None:
        return self.pending[0] if self.pending else None

    def handle_timer(self, now: float) -> None:
        assert self.pending and now >= self.pending[0]
        self.fired.append(now)
        self.pending.pop(0)


# ---------------------------------------------------------------------- Link


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"delay": -0.1}, "delay"),
        ({"jitter": math.inf}, "jitter"),
        ({"delay": math.nan}, "delay"),
        ({"loss": 1.5}, "loss"),
        ({"duplicate": -0.01}, "duplicate"),
        ({"reorder": math.nan}, "reorder"),
        ({"corrupt": 2}, "corrupt"),
        ({"rate": 0}, "rate"),
        ({"rate": -5.0}, "rate"),
        ({"queue_limit": 0}, "queue_limit"),
    ],
)
def test_link_rejects_bad_settings(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Link(**kwargs)  # type: ignore[arg-type]


def test_link_impaired_only_when_something_but_delay_is_set() -> None:
    assert not Link().impaired
    assert not Link(delay=0.3).impaired
    for kw in (
        {"loss": 0.1},
        {"jitter": 0.01},
        {"duplicate": 0.1},
        {"reorder": 0.1},
        {"corrupt": 0.1},
        {"rate": 1e6},
    ):
        assert Link(**kw).impaired, kw  # type: ignore[arg-type]


# ---------------------------------------------------------------------- plain delivery


def test_plain_link_delivers_after_the_delay_in_order() -> None:
    net = FakeNetwork(link=Link(delay=0.25))
    a, b = two_raw(net)
    send_many(net, a, 20)
    net.run_for(0.2499)
    assert b.received == []
    net.run_for(0.0001)
    assert [number(p) for _t, p, _s in b.received] == list(range(20))
    assert {t for t, _p, _s in b.received} == {0.25}
    assert {s for _t, _p, s in b.received} == {A_IP}
    assert net.stats.sent == net.stats.delivered == 20
    assert net.stats.dropped_total == 0


def test_each_direction_has_its_own_settings() -> None:
    net = FakeNetwork()
    a, b = two_raw(net)
    net.set_path(A, B, Link(delay=0.1), reverse=Link(delay=0.3))
    assert net.link(A, B) == Link(delay=0.1) and net.link(B, A) == Link(delay=0.3)
    assert net.link(A, C) == Link()
    a.send(b"ping", B)
    b.send(b"pong", A)
    net.run_for(1.0)
    assert b.received == [(0.1, b"ping", A_IP)]
    assert a.received == [(0.3, b"pong", B_IP)]


def test_default_link_change_reaches_paths_already_used() -> None:
    net = FakeNetwork(link=Link(delay=0.1))
    a, b = two_raw(net)
    a.send(b"one", B)
    net.run_for(1.0)
    net.set_default_link(Link(delay=0.5))
    a.send(b"two", B)
    net.run_for(1.0)
    assert [(t, p) for t, p, _s in b.received] == [(0.1, b"one"), (1.5, b"two")]


def test_unimpaired_links_draw_no_random_numbers() -> None:
    net = FakeNetwork(seed=7, link=Link(delay=0.01))
    before = net.random.getstate()
    a, b = two_raw(net)
    send_many(net, a, 500)
    net.run_for(1.0)
    assert len(b.received) == 500
    assert net.random.getstate() == before


def test_unreachable_destination_and_detach_in_flight() -> None:
    net = FakeNetwork(link=Link(delay=0.1))
    a, b = two_raw(net)
    seen: list[PacketEvent] = []
    net.tap = lambda _t, ev, *_rest: seen.append(ev)
    a.send(b"nobody home", C)
    a.send(b"detached before arrival", B)
    net.run_for(0.05)
    assert net.detach(B) is b
    net.run_for(1.0)
    assert b.received == []
    assert net.stats.dropped[DropCause.UNREACHABLE] == 2
    assert seen.count(PacketEvent.UNREACHABLE) == 2
    with pytest.raises(KeyError, match=r"198\.18\.0\.2"):
        net.detach(B)


def test_attach_twice_is_refused() -> None:
    net = FakeNetwork()
    net.attach(A, RawEndpoint(A))
    with pytest.raises(ValueError, match="already attached"):
        net.attach(A, RawEndpoint(A))
    with pytest.raises(KeyError, match="nothing is attached"):
        net.endpoint(C)


# ---------------------------------------------------------------------- impairments


def test_loss_rate_and_counters() -> None:
    net = FakeNetwork(seed=3, link=Link(loss=0.2))
    a, b = two_raw(net)
    lost: list[int] = []
    net.tap = lambda _t, ev, data, *_: (
        lost.append(number(bytes(data))) if (ev is PacketEvent.LOST) else None
    )
    n = 20_000
    send_many(net, a, n)
    net.run_for(1.0)
    dropped = net.stats.dropped[DropCause.LOSS]
    sigma = math.sqrt(n * 0.2 * 0.8)
    assert abs(dropped - 0.2 * n) < 5 * sigma
    assert len(b.received) + dropped == n == net.stats.sent
    # The tap names exactly the packets that did not arrive.
    got = {number(p) for _t, p, _s in b.received}
    assert sorted(lost) == sorted(set(range(n)) - got)


def test_duplication_delivers_a_second_copy() -> None:
    net = FakeNetwork(seed=4, link=Link(duplicate=0.3, delay=0.01))
    a, b = two_raw(net)
    n = 5000
    send_many(net, a, n)
    net.run_for(1.0)
    assert len(b.received) == n + net.stats.duplicated
    assert abs(net.stats.duplicated - 0.3 * n) < 5 * math.sqrt(n * 0.3 * 0.7)
    counts: dict[int, int] = {}
    for _t, p, _s in b.received:
        counts[number(p)] = counts.get(number(p), 0) + 1
    assert set(counts) == set(range(n)) and set(counts.values()) == {1, 2}


def test_corruption_flips_exactly_one_bit() -> None:
    net = FakeNetwork(seed=5, link=Link(corrupt=1.0))
    a, b = two_raw(net)
    original = [bytes([i % 251]) * 60 for i in range(300)]
    for p in original:
        a.send(p, B)
    net.run_for(1.0)
    assert net.stats.corrupted == 300
    positions = set()
    for sent, (_t, got, _s) in zip(original, b.received, strict=True):
        diff = [x ^ y for x, y in zip(sent, got, strict=True)]
        assert sum(bin(d).count("1") for d in diff) == 1
        positions.add(next(i for i, d in enumerate(diff) if d))
    assert len(positions) > 30  # anywhere in the packet, not one favoured byte


def test_corrupted_segments_are_dropped_by_the_tcp_checksum() -> None:
    net = FakeNetwork(seed=6, link=Link(delay=0.01))
    client, server = connected_pair(net, config())
    net.set_link(A, B, Link(delay=0.01, corrupt=1.0))
    assert client.send(b"x" * 3000) == 3000
    net.run_for(0.5)
    assert server.receive() == b""
    assert server.stats["bad_checksum"] + net.endpoint(B).stats["bad_segment"] > 0  # type: ignore[attr-defined]
    net.set_link(A, B, Link(delay=0.01))
    net.run_until(lambda: server.receive_available == 3000, 30)
    assert server.receive() == b"x" * 3000


def test_reorder_holds_some_packets_back_past_later_ones() -> None:
    net = FakeNetwork(seed=8, link=Link(delay=0.01, reorder=0.25, reorder_delay=0.05))
    a, b = two_raw(net)
    send_many(net, a, 400, spacing=0.001)
    net.run_for(2.0)
    order = [number(p) for _t, p, _s in b.received]
    assert sorted(order) == list(range(400))
    assert order != sorted(order)
    assert abs(net.stats.reordered - 100) < 5 * math.sqrt(400 * 0.25 * 0.75)
    # A held-back packet arrives reorder_delay late; the others exactly on time.
    late = [number(p) for t, p, _s in b.received if not math.isclose(t, number(p) * 0.001 + 0.01)]
    assert all(
        math.isclose(t, number(p) * 0.001 + 0.06) for t, p, _s in b.received if number(p) in late
    )
    assert len(late) == net.stats.reordered


def test_jitter_varies_delay_but_keeps_order() -> None:
    net = FakeNetwork(seed=9, link=Link(delay=0.05, jitter=0.04))
    a, b = two_raw(net)
    send_many(net, a, 300, spacing=0.002)
    net.run_for(2.0)
    order = [number(p) for _t, p, _s in b.received]
    assert order == list(range(300))
    delays = [t - number(p) * 0.002 for t, p, _s in b.received]
    assert min(delays) >= 0.0
    assert max(delays) - min(delays) > 0.03


def test_rate_limit_serializes_packets() -> None:
    net = FakeNetwork(link=Link(delay=0.1, rate=10_000))
    a, b = two_raw(net)
    send_many(net, a, 5, size=1000)
    net.run_for(2.0)
    times = [t for t, _p, _s in b.received]
    assert times == pytest.approx([0.2, 0.3, 0.4, 0.5, 0.6])  # 0.1 s each, then the delay


def test_full_bottleneck_queue_drops_at_the_tail() -> None:
    net = FakeNetwork(link=Link(rate=10_000, queue_limit=3))
    a, b = two_raw(net)
    send_many(net, a, 10, size=1000)
    net.call_at(0.25, lambda: a.send(numbered(99, 1000), B))  # two have left by then
    net.run_for(2.0)
    assert [number(p) for _t, p, _s in b.received] == [0, 1, 2, 99]
    assert net.stats.dropped[DropCause.QUEUE] == 7


def test_same_seed_same_run_different_seed_different_run() -> None:
    def trace(seed: int) -> list[str]:
        net = FakeNetwork(
            seed=seed,
            link=Link(
                delay=0.01, jitter=0.005, loss=0.1, duplicate=0.05, reorder=0.1, corrupt=0.05
            ),
        )
        lines: list[str] = []
        net.tap = lambda *p: lines.append(format_packet(*p) + bytes(p[2]).hex())
        client, server = connected_pair(net, config())
        client.send(bytes(range(256)) * 200)
        client.shutdown()
        net.run_until(lambda: server.receive_available == 51200, 600)
        return lines

    first = trace(11)
    assert first == trace(11)
    assert first != trace(12)


# ---------------------------------------------------------------------- driving


def test_timers_fire_at_their_deadlines_across_endpoints() -> None:
    net = FakeNetwork()
    t1, t2 = Ticker([0.5, 2.0, 2.0, 7.25]), Ticker([1.0, 2.0])
    net.attach(A, t1)
    net.attach(B, t2)
    fired: list[tuple[str, float]] = []
    net.set_app(A, lambda now: fired.append(("a", now)))
    net.set_app(B, lambda now: fired.append(("b", now)))
    net.run_for(10.0)
    assert t1.fired == [0.5, 2.0, 2.0, 7.25] and t2.fired == [1.0, 2.0]
    assert [t for _w, t in fired] == sorted(t for _w, t in fired)
    assert net.now == 10.0 and net.idle


def test_step_handles_one_event_at_a_time() -> None:
    net = FakeNetwork(link=Link(delay=0.1))
    a, b = two_raw(net)
    a.send(b"1", B)
    a.send(b"2", B)
    assert net.in_flight == 0  # not collected until the network is driven
    assert net.step() and len(b.received) == 1 and net.now == 0.1
    assert net.step() and len(b.received) == 2
    assert not net.step()


def test_call_at_runs_callbacks_in_time_order_and_collects_their_output() -> None:
    net = FakeNetwork(link=Link(delay=0.5))
    a, b = two_raw(net)
    calls: list[float] = []
    net.call_at(2.0, lambda: calls.append(net.now))

    def act() -> None:
        calls.append(net.now)
        a.send(b"from a callback", B)

    net.call_at(1.0, act)
    net.call_later(1.5, lambda: calls.append(net.now))
    net.run_for(3.0)
    assert calls == [1.0, 1.5, 2.0]
    assert b.received == [(1.5, b"from a callback", A_IP)]


def test_app_hook_reacts_to_each_delivery() -> None:
    net = FakeNetwork(link=Link(delay=0.01))
    a, b = two_raw(net)

    def echo(now: float) -> None:
        while b.received and len(b.received) > echoed[0]:
            b.send(b"re:" + b.received[echoed[0]][1], A)
            echoed[0] += 1

    echoed = [0]
    net.set_app(B, echo)
    a.send(b"hello", B)
    net.run_until(lambda: len(a.received) == 1, 1.0)
    assert a.received == [(0.02, b"re:hello", B_IP)]


def test_run_until_timeout_names_what_it_waited_for() -> None:
    net = FakeNetwork()
    net.attach(A, Ticker([float(i) for i in range(1, 100)]))
    with pytest.raises(NetworkTimeout, match=r"timed out after 5 virtual seconds.*the moon"):
        net.run_until(lambda: False, 5.0, what="the moon")
    assert net.now == 5.0
    with pytest.raises(NetworkTimeout, match=r"lambda: net\.now > 1e9"):
        net.run_until(lambda: net.now > 1e9, 5.0)


def test_run_until_reports_an_idle_network_at_once() -> None:
    net = FakeNetwork()
    two_raw(net)
    with pytest.raises(NetworkTimeout, match=r"network idle at t=0\.000000.*a reply"):
        net.run_until(lambda: False, 1000.0, what="a reply")
    assert net.now == 0.0


def test_run_until_returns_when_the_condition_holds() -> None:
    net = FakeNetwork(link=Link(delay=0.3))
    a, b = two_raw(net)
    send_many(net, a, 3, spacing=1.0)
    assert net.run_until(lambda: len(b.received) == 2, 10.0) == 1.3
    assert net.now == 1.3
    assert net.run_until(lambda: len(b.received) == 2, 10.0) == 1.3  # already true


def test_livelock_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fakenet, "LIVELOCK_EVENTS", 1000)
    net = FakeNetwork()  # zero delay: the two echo each other at t=0 forever
    a, b = two_raw(net)

    def echo(ep: RawEndpoint, peer: str) -> Callable[[float], None]:
        return lambda _now: ep.send(b"again", peer)

    for ep, peer in ((a, B), (b, A)):
        net.set_app(ep.address, echo(ep, peer))
    a.send(b"start", B)
    with pytest.raises(Livelock, match="without time advancing"):
        net.run_for(1.0)


def test_bad_run_arguments() -> None:
    net = FakeNetwork()
    with pytest.raises(ValueError, match="seconds"):
        net.run_for(-1)
    with pytest.raises(ValueError, match="timeout"):
        net.run_until(lambda: True, math.nan)


# ---------------------------------------------------------------------- observability


def test_tap_sees_every_fate_with_its_time() -> None:
    net = FakeNetwork(seed=1)
    a, b = two_raw(net)
    net.set_link(A, B, Link(delay=0.1, loss=0.3, duplicate=0.3, corrupt=0.2, reorder=0.2))
    events: list[tuple[float, PacketEvent]] = []
    net.tap = lambda t, ev, *_: events.append((t, ev))
    send_many(net, a, 200)
    a.send(b"x", C)
    net.run_for(1.0)
    kinds = {ev for _t, ev in events}
    assert kinds == set(PacketEvent) - {PacketEvent.QUEUE_DROP}
    count = {k: sum(1 for _t, ev in events if ev is k) for k in PacketEvent}
    stats = net.stats
    assert count[PacketEvent.SENT] == stats.sent == 201
    assert count[PacketEvent.DELIVERED] == stats.delivered == len(b.received)
    assert count[PacketEvent.LOST] == stats.dropped[DropCause.LOSS]
    assert count[PacketEvent.DUPLICATED] == stats.duplicated
    assert count[PacketEvent.CORRUPTED] == stats.corrupted
    assert count[PacketEvent.REORDERED] == stats.reordered
    assert stats.delivered == stats.sent - 1 - stats.dropped[DropCause.LOSS] + stats.duplicated
    assert all(t in (0.0, 0.1, 0.11) for t, _ev in events)


def test_format_packet_reads_like_tcpdump() -> None:
    seg = build_segment(
        Segment(
            40000, 80, seq=1000, ack=2000, flags=Flags.SYN | Flags.ACK, window=512, payload=b"abc"
        )
    )
    line = format_packet(1.5, PacketEvent.DELIVERED, seg, A_IP, B_IP)
    assert line == (
        "1.500000 delivered 198.18.0.1.40000 > 198.18.0.2.80: [S.] seq 1000 "
        "ack 2000 win 512 length 3"
    )
    assert "not TCP" in format_packet(0.0, PacketEvent.SENT, b"\x01\x02", A_IP, B_IP)


# ---------------------------------------------------------------------- connected_pair


def test_connected_pair_exchanges_data_both_ways() -> None:
    net = FakeNetwork(link=Link(delay=0.02))
    client, server = connected_pair(net, config())
    assert client.state is server.state is State.ESTABLISHED
    assert net.now == pytest.approx(0.06)  # SYN, SYN-ACK, ACK: three one-way delays
    client.send(b"ping")
    server.send(b"pong")
    net.run_until(lambda: server.receive_available == 4 and client.receive_available == 4, 5)
    assert server.receive() == b"ping" and client.receive() == b"pong"


def test_connected_pair_on_a_lossy_network() -> None:
    net = FakeNetwork(seed=2, link=Link(delay=0.01, loss=0.3))
    client, server = connected_pair(net, config(), timeout=300)
    assert client.state is server.state is State.ESTABLISHED


def test_connected_pair_over_a_dead_link_fails_clearly() -> None:
    net = FakeNetwork(link=Link(loss=1.0))
    with pytest.raises(NetworkTimeout, match=r"198\.18\.0\.1 -> 198\.18\.0\.2:80"):
        connected_pair(net, config(), timeout=30)


def test_connected_pair_needs_free_addresses() -> None:
    net = FakeNetwork()
    net.attach(A, RawEndpoint(A))
    with pytest.raises(ValueError, match=r"198\.18\.0\.1 is already attached"):
        connected_pair(net, config())


def test_inject_puts_a_spoofed_packet_on_the_link() -> None:
    net = FakeNetwork(link=Link(delay=0.05))
    _a, b = two_raw(net)
    net.set_app(B, lambda _now: b.send(b"reply", b.received[-1][2]))
    net.inject(b"forged", "198.19.7.7", B)  # nobody lives at the source address
    net.run_for(1.0)
    assert b.received == [(0.05, b"forged", bytes([198, 19, 7, 7]))]
    assert net.stats.sent == 2 and net.stats.dropped[DropCause.UNREACHABLE] == 1
