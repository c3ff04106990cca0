"""A real redis-server (Debian's package) on 127.0.0.1 and a free port, for the cluster
tests: no persistence, its files in a temporary directory, stopped after; `stop` and
`start` again keep the port, for outages."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

T = 10.0  # the bound on starting or stopping it


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """``redis-server`` in a subprocess; `url` is where the chat servers find it."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server")
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            self.binary,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.workdir),
            "--logfile", str(self.workdir / "redis.log"),
        ]  # fmt: skip
        self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + T
        while not self.answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = (self.workdir / "redis.log").read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"redis-server did not start on {self.port}: {log}")
            time.sleep(0.01)  # a bounded poll on the condition itself

    def answers(self) -> bool:
        """True once it replies PONG to a PING."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=T)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=T)
        self.proc = None
