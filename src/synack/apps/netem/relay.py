"""The UDP relay of `synack netem`: any UDP protocol, impaired both ways.

Clients send to the listening address; each client's datagrams go on to the
target from a socket of its own (as a NAT maps each inside address to a port of
its own), so the target's answers can be told apart and several clients work at
once. A mapping that carries nothing for `idle_timeout` seconds is closed.

Datagrams from clients form the "up" direction, answers from the target the
"down" one; each has its `Lane` (the decisions) and its `Outbox` (the clock).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from synack.apps.common import listen_error
from synack.apps.netem.impair import Impairment, Lane, Trace
from synack.apps.netem.outbox import Outbox
from synack.apps.netem.summary import LaneReport, Summary
from synack.errors import UserError, describe_os_error
from synack.transport import set_datagram_buffers

IPV4_UDP_OVERHEAD = 28  # IPv4 header (20) + UDP header (8): counted by the rate limit
IPV6_UDP_OVERHEAD = 48
MAX_CLIENTS = 1024
# SO_RCVBUF / SO_SNDBUF asked for on every relay socket (Linux caps it at
# net.core.rmem_max / wmem_max). With the default (208 KB, about 90 full datagrams)
# a sender's burst overflowed the listening socket before the relay could read it:
# drops no seed decides and the summary cannot count, in front of the bottleneck
# queue that is meant to be the only one.
SOCKET_BUFFER = 4 * 1024 * 1024


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


class _Mapping:
    """One client's own socket towards the target."""

    __slots__ = ("client", "closed", "last_active", "pending", "transport")

    def __init__(self, client: tuple[Any, ...], now: float) -> None:
        self.client = client
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: list[bytes] = []  # due before the socket was open
        self.last_active = now
        self.closed = False


class _Listener(asyncio.DatagramProtocol):
    def __init__(self, relay: UdpRelay) -> None:
        self.relay = relay

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.relay._from_client(data, addr)

    def error_received(self, exc: Exception) -> None:
        pass  # an ICMP error about an answer we sent: a client that went away


class _Upstream(asyncio.DatagramProtocol):
    def __init__(self, relay: UdpRelay, mapping: _Mapping) -> None:
        self.relay = relay
        self.mapping = mapping

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.relay._from_target(data, self.mapping)

    def error_received(self, exc: Exception) -> None:
        self.relay._target_error(exc)


class UdpRelay:
    """Relay datagrams between clients at `listen` and the `target`, impaired."""

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
    ) -> None:
        self.listen = listen
        self.target = target
        self.seed = seed
        self.idle_timeout = idle_timeout
        self.max_clients = max_clients
        self._log = log
        self._verbose = verbose
        self.up = Lane(up, seed, "up")
        self.down = Lane(down, seed, "down")
        self.clients_seen = 0
        self.target_errors = 0
        self._mappings: dict[tuple[Any, ...], _Mapping] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._listener: asyncio.DatagramTransport | None = None
        self._target_addr: tuple[Any, ...] = target
        self._sweeper: asyncio.TimerHandle | None = None
        self._started = 0.0
        self._up_box: Outbox | None = None
        self._down_box: Outbox | None = None
        self.address: tuple[str, int] = listen

    async def start(self) -> tuple[str, int]:
        """Resolve the target, bind the listening socket; returns the bound address."""
        loop = asyncio.get_running_loop()
        # Resolve once, by connecting a throwaway socket: every mapping then connects
        # to the same address without asking the resolver again.
        try:
            probe, _ = await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, remote_addr=self.target
            )
        except OSError as exc:
            where = format_address(self.target)
            raise UserError(describe_os_error(exc, f"cannot send to {where}")) from None
        self._target_addr = probe.get_extra_info("peername")
        probe.close()
        self.up.overhead = IPV6_UDP_OVERHEAD if len(self._target_addr) > 2 else IPV4_UDP_OVERHEAD
        try:
            listener, _ = await loop.create_datagram_endpoint(
                lambda: _Listener(self), local_addr=self.listen
            )
        except OSError as exc:
            raise listen_error(exc, *self.listen) from None
        self._listener = listener
        set_datagram_buffers(listener, SOCKET_BUFFER)
        sockname = listener.get_extra_info("sockname")
        self.down.overhead = IPV6_UDP_OVERHEAD if len(sockname) > 2 else IPV4_UDP_OVERHEAD
        self.address = (sockname[0], sockname[1])
        self._up_box = Outbox(loop, self._send_up, self.up.stats)
        self._down_box = Outbox(loop, self._send_down, self.down.stats)
        self._started = loop.time()
        if self._verbose:
            self.up.trace = []
            self.down.trace = []
        self._sweeper = loop.call_later(self._sweep_interval(), self._sweep)
        return self.address

    @property
    def clients(self) -> int:
        """Mappings open now."""
        return len(self._mappings)

    def _sweep_interval(self) -> float:
        return max(0.05, min(self.idle_timeout / 4.0, 10.0))

    # ------------------------------------------------------------------ up: clients to target

    def _from_client(self, data: bytes, addr: tuple[Any, ...]) -> None:
        box = self._up_box
        if box is None:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        mapping = self._mappings.get(addr)
        if mapping is None:
            if len(self._mappings) >= self.max_clients:
                stats = self.up.stats  # not a datagram of the lane: no decision is drawn
                stats.received += 1
                stats.bytes_received += len(data)
                stats.errors += 1
                return
            mapping = _Mapping(addr, now)
            self._mappings[addr] = mapping
            self.clients_seen += 1
            task = loop.create_task(self._open(mapping))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        mapping.last_active = now
        deliveries = self.up.admit(data, now)
        if self.up.trace is not None:
            self._trace("up", addr, self._target_addr, data, now)
        for when, packet, reordered in deliveries:
            box.put(when, packet, mapping, reordered)

    async def _open(self, mapping: _Mapping) -> None:
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Upstream(self, mapping), remote_addr=self._target_addr
            )
        except OSError as exc:
            self._note(f"cannot open a socket towards {format_address(self._target_addr)}: {exc}")
            self._unsend(mapping)
            mapping.closed = True
            self._mappings.pop(mapping.client, None)
            return
        if mapping.closed:
            transport.close()
            return
        set_datagram_buffers(transport, SOCKET_BUFFER)
        mapping.transport = transport
        pending, mapping.pending = mapping.pending, []
        for data in pending:
            transport.sendto(data)

    def _unsend(self, mapping: _Mapping) -> None:
        """Copies counted as passed while the socket was opening that never went."""
        stats = self.up.stats
        for data in mapping.pending:
            stats.passed -= 1
            stats.bytes_passed -= len(data)
            stats.errors += 1
        mapping.pending = []

    def _send_up(self, data: bytes, mapping: _Mapping) -> bool:
        if mapping.closed:
            return False
        if mapping.transport is None:
            mapping.pending.append(data)
        else:
            mapping.transport.sendto(data)
        return True

    # ------------------------------------------------------------------ down: target to clients

    def _from_target(self, data: bytes, mapping: _Mapping) -> None:
        box = self._down_box
        if box is None or mapping.closed:
            return
        now = asyncio.get_running_loop().time()
        mapping.last_active = now
        deliveries = self.down.admit(data, now)
        if self.down.trace is not None:
            self._trace("down", self._target_addr, mapping.client, data, now)
        for when, packet, reordered in deliveries:
            box.put(when, packet, mapping.client, reordered)

    def _send_down(self, data: bytes, client: tuple[Any, ...]) -> bool:
        listener = self._listener
        if listener is None or listener.is_closing():
            return False
        listener.sendto(data, client)
        return True

    def _target_error(self, exc: Exception) -> None:
        self.target_errors += 1
        if self.target_errors == 1:
            self._note(
                f"{format_address(self._target_addr)} answered with an error ({exc}); "
                "is anything listening there?"
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
        mapping.closed = True
        if mapping.transport is not None:
            mapping.transport.close()
        self._unsend(mapping)

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
        notes: dict[str, Any] = {"clients": self.clients_seen}
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
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for mapping in self._mappings.values():
            self._close_mapping(mapping)
        self._mappings.clear()
        if self._listener is not None:
            self._listener.close()
        await asyncio.sleep(0)  # let the transports finish closing
        return summary
