"""The cost of one request/response exchange, both ends on one asyncio loop in one process.

bench/transport_speed.py times round trips between two processes, which on a shared
2-vCPU machine moves with whatever else runs. Here a client and an echo server share
one loop and one thread over real UDP sockets on loopback (our TCP) or a real kernel
TCP connection ("os"), and each exchange (1 KiB request written, 1 KiB response read
back, TCP_NODELAY on) is charged the thread's CPU time: both ends' work, the event
loop's, the kernel's for the system calls. Random payloads.

* CPU µs per exchange: `time.thread_time` over all exchanges of a run, divided; the
  median of the runs, and their range.
* Python calls per exchange (``--calls``): one more run under cProfile, its total
  call count (Python functions and built-ins alike) over the exchanges, and the call
  sites with the most calls per exchange. The profiler slows the run, not the count.
* Bytecodes per exchange (``--opcodes``): one more run under ``sys.settrace`` with
  opcode events, the bytecode instructions the interpreter ran per exchange, and the
  functions that ran the most. A measure of the Python work that no other load moves
  (only the timers' early wake-ups, a few per cent in a run slowed this much).
* Instructions per exchange (``--instructions``, needs valgrind): cachegrind counts the
  instructions of a child running `--exchanges` exchanges and of one running a fifth as
  many; the difference over the difference in exchanges leaves start-up, handshake and
  warm-up out. User space only (the interpreter and C code, not the kernel's side of the
  system calls, which is the same for every version of ours), and steady under load,
  where CPU time on this shared machine moves by a third from run to run.
* ``--trees A,B``: run the same bench in a child process for each source tree
  (``PYTHONPATH=TREE/src``), alternating tree by tree and run by run, and report each
  tree's figures and the ratio of medians, so that two versions are compared under the
  same load.

    python3 bench/rr_cost.py                                  # os and mtu1500, 5 runs of 2000
    python3 bench/rr_cost.py --kinds mtu1500 --calls --top 30  # where the calls go
    python3 bench/rr_cost.py --kinds mtu1500 --opcodes --exchanges 300 --runs 1
    python3 bench/rr_cost.py --trees /work/main,. --kinds mtu1500 --runs 3
    python3 bench/rr_cost.py --trees /work/main,. --kinds os,mtu1500 --instructions
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from synack.drivers import aio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transport_speed import CARRIERS, LIMIT, REQUEST  # the same kinds as the two-process bench

WARMUP = 50  # exchanges before the clock starts (handshake done, caches warm)


async def exchanges(kind: str, count: int, profiler: cProfile.Profile | None = None) -> float:
    """CPU seconds of this thread for `count` exchanges (after a warm-up)."""
    echoed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                writer.write(await reader.readexactly(REQUEST))
        except asyncio.IncompleteReadError:
            pass
        writer.close()
        echoed.set_result(None)

    if kind == "os":
        server: Any = await asyncio.start_server(_echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    else:
        server = await aio.start_server(_echo, "127.0.0.1", 0, carrier=CARRIERS[kind])
        port = server.addresses[0][1]
        reader, writer = await aio.open_connection("127.0.0.1", port, carrier=CARRIERS[kind])
        writer.transport.set_no_delay(True)
    request = os.urandom(REQUEST)
    async with asyncio.timeout(LIMIT):
        for _ in range(WARMUP):
            writer.write(request)
            if await reader.readexactly(REQUEST) != request:
                raise AssertionError("the echo differs from the request")
        if profiler is not None:
            profiler.enable()
        start = time.thread_time()
        for _ in range(count):
            writer.write(request)
            await reader.readexactly(REQUEST)
        cpu = time.thread_time() - start
        if profiler is not None:
            profiler.disable()
        writer.write_eof()
        await echoed
        writer.close()
    server.close()
    return cpu


def call_counts(kind: str, count: int, top: int) -> tuple[float, list[tuple[float, str]]]:
    """Calls per exchange in all, and the `top` call sites by calls per exchange."""
    profiler = cProfile.Profile(time.thread_time)
    asyncio.run(exchanges(kind, count, profiler))
    stats = pstats.Stats(profiler)
    rows = []
    total = 0
    for (filename, line, name), (_cc, nc, _tt, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        total += nc
        where = name if filename == "~" else f"{_short(filename)}:{line}({name})"
        rows.append((nc / count, where))
    rows.sort(reverse=True)
    return total / count, rows[:top]


class OpcodeCounter:
    """Bytecodes run per function while enabled (sys.settrace with opcode events)."""

    def __init__(self) -> None:
        self.opcodes: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()

    def _trace(self, frame: Any, _event: str, _arg: Any) -> Any:
        code = frame.f_code
        where = f"{_short(code.co_filename)}:{code.co_firstlineno}({code.co_name})"
        self.calls[where] += 1
        frame.f_trace_opcodes = True
        opcodes = self.opcodes

        def local(_frame: Any, event: str, _arg: Any) -> Any:
            if event == "opcode":
                opcodes[where] += 1
            return local

        return local

    def enable(self) -> None:
        sys.settrace(self._trace)

    def disable(self) -> None:
        sys.settrace(None)


def opcode_counts(kind: str, count: int, top: int) -> tuple[float, list[tuple[float, float, str]]]:
    """Bytecodes per exchange in all, and the `top` functions by bytecodes per exchange."""
    counter = OpcodeCounter()
    asyncio.run(exchanges(kind, count, counter))  # type: ignore[arg-type]
    rows = [(n / count, counter.calls[w] / count, w) for w, n in counter.opcodes.items()]
    rows.sort(reverse=True)
    return sum(counter.opcodes.values()) / count, rows[:top]


def _short(filename: str) -> str:
    parts = Path(filename).parts
    for anchor in ("synack", "asyncio"):
        if anchor in parts:
            return "/".join(parts[len(parts) - parts[::-1].index(anchor) - 1 :])
    return Path(filename).name


def measure(kinds: list[str], runs: int, count: int) -> dict[str, list[float]]:
    """µs of CPU per exchange, each run, kinds alternating run by run."""
    out: dict[str, list[float]] = {k: [] for k in kinds}
    for _ in range(runs):
        for kind in kinds:
            out[kind].append(asyncio.run(exchanges(kind, count)) / count * 1e6)
    return out


def span(values: list[float]) -> str:
    return f"{statistics.median(values):6.1f} ({min(values):.1f}-{max(values):.1f})"


def instructions(tree: str | None, kind: str, count: int) -> int:
    """Cachegrind's instruction count for a child doing `count` exchanges of `kind`."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    if tree is not None:
        env["PYTHONPATH"] = f"{tree}/src"
    cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]
    cmd += [sys.executable, __file__, "--child", "--kinds", kind, "--exchanges", str(count)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30 * LIMIT)
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"valgrind failed: {done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def instructions_per_exchange(
    trees: list[str | None], kinds: list[str], count: int, repeats: int
) -> None:
    """The least of `repeats` counts for each run: the timers (the delayed ACK's and the
    loss probe's 40 ms) fire by the wall clock, which valgrind slows fifty-fold, so a
    run's count moves by a few per cent with how often they fired; fewest is closest
    to an unslowed run."""
    if shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind")
    small = count // 5
    jobs = [(t, k, n) for _ in range(repeats) for t in trees for k in kinds for n in (small, count)]
    counts: dict[tuple[str | None, str, int], int] = {}
    with ThreadPoolExecutor(len(os.sched_getaffinity(0))) as pool:
        for job, got in zip(jobs, pool.map(lambda job: instructions(*job), jobs), strict=True):
            counts[job] = min(got, counts.get(job, got))
    names = [t or "this tree" for t in trees]
    print(
        f"instructions per exchange (cachegrind, {count} less {small} exchanges, "
        f"least of {repeats})"
    )
    print("| kind | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(trees))
    for kind in kinds:
        per = [(counts[t, kind, count] - counts[t, kind, small]) / (count - small) for t in trees]
        print(f"| {kind} | " + " | ".join(f"{v:,.0f}" for v in per) + " |")


def compare_trees(args: argparse.Namespace, kinds: list[str]) -> None:
    trees = [str(Path(t).resolve()) for t in args.trees.split(",")]
    per_tree: dict[str, dict[str, list[float]]] = {t: {k: [] for k in kinds} for t in trees}
    for i in range(args.runs):
        for tree in trees if i % 2 == 0 else trees[::-1]:  # neither tree always first
            env = {**os.environ, "PYTHONPATH": f"{tree}/src"}
            cmd = [sys.executable, __file__, "--child", "--kinds", ",".join(kinds)]
            cmd += ["--exchanges", str(args.exchanges)]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            for kind, values in json.loads(out.stdout).items():
                per_tree[tree][kind] += values
    print(f"{args.runs} runs of {args.exchanges} exchanges per tree, alternating; CPU µs/exchange")
    print(
        "| kind | " + " | ".join(trees) + f" | ratio {Path(trees[-1]).name}/{Path(trees[0]).name} |"
    )
    print("|---|" + "---|" * (len(trees) + 1))
    for kind in kinds:
        medians = [statistics.median(per_tree[t][kind]) for t in trees]
        cells = " | ".join(span(per_tree[t][kind]) for t in trees)
        print(f"| {kind} | {cells} | {medians[-1] / medians[0]:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", default="os,mtu1500", help="os and/or " + ",".join(CARRIERS))
    parser.add_argument("--exchanges", type=int, default=2000, help="per run")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--calls", action="store_true", help="count calls per exchange")
    parser.add_argument("--opcodes", action="store_true", help="count bytecodes per exchange")
    parser.add_argument("--top", type=int, default=25, help="rows listed with --calls/--opcodes")
    parser.add_argument("--instructions", action="store_true", help="count under valgrind")
    parser.add_argument("--repeats", type=int, default=3, help="valgrind runs, least kept")
    parser.add_argument("--trees", help="comma-separated source trees to compare, alternating")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    for k in kinds:
        if k != "os" and k not in CARRIERS:
            parser.error(f"unknown kind {k!r}: os, {', '.join(CARRIERS)}")
    if args.child:
        print(json.dumps(measure(kinds, 1, args.exchanges)))
        return
    trees = [str(Path(t).resolve()) for t in args.trees.split(",")] if args.trees else None
    if args.instructions:
        instructions_per_exchange(trees or [None], kinds, args.exchanges, args.repeats)
        return
    if args.trees:
        compare_trees(args, kinds)
        return
    results = measure(kinds, args.runs, args.exchanges)
    print(f"{args.runs} runs of {args.exchanges} x 1 KiB exchanges, both ends on one loop")
    print("| kind | CPU µs/exchange, median (range) |")
    print("|---|---|")
    for kind in kinds:
        print(f"| {kind} | {span(results[kind])} |")
    if args.calls:
        for kind in kinds:
            total, rows = call_counts(kind, args.exchanges, args.top)
            print(f"\n{kind}: {total:.1f} calls per exchange under cProfile; the most called:")
            print("| calls/exchange | function |")
            print("|---|---|")
            for per, where in rows:
                print(f"| {per:.2f} | {where} |")
    if args.opcodes:
        for kind in kinds:
            total, ops = opcode_counts(kind, args.exchanges, args.top)
            print(f"\n{kind}: {total:.0f} bytecodes per exchange; the functions that ran most:")
            print("| bytecodes/exchange | calls/exchange | function |")
            print("|---|---|---|")
            for per, calls, where in ops:
                print(f"| {per:.0f} | {calls:.1f} | {where} |")


if __name__ == "__main__":
    main()
