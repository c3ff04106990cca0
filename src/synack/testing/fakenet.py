"""A network on virtual time, for testing a sans-IO TCP (ours, or a user's protocol).

`FakeNetwork` carries segments between *endpoints* attached at IP addresses: a
`synack.tcp.Host`, or anything with the four methods of `synack.tcp.Endpoint` (the
contract every driver relies on; `Datagram` and `Endpoint` live in the core and are
re-exported here). It owns
the clock (``now``, virtual seconds) and one event queue of deliveries; endpoint
timers fire at exactly their deadlines. Nothing sleeps and nothing touches a
socket, so an hour of TCP runs in milliseconds and a run repeats exactly: every
random choice comes from one `random.Random` seeded at construction.

Each direction between two addresses has its `Link` settings: delay and jitter,
loss, duplication, reordering, corruption (one flipped bit, which the TCP
checksum catches) and a rate-limited bottleneck whose queue drops at the tail.

The driving rule is the one a real driver follows: after every delivery and
every timer, the endpoint that handled it is asked for its output at once.
User code that calls into endpoints between runs is covered because every
``step``/``run_for``/``run_until`` starts by collecting from all endpoints; code
that must act *during* a run does so from a callback scheduled with `call_at` /
`call_later`, or from an endpoint's ``app`` hook (see `attach`), after which the
network collects again. ``run_until``'s predicate and the ``tap`` should only look.
"""

from __future__ import annotations

import heapq
import inspect
import itertools
import math
import random
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from synack.tcp.endpoint import Datagram, Endpoint
from synack.wire.checksum import address_bytes
from synack.wire.tcp import HEADER, HEADER_SIZE, flags_text

if TYPE_CHECKING:
    from synack.tcp.config import Config
    from synack.tcp.connection import Connection
    from synack.tcp.host import Host

_INF = math.inf
# So many events without virtual time moving means two endpoints are answering each
# other forever (an ACK war); a real network would melt, here the run stops with an error.
LIVELOCK_EVENTS = 1_000_000


@dataclass(frozen=True, slots=True)
class Link:
    """How one direction of a path treats packets (the knobs of Linux's netem).

    The order a packet meets them: `loss`, then `duplicate` (the copy travels on its
    own), then per copy `corrupt`, the `rate` bottleneck with its `queue_limit`, and
    `delay` with `jitter`. Jitter never reorders packets; `reorder` does, by holding
    the chosen packets back `reorder_delay` seconds longer so later ones pass them.
    """

    delay: float = 0.0  # seconds of one-way propagation delay
    jitter: float = 0.0  # up to this much is added to or taken from `delay`, uniformly
    loss: float = 0.0  # probability that a packet is dropped
    duplicate: float = 0.0  # probability that a packet is delivered twice
    reorder: float = 0.0  # probability that a packet is held back past later ones
    reorder_delay: float = 0.01  # how long a reordered packet is held back
    corrupt: float = 0.0  # probability that one random bit of a packet is flipped
    rate: float | None = None  # bottleneck bytes per second; None: unlimited
    queue_limit: int = 1000  # packets the bottleneck holds (waiting or in transmission)

    def __post_init__(self) -> None:
        for name in ("delay", "jitter", "reorder_delay"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(
                    f"Link {name} must be a finite number of seconds >= 0, not {value!r}"
                )
        for name in ("loss", "duplicate", "reorder", "corrupt"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"Link {name} is a probability in [0, 1], not {value!r}")
        if self.rate is not None and not (math.isfinite(self.rate) and self.rate > 0):
            raise ValueError(f"Link rate must be a positive number of bytes/s, not {self.rate!r}")
        if self.queue_limit < 1:
            raise ValueError(f"Link queue_limit must be at least 1 packet, not {self.queue_limit}")

    @property
    def impaired(self) -> bool:
        """Whether anything but a fixed delay applies (the fast path is taken if not)."""
        return bool(
            self.jitter
            or self.loss
            or self.duplicate
            or self.reorder
            or self.corrupt
            or self.rate is not None
        )


class PacketEvent(StrEnum):
    """What the tap is told happened to a packet."""

    SENT = "sent"  # an endpoint handed it to the network
    DELIVERED = "delivered"  # it reached the endpoint at its destination
    LOST = "lost"  # dropped by the link's `loss`
    QUEUE_DROP = "queue-drop"  # dropped at the tail of a full bottleneck queue
    UNREACHABLE = "unreachable"  # nothing is attached at its destination address
    DUPLICATED = "duplicated"  # the link made a second copy (tapped as the copy)
    CORRUPTED = "corrupted"  # a bit was flipped (tapped with the corrupted bytes)
    REORDERED = "reordered"  # held back so that later packets pass it


class DropCause(StrEnum):
    LOSS = "loss"
    QUEUE = "queue"
    UNREACHABLE = "unreachable"


Tap = Callable[[float, PacketEvent, bytes | bytearray, bytes, bytes], None]


@dataclass(slots=True)
class NetStats:
    """Packet counters for the whole network."""

    sent: int = 0
    delivered: int = 0
    duplicated: int = 0
    corrupted: int = 0
    reordered: int = 0
    dropped: dict[DropCause, int] = field(default_factory=lambda: dict.fromkeys(DropCause, 0))

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())


class NetworkTimeout(TimeoutError):
    """``run_until`` ran out of virtual time, or the network fell idle, before its condition held."""


class Livelock(RuntimeError):
    """Events keep coming without virtual time advancing."""


class _Path:
    """The state of one direction between two addresses."""

    __slots__ = ("backlog", "busy_until", "delay", "explicit", "last_arrival", "link", "plain")

    def __init__(self, link: Link, explicit: bool) -> None:
        self.explicit = explicit
        self.busy_until = 0.0  # when the bottleneck finishes its last accepted packet
        self.backlog: deque[float] = deque()  # finish times of packets in the bottleneck
        self.last_arrival = 0.0
        self.configure(link)

    def configure(self, link: Link) -> None:
        self.link = link
        self.delay = link.delay
        self.plain = not link.impaired


class _Slot:
    """An attached endpoint with its bound methods looked up once."""

    __slots__ = (
        "address",
        "app",
        "endpoint",
        "get_timer",
        "handle",
        "handle_timer",
        "send",
        "timer",
    )

    def __init__(
        self, address: bytes, endpoint: Endpoint, app: Callable[[float], None] | None
    ) -> None:
        self.address = address
        self.endpoint = endpoint
        self.app = app
        self.handle = endpoint.handle_segment
        self.send = endpoint.segments_to_send
        self.get_timer = endpoint.get_timer
        self.handle_timer = endpoint.handle_timer
        self.timer = _INF


# Markers in the data position of a heap entry that is not a packet.
_CALL = object()

# (time, tie-breaker, segment or _CALL, source address or callback, destination address)
_HeapEntry = tuple[float, int, Any, Any, bytes]


class FakeNetwork:
    """Endpoints on virtual time, joined by links that can lose, delay and damage packets."""

    def __init__(self, seed: int = 0, link: Link | None = None) -> None:
        self.now = 0.0
        self.random = random.Random(seed)
        self.stats = NetStats()
        self.tap: Tap | None = None
        self._default = link if link is not None else Link()
        self._slots: dict[bytes, _Slot] = {}
        self._slot_list: list[_Slot] = []
        self._paths: dict[bytes, dict[bytes, _Path]] = {}
        self._explicit: dict[tuple[bytes, bytes], Link] = {}
        self._heap: list[_HeapEntry] = []
        self._seq = itertools.count()
        self._timer_at = _INF  # earliest endpoint timer
        self._timer_slot: _Slot | None = None

    # ------------------------------------------------------------------ topology

    def attach(
        self,
        address: str | bytes,
        endpoint: Endpoint,
        *,
        app: Callable[[float], None] | None = None,
    ) -> None:
        """Deliver segments for `address` to `endpoint`.

        `app`, if given, is called with ``now`` after each segment or timer the endpoint
        handles, before its output is collected: the place for application code that
        reacts at once (accept, read, reply), as a program woken by its driver would.
        """
        addr = address_bytes(address)
        if addr in self._slots:
            raise ValueError(f"{_ip(addr)} is already attached")
        slot = _Slot(addr, endpoint, app)
        self._slots[addr] = slot
        self._slot_list.append(slot)
        self._flush(slot, self.now)

    def detach(self, address: str | bytes) -> Endpoint:
        """Stop delivering to `address`; packets still in flight to it are dropped on arrival."""
        addr = address_bytes(address)
        slot = self._slots.pop(addr, None)
        if slot is None:
            raise KeyError(f"nothing is attached at {_ip(addr)}")
        self._slot_list.remove(slot)
        if slot is self._timer_slot:
            self._recompute_timer()
        return slot.endpoint

    def set_app(self, address: str | bytes, app: Callable[[float], None] | None) -> None:
        """Install (or with None remove) the ``app`` hook of the endpoint at `address`."""
        addr = address_bytes(address)
        slot = self._slots.get(addr)
        if slot is None:
            raise KeyError(f"nothing is attached at {_ip(addr)}")
        slot.app = app

    def endpoint(self, address: str | bytes) -> Endpoint:
        addr = address_bytes(address)
        slot = self._slots.get(addr)
        if slot is None:
            raise KeyError(f"nothing is attached at {_ip(addr)}")
        return slot.endpoint

    def add_host(
        self,
        address: str | bytes,
        config: Config | None = None,
        *,
        app: Callable[[float], None] | None = None,
    ) -> Host:
        """A new `synack.tcp.host.Host` at `address`, attached."""
        from synack.tcp.host import Host

        host = Host(address, config)
        self.attach(host.address, host, app=app)
        return host

    def set_link(self, src: str | bytes, dst: str | bytes, link: Link) -> None:
        """Settings for packets from `src` to `dst` (one direction)."""
        s, d = address_bytes(src), address_bytes(dst)
        self._explicit[(s, d)] = link
        path = self._paths.get(s, {}).get(d)
        if path is not None:
            path.explicit = True
            path.configure(link)

    def set_path(
        self, a: str | bytes, b: str | bytes, link: Link, reverse: Link | None = None
    ) -> None:
        """Settings for both directions between `a` and `b` (`reverse` for b to a, if different)."""
        self.set_link(a, b, link)
        self.set_link(b, a, reverse if reverse is not None else link)

    def set_default_link(self, link: Link) -> None:
        """Settings for every direction not given its own with `set_link`."""
        self._default = link
        for by_dst in self._paths.values():
            for path in by_dst.values():
                if not path.explicit:
                    path.configure(link)

    def link(self, src: str | bytes, dst: str | bytes) -> Link:
        """The settings now in force from `src` to `dst`."""
        return self._explicit.get((address_bytes(src), address_bytes(dst)), self._default)

    def queued(self, src: str | bytes, dst: str | bytes) -> int:
        """Packets now in the bottleneck from `src` to `dst` (waiting or in transmission):
        the standing queue a congestion control leaves, read without touching it."""
        path = self._paths.get(address_bytes(src), {}).get(address_bytes(dst))
        if path is None:
            return 0
        now = self.now
        return sum(1 for finish in path.backlog if finish > now)

    def _path(self, src: bytes, dst: bytes) -> _Path:
        by_dst = self._paths.setdefault(src, {})
        path = by_dst.get(dst)
        if path is None:
            link = self._explicit.get((src, dst))
            path = _Path(link if link is not None else self._default, link is not None)
            by_dst[dst] = path
        return path

    # ------------------------------------------------------------------ application hooks

    def call_at(self, when: float, callback: Callable[[], object]) -> None:
        """Run `callback` at virtual time `when` (now, if that has passed); afterwards the
        network collects every endpoint's output, so the callback may act on any of them."""
        heapq.heappush(self._heap, (max(when, self.now), next(self._seq), _CALL, callback, b""))

    def call_later(self, delay: float, callback: Callable[[], object]) -> None:
        self.call_at(self.now + delay, callback)

    def inject(self, segment: bytes | bytearray, src: str | bytes, dst: str | bytes) -> None:
        """Put a segment on the link from `src` to `dst` now, as if an endpoint had sent it
        (a spoofed source is fine: nothing checks that `src` is attached)."""
        self._transmit([(segment, address_bytes(src), address_bytes(dst))], self.now)

    # ------------------------------------------------------------------ driving

    def step(self) -> bool:
        """Collect pending output, then handle the one next event; False if there is none."""
        self._sweep()
        return self._run(_INF, None, 1) == 1

    def run_for(self, seconds: float) -> int:
        """Handle every event due in the next `seconds`, and end with ``now`` that much later.

        Returns the number of events handled."""
        if not seconds >= 0:
            raise ValueError(f"run_for needs seconds >= 0, not {seconds!r}")
        self._sweep()
        deadline = self.now + seconds
        count = self._run(deadline, None, -1)
        self.now = max(self.now, deadline)
        return count

    def run_until(
        self, predicate: Callable[[], object], timeout: float, *, what: str | None = None
    ) -> float:
        """Run until `predicate()` is true; returns the virtual time it became true.

        The predicate is checked first and after every event. Raises `NetworkTimeout`,
        naming `what` (or the predicate's source), if `timeout` virtual seconds pass or
        the network falls idle (nothing in flight, no timer armed) first.
        """
        if not timeout >= 0:
            raise ValueError(f"run_until needs timeout >= 0, not {timeout!r}")
        self._sweep()
        if predicate():
            return self.now
        deadline = self.now + timeout
        self._run(deadline, predicate, -1)
        if predicate():
            return self.now
        label = what or _describe(predicate)
        if self._next_time() != _INF:
            self.now = max(self.now, deadline)
            raise NetworkTimeout(
                f"timed out after {timeout:g} virtual seconds "
                f"(now t={self.now:.6f}) waiting for: {label}"
            )
        raise NetworkTimeout(
            f"network idle at t={self.now:.6f} (nothing in flight, no timer "
            f"armed) while waiting for: {label}"
        )

    @property
    def idle(self) -> bool:
        """Nothing in flight, no timer armed, no callback scheduled."""
        return not self._heap and self._timer_at == _INF

    @property
    def in_flight(self) -> int:
        """Packets on the links (and scheduled callbacks) not yet delivered."""
        return len(self._heap)

    def _next_time(self) -> float:
        heap = self._heap
        return min(heap[0][0] if heap else _INF, self._timer_at)

    def _run(self, deadline: float, predicate: Callable[[], object] | None, limit: int) -> int:
        """The event loop: packets (and callbacks) from the heap, timers from the slots.

        Delivering a packet and sending what the endpoint answers on a plain link is
        the hot path of every bulk transfer, so it is written out here in one piece:
        no calls but the endpoint's own and the heap's, no allocation but the heap entry.
        """
        heap = self._heap
        pop = heapq.heappop
        push = heapq.heappush
        seq = self._seq
        slots = self._slots
        paths = self._paths
        stats = self.stats
        tap = self.tap
        handled = 0
        same_time = 0
        sent = delivered = 0
        now = self.now
        try:
            while handled != limit:
                if heap and heap[0][0] <= self._timer_at:
                    entry = pop(heap)
                    t = entry[0]
                    if t > deadline:
                        push(heap, entry)
                        break
                    if t > now:
                        now = t
                        same_time = 0
                    self.now = now
                    data = entry[2]
                    if data is _CALL:
                        entry[3]()
                        self._sweep()
                        handled += 1
                        same_time += 1
                        if predicate is not None and predicate():
                            break
                        continue
                    dst = entry[4]
                    src = entry[3]
                    slot = slots.get(dst)
                    if slot is None:
                        stats.dropped[DropCause.UNREACHABLE] += 1
                        if tap is not None:
                            tap(now, PacketEvent.UNREACHABLE, data, src, dst)
                    else:
                        delivered += 1
                        if tap is not None:
                            tap(now, PacketEvent.DELIVERED, data, src, dst)
                        slot.handle(data, src, now)
                        if slot.app is not None:
                            slot.app(now)
                        # _flush(slot, now), with _transmit's plain path inline.
                        out = slot.send(now)
                        if out:
                            if tap is None:
                                for data, src, dst in out:
                                    by_dst = paths.get(src)
                                    path = by_dst.get(dst) if by_dst is not None else None
                                    if path is not None and path.plain:
                                        sent += 1
                                        push(heap, (now + path.delay, next(seq), data, src, dst))
                                    else:
                                        self._transmit(((data, src, dst),), now)
                            else:
                                self._transmit(out, now)
                        timer = slot.get_timer()
                        if timer is None:
                            timer = _INF
                        if timer != slot.timer:
                            self._set_timer(slot, timer)
                else:
                    t_timer = self._timer_at
                    if t_timer == _INF or t_timer > deadline:
                        break  # idle, or nothing more is due
                    slot = self._timer_slot
                    assert slot is not None
                    if t_timer > now:
                        now = t_timer
                        same_time = 0
                    self.now = now
                    slot.handle_timer(now)
                    if slot.app is not None:
                        slot.app(now)
                    self._flush(slot, now)
                handled += 1
                same_time += 1
                if same_time > LIVELOCK_EVENTS:
                    raise Livelock(f"{same_time} events at t={now:.6f} without time advancing")
                if predicate is not None and predicate():
                    break
        finally:
            stats.sent += sent
            stats.delivered += delivered
        return handled

    # ------------------------------------------------------------------ output

    def _sweep(self) -> None:
        """Collect from every endpoint (user code may have called into any of them)."""
        now = self.now
        for slot in self._slot_list:
            self._flush(slot, now)

    def _flush(self, slot: _Slot, now: float) -> None:
        out = slot.send(now)
        if out:
            self._transmit(out, now)
        t = slot.get_timer()
        if t is None:
            t = _INF
        if t != slot.timer:
            self._set_timer(slot, t)

    def _set_timer(self, slot: _Slot, t: float) -> None:
        slot.timer = t
        if t < self._timer_at:
            self._timer_at = t
            self._timer_slot = slot
        elif slot is self._timer_slot:
            self._recompute_timer()

    def _recompute_timer(self) -> None:
        best = _INF
        best_slot: _Slot | None = None
        for slot in self._slot_list:
            if slot.timer < best:
                best = slot.timer
                best_slot = slot
        self._timer_at = best
        self._timer_slot = best_slot

    def _transmit(self, out: Iterable[Datagram], now: float) -> None:
        """Put segments on their links: the fast path for a plain delay, else `_impaired`."""
        paths = self._paths
        heap = self._heap
        push = heapq.heappush
        seq = self._seq
        tap = self.tap
        stats = self.stats
        for data, src, dst in out:
            stats.sent += 1
            if tap is not None:
                tap(now, PacketEvent.SENT, data, src, dst)
            by_dst = paths.get(src)
            path = by_dst.get(dst) if by_dst is not None else None
            if path is None:
                path = self._path(src, dst)
            if path.plain:
                push(heap, (now + path.delay, next(seq), data, src, dst))
            else:
                self._impaired(path, data, src, dst, now)

    def _impaired(
        self, path: _Path, data: bytes | bytearray, src: bytes, dst: bytes, now: float
    ) -> None:
        link = path.link
        rnd = self.random.random
        stats = self.stats
        tap = self.tap
        if link.loss and rnd() < link.loss:
            stats.dropped[DropCause.LOSS] += 1
            if tap is not None:
                tap(now, PacketEvent.LOST, data, src, dst)
            return
        copies = 1
        if link.duplicate and rnd() < link.duplicate:
            copies = 2
            stats.duplicated += 1
            if tap is not None:
                tap(now, PacketEvent.DUPLICATED, data, src, dst)
        for _ in range(copies):
            packet = data
            if link.corrupt and rnd() < link.corrupt and packet:
                damaged = bytearray(packet)
                bit = self.random.randrange(len(damaged) * 8)
                damaged[bit >> 3] ^= 1 << (bit & 7)
                packet = damaged
                stats.corrupted += 1
                if tap is not None:
                    tap(now, PacketEvent.CORRUPTED, packet, src, dst)
            depart = now
            if link.rate is not None:
                backlog = path.backlog
                while backlog and backlog[0] <= now:
                    backlog.popleft()
                if len(backlog) >= link.queue_limit:
                    stats.dropped[DropCause.QUEUE] += 1
                    if tap is not None:
                        tap(now, PacketEvent.QUEUE_DROP, packet, src, dst)
                    continue
                start = path.busy_until if path.busy_until > now else now
                depart = start + len(packet) / link.rate
                path.busy_until = depart
                backlog.append(depart)
            arrive = depart + link.delay
            if link.jitter:
                arrive += self.random.uniform(-link.jitter, link.jitter)
            if arrive < path.last_arrival:
                arrive = path.last_arrival  # jitter alone keeps the order
            if arrive < now:
                arrive = now
            if link.reorder and rnd() < link.reorder:
                arrive += link.reorder_delay
                stats.reordered += 1
                if tap is not None:
                    tap(now, PacketEvent.REORDERED, packet, src, dst)
            else:
                path.last_arrival = arrive
            heapq.heappush(self._heap, (arrive, next(self._seq), packet, src, dst))


# ---------------------------------------------------------------------- helpers for tests


class RawEndpoint:
    """An endpoint that records what it receives and sends only what it is told to:
    a hand-written peer for tests, or an attacker that spoofs its source address."""

    def __init__(self, address: str | bytes) -> None:
        self.address = address_bytes(address)
        self.received: list[tuple[float, bytes, bytes]] = []  # (time, segment, source)
        self._out: list[Datagram] = []

    def send(
        self, segment: bytes | bytearray, dst: str | bytes, *, src: str | bytes | None = None
    ) -> None:
        """Queue `segment` for `dst`, from our own address unless `src` spoofs another."""
        source = self.address if src is None else address_bytes(src)
        self._out.append((segment, source, address_bytes(dst)))

    def handle_segment(self, data: bytes | bytearray, src: bytes, now: float) -> None:
        self.received.append((now, bytes(data), bytes(src)))

    def segments_to_send(self, now: float) -> list[Datagram]:
        out = self._out
        self._out = []
        return out

    def get_timer(self) -> float | None:
        return None

    def handle_timer(self, now: float) -> None:
        pass


def connected_pair(
    net: FakeNetwork,
    config: Config | None = None,
    *,
    client_config: Config | None = None,
    server_config: Config | None = None,
    client_address: str = "198.18.0.1",
    server_address: str = "198.18.0.2",
    port: int = 80,
    timeout: float = 60.0,
) -> tuple[Connection, Connection]:
    """Two hosts on `net`, a listener, a connect and an accept: (client, server), ESTABLISHED.

    `config` serves both sides unless `client_config` / `server_config` is given. The
    hosts stay attached (``net.endpoint(address)``). Raises `NetworkTimeout` if the
    handshake does not finish within `timeout` virtual seconds (a very lossy link).
    """
    from synack.tcp.state import State

    client_host = net.add_host(client_address, client_config or config)
    server_host = net.add_host(server_address, server_config or config)
    server_host.listen(port)
    client = client_host.connect((server_address, port), net.now)
    accepted: list[Connection] = []

    def ready() -> bool:
        if not accepted:
            conn = server_host.accept(port)
            if conn is not None:
                accepted.append(conn)
        if client.state is State.CLOSED:
            raise ConnectionError(f"connect to {server_address}:{port} failed: {client.error}")
        return bool(accepted) and client.state is State.ESTABLISHED

    net.run_until(
        ready,
        timeout,
        what=f"a connection {client_address} -> {server_address}:{port} to be established",
    )
    return client, accepted[0]


def format_packet(
    now: float, event: PacketEvent, segment: bytes | bytearray, src: bytes, dst: bytes
) -> str:
    """One tcpdump-like line for a tap: ``net.tap = lambda *p: print(format_packet(*p))``."""
    if len(segment) < HEADER_SIZE:
        return f"{now:.6f} {event} {_ip(src)} > {_ip(dst)}: {len(segment)} bytes, not TCP"
    sport, dport, seq, ack, off, flags, window, _csum, _urg = HEADER.unpack_from(segment)
    payload = len(segment) - (off >> 4) * 4
    text = f"{now:.6f} {event} {_ip(src)}.{sport} > {_ip(dst)}.{dport}: [{flags_text(flags)}]"
    text += f" seq {seq}"
    if flags & 0x10:
        text += f" ack {ack}"
    return f"{text} win {window} length {payload}"


def _ip(addr: bytes) -> str:
    import ipaddress

    try:
        return str(ipaddress.ip_address(addr))
    except ValueError:
        return addr.hex()


def _describe(predicate: Callable[[], object]) -> str:
    """The source of a predicate (a lambda's text, usually), for an error message."""
    try:
        source = inspect.getsource(predicate).strip()
    except (OSError, TypeError):
        source = ""
    if source and len(source) <= 200:
        return source
    return getattr(predicate, "__qualname__", repr(predicate))
