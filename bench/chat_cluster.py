"""Fan-out across a chat cluster: deliveries per second for 2 servers against 1, in one run.

The harness is chat_fanout.py's (receivers in separate processes on raw sockets,
one sender, only MESSAGE frames counted); a redis-server of its own (Debian's, as
the tests start it: loopback, a free port, no persistence) carries the cluster.

- ``1 server``: one ``chat serve --redis``, every receiver on it;
- ``2 servers``: two, the receivers split between them, the sender on the first, so
  half the deliveries cross Redis (one PUBLISH per batch, not per message);
- ``plain``: one ``chat serve`` without --redis, for the cost of being in a cluster.

    python3 bench/chat_cluster.py                    # 100 receivers, 10,000 x 100 B
    python3 bench/chat_cluster.py --clients 50 --messages 2000
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from chat_fanout import cpu_seconds, frame, hello, read_frame, receiver, start
from redisproc import RedisServer


def serve_command(args: argparse.Namespace, redis: str | None) -> list[str]:
    cmd = [sys.executable, "-m", "synack", "chat", "serve", "--port", "0", "--quiet"]
    cmd += ["--max-clients", str(args.clients + 10)]
    return cmd + (["--redis", redis] if redis else [])


def measure(name: str, commands: list[list[str]], args: argparse.Namespace) -> float:
    servers = [start(cmd) for cmd in commands]
    procs = [proc for proc, _ in servers]
    ports = [port for _, port in servers]
    try:
        ctx = mp.get_context("fork")
        ready, out = ctx.Queue(), ctx.Queue()
        deadline = time.monotonic() + args.time_limit
        # Receiver process p holds the receivers i with i % procs == p, on server p % len(ports).
        groups = [
            (ports[p % len(ports)], [f"r{i}" for i in range(args.clients) if i % args.procs == p])
            for p in range(args.procs)
        ]
        workers = [
            ctx.Process(target=receiver, args=(port, g, args.messages, deadline, ready, out))
            for port, g in groups
        ]
        for w in workers:
            w.start()
        for _ in workers:
            ready.get(timeout=args.time_limit)
        sender = socket.create_connection(("127.0.0.1", ports[0]))
        sender.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sender.sendall(hello("sender"))
        assert read_frame(sender, bytearray())["op"] == "welcome"
        # Random printable text, as the rule for benchmarks asks (no runs of one byte).
        rng = random.Random(os.urandom(8))
        letters = "abcdefghijklmnopqrstuvwxyz0123456789 "
        texts = ["".join(rng.choices(letters, k=args.size)) for _ in range(100)]
        batch = b"".join(frame({"op": "say", "text": t}) for t in texts)
        cpu0 = sum(cpu_seconds(p.pid) for p in procs)
        t0 = time.monotonic()
        for _ in range(args.messages // 100):
            sender.sendall(batch)
        sender.sendall(
            b"".join(frame({"op": "say", "text": t}) for t in texts[: args.messages % 100])
        )
        results = [out.get(timeout=args.time_limit + 5) for _ in workers]
        cpu = sum(cpu_seconds(p.pid) for p in procs) - cpu0
        for w in workers:
            w.join(timeout=5)
        sender.close()
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=10)
    total = sum(r[0] for r in results)
    elapsed = max(r[1] for r in results) - t0
    want = args.clients * args.messages
    rate = float(total / elapsed)
    note = "" if total == want else f"  (time limit reached at {total:,} of {want:,})"
    print(
        f"{name:>9}: {total:>9,} deliveries in {elapsed:6.3f} s = {rate:>11,.0f} /s; "
        f"servers' CPU {cpu:5.2f} s = {cpu / max(total, 1) * 1e6:5.2f} us per delivery{note}"
    )
    return rate


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--clients", type=int, default=100)
    p.add_argument("--messages", type=int, default=10_000)
    p.add_argument("--size", type=int, default=100, help="bytes of text per message")
    p.add_argument("--procs", type=int, default=2, help="receiver processes (at least 2)")
    p.add_argument("--time-limit", type=float, default=20.0, help="seconds per run, at most")
    p.add_argument("--repeat", type=int, default=1, help="alternate the runs this many times")
    args = p.parse_args()
    args.procs = max(args.procs, 2)
    print(
        f"cluster fan-out: {args.clients} receivers, 1 sender, {args.messages:,} messages of "
        f"{args.size} B; {os.cpu_count()} CPUs"
    )
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisServer(Path(tmp))
        redis.start()
        try:
            for _ in range(args.repeat):
                plain = measure("plain", [serve_command(args, None)], args)
                one = measure("1 server", [serve_command(args, redis.url)], args)
                two = measure("2 servers", [serve_command(args, redis.url)] * 2, args)
                print(
                    f"ratio 2 servers / 1 server: {two / one:.2f}; "
                    f"1 server in a cluster / plain: {one / plain:.2f}"
                )
        finally:
            redis.stop()


if __name__ == "__main__":
    main()
