"""The sender's byte queue: queued and unacknowledged data, by sequence number.

A `bytearray` used as a FIFO (``+=`` at the end, ``del buf[:n]`` as ACKs come) is
compacted by CPython, copying every live byte, whenever it must grow after a front
deletion; with megabytes in flight that was tens of µs per segment. Here the bytes sit
in chunks of fixed capacity (doubling from a page up to `CHUNK_SIZE`): an append
copies into the last chunk's free room, an ACK only moves `seq` and drops the chunks
wholly behind it, and nothing queued is copied again. A read is a `memoryview` of
one chunk; only a range that crosses a chunk's end is joined. Chunks freed while no
view holds them are kept for the next appends until the buffer empties, so the memory
held stays at the most the buffer has held, as a `bytearray`'s allocation did: a bulk
sender reuses the same chunks and asks the allocator for nothing, and its heuristics
(glibc's moving mmap and trim thresholds) do not decide the cost.

Chunks never change size (the room is filled by slice assignment) and bytes once
queued are never written again, so a view handed out stays valid and unchanged
whatever is appended or released after it.

Sequence numbers are the connection's unwrapped ones (plain ints that keep counting
past 2**32), so a range here never wraps.
"""

from __future__ import annotations

import sys
from bisect import bisect_right

# Measured in docs/benchmarks.md ("Issue 11 point 6").
CHUNK_SIZE = 1024 * 1024
FIRST_CHUNK = 4096  # a connection that sends a little holds a little

Buffer = bytes | bytearray | memoryview


class SendBuffer:
    """Bytes [seq, end) of the stream, queued by `append`, freed by `release`."""

    __slots__ = ("_chunk_size", "_chunks", "_fill", "_spares", "_starts", "end", "seq")

    def __init__(self, seq: int = 0, chunk_size: int = CHUNK_SIZE) -> None:
        self.seq = seq  # the first byte still held
        self.end = seq  # one past the last byte queued
        self._starts: list[int] = []  # the sequence number of each chunk's first byte
        self._chunks: list[bytearray] = []  # all full but the last; bytes before seq freed
        self._fill = 0  # bytes queued in the last chunk
        self._spares: list[bytearray] = []  # freed chunks no view holds, for reuse
        self._chunk_size = chunk_size

    def __len__(self) -> int:
        return self.end - self.seq

    def append(self, data: Buffer) -> None:
        """Queue `data` (copied) after `end`."""
        n = len(data)
        if n == 0:
            return
        chunks = self._chunks
        if not chunks and n < FIRST_CHUNK < self._chunk_size:
            # An empty buffer and a small write (a request, a response): the loop below
            # would make the same first chunk.
            chunk = bytearray(FIRST_CHUNK)
            chunk[:n] = data
            self._starts.append(self.end)
            chunks.append(chunk)
            self._fill = n
            self.end += n
            return
        done = 0
        if chunks:
            tail = chunks[-1]
            fill = self._fill
            room = len(tail) - fill
            if n <= room:
                tail[fill : fill + n] = data
                self._fill = fill + n
                self.end += n
                return
            if room:
                tail[fill:] = memoryview(data)[:room]
                done = room
        view = memoryview(data)
        starts = self._starts
        start = self.end
        size = self._chunk_size
        capacity = len(chunks[-1]) if chunks else 0
        while done < n:
            left = n - done
            capacity = min(size, max(left, 2 * capacity, FIRST_CHUNK))
            k = min(left, capacity)
            if capacity == size and self._spares:
                chunk = self._spares.pop()
                chunk[:k] = view[done : done + k]
            elif k == capacity:
                chunk = bytearray(view[done : done + k])  # filled at once: no zeroing
            else:
                chunk = bytearray(capacity)
                chunk[:k] = view[done : done + k]
            starts.append(start + done)
            chunks.append(chunk)
            done += k
            self._fill = k
        self.end = start + n

    def release(self, upto: int) -> None:
        """Free the bytes before `upto` (acknowledged); beyond `end` frees everything."""
        if upto <= self.seq:
            return
        if upto >= self.end:
            self.clear()
            return
        self.seq = upto
        starts = self._starts
        chunks = self._chunks
        size = self._chunk_size
        spares = self._spares
        while len(starts) > 1 and starts[1] <= upto:
            del starts[0]
            old = chunks.pop(0)
            # Two references, `old` and getrefcount's argument: no view holds it.
            if len(old) == size and sys.getrefcount(old) == 2:
                spares.append(old)

    def clear(self) -> None:
        """Free every byte, and the memory with them: `end` stays, `seq` moves up to it."""
        self.seq = self.end
        self._starts.clear()
        self._chunks.clear()
        self._fill = 0
        self._spares.clear()

    def rebase(self, seq: int) -> None:
        """Number the bytes held from `seq` on (the ISS is chosen after queueing)."""
        delta = seq - self.seq
        self.seq = seq
        self.end += delta
        self._starts = [s + delta for s in self._starts]

    def view(self, seq: int, n: int) -> memoryview | bytes:
        """The `n` bytes from `seq`, which must lie in [`seq`, `end`): a view without a
        copy within one chunk, joined bytes across chunks."""
        if n <= 0:
            return b""
        starts = self._starts
        chunks = self._chunks
        i = bisect_right(starts, seq) - 1
        off = seq - starts[i]
        chunk = chunks[i]
        if off + n <= len(chunk):  # (reads stay below `end`: never the free room)
            return memoryview(chunk)[off : off + n]
        parts: list[memoryview] = []
        while n > 0:
            chunk = chunks[i]
            take = min(len(chunk) - off, n)
            parts.append(memoryview(chunk)[off : off + take])
            n -= take
            i += 1
            off = 0
        return b"".join(parts)

    def runs(self, seq: int, n: int, mss: int) -> list[memoryview | bytes]:
        """The `n` bytes from `seq` as consecutive pieces cut at `seq` + k * `mss`, for a
        burst of segments: views of whole segments within one chunk, and each segment
        that crosses a chunk's end joined alone. One view when no chunk's end is crossed."""
        starts = self._starts
        chunks = self._chunks
        i = bisect_right(starts, seq) - 1
        end = seq + n
        out: list[memoryview | bytes] = []
        while seq < end:
            first = starts[i]
            chunk = chunks[i]
            chunk_end = first + len(chunk)
            if end <= chunk_end:
                out.append(memoryview(chunk)[seq - first : end - first])
                break
            whole = (chunk_end - seq) // mss * mss
            if whole:
                out.append(memoryview(chunk)[seq - first : seq - first + whole])
                seq += whole
            if seq < chunk_end:
                k = min(mss, end - seq)
                out.append(self.view(seq, k))
                seq += k
            i += 1
            while i + 1 < len(starts) and starts[i + 1] <= seq:
                i += 1
        return out
