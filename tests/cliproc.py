"""A `synack ... serve` command in a subprocess, read line by line with a bound on every wait,
and `synack` client commands run to completion (shared by the TLS and Unix-socket tests)."""

from __future__ import annotations

import os
import re
import selectors
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

T = 15.0  # the bound on every wait for a line or an exit


def synack(
    *args: str, env: dict[str, str] | None = None, **kw: Any
) -> subprocess.CompletedProcess[str]:
    """Run ``synack ARGS`` to completion (stdin empty), bounded."""
    return subprocess.run(
        [sys.executable, "-m", "synack", *args],
        capture_output=True,
        text=True,
        timeout=T,
        stdin=kw.pop("stdin", subprocess.DEVNULL),
        env=None if env is None else {**os.environ, **env},
        **kw,
    )


class Served:
    """``synack ARGS`` (a server) in a subprocess: its first line is the banner with the
    address it listens on; stderr goes to `log`."""

    def __init__(self, *args: str, log: Path) -> None:
        self.log = log
        with open(log, "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "synack", *args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
            )
        self._pending = b""
        self.banner = self.line()
        match = re.search(r" on (\S+) \(", self.banner)
        if match is None:
            self.kill()
            raise AssertionError(f"no banner: {self.banner!r}; log: {log.read_text()!r}")
        self.address = match.group(1)

    def line(self) -> str:
        """The next line of stdout ("" at its end), waiting at most T in all.

        Read straight from the pipe: a buffered reader could hold a second line
        where the selector no longer sees it."""
        stdout = self.proc.stdout
        assert stdout is not None
        deadline = time.monotonic() + T
        with selectors.DefaultSelector() as sel:
            sel.register(stdout, selectors.EVENT_READ)
            while b"\n" not in self._pending:
                if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                    raise AssertionError(f"no line within {T} s; log: {self.log.read_text()!r}")
                chunk = os.read(stdout.fileno(), 65536)
                if not chunk:
                    break
                self._pending += chunk
        line, sep, self._pending = self._pending.partition(b"\n")
        return (line + sep).decode()

    def stop(self) -> int:
        """SIGTERM, then the exit status."""
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(timeout=T)

    def kill(self) -> None:
        """SIGKILL: no chance to clean up."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=T)

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
