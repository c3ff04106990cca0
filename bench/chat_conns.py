"""Connections held: server memory per connected chat client, on each transport vs threads.

The chat server (`synack chat serve`) runs in its own process, once per transport:
``--transport os`` (the kernel's TCP, whose socket buffers and state are kernel
memory, outside the server's RSS) and ``--transport synack`` (our TCP carried in UDP,
which lives in the server's process, so its buffers and state count in its RSS).
A client process opens N connections on the same transport, completes the hello
handshake on each (MAGIC, hello, welcome), reads everything the server sends until
it is quiet, and then the server's resident memory is read from /proc. Memory per
connection is (RSS with N clients - RSS before) / N. Clients are spread over rooms
of 50 (--room-size) so that join notices stay bounded (one room of 5,000 would be
12.5 million notices).

The baseline is socketserver.ThreadingTCPServer holding the same connections on
the kernel's TCP, one thread per client (from bench/chat_fanout.py).

    python3 bench/chat_conns.py                            # 5,000 clients, both transports
    python3 bench/chat_conns.py --clients 1000 --transports synack --no-baseline
    python3 bench/chat_conns.py --clients 10000 --room-size 100 --transports os
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import resource
import subprocess
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chat_fanout import HEADER, MAGIC, frame, start
from synack import transport as seam

QUIET = 0.5  # seconds without a byte from the server: it has sent all it will
OPENING = 64  # handshakes in flight at once, well inside the listen backlog


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


def clients(
    transport: str, port: int, n: int, room: int, deadline: float, ready: Any, release: Any
) -> None:
    """In the client process: hold n logged-in connections until released."""
    asyncio.run(_clients(transport, port, n, room, deadline, ready, release))


async def _clients(
    transport: str, port: int, n: int, room: int, deadline: float, ready: Any, release: Any
) -> None:
    """Open n connections on `transport` (our TCP gives each its own UDP socket), finish
    each handshake, read until the server is quiet; report how many were welcomed."""
    loop = asyncio.get_running_loop()
    welcomed = 0
    last_rx = loop.time()
    all_in = asyncio.Event()
    gate = asyncio.Semaphore(OPENING)
    writers: list[asyncio.StreamWriter] = []

    async def one(i: int) -> None:
        nonlocal welcomed, last_rx
        async with gate:
            reader, writer = await seam.open_connection("127.0.0.1", port, transport=transport)
            writers.append(writer)
            body = {"op": "hello", "app": "chat", "version": 1, "nick": f"c{i}"}
            writer.write(MAGIC + frame({**body, "room": f"r{i // room}"}))
            first = await reader.readexactly(1)
            if first[0] not in (1, 2):  # not a frame: the nickname prompt (PROTOCOL.md §2.1)
                await reader.readuntil(b"\n")
                first = await reader.readexactly(1)
            head = first + await reader.readexactly(HEADER.size - 1)
            reply = await reader.readexactly(HEADER.unpack(head)[1])
        last_rx = loop.time()
        if b'"op":"welcome"' in reply:
            welcomed += 1
            if welcomed == n:
                all_in.set()
        while await reader.read(1 << 16):  # join notices, until the end of the test
            last_rx = loop.time()

    tasks = [asyncio.create_task(one(i)) for i in range(n)]
    budget = deadline - time.monotonic()
    try:
        await asyncio.wait_for(all_in.wait(), max(budget, 0.0))
        while loop.time() - last_rx < QUIET and time.monotonic() < deadline:
            await asyncio.sleep(QUIET / 5)  # polling for silence: nothing else signals it
    except TimeoutError:
        pass
    ready.put(welcomed)
    await loop.run_in_executor(None, release.get)
    for writer in writers:
        writer.close()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def measure(name: str, transport: str, cmd: list[str], args: argparse.Namespace) -> float:
    proc, port = start(cmd)
    ctx = mp.get_context("fork")
    ready, release = ctx.Queue(), ctx.Queue()
    deadline = time.monotonic() + 0.2 + args.time_limit
    worker = ctx.Process(
        target=clients,
        args=(transport, port, args.clients, args.room_size, deadline, ready, release),
    )
    try:
        time.sleep(0.2)  # let the fresh process settle before the "before" reading
        before = rss_kib(proc.pid)
        t0 = time.monotonic()
        worker.start()
        welcomed = ready.get(timeout=args.time_limit + 10)
        elapsed = time.monotonic() - t0
        after = rss_kib(proc.pid)
    finally:
        # The server stops first, as an operator stops it: it tells every client. (Clients
        # that leave first would send each room thousands of "left" notices on the way out.)
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        release.put(None)
        if worker.pid is not None:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()
    per = float((after - before) / max(welcomed, 1))
    note = "" if welcomed == args.clients else f"  (ONLY {welcomed} completed the handshake)"
    print(
        f"{name:>24}: {welcomed:,} clients in {elapsed:5.1f} s; RSS {before / 1024:6.1f} -> "
        f"{after / 1024:6.1f} MiB = {per:5.1f} KiB per connection{note}"
    )
    return per


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--clients", type=int, default=5000)
    p.add_argument("--room-size", type=int, default=50, help="clients per room")
    p.add_argument("--time-limit", type=float, default=30.0, help="seconds per server, at most")
    p.add_argument(
        "--transports",
        default=",".join(seam.names()),
        help="comma-separated transports for the chat server (default: %(default)s)",
    )
    p.add_argument("--no-baseline", action="store_true", help="measure the chat server only")
    args = p.parse_args()
    transports = [t for t in args.transports.split(",") if t]
    for t in transports:
        seam.get(t)  # an unknown name fails here, listing the choices
    # Inherited by the servers and client processes: ours opens a UDP socket per client.
    limit = raise_nofile(args.clients + 200)
    if limit < args.clients + 100:
        raise SystemExit(f"RLIMIT_NOFILE is {limit}: too low for {args.clients} connections")
    print(
        f"connections: {args.clients:,} chat clients held by one server in rooms of "
        f"{args.room_size}; RLIMIT_NOFILE {limit}"
    )
    serve = [sys.executable, "-m", "synack", "chat", "serve", "--port", "0", "--quiet"]
    serve += ["--max-clients", str(args.clients + 10), "--backlog", "4096"]
    per: dict[str, float] = {}
    for t in transports:
        per[t] = measure(f"chat, --transport {t}", t, [*serve, "--transport", t], args)
    if not args.no_baseline:
        fanout = os.path.join(os.path.dirname(os.path.abspath(__file__)), "chat_fanout.py")
        base = measure(
            "threads (baseline)", "os", [sys.executable, fanout, "--serve-baseline"], args
        )
        for t, ours in per.items():
            print(f"ratio threads/chat on {t} memory per connection: {base / ours:.1f}x")
    if "os" in per:
        # Issue 15: at most 10 KB (decimal), 9.77 KiB, per held connection.
        met = per["os"] * 1024 <= 10_000
        print(f"target (os): <= 10 KB per connection: {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
