"""Following a JSON-lines trace that another process is writing.

This is how a live connection reaches the view: the process that carries it writes
its trace (``--trace-json FILE`` or ``SYNACK_TRACE_JSON=FILE``), and the view reads
the file as it grows (`TraceFile`), turning each line into the same record shape
the lessons produce (`TraceRecords`) so the page has one way of drawing. A file is
the channel because every synack process can already write one, with no server
for the traced process to find and nothing to slow it down if no view is watching.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

MASK = 0xFFFFFFFF
# The course notes' (and netstat's) state names, as the lessons write them.
_NOTES_NAMES = {"SYN_RECEIVED": "SYN_RCVD"}


def state_name(value: str) -> str:
    """A trace's RFC state name (SYN-RECEIVED) as the lessons write it (SYN_RCVD)."""
    name = value.replace("-", "_")
    return _NOTES_NAMES.get(name, name)


class TraceFile:
    """The complete lines added to a file since the last read.

    The file may not exist yet (the view starts first), may hold a half-written last
    line (kept for the next read), and may start afresh when the traced process is run
    again (the tracer truncates it): then reading starts again from the top."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._pos = 0
        self._inode: int | None = None
        self._partial = b""

    def read(self) -> list[dict[str, Any]]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return []
        if st.st_ino != self._inode or st.st_size < self._pos:
            self._inode, self._pos, self._partial = st.st_ino, 0, b""
        if st.st_size == self._pos:
            return []
        with open(self.path, "rb") as f:
            f.seek(self._pos)
            data = f.read()
        self._pos += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        out: list[dict[str, Any]] = []
        for line in lines:
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # not ours (a stray line): skipped, the rest still shown
            if isinstance(rec, dict):
                out.append(rec)
        return out


@dataclass(slots=True)
class _Conn:
    tag: str
    client: str  # "ip:port"
    server: str
    isn: dict[str, int] = field(default_factory=dict)  # endpoint -> its first sequence number


class TraceRecords:
    """Trace lines (addresses, absolute numbers, wall-clock times) as lesson records.

    Each connection's two endpoints are drawn on the two lines of the ladder: the one
    that sent the SYN is the client. Sequence numbers become relative to each side's
    first one, as Wireshark shows them, and times relative to the first line."""

    def __init__(self) -> None:
        self._conns: dict[frozenset[str], _Conn] = {}
        self._t0: float | None = None
        self.ends: list[dict[str, str]] = [
            {"id": "client", "role": "client", "address": ""},
            {"id": "server", "role": "server", "address": ""},
        ]

    def convert(self, lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for rec in lines:
            event = rec.get("event")
            if event == "segment":
                out.extend(self._segment(rec))
            elif event == "state":
                out.extend(self._state(rec))
        return out

    def _t(self, rec: dict[str, Any]) -> float:
        t = float(rec.get("t", 0.0))
        if self._t0 is None:
            self._t0 = t
        return round(t - self._t0, 6)

    def _conn(self, a: str, b: str, client: str) -> _Conn:
        key = frozenset((a, b))
        conn = self._conns.get(key)
        if conn is None:
            server = b if client == a else a
            conn = _Conn(f"#{len(self._conns) + 1}", client, server)
            self._conns[key] = conn
            if not self.ends[0]["address"]:
                self.ends[0]["address"], self.ends[1]["address"] = client, server
        return conn

    def _segment(self, rec: dict[str, Any]) -> list[dict[str, Any]]:
        src = f"{rec['src']}:{rec['sport']}"
        dst = f"{rec['dst']}:{rec['dport']}"
        flags = str(rec.get("flags", ""))
        conn = self._conn(src, dst, dst if flags == "S." else src)
        seq = int(rec.get("seq", 0))
        isn = conn.isn.setdefault(src, seq)
        ack = rec.get("ack")
        peer_isn = conn.isn.get(dst)
        if ack is not None and peer_isn is not None:
            ack = (int(ack) - peer_isn) & MASK
        t = self._t(rec)
        ends = ("client", "server") if src == conn.client else ("server", "client")
        # The numbers are of the tracing process's own side of the connection.
        local = ends[0] if rec.get("dir") == "out" else ends[1]
        base = {
            "kind": "segment",
            "t": t,
            "src": ends[0],
            "dst": ends[1],
            "flags": flags,
            "seq": (seq - isn) & MASK,
            "ack": ack,
            "length": int(rec.get("len", 0)),
            "window": int(rec.get("win", 0)),
            "tag": conn.tag,
            "retransmission": False,
            "background": False,
            "reason": "",
            "cwnd": rec.get("cwnd"),
            "srtt": rec.get("srtt"),
            "inflight": rec.get("inflight"),
            "metrics_end": local,
        }
        # A trace line is one segment seen once: it is drawn as sent and arrived.
        return [{**base, "event": "sent"}, {**base, "event": "delivered"}]

    def _state(self, rec: dict[str, Any]) -> list[dict[str, Any]]:
        local = f"{rec['src']}:{rec['sport']}"
        remote = f"{rec['dst']}:{rec['dport']}"
        new = str(rec.get("new", ""))
        if not rec.get("dport"):
            return []  # a listener's own state: no peer yet, nothing to draw between
        conn = self._conn(local, remote, remote if new == "SYN-RECEIVED" else local)
        return [
            {
                "kind": "state",
                "t": self._t(rec),
                "end": "client" if local == conn.client else "server",
                "state": state_name(new),
                "tag": conn.tag,
            }
        ]
