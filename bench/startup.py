"""Start-up cost of the `synack` command against bare Python, measured in the same run.

    python3 bench/startup.py               # 20 rounds
    python3 bench/startup.py --rounds 5    # a quick look

Every command is a fresh process of this same interpreter (`sys.executable`):

* ``python -c pass``: the interpreter alone, the floor for any command;
* ``python -c "import asyncio"``: the floor for any command that does network I/O
  the way synack does;
* ``synack --help`` (as ``python -m synack --help``);
* ``synack files get`` of a 1 KiB file from a ``synack files serve`` started
  once, before the rounds. Two times: to the *first byte* the client puts on
  the wire, and for the whole command. The first byte is seen by a relay in
  this process: the client connects to the relay, which notes the moment the
  first bytes arrive (the preamble, ``\\0SNK``) and passes everything on to the
  server. Process start is the moment just before the process is spawned;
  both instants come from the same system-wide monotonic clock.

Targets (issue 15): ``synack --help`` within 2x of ``python -c pass``, and
``synack files get`` to its first byte within 1.5x of ``python -c "import asyncio"``.

Bytecode: like an installed package (pip compiles it), every child runs with
compiled bytecode cached, in a temporary ``PYTHONPYCACHEPREFIX``, whatever
``PYTHONDONTWRITEBYTECODE`` says; one unmeasured warm-up run of each command
fills it. Each round runs every command once, starting at a different one each
round. The table gives the best and the median: on a shared VM interference
only ever slows a run down, so the best is the steadier measure of the work.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

TIMEOUT = 30.0


class FirstByteRelay:
    """Accepts one client at a time, notes when its first bytes arrive, relays to `upstream`."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address: tuple[str, int] = self.listener.getsockname()[:2]
        self.first_byte: float | None = None
        self._done = threading.Event()

    def serve_one(self) -> threading.Thread:
        """Relay the next connection in a thread; `wait` for it to end."""
        self.first_byte = None
        self._done.clear()
        thread = threading.Thread(target=self._relay, daemon=True)
        thread.start()
        return thread

    def wait(self) -> float:
        if not self._done.wait(TIMEOUT) or self.first_byte is None:
            raise RuntimeError("the client never sent a byte through the relay")
        return self.first_byte

    def _relay(self) -> None:
        self.listener.settimeout(TIMEOUT)
        client, _ = self.listener.accept()
        server = socket.create_connection(self.upstream, timeout=TIMEOUT)
        peers = {client: server, server: client}
        with client, server, selectors.DefaultSelector() as sel:
            for s in peers:
                sel.register(s, selectors.EVENT_READ)
            open_ends = 2
            deadline = time.monotonic() + TIMEOUT
            while open_ends and time.monotonic() < deadline:
                for key, _ in sel.select(timeout=1.0):
                    src: socket.socket = key.fileobj  # type: ignore[assignment]
                    try:
                        data = src.recv(1 << 16)
                    except OSError:
                        data = b""
                    if data and src is client and self.first_byte is None:
                        self.first_byte = time.monotonic()
                    if data:
                        peers[src].sendall(data)
                    else:
                        sel.unregister(src)
                        open_ends -= 1
                        with contextlib.suppress(OSError):
                            peers[src].shutdown(socket.SHUT_WR)
        self._done.set()


def child_env(pycache: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONDONTWRITEBYTECODE", "FORCE_COLOR", "TTY_COMPATIBLE")
    }
    env["PYTHONPYCACHEPREFIX"] = pycache
    return env


def timed(argv: list[str], env: dict[str, str], cwd: str) -> float:
    started = time.monotonic()
    done = subprocess.run(
        argv,
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=TIMEOUT,
    )
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"{argv} failed: {done.stderr.decode()[-500:]}")
    return elapsed


def start_server(root: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "synack", "files", "serve", str(root), "--port", "0"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if " on " not in line:
        proc.kill()
        raise RuntimeError(f"the server did not start: {line!r}")
    port = int(line.split(" on ", 1)[1].split()[0].rsplit(":", 1)[1])
    return proc, port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20, help="rounds (default: %(default)s)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="synack-startup-") as tmp:
        root, work, pycache = Path(tmp, "served"), Path(tmp, "work"), Path(tmp, "pycache")
        root.mkdir()
        work.mkdir()
        (root / "small.bin").write_bytes(os.urandom(1024))
        env = child_env(str(pycache))
        server, port = start_server(root, env)
        relay = FirstByteRelay(("127.0.0.1", port))
        host, relay_port = relay.address
        py = sys.executable
        get_argv = [py, "-m", "synack", "files", "get", f"{host}:{relay_port}", "small.bin"]

        def files_get() -> tuple[float, float]:
            target = work / "small.bin"
            target.unlink(missing_ok=True)
            relay.serve_one()
            started = time.monotonic()
            whole = timed(get_argv, env, str(work))
            first = relay.wait() - started
            if target.read_bytes() != (root / "small.bin").read_bytes():
                raise RuntimeError("the download differs from the source")
            return first, whole

        simple = {
            "python -c pass": [py, "-c", "pass"],
            'python -c "import asyncio"': [py, "-c", "import asyncio"],
            "synack --help": [py, "-m", "synack", "--help"],
        }
        times: dict[str, list[float]] = {name: [] for name in simple}
        times["synack files get, to first byte"] = []
        times["synack files get, whole command (1 KiB)"] = []
        try:
            for argv in simple.values():  # warm-up: bytecode into the cache
                timed(argv, env, str(work))
            files_get()
            kinds = [*simple, "files get"]
            for r in range(args.rounds):
                for i in range(len(kinds)):
                    kind = kinds[(r + i) % len(kinds)]
                    if kind == "files get":
                        first, whole = files_get()
                        times["synack files get, to first byte"].append(first)
                        times["synack files get, whole command (1 KiB)"].append(whole)
                    else:
                        times[kind].append(timed(simple[kind], env, str(work)))
        finally:
            server.terminate()
            server.wait(TIMEOUT)
            relay.listener.close()

    print(f"start-up, {args.rounds} rounds, {sys.executable} (Python {sys.version.split()[0]})")
    print()
    print("| command | best ms | median ms |")
    print("|---|---:|---:|")
    best = {k: min(v) for k, v in times.items()}
    median = {k: statistics.median(v) for k, v in times.items()}
    for name in times:
        print(f"| {name} | {best[name] * 1e3:.1f} | {median[name] * 1e3:.1f} |")
    print()
    checks = [
        ("synack --help", "python -c pass", 2.0),
        ("synack files get, to first byte", 'python -c "import asyncio"', 1.5),
        ("synack files get, whole command (1 KiB)", 'python -c "import asyncio"', None),
    ]
    for what, base, target in checks:
        ratio_best = best[what] / best[base]
        ratio_median = median[what] / median[base]
        verdict = ""
        if target is not None:
            verdict = f" (target <= {target:g}x: {'met' if ratio_best <= target else 'MISSED'})"
        print(f"ratio {what} / {base}: best {ratio_best:.2f}x, median {ratio_median:.2f}x{verdict}")


if __name__ == "__main__":
    main()
