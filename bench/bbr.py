"""BBR against its targets on virtual time (issue 12 point 10), with CUBIC beside it.

Every run is `synack.testing.bottleneck.bottleneck_run`: bulk flows of random bytes
through one rate-limited bottleneck, a propagation round trip, random loss each way
from the end of the handshake, goodput measured after a warm-up (1 s + 20 RTTs).

* loss: one flow alone, 4-BDP buffer; goodput over the bottleneck rate (wire bytes,
  so 0.978 is the payload ceiling with 1448-byte segments) at 0%, 1% and 5% loss;
  the median standing queue, in BDPs, at 0%.
* share: one BBR and one CUBIC flow through a one-BDP buffer, no random loss; each
  flow's goodput over the bottleneck rate.

    python3 bench/bbr.py                       # the whole matrix (minutes)
    python3 bench/bbr.py --rates 1,10 --rtts 10,40,100 --measure 3
    python3 bench/bbr.py --only share
"""

from __future__ import annotations

import argparse
import time

from synack.testing.bottleneck import bottleneck_run, buffer_packets


def loss_table(rates: list[float], rtts: list[float], measure: float, seed: int) -> None:
    print(
        "| bottleneck | RTT | CC | 0% loss | 1% loss | 5% loss | queue at 0% (BDP) | RTOs 1%/5% | wall |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for rate in rates:
        for rtt in rtts:
            for cc in ("bbr", "cubic"):
                t0 = time.process_time()
                cells = []
                queue = 0.0
                rtos = []
                for loss in (0.0, 0.01, 0.05):
                    run = bottleneck_run([cc], rate, rtt, loss=loss, measure=measure, seed=seed)
                    cells.append(f"{run.utilisation:.2f}")
                    if loss == 0.0:
                        queue = run.queue_median / run.bdp
                    else:
                        rtos.append(str(run.flows[0].timeouts))
                wall = time.process_time() - t0
                print(
                    f"| {rate / 1e6:g} MB/s | {rtt * 1e3:g} ms | {cc} | {' | '.join(cells)} "
                    f"| {queue:.2f} | {'/'.join(rtos)} | {wall:.0f} s |",
                    flush=True,
                )


def share_table(rates: list[float], rtts: list[float], measure: float, seed: int) -> None:
    print("| bottleneck | RTT | buffer | BBR share | CUBIC share | total | RTOs BBR/CUBIC |")
    print("|---|---|---|---|---|---|---|")
    for rate in rates:
        for rtt in rtts:
            buffer = buffer_packets(rate, rtt, 1.0)
            run = bottleneck_run(
                ["bbr", "cubic"],
                rate,
                rtt,
                buffer=buffer,
                warmup=2.0 + 20 * rtt,
                measure=measure,
                seed=seed,
            )
            bbr, cubic = run.flows
            print(
                f"| {rate / 1e6:g} MB/s | {rtt * 1e3:g} ms | {buffer} pkts (1 BDP) "
                f"| {bbr.goodput / rate:.2f} | {cubic.goodput / rate:.2f} "
                f"| {run.utilisation:.2f} | {bbr.timeouts}/{cubic.timeouts} |",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", default="1,10,100", help="bottlenecks, MB/s")
    parser.add_argument("--rtts", default="10,40,100", help="round trips, ms")
    parser.add_argument("--measure", type=float, default=5.0, help="virtual seconds measured")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", choices=("loss", "share"))
    args = parser.parse_args()
    rates = [float(x) * 1e6 for x in args.rates.split(",")]
    rtts = [float(x) / 1e3 for x in args.rtts.split(",")]
    if args.only != "share":
        loss_table(rates, rtts, args.measure, args.seed)
        print()
    if args.only != "loss":
        share_table(rates, rtts, args.measure * 2, args.seed)


if __name__ == "__main__":
    main()
