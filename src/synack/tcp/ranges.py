"""Sets of sequence-number ranges: the SACK scoreboard (sender) and SACK blocks (receiver).

Both sides of SACK keep "which stretches of the stream above the cumulative ACK
are held": the receiver to report them (RFC 2018), the sender to skip them when
retransmitting (RFC 6675). `RangeSet` keeps disjoint, non-adjacent half-open
ranges in two sorted lists, so lookups bisect and updates touch only the ranges
they merge.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator


class RangeSet:
    """Disjoint half-open ranges [start, end) of unwrapped sequence numbers."""

    __slots__ = ("ends", "starts", "total")

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.total = 0  # bytes covered

    def __bool__(self) -> bool:
        return bool(self.starts)

    def __len__(self) -> int:
        return len(self.starts)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return zip(self.starts, self.ends, strict=True)

    def clear(self) -> None:
        self.starts.clear()
        self.ends.clear()
        self.total = 0

    def add(self, start: int, end: int) -> int:
        """Cover [start, end); returns how many bytes were not covered before."""
        if end <= start:
            return 0
        starts = self.starts
        ends = self.ends
        if starts and start >= ends[-1]:
            # At or past the top (the next segment of a run, the newest SACK block):
            # the common case of both sides, without the bisects.
            if start == ends[-1]:
                ends[-1] = end
            else:
                starts.append(start)
                ends.append(end)
            self.total += end - start
            return end - start
        # First range that touches or follows `start`, last one that touches `end`.
        i = bisect_left(ends, start)
        j = bisect_right(starts, end)
        if i == j:
            starts.insert(i, start)
            ends.insert(i, end)
            self.total += end - start
            return end - start
        new_start = min(start, starts[i])
        new_end = max(end, ends[j - 1])
        before = 0
        for k in range(i, j):
            before += ends[k] - starts[k]
        starts[i:j] = [new_start]
        ends[i:j] = [new_end]
        gained = (new_end - new_start) - before
        self.total += gained
        return gained

    def trim_below(self, point: int) -> None:
        """Forget everything below `point` (the cumulative ACK moved up)."""
        starts = self.starts
        ends = self.ends
        k = bisect_right(ends, point)
        if k:
            for i in range(k):
                self.total -= ends[i] - starts[i]
            del starts[:k]
            del ends[:k]
        if starts and starts[0] < point:
            self.total -= point - starts[0]
            starts[0] = point

    def find(self, seq: int) -> tuple[int, int] | None:
        """The range containing `seq`, if any."""
        i = bisect_right(self.starts, seq) - 1
        if i >= 0 and seq < self.ends[i]:
            return self.starts[i], self.ends[i]
        return None

    def find_overlap(self, start: int, end: int) -> tuple[int, int] | None:
        """The first range sharing a byte with [start, end), if any."""
        i = bisect_right(self.ends, start)
        if i < len(self.starts) and self.starts[i] < end:
            return self.starts[i], self.ends[i]
        return None

    def next_gap(self, seq: int) -> int:
        """The first sequence number at or above `seq` that no range covers."""
        i = bisect_right(self.starts, seq) - 1
        if i >= 0 and seq < self.ends[i]:
            return self.ends[i]
        return seq

    def next_start(self, seq: int) -> int | None:
        """The start of the first range above `seq`, if any."""
        i = bisect_right(self.starts, seq)
        return self.starts[i] if i < len(self.starts) else None

    def covered(self, start: int, end: int) -> int:
        """How many bytes of [start, end) are covered."""
        if end <= start:
            return 0
        n = 0
        starts = self.starts
        ends = self.ends
        for i in range(bisect_right(ends, start), len(starts)):
            s = starts[i]
            if s >= end:
                break
            n += min(ends[i], end) - max(s, start)
        return n
