"""Where the virtual time of a lossy bulk transfer goes (issue 12 point 13's diagnosis).

The workload is `synack.testing.loss_runs.bulk_transfer`'s (CUBIC, random loss each
way from the end of the handshake, random payload). The packet tap counts the packets
on the wire; while none is, the path is idle, and the idle time is charged to the
timer whose expiry ended it (the sender's RTO, probe timeout or RACK reordering timer,
or the receiver's delayed ACK). Every event also samples the sender's state: open,
fast recovery, or an RTO's recovery. This reads the core's private timer fields: it is
a diagnostic, not an API.

    python3 bench/recovery_breakdown.py                       # 2 MB, 6 seeds, 1/20/100 ms, 5%
    python3 bench/recovery_breakdown.py --size 10 --seeds 10  # the bench's own transfers
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from synack.tcp.connection import Connection
from synack.tcp.endpoint import Datagram, Endpoint
from synack.testing.fakenet import FakeNetwork, Link, PacketEvent, connected_pair
from synack.testing.loss_runs import CLIENT, SERVER, mathis

MB = 1_000_000
TIMERS = ("rto", "pto", "reo", "delack")


class _Watch:
    """An endpoint that notes which of its connection's timers were due when it ran."""

    def __init__(self, inner: Endpoint, conn: Connection, who: str, fired: list[Any]) -> None:
        self.inner, self.conn, self.who, self.fired = inner, conn, who, fired
        self.handle_segment = inner.handle_segment
        self.get_timer = inner.get_timer

    def segments_to_send(self, now: float) -> Iterable[Datagram]:
        return self.inner.segments_to_send(now)

    def handle_timer(self, now: float) -> None:
        c = self.conn
        r = c._rec
        due = {
            "rto": c._rto_at,
            "pto": r.pto_at,
            "reo": r.reo_at,
            "delack": c._delack_at,
        }
        names = [n for n, at in due.items() if at is not None and now >= at]
        if names:
            self.fired.append((now, f"{self.who} {'+'.join(names)}"))
        self.inner.handle_timer(now)


@dataclass
class Breakdown:
    seconds: float
    ratio: float  # goodput / Mathis
    busy: float  # seconds with a packet on the wire
    idle: Counter[str]  # idle seconds by the timer that ended them
    phase: Counter[str]  # seconds by the sender's state
    stats: dict[str, int]


def breakdown(size: int, rtt: float, loss: float, seed: int) -> Breakdown:
    net = FakeNetwork(seed=seed, link=Link(delay=rtt / 2))
    client, server = connected_pair(net, None, client_address=CLIENT, server_address=SERVER)
    net.set_default_link(Link(delay=rtt / 2, loss=loss))
    fired: list[tuple[float, str]] = []
    net.attach(CLIENT, _Watch(net.detach(CLIENT), client, "sender", fired))
    net.attach(SERVER, _Watch(net.detach(SERVER), server, "receiver", fired))
    idle: Counter[str] = Counter()
    phase: Counter[str] = Counter()
    state: dict[str, Any] = {"wire": 0, "quiet": None, "last": None, "phase": "open"}
    busy = 0.0

    def tap(now: float, event: PacketEvent, data: Any, src: bytes, dst: bytes) -> None:
        nonlocal busy
        last = state["last"]
        if last is not None:
            if state["wire"]:
                busy += now - last
            phase[state["phase"]] += now - last
        state["last"] = now
        rec = client._rec
        state["phase"] = "fast" if rec.in_recovery else "rto" if rec.rto_recovery else "open"
        if event is PacketEvent.SENT:
            if not state["wire"] and state["quiet"] is not None and now > state["quiet"]:
                causes = sorted({w for t, w in fired if t == now}) or ["other"]
                idle[",".join(causes)] += now - state["quiet"]
            state["wire"] += 1
        elif event in (PacketEvent.DELIVERED, PacketEvent.LOST, PacketEvent.QUEUE_DROP):
            state["wire"] -= 1
            if not state["wire"]:
                state["quiet"] = now

    net.tap = tap
    chunk = memoryview(random.Random(seed).randbytes(1 << 20))
    sent = received = 0

    def feed(now: float) -> None:
        nonlocal sent
        while sent < size and client.send_space:
            n = client.send(chunk[: min(len(chunk), size - sent, client.send_space)])
            if not n:
                break
            sent += n

    def drain(now: float) -> None:
        nonlocal received
        while data := server.receive():
            received += len(data)

    net.set_app(CLIENT, feed)
    net.set_app(SERVER, drain)
    start = net.now
    feed(start)
    done = net.run_until(lambda: received >= size, 7200.0, what="the whole transfer")
    seconds = done - start
    ratio = size / seconds / mathis(client.snd_mss, rtt, loss)
    return Breakdown(seconds, ratio, busy, idle, phase, dict(client.stats))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=float, default=2.0, help="MB per transfer (default 2)")
    parser.add_argument("--seeds", type=int, default=6, help="seeds per RTT (default 6)")
    parser.add_argument("--rtts", default="1,20,100", help="RTTs in ms (default 1,20,100)")
    parser.add_argument("--loss", type=float, default=5.0, help="loss %% each way (default 5)")
    args = parser.parse_args(argv)
    size = int(args.size * MB)
    loss = args.loss / 100
    print(
        f"{args.size:g} MB, seeds 0-{args.seeds - 1}, {args.loss:g}% loss each way; shares of all time"
    )
    head = (
        "| RTT | median / Mathis | wire busy | idle: RTO | idle: probe | idle: RACK timer "
        "| idle: delayed ACK | in fast recovery | in RTO recovery | RTOs | fast recoveries "
        "| rtts per fast recovery |"
    )
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for rtt in (float(x) / 1000 for x in args.rtts.split(",")):
        runs = [breakdown(size, rtt, loss, seed) for seed in range(args.seeds)]
        total = sum(r.seconds for r in runs)
        idle: Counter[str] = Counter()
        phase: Counter[str] = Counter()
        for r in runs:
            idle.update(r.idle)
            phase.update(r.phase)

        def share(key: str, idle: Counter[str] = idle, total: float = total) -> str:
            return f"{sum(v for k, v in idle.items() if key in k) / total:.1%}"

        fast = sum(r.stats["fast_retransmits"] for r in runs)
        rtos = sum(r.stats["timeouts"] for r in runs)
        print(
            f"| {rtt * 1000:g} ms | {statistics.median(r.ratio for r in runs):.2f}x "
            f"| {sum(r.busy for r in runs) / total:.0%} | {share('rto')} | {share('pto')} "
            f"| {share('reo')} | {share('delack')} | {phase['fast'] / total:.0%} "
            f"| {phase['rto'] / total:.0%} | {rtos} | {fast} "
            f"| {phase['fast'] / rtt / max(fast, 1):.2f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
