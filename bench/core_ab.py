"""Before/after speed of the TCP core: two revisions' lossless bulk transfer, interleaved.

Each revision's `src/synack` is taken with `git archive` into a temporary directory
(removed afterwards; ``WORKTREE`` names the checkout's own `src`, uncommitted edits
included) and gets its own worker process, started with ``python -S`` and that tree on
``PYTHONPATH`` so that it imports that tree's `synack` and nothing else. Both workers
run the same workload, `bench/tcp_core_bulk.py`'s lossless transfer (random payload,
default `Config`), timed in CPU time, with the bare per-segment loop measured just
before and just after each transfer.

The rounds alternate A B, B A, A B, ... and each gives one ratio B/A from two runs
close in time, so a machine whose speed drifts (other jobs, frequency, the host) moves
both sides of a ratio alike; the median of those ratios is the verdict, against 0.95
by default (issue 12 point 14), with a 95% interval of the median. Both workers are
pinned to one CPU unless ``--cpu -1``.

On a machine this busy CPU time still moves by tens of percent from round to round
(caches shared with other jobs). ``--instructions`` counts instead, under valgrind,
the instructions a data segment costs on each side, which nothing else running
changes; ``--profile`` gives each function's calls and time per segment, both sides.
A revision may also be a directory holding `synack/` (an experiment's copy of src).

    python3 bench/core_ab.py                              # before issue 12 against HEAD
    python3 bench/core_ab.py --after WORKTREE --rounds 200 --time-limit 600
    python3 bench/core_ab.py --instructions               # needs valgrind; minutes
    python3 bench/core_ab.py --profile                    # cProfile per function, both sides
"""

from __future__ import annotations

import argparse
import json
import os
import re
import selectors
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
# The last commit before issue 12's work on the core (2efcfab moved loss recovery into
# tcp/recovery.py; RACK/PRR, BBR and the rest followed).
BEFORE = "2efcfab^"
WORKTREE = "WORKTREE"
MB = 1_000_000
PAYLOAD = 1448
REPLY_TIMEOUT = 300.0


# ---------------------------------------------------------------- worker side


def worker(expected_src: str) -> None:
    """Answer one JSON request per stdin line with one JSON line; runs with the tree's src
    first on sys.path and no site-packages, so the import below is that tree's core."""
    sys.path.insert(0, str(BENCH))
    import synack
    import tcp_core_bulk as bulk
    from synack.tcp import Config

    where = Path(synack.__file__).resolve()
    if not where.is_relative_to(Path(expected_src).resolve()):
        raise SystemExit(f"worker imported {where}, not the tree at {expected_src}")
    config = Config(secret=b"bench" * 8)
    reply({"synack": str(where.parent)})
    for line in sys.stdin:
        request = json.loads(line)
        size = int(request["size"])
        if request["op"] == "run":
            before = bulk.baseline(request["baseline"])
            result = bulk.transfer(size, 0.0, config, seed=request["seed"])
            after = bulk.baseline(request["baseline"])
            reply({"rate": result.rate, "base": (before + after) / 2})
        elif request["op"] == "transfer":
            result = bulk.transfer(size, 0.0, config)
            reply({"segments": result.segments})
        elif request["op"] == "profile":
            reply({"functions": profile(bulk, size, config)})
        else:
            raise SystemExit(f"unknown request {request}")


def profile(bulk: Any, size: int, config: Any) -> list[tuple[str, str, int, float]]:
    """(file under src, function, calls, own seconds) for one lossless transfer. The
    profiler's clock is wall time (a CPU clock costs a system call per event, which
    would swamp the figures), so the seconds mean something only on a quiet machine;
    the calls are exact anywhere."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    bulk.transfer(size, 0.0, config)
    profiler.disable()
    rows = []
    stats: Any = pstats.Stats(profiler)
    for (filename, _line, name), stat in stats.stats.items():
        calls, tottime = stat[1], stat[2]
        marker = filename.rfind("/synack/")
        where = filename[marker + 1 :] if marker >= 0 else Path(filename).name
        rows.append((where, name, calls, tottime))
    return rows


def reply(message: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


# ---------------------------------------------------------------- driver side


def git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


@contextmanager
def source_tree(revision: str, tmp_root: str | None) -> Iterator[tuple[str, Path]]:
    """(commit, directory holding synack/) for `revision`; a temporary copy for a commit."""
    if revision == WORKTREE:
        yield f"{git('rev-parse', '--short=12', 'HEAD')} + uncommitted", ROOT / "src"
        return
    if (Path(revision) / "synack").is_dir():
        yield "a directory", Path(revision)  # an experiment's copy of src
        return
    commit = git("rev-parse", "--verify", f"{revision}^{{commit}}")
    with tempfile.TemporaryDirectory(prefix="core-ab-", dir=tmp_root) as tmp:
        archive = subprocess.Popen(
            ["git", "-C", str(ROOT), "archive", commit, "src/synack"], stdout=subprocess.PIPE
        )
        subprocess.run(["tar", "-x", "-C", tmp], stdin=archive.stdout, check=True)
        if archive.wait() != 0:
            raise SystemExit(f"git archive {commit} failed")
        yield commit[:12], Path(tmp) / "src"


class Worker:
    """One revision's worker process, spoken to one JSON line at a time."""

    def __init__(self, label: str, src: Path, cpu: int | None) -> None:
        env = dict(os.environ, PYTHONPATH=str(src), PYTHONDONTWRITEBYTECODE="1")
        self.label = label
        self.process = subprocess.Popen(
            [sys.executable, "-S", __file__, "--worker", str(src)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        if cpu is not None:
            os.sched_setaffinity(self.process.pid, {cpu})
        self.synack = str(self.read()["synack"])

    def ask(self, **request: object) -> dict[str, object]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return self.read()

    def read(self) -> dict[str, object]:
        assert self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(REPLY_TIMEOUT):
                raise SystemExit(f"worker {self.label} gave no answer in {REPLY_TIMEOUT:.0f} s")
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"worker {self.label} exited with {self.process.wait()}")
        message: dict[str, object] = json.loads(line)
        return message

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class Run:
    rate: float  # payload bytes per CPU second
    base: float  # the bare loop around the transfer, bytes per CPU second

    @property
    def to_loop(self) -> float:
        return self.rate / self.base


@dataclass
class Round:
    a: Run
    b: Run

    @property
    def ratio(self) -> float:
        return self.b.rate / self.a.rate

    @property
    def ratio_to_loop(self) -> float:
        """B/A with each side first divided by the bare loop measured around it."""
        return self.b.to_loop / self.a.to_loop


def spread(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.3f}"
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return f"{median:.3f} (IQR {q1:.3f}-{q3:.3f}, range {min(values):.3f}-{max(values):.3f})"


def median_interval(values: list[float]) -> tuple[float, float]:
    """A distribution-free 95% confidence interval of the median: the order statistics
    n/2 -/+ 1.96 sqrt(n)/2 (the normal approximation of the binomial; wide when n is small)."""
    ordered = sorted(values)
    n = len(ordered)
    half = 0.98 * n**0.5
    return ordered[max(0, int(n / 2 - half))], ordered[min(n - 1, int(n / 2 + half))]


def compare(a: Worker, b: Worker, args: argparse.Namespace) -> None:
    size = int(args.size * MB)
    baseline = int(args.baseline * MB)
    for worker in (a, b):  # warm-up: first imports, allocator, caches
        worker.ask(op="run", size=min(size, MB), baseline=baseline, seed=0)
    rounds: list[Round] = []
    deadline = time.monotonic() + args.time_limit
    while len(rounds) < args.rounds and time.monotonic() < deadline:
        order = (a, b) if len(rounds) % 2 == 0 else (b, a)
        answers = {
            w.label: w.ask(op="run", size=size, baseline=baseline, seed=len(rounds) + 1)
            for w in order
        }
        a_run, b_run = (Run(float(answers[k]["rate"]), float(answers[k]["base"])) for k in "AB")
        rounds.append(Round(a_run, b_run))
        if args.verbose:
            r = rounds[-1]
            print(
                f"round {len(rounds):3d}: A {r.a.rate / MB:6.1f} MB/s  B {r.b.rate / MB:6.1f} "
                f"MB/s  B/A {r.ratio:.3f}  against the loop {r.ratio_to_loop:.3f}",
                flush=True,
            )
    ratios = [r.ratio for r in rounds]
    median = statistics.median(ratios)
    print(f"rounds: {len(rounds)} of {args.size:g} MB each side, alternating A B / B A")
    for label, runs in (("A", [r.a for r in rounds]), ("B", [r.b for r in rounds])):
        rate = statistics.median(run.rate for run in runs)
        print(
            f"{label}: {rate / MB:.1f} MB/s median ({PAYLOAD / rate * 1e6:.1f} µs/segment), "
            f"ratio to the bare loop {spread([run.to_loop for run in runs])}"
        )
    print(f"B/A per round, CPU-time rates: {spread(ratios)}")
    print(f"B/A per round, each against its bare loop: {spread([r.ratio_to_loop for r in rounds])}")
    lo, hi = median_interval(ratios)
    verdict = "meets" if median >= args.target else "is BELOW"
    if lo <= args.target <= hi:
        verdict += " (the interval holds the target: more rounds or a quieter machine decide)"
    print(
        f"verdict: median B/A {median:.3f} (95% interval {lo:.3f}-{hi:.3f}) {verdict} "
        f"the target {args.target:g}"
    )


Profile = dict[tuple[str, str], tuple[int, float]]


def compare_profiles(a: Worker, b: Worker, args: argparse.Namespace) -> None:
    """Own CPU time per data segment by (file, function), largest difference first: the
    median over `--rounds` profiled transfers per side, alternating as in `compare`."""
    size = int(args.size * MB)
    segments = size / PAYLOAD
    runs: dict[str, list[Profile]] = {"A": [], "B": []}
    for i in range(max(1, args.rounds)):
        for w in (a, b) if i % 2 == 0 else (b, a):
            rows = w.ask(op="profile", size=size)["functions"]
            assert isinstance(rows, list)
            table: Profile = {}
            for where, name, calls, tottime in rows:
                n, t = table.get((where, name), (0, 0.0))
                table[(where, name)] = (n + calls, t + tottime)
            runs[w.label].append(table)

    def per_segment(label: str, key: tuple[str, str]) -> tuple[float, float]:
        """(calls, µs) per data segment, medians over the runs."""
        cells = [run.get(key, (0, 0.0)) for run in runs[label]]
        calls = statistics.median(n for n, _ in cells)
        return calls / segments, statistics.median(t for _, t in cells) / segments * 1e6

    def total(label: str) -> str:
        calls = statistics.median(sum(n for n, _ in run.values()) for run in runs[label])
        seconds = statistics.median(sum(t for _, t in run.values()) for run in runs[label])
        return f"{label} {seconds / segments * 1e6:.1f} µs and {calls / segments:.1f} calls"

    print(
        f"cProfile, {len(runs['A'])} x {args.size:g} MB lossless per side, medians; per data "
        f"segment, profiler overhead included: {total('A')}, {total('B')}; the calls are "
        f"exact, the µs wall time (load average {os.getloadavg()[0]:.1f}: trust them only "
        f"on a quiet machine)"
    )
    print("| function | calls/seg A | calls/seg B | µs/seg A | µs/seg B | B - A |")
    print("|---|---|---|---|---|---|")
    rows = []
    for key in {key for run in runs["A"] + runs["B"] for key in run}:
        (na, ta), (nb, tb) = per_segment("A", key), per_segment("B", key)
        rows.append((tb - ta, key, na, nb, ta, tb))
    rows.sort(key=lambda row: -abs(row[0]))
    for diff, (where, name), na, nb, ta, tb in rows[: args.top]:
        print(f"| {where}:{name} | {na:.2f} | {nb:.2f} | {ta:.2f} | {tb:.2f} | {diff:+.2f} |")


# What cachegrind reports, by the name its summary gives each count.
COUNTERS = {
    "instructions": "I refs",
    "L1 data misses": "D1 misses",
    "mispredicted branches": "Mispredicts",
}


def instructions(label: str, src: Path, size: int, pad: int, caches: bool) -> dict[str, int]:
    """Cachegrind's counts for the interpreter running one lossless transfer of `size`
    bytes in `src`'s core, start-up included (instructions; with `caches`, also simulated
    L1 data misses and mispredicted branches). Other load does not change them; where
    objects land in memory does a little (dicts and sets keyed by object identity), so
    `pad` bytes of environment shift the layout between repeats."""
    request = json.dumps({"op": "transfer", "size": size}) + "\n"
    sim = "yes" if caches else "no"
    done = subprocess.run(
        [
            *("valgrind", "--tool=cachegrind", f"--cache-sim={sim}", f"--branch-sim={sim}"),
            "--cachegrind-out-file=/dev/null",
            *(sys.executable, "-S", __file__, "--worker", str(src)),
        ],
        input=request,
        capture_output=True,
        text=True,
        timeout=REPLY_TIMEOUT * 4,
        env=dict(os.environ, PYTHONPATH=str(src), PYTHONHASHSEED="0", CORE_AB_PAD="x" * pad),
    )
    counts = {}
    for name, summary in COUNTERS.items():
        found = re.search(summary.replace(" ", r"\s+") + r":\s+([\d,]+)", done.stderr)
        if found is not None:
            counts[name] = int(found.group(1).replace(",", ""))
    if done.returncode != 0 or "instructions" not in counts:
        raise SystemExit(f"valgrind on {label} failed: {done.stderr[-2000:]}")
    return counts


def compare_instructions(sides: dict[str, Path], args: argparse.Namespace) -> None:
    """Counts per data segment on each side: two transfer sizes, the difference divided
    by the difference in segments, so start-up and the handshake drop out; `--repeats`
    memory layouts each."""
    if shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (Debian's package)")
    large = int(args.size * MB)
    small = large // 5
    pads = [1000 * i for i in range(max(1, args.repeats))]
    jobs = [
        (label, src, size, pad, args.caches)
        for label, src in sides.items()
        for pad in pads
        for size in (small, large)
    ]
    # The counts do not depend on what else runs: the runs share the CPUs.
    with ThreadPoolExecutor(len(os.sched_getaffinity(0))) as pool:
        counts = dict(zip(jobs, pool.map(lambda job: instructions(*job), jobs), strict=True))
    print(
        f"per data segment (valgrind, {small / MB:g} and {large / MB:g} MB subtracted, "
        f"{len(pads)} memory layouts; mean and range):"
    )
    means = {}
    for counter in counts[jobs[0]]:
        per_segment = {
            label: [
                (
                    counts[label, src, large, pad, args.caches][counter]
                    - counts[label, src, small, pad, args.caches][counter]
                )
                / ((large - small) / PAYLOAD)
                for pad in pads
            ]
            for label, src in sides.items()
        }
        means[counter] = [statistics.mean(per_segment[label]) for label in "AB"]
        a, b = means[counter]
        shown = {
            label: f"{statistics.mean(v):,.0f} ({min(v):,.0f}-{max(v):,.0f})"
            for label, v in per_segment.items()
        }
        print(f"{counter}: A {shown['A']}, B {shown['B']}, B/A {b / a:.3f}")
    a, b = means["instructions"]
    verdict = "meets" if a / b >= args.target else "is BELOW"
    print(
        f"verdict: speed by instruction count A/B {a / b:.3f} {verdict} the target {args.target:g}"
    )


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        worker(sys.argv[2])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=BEFORE, help=f"revision A (default {BEFORE})")
    parser.add_argument("--after", default="HEAD", help=f"revision B, or {WORKTREE}")
    parser.add_argument("--size", type=float, default=4, help="MB per transfer")
    parser.add_argument("--baseline", type=float, default=10, help="MB of the bare loop")
    parser.add_argument("--rounds", type=int, default=40, help="at most this many A/B pairs")
    parser.add_argument("--time-limit", type=float, default=240, help="seconds; stop after")
    parser.add_argument("--target", type=float, default=0.95, help="the B/A median to meet")
    parser.add_argument(
        "--cpu",
        type=int,
        default=max(os.sched_getaffinity(0)),
        help="pin both workers to this CPU; -1 leaves them free",
    )
    parser.add_argument("--tmp-dir", help="where the trees are unpacked (default: system tmp)")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile both instead (--rounds runs each)"
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count instructions per segment with valgrind instead (deterministic, slow)",
    )
    parser.add_argument(
        "--caches",
        action="store_true",
        help="with --instructions: also simulated L1 data misses and mispredicted branches",
    )
    parser.add_argument(
        "--repeats", type=int, default=2, help="memory layouts per side for --instructions"
    )
    parser.add_argument("--top", type=int, default=25, help="rows of the profile table")
    parser.add_argument("--verbose", action="store_true", help="print every round")
    args = parser.parse_args()
    cpu = None if args.cpu < 0 else args.cpu

    with ExitStack() as stack:
        commit_a, src_a = stack.enter_context(source_tree(args.before, args.tmp_dir))
        commit_b, src_b = stack.enter_context(source_tree(args.after, args.tmp_dir))
        if args.instructions:
            print(f"A = {args.before} = {commit_a}\nB = {args.after} = {commit_b}")
            compare_instructions({"A": src_a, "B": src_b}, args)
            return
        a = Worker("A", src_a, cpu)
        stack.callback(a.close)
        b = Worker("B", src_b, cpu)
        stack.callback(b.close)
        print(f"A = {args.before} = {commit_a} (synack from {a.synack})")
        print(f"B = {args.after} = {commit_b} (synack from {b.synack})")
        print(
            f"pinned to CPU {cpu}" if cpu is not None else "not pinned",
            f"; load average {os.getloadavg()[0]:.2f}",
            sep="",
        )
        if args.profile:
            compare_profiles(a, b, args)
        else:
            compare(a, b, args)


if __name__ == "__main__":
    main()
