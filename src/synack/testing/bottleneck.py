"""Bulk flows through one rate-limited bottleneck on virtual time, for congestion-control
tests and benches: goodput, the standing queue, and how flows share the link.

`bottleneck_run` puts one or more connections (each with its own congestion control)
between the same two hosts, so they meet in the same bottleneck queue (`Link.rate`,
`Link.queue_limit`), with random loss each way from the end of the handshakes. Every
sender keeps its send buffer full of random bytes; every receiver reads at once.
Goodput is measured after a warm-up, so it shows the steady state, not slow start.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from synack.tcp.config import Config
from synack.tcp.connection import Connection
from synack.tcp.state import State
from synack.testing.fakenet import FakeNetwork, Link

CLIENT = "198.18.0.1"
SERVER = "198.18.0.2"
# A full segment on the fake network's links: 1448 bytes of payload, 20 of header and
# 12 of timestamps (the links carry segments, without an IP header).
WIRE_SEGMENT = 1480
PAYLOAD = 1448


@dataclass(slots=True)
class Flow:
    """One connection's part of a run."""

    congestion_control: str
    goodput: float = 0.0  # bytes/s delivered to the receiving application, after warm-up
    received: int = 0  # bytes over the whole run
    retransmits: int = 0
    timeouts: int = 0


@dataclass(slots=True)
class Run:
    rate: float  # bottleneck bytes/s (of segments on the wire)
    rtt: float  # propagation round trip, seconds
    loss: float  # random loss each way
    buffer: int  # bottleneck queue, packets
    flows: list[Flow]
    queue: list[int] = field(default_factory=list)  # sampled queue lengths, bytes

    @property
    def bdp(self) -> float:
        """The bandwidth-delay product in bytes."""
        return self.rate * self.rtt

    @property
    def utilisation(self) -> float:
        """All flows' goodput over the bottleneck rate."""
        return sum(f.goodput for f in self.flows) / self.rate

    @property
    def queue_median(self) -> float:
        return statistics.median(self.queue) if self.queue else 0.0

    @property
    def queue_max(self) -> int:
        return max(self.queue, default=0)


def buffer_packets(rate: float, rtt: float, bdps: float) -> int:
    """A bottleneck queue of `bdps` bandwidth-delay products, in full segments."""
    return max(4, math.ceil(bdps * rate * rtt / WIRE_SEGMENT))


def bottleneck_run(
    ccs: Sequence[str],
    rate: float,
    rtt: float,
    *,
    loss: float = 0.0,
    buffer: int | None = None,
    warmup: float | None = None,
    measure: float = 5.0,
    seed: int = 1,
) -> Run:
    """Run one bulk flow per name in `ccs` ("bbr", "cubic", "newreno") through a
    bottleneck of `rate` bytes/s and `rtt` seconds of propagation round trip, with
    `loss` random loss each way, for `warmup` (default: 1 s plus 20 round trips) and then
    `measure` virtual seconds. `buffer` is the queue in packets (default: 4 BDPs)."""
    if buffer is None:
        buffer = buffer_packets(rate, rtt, 4.0)
    if warmup is None:
        warmup = 1.0 + 20 * rtt
    net = FakeNetwork(seed=seed)
    # Buffers far above what any window here reaches, so that only the path limits.
    space = max(4 << 20, int(8 * rate * rtt))
    base = Config(send_buffer=space, receive_buffer=space, secret=b"bottleneck")
    client = net.add_host(CLIENT, base)
    server = net.add_host(SERVER, base)
    clean = Link(delay=rtt / 2, rate=rate, queue_limit=buffer)
    net.set_path(CLIENT, SERVER, clean, Link(delay=rtt / 2))

    payload = memoryview(random.Random(seed).randbytes(1 << 20))
    senders: list[Connection] = []
    receivers: list[Connection | None] = []
    for i, name in enumerate(ccs):
        port = 5000 + i
        server.listen(port)
        cfg = Config(congestion_control=name, send_buffer=space, receive_buffer=space, secret=b"b")
        senders.append(client.connect((SERVER, port), net.now, config=cfg))
        receivers.append(None)
    offsets = [0] * len(senders)

    def fill(now: float) -> None:
        for i, conn in enumerate(senders):
            if conn.state is not State.ESTABLISHED:
                continue
            while conn.send_space > 0:
                off = offsets[i]
                n = conn.send(payload[off : off + min(conn.send_space, len(payload) - off)])
                offsets[i] = (off + n) % len(payload)
                if n == 0:
                    break

    received = [0] * len(senders)

    def drain(now: float) -> None:
        for i in range(len(senders)):
            conn = receivers[i]
            if conn is None:
                conn = receivers[i] = server.accept(5000 + i)
                if conn is None:
                    continue
            n = conn.receive_available
            if n:
                conn.receive()
                received[i] += n

    net.set_app(CLIENT, fill)
    net.set_app(SERVER, drain)
    net.run_until(
        lambda: (
            all(c.state is State.ESTABLISHED for c in senders)
            and all(r is not None for r in receivers)
        ),
        30.0,
        what="every flow established",
    )
    if loss:
        net.set_path(
            CLIENT,
            SERVER,
            Link(delay=rtt / 2, rate=rate, queue_limit=buffer, loss=loss),
            Link(delay=rtt / 2, loss=loss),
        )
    fill(net.now)
    net.run_for(warmup)
    start = list(received)
    run = Run(rate, rtt, loss, buffer, [Flow(name) for name in ccs])
    step = max(rtt / 4, 0.002)
    t_end = net.now + measure
    t = net.now
    while t < t_end:  # a bounded number of samples: measure / step
        t += step
        net.run_for(min(step, t_end - net.now))
        run.queue.append(net.queued(CLIENT, SERVER) * WIRE_SEGMENT)
    for i, flow in enumerate(run.flows):
        flow.received = received[i]
        flow.goodput = (received[i] - start[i]) / measure
        stats = senders[i].stats
        flow.retransmits = stats["retransmits"]
        flow.timeouts = stats["timeouts"]
    return run
