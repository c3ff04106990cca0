"""Loss recovery on virtual time: the classic recovery against the core's defaults.

Issue 12 point 13, measured with `synack.testing.loss_runs` on the seeded fake network:

* bulk: SIZE random bytes one way with CUBIC over paths of 1, 20 and 100 ms RTT with
  1%, 5% and 10% random loss each way (from the end of the handshake), SEEDS seeds per
  cell: goodput (median and range) against the Mathis estimate MSS/RTT*sqrt(3/2)/sqrt(p)
  (p: the per-direction loss rate, which is the data segments' loss rate), RTOs per MB,
  the RTOs `RtoAudit` finds avoidable (a segment sent after the one at SND.UNA, and its
  SACK, got through before the timer fired), probes per MB and the highest SRTT.
* request/response: a 100-byte request, a 10 KiB answer of random bytes whose last
  segment is lost once, REQUESTS times back to back per RTT: p50 and p99 completion
  times, RTOs, and each repair against RFC 8985's PTO plus one RTT from the probe
  timer's arming.

"classic" sets every recovery switch of `loss_runs.CLASSIC` that Config has (the
header says which); "default" is Config() as the core ships. Goodput is virtual-time
and exact for a seed, so the figures do not depend on the machine.

    python3 bench/recovery.py                       # the full matrix (a few minutes)
    python3 bench/recovery.py --quick               # 1 MB, 3 seeds, 40 requests
    python3 bench/recovery.py --markdown out.md     # also write the tables as markdown
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from synack.tcp import Config
from synack.testing.loss_runs import (
    BulkRun,
    RequestResponseRun,
    bulk_transfer,
    classic_config,
    request_response,
)

MB = 1_000_000
TARGET_RATIO = 1.2  # the median goodput at 5% loss against Mathis, at every RTT


def configs() -> tuple[dict[str, Config], list[str]]:
    classic, switches = classic_config(Config(congestion_control="cubic"))
    return {"classic": classic, "default": Config(congestion_control="cubic")}, switches


def run_bulk(args: tuple[str, Config, int, float, float, int]) -> tuple[str, BulkRun]:
    name, config, size, rtt, loss, seed = args
    return name, bulk_transfer(size, rtt, loss, seed, config)


def run_rr(args: tuple[str, Config, float, int, int]) -> tuple[str, RequestResponseRun]:
    name, config, rtt, count, seed = args
    return name, request_response(rtt, count, seed, config)


def p99(values: Sequence[float]) -> float:
    """The nearest-rank 99th percentile."""
    ordered = sorted(values)
    return ordered[max(0, -(-99 * len(ordered) // 100) - 1)]


def span(values: Sequence[float], scale: float = 1.0, fmt: str = "{:.3g}") -> str:
    lo, mid, hi = min(values) * scale, statistics.median(values) * scale, max(values) * scale
    return f"{fmt.format(mid)} ({fmt.format(lo)}–{fmt.format(hi)})"


def bulk_rows(results: dict[tuple[str, float, float], list[BulkRun]]) -> list[list[str]]:
    rows = []
    for (name, rtt, loss), runs in results.items():
        mb = runs[0].size / MB
        mathis = runs[0].mathis
        goodput = [r.goodput for r in runs]
        ratio = statistics.median(goodput) / mathis
        rows.append(
            [
                name,
                f"{rtt * 1000:g} ms",
                f"{loss:.0%}",
                span(goodput, 1 / MB, "{:.3f}"),
                f"{mathis / MB:.3f}",
                f"{ratio:.2f}x",
                span([r.rtos / mb for r in runs], 1.0, "{:.1f}"),
                str(sum(r.avoidable for r in runs)),
                f"{statistics.median(r.loss_probes / mb for r in runs):.1f}",
                f"{max(r.max_srtt for r in runs) / rtt:.1f}x",
            ]
        )
    return rows


BULK_HEAD = [
    "recovery",
    "RTT",
    "loss each way",
    "goodput MB/s, median (range)",
    "Mathis MB/s",
    "median / Mathis",
    "RTOs per MB, median (range)",
    "avoidable RTOs (all seeds)",
    "probes per MB",
    "max SRTT / RTT",
]

RR_HEAD = [
    "recovery",
    "RTT",
    "p50 completion",
    "p99 completion",
    "RTOs per 100 answers",
    "repair after the loss, p50 / max",
    "repaired within PTO + 1 RTT",
    "worst (repair - armed) / (PTO + RTT)",
]


def rr_rows(results: dict[tuple[str, float], RequestResponseRun]) -> list[list[str]]:
    rows = []
    for (name, rtt), run in results.items():
        lat = run.latencies
        after = [r.after_loss for r in run.repairs]
        n = len(run.repairs)
        rows.append(
            [
                name,
                f"{rtt * 1000:g} ms",
                f"{statistics.median(lat) * 1000:.1f} ms",
                f"{p99(lat) * 1000:.1f} ms",
                f"{100 * run.rtos / n:.0f}",
                f"{statistics.median(after) * 1000:.1f} / {max(after) * 1000:.1f} ms",
                f"{n - len(run.late)} of {n}",
                f"{max((r.completed - r.armed) / (r.pto + rtt) for r in run.repairs):.2f}",
            ]
        )
    return rows


def targets(
    bulk: dict[tuple[str, float, float], list[BulkRun]],
    rr: dict[tuple[str, float], RequestResponseRun],
) -> list[str]:
    lines = []
    for name in ("classic", "default"):
        ratios = [
            f"{rtt * 1000:g} ms {statistics.median(r.goodput for r in runs) / runs[0].mathis:.2f}x"
            for (n, rtt, loss), runs in bulk.items()
            if n == name and abs(loss - 0.05) < 1e-9
        ]
        met = all(
            statistics.median(r.goodput for r in runs) >= TARGET_RATIO * runs[0].mathis
            for (n, _rtt, loss), runs in bulk.items()
            if n == name and abs(loss - 0.05) < 1e-9
        )
        if ratios:
            lines.append(
                f"{name}: median goodput at 5% loss >= {TARGET_RATIO}x Mathis at every RTT: "
                f"{', '.join(ratios)} -> {'met' if met else 'NOT met'}"
            )
        avoidable = sum(r.avoidable for (n, *_), runs in bulk.items() if n == name for r in runs)
        rtos = sum(r.rtos for (n, *_), runs in bulk.items() if n == name for r in runs)
        if bulk:
            lines.append(
                f"{name}: no RTO once a later segment and its SACK got through: "
                f"{avoidable} avoidable of {rtos} RTOs -> {'met' if not avoidable else 'NOT met'}"
            )
        late = sum(len(run.late) for (n, _), run in rr.items() if n == name)
        total = sum(len(run.repairs) for (n, _), run in rr.items() if n == name)
        if total:
            lines.append(
                f"{name}: tail loss repaired within PTO + 1 RTT: {total - late} of {total}"
                f" -> {'met' if not late else 'NOT met'}"
            )
    return lines


def markdown(head: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(out)


def table(title: str, head: list[str], rows: list[list[str]]) -> Table:
    t = Table(title=title)
    for h in head:
        t.add_column(h)
    for row in rows:
        t.add_row(*row)
    return t


def run_all(jobs: int, tasks: list[Any], fn: Callable[[Any], Any]) -> list[Any]:
    if jobs <= 1:
        return [fn(t) for t in tasks]
    with ProcessPoolExecutor(jobs) as pool:
        return list(pool.map(fn, tasks, chunksize=1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 MB, 3 seeds, 40 requests")
    parser.add_argument("--size", type=float, help="MB per bulk transfer (default 10)")
    parser.add_argument("--seeds", type=int, help="seeds per bulk cell (default 10)")
    parser.add_argument("--requests", type=int, help="answers per RTT (default 200)")
    parser.add_argument("--rtts", default="1,20,100", help="RTTs in ms (default 1,20,100)")
    parser.add_argument("--losses", default="1,5,10", help="loss %% each way (default 1,5,10)")
    parser.add_argument("--only", choices=("bulk", "rr"), help="run one of the two workloads")
    parser.add_argument(
        "--nodelay", action="store_true", help="request/response with no_delay (TCP_NODELAY)"
    )
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--markdown", type=Path, help="write the tables as markdown here")
    args = parser.parse_args(argv)
    size = int((args.size or (1 if args.quick else 10)) * MB)
    seeds = args.seeds or (3 if args.quick else 10)
    requests = args.requests or (40 if args.quick else 200)
    rtts = [float(x) / 1000 for x in args.rtts.split(",")]
    losses = [float(x) / 100 for x in args.losses.split(",")]
    cfgs, switches = configs()

    console = Console()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent,
        check=False,
    ).stdout.strip()
    import synack

    header = (
        f"synack from {Path(synack.__file__).parent}, git HEAD {commit or '?'}; "
        f"classic = {', '.join(switches) or 'no switch found'}; "
        f"bulk {size / MB:g} MB x {seeds} seeds; request/response {requests} answers"
        f"{' with no_delay' if args.nodelay else ''}"
    )
    console.print(header)
    started = time.monotonic()
    bulk: dict[tuple[str, float, float], list[BulkRun]] = {}
    rr: dict[tuple[str, float], RequestResponseRun] = {}
    if args.only != "rr":
        tasks = [
            (name, cfg, size, rtt, loss, seed)
            for name, cfg in cfgs.items()
            for rtt in rtts
            for loss in losses
            for seed in range(seeds)
        ]
        for (name, _c, _s, rtt, loss, _seed), (_n, result) in zip(
            tasks, run_all(args.jobs, tasks, run_bulk), strict=True
        ):
            bulk.setdefault((name, rtt, loss), []).append(result)
    if args.only != "bulk":
        rr_tasks = [
            (name, replace(cfg, no_delay=args.nodelay), rtt, requests, 1)
            for name, cfg in cfgs.items()
            for rtt in rtts
        ]
        for (name, _c, rtt, _n, _s), (_name, result) in zip(
            rr_tasks, run_all(args.jobs, rr_tasks, run_rr), strict=True
        ):
            rr[(name, rtt)] = result
    elapsed = time.monotonic() - started

    parts = [header]
    if bulk:
        rows = bulk_rows(bulk)
        console.print(table("bulk, CUBIC", BULK_HEAD, rows))
        parts.append(markdown(BULK_HEAD, rows))
    if rr:
        rows = rr_rows(rr)
        console.print(table("request/response, last segment of each answer lost", RR_HEAD, rows))
        parts.append(markdown(RR_HEAD, rows))
    lines = targets(bulk, rr)
    for line in lines:
        console.print("target, " + line)
    console.print(f"wall time {elapsed:.0f} s")
    if args.markdown:
        parts.append("\n".join(f"* {line}" for line in lines))
        args.markdown.write_text("\n\n".join(parts) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
