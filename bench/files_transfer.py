"""File transfer speed over loopback against raw socket baselines measured in the same run.

    python3 bench/files_transfer.py                # 1 GiB, 7 rounds
    python3 bench/files_transfer.py --size 64M     # a quick run

Raw baseline (the one the acceptance names), per direction: the sender
``os.sendfile``s the file into a plain blocking socket; the receiver
``recv_into``s a preallocated 1 MiB buffer and writes it to a file. No framing,
no hashing, no verification. Beside it, the like-for-like baselines: the same
with SHA-256 computed where synack computes it (the receiver for a download
from a server that has the hash cached; both ends for an upload), in worker
threads, checked equal at the end. And the SHA-256 of the file alone, in one
thread: no verified transfer can finish before its hash does.

synack: a ``synack files serve`` process; the client in this process through
the library API (`FileClient.get` / `.put`), which includes the stat request,
framing, SHA-256 on both sides, the temporary name and the rename.
"Cold" is the first download from a freshly started server (it hashes the file
while sending it); "warm" is a repeat after one unmeasured download filled the
server's hash cache (the bench counts, from the server's log, how many warm
downloads the cache answered). The source file's mtime is set an hour back, as
for any file that was not written in the last 2 s (see hashing.RACY_NS).

Sender and receiver are always separate processes. Every round runs each kind
once, starting at a different kind each round. The table gives the best and
the median of the rounds and the ratios of synack's rate to the raw baseline's
and to the like-for-like baseline's. On a shared VM, interference only ever
slows a run down, so the best of several rounds is the steadier measure of the
work itself; the median shows what a typical run gets. Files live in a
temporary directory that is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import multiprocessing
import os
import re
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path
from typing import IO

from synack.apps.files import FileClient

CHUNK = 1 << 20
_ctx = multiprocessing.get_context("fork")


def parse_size(text: str) -> int:
    m = re.fullmatch(r"(\d+)([KMG]?)", text.strip().upper())
    if not m:
        raise argparse.ArgumentTypeError(f"bad size {text!r} (e.g. 1G, 256M)")
    return int(m.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[m.group(2)]


def make_file(path: Path, size: int) -> None:
    """The source file, flushed to disk so its writeback does not run during the rounds."""
    block = os.urandom(16 << 20)
    with open(path, "wb") as f:
        left = size
        while left:
            n = f.write(block[: min(left, len(block))])
            left -= n
        f.flush()
        os.fsync(f.fileno())


# -- raw baselines ------------------------------------------------------------
#
# The baseline the acceptance names: sendfile -> recv_into -> write, nothing else.
# Beside it, the same with SHA-256 computed where synack computes it (the
# receiver always; the sender too on upload, as a cold synack server does on
# download), checked equal at the end: the like-for-like floor for any design
# that verifies every byte end to end.


def _send(conn: socket.socket, path: str) -> None:
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        offset = 0
        while offset < size:
            offset += os.sendfile(conn.fileno(), f.fileno(), offset, size - offset)


def _sender(address: tuple[str, int], path: str, hashed: bool, result: Connection) -> None:
    """The child: connect, send the file, report the SHA-256 it computed beside the send."""
    with socket.create_connection(address) as conn:
        if not hashed:
            _send(conn, path)
            result.send("")
            return
        with ThreadPoolExecutor(1) as hasher:
            digest = hasher.submit(sha256_of, path)
            _send(conn, path)
            result.send(digest.result())


def _raw_receive(conn: socket.socket, path: str) -> None:
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(path, "wb", buffering=0) as f:
        while n := conn.recv_into(buf):
            f.write(view[:n])


def _raw_receive_hashed(conn: socket.socket, path: str) -> str:
    """The raw receiver plus SHA-256 of what it wrote, hashed in a worker thread.

    The same shape as synack's receiver, the strongest simple design: three
    4 MiB buffers cycle between the socket (filled, then written, here) and one
    hashing thread, so hashing overlaps the network and the disk.
    """
    sha = hashlib.sha256()
    buffers = [bytearray(4 * CHUNK) for _ in range(3)]
    pending: list[Future[None] | None] = [None] * 3
    i = 0
    with open(path, "wb", buffering=0) as f, ThreadPoolExecutor(1) as hasher:
        while True:
            if (job := pending[i]) is not None:
                job.result()
            view = memoryview(buffers[i])
            filled = 0
            while filled < len(view) and (n := conn.recv_into(view[filled:])):
                filled += n
            if not filled:
                break
            pending[i] = hasher.submit(sha.update, view[:filled])
            f.write(view[:filled])
            i = (i + 1) % 3
        for job in pending:
            if job is not None:
                job.result()
    return sha.hexdigest()


def sha256_of(path: str | Path) -> str:
    """SHA-256 of a file in one thread, 1 MiB positional reads."""
    sha = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            sha.update(view[:n])
    return sha.hexdigest()


def raw_transfer(src: Path, dst: Path, *, hash_sender: bool, hash_receiver: bool) -> float:
    """Sender in a child process, receiver here; seconds from the connection to the
    last byte written and, when hashing, both digests known and equal."""
    listener = socket.create_server(("127.0.0.1", 0))
    ours, theirs = _ctx.Pipe(duplex=False)
    start = time.perf_counter()
    child = _ctx.Process(
        target=_sender, args=(listener.getsockname(), str(src), hash_sender, theirs)
    )
    child.start()
    conn, _ = listener.accept()
    if hash_receiver:
        received = _raw_receive_hashed(conn, str(dst))
    else:
        _raw_receive(conn, str(dst))
    sent = ours.recv()
    elapsed = time.perf_counter() - start
    if hash_sender and hash_receiver and sent != received:
        raise SystemExit("raw baseline: the SHA-256 of the sent and received file differ")
    conn.close()
    child.join()
    listener.close()
    return elapsed


def time_sha256(path: Path) -> float:
    start = time.perf_counter()
    sha256_of(path)
    return time.perf_counter() - start


# -- synack -------------------------------------------------------------------


class ServerProcess:
    """``synack files serve`` in its own process."""

    def __init__(self, root: Path, log: Path) -> None:
        self.log = log
        with open(log, "ab") as err:
            self.proc = self._spawn(root, err)
        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout=20):
            self.proc.kill()
            raise SystemExit("the synack server did not start within 20 s")
        line = self.proc.stdout.readline()
        m = re.search(r":(\d+) \(", line)
        if not m:
            self.proc.kill()
            raise SystemExit(f"unexpected server output: {line!r}")
        self.port = int(m.group(1))

    @staticmethod
    def _spawn(root: Path, err: IO[bytes]) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "synack",
                "files",
                "serve",
                str(root),
                "--port",
                "0",
                "--allow-upload",
            ],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def _timed(port: int, work: Callable[[FileClient], Awaitable[object]]) -> float:
    async with await FileClient.connect("127.0.0.1", port) as client:
        start = time.perf_counter()
        await work(client)
        return time.perf_counter() - start


def synack_download(port: int, name: str, dst: Path) -> float:
    return asyncio.run(_timed(port, lambda c: c.get(name, str(dst))))


def synack_upload(port: int, src: Path, name: str) -> float:
    return asyncio.run(_timed(port, lambda c: c.put(str(src), name, force=True)))


# -- the run ------------------------------------------------------------------

# (key, label, baseline key for the ratios): the acceptance's ratio is against
# the bare raw run of the same direction; "vs like" is against the raw run that
# hashes where synack hashes.
ROWS = [
    ("raw_down", "download, raw sendfile -> recv_into", "raw_down"),
    ("sha_down", "download, raw + SHA-256 at the receiver", "raw_down"),
    ("warm", "download, synack, warm server (hash cached)", "raw_down"),
    ("cold", "download, synack, cold server (hashes too)", "raw_down"),
    ("raw_up", "upload, raw sendfile -> recv_into", "raw_up"),
    ("sha_up", "upload, raw + SHA-256 at both ends", "raw_up"),
    ("up", "upload, synack", "raw_up"),
    ("sha256", "SHA-256 of the file alone, one thread", "raw_down"),
]
LIKE = {"warm": "sha_down", "cold": "sha_up", "up": "sha_up"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=parse_size, default=1 << 30, help="file size (default 1G)")
    parser.add_argument("--rounds", type=int, default=7, help="repetitions per figure (default 7)")
    parser.add_argument("--dir", default=None, help="where to put the temporary directory")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="synack-bench-", dir=args.dir))
    served, local = work / "served", work / "local"
    served.mkdir()
    local.mkdir()
    src = served / "big.bin"
    upload_src = local / "upload.bin"
    try:
        make_file(src, args.size)
        # A served file is usually older than the 2 s the server's hash cache
        # waits out before it trusts a file's mtime (hashing.RACY_NS).
        hour_ago = time.time_ns() - 3600 * 10**9
        os.utime(src, ns=(hour_ago, hour_ago))
        os.link(src, upload_src)
        results: dict[str, list[float]] = {k: [] for k, _, _ in ROWS}
        out = local / "down.bin"
        log = work / "server.log"
        server = ServerProcess(served, log)
        uploaded = served / "up.bin"

        def raw(source: Path, sender: bool, receiver: bool) -> Callable[[], float]:
            return partial(raw_transfer, source, out, hash_sender=sender, hash_receiver=receiver)

        runs: list[tuple[str, Callable[[], float], Path]] = [
            ("raw_down", raw(src, False, False), out),
            ("sha_down", raw(src, False, True), out),
            ("warm", partial(synack_download, server.port, "big.bin", out), out),
            ("raw_up", raw(upload_src, False, False), out),
            ("sha_up", raw(upload_src, True, True), out),
            ("up", partial(synack_upload, server.port, upload_src, "up.bin"), uploaded),
            ("sha256", partial(time_sha256, src), out),
        ]
        try:
            synack_download(server.port, "big.bin", out)  # fills the server's hash cache
            out.unlink()
            for round_ in range(args.rounds):
                # Each round starts at a different run, so no kind of run always
                # follows the same one (what the previous run freed matters here).
                shift = round_ % len(runs)
                for key, run, made in runs[shift:] + runs[:shift]:
                    results[key].append(run())
                    made.unlink(missing_ok=True)
        finally:
            server.stop()
        # Cold: every download from a fresh server process, whose hash cache is empty.
        for _ in range(args.rounds):
            server = ServerProcess(served, log)
            try:
                results["cold"].append(synack_download(server.port, "big.bin", out))
            finally:
                server.stop()
                out.unlink(missing_ok=True)
        served_from_cache = log.read_text().count("hash cached")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def rate(key: str, pick: Callable[[list[float]], float]) -> float:
        return float(args.size / pick(results[key]) / 1e6)

    print(
        f"file {args.size / (1 << 20):.0f} MiB, {args.rounds} rounds; {os.cpu_count()} CPUs; "
        f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after"
    )
    print(
        f"{'transfer':44} {'best MB/s':>9} {'median':>7} {'ratio best':>10} {'median':>7}"
        f" {'vs like best':>12} {'median':>7}   seconds, each round"
    )
    for key, label, base in ROWS:
        best, median = rate(key, min), rate(key, statistics.median)
        ratios = f"{best / rate(base, min):10.2f} {median / rate(base, statistics.median):7.2f}"
        like = LIKE.get(key)
        if like:
            ratios += (
                f" {best / rate(like, min):12.2f} {median / rate(like, statistics.median):7.2f}"
            )
        else:
            ratios += " " * 21
        each = " ".join(f"{t:.2f}" for t in results[key])
        print(f"{label:44} {best:9.0f} {median:7.0f} {ratios}   {each}")
    print(
        f"warm downloads answered from the server's hash cache: {served_from_cache} of {args.rounds}"
    )


if __name__ == "__main__":
    main()
