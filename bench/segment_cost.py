"""CPU time per segment of our TCP over UDP, sender and receiver apart, in one process.

bench/transport_speed.py measures goodput between two processes, which on a shared
2-vCPU machine moves with whatever else runs. This bench runs a bulk transfer with
both ends on one asyncio loop in one thread, over real UDP sockets on loopback, and
times each end's own work with `time.thread_time` (CPU time, not wall time):

* sender engine / receiver engine: the driver's callbacks for that end's UDP socket
  (reading datagrams, the CRC-32, the core's input and output, events handed to the
  transport, sending), with `StreamReader.feed_data` inside the receiver's;
* sender app: `StreamWriter.write` (the copy into the connection's send buffer);
* the rest: the receiver's `StreamReader.read` (a copy out of its buffer), the event
  loop's own work (epoll, callbacks, task switches), the sender's `drain`;
* everything: the thread's CPU time from first to last byte.

Both ends share one vCPU, so the transfer runs as a ping-pong of bursts; the costs per
segment are what a two-process run pays on each side. Each figure is the minimum over
the rounds (interference only ever adds time); random payloads.

    python3 bench/segment_cost.py                          # 3 carriages, 30 MB, 5 rounds
    python3 bench/segment_cost.py --kinds mtu1500 --size 20 --rounds 3
    python3 bench/segment_cost.py --profile /tmp/seg.prof --kinds mtu1500   # and cProfile it
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import sys
import time
from pathlib import Path
from typing import Any

from synack.drivers import aio
from synack.drivers.aio import LoopEngine

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transport_speed import CARRIERS, CHUNK, MB

LIMIT = 120.0
PARTS = ("sender engine", "receiver engine", "sender app")
REST = "the rest: app reads, event loop"


class Clock:
    """CPU seconds spent in each part, by which engine (UDP port) a callback belongs to."""

    def __init__(self) -> None:
        self.spent = dict.fromkeys(PARTS, 0.0)
        self.receiver_port = -1

    def wrap_engines(self) -> list[tuple[str, Any]]:
        """Time LoopEngine's callbacks (patched on the class; returns what to restore)."""
        saved = []
        for name in ("_readable", "_kicked", "_fire", "_writable"):
            original = getattr(LoopEngine, name)
            saved.append((name, original))

            def timed(self: LoopEngine, *args: Any, _f: Any = original) -> None:
                start = time.thread_time()
                try:
                    _f(self, *args)
                finally:
                    part = (
                        "receiver engine" if self.port == clock.receiver_port else "sender engine"
                    )
                    clock.spent[part] += time.thread_time() - start

            setattr(LoopEngine, name, timed)
        return saved


clock = Clock()


async def transfer(kind: str, size: int) -> dict[str, float]:
    """One bulk transfer; CPU seconds per part, and the total, for it."""
    clock.spent = dict.fromkeys(PARTS, 0.0)
    done: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        total = 0
        while data := await reader.read(1 << 20):
            total += len(data)
        writer.close()
        done.set_result(total)

    server = await aio.start_server(sink, "127.0.0.1", 0, limit=1 << 20, carrier=CARRIERS[kind])
    clock.receiver_port = server.addresses[0][1]
    _reader, writer = await aio.open_connection(
        "127.0.0.1", clock.receiver_port, limit=1 << 20, carrier=CARRIERS[kind]
    )
    payload = memoryview(os.urandom(CHUNK))
    cpu_start = time.thread_time()
    sent = 0
    async with asyncio.timeout(LIMIT):
        while sent < size:
            n = min(CHUNK, size - sent)
            start = time.thread_time()
            writer.write(payload[:n])
            clock.spent["sender app"] += time.thread_time() - start
            sent += n
            await writer.drain()
        writer.write_eof()
        total = await done
    cpu = time.thread_time() - cpu_start
    if total != size:
        raise AssertionError(f"received {total} of {size} bytes")
    mss = writer.transport.connection.snd_mss
    writer.close()
    server.close()
    rest = cpu - sum(clock.spent.values())
    return {**clock.spent, REST: rest, "everything": cpu, "segments": size / mss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", default=",".join(CARRIERS))
    parser.add_argument("--size", type=int, default=30, help="MB per transfer")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", metavar="FILE", help="cProfile one more transfer per kind")
    args = parser.parse_args()
    kinds = args.kinds.split(",")
    saved = clock.wrap_engines()
    best: dict[str, dict[str, float]] = {}
    try:
        for _ in range(args.rounds):
            for kind in kinds:
                result = asyncio.run(transfer(kind, args.size * MB))
                mine = best.setdefault(kind, result)
                for key, value in result.items():
                    mine[key] = min(mine[key], value)
    finally:
        for name, original in saved:
            setattr(LoopEngine, name, original)
    print(f"{args.size} MB per transfer, minimum of {args.rounds} rounds, µs of CPU per segment")
    print("| carriage | " + " | ".join(PARTS) + f" | {REST} | everything | segments |")
    print("|---|" + "---|" * (len(PARTS) + 3))
    for kind in kinds:
        r = best[kind]
        per = [r[p] / r["segments"] * 1e6 for p in (*PARTS, REST, "everything")]
        print(f"| {kind} | " + " | ".join(f"{v:.2f}" for v in per) + f" | {r['segments']:.0f} |")
    if args.profile:
        for kind in kinds:
            profiler = cProfile.Profile(time.process_time)
            profiler.enable()
            asyncio.run(transfer(kind, args.size * MB))
            profiler.disable()
            path = args.profile if len(kinds) == 1 else f"{args.profile}.{kind}"
            profiler.dump_stats(path)
            print(f"profile of {kind}: {path}")


if __name__ == "__main__":
    main()
