"""bench/files_tls.py still runs, at a tiny size, and prints its whole table (the TLS figures
in docs/benchmarks.md and the README come from it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"


def test_files_tls(tmp_path: Path) -> None:
    args = ["--size", "2M", "--rounds", "1", "--dir", str(tmp_path)]
    done = subprocess.run(
        [sys.executable, str(BENCH / "files_tls.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for label in (
        "download, plain",
        "download, TLS",
        "upload, plain",
        "upload, TLS",
        "ratio TLS/plain, download: best",
        "ratio TLS/plain, upload: best",
        "cipher TLS_",
    ):
        assert label in done.stdout, done.stdout
    assert list(tmp_path.iterdir()) == [], "the bench left files behind"
