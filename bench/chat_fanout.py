"""Fan-out: one sender, N receivers in one room; deliveries per second, synack vs threads.

Both servers speak the same framing (docs/PROTOCOL.md §1-2) and are driven by the
same harness: receivers live in separate processes on raw sockets and a selector
and only count MESSAGE frames, so the server under test keeps a core to itself.

The baseline is the seeds' design: socketserver.ThreadingTCPServer, one thread
per client, and each received message sent to every member's socket in turn.

    python3 bench/chat_fanout.py                     # 100 clients, 10,000 x 100 B
    python3 bench/chat_fanout.py --clients 50 --messages 2000
    python3 bench/chat_fanout.py --plain             # also the bare asyncio ceiling

With --plain a third server runs in the same harness: a bare asyncio relay that
does no chat work at all (no validation, no rooms, no nicknames) and writes all
the messages of one read to each member in one write. It shows how close synack's
own per-message work comes to the ceiling of Python and the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import selectors
import socket
import socketserver
import struct
import subprocess
import sys
import threading
import time
from typing import Any, cast

HEADER = struct.Struct("!BQ")
MAGIC = b"\x00SNK"
MSG_PREFIX = b'{"op":"msg"'


def frame(body: dict[str, Any]) -> bytes:
    payload = json.dumps(body, separators=(",", ":")).encode()
    return HEADER.pack(1, len(payload)) + payload


def hello(nick: str) -> bytes:
    return MAGIC + frame({"op": "hello", "app": "chat", "version": 1, "nick": nick})


def read_frame(sock: socket.socket, buf: bytearray) -> dict[str, Any]:
    """Blocking: the next MESSAGE frame's body (handshakes only; not the hot path)."""
    while True:
        if len(buf) >= 9:
            _, n = HEADER.unpack_from(buf)
            if len(buf) >= 9 + n:
                body: dict[str, Any] = json.loads(bytes(buf[9 : 9 + n]))
                del buf[: 9 + n]
                return body
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("server closed during handshake")
        buf += data


# --- the baseline server -------------------------------------------------------------------


class BaselineHandler(socketserver.BaseRequestHandler):
    """One thread per client; every message is sent to each member in turn."""

    server: BaselineServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        f = sock.makefile("rb")
        if f.read(4) != MAGIC:
            return
        _, n = HEADER.unpack(f.read(9))
        nick = json.loads(f.read(n))["nick"]
        sock.sendall(frame({"op": "welcome", "version": 1, "nick": nick, "room": "lobby"}))
        members = self.server.members
        with self.server.lock:
            members.append(sock)
        try:
            while header := f.read(9):
                _, n = HEADER.unpack(header)
                request = json.loads(f.read(n))
                if request.get("op") != "say":
                    continue
                out = frame({"op": "msg", "room": "lobby", "from": nick, "text": request["text"]})
                for member in list(members):
                    if member is not sock:
                        with contextlib.suppress(OSError):
                            member.sendall(out)
        finally:
            with self.server.lock:
                members.remove(sock)


class BaselineServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 1024

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # receivers hang up when the bench ends; nothing to report

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), BaselineHandler)
        self.members: list[socket.socket] = []
        self.lock = threading.Lock()


def serve_baseline() -> None:
    server = BaselineServer()
    print(f"listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


# --- the ceiling: a bare batching asyncio relay --------------------------------------------


def serve_plain() -> None:
    """Relay every `say` of one read to every other member in one write; nothing else."""
    members: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if await reader.readexactly(4) != MAGIC:
            return
        _, n = HEADER.unpack(await reader.readexactly(9))
        nick = json.loads(await reader.readexactly(n))["nick"]
        writer.write(frame({"op": "welcome", "version": 1, "nick": nick, "room": "lobby"}))
        members.append(writer)
        buf = b""
        try:
            while data := await reader.read(1 << 18):
                buf += data
                pos, out = 0, []
                while len(buf) - pos >= 9:
                    _, n = HEADER.unpack_from(buf, pos)
                    if len(buf) - pos - 9 < n:
                        break
                    request = json.loads(buf[pos + 9 : pos + 9 + n])
                    pos += 9 + n
                    if request.get("op") == "say":
                        body = {"op": "msg", "room": "lobby", "from": nick, "text": request["text"]}
                        out.append(frame(body))
                buf = buf[pos:]
                if out:
                    joined = b"".join(out)
                    for member in members:
                        if member is not writer:
                            member.write(joined)
        finally:
            members.remove(writer)

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
        print(f"listening on 127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
        await server.serve_forever()

    asyncio.run(main())


# --- the harness -----------------------------------------------------------------------------


def receiver(
    port: int, nicks: list[str], expect: int, deadline: float, ready: Any, out: Any
) -> None:
    """Hold sockets for `nicks`; count msg frames until each has `expect` or time runs out."""
    sel = selectors.DefaultSelector()
    bufs: dict[socket.socket, bytearray] = {}
    counts: dict[socket.socket, int] = {}
    for nick in nicks:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(hello(nick))
        buf = bytearray()
        welcome = read_frame(sock, buf)
        assert welcome["op"] == "welcome", welcome
        sock.setblocking(False)
        bufs[sock], counts[sock] = buf, 0
        sel.register(sock, selectors.EVENT_READ)
    ready.put(len(nicks))
    total, done, last = 0, 0, time.monotonic()
    while done < len(nicks) and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.5):
            sock = cast(socket.socket, key.fileobj)
            data = sock.recv(1 << 20)
            if not data:
                sel.unregister(sock)
                done += 1
                continue
            buf = bufs[sock]
            buf += data
            pos, n, end = 0, 0, len(buf)
            # No slices per frame: the harness must cost the servers as little as it can.
            unpack, starts = HEADER.unpack_from, buf.startswith
            while end - pos >= 9:
                stop = pos + 9 + unpack(buf, pos)[1]
                if stop > end:
                    break
                if starts(MSG_PREFIX, pos + 9):
                    n += 1
                pos = stop
            del buf[:pos]
            if n:
                before = counts[sock]
                counts[sock] = before + n
                total += n
                last = time.monotonic()  # of the latest delivery: the rate holds even if cut short
                if before < expect <= before + n:
                    done += 1
    out.put((total, last))


def start(cmd: list[str]) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return proc, int(line.split("listening on ")[1].split()[0].rsplit(":", 1)[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), or NaN elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(name: str, cmd: list[str], args: argparse.Namespace) -> float:
    proc, port = start(cmd)
    try:
        ctx = mp.get_context("fork")
        ready, out = ctx.Queue(), ctx.Queue()
        deadline = time.monotonic() + args.time_limit
        groups = [
            [f"r{i}" for i in range(args.clients) if i % args.procs == p] for p in range(args.procs)
        ]
        workers = [
            ctx.Process(target=receiver, args=(port, g, args.messages, deadline, ready, out))
            for g in groups
        ]
        for w in workers:
            w.start()
        for _ in workers:
            ready.get(timeout=args.time_limit)
        sender = socket.create_connection(("127.0.0.1", port))
        sender.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sender.sendall(hello("sender"))
        assert read_frame(sender, bytearray())["op"] == "welcome"
        text = "m" * args.size
        batch = frame({"op": "say", "text": text}) * 100
        cpu0 = cpu_seconds(proc.pid)
        t0 = time.monotonic()
        for _ in range(args.messages // 100):
            sender.sendall(batch)
        sender.sendall(frame({"op": "say", "text": text}) * (args.messages % 100))
        results = [out.get(timeout=args.time_limit + 5) for _ in workers]
        cpu = cpu_seconds(proc.pid) - cpu0  # the server's own work, less noisy than wall time
        for w in workers:
            w.join(timeout=5)
        sender.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    total = sum(r[0] for r in results)
    elapsed = max(r[1] for r in results) - t0
    want = args.clients * args.messages
    rate = float(total / elapsed)
    note = "" if total == want else f"  (time limit reached at {total:,} of {want:,})"
    print(
        f"{name:>9}: {total:>9,} deliveries in {elapsed:6.3f} s = {rate:>11,.0f} /s; "
        f"server CPU {cpu:5.2f} s = {cpu / max(total, 1) * 1e6:5.2f} us per delivery{note}"
    )
    return rate


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--clients", type=int, default=100)
    p.add_argument("--messages", type=int, default=10_000)
    p.add_argument("--size", type=int, default=100, help="bytes of text per message")
    p.add_argument("--procs", type=int, default=2, help="receiver processes")
    p.add_argument("--time-limit", type=float, default=12.0, help="seconds per server, at most")
    p.add_argument("--profile", metavar="FILE", help="run the synack server under cProfile")
    p.add_argument("--plain", action="store_true", help="also run the bare asyncio relay")
    p.add_argument("--serve-baseline", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--serve-plain", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve_baseline:
        serve_baseline()
        return
    if args.serve_plain:
        serve_plain()
        return
    print(
        f"fan-out: {args.clients} receivers, 1 sender, {args.messages:,} messages of "
        f"{args.size} B; {os.cpu_count()} CPUs"
    )
    me = os.path.abspath(__file__)
    base = measure("threads", [sys.executable, me, "--serve-baseline"], args)
    profile = ["-m", "cProfile", "-o", args.profile] if args.profile else []
    ours = measure(
        "synack",
        [
            sys.executable,
            *profile,
            "-m",
            "synack",
            "chat",
            "serve",
            "--port",
            "0",
            "--quiet",
            "--max-clients",
            str(args.clients + 10),
        ],
        args,
    )
    print(f"ratio synack/threads: {ours / base:.1f}x (target >= 20x)")
    if args.plain:
        plain = measure("plain", [sys.executable, me, "--serve-plain"], args)
        print(f"ratio plain/threads: {plain / base:.1f}x; synack/plain: {ours / plain:.2f}")
    if args.profile:
        import pstats

        pstats.Stats(args.profile).sort_stats("tottime").print_stats(12)


if __name__ == "__main__":
    main()
