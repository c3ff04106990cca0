"""Handing copies on at the times a `Lane` chose, on an asyncio loop.

Copies that keep their order leave a `Lane` with non-decreasing times (jitter never
reorders), so they wait in a plain FIFO; only reordered copies need a heap. One
`call_at` timer per direction is armed for the earliest of the two heads and
re-armed only when that moves, and each firing hands on everything that is due,
so a busy direction costs one timer wake-up per batch, not one per datagram.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque
from collections.abc import Callable
from typing import Any

from synack.apps.netem.impair import MAX_IN_FLIGHT, LaneStats

# send(data, destination) -> True if handed on, False if it could not be
Send = Callable[[bytes, Any], bool]


class Outbox:
    """The copies of one direction waiting for their time."""

    def __init__(self, loop: asyncio.AbstractEventLoop, send: Send, stats: LaneStats) -> None:
        self._loop = loop
        self._send = send
        self._stats = stats
        self._fifo: deque[tuple[float, bytes, Any]] = deque()
        self._held: list[tuple[float, int, bytes, Any]] = []
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._closed = False

    def __len__(self) -> int:
        return len(self._fifo) + len(self._held)

    def put(self, when: float, data: bytes, dest: Any, reordered: bool) -> None:
        if self._closed:
            self._stats.unsent += 1
            return
        if len(self) >= MAX_IN_FLIGHT:
            self._stats.overflow += 1
            return
        if reordered:
            heapq.heappush(self._held, (when, next(self._seq), data, dest))
        elif (
            not self._fifo
            and when <= self._loop.time()
            and not (self._held and self._held[0][0] <= when)
        ):
            self._hand_on(data, dest)
            return
        else:
            self._fifo.append((when, data, dest))
        self._arm()

    def _hand_on(self, data: bytes, dest: Any) -> None:
        stats = self._stats
        if self._send(data, dest):
            stats.passed += 1
            stats.bytes_passed += len(data)
        else:
            stats.errors += 1

    def _next(self) -> float | None:
        fifo, held = self._fifo, self._held
        if fifo and held:
            return min(fifo[0][0], held[0][0])
        if fifo:
            return fifo[0][0]
        if held:
            return held[0][0]
        return None

    def _arm(self) -> None:
        when = self._next()
        if when is None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            return
        if self._timer is not None:
            if self._timer_at == when:
                return
            self._timer.cancel()
        self._timer_at = when
        self._timer = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._timer = None
        now = self._loop.time()
        fifo, held = self._fifo, self._held
        # Bounded: at most what is queued now (sending cannot add to this outbox).
        for _ in range(len(fifo) + len(held)):
            if held and held[0][0] <= now and (not fifo or held[0][0] < fifo[0][0]):
                _when, _n, data, dest = heapq.heappop(held)
            elif fifo and fifo[0][0] <= now:
                _when, data, dest = fifo.popleft()
            else:
                break
            self._hand_on(data, dest)
        self._arm()

    def close(self) -> int:
        """Stop: what is still held is counted as unsent and dropped (as netem does
        when its qdisc is deleted). Returns that number."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        left = len(self)
        self._stats.unsent += left
        self._fifo.clear()
        self._held.clear()
        return left
