"""The CPU `synack netem`'s UDP relay spends per packet: two revisions, interleaved.

Each revision's `src/synack` (a commit, taken with `git archive` into a temporary
directory, or ``WORKTREE``: this checkout's own `src`) runs a `UdpRelay` in a worker
process of its own, which measures its own CPU time while a load passes through it.
The load, run by this process and the same for both sides, is a bulk transfer's
shape: a sender sends datagrams of random bytes (1452 bytes, the payload of a
1500-byte IP packet) in bursts of --burst with UDP GSO, as synack's carrier does, at
--rates packets per second (``full``: as fast as this process can), to the relay's
listening address; the target answers every second datagram with a 60-byte one
(an ACK's size), which the relay carries back. The figure is the relay's CPU
seconds over the datagrams it received, both directions.

The impairment is --impair: ``none`` (the relay's bare cost), or ``sbs`` (what
bench/side_by_side.py sets: 20 ms each way, 1% loss each way, a 40 MB/s cap with a
1000-packet queue). Rounds alternate the order of the two sides; each round gives a
ratio after/before from two runs close in time.

    python bench/relay_cost.py                                 # 5e7da33 against WORKTREE
    python bench/relay_cost.py --rounds 5 --rates full,20000 --impair none,sbs
    RELAY_COST_PROFILE=/tmp/relay.prof python bench/relay_cost.py --rounds 1  # cProfile
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BEFORE = "5e7da33"  # the UDP relay on asyncio's datagram transports, one datagram a call
WORKTREE = "WORKTREE"
SIZE = 1452  # UDP payload of a 1500-byte IPv4 packet
ACK_SIZE = 60
LOOPBACK = "127.0.0.1"
SETTLE = 0.3  # seconds with nothing arriving that end a run once everything is sent
RUN_LIMIT = 60.0  # seconds any one run may take


# ---------------------------------------------------------------- the relay worker


def impairment(name: str) -> Any:
    from synack.apps.netem.impair import Impairment

    if name == "none":
        return Impairment()
    if name == "sbs":
        return Impairment(delay=0.020, loss=0.01, rate=40e6)
    raise SystemExit(f"unknown impairment {name}")


def worker(target_port: int, impair: str, expected_src: str, options: str) -> None:
    """A relay to 127.0.0.1:target_port; "go" starts the CPU clock, "stop" reports."""
    import asyncio

    import synack
    from synack.apps.netem.relay import UdpRelay

    where = Path(synack.__file__).resolve()
    if not where.is_relative_to(Path(expected_src).resolve()):
        raise SystemExit(f"worker imported {where}, not the tree at {expected_src}")
    extra = json.loads(options)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        link = impairment(impair)
        relay = UdpRelay((LOOPBACK, 0), (LOOPBACK, target_port), link, link, seed=1, **extra)
        _host, port = await relay.start()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        print(json.dumps({"port": port}), flush=True)
        assert (await reader.readline()).strip() == b"go"
        cpu = time.process_time()
        assert (await reader.readline()).strip() == b"stop"
        cpu = time.process_time() - cpu
        summary = await relay.stop()
        up, down = summary.lane("up"), summary.lane("down")
        print(
            json.dumps(
                {
                    "cpu": cpu,
                    "received": up.received + down.received,
                    "passed": up.passed + down.passed,
                    "dropped": up.dropped + down.dropped,
                }
            ),
            flush=True,
        )

    profile_to = os.environ.get("RELAY_COST_PROFILE")
    if profile_to:
        import cProfile

        cProfile.runctx("asyncio.run(main())", globals(), locals(), profile_to)
    else:
        asyncio.run(main())


# ---------------------------------------------------------------- the load


def load(relay_port: int, target: Any, sender: Any, packets: int, rate: float, burst: int) -> None:
    """Send `packets` datagrams through the relay at `rate` a second in bursts, answer
    every second one at the target, and drain the answers; bounded in time."""
    payload = os.urandom(SIZE * 64)
    datagrams = [payload[i * SIZE : (i + 1) * SIZE] for i in range(64)]
    ack = os.urandom(ACK_SIZE)
    relay = (LOOPBACK, relay_port)
    sel = selectors.DefaultSelector()
    sel.register(target.fileno(), selectors.EVENT_READ, "target")
    sel.register(sender.fileno(), selectors.EVENT_READ, "sender")
    start = time.monotonic()
    deadline = start + RUN_LIMIT
    sent = 0
    unanswered = 0
    last_arrival = start
    while time.monotonic() < deadline:
        now = time.monotonic()
        if sent < packets:
            if rate <= 0 or start + sent / rate <= now:  # a burst is due
                n = min(burst, packets - sent)
                k = sent % 64
                sent += sender.send_batch((datagrams * 2)[k : k + n], relay)
            wait = 0.0 if rate <= 0 else max(0.0, start + sent / rate - time.monotonic())
        elif now - last_arrival > SETTLE:
            break
        else:
            wait = SETTLE
        for key, _ in sel.select(wait):
            if key.data == "target":
                got = 0
                answer_to = None
                for view, size, addr in target.recv_reads():
                    got += (len(view) + size - 1) // size if size else 1
                    answer_to = addr
                if answer_to is not None:
                    unanswered += got
                    target.send_batch([ack] * (unanswered // 2), answer_to)
                    unanswered %= 2
            else:
                sender.recv_reads()
            last_arrival = time.monotonic()
    sel.close()


# ---------------------------------------------------------------- the driver


def git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


@contextmanager
def source_tree(revision: str) -> Iterator[Path]:
    """The directory holding synack/ for `revision`; a temporary copy for a commit."""
    if revision == WORKTREE:
        yield ROOT / "src"
        return
    commit = git("rev-parse", "--verify", f"{revision}^{{commit}}")
    with tempfile.TemporaryDirectory(prefix="relay-cost-") as tmp:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", commit, "src"], check=True, capture_output=True
        )
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        yield Path(tmp) / "src"


def run_once(
    src: Path, impair: str, rate: float, a: argparse.Namespace, options: str
) -> dict[str, Any]:
    from synack.drivers.udp import UdpCarrier

    with UdpCarrier.bound(LOOPBACK) as target, UdpCarrier.bound(LOOPBACK) as sender:
        env = dict(os.environ, PYTHONPATH=str(src))
        cmd = [sys.executable, "-S", __file__, "worker", str(target.sockname[1]), impair]
        proc = subprocess.Popen(
            [*cmd, str(src), options],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        assert proc.stdin is not None and proc.stdout is not None
        try:
            port = json.loads(proc.stdout.readline())["port"]
            proc.stdin.write("go\n")
            proc.stdin.flush()
            load(port, target, sender, a.packets, rate, a.burst)
            proc.stdin.write("stop\n")
            proc.stdin.flush()
            result: dict[str, Any] = json.loads(proc.stdout.readline())
        finally:
            proc.stdin.close()
            proc.wait(timeout=RUN_LIMIT)
    return result


def main(argv: list[str]) -> None:
    if argv[:1] == ["worker"]:
        worker(int(argv[1]), argv[2], argv[3], argv[4])
        return
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--before", default=BEFORE, help=f"a commit, or WORKTREE ({BEFORE})")
    p.add_argument("--after", default=WORKTREE, help="a commit, or WORKTREE (the default)")
    p.add_argument("--after-options", default="{}", help="UdpRelay keywords for the after side")
    p.add_argument("--rates", default="40000,20000,5000", help="packets/s, or full")
    p.add_argument("--impair", default="none,sbs", help="none, sbs (side_by_side's)")
    p.add_argument("--packets", type=int, default=40000, help="datagrams sent per run")
    p.add_argument("--burst", type=int, default=16, help="datagrams per GSO send")
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args(argv)
    rates = [0.0 if r == "full" else float(r) for r in a.rates.split(",")]
    sides = {"before": (a.before, "{}"), "after": (a.after, a.after_options)}
    print(f"before {a.before}, after {a.after} {a.after_options}; {a.packets} datagrams a run")
    with source_tree(a.before) as before_src, source_tree(a.after) as after_src:
        trees = {"before": before_src, "after": after_src}
        print("| impairment | rate pkt/s | before µs/packet | after µs/packet | after/before |")
        print("|---|---|---|---|---|")
        for impair in a.impair.split(","):
            for rate in rates:
                cost: dict[str, list[float]] = {"before": [], "after": []}
                ratios = []
                for round_ in range(a.rounds):
                    order = ["before", "after"] if round_ % 2 == 0 else ["after", "before"]
                    got = {}
                    for side in order:
                        r = run_once(trees[side], impair, rate, a, sides[side][1])
                        got[side] = r["cpu"] / max(1, r["received"])
                        cost[side].append(got[side])
                        print(
                            f"  {impair} {rate:g} {side}: {got[side] * 1e6:.1f} µs/packet, {r}",
                            file=sys.stderr,
                            flush=True,
                        )
                    ratios.append(got["after"] / got["before"])

                def spread(xs: list[float], scale: float = 1e6, digits: int = 1) -> str:
                    lo, mid, hi = min(xs) * scale, statistics.median(xs) * scale, max(xs) * scale
                    return f"{mid:.{digits}f} ({lo:.{digits}f}-{hi:.{digits}f})"

                print(
                    f"| {impair} | {'full' if rate <= 0 else f'{rate:,.0f}'} "
                    f"| {spread(cost['before'])} | {spread(cost['after'])} "
                    f"| {spread(ratios, 1.0, 2)} |",
                    flush=True,
                )


if __name__ == "__main__":
    main(sys.argv[1:])
