"""What an ACK costs the sender under loss with a large window, before/after, on virtual time.

One BBR flow of random bytes through `synack.testing.bottleneck.bottleneck_run`'s
bottleneck (RATE bytes/s, RTT, LOSS each way, a 4-BDP buffer): at 20 MB/s and 40 ms
some 550 segments are in flight, and every ACK under loss used to walk all their
transmission records twice (RACK's loss detection and its SACK bookkeeping). The
sender's `Connection.handle_segment` is timed on each arriving segment (nearly all
ACKs), and the whole run's CPU time beside it.

Each revision's `src/synack` is taken with `git archive` into a temporary directory
(``WORKTREE``: the checkout's own src, uncommitted edits included) and run in its own
process with that tree first on the path; the rounds alternate A B, B A, ... so that a
machine whose speed drifts moves both sides alike. The segments each side sends are
hashed: equal digests mean both made the same decisions.

    python3 bench/rack_cost.py                          # f862597 (the walks) against WORKTREE
    python3 bench/rack_cost.py --before HEAD --after WORKTREE --rounds 3
    python3 bench/rack_cost.py --rate 50e6 --measure 0.5
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def worker(rate: float, rtt: float, loss: float, measure: float, seed: int) -> None:
    import hashlib
    import struct

    import synack
    from synack.tcp.connection import Connection
    from synack.testing.bottleneck import bottleneck_run
    from synack.testing.fakenet import FakeNetwork

    digest = hashlib.sha256()
    transmit = FakeNetwork._transmit

    def hashed(self: FakeNetwork, out: object, now: float) -> None:
        out = list(out)  # type: ignore[call-overload]
        for data, _src, _dst in out:
            digest.update(struct.pack("!dI", now, len(data)))
            digest.update(data)
        transmit(self, out, now)

    FakeNetwork._transmit = hashed  # type: ignore[method-assign]
    handle = Connection.handle_segment
    spent = [0.0, 0]
    clock = time.perf_counter

    def timed(self: Connection, data: object, now: float) -> None:
        if self.remote_port < 5000:  # the receiver's side: not what is measured
            handle(self, data, now)  # type: ignore[arg-type]
            return
        t = clock()
        handle(self, data, now)  # type: ignore[arg-type]
        spent[0] += clock() - t
        spent[1] += 1

    Connection.handle_segment = timed  # type: ignore[method-assign]
    cpu = time.process_time()
    run = bottleneck_run(["bbr"], rate, rtt, loss=loss, warmup=0.5, measure=measure, seed=seed)
    cpu = time.process_time() - cpu
    flow = run.flows[0]
    print(
        json.dumps(
            {
                "src": str(Path(synack.__file__).parent),
                "acks": spent[1],
                "us_per_ack": spent[0] / max(spent[1], 1) * 1e6,
                "cpu": cpu,
                "utilisation": run.utilisation,
                "retransmits": flow.retransmits,
                "digest": digest.hexdigest(),
            }
        )
    )


def tree(rev: str, into: Path) -> Path:
    if rev == "WORKTREE":
        return ROOT / "src"
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "src"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", default="f862597", help="default: before the indexes")
    parser.add_argument("--after", default="WORKTREE")
    parser.add_argument("--rate", type=float, default=20e6, help="bottleneck bytes/s")
    parser.add_argument("--rtt", type=float, default=0.04)
    parser.add_argument("--loss", type=float, default=0.01)
    parser.add_argument("--measure", type=float, default=1.0, help="virtual seconds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.rate, args.rtt, args.loss, args.measure, args.seed)
        return
    tmp = Path(tempfile.mkdtemp(prefix="rack_cost."))
    try:
        sides = {}
        for name, rev in (("before", args.before), ("after", args.after)):
            (tmp / name).mkdir()
            sides[name] = tree(rev, tmp / name)
        cmd = [sys.executable, "-S", __file__, "--worker"]
        cmd += ["--rate", str(args.rate), "--rtt", str(args.rtt), "--loss", str(args.loss)]
        cmd += ["--measure", str(args.measure), "--seed", str(args.seed)]
        results: dict[str, list[dict[str, float | str]]] = {"before": [], "after": []}
        ratios = []
        for r in range(args.rounds):
            order = ("before", "after") if r % 2 == 0 else ("after", "before")
            for name in order:
                site = [p for p in sys.path if p.endswith("site-packages")]
                env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(sides[name]), *site]))
                out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
                results[name].append(json.loads(out.stdout))
            b, a = results["before"][-1], results["after"][-1]
            ratios.append(float(a["us_per_ack"]) / float(b["us_per_ack"]))
            print(
                f"round {r + 1}: before {float(b['us_per_ack']):.1f} µs/ACK "
                f"({float(b['cpu']):.1f} s CPU), after {float(a['us_per_ack']):.1f} µs/ACK "
                f"({float(a['cpu']):.1f} s CPU), after/before {ratios[-1]:.3f}, "
                f"same segments: {a['digest'] == b['digest']}",
                flush=True,
            )
        b0 = results["before"][0]
        print(
            f"{args.rate / 1e6:g} MB/s, {args.rtt * 1e3:g} ms, {args.loss:.0%} loss, BBR: "
            f"{b0['acks']} ACKs, {b0['retransmits']} retransmissions, utilisation "
            f"{float(b0['utilisation']):.3f}; µs per ACK before "
            f"{min(float(x['us_per_ack']) for x in results['before']):.1f}-"
            f"{max(float(x['us_per_ack']) for x in results['before']):.1f}, after "
            f"{min(float(x['us_per_ack']) for x in results['after']):.1f}-"
            f"{max(float(x['us_per_ack']) for x in results['after']):.1f}; after/before "
            f"median {statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
