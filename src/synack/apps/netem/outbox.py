"""Handing copies on at the times a `Lane` chose, on an asyncio loop.

Copies that keep their order leave a `Lane` with non-decreasing times (jitter never
reorders), so they wait in a plain FIFO; only reordered copies need a heap. One
`call_at` timer per direction is armed for the earliest of the two heads and
re-armed only when that moves, and each firing hands on everything that is due,
so a busy direction costs one timer wake-up per batch, not one per datagram.

Copies are handed on in batches too: consecutive copies for one destination go to
`send` in one list, which a UDP socket can send with one system call (GSO). Copies
due at once when `put` takes them wait in a list until the caller's `flush`, so a
whole read's worth leaves together.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque
from collections.abc import Callable
from typing import Any

from synack.apps.netem.impair import MAX_IN_FLIGHT, LaneStats

# send(copies, destination) -> (how many were handed on, their bytes); the others
# could not be (counted as errors).
Send = Callable[[list[bytes], Any], tuple[int, int]]


class Outbox:
    """The copies of one direction waiting for their time."""

    def __init__(self, loop: asyncio.AbstractEventLoop, send: Send, stats: LaneStats) -> None:
        self._loop = loop
        self._send = send
        self._stats = stats
        self._fifo: deque[tuple[float, bytes, Any]] = deque()
        self._held: list[tuple[float, int, bytes, Any]] = []
        self._due: list[tuple[bytes, Any]] = []  # due at once, waiting for flush()
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._closed = False

    def __len__(self) -> int:
        return len(self._fifo) + len(self._held) + len(self._due)

    def put(self, when: float, data: bytes, dest: Any, reordered: bool) -> None:
        """Take a copy to hand on at `when`; one due now waits for `flush`."""
        if self._closed:
            self._stats.unsent += 1
            return
        if len(self) >= MAX_IN_FLIGHT:
            self._stats.overflow += 1
            return
        fifo = self._fifo
        if reordered:
            heapq.heappush(self._held, (when, next(self._seq), data, dest))
        elif fifo:
            # Behind the FIFO's head, which the armed timer already covers.
            fifo.append((when, data, dest))
            return
        elif when <= self._loop.time() and not (self._held and self._held[0][0] <= when):
            self._due.append((data, dest))
            return
        else:
            fifo.append((when, data, dest))
        self._arm()

    def flush(self) -> None:
        """Hand on the copies `put` found due; call after each batch of puts."""
        if self._due:
            due, self._due = self._due, []
            self._hand_on(due)

    def _hand_on(self, copies: list[tuple[bytes, Any]]) -> None:
        """Send `copies` in order, each run for one destination in one call."""
        stats = self._stats
        send = self._send
        n = len(copies)
        i = 0
        while i < n:
            dest = copies[i][1]
            j = i + 1
            while j < n and copies[j][1] == dest:
                j += 1
            run = [data for data, _dest in copies[i:j]]
            handed, nbytes = send(run, dest)
            stats.passed += handed
            stats.bytes_passed += nbytes
            stats.errors += len(run) - handed
            i = j

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
        self.flush()
        now = self._loop.time()
        fifo, held = self._fifo, self._held
        due: list[tuple[bytes, Any]] = []
        # Bounded: at most what is queued now.
        for _ in range(len(fifo) + len(held)):
            if held and held[0][0] <= now and (not fifo or held[0][0] < fifo[0][0]):
                _when, _n, data, dest = heapq.heappop(held)
            elif fifo and fifo[0][0] <= now:
                _when, data, dest = fifo.popleft()
            else:
                break
            due.append((data, dest))
        self._hand_on(due)
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
        self._due.clear()
        return left
