"""What an ACK costs the sender, and a segment the receiver, under loss with a large
window, before/after, on virtual time.

One flow (BBR, or `--cc cubic`) of random bytes through
`synack.testing.bottleneck.bottleneck_run`'s bottleneck (RATE bytes/s, RTT, LOSS each
way, a 4-BDP buffer): at 20 MB/s and 40 ms some 550 segments are in flight. Each side's
`Connection.handle_segment` and `segments_to_send` are timed; the sender's time is
divided by the segments it handled (nearly all ACKs), the receiver's by those it
handled (data, with its out-of-order queue and SACK blocks). The whole run's CPU time
is printed beside them. (Before 2026-12-07 the bench took every connection for the
sender, and its "µs per ACK" was both sides' time over both sides' segments.)

Each revision's `src/synack` is taken with `git archive` into a temporary directory
(``WORKTREE``: the checkout's own src, uncommitted edits included) and run in its own
process with that tree first on the path; the rounds alternate A B, B A, ... so that a
machine whose speed drifts moves both sides alike. The segments each side sends are
hashed: equal digests mean both made the same decisions.

    python3 bench/rack_cost.py                          # f862597 (the walks) against WORKTREE
    python3 bench/rack_cost.py --before HEAD --after WORKTREE --rounds 3
    python3 bench/rack_cost.py --rate 50e6 --measure 0.5
    python3 bench/rack_cost.py --cc cubic --loss 0.05
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


def worker(cc: str, rate: float, rtt: float, loss: float, measure: float, seed: int) -> None:
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
    collect = Connection.segments_to_send
    # [seconds, segments handled] for the sender and the receiver: each side's
    # handle_segment and segments_to_send (where the receiver builds its SACK blocks).
    spent = {True: [0.0, 0], False: [0.0, 0]}
    clock = time.thread_time  # CPU time: a busy machine descheduling us adds nothing

    def is_sender(conn: Connection) -> bool:
        return not 5000 <= conn.local_port < 5100  # the receivers listen on 5000 + i

    def timed(self: Connection, data: object, now: float) -> None:
        side = spent[is_sender(self)]
        t = clock()
        handle(self, data, now)  # type: ignore[arg-type]
        side[0] += clock() - t
        side[1] += 1

    def timed_send(self: Connection, now: float) -> list[bytes]:
        side = spent[is_sender(self)]
        t = clock()
        out = collect(self, now)
        side[0] += clock() - t
        return out

    Connection.handle_segment = timed  # type: ignore[method-assign]
    Connection.segments_to_send = timed_send  # type: ignore[method-assign]
    cpu = time.process_time()
    run = bottleneck_run([cc], rate, rtt, loss=loss, warmup=0.5, measure=measure, seed=seed)
    cpu = time.process_time() - cpu
    flow = run.flows[0]
    sender, receiver = spent[True], spent[False]
    print(
        json.dumps(
            {
                "src": str(Path(synack.__file__).parent),
                "acks": sender[1],
                "us_per_ack": sender[0] / max(sender[1], 1) * 1e6,
                "segments": receiver[1],
                "us_per_segment": receiver[0] / max(receiver[1], 1) * 1e6,
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
    parser.add_argument("--cc", default="bbr", help="congestion control: bbr, cubic")
    parser.add_argument("--rate", type=float, default=20e6, help="bottleneck bytes/s")
    parser.add_argument("--rtt", type=float, default=0.04)
    parser.add_argument("--loss", type=float, default=0.01)
    parser.add_argument("--measure", type=float, default=1.0, help="virtual seconds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.cc, args.rate, args.rtt, args.loss, args.measure, args.seed)
        return
    tmp = Path(tempfile.mkdtemp(prefix="rack_cost."))
    try:
        sides = {}
        for name, rev in (("before", args.before), ("after", args.after)):
            (tmp / name).mkdir()
            sides[name] = tree(rev, tmp / name)
        cmd = [sys.executable, "-S", __file__, "--worker"]
        cmd += [
            "--cc",
            args.cc,
            "--rate",
            str(args.rate),
            "--rtt",
            str(args.rtt),
            "--loss",
            str(args.loss),
        ]
        cmd += ["--measure", str(args.measure), "--seed", str(args.seed)]
        results: dict[str, list[dict[str, float | str]]] = {"before": [], "after": []}
        ratios: dict[str, list[float]] = {"us_per_ack": [], "us_per_segment": []}
        for r in range(args.rounds):
            order = ("before", "after") if r % 2 == 0 else ("after", "before")
            for name in order:
                site = [p for p in sys.path if p.endswith("site-packages")]
                env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(sides[name]), *site]))
                out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
                results[name].append(json.loads(out.stdout))
            b, a = results["before"][-1], results["after"][-1]
            for key, values in ratios.items():
                values.append(float(a[key]) / float(b[key]))
            print(
                f"round {r + 1}: before {float(b['us_per_ack']):.1f} µs/ACK, "
                f"{float(b['us_per_segment']):.1f} µs/segment ({float(b['cpu']):.1f} s CPU), "
                f"after {float(a['us_per_ack']):.1f} µs/ACK, "
                f"{float(a['us_per_segment']):.1f} µs/segment ({float(a['cpu']):.1f} s CPU), "
                f"after/before {ratios['us_per_ack'][-1]:.3f} (sender), "
                f"{ratios['us_per_segment'][-1]:.3f} (receiver), "
                f"same segments: {a['digest'] == b['digest']}",
                flush=True,
            )
        b0 = results["before"][0]

        def spread(name: str, key: str) -> str:
            values = [float(x[key]) for x in results[name]]
            return f"{min(values):.1f}-{max(values):.1f}"

        def median(key: str) -> str:
            values = ratios[key]
            return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"

        print(
            f"{args.rate / 1e6:g} MB/s, {args.rtt * 1e3:g} ms, {args.loss:.0%} loss, "
            f"{args.cc}: {b0['acks']} ACKs, {b0['segments']} segments received, "
            f"{b0['retransmits']} retransmissions, utilisation {float(b0['utilisation']):.3f}"
        )
        print(
            f"sender µs per ACK before {spread('before', 'us_per_ack')}, after "
            f"{spread('after', 'us_per_ack')}; after/before median {median('us_per_ack')}"
        )
        print(
            f"receiver µs per segment before {spread('before', 'us_per_segment')}, after "
            f"{spread('after', 'us_per_segment')}; after/before median "
            f"{median('us_per_segment')}"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
