"""The loop-free half of a driver: one UDP socket, the `Host` on its port, and
what happens to the connections when the process exits.

An `Engine` moves datagrams between its `UdpCarrier` and its `Host` and sends
what the host returns; it owns no thread, loop or clock (callers pass ``now``).
The asyncio driver (`synack.drivers.aio`) runs it on the event loop's thread;
a blocking driver runs it from whichever thread is waiting.

**At exit.** A user-space TCP lives in its process: when the process ends, so do
its connections, and no kernel is left to finish their closing handshakes. So a
process that exits normally closes every connection still open as ``close()``
would (FIN after the queued data; RST where received data was never read), then
runs its engines for at most `exit_linger` seconds (``SYNACK_EXIT_LINGER``, 2 s by
default) so the FINs are sent, retransmitted and acknowledged, and resets what is
still open after that. TIME-WAIT cannot outlive the process: a connection that
reached it is simply gone, which is safe here because its UDP port is released
with it. A process killed by a signal it does not handle closes nothing; its
peers find out by their retransmission timeout or keepalive.
"""

from __future__ import annotations

import atexit
import errno
import os
import select
import socket
import struct
import time
import weakref
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from synack.drivers import trace
from synack.drivers.udp import CRC_TRAILER, Address, CarrierConfig, CarrierError, UdpCarrier
from synack.tcp import (
    Config,
    Connection,
    ConnectionRefused,
    ConnectionReset,
    ConnectionTimedOut,
    Host,
    State,
    StateChanged,
    TCPError,
)
from synack.wire.tcp import joined

_HEADER_MIN = 20
# A CRC-32 trailer, and a TCP header's two ports: one C call each in the receive loop
# (against slicing and int.from_bytes, and four indexings: 0.97 against 1.16 µs per
# datagram for the whole check, measured with timeit).
_TRAILER = struct.Struct("!I")
_PORTS = struct.Struct("!HH")
# Segments from this size on are sent with their CRC-32 trailer as a second buffer,
# and the core gives their header and payload apart (Config.gather_from) to be sent
# as two more, so that no byte of the payload is copied on its way to the socket.
GATHER_FROM = 8192

# Connections in these states have nothing left to say to their peer.
_FINISHED = (State.CLOSED, State.TIME_WAIT)


def port_closed_at_peer(error: CarrierError) -> bool:
    """Whether an error is the peer's own ICMP port-unreachable for a segment of ours:
    what `Host.port_unreachable` judges. A router's or a firewall's error on the way
    (another offender) is not the peer's word, and one that quotes nothing names no
    connection (hosts that quote only RFC 792's 8 bytes of UDP header)."""
    return (
        error.errno == errno.ECONNREFUSED
        and bool(error.quoted)
        and (error.offender == error.dest[0])
    )


class Engine:
    """One UDP socket (one local TCP port) and the connections it carries."""

    def __init__(self, carrier: UdpCarrier, host: Host) -> None:
        try:
            # Tracing (synack.drivers.trace): None unless asked for, and then looked at
            # once per batch of datagrams, so the loops below cost the same when it is off.
            self.observer: trace.Observer | None = trace.current()
        except OSError:
            carrier.close()  # a trace file that cannot be written: say so, leak nothing
            raise
        self.carrier = carrier
        self.host = host
        self.port: int = carrier.sockname[1]
        self.garbage = 0  # datagrams that were not TCP segments for this port
        self.corrupt = 0  # datagrams whose CRC-32 trailer did not match: altered on the way
        self.translated = 0  # segments whose ports a NAT or relay had rewritten (§5.1)
        # docs/PROTOCOL.md §5.3: a CRC-32 trailer after each segment (zlib's, 0.3 ns a
        # byte) instead of the TCP checksum (Python's big-integer sum, about 2 ns a byte).
        self.crc = carrier.config.integrity == "crc32"
        self.closed = False
        # Set by a driver that holds bytes above the core (an asyncio transport's write
        # buffer): called at exit, and again on each turn of the linger, to hand them
        # on and close its connections. Without it, connections are closed directly.
        self.exit_hook: Callable[[], None] | None = None
        self._backlog: deque[tuple[list[Any], Address]] = deque()
        self._ips: dict[str, bytes] = {}
        self._addrs: dict[tuple[bytes, int], Address] = {}  # (ip, port) -> sendto's address
        if self.observer is not None:
            self.observer.attach(host.address, self.port)
        _live.add(self)
        # An engine let go without close() (its event loop ended while a connection sat
        # in TIME-WAIT, which only this socket answers for: a user who closed every
        # stream left nothing open) closes its socket, as the kernel's TCP would leave
        # the user nothing to close, instead of the socket's "unclosed" ResourceWarning.
        self._finalizer = weakref.finalize(self, carrier.close)
        self._finalizer.atexit = False  # at exit, close_all lingers, then closes

    def receive(self, now: float) -> list[CarrierError]:
        """Feed every datagram waiting on the socket to the host; return ICMP errors.

        A datagram too short to hold a TCP header is counted and dropped, and so is
        one whose CRC-32 trailer does not match its segment (docs/PROTOCOL.md §5.3).
        The UDP ports are authoritative (§5.1): where a NAT or relay on the way
        rewrote them, the TCP header's ports are made to match before the host sees it.
        Consecutive segments from one address go to the host in one call
        (`Host.handle_segments`: a GRO read is one peer's burst).
        """
        host = self.host
        port = self.port
        ips = self._ips
        trailer = CRC_TRAILER if self.crc else 0
        crc32 = zlib.crc32
        unpack_trailer = _TRAILER.unpack_from
        unpack_ports = _PORTS.unpack_from
        least = _HEADER_MIN + trailer
        garbage = corrupt = 0
        traced = self.observer is not None
        run: list[memoryview] = []
        run_ip = ""
        for read, size, (ip, sport) in self.carrier.recv_reads(until_short=True):
            ports = (sport, port)
            if ip != run_ip and not traced:
                if run:
                    host.handle_segments(run, ips[run_ip], now)
                run = []
                run_ip = ip
                if ip not in ips:
                    self._ip_bytes(ip)
            total = len(read)
            start = 0
            while True:  # each datagram of the read (GRO: `size` bytes each, the last maybe less)
                end = start + size if start + size < total else total
                n = end - start
                if n < least:
                    garbage += 1
                elif trailer:
                    n -= trailer
                    segment = read[start : start + n]
                    if crc32(segment) != unpack_trailer(read, start + n)[0]:
                        corrupt += 1
                    else:
                        if unpack_ports(read, start) != ports:
                            translate_ports(segment, sport, port, fix_checksum=False)
                            self.translated += 1
                        run.append(segment)
                else:
                    segment = read[start:end]
                    if unpack_ports(read, start) != ports:
                        translate_ports(segment, sport, port, fix_checksum=True)
                        self.translated += 1
                    run.append(segment)
                start = end
                if start >= total:
                    break
            if traced:
                rip = self._ip_bytes(ip)
                for segment in run:
                    self._handle_traced(segment, rip, now)
                run = []
        if run:
            host.handle_segments(run, ips[run_ip], now)
        if garbage:
            self.garbage += garbage
        if corrupt:
            self.corrupt += corrupt
        return self.carrier.errors()

    def _ip_bytes(self, ip: str) -> bytes:
        rip = self._ips.get(ip)
        if rip is None:
            rip = self._ips[ip] = socket.inet_aton(ip)
        return rip

    def transmit(self, now: float) -> bool:
        """Send everything the host has due; False if some waits for the socket to drain."""
        # (Any: each segment is `bytes` or `Gathered`, told apart by its class in the
        # loop, which is cheaper per segment than isinstance.)
        out: list[Any] = self.host.segments_to_send_gathered(now)
        if out:
            if self.observer is not None:
                self._trace_sent(out, now)
            run: list[Any] = []
            dip = b""
            dport = -1
            crc = self.crc
            crc32 = zlib.crc32
            item: Any
            for segment, _src, dst in out:
                if segment.__class__ is tuple:  # Gathered: header, view of the payload
                    header, payload = segment
                    port = header[2] << 8 | header[3]
                    if crc:
                        trailer = crc32(payload, crc32(header)).to_bytes(CRC_TRAILER, "big")
                        item = (header, payload, trailer)
                    else:
                        item = segment
                else:
                    port = segment[2] << 8 | segment[3]
                    if crc:
                        trailer = crc32(segment).to_bytes(CRC_TRAILER, "big")
                        # A large segment and its trailer go as two buffers of one
                        # datagram (sent gathered): joining them would copy the segment
                        # once more, 35 against 68 µs per 64 KiB datagram sent and
                        # received, measured. A small one is joined: the copy costs less
                        # than a second iovec.
                        if len(segment) < GATHER_FROM:
                            item = segment + trailer
                        else:
                            item = (segment, trailer)
                    else:
                        item = segment
                if port != dport or dst != dip:
                    if run:
                        self._send(run, (dip, dport))
                    run = []
                    dip = dst
                    dport = port
                run.append(item)
            if run:
                self._send(run, (dip, dport))
        return not self._backlog

    # -- tracing (only when an observer is set) ----------------------------------------

    def _handle_traced(self, segment: Any, rip: bytes, now: float) -> None:
        """`Host.handle_segment`, then tell the observer (our side's state after it)."""
        host = self.host
        host.handle_segment(segment, rip, now)
        assert self.observer is not None
        conn = host.connections.get((self.port, rip, segment[0] << 8 | segment[1]))
        self.observer.segment(False, segment, host.address, rip, now, conn)

    def _trace_sent(self, out: list[Any], now: float) -> None:
        observer = self.observer
        assert observer is not None
        connections = self.host.connections
        for gathered, src, dst in out:
            segment = joined(gathered) if gathered.__class__ is tuple else gathered
            key = (segment[0] << 8 | segment[1], dst, segment[2] << 8 | segment[3])
            observer.segment(True, segment, src, dst, now, connections.get(key))

    def state_changed(self, conn: Connection, event: StateChanged, now: float) -> None:
        """A driver passes on each `StateChanged` it drains from a connection's events."""
        if self.observer is not None:
            self.observer.state(conn, event.old, event.new, now)

    # -- sending -------------------------------------------------------------------------

    def _send(self, segments: list[Any], dest: tuple[bytes, int]) -> None:
        """Send a run to one peer (one call where GSO allows); keep what the socket refused."""
        addr = self._addrs.get(dest)
        if addr is None:
            if len(self._addrs) > 4096:
                self._addrs.clear()  # a server that has seen many peers: start afresh
            addr = self._addrs[dest] = (socket.inet_ntoa(dest[0]), dest[1])
        if self._backlog:
            self._backlog.append((segments, addr))
            return
        sent = self.carrier.send_batch(segments, addr)
        if sent < len(segments):
            self._backlog.append((segments[sent:], addr))

    def flush_backlog(self) -> bool:
        """Send what waited for the socket, in order; True once nothing is left."""
        backlog = self._backlog
        while backlog:
            segments, addr = backlog[0]
            sent = self.carrier.send_batch(segments, addr)
            if sent < len(segments):
                backlog[0] = (segments[sent:], addr)
                return False
            backlog.popleft()
        return True

    def fileno(self) -> int:
        return self.carrier.fileno()

    @property
    def idle(self) -> bool:
        """No listener and no connection left: the socket can go."""
        return not self.host.connections and not self.host.listeners

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.observer is not None:
                self.observer.detach(self.host.address, self.port)
            self._backlog.clear()
            # Not by calling the finalizer: at exit weakref's own atexit hook has run
            # first (it was registered after close_all) and made every finalizer a no-op.
            self._finalizer.detach()
            self.carrier.close()
            _live.discard(self)

    # -- exit ---------------------------------------------------------------------------

    def close_connections(self) -> None:
        """``close()`` every open connection and stop listening (the process is ending)."""
        host = self.host
        for port in list(host.listeners):
            host.unlisten(port)
        if self.exit_hook is not None:
            self.exit_hook()
            return
        for conn in list(host.connections.values()):
            if conn.state not in _FINISHED:
                conn.close()

    @property
    def lingering(self) -> bool:
        """Some connection is still closing (TIME-WAIT does not count: see the module doc)."""
        return any(c.state not in _FINISHED for c in self.host.connections.values())

    def abort_connections(self, now: float) -> None:
        """Reset whatever did not finish closing in time, and send the resets."""
        for conn in list(self.host.connections.values()):
            if conn.state not in _FINISHED:
                conn.abort()
        self.transmit(now)
        self.flush_backlog()


def os_error(error: TCPError) -> OSError:
    """The standard library's exception, with its errno, for an error of the core."""
    for cls, exc_type, code in _OS_ERRORS:
        if isinstance(error, cls):
            return exc_type(code, f"{_STRERROR[code]}")
    return OSError(errno.EIO, str(error))


_STRERROR = {
    errno.ECONNREFUSED: "Connection refused",
    errno.ECONNRESET: "Connection reset by peer",
    errno.ETIMEDOUT: "Connection timed out",
}
_OS_ERRORS: tuple[tuple[type[TCPError], type[OSError], int], ...] = (
    (ConnectionRefused, ConnectionRefusedError, errno.ECONNREFUSED),
    (ConnectionReset, ConnectionResetError, errno.ECONNRESET),
    (ConnectionTimedOut, TimeoutError, errno.ETIMEDOUT),
)


# Full segments the default buffers hold at least (see config_for).
WINDOW_SEGMENTS = 128
# Config.probe_timeout_min where the caller leaves it to the driver. Our ACKs leave from
# a process, which its application and the scheduler hold for milliseconds at a time:
# on loopback, where SRTT is about a millisecond, the kernel's 2 ms sent a spurious probe
# at the tail of about one clean 2 MB transfer in eight (tests/test_pcap.py's clean
# capture); with 10 ms, none in 16. A real tail loss waits those 8 ms longer.
PROBE_TIMEOUT_MIN = 0.010


def config_for(carrier: CarrierConfig, config: Config | None) -> Config:
    """The core's settings on this carrier: the MSS its MTU leaves, the TCP
    checksum only where the carriage's own check is not used (PROTOCOL.md §5.3),
    `PROBE_TIMEOUT_MIN` where the caller left Config.probe_timeout_min to the driver,
    and large segments gathered (`GATHER_FROM`: the engine sends with sendmsg).

    Without a `Config` of the caller's, the buffers hold at least `WINDOW_SEGMENTS`
    full segments: with 64 KiB datagrams the 2 MiB default is only 32 segments, and a
    transfer then waits a batch's crossing for every window (measured on loopback:
    about 350 MB/s with 2 MiB, 500 MB/s with 8 MiB; no change at MTU 1500).
    """
    mss = carrier.segment_mss
    checksum = carrier.integrity == "tcp"
    if config is None:
        base = Config()
        room = max(base.send_buffer, WINDOW_SEGMENTS * mss)
        return replace(
            base,
            mss=mss,
            checksum=checksum,
            send_buffer=room,
            receive_buffer=room,
            probe_timeout_min=PROBE_TIMEOUT_MIN,
            gather_from=GATHER_FROM,
        )
    pto_min = config.probe_timeout_min
    if pto_min is None:
        pto_min = PROBE_TIMEOUT_MIN
    wanted = (mss, checksum, pto_min, GATHER_FROM)
    if (config.mss, config.checksum, config.probe_timeout_min, config.gather_from) == wanted:
        return config
    return replace(
        config, mss=mss, checksum=checksum, probe_timeout_min=pto_min, gather_from=GATHER_FROM
    )


def translate_ports(segment: memoryview, sport: int, dport: int, *, fix_checksum: bool) -> None:
    """Write the datagram's UDP ports into its TCP header, in place.

    With the TCP checksum in use, it is updated incrementally for the changed words
    (RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m')), as a NAT updates it.
    """
    old_sport = segment[0] << 8 | segment[1]
    old_dport = segment[2] << 8 | segment[3]
    segment[0:4] = ((sport << 16) | dport).to_bytes(4, "big")
    if fix_checksum:
        total = (~(segment[16] << 8 | segment[17])) & 0xFFFF
        for old, new in ((old_sport, sport), (old_dport, dport)):
            total += ((~old) & 0xFFFF) + new
        while total >> 16:
            total = (total & 0xFFFF) + (total >> 16)
        segment[16:18] = ((~total) & 0xFFFF).to_bytes(2, "big")


_live: weakref.WeakSet[Engine] = weakref.WeakSet()

DEFAULT_EXIT_LINGER = 2.0


def exit_linger() -> float:
    """Seconds a normally exiting process gives its connections to close (``SYNACK_EXIT_LINGER``)."""
    text = os.environ.get("SYNACK_EXIT_LINGER")
    if text is None:
        return DEFAULT_EXIT_LINGER
    try:
        value = float(text)
    except ValueError:
        return DEFAULT_EXIT_LINGER
    return value if value >= 0 else DEFAULT_EXIT_LINGER


def close_all(linger: float | None = None) -> None:
    """Close every engine's connections, give them `linger` seconds, reset the rest.

    Runs at interpreter exit (``atexit``); callable earlier by a program that wants
    its connections closed before it goes on (tests do).
    """
    engines = [e for e in list(_live) if not e.closed]
    if not engines:
        return
    deadline = time.monotonic() + (exit_linger() if linger is None else linger)
    for engine in engines:
        engine.close_connections()
    while True:
        now = time.monotonic()
        busy = [e for e in engines if e.lingering]
        for engine in engines:
            engine.transmit(now)
            engine.flush_backlog()
        if not busy or now >= deadline:
            break
        wake = deadline
        for engine in busy:
            if engine.exit_hook is not None:
                engine.exit_hook()  # more of a write buffer may fit now
            t = engine.host.get_timer()
            if t is not None and t < wake:
                wake = t
        readable, _, _ = select.select(busy, [], [], max(0.0, wake - now))
        now = time.monotonic()
        for engine in readable:
            engine.receive(now)
        for engine in busy:
            if engine.exit_hook is not None:
                engine.exit_hook()  # more of a write buffer may fit now
            t = engine.host.get_timer()
            if t is not None and t <= now:
                engine.host.handle_timer(now)
            for endpoint in engine.host.ready():
                while (event := endpoint.next_event()) is not None:
                    # Nobody is left to tell, but a trace is.
                    if isinstance(event, StateChanged) and isinstance(endpoint, Connection):
                        engine.state_changed(endpoint, event, now)
    now = time.monotonic()
    for engine in engines:
        engine.abort_connections(now)
        engine.close()


atexit.register(close_all)
