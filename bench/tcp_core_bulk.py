"""Bulk transfer through the sans-IO TCP core on the fake network, in one thread.

Two hosts on `synack.testing.FakeNetwork`, MSS 1460 announced (1448 bytes of payload
per segment with timestamps), a 0.5 ms one-way delay. The sender's application keeps
the send buffer full; the receiver's reads everything that arrives. The figure is
payload bytes per second of CPU time of this process (CPU time rather than wall time
because these machines are shared and noisy; the two agree on an idle machine).

The baseline, measured in the same run and interleaved with ours, is the bare loop
the project brief describes: pack a 20-byte header with ``struct.pack_into`` into a
preallocated buffer, copy a 1448-byte payload behind it and parse the header back.
It is the floor of per-segment work in Python; the ratio says how many such loops one
segment of our TCP costs, both directions and every ACK included.

    python3 bench/tcp_core_bulk.py                 # lossless, 1% and 5% loss
    python3 bench/tcp_core_bulk.py --size 20 --rounds 1
    python3 bench/tcp_core_bulk.py --profile       # where the time goes (cProfile)
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import struct
import time
from dataclasses import dataclass

from synack.tcp import Config, State
from synack.testing.fakenet import FakeNetwork, Link, connected_pair

MB = 1_000_000
PAYLOAD = 1448
BASELINE_BYTES = 30 * MB
REFILL = 256 * 1024
# The bare loop's speed on this machine when nothing else runs; the ratio times this is
# what the transfer would reach on a quiet machine.
QUIET_BASELINE = 2300 * MB
HEADER = struct.Struct("!HHIIBBHHH")


def baseline(total: int) -> float:
    """Bytes per CPU second of the bare per-segment loop."""
    buf = bytearray(HEADER.size + PAYLOAD)
    payload = os.urandom(PAYLOAD)
    segments = total // PAYLOAD
    moved = 0
    start = time.process_time()
    for i in range(segments):
        HEADER.pack_into(buf, 0, 40000, 80, i, i, 0x50, 0x10, 65535, 0, 0)
        buf[HEADER.size :] = payload
        moved += len(buf) - ((HEADER.unpack_from(buf)[4] >> 4) << 2)
    return moved / (time.process_time() - start)


@dataclass
class Result:
    rate: float  # payload bytes per CPU second
    virtual: float  # virtual seconds the transfer took
    retransmits: int
    timeouts: int
    segments: int


def transfer(total: int, loss: float, config: Config, seed: int = 1) -> Result:
    """Move `total` bytes client -> server; returns the rate and what the sender saw."""
    net = FakeNetwork(seed=seed, link=Link(delay=0.0005))
    client, server = connected_pair(net, config)
    net.set_default_link(Link(delay=0.0005, loss=loss))
    # Random bytes: the Internet checksum of zeros costs almost nothing in Python, so a
    # zero-filled payload would flatter the figures.
    chunk = memoryview(os.urandom(1 << 20))
    sent = 0
    received = 0

    def feed(now: float) -> None:
        # An application refills the buffer when it has room for a good chunk, as one
        # woken by the SendSpace event (or a writable select()) would.
        nonlocal sent
        if client.send_space < REFILL and sent < total:
            return
        while sent < total and client.send_space:
            n = client.send(chunk[: min(len(chunk), total - sent)])
            if not n:
                break
            sent += n
        if sent == total and client.state is State.ESTABLISHED:
            client.shutdown()

    def drain(now: float) -> None:
        nonlocal received
        data = server.receive()
        while data:
            received += len(data)
            data = server.receive()

    net.set_app("198.18.0.1", feed)
    net.set_app("198.18.0.2", drain)
    feed(net.now)
    start_cpu = time.process_time()
    start_virtual = net.now
    net.run_until(lambda: server.at_eof, timeout=3600.0, what="the whole transfer")
    cpu = time.process_time() - start_cpu
    if received != total:
        raise AssertionError(f"received {received} of {total} bytes")
    info = client.info()
    return Result(
        total / cpu,
        net.now - start_virtual,
        info["retransmits"],
        info["timeouts"],
        info["segments_sent"],
    )


def measure(label: str, total: int, loss: float, config: Config, rounds: int) -> None:
    """Median of `rounds` runs; each run's baseline is the mean of one just before and one
    just after it, so that a machine slowing down mid-run moves both alike."""
    runs = []
    for i in range(rounds):
        before = baseline(BASELINE_BYTES)
        result = transfer(total, loss, config, seed=i + 1)
        base = (before + baseline(BASELINE_BYTES)) / 2
        runs.append((result.rate / base, result, base))
    runs.sort(key=lambda run: run[0])
    ratio, r, base = runs[len(runs) // 2]
    per_segment = PAYLOAD / r.rate * 1e6
    print(
        f"| {label} | {total // MB} MB | {r.rate / MB:6.1f} MB/s ({per_segment:4.1f} µs/segment) "
        f"| {base / MB:5.0f} MB/s | {ratio:.3f} | {QUIET_BASELINE * ratio / MB:5.0f} MB/s "
        f"| {r.retransmits} | {r.timeouts} | {total / r.virtual / MB:7.1f} MB/s |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=50, help="MB for the lossless runs")
    parser.add_argument("--lossy-size", type=int, default=10, help="MB for the lossy runs")
    parser.add_argument("--rounds", type=int, default=5, help="runs per case (median shown)")
    parser.add_argument("--profile", action="store_true", help="profile one lossless run")
    args = parser.parse_args()

    default = Config(secret=b"bench" * 8)
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        transfer(args.size * MB, 0.0, default)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(18)
        return

    print(
        "| case | size | synack TCP (CPU time) | baseline loop | ratio "
        f"| ratio x {QUIET_BASELINE // MB} MB/s | retransmits | RTOs "
        "| goodput in virtual time |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    measure("no loss", args.size * MB, 0.0, default, args.rounds)
    measure(
        "no loss, checksums off",
        args.size * MB,
        0.0,
        Config(secret=b"bench" * 8, checksum=False),
        args.rounds,
    )
    measure(
        "no loss, NewReno, no SACK/timestamps",
        args.size * MB,
        0.0,
        Config(secret=b"bench" * 8, congestion_control="newreno", sack=False, timestamps=False),
        args.rounds,
    )
    measure("1% loss", args.lossy_size * MB, 0.01, default, args.rounds)
    measure("5% loss", args.lossy_size * MB, 0.05, default, args.rounds)


if __name__ == "__main__":
    main()
