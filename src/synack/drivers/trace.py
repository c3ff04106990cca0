"""Seeing synack's TCP at work: tcpdump-style lines, JSON lines and pcap files.

An `Engine` sees every segment its host sends (in ``transmit``) and receives
(after the carriage's CRC check, after the host handled it), and a driver passes
on each `StateChanged` it drains (`Engine.state_changed`). When tracing is on, the
engine hands these to the process's `Tracer`, which writes any of:

* **text**: one tcpdump-style line per segment and one per state change, to
  stderr (`synack.wire.tcpdump` formats them);
* **JSON lines**: the same as fields, plus our side's cwnd, ssthresh, SRTT, RTO
  and bytes in flight at each segment, for plots and live views;
* **pcap**: every segment as an ordinary TCP/IPv4 packet (`synack.wire.pcap`), for
  Wireshark and tshark.

Tracing is off unless asked for, and then the engines never call here: an engine
checks its ``observer`` once per batch of datagrams, not per segment.

**Asking for it.** From the environment, read when the process makes its first
engine: ``SYNACK_TRACE=1`` (text on stderr; ``SYNACK_TRACE=json`` for JSON lines
on stderr), ``SYNACK_TRACE_JSON=FILE`` and ``SYNACK_PCAP=FILE``. ``{pid}`` in a
file name becomes the process ID, so the two ends of a test that inherit one
variable write a file each (``SYNACK_PCAP=/tmp/cap-{pid}.pcap``). A file is locked
while written; a second process given the same name is refused with a message
saying so, rather than writing into the middle of the first one's file. The
command line (``--trace``, ``--trace-json FILE``, ``--pcap FILE``) calls
`configure`, which the environment fills in where a flag is not given.

**What a capture holds.** Times are wall-clock (the engines' monotonic ``now``
plus an offset taken once). A segment between two engines of the same process
is written once, when sent, as a capture on the loopback interface shows it;
every other segment when sent or received. The files are flushed at most a
second after each write and when the process exits; a process killed by a
signal it does not handle loses its last second.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import io
import json
import os
import sys
import threading
import time
import weakref
from typing import Any, BinaryIO, Protocol, TextIO

from synack.tcp import Connection, State
from synack.wire.pcap import file_header, record, tcp_packet
from synack.wire.tcpdump import Relative, ip_text, segment_fields, segment_line, state_line

TRACE_ENV = "SYNACK_TRACE"
TRACE_JSON_ENV = "SYNACK_TRACE_JSON"
PCAP_ENV = "SYNACK_PCAP"
FLUSH_EVERY = 1.0  # seconds between flushes of a file being written

_OFF = ("", "0", "off", "no", "false")


class Observer(Protocol):
    """What an `Engine` tells when tracing is on."""

    def attach(self, ip: bytes, port: int) -> None: ...

    def detach(self, ip: bytes, port: int) -> None: ...

    def segment(
        self,
        outgoing: bool,
        segment: bytes | bytearray | memoryview,
        local: bytes,
        remote: bytes,
        now: float,
        conn: Connection | None,
    ) -> None: ...

    def state(self, conn: Connection, old: State, new: State, now: float) -> None: ...


class FileInUse(OSError):
    """Another process is writing the file: its name needs ``{pid}``."""


def expand(path: str) -> str:
    """`path` with ``{pid}`` replaced by this process's ID."""
    return path.replace("{pid}", str(os.getpid()))


def open_exclusive(path: str, what: str) -> BinaryIO:
    """`path` truncated and locked for this process, or a one-line `OSError` why not."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise OSError(f"cannot write {what} {path}: {_reason(exc)}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise FileInUse(
            f"{what} {path} is being written by another process; put {{pid}} in the "
            "name to give each process its own file"
        ) from None
    os.ftruncate(fd, 0)
    return os.fdopen(fd, "wb", buffering=1 << 16)


def _reason(exc: OSError) -> str:
    text = exc.strerror or str(exc)
    return text[:1].lower() + text[1:]


class PcapFile:
    """A pcap file being written: RAW IPv4 packets, identification counted per sender."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._file = open_exclusive(path, "the pcap file")
        self._file.write(file_header())
        self._ident: dict[bytes, int] = {}
        self._last = 0.0  # records go in time order, as readers expect
        self.count = 0

    def write(
        self, t: float, segment: bytes | bytearray | memoryview, src: bytes, dst: bytes
    ) -> None:
        if len(src) != 4:
            return  # only IPv4 is carried (docs/PROTOCOL.md §5.6)
        ident = self._ident.get(src, 0) + 1
        self._ident[src] = ident
        if t < self._last:
            t = self._last
        self._last = t
        self._file.write(record(t, tcp_packet(segment, src, dst, ident)))
        self.count += 1

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._file.close()


class Tracer:
    """Text lines, JSON lines and a pcap file, for all the engines of a process."""

    def __init__(
        self,
        *,
        text: TextIO | None = None,
        json_out: TextIO | None = None,
        pcap: PcapFile | None = None,
    ) -> None:
        self.text = text
        self.json_out = json_out
        self.pcap = pcap
        self.offset = time.time() - time.monotonic()  # engines' `now` to wall-clock time
        self.disabled = False  # set in a forked child: the files are the parent's
        self._relative = Relative()
        self._local: set[tuple[bytes, int]] = set()
        self._lock = threading.Lock()  # the blocking driver's threads share one tracer
        self._flushed = 0.0
        self._second = -1
        self._hms = ""
        self._owned: list[Any] = []  # files this tracer opened and so closes

    # -- engines --------------------------------------------------------------------------

    def attach(self, ip: bytes, port: int) -> None:
        """An engine of this process is on (ip, port): its segments are seen when sent."""
        with self._lock:
            self._local.add((ip, port))

    def detach(self, ip: bytes, port: int) -> None:
        with self._lock:
            self._local.discard((ip, port))

    # -- what engines report ------------------------------------------------------------------

    def segment(
        self,
        outgoing: bool,
        segment: bytes | bytearray | memoryview,
        local: bytes,
        remote: bytes,
        now: float,
        conn: Connection | None,
    ) -> None:
        if self.disabled or len(segment) < 20:
            return
        if outgoing:
            src, dst = local, remote
        else:
            src, dst = remote, local
            if (remote, segment[0] << 8 | segment[1]) in self._local:
                return  # written when that engine of ours sent it
        t = now + self.offset
        with self._lock:
            if self.text is not None:
                self._line(
                    segment_line(self._stamp(t), outgoing, segment, src, dst, self._relative)
                )
            if self.json_out is not None:
                fields = segment_fields(segment)
                rec: dict[str, Any] = {
                    "t": round(t, 6),
                    "event": "segment",
                    "dir": "out" if outgoing else "in",
                    "src": ip_text(src),
                    "dst": ip_text(dst),
                    **fields,
                }
                if conn is not None:
                    rec.update(_connection_fields(conn))
                self._json(rec)
            if self.pcap is not None:
                try:
                    self.pcap.write(t, segment, src, dst)
                except (OSError, ValueError) as exc:
                    self._stop_pcap(exc)
            if t - self._flushed >= FLUSH_EVERY:
                self._flush(t)

    def state(self, conn: Connection, old: State, new: State, now: float) -> None:
        if self.disabled:
            return
        t = now + self.offset
        local, lport, remote, rport = (
            conn.local_ip,
            conn.local_port,
            conn.remote_ip,
            conn.remote_port,
        )
        with self._lock:
            if self.text is not None:
                self._line(
                    state_line(self._stamp(t), local, lport, remote, rport, old.value, new.value)
                )
            if self.json_out is not None:
                self._json(
                    {
                        "t": round(t, 6),
                        "event": "state",
                        "src": ip_text(local),
                        "sport": lport,
                        "dst": ip_text(remote),
                        "dport": rport,
                        "old": old.value,
                        "new": new.value,
                    }
                )
            if new is State.CLOSED:
                self._relative.forget(local, lport, remote, rport)

    # -- output ---------------------------------------------------------------------------

    def _stamp(self, t: float) -> str:
        """tcpdump's time of day, local time, to the microsecond."""
        second = int(t)
        if second != self._second:
            self._second = second
            self._hms = time.strftime("%H:%M:%S", time.localtime(second))
        return f"{self._hms}.{int((t - second) * 1_000_000):06d}"

    def _line(self, line: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            assert self.text is not None
            self.text.write(line + "\n")

    def _json(self, rec: dict[str, Any]) -> None:
        with contextlib.suppress(OSError, ValueError):
            assert self.json_out is not None
            self.json_out.write(json.dumps(rec, separators=(",", ":")) + "\n")

    def _stop_pcap(self, exc: BaseException) -> None:
        """A capture that cannot be written (a full disk) ends, said once on stderr; the
        connections carry on: tracing never takes the network down with it."""
        pcap, self.pcap = self.pcap, None
        if pcap is not None:
            reason = _reason(exc) if isinstance(exc, OSError) else str(exc)
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.write(
                    f"synack: the pcap file {pcap.path}: {reason}; "
                    f"{pcap.count} packets written, no more\n"
                )

    def _flush(self, t: float) -> None:
        self._flushed = t
        if self.json_out is not None and self.json_out is not sys.stderr:
            with contextlib.suppress(OSError, ValueError):
                self.json_out.flush()
        if self.pcap is not None:
            try:
                self.pcap.flush()
            except (OSError, ValueError) as exc:
                self._stop_pcap(exc)

    def flush(self) -> None:
        with self._lock:
            self._flush(time.monotonic() + self.offset)
            if self.text is not None:
                with contextlib.suppress(OSError, ValueError):
                    self.text.flush()

    def close(self) -> None:
        """Flush everything and close the files this tracer opened; then it writes no more
        (engines made before may still hold it)."""
        self.flush()
        with self._lock:
            self.disabled = True
            for f in self._owned:
                f.close()
            self._owned.clear()


def _connection_fields(conn: Connection) -> dict[str, Any]:
    """Our side's congestion state: what a time-sequence or cwnd plot needs."""
    srtt = conn.srtt
    return {
        "state": conn.state.value,
        "cwnd": conn.cwnd,
        "ssthresh": conn.ssthresh,
        "srtt": None if srtt is None else round(srtt, 6),
        "rto": round(conn.rto, 6),
        "inflight": conn.unacked,
    }


# -- the process's tracer -------------------------------------------------------------------

_current: Tracer | None = None
_loaded = False
_setup_lock = threading.Lock()
_all: weakref.WeakSet[Tracer] = weakref.WeakSet()


def current() -> Tracer | None:
    """The tracer new engines use (None: tracing is off); the environment is read once."""
    if not _loaded:
        with _setup_lock:
            if not _loaded:
                _install(_build(os.environ, None, None, None))
    return _current


def use(tracer: Tracer | None) -> Tracer | None:
    """Trace the engines made from now on with `tracer` (None: no tracing), whatever the
    environment says; returns the tracer used before. For tests and programs that
    embed synack and want the lines or records somewhere of their own."""
    with _setup_lock:
        old = _current
        _install(tracer)
    return old


def configure(
    *,
    text: bool | None = None,
    json_path: str | None = None,
    pcap: str | None = None,
    environ: dict[str, str] | None = None,
) -> Tracer | None:
    """Trace the engines this process makes from now on; what is not given comes from
    the environment (``SYNACK_TRACE``, ``SYNACK_TRACE_JSON``, ``SYNACK_PCAP``).

    `json_path` ``"-"`` is stderr. Raises a one-line `OSError` when a file cannot be
    written (`FileInUse` when another process is writing it). Returns the tracer.
    """
    env = os.environ if environ is None else environ
    with _setup_lock:
        tracer = _build(env, text, json_path, pcap)
        old = _current
        _install(tracer)
    if old is not None:
        old.close()
    return tracer


def _build(env: Any, text: bool | None, json_path: str | None, pcap: str | None) -> Tracer | None:
    mode = str(env.get(TRACE_ENV, "")).strip().lower()
    if text is None:
        text = mode not in _OFF and mode != "json"
    if json_path is None:
        json_path = env.get(TRACE_JSON_ENV) or ("-" if mode == "json" else None)
    if pcap is None:
        pcap = env.get(PCAP_ENV) or None
    if not text and not json_path and not pcap:
        return None
    owned: list[Any] = []
    try:
        json_out: Any = None
        if json_path == "-":
            json_out = sys.stderr
        elif json_path:
            json_out = io.TextIOWrapper(
                open_exclusive(expand(json_path), "the JSON trace"), encoding="utf-8"
            )
            owned.append(json_out)
        pcap_file = PcapFile(expand(pcap)) if pcap else None
        if pcap_file is not None:
            owned.append(pcap_file)
    except BaseException:
        for f in owned:
            f.close()
        raise
    tracer = Tracer(text=sys.stderr if text else None, json_out=json_out, pcap=pcap_file)
    tracer._owned = owned
    return tracer


def _install(tracer: Tracer | None) -> None:
    global _current, _loaded
    _current = tracer
    _loaded = True
    if tracer is not None:
        _all.add(tracer)


def _close_all() -> None:
    for tracer in list(_all):
        tracer.close()


def _before_fork() -> None:
    for tracer in list(_all):
        tracer.flush()  # so the child inherits no buffered bytes to write a second time


def _after_fork_in_child() -> None:
    """The child leaves its parent's files alone and reads the environment afresh
    (with its own ``{pid}``) when it makes an engine."""
    global _current, _loaded, _setup_lock
    for tracer in list(_all):
        tracer.disabled = True
        tracer._owned.clear()
    _all.clear()
    _current = None
    _loaded = False
    _setup_lock = threading.Lock()


# Registered before the engines' own exit handler (engine.py imports this module first),
# so it runs after it: the FINs of the exit linger are in the files.
atexit.register(_close_all)
os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
