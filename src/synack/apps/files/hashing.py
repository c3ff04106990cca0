"""SHA-256 of files, off the event loop, and a cache so a served file is hashed once.

`hashlib` releases the GIL on large buffers, so hashing in a worker thread
overlaps the socket I/O on the event loop; it is the dominant CPU cost of a
transfer (about 0.6 s per GiB here).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections import OrderedDict
from typing import Any

from .protocol import CHUNK

# A hash is cached only for a file whose mtime is this much older than the
# moment hashing began. A write lands in a later clock tick than the mtime we
# keyed on, so it changes the key; only a write in the same tick as the last
# one could go unseen (the "racy" case git's index guards against the same way).
RACY_NS = 2_000_000_000

StatKey = tuple[int, int, int, int, int]


def stat_key(st: os.stat_result) -> StatKey:
    """What identifies one version of a file's contents, as far as stat can tell."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def hash_range(fd: int, start: int, end: int, sha: Any, buffer: bytearray | None = None) -> None:
    """Feed bytes ``[start, end)`` of `fd` to `sha`, one CHUNK at a time (constant memory).

    Uses positional reads, so it can run beside sendfile on the same descriptor.
    Raises `EOFError` if the file is shorter than `end`.
    """
    buf = buffer if buffer is not None else bytearray(min(CHUNK, max(end - start, 1)))
    view = memoryview(buf)
    pos = start
    while pos < end:
        want = min(len(buf), end - pos)
        n = os.preadv(fd, [view[:want]], pos)
        if n == 0:
            raise EOFError(f"file ended at byte {pos}, {end - pos} bytes short")
        sha.update(view[:n])
        pos += n


def file_digest(fd: int, size: int) -> str:
    """SHA-256 of the first `size` bytes of `fd`; closes `fd` (a duplicate the job owns)."""
    try:
        sha = hashlib.sha256()
        hash_range(fd, 0, size, sha)
        return sha.hexdigest()
    finally:
        os.close(fd)


class DigestCache:
    """SHA-256 of served files, keyed by `stat_key`, least recently used dropped first.

    Concurrent requests for the same uncached file share one hashing job.
    """

    def __init__(self, capacity: int = 4096) -> None:
        self._capacity = capacity
        self._done: OrderedDict[StatKey, str] = OrderedDict()
        self._running: dict[StatKey, asyncio.Future[str]] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._done)

    def known(self, st: os.stat_result) -> bool:
        return stat_key(st) in self._done

    async def digest(self, fd: int, st: os.stat_result) -> str:
        """The SHA-256 of the open file `fd`, whose `fstat` is `st`."""
        key = stat_key(st)
        if (found := self._done.get(key)) is not None:
            self._done.move_to_end(key)
            self.hits += 1
            return found
        running = self._running.get(key)
        if running is None:
            self.misses += 1
            started = time.time_ns()
            loop = asyncio.get_running_loop()
            # The job gets its own descriptor: a waiter may give up and close its own.
            running = loop.run_in_executor(None, file_digest, os.dup(fd), st.st_size)
            self._running[key] = running
            try:
                value = await asyncio.shield(running)
            finally:
                del self._running[key]
            if st.st_mtime_ns < started - RACY_NS:
                self._done[key] = value
                if len(self._done) > self._capacity:
                    self._done.popitem(last=False)
            return value
        self.hits += 1
        return await asyncio.shield(running)
