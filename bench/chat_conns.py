"""Connections held: server memory per connected chat client, synack vs threads.

A client process opens N connections, completes the hello handshake on each
(MAGIC, hello, welcome), reads everything the server sends until it is quiet, and
then the server's resident memory is read from /proc. Memory per connection is
(RSS with N clients - RSS before) / N. Clients are spread over rooms of 50 so that
join notices stay bounded (one room of 5,000 would be 12.5 million notices).

The baseline is socketserver.ThreadingTCPServer holding the same connections,
one thread per client (from bench/chat_fanout.py).

    python3 bench/chat_conns.py                   # 5,000 clients
    python3 bench/chat_conns.py --clients 1000
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import selectors
import socket
import sys
import time
from typing import Any, cast

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chat_fanout import HEADER, MAGIC, frame, start


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def raise_nofile(need: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def clients(port: int, n: int, deadline: float, ready: Any, release: Any) -> None:
    """Open n connections, finish each handshake, drain until quiet; hold until released."""
    sel = selectors.DefaultSelector()
    socks = []
    for i in range(n):
        if time.monotonic() > deadline:
            break
        sock = socket.create_connection(("127.0.0.1", port))
        body = {"op": "hello", "app": "chat", "version": 1, "nick": f"c{i}", "room": f"r{i // 50}"}
        sock.sendall(MAGIC + frame(body))
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ, data=bytearray())
        socks.append(sock)
    welcomed = 0
    got_welcome: set[socket.socket] = set()
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        events = sel.select(timeout=0.2)
        if not events and welcomed == len(socks) and time.monotonic() - quiet_since > 0.5:
            break
        for key, _ in events:
            sock = cast(socket.socket, key.fileobj)
            data = sock.recv(65536)
            if not data:
                sel.unregister(sock)
                continue
            quiet_since = time.monotonic()
            if sock not in got_welcome:
                buf = key.data
                buf += data
                if len(buf) >= 9:
                    _, length = HEADER.unpack_from(buf)
                    if len(buf) >= 9 + length and b'"op":"welcome"' in buf[9 : 9 + length]:
                        got_welcome.add(sock)
                        welcomed += 1
                        buf.clear()
    ready.put(welcomed)
    release.get()
    for sock in socks:
        sock.close()


def measure(name: str, cmd: list[str], args: argparse.Namespace) -> float:
    proc, port = start(cmd)
    try:
        time.sleep(0.2)  # let the fresh process settle before the "before" reading
        before = rss_kib(proc.pid)
        ctx = mp.get_context("fork")
        ready, release = ctx.Queue(), ctx.Queue()
        worker = ctx.Process(
            target=clients,
            args=(port, args.clients, time.monotonic() + args.time_limit, ready, release),
        )
        t0 = time.monotonic()
        worker.start()
        welcomed = ready.get(timeout=args.time_limit + 10)
        elapsed = time.monotonic() - t0
        after = rss_kib(proc.pid)
        release.put(None)
        worker.join(timeout=10)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    per = float((after - before) / max(welcomed, 1))
    note = "" if welcomed == args.clients else f"  (ONLY {welcomed} completed the handshake)"
    print(
        f"{name:>9}: {welcomed:,} clients in {elapsed:5.1f} s; RSS {before / 1024:6.1f} -> "
        f"{after / 1024:6.1f} MiB = {per:5.1f} KiB per connection{note}"
    )
    return per


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--clients", type=int, default=5000)
    p.add_argument("--time-limit", type=float, default=20.0, help="seconds per server, at most")
    p.add_argument("--no-baseline", action="store_true", help="measure synack only")
    args = p.parse_args()
    limit = raise_nofile(args.clients + 200)  # inherited by the servers we start
    if limit < args.clients + 100:
        raise SystemExit(f"RLIMIT_NOFILE is {limit}: too low for {args.clients} connections")
    print(f"connections: {args.clients:,} chat clients held by one server; RLIMIT_NOFILE {limit}")
    fanout = os.path.join(os.path.dirname(os.path.abspath(__file__)), "chat_fanout.py")
    ours = measure(
        "synack",
        [
            sys.executable,
            "-m",
            "synack",
            "chat",
            "serve",
            "--port",
            "0",
            "--quiet",
            "--max-clients",
            str(args.clients + 10),
            "--backlog",
            "4096",
        ],
        args,
    )
    if not args.no_baseline:
        base = measure("threads", [sys.executable, fanout, "--serve-baseline"], args)
        print(f"ratio threads/synack memory per connection: {base / ours:.1f}x")
    print(f"target: <= 20 KiB per connection: {'met' if ours <= 20 else 'NOT met'}")


if __name__ == "__main__":
    main()
