"""A running maximum (or minimum) over a sliding window, for BBR's bandwidth filter.

Kept exactly with a monotone deque: a sample that can no longer be the extreme of any
future window (an older, smaller one, for a maximum) is dropped as soon as a larger one
arrives. Each sample enters and leaves once, so an update costs O(1) amortised. (Linux's
`minmax` keeps three samples and only approximates; exactness costs nothing here.)
"""

from __future__ import annotations

from collections import deque


class WindowedMax:
    """The largest value seen over the last `window` units of time (rounds, or seconds)."""

    __slots__ = ("_samples", "window")

    def __init__(self, window: float) -> None:
        if not window > 0:
            raise ValueError(f"window must be positive, not {window!r}")
        self.window = window
        self._samples: deque[tuple[float, float]] = deque()  # (time, value), values falling

    def update(self, value: float, now: float) -> float:
        """Add `value` observed at `now` (times never go back); return the windowed max."""
        samples = self._samples
        while samples and samples[-1][1] <= value:
            samples.pop()
        samples.append((now, value))
        horizon = now - self.window
        while samples[0][0] <= horizon:
            samples.popleft()
        return samples[0][1]

    def get(self) -> float:
        """The current maximum (0.0 before any sample)."""
        return self._samples[0][1] if self._samples else 0.0

    def reset(self, value: float, now: float) -> None:
        """Forget every sample but this one."""
        self._samples.clear()
        self._samples.append((now, value))
