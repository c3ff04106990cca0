"""The UDP relay of `synack netem`: any UDP protocol, impaired both ways.

Clients send to the listening address; each client's datagrams go on to the
target from a socket of its own (as a NAT maps each inside address to a port of
its own), so the target's answers can be told apart and several clients work at
once. A mapping that carries nothing for `idle_timeout` seconds is closed.

Datagrams from clients form the "up" direction, answers from the target the
"down" one; each has its `Lane` (the decisions) and its `Outbox` (the clock).

Python pays microseconds per system call, more than the kernel spends moving a
datagram, so the sockets are `synack.drivers.udp.UdpCarrier`s: with UDP GRO one
read may bring several datagrams a sender sent with GSO (they are cut apart and
each meets its own decisions, in order), and with UDP GSO a run of equal-size
copies due together for one destination leaves in one `sendmsg`. Where the kernel
lacks either, or `gso`/`gro` is False, each datagram takes a call of its own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections import deque
from collections.abc import Callable
from typing import Any

from synack.apps.common import listen_error
from synack.apps.netem.impair import MAX_IN_FLIGHT, Impairment, Lane, Trace
from synack.apps.netem.outbox import Outbox
from synack.apps.netem.summary import LaneReport, Summary
from synack.drivers.udp import LOOPBACK_MTU, CarrierConfig, CarrierStats, UdpCarrier
from synack.errors import UserError, describe_os_error

IPV4_UDP_OVERHEAD = 28  # IPv4 header (20) + UDP header (8): counted by the rate limit
IPV6_UDP_OVERHEAD = 48
MAX_CLIENTS = 1024
# SO_RCVBUF / SO_SNDBUF asked for on every relay socket (Linux caps it at
# net.core.rmem_max / wmem_max). With the default (208 KB, about 90 full datagrams)
# a sender's burst overflowed the listening socket before the relay could read it:
# drops no seed decides and the summary cannot count, in front of the bottleneck
# queue that is meant to be the only one.
SOCKET_BUFFER = 4 * 1024 * 1024
# Datagrams read per wake-up of a socket, at most (a GRO read may bring up to 64 more).
READ_BATCH = 256
# Datagrams a socket holds while the kernel has no room for them, at most; more are
# counted as errors.
BACKLOG_LIMIT = MAX_IN_FLIGHT


def format_address(addr: tuple[Any, ...]) -> str:
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def describe_trace(trace: Trace) -> str:
    """A datagram's fate in a few words: ``lost``, ``+30.0ms``, ``duplicated: +30.0ms +30.2ms``."""
    words = []
    for event, detail in trace:
        if event == "delay":
            words.append(f"+{detail}")
        elif detail:
            words.append(f"{event} {detail}")
        else:
            words.append(event)
    return " ".join(words)


class _Socket:
    """One relay socket: a `UdpCarrier` (GRO reads, GSO sends, ICMP errors) and the
    datagrams the kernel had no room for yet, sent in order once it has (as asyncio's
    datagram transports do), so a full socket buffer drops nothing no seed decided."""

    __slots__ = ("_loop", "backlog", "carrier", "closed")

    def __init__(self, loop: asyncio.AbstractEventLoop, carrier: UdpCarrier) -> None:
        self._loop = loop
        self.carrier = carrier
        self.backlog: deque[tuple[bytes, tuple[Any, ...]]] = deque()
        self.closed = False

    def send(self, datagrams: list[bytes], addr: tuple[Any, ...]) -> tuple[int, int]:
        """Send (or queue) datagrams to addr; returns how many were taken and their
        bytes. Only a socket closed, or a backlog at its bound, refuses any."""
        if self.closed:
            return 0, 0
        backlog = self.backlog
        if not backlog:
            sent = self.carrier.send_batch(datagrams, addr)
            if sent == len(datagrams):
                return sent, sum(map(len, datagrams))
            self._loop.add_writer(self.carrier.fileno(), self._writable)
            rest = datagrams[sent:]
        else:
            sent, rest = 0, datagrams
        room = max(0, BACKLOG_LIMIT - len(backlog))
        taken = rest[:room]
        backlog.extend((data, addr) for data in taken)
        return sent + len(taken), sum(map(len, datagrams[: sent + len(taken)]))

    def _writable(self) -> None:
        backlog = self.backlog
        while backlog:
            addr = backlog[0][1]
            run: list[bytes] = []
            while backlog and backlog[0][1] == addr:
                run.append(backlog.popleft()[0])
            sent = self.carrier.send_batch(run, addr)
            if sent < len(run):
                backlog.extendleft((data, addr) for data in reversed(run[sent:]))
                return
        self._loop.remove_writer(self.carrier.fileno())

    def close(self) -> int:
        """Close the socket; returns how many datagrams were still waiting to go."""
        if self.closed:
            return 0
        self.closed = True
        if self.backlog:
            self._loop.remove_writer(self.carrier.fileno())
        self._loop.remove_reader(self.carrier.fileno())
        self.carrier.close()
        left = len(self.backlog)
        self.backlog.clear()
        return left


class _Mapping:
    """One client's own socket towards the target."""

    __slots__ = ("client", "last_active", "sock")

    def __init__(self, client: tuple[Any, ...], sock: _Socket, now: float) -> None:
        self.client = client
        self.sock = sock
        self.last_active = now


class UdpRelay:
    """Relay datagrams between clients at `listen` and the `target`, impaired.

    `gso` and `gro` choose UDP GSO sends and GRO reads (several datagrams per system
    call): None uses them where the kernel offers them, False never; each datagram
    meets its decisions one by one either way.
    """

    def __init__(
        self,
        listen: tuple[str, int],
        target: tuple[str, int],
        up: Impairment,
        down: Impairment,
        *,
        seed: int,
        idle_timeout: float = 60.0,
        max_clients: int = MAX_CLIENTS,
        log: Callable[[str], None] | None = None,
        verbose: bool = False,
        gso: bool | None = None,
        gro: bool | None = None,
    ) -> None:
        self.listen = listen
        self.target = target
        self.seed = seed
        self.idle_timeout = idle_timeout
        self.max_clients = max_clients
        self._log = log
        self._verbose = verbose
        self._config = CarrierConfig(
            mtu=LOOPBACK_MTU,
            gso=gso,
            gro=gro,
            send_buffer=SOCKET_BUFFER,
            receive_buffer=SOCKET_BUFFER,
        )
        self.up = Lane(up, seed, "up")
        self.down = Lane(down, seed, "down")
        self.clients_seen = 0
        self.target_errors = 0
        self._mappings: dict[tuple[Any, ...], _Mapping] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener: _Socket | None = None
        self._target_addr: tuple[Any, ...] = target
        self._sweeper: asyncio.TimerHandle | None = None
        self._started = 0.0
        self._up_box: Outbox | None = None
        self._down_box: Outbox | None = None
        self.address: tuple[str, int] = listen

    async def start(self) -> tuple[str, int]:
        """Resolve the target, bind the listening socket; returns the bound address."""
        loop = self._loop = asyncio.get_running_loop()
        # Resolve once, by connecting a throwaway socket: every mapping then connects
        # to the same address without asking the resolver again.
        try:
            probe, _ = await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, remote_addr=self.target
            )
        except OSError as exc:
            where = format_address(self.target)
            raise UserError(describe_os_error(exc, f"cannot send to {where}")) from None
        peer = probe.get_extra_info("peername")
        probe.close()
        self._target_addr = (peer[0], peer[1])
        self.up.overhead = IPV6_UDP_OVERHEAD if ":" in peer[0] else IPV4_UDP_OVERHEAD
        try:
            carrier = UdpCarrier.bound(*self.listen, config=self._config)
        except OSError as exc:
            raise listen_error(exc, *self.listen) from None
        self._listener = _Socket(loop, carrier)
        self.address = carrier.sockname
        self.down.overhead = IPV6_UDP_OVERHEAD if ":" in self.address[0] else IPV4_UDP_OVERHEAD
        self._up_box = Outbox(loop, self._send_up, self.up.stats)
        self._down_box = Outbox(loop, self._send_down, self.down.stats)
        self._started = loop.time()
        if self._verbose:
            self.up.trace = []
            self.down.trace = []
        loop.add_reader(carrier.fileno(), self._from_clients)
        self._sweeper = loop.call_later(self._sweep_interval(), self._sweep)
        return self.address

    @property
    def gso(self) -> bool:
        """True while the listening socket sends with UDP GSO."""
        return self._listener is not None and self._listener.carrier.gso

    @property
    def gro(self) -> bool:
        """True when the listening socket reads with UDP GRO."""
        return self._listener is not None and self._listener.carrier.gro

    def socket_stats(self) -> tuple[CarrierStats, CarrierStats]:
        """The listening socket's counts, and the open mappings' summed: system calls
        against datagrams shows what GSO and GRO save."""
        listening = (
            dataclasses.replace(self._listener.carrier.stats)
            if self._listener is not None
            else CarrierStats()
        )
        upstream = CarrierStats()
        for mapping in self._mappings.values():
            for f in dataclasses.fields(CarrierStats):
                value = getattr(mapping.sock.carrier.stats, f.name)
                setattr(upstream, f.name, getattr(upstream, f.name) + value)
        return listening, upstream

    @property
    def clients(self) -> int:
        """Mappings open now."""
        return len(self._mappings)

    def _sweep_interval(self) -> float:
        return max(0.05, min(self.idle_timeout / 4.0, 10.0))

    # ------------------------------------------------------------------ up: clients to target

    def _from_clients(self) -> None:
        listener, box, loop = self._listener, self._up_box, self._loop
        if listener is None or box is None or loop is None:
            return
        try:
            reads = listener.carrier.recv_reads(READ_BATCH)
        except OSError:
            return  # closed under us (stop)
        listener.carrier.errors()  # ICMP about answers to clients gone away: nothing to do
        if not reads:
            return
        now = loop.time()
        lane = self.up
        admit, put = lane.admit, box.put
        mappings = self._mappings
        for view, size, addr in reads:
            mapping = mappings.get(addr)
            if mapping is None:
                mapping = self._open(addr, now)
                if mapping is None:
                    stats = lane.stats  # not datagrams of the lane: no decision is drawn
                    count = (len(view) + size - 1) // size or 1
                    stats.received += count
                    stats.bytes_received += len(view)
                    stats.errors += count
                    continue
            mapping.last_active = now
            for k in range(0, len(view) or 1, size):  # an empty datagram is one too
                data = view[k : k + size].tobytes()
                for when, packet, reordered in admit(data, now):
                    put(when, packet, mapping, reordered)
                if lane.trace is not None:
                    self._trace("up", addr, self._target_addr, data, now)
        box.flush()

    def _open(self, client: tuple[Any, ...], now: float) -> _Mapping | None:
        """A new client's socket towards the target, or None if it cannot have one."""
        loop = self._loop
        assert loop is not None
        if len(self._mappings) >= self.max_clients:
            return None
        try:
            host, port = self._target_addr[0], self._target_addr[1]
            carrier = UdpCarrier.connected(host, port, config=self._config)
        except OSError as exc:
            self._note(f"cannot open a socket towards {format_address(self._target_addr)}: {exc}")
            return None
        mapping = _Mapping(client, _Socket(loop, carrier), now)
        self._mappings[client] = mapping
        self.clients_seen += 1
        loop.add_reader(carrier.fileno(), self._from_target, mapping)
        return mapping

    def _send_up(self, datagrams: list[bytes], mapping: _Mapping) -> tuple[int, int]:
        return mapping.sock.send(datagrams, self._target_addr)

    # ------------------------------------------------------------------ down: target to clients

    def _from_target(self, mapping: _Mapping) -> None:
        box, loop = self._down_box, self._loop
        if box is None or loop is None or mapping.sock.closed:
            return
        carrier = mapping.sock.carrier
        try:
            reads = carrier.recv_reads(READ_BATCH)
        except OSError:
            return
        for error in carrier.errors():
            self._target_error(error.errno)
        if not reads:
            return
        now = loop.time()
        mapping.last_active = now
        lane = self.down
        admit, put = lane.admit, box.put
        for view, size, _addr in reads:
            for k in range(0, len(view) or 1, size):
                data = view[k : k + size].tobytes()
                for when, packet, reordered in admit(data, now):
                    put(when, packet, mapping, reordered)
                if lane.trace is not None:
                    self._trace("down", self._target_addr, mapping.client, data, now)
        box.flush()

    def _send_down(self, datagrams: list[bytes], mapping: _Mapping) -> tuple[int, int]:
        listener = self._listener
        if listener is None:
            return 0, 0
        return listener.send(datagrams, mapping.client)

    def _target_error(self, err: int) -> None:
        self.target_errors += 1
        if self.target_errors == 1:
            self._note(
                f"{format_address(self._target_addr)} answered with an error "
                f"({os.strerror(err)}); is anything listening there?"
            )

    # ------------------------------------------------------------------ upkeep

    def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        for addr, mapping in list(self._mappings.items()):
            if now - mapping.last_active > self.idle_timeout:
                self._close_mapping(mapping)
                del self._mappings[addr]
        self._sweeper = loop.call_later(self._sweep_interval(), self._sweep)

    def _close_mapping(self, mapping: _Mapping) -> None:
        """Close its socket; copies still waiting for room in it never went."""
        left = mapping.sock.close()
        if left:
            stats = self.up.stats
            stats.passed -= left
            stats.errors += left

    def _note(self, line: str) -> None:
        if self._log is not None:
            self._log(f"synack netem: {line}")

    def _trace(
        self, lane: str, src: tuple[Any, ...], dst: tuple[Any, ...], data: bytes, now: float
    ) -> None:
        trace = self.up.trace if lane == "up" else self.down.trace
        assert trace is not None
        if self._log is not None:
            self._log(
                f"{now - self._started:.6f} {lane} {format_address(src)} > "
                f"{format_address(dst)}: {len(data)} bytes {describe_trace(trace)}"
            )
        trace.clear()

    def summary(self) -> Summary:
        """What the relay has done so far (it keeps running)."""
        elapsed = asyncio.get_running_loop().time() - self._started
        here, there = format_address(self.address), format_address(self._target_addr)
        offload = [name for name, on in (("UDP GSO", self.gso), ("UDP GRO", self.gro)) if on]
        notes: dict[str, Any] = {
            "clients": self.clients_seen,
            "offload": ", ".join(offload) or "off",
        }
        if self.target_errors:
            notes["target_errors"] = self.target_errors
        return Summary(
            "udp",
            self.seed,
            elapsed,
            [
                LaneReport(
                    "up", f"clients -> {here} -> {there}", self.up.impairment, self.up.stats
                ),
                LaneReport(
                    "down", f"{there} -> {here} -> clients", self.down.impairment, self.down.stats
                ),
            ],
            notes,
        )

    async def stop(self) -> Summary:
        """Stop relaying; copies still held are dropped and counted. Returns the summary."""
        summary = self.summary()
        if self._sweeper is not None:
            self._sweeper.cancel()
        for box in (self._up_box, self._down_box):
            if box is not None:
                box.close()
        for mapping in self._mappings.values():
            self._close_mapping(mapping)
        self._mappings.clear()
        if self._listener is not None:
            left = self._listener.close()
            self.down.stats.passed -= left
            self.down.stats.errors += left
        return summary
