"""1 KiB request/response exchanges under random loss, on virtual time.

The workload of `bench/side_by_side.py`'s rr rows, on the seeded fake network instead
of `synack netem`, so a seed gives the same losses and the same times on any machine:
one connection, 1 KiB random requests echoed one at a time (no_delay), 20 ms each way,
LOSS random loss each way from the end of the handshake, EXCHANGES exchanges per seed.
It prints, per seed and pooled, the median, the 99th percentile and the maximum, how
many exchanges took over 250 ms (a repair) and over 450 ms (two), and both ends'
probes and timeouts. Run it against two source trees to compare their timers:

    PYTHONPATH=src python3 bench/rr_random_loss.py                  # 5%, seeds 1-10
    PYTHONPATH=src python3 bench/rr_random_loss.py --loss 1 --seeds 1-5
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
from typing import Any

from synack.tcp import Config
from synack.testing import FakeNetwork, Link, connected_pair

DELAY = 0.020  # seconds each way
REQUEST = 1024
SLOW = (0.250, 0.450)  # one repair, two
CLIENT, SERVER = "198.18.0.1", "198.18.0.2"


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile, as side_by_side.py computes it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def run(seed: int, loss: float, exchanges: int) -> tuple[list[float], dict[str, int]]:
    net = FakeNetwork(seed=seed, link=Link(delay=DELAY))
    client, server = connected_pair(
        net, Config(no_delay=True), client_address=CLIENT, server_address=SERVER
    )
    net.set_default_link(Link(delay=DELAY, loss=loss))
    rng = random.Random(seed)
    got = [0]  # bytes of the current answer at the client

    def echo(now: float) -> None:
        data = server.receive()
        if data:
            server.send(data)

    def on_client(now: float) -> None:
        got[0] += len(client.receive())

    net.set_app(SERVER, echo)
    net.set_app(CLIENT, on_client)
    times = []
    for _ in range(exchanges):
        got[0] = 0
        start = net.now
        client.send(rng.randbytes(REQUEST))
        times.append(net.run_until(lambda: got[0] >= REQUEST, 120.0, what="an answer") - start)
    counters = {}
    for name, conn in (("client", client), ("server", server)):
        info: dict[str, Any] = conn.info()
        for key in ("loss_probes", "timeouts"):
            counters[f"{name} {key}"] = int(info.get(key, 0))
    return times, counters


def seeds_of(text: str) -> list[int]:
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(x) for x in text.split(",")]


def summary(times: list[float]) -> str:
    over = [sum(t > s for t in times) for s in SLOW]
    return (
        f"median {statistics.median(times) * 1e3:.0f} ms, p99 {percentile(times, 0.99) * 1e3:.0f} ms, "
        f"max {max(times) * 1e3:.0f} ms, over 250 ms {over[0]}, over 450 ms {over[1]}"
    )


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--loss", type=float, default=5.0, help="loss %% each way (5)")
    p.add_argument("--seeds", default="1-10", help="seeds: 1-10 or 1,4,7 (1-10)")
    p.add_argument("--exchanges", type=int, default=600, help="exchanges per seed (600)")
    a = p.parse_args(argv)
    pooled: list[float] = []
    for seed in seeds_of(a.seeds):
        times, counters = run(seed, a.loss / 100, a.exchanges)
        pooled += times
        probes = ", ".join(f"{k} {v}" for k, v in counters.items())
        print(f"seed {seed}: {summary(times)}; {probes}")
    print(f"all {len(pooled)}: {summary(pooled)}")


if __name__ == "__main__":
    main(sys.argv[1:])
