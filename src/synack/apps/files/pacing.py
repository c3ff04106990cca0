"""An optional byte-rate limit (``--max-rate``), as a simple pacing clock.

Useful on a shared link, and in tests: a server slowed down this way is
caught mid-transfer deterministically, without sleeping in the test.
"""

from __future__ import annotations

import asyncio
import time


class Pacer:
    """Hands out byte allowances and waits so that the average rate stays at `rate` bytes/s."""

    def __init__(self, rate: int | None = None) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self._due = time.monotonic()

    def allowance(self, limit: int) -> int:
        """How many bytes to move next: `limit`, or less (about 50 ms worth) when paced."""
        if self.rate is None:
            return limit
        return max(1, min(limit, self.rate // 20))

    async def spend(self, nbytes: int) -> None:
        """Account for `nbytes` just moved; waits until the rate allows the next piece."""
        if self.rate is None or nbytes <= 0:
            return
        now = time.monotonic()
        self._due = max(self._due, now) + nbytes / self.rate
        if self._due > now:
            await asyncio.sleep(self._due - now)
