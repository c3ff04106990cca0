"""`synack demo` runs the whole tour on loopback and exits 0 by itself."""

from __future__ import annotations

import subprocess
import sys
import time


def test_demo_runs_to_completion_and_explains_itself() -> None:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "synack", "demo"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    out = result.stdout
    # The chat act: two clients talk, a private message, the room listing, a clean quit.
    assert '"op": "msg", "room": "lobby", "from": "alice", "text": "hi bob!"' in out
    assert '"op": "private", "from": "bob"' in out
    assert '"nicks": ["alice", "bob"]' in out
    assert "empty message not sent" in out
    # The files act: the download verified end to end.
    assert "verified" in out and "MISMATCH" not in out
    # The TCP act: the handshake, the four-way close and TIME-WAIT, segment by segment.
    assert "[S] seq 0" in out and "[S.] seq 0 ack 1" in out
    assert "[F.]" in out
    assert "client: TIME-WAIT" in out and "client: CLOSED" in out
    # It ends by pointing to the lessons.
    assert "synack lesson" in out.strip().splitlines()[-1]
    assert elapsed < 30, f"the demo took {elapsed:.1f} s"
