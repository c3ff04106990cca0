"""`synack netem`: the pure decisions, the UDP relay on loopback, the command line,
and TUN mode with the kernel's TCP between two namespaces (root only).

Statistical checks use binomial bounds of four standard deviations around what was
asked for; with a fixed seed each run is the same anyway, so the bounds guard the
meaning (5% means 5%) rather than luck. End-to-end determinism is checked against
the pure module: the relay must do to each datagram exactly what `Lane.decide`
says for that seed and that position in the sequence.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from synack.apps.netem import tun as tun_mode
from synack.apps.netem.impair import Fate, Impairment, Lane, ip_payload_offset
from synack.apps.netem.relay import UdpRelay
from synack.apps.netem.units import (
    parse_percent,
    parse_rate,
    parse_time,
    split_directions,
)
from synack.cli import main
from synack.errors import UsageError, UserError

LIMIT = 30.0  # seconds any one async test body may take
LOOPBACK = "127.0.0.1"


def run_async(body: Callable[..., Any]) -> Callable[..., None]:
    def wrapper(*args: Any, **kwargs: Any) -> None:
        async def bounded() -> None:
            async with asyncio.timeout(LIMIT):
                await body(*args, **kwargs)

        asyncio.run(bounded())

    wrapper.__name__ = body.__name__
    wrapper.__doc__ = body.__doc__
    return wrapper


def within_sigma(count: int, n: int, p: float, sigmas: float = 4.0) -> bool:
    """`count` successes of `n` trials is within `sigmas` binomial deviations of n*p."""
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


def predict(seed: int, name: str, impairment: Impairment, sizes: list[int]) -> list[Fate]:
    """The fates the relay must give datagrams of these sizes, in this order."""
    lane = Lane(impairment, seed, name)
    return [lane.decide(size * 8) for size in sizes]


# ---------------------------------------------------------------------- units


def test_units_parse_strictly() -> None:
    assert parse_percent("--loss", "5%") == 0.05
    assert parse_percent("--loss", "0.1%") == pytest.approx(0.001)
    assert parse_time("--delay", "20ms") == pytest.approx(0.02)
    assert parse_time("--delay", "500us") == pytest.approx(0.0005)
    assert parse_time("--duration", "3", bare_seconds=True) == 3.0
    assert parse_rate("--rate", "10M") == 1_250_000
    assert parse_rate("--rate", "10mbit") == 1_250_000
    assert parse_rate("--rate", "10Mbps") == 1_250_000
    assert parse_rate("--rate", "2MB/s") == 2_000_000
    assert parse_rate("--rate", "500kbit") == 62_500
    assert split_directions("--loss", "5%") == ("5%", "5%")
    assert split_directions("--loss", "5%/1%") == ("5%", "1%")
    assert split_directions("--rate", "1MB/s/2MB/s") == ("1MB/s", "2MB/s")
    for parse, text in [
        (parse_percent, "5"),
        (parse_percent, "101%"),
        (parse_percent, "-1%"),
        (parse_time, "20"),
        (parse_time, "20 parsecs"),
        (parse_time, "2d"),
        (parse_rate, "1000"),
        (parse_rate, "10MBps"),
        (parse_rate, "fast"),
    ]:
        with pytest.raises(UsageError):
            parse("--x", text)
    for text in ["5%/1%/2%", "5%/", "/"]:
        with pytest.raises(UsageError):
            split_directions("--loss", text)


# ---------------------------------------------------------------------- the pure decisions

EVERYTHING = Impairment(
    delay=0.02,
    jitter=0.005,
    loss=0.2,
    duplicate=0.1,
    reorder=0.1,
    corrupt=0.1,
    rate=1e6,
    queue_limit=10,
)


def test_same_seed_same_datagrams_same_decisions() -> None:
    sizes = [random.Random(3).randrange(1, 1500) for _ in range(2000)]
    assert predict(1, "up", EVERYTHING, sizes) == predict(1, "up", EVERYTHING, sizes)
    assert predict(1, "up", EVERYTHING, sizes) != predict(2, "up", EVERYTHING, sizes)
    # Each direction has its own generator: "down" is not a copy of "up".
    assert predict(1, "up", EVERYTHING, sizes) != predict(1, "down", EVERYTHING, sizes)


def test_decisions_do_not_depend_on_what_came_before() -> None:
    """Every datagram draws the same number of values, so earlier sizes, losses and
    queue drops cannot shift later decisions; only the flipped bit depends on the
    datagram's own size."""
    rng = random.Random(5)
    a = predict(9, "up", EVERYTHING, [100] * 500)
    b = predict(9, "up", EVERYTHING, [rng.randrange(1, 1500) for _ in range(500)])

    def shape(fates: list[Fate]) -> list[Any]:
        return [(f.lost, [(c.bit is None, c.jitter, c.reorder) for c in f.copies]) for f in fates]

    assert shape(a) == shape(b)
    # The admitted path (with its clock and queue) draws exactly as `decide` does.
    lane = Lane(EVERYTHING, 9, "up")
    now = 0.0
    for _ in range(500):
        lane.admit(bytes(100), now)
        now += 0.00001  # fast enough to fill the bottleneck queue: drops cannot shift draws
    assert lane.stats.queue_dropped > 0
    assert predict(9, "up", EVERYTHING, [100] * 1000)[500:] == [
        lane.decide(800) for _ in range(500)
    ]


@pytest.mark.parametrize(
    "link",
    [
        Impairment(),
        Impairment(loss=0.1),
        Impairment(loss=0.05, delay=0.02, rate=2e6, queue_limit=20),
        Impairment(delay=0.01, rate=1e6, queue_limit=5),
    ],
    ids=["nothing", "loss", "loss-delay-rate", "delay-rate-drops"],
)
def test_the_plain_path_decides_and_times_as_the_general_one(link: Impairment) -> None:
    """With only loss, delay and rate on, `admit` takes a shorter path that builds no
    `Fate`; the same datagrams at the same times get the same copies, times, counts
    and draws as on the general path (the one every other knob takes)."""
    rng = random.Random(7)
    plain, general = Lane(link, 3, "up", overhead=28), Lane(link, 3, "up", overhead=28)
    general._plain = False  # the path `decide` drives
    assert plain._plain
    now = 0.0
    for _ in range(5000):
        now += rng.choice((0.0, 0.0, 0.00001, 0.0005, 0.003))  # bursts and gaps
        data = rng.randbytes(rng.randrange(0, 1500))
        assert plain.admit(data, now) == general.admit(data, now)
    assert plain.stats == general.stats
    assert plain.rng.getstate() == general.rng.getstate()
    if link.loss:
        assert plain.stats.lost > 0
    if link.queue_limit < 1000:
        assert plain.stats.queue_dropped > 0


def test_lane_rates_match_the_settings() -> None:
    n = 20_000
    lane = Lane(Impairment(loss=0.05, duplicate=0.02, reorder=0.03, corrupt=0.01), 4, "up")
    for i in range(n):
        lane.admit(bytes(64), i * 0.001)
    s = lane.stats
    kept = n - s.lost
    assert within_sigma(s.lost, n, 0.05)
    assert within_sigma(s.duplicated, kept, 0.02)
    copies = kept + s.duplicated
    assert within_sigma(s.reordered, copies, 0.03)
    assert within_sigma(s.corrupted, copies, 0.01)


def test_jitter_never_reorders_and_reorder_holds_back() -> None:
    lane = Lane(Impairment(delay=0.01, jitter=0.009, reorder=0.1, reorder_delay=0.05), 2, "up")
    in_order: list[float] = []
    for i in range(2000):
        now = i * 0.0005
        for when, _data, reordered in lane.admit(bytes(10), now):
            assert when >= now
            if reordered:
                assert when >= now + 0.05
            else:
                in_order.append(when)
    assert in_order == sorted(in_order)
    assert lane.stats.reordered > 0


def test_rate_serializes_and_the_queue_drops_at_the_tail() -> None:
    lane = Lane(Impairment(rate=1000.0, queue_limit=3, delay=0.5), 1, "up", overhead=28)
    out = [lane.admit(bytes(72), 0.0) for _ in range(5)]  # 100 bytes each on the wire
    assert [d[0][0] for d in out[:3]] == pytest.approx([0.6, 0.7, 0.8])
    assert out[3] == out[4] == []
    assert lane.stats.queue_dropped == 2
    # Once the first has left the queue there is room for one more, behind the others.
    assert lane.admit(bytes(72), 0.15)[0][0] == pytest.approx(0.9)


def test_corruption_flips_one_bit_outside_the_ip_header() -> None:
    lane = Lane(Impairment(corrupt=1.0), 3, "up", region=ip_payload_offset)
    header = bytes([0x45]) + bytes(19)
    for _ in range(200):
        packet = header + random.randbytes(40)
        [(_, damaged, _)] = lane.admit(packet, 0.0)
        assert damaged[:20] == header
        diff = int.from_bytes(packet, "big") ^ int.from_bytes(damaged, "big")
        assert diff.bit_count() == 1
    assert ip_payload_offset(bytes([0x46]) + bytes(30)) == 24
    assert ip_payload_offset(bytes([0x60]) + bytes(50)) == 40


# ---------------------------------------------------------------------- the UDP relay


class Recorder(asyncio.DatagramProtocol):
    """Keeps (arrival time, data, source) of every datagram; echoes if asked."""

    def __init__(self, echo: bool = False) -> None:
        self.echo = echo
        self.got: list[tuple[float, bytes, Any]] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.got.append((time.monotonic(), data, addr))
        if self.echo and self.transport is not None:
            self.transport.sendto(data, addr)


@contextlib.asynccontextmanager
async def relayed(
    up: Impairment,
    down: Impairment | None = None,
    *,
    seed: int = 1,
    echo: bool = False,
    idle_timeout: float = 60.0,
) -> AsyncIterator[tuple[UdpRelay, Recorder, Callable[[], Any]]]:
    """A server (recording, maybe echoing) behind a relay; yields a client factory."""
    loop = asyncio.get_running_loop()
    server_t, server = await loop.create_datagram_endpoint(
        lambda: Recorder(echo), local_addr=(LOOPBACK, 0)
    )
    relay = UdpRelay(
        (LOOPBACK, 0),
        server_t.get_extra_info("sockname")[:2],
        up,
        down if down is not None else Impairment(),
        seed=seed,
        idle_timeout=idle_timeout,
    )
    address = await relay.start()
    clients: list[asyncio.DatagramTransport] = []

    async def client() -> tuple[asyncio.DatagramTransport, Recorder]:
        t, p = await loop.create_datagram_endpoint(Recorder, remote_addr=address)
        clients.append(t)
        return t, p

    try:
        yield relay, server, client
    finally:
        await relay.stop()
        server_t.close()
        for t in clients:
            t.close()


def seq_payload(i: int, size: int = 16) -> bytes:
    return i.to_bytes(4, "big") + bytes(size - 4)


async def send_paced(
    transport: asyncio.DatagramTransport,
    payloads: list[bytes],
    per_tick: int,
    tick: float,
    sent_at: list[float] | None = None,
) -> None:
    for i, data in enumerate(payloads):
        if sent_at is not None:
            sent_at.append(time.monotonic())
        transport.sendto(data)
        if i % per_tick == per_tick - 1:
            await asyncio.sleep(tick)


async def settle(recorders: list[Recorder], quiet: float = 0.25) -> None:
    """Wait until nothing has arrived for `quiet` seconds (bounded by the test's limit)."""
    last = -1
    while True:
        await asyncio.sleep(quiet)
        total = sum(len(r.got) for r in recorders)
        if total == last:
            return
        last = total


async def arrived(recorder: Recorder, n: int, limit: float = 20.0) -> None:
    """Wait until `recorder` holds `n` datagrams, or `limit` seconds pass (the test's
    asserts then say what is missing): on a loaded machine the relay's pacing can stall
    for longer than `settle`'s quiet period while datagrams still wait in its socket."""
    deadline = time.monotonic() + limit
    while len(recorder.got) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


@run_async
async def test_echo_through_the_relay_sees_the_loss_and_delay_asked_for() -> None:
    n = 2000
    link = Impairment(loss=0.2, delay=0.03)
    async with relayed(link, link, seed=11, echo=True) as (relay, server, client):
        transport, me = await client()
        sent_at: list[float] = []
        await send_paced(transport, [seq_payload(i) for i in range(n)], 8, 0.004, sent_at)
        await settle([me, server])
        up, down = relay.up.stats, relay.down.stats
        # What each end saw is what the relay says it did.
        assert len(server.got) == up.passed == n - up.lost
        assert len(me.got) == down.passed == len(server.got) - down.lost
    assert within_sigma(up.lost, n, 0.2)
    assert within_sigma(down.lost, len(server.got), 0.2)
    assert within_sigma(len(me.got), n, 0.8 * 0.8)
    rtts = sorted(t - sent_at[int.from_bytes(d[:4], "big")] for t, d, _ in me.got)
    print(
        f"echo: {len(me.got)}/{n} back, rtt min {rtts[0] * 1e3:.1f}ms "
        f"median {statistics.median(rtts) * 1e3:.1f}ms"
    )
    assert rtts[0] >= 0.060
    assert statistics.median(rtts) < 0.075


@run_async
async def test_same_seed_same_fates_end_to_end() -> None:
    """A sequenced stream sent slowly (no queue, no kernel drops) meets, datagram by
    datagram, the fates the pure module predicts; so two runs agree, and another
    seed does not."""
    n = 300
    link = Impairment(loss=0.3, duplicate=0.1)
    payloads = [seq_payload(i) for i in range(n)]

    async def one_run(seed: int) -> list[int]:
        async with relayed(link, seed=seed) as (relay, server, client):
            transport, _ = await client()
            await send_paced(transport, payloads, 4, 0.002)
            await settle([server])
            assert relay.up.stats.duplicated == sum(
                1 for f in predict(seed, "up", link, [16] * n) if not f.lost and len(f.copies) > 1
            )
        return sorted(int.from_bytes(d[:4], "big") for _t, d, _a in server.got)

    def expected(seed: int) -> list[int]:
        fates = predict(seed, "up", link, [16] * n)
        return sorted(i for i, f in enumerate(fates) if not f.lost for _c in f.copies)

    first, second, other = await one_run(5), await one_run(5), await one_run(6)
    assert first == second == expected(5)
    assert other == expected(6) != first


def flip(data: bytes, bit: int | None) -> bytes:
    if bit is None:
        return data
    damaged = bytearray(data)
    damaged[bit >> 3] ^= 0x80 >> (bit & 7)
    return bytes(damaged)


class ShortSends:
    """A carrier stand-in whose socket is full for the first `full` sends (they take
    only `take` datagrams), then takes everything; its fileno is a real, writable
    UDP socket's, so the loop calls the relay socket back when it may send."""

    def __init__(self, full: int, take: int) -> None:
        import socket as socket_module

        self.sock = socket_module.socket(socket_module.AF_INET, socket_module.SOCK_DGRAM)
        self.full, self.take = full, take
        self.sent: list[tuple[bytes, Any]] = []

    def send_batch(self, datagrams: list[bytes], addr: Any) -> int:
        n = len(datagrams)
        if self.full > 0:
            self.full -= 1
            n = min(n, self.take)
        self.sent += [(d, addr) for d in datagrams[:n]]
        return n

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()


@run_async
async def test_a_full_socket_keeps_the_rest_in_order_and_sends_it_when_writable() -> None:
    """When the kernel takes only part of a batch (EAGAIN), the rest waits in the relay
    socket, later batches queue behind it, and all goes out in order once the socket
    is writable: nothing is dropped that no seed decided."""
    from synack.apps.netem.relay import _Socket

    loop = asyncio.get_running_loop()
    carrier = ShortSends(full=2, take=1)
    sock = _Socket(loop, carrier)  # type: ignore[arg-type]
    a, b = ("127.0.0.1", 1), ("127.0.0.1", 2)
    first = [b"a%d" % i for i in range(5)]
    second = [b"b%d" % i for i in range(3)]
    assert sock.send(first, a) == (5, sum(map(len, first)))  # taken: 1 sent, 4 queued
    assert sock.send(second, b) == (3, sum(map(len, second)))  # queued behind them
    assert carrier.sent == [(b"a0", a)] and len(sock.backlog) == 7
    async with asyncio.timeout(5):
        while sock.backlog:
            await asyncio.sleep(0.001)
    expected = [(d, a) for d in first] + [(d, b) for d in second]
    assert carrier.sent == expected
    assert sock.close() == 0


def offload_runs(rng: random.Random) -> list[list[bytes]]:
    """Datagrams numbered in their first 4 bytes, in runs a GSO sender may make: one
    size, the last perhaps shorter; runs of several sizes, and an empty datagram."""
    runs: list[list[bytes]] = []
    seq = 0
    for _ in range(40):
        size = rng.choice((8, 100, 1200, 1452, 9000))
        count = rng.randrange(1, 12)
        run = []
        for i in range(count):
            length = size if i < count - 1 else rng.randrange(4, size + 1)
            run.append(seq.to_bytes(4, "big") + rng.randbytes(length - 4))
            seq += 1
        runs.append(run)
    runs.insert(5, [b""])
    return runs


@pytest.mark.parametrize("offload", [True, False], ids=["gso-gro", "one-per-call"])
@pytest.mark.parametrize(
    "link",
    [Impairment(loss=0.3), Impairment(loss=0.2, duplicate=0.1, corrupt=0.05)],
    ids=["plain", "general"],
)
def test_gso_and_gro_change_no_decision(offload: bool, link: Impairment) -> None:
    """Runs of datagrams of several sizes sent with UDP GSO (as synack's carrier
    sends), so that with GRO the relay reads several in one call: each meets the fate
    the pure module predicts for its place in the sequence, in order, whether the
    relay reads and sends one per call or many. The answers come back likewise."""
    run_async(gso_gro_run)(offload, link)


async def gso_gro_run(offload: bool, link: Impairment) -> None:
    from synack.drivers.udp import UdpCarrier

    seed = 12
    runs = offload_runs(random.Random(4))
    sent = [d for run in runs for d in run]
    fates = predict(seed, "up", link, [len(d) for d in sent])
    expected = [
        flip(d, c.bit) for d, f in zip(sent, fates, strict=True) if not f.lost for c in f.copies
    ]
    echoed = [d for d in expected if d]  # asyncio's sendto sends no empty datagram
    loop = asyncio.get_running_loop()
    server_t, server = await loop.create_datagram_endpoint(
        lambda: Recorder(echo=True), local_addr=(LOOPBACK, 0)
    )
    relay = UdpRelay(
        (LOOPBACK, 0),
        server_t.get_extra_info("sockname")[:2],
        link,
        Impairment(),
        seed=seed,
        gso=None if offload else False,
        gro=None if offload else False,
    )
    address = await relay.start()
    client = UdpCarrier.bound(LOOPBACK)
    back: list[bytes] = []
    loop.add_reader(client.fileno(), lambda: back.extend(bytes(v) for v, _a in client.recv_batch()))
    try:
        for run in runs:
            assert client.send_batch(run, address) == len(run)
            await asyncio.sleep(0.002)  # slow enough that nothing queues anywhere
        async with asyncio.timeout(10):  # a bound for a loaded machine; 0.1 s here
            while len(back) < len(echoed):
                await asyncio.sleep(0.01)
        listening, upstream = relay.socket_stats()
    finally:
        loop.remove_reader(client.fileno())
        client.close()
        await relay.stop()
        server_t.close()
    got = [d for _t, d, _a in server.got]
    assert len(got) == len(expected) == relay.up.stats.passed
    assert got == expected  # each copy, each flipped bit, in order
    assert relay.up.stats.corrupted == sum(d not in sent for d in expected)
    assert (relay.up.stats.corrupted > 0) == (link.corrupt > 0)
    assert b"" in got  # the empty datagram went through
    assert sorted(back) == sorted(g for g in got if g)  # the answers came back
    assert listening.datagrams_received == len(sent)
    assert upstream.datagrams_sent == len(expected)
    assert relay.gro == relay.gso == offload  # this kernel has both
    if offload:  # several datagrams per call, each way
        assert listening.recv_calls < len(sent) / 2
        assert upstream.send_calls < len(expected) / 2
    else:
        assert listening.recv_calls == len(sent)
        assert upstream.send_calls == len(expected)


@run_async
async def test_duplicates_and_reordering_are_what_the_receiver_sees() -> None:
    n = 400
    link = Impairment(duplicate=0.1, reorder=0.1, reorder_delay=0.1)
    fates = predict(8, "up", link, [16] * n)
    sent_at: list[float] = []
    async with relayed(link, seed=8) as (relay, server, client):
        transport, _ = await client()
        await send_paced(transport, [seq_payload(i) for i in range(n)], 2, 0.002, sent_at)
        await settle([server])
        stats = relay.up.stats
    seqs = [int.from_bytes(d[:4], "big") for _t, d, _a in server.got]
    seen: set[int] = set()
    twice: set[int] = set()
    late: set[int] = set()
    highest = -1
    for s in seqs:
        if s in seen:
            twice.add(s)
        seen.add(s)
        if s < highest:
            late.add(s)
        highest = max(highest, s)
    dup = {i for i, f in enumerate(fates) if len(f.copies) > 1}
    held = {i for i, f in enumerate(fates) if any(c.reorder for c in f.copies)}
    assert twice == dup and len(dup) == stats.duplicated > 0
    assert stats.reordered == sum(c.reorder for f in fates for c in f.copies)
    # Nothing arrives late that was not held; and a held datagram arrives after later
    # ones, if any was sent well within its hold (not so for the last few, or after a
    # stall of the sender on a loaded machine).
    passed_by = {
        i
        for i in held
        if any(
            sent_at[j] < sent_at[i] + 0.05 and not all(c.reorder for c in fates[j].copies)
            for j in range(i + 1, n)
        )
    }
    assert passed_by <= late <= held
    print(f"reorder: {len(twice)} duplicated, {len(late)} seen late of {len(held)} held")


@run_async
async def test_corruption_changes_exactly_one_bit() -> None:
    n = 300
    link = Impairment(corrupt=0.3)
    rng = random.Random(1)
    payloads = [rng.randbytes(200) for _ in range(n)]
    async with relayed(link, seed=3) as (relay, server, client):
        transport, _ = await client()
        await send_paced(transport, payloads, 1, 0.002)  # slow: arrival order = send order
        await settle([server])
        corrupted = relay.up.stats.corrupted
    got = [d for _t, d, _a in server.got]
    assert len(got) == n
    flips = [
        (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).bit_count()
        for a, b in zip(payloads, got, strict=True)
    ]
    assert set(flips) <= {0, 1}
    assert (
        flips.count(1)
        == corrupted
        == sum(1 for f in predict(3, "up", link, [200] * n) if f.copies[0].bit is not None)
    )
    assert within_sigma(corrupted, n, 0.3)


@run_async
async def test_rate_limit_and_queue_drops() -> None:
    """Twice the bottleneck's rate offered for 1.5 s: the receiver measures the rate
    (each datagram counted with its 28 bytes of IP and UDP header, as the relay
    counts it), and what did not arrive is exactly the relay's queue drops."""
    rate = 1_000_000.0  # bytes/s: 1000 wire-sized datagrams of 1000 bytes a second
    size = 1000 - 28
    n = 3000
    link = Impairment(rate=rate, queue_limit=30)
    async with relayed(link, seed=1) as (relay, server, client):
        transport, _ = await client()
        await send_paced(transport, [seq_payload(i, size) for i in range(n)], 20, 0.01)
        await settle([server])
        stats = relay.up.stats
    times = [t for t, _d, _a in server.got]
    measured = (len(times) - 1) * 1000 / (times[-1] - times[0])
    print(f"rate: {measured:,.0f} bytes/s of {rate:,.0f}, {stats.queue_dropped} queue drops")
    assert measured == pytest.approx(rate, rel=0.15)
    assert stats.queue_dropped == n - len(times) > 0
    assert stats.lost == 0


def _rmem_max() -> int:
    with open("/proc/sys/net/core/rmem_max") as f:
        return int(f.read())


@pytest.mark.skipif(
    _rmem_max() < 1 << 20, reason="net.core.rmem_max caps every socket below the burst"
)
@run_async
async def test_a_burst_waits_in_the_relays_socket_not_dropped() -> None:
    """400 datagrams sent while the relay cannot read (the test holds the loop) wait
    in its listening socket: about four times what the default 208 KB buffer holds.
    The rate limit paces them on, so the only queue that may drop is the relay's
    own, and here it is large enough."""
    n = 400
    link = Impairment(rate=4_000_000.0, queue_limit=n)
    async with relayed(link, seed=1) as (relay, server, client):
        transport, _ = await client()
        for i in range(n):  # no await: the relay's loop does not run meanwhile
            transport.sendto(seq_payload(i, 1200))
        await arrived(server, n)
        stats = relay.up.stats
    assert stats.received == stats.passed == len(server.got) == n
    assert sorted(int.from_bytes(d[:4], "big") for _t, d, _a in server.got) == list(range(n))


@run_async
async def test_each_client_has_its_own_mapping_and_idle_ones_expire() -> None:
    async with relayed(Impairment(), echo=True, idle_timeout=0.3) as (relay, server, client):
        (t1, c1), (t2, c2) = await client(), await client()
        for i in range(5):
            t1.sendto(b"one %d" % i)
            t2.sendto(b"two %d" % i)
        await settle([c1, c2], quiet=0.1)
        assert sorted(d for _t, d, _a in c1.got) == [b"one %d" % i for i in range(5)]
        assert sorted(d for _t, d, _a in c2.got) == [b"two %d" % i for i in range(5)]
        assert len({a for _t, _d, a in server.got}) == 2  # two upstream sockets
        assert relay.clients == 2
        async with asyncio.timeout(5):  # idle mappings expire after 0.3 s of silence
            while relay.clients:
                await asyncio.sleep(0.05)
        t1.sendto(b"again")
        await settle([c1], quiet=0.1)
        assert c1.got[-1][1] == b"again"
        assert relay.clients_seen == 3


# ---------------------------------------------------------------------- the command line


def synack_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "synack", *args]


@pytest.mark.parametrize("offload", [True, False], ids=["offload", "no-offload"])
def test_cli_summary_at_stop_matches_what_the_receiver_saw(offload: bool) -> None:
    run_async(cli_summary_run)(offload)


async def cli_summary_run(offload: bool) -> None:
    loop = asyncio.get_running_loop()
    server_t, server = await loop.create_datagram_endpoint(
        lambda: Recorder(echo=True), local_addr=(LOOPBACK, 0)
    )
    port = server_t.get_extra_info("sockname")[1]
    proc = await asyncio.create_subprocess_exec(
        *synack_cmd(
            "netem",
            "--listen",
            f"{LOOPBACK}:0",
            "--target",
            f"{LOOPBACK}:{port}",
            "--loss",
            "10%/20%",
            "--delay",
            "5ms",
            "--duplicate",
            "5%",
            "--seed",
            "4",
            "--json",
            *([] if offload else ["--no-offload"]),
        ),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        banner = (await proc.stderr.readline()).decode()
        m = re.search(r"listening on 127\.0\.0\.1:(\d+), relaying to", banner)
        assert m, banner
        t, me = await loop.create_datagram_endpoint(
            Recorder, remote_addr=(LOOPBACK, int(m.group(1)))
        )
        n = 500
        await send_paced(t, [seq_payload(i) for i in range(n)], 5, 0.002)
        await settle([me, server], quiet=0.2)
        proc.send_signal(signal.SIGINT)
        out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        server_t.close()
    assert proc.returncode == 0
    summary = json.loads(out)
    up, down = summary["directions"]["up"], summary["directions"]["down"]
    assert summary["seed"] == 4 and summary["clients"] == 1
    assert summary["offload"] == ("UDP GSO, UDP GRO" if offload else "off")  # this kernel has both
    assert up["received"] == n and up["passed"] == len(server.got)
    assert down["received"] == len(server.got) and down["passed"] == len(me.got)
    for d in (up, down):
        assert d["received"] + d["duplicated"] == d["passed"] + d["dropped"] + d["unsent"]
    assert within_sigma(up["lost"], n, 0.1) and within_sigma(down["lost"], down["received"], 0.2)
    text = err.decode()
    assert f"{n} received, {up['passed']} passed, {up['dropped']} dropped" in text
    assert f"{down['received']} received, {down['passed']} passed" in text
    assert "delay 5ms loss 10% duplicate 5%" in text and "loss 20%" in text


def test_cli_duration_stops_by_itself_and_sigterm_stops_too() -> None:
    start = time.monotonic()
    done = subprocess.run(
        synack_cmd(
            "netem",
            "--listen",
            f"{LOOPBACK}:0",
            "--target",
            f"{LOOPBACK}:9",
            "--duration",
            "0.5s",
        ),
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - start < 10
    assert "stopped after 0.5s" in done.stderr
    assert "0 received, 0 passed, 0 dropped" in done.stderr
    proc = subprocess.Popen(
        synack_cmd("netem", "--listen", f"{LOOPBACK}:0", "--target", f"{LOOPBACK}:9"),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        assert "listening on" in proc.stderr.readline()
        proc.stderr.readline(), proc.stderr.readline()  # the two direction lines
        proc.send_signal(signal.SIGUSR1)  # counts so far; it carries on
        assert proc.stderr.readline().startswith("synack netem: running for")
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert "synack netem: stopped after" in err


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--listen", "127.0.0.1:0"], "needs --listen HOST:PORT and --target"),
        (["--listen", "127.0.0.1:0", "--target", "127.0.0.1:9", "--loss", "5"], "a percentage"),
        (["--listen", "127.0.0.1:0", "--target", "127.0.0.1:9", "--delay", "20"], "give a unit"),
        (["--listen", "127.0.0.1:0", "--target", "127.0.0.1:9", "--rate", "10"], "with a unit"),
        (["--listen", "127.0.0.1:0", "--target", "127.0.0.1:9", "--queue", "0"], "at least 1"),
        (["--listen", "127.0.0.1:0", "--target", "127.0.0.1:9", "--loss", "1%/2%/3%"], "UP/DOWN"),
        (["--listen", "127.0.0.1", "--target", "127.0.0.1:9"], "HOST:PORT"),
        (["--listen", "127.0.0.1:0", "--target", "127.0.0.1:0"], "port 0"),
        (["--listen", "127.0.0.1:0", "--target", "127.0.0.1:9", "--seed", "x"], "whole number"),
        (["--listen", "127.0.0.1:0", "--target", "127.0.0.1:9", "--bogus"], "unrecognized"),
        (["tun", "--loss", "200%"], "at most 100%"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    args: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        status = main(["netem", *args])
    except SystemExit as exc:
        status = int(exc.code or 0)
    err = capsys.readouterr().err
    assert status == 2
    assert len(err.strip().splitlines()) == 1, err
    assert words in err


def test_a_port_in_use_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    async def body() -> int:
        loop = asyncio.get_running_loop()
        held, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=(LOOPBACK, 0)
        )
        port = held.get_extra_info("sockname")[1]
        try:
            return await asyncio.to_thread(
                main, ["netem", "--listen", f"{LOOPBACK}:{port}", "--target", f"{LOOPBACK}:9"]
            )
        finally:
            held.close()

    assert asyncio.run(body()) == 1
    err = capsys.readouterr().err
    assert err.startswith("synack: cannot listen on") and len(err.splitlines()) == 1


def test_tun_mode_says_in_one_line_what_it_lacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tun_mode.os, "geteuid", lambda: 1000)
    with pytest.raises(UserError, match="needs root"):
        tun_mode.check_can_run()
    monkeypatch.setattr(tun_mode.os, "geteuid", lambda: 0)
    monkeypatch.setattr(tun_mode.shutil, "which", lambda _name: None)
    with pytest.raises(UserError, match="iproute2"):
        tun_mode.check_can_run()


def test_only_namespaces_of_dead_runs_are_stale() -> None:
    names = ["synack-100-a", "synack-100-b", "synack-200-a", "synack-7-a", "other-100-a", "x"]
    alive = {200, 7}.__contains__
    assert tun_mode.stale_namespaces(names, alive, me=1) == ["synack-100-a", "synack-100-b"]
    # Before a run makes its own, names with its PID are a dead run's (a reused PID).
    assert tun_mode.stale_namespaces(["synack-5-a"], lambda _pid: True, me=5) == ["synack-5-a"]


# ---------------------------------------------------------------------- TUN mode (root)


def _tun_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "TUN mode needs root"
    if not os.path.exists("/dev/net/tun"):
        return "TUN mode needs /dev/net/tun"
    if shutil.which("ip") is None:
        return "TUN mode needs the ip command (scripts/system-deps installs iproute2)"
    return None


needs_tun = pytest.mark.skipif(_tun_unavailable() is not None, reason=_tun_unavailable() or "")


def leftovers(pid: int) -> list[str]:
    """Namespaces and devices of run `pid` still present."""
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found = [line.split()[0] for line in names.splitlines() if f"synack-{pid}-" in line]
    found += [d for d in os.listdir("/sys/class/net") if d.startswith(f"synack{pid}")]
    return found


SERVER = """
import hashlib, json, socket, struct, sys
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("198.18.1.1", 5001))
srv.listen(1)
conn, _ = srv.accept()
conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
f = conn.makefile("rb")
for _ in range(20):
    conn.sendall(f.read(1))
(size,) = struct.unpack("!Q", f.read(8))
h = hashlib.sha256()
while size:
    chunk = f.read(min(size, 65536))
    h.update(chunk)
    size -= len(chunk)
conn.sendall(h.digest())
conn.close()
names, values = [line.split() for line in open("/proc/net/snmp") if line.startswith("Tcp:")]
json.dump(dict(zip(names[1:], map(int, values[1:]))), open(sys.argv[1], "w"))
"""

CLIENT = """
import hashlib, json, os, socket, struct, sys, time
deadline = time.monotonic() + 30
while True:
    try:
        s = socket.create_connection(("198.18.1.1", 5001), timeout=10)
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.2)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
s.settimeout(30)
rtts = []
for _ in range(20):
    t = time.monotonic()
    s.sendall(b"p")
    assert s.recv(1) == b"p"
    rtts.append(time.monotonic() - t)
data = os.urandom(1024 * 1024)
t = time.monotonic()
s.sendall(struct.pack("!Q", len(data)) + data)
digest = b""
while len(digest) < 32:
    more = s.recv(32 - len(digest))
    if not more:
        break
    digest += more
elapsed = time.monotonic() - t
info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
tcpi_rtt = struct.unpack_from("I", info, 68)[0] / 1e6
json.dump({"ok": digest == hashlib.sha256(data).digest(), "rtts": rtts,
           "tcpi_rtt": tcpi_rtt, "elapsed": elapsed}, open(sys.argv[1], "w"))
"""


def kernel_tcp_through_tun(
    tmp_path: Path, *impairments: str
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], str]:
    """A 1 MiB kernel TCP transfer from namespace a to b through `synack netem tun`:
    (client's result, server's TCP counters, netem's JSON summary, netem's stderr)."""
    (tmp_path / "server.py").write_text(SERVER)
    (tmp_path / "client.py").write_text(CLIENT)
    result, counters = tmp_path / "result.json", tmp_path / "counters.json"
    py = sys.executable
    proc = subprocess.Popen(
        synack_cmd(
            "netem", "tun", *impairments, "--json", "--duration", "60s",
            "--run-b", f"{py} {tmp_path / 'server.py'} {counters}",
            "--run-a", f"{py} {tmp_path / 'client.py'} {result}",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert leftovers(proc.pid) == []
    assert f"synack-{proc.pid}-a" in err and "stopped after" in err
    summary = json.loads(out)
    assert summary["run_a"] == 0
    return json.loads(result.read_text()), json.loads(counters.read_text()), summary, err


@pytest.mark.root
@needs_tun
def test_kernel_tcp_between_namespaces_through_tun_mode(tmp_path: Path) -> None:
    got, _counters, summary, _err = kernel_tcp_through_tun(
        tmp_path, "--loss", "5%", "--delay", "20ms", "--seed", "2"
    )
    up, down = summary["directions"]["up"], summary["directions"]["down"]
    n = up["received"] + down["received"]
    lost = up["lost"] + down["lost"]
    print(
        f"kernel TCP: 1 MiB in {got['elapsed']:.2f}s, ping-pong rtt min "
        f"{min(got['rtts']) * 1e3:.1f}ms, tcpi_rtt {got['tcpi_rtt'] * 1e3:.1f}ms, "
        f"relay dropped {lost} of {n} packets ({lost / n:.1%})"
    )
    assert got["ok"], "the transfer arrived damaged"
    assert min(got["rtts"]) >= 0.040
    assert got["tcpi_rtt"] >= 0.040
    assert n > 500
    assert within_sigma(lost, n, 0.05)


@pytest.mark.root
@needs_tun
def test_tun_corruption_is_caught_by_the_kernels_tcp_checksum(tmp_path: Path) -> None:
    """Bits flipped in the IP payload (the IP header left valid) reach b's TCP, whose
    checksum rejects them (InCsumErrors); TCP resends and the data arrives intact."""
    got, counters, summary, _err = kernel_tcp_through_tun(
        tmp_path, "--corrupt", "2%/0%", "--delay", "2ms", "--seed", "3"
    )
    corrupted = summary["directions"]["up"]["corrupted"]
    print(
        f"corruption: {corrupted} packets damaged, b's TCP counted "
        f"{counters['InCsumErrors']} checksum errors"
    )
    assert got["ok"]
    assert corrupted > 5
    # b reads its counters when the transfer is done; a corrupted FIN or ACK may still
    # be on its way then (or held when netem stops).
    assert corrupted - 3 <= counters["InCsumErrors"] <= corrupted


@pytest.mark.root
@needs_tun
def test_a_failed_setup_removes_what_it_made(monkeypatch: pytest.MonkeyPatch) -> None:
    real_ip = tun_mode.ip

    def failing_ip(*args: str) -> str:
        if "addr" in args and tun_mode.B_ADDRESS + "/15" in args:
            raise UserError("ip addr add: pretend failure")
        return real_ip(*args)

    monkeypatch.setattr(tun_mode, "ip", failing_ip)
    pid = os.getpid()
    topology = tun_mode.Topology(pid)
    with pytest.raises(UserError, match="pretend failure"):
        topology.setup()
    assert leftovers(pid) == []


@pytest.mark.root
@needs_tun
def test_tun_mode_cleans_up_on_sigterm_and_after_a_killed_run() -> None:
    # A run stopped by SIGTERM removes its namespaces and devices.
    proc = subprocess.Popen(
        synack_cmd("netem", "tun", "--delay", "1ms"), stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stderr is not None
        banner = proc.stderr.readline()
        assert f"synack-{proc.pid}-a (198.18.0.1)" in banner, banner
        assert sorted(leftovers(proc.pid)) == sorted(
            [f"synack-{proc.pid}-a", f"synack-{proc.pid}-b"]
        )
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert leftovers(proc.pid) == []
    # A run killed outright leaves its namespaces; the next run removes them once the
    # PID in their names is provably gone, and leaves a live PID's alone.
    proc = subprocess.Popen(synack_cmd("netem", "tun"), stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        assert "synack netem tun:" in proc.stderr.readline()
    finally:
        proc.kill()
        proc.wait()
    dead = proc.pid
    assert sorted(leftovers(dead)) == [f"synack-{dead}-a", f"synack-{dead}-b"]
    live = f"synack-{os.getpid()}-a"
    subprocess.run(["ip", "netns", "add", live], check=True)
    try:
        done = subprocess.run(
            synack_cmd("netem", "tun", "--clean"), capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, done.stderr
        assert leftovers(dead) == []
        assert f"removed namespace synack-{dead}-a left by a run that died" in done.stderr
        assert (
            live in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        )
    finally:
        subprocess.run(["ip", "netns", "delete", live], check=False)
