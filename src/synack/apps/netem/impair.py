"""The impairment decisions of `synack netem`: pure logic, time passed in.

One `Lane` per direction. Its choices come from its own `random.Random`, seeded
from the run's seed and the direction's name, and every datagram draws the same
number of random values whatever happens to it (the count depends only on which
knobs are on). So datagram *n* of a direction meets the same decisions whenever
the same seed sees the same datagrams in the same order: what the other
direction does, how the clock runs and how the bottleneck queue fills cannot
shift them. Only the tail drop of a full queue depends on timing, as it would on
a real link.

The knobs and their order are those of `synack.testing.fakenet.Link` (and of
Linux's netem): `loss`, then `duplicate` (the copy travels on its own), then per
copy `corrupt` (one flipped bit), the `rate` bottleneck with its tail-drop
`queue_limit`, and `delay` with `jitter`, which never reorders; `reorder` does,
by holding a copy back `reorder_delay` longer so later ones pass it.

Fakenet keeps its own code: it draws from one network-wide generator, only the
values a packet needs (a queue drop skips the rest), so its seeded results depend
on timing and on the other direction. Sharing this module would change every
seeded fakenet run, and the per-datagram independence is the point here.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

# Copies held at once per direction, whatever the knobs: a memory bound when a long
# delay meets a fast sender (netem's `limit` does the same job). Counted as overflow.
MAX_IN_FLIGHT = 50_000


@dataclass(frozen=True, slots=True)
class Impairment:
    """How one direction treats datagrams; the fields mean what `fakenet.Link`'s do."""

    delay: float = 0.0  # seconds of one-way delay
    jitter: float = 0.0  # up to this much is added to or taken from `delay`, uniformly
    loss: float = 0.0  # probability a datagram is dropped
    duplicate: float = 0.0  # probability a datagram is sent twice
    reorder: float = 0.0  # probability a copy is held back past later ones
    reorder_delay: float = 0.01  # how long a reordered copy is held back
    corrupt: float = 0.0  # probability one random bit of a copy's payload is flipped
    rate: float | None = None  # bottleneck in bytes per second; None: unlimited
    queue_limit: int = 1000  # copies the bottleneck holds, waiting or in transmission

    def __post_init__(self) -> None:
        for name in ("delay", "jitter", "reorder_delay"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number of seconds >= 0, not {value!r}")
        for name in ("loss", "duplicate", "reorder", "corrupt"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} is a probability in [0, 1], not {value!r}")
        if self.rate is not None and not (math.isfinite(self.rate) and self.rate > 0):
            raise ValueError(f"rate must be a positive number of bytes/s, not {self.rate!r}")
        if self.queue_limit < 1:
            raise ValueError(f"queue_limit must be at least 1, not {self.queue_limit}")

    def describe(self) -> str:
        """The settings in tc-netem words: ``delay 20ms loss 5% rate 10mbit``."""
        from synack.apps.netem.units import format_percent, format_rate, format_time

        words: list[str] = []
        if self.delay or self.jitter:
            words.append(f"delay {format_time(self.delay)}")
            if self.jitter:
                words.append(f"jitter {format_time(self.jitter)}")
        for name in ("loss", "duplicate", "corrupt"):
            value = getattr(self, name)
            if value:
                words.append(f"{name} {format_percent(value)}")
        if self.reorder:
            words.append(
                f"reorder {format_percent(self.reorder)} by {format_time(self.reorder_delay)}"
            )
        if self.rate is not None:
            words.append(f"rate {format_rate(self.rate)} queue {self.queue_limit}")
        return " ".join(words) or "no impairment"


@dataclass(frozen=True, slots=True)
class CopyFate:
    """What happens to one copy of a datagram, decided before any clock is read."""

    bit: int | None  # the bit flipped, counted from the start of the corruptible region
    jitter: float  # seconds added to the delay (negative: taken off)
    reorder: bool  # held back `reorder_delay` so later copies pass it


@dataclass(frozen=True, slots=True)
class Fate:
    lost: bool
    copies: tuple[CopyFate, ...]  # one, or two for a duplicate; drawn even when lost


@dataclass(slots=True)
class LaneStats:
    """What one direction did. received + duplicated = passed + dropped + errors + unsent."""

    received: int = 0  # datagrams that came in
    bytes_received: int = 0
    passed: int = 0  # copies handed on (duplicates count twice)
    bytes_passed: int = 0
    lost: int = 0  # dropped by `loss`
    queue_dropped: int = 0  # dropped at the tail of a full bottleneck queue
    overflow: int = 0  # dropped because MAX_IN_FLIGHT copies were already held
    duplicated: int = 0
    reordered: int = 0
    corrupted: int = 0
    delayed: int = 0  # copies held for any time before being handed on
    delay_total: float = 0.0  # seconds those copies were held, summed
    delay_max: float = 0.0
    errors: int = 0  # copies that could not be handed on (no route, send failed)
    unsent: int = 0  # copies still held when the relay stopped

    @property
    def dropped(self) -> int:
        return self.lost + self.queue_dropped + self.overflow

    @property
    def mean_delay(self) -> float:
        return self.delay_total / self.delayed if self.delayed else 0.0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["dropped"] = self.dropped
        d["mean_delay"] = self.mean_delay
        for key in ("delay_total", "delay_max", "mean_delay"):
            d[key] = round(d[key], 6)  # seconds, to the microsecond
        return d


# (time to hand the copy on, the copy's bytes, whether it was reordered)
Delivery = tuple[float, bytes, bool]

# (event word, detail) pairs for a verbose log: ("lost", ""), ("corrupted", "bit 17")...
Trace = list[tuple[str, str]]


def lane_random(seed: int, name: str) -> random.Random:
    """The generator of direction `name` for run `seed`; string seeds hash the same
    way on every machine and Python run (no hash randomization)."""
    return random.Random(f"synack-netem/{seed}/{name}")


@dataclass(slots=True)
class Lane:
    """One direction: decisions, the bottleneck queue, and the time each copy leaves.

    `overhead` bytes are added to each datagram's size for the rate (the IP and UDP
    headers a relayed payload really travels with); `region` gives the offset of the
    part of a datagram that corruption may touch (0: all of it).
    """

    impairment: Impairment
    seed: int
    name: str
    overhead: int = 0
    region: Callable[[bytes], int] | None = None
    stats: LaneStats = field(default_factory=LaneStats)
    trace: Trace | None = None  # set to a list to be told each datagram's fate
    rng: random.Random = field(init=False)
    _busy_until: float = field(init=False, default=0.0)
    _backlog: deque[float] = field(init=False, default_factory=deque)
    _last_arrival: float = field(init=False, default=-math.inf)
    # Only loss, delay and rate are on: one draw (or none) per datagram and one copy,
    # which `admit` decides inline instead of building a `Fate` (the relay's hot path).
    _plain: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.rng = lane_random(self.seed, self.name)
        imp = self.impairment
        self._plain = not (imp.duplicate or imp.corrupt or imp.jitter or imp.reorder)

    @property
    def queued(self) -> int:
        """Copies in the bottleneck as of the last `admit`."""
        return len(self._backlog)

    def decide(self, bits: int) -> Fate:
        """The next datagram's fate; `bits` is the size of its corruptible region."""
        imp = self.impairment
        rnd = self.rng.random
        lost = bool(imp.loss) and rnd() < imp.loss
        n = 1
        if imp.duplicate:
            duplicate = rnd() < imp.duplicate
            n = 2 if duplicate else 1
            draws = 2  # the second copy's draws are made either way
        else:
            draws = 1
        copies: list[CopyFate] = []
        for i in range(draws):
            bit = None
            if imp.corrupt:
                hit = rnd() < imp.corrupt
                where = rnd()
                if hit and bits > 0:
                    bit = min(int(where * bits), bits - 1)
            jitter = imp.jitter * (2.0 * rnd() - 1.0) if imp.jitter else 0.0
            reorder = bool(imp.reorder) and rnd() < imp.reorder
            if i < n:
                copies.append(CopyFate(bit, jitter, reorder))
        return Fate(lost, tuple(copies))

    def admit(self, data: bytes, now: float) -> list[Delivery]:
        """Take one datagram arriving at `now`; returns the copies to hand on and when."""
        if self._plain:
            return self._admit_plain(data, now)
        stats = self.stats
        stats.received += 1
        stats.bytes_received += len(data)
        start = self.region(data) if self.region is not None else 0
        start = min(max(start, 0), len(data))
        fate = self.decide((len(data) - start) * 8)
        trace = self.trace
        if fate.lost:
            stats.lost += 1
            if trace is not None:
                trace.append(("lost", ""))
            return []
        if len(fate.copies) > 1:
            stats.duplicated += 1
            if trace is not None:
                trace.append(("duplicated", ""))
        imp = self.impairment
        out: list[Delivery] = []
        for copy in fate.copies:
            packet = data
            if copy.bit is not None:
                damaged = bytearray(data)
                bit = start * 8 + copy.bit
                damaged[bit >> 3] ^= 0x80 >> (bit & 7)
                packet = bytes(damaged)
                stats.corrupted += 1
                if trace is not None:
                    trace.append(("corrupted", f"bit {bit}"))
            depart = now
            if imp.rate is not None:
                depart = self._depart(len(packet), now, imp.rate)
                if depart < 0:
                    continue
            arrive = depart + imp.delay + copy.jitter
            if arrive < self._last_arrival:
                arrive = self._last_arrival  # jitter alone keeps the order
            if arrive < now:
                arrive = now
            if copy.reorder:
                arrive += imp.reorder_delay
                stats.reordered += 1
                if trace is not None:
                    trace.append(("reordered", ""))
            else:
                self._last_arrival = arrive
            self._note_held(arrive - now)
            out.append((arrive, packet, copy.reorder))
        return out

    def _depart(self, size: int, now: float, rate: float) -> float:
        """When a packet of `size` bytes arriving at `now` leaves the rate limiter's
        bounded queue, or -1.0 if the queue is full and it is dropped (counted)."""
        backlog = self._backlog
        while backlog and backlog[0] <= now:
            backlog.popleft()
        if len(backlog) >= self.impairment.queue_limit:
            self.stats.queue_dropped += 1
            if self.trace is not None:
                self.trace.append(("queue-drop", ""))
            return -1.0
        busy = self._busy_until
        depart = (busy if busy > now else now) + (size + self.overhead) / rate
        self._busy_until = depart
        backlog.append(depart)
        return depart

    def _note_held(self, held: float) -> None:
        """Count a copy held `held` seconds before it is handed on."""
        stats = self.stats
        if held > 0:
            stats.delayed += 1
            stats.delay_total += held
            if held > stats.delay_max:
                stats.delay_max = held
        if self.trace is not None:
            self.trace.append(("delay", f"{held * 1e3:.1f}ms"))

    def _admit_plain(self, data: bytes, now: float) -> list[Delivery]:
        """`admit` with only loss, delay and rate on: the same draw `decide` makes (the
        loss's, if any) and the same times, with no `Fate` built."""
        stats = self.stats
        stats.received += 1
        size = len(data)
        stats.bytes_received += size
        imp = self.impairment
        trace = self.trace
        if imp.loss and self.rng.random() < imp.loss:
            stats.lost += 1
            if trace is not None:
                trace.append(("lost", ""))
            return []
        depart = now
        rate = imp.rate
        if rate is not None:
            depart = self._depart(size, now, rate)
            if depart < 0:
                return []
        arrive = depart + imp.delay
        if arrive < self._last_arrival:
            arrive = self._last_arrival
        self._last_arrival = arrive
        self._note_held(arrive - now)
        return [(arrive, data, False)]


def ip_payload_offset(packet: bytes) -> int:
    """Where an IP packet's payload begins (IPv4 IHL, IPv6's fixed 40 bytes), so that
    corruption leaves the IP header, and its checksum, intact: the damage is then for
    the transport's checksum (TCP's, UDP's) to find, as on a real link whose frame
    check missed it."""
    if not packet:
        return 0
    version = packet[0] >> 4
    if version == 4:
        return (packet[0] & 0x0F) * 4
    if version == 6:
        return 40
    return 0
