"""The sender's byte queue: queued and unacknowledged data, by sequence number.

A `bytearray` used as a FIFO (``+=`` at the end, ``del buf[:n]`` as ACKs come) is
compacted by CPython, copying every live byte, whenever it must grow after a front
deletion; with megabytes in flight that was tens of µs per segment. Here the bytes sit
in chunks of at most `CHUNK_SIZE`: appends grow the last chunk, an ACK only moves
`seq` and drops the chunks wholly behind it, and nothing already queued is copied
again. A read is a `memoryview` of one chunk; only a range that crosses a chunk's end
is joined.

A view handed out keeps its chunk alive and unchanged: queued bytes are never written
again, and a chunk cannot be resized while viewed, so an append that finds its view
still held starts the next chunk instead.

Sequence numbers are the connection's unwrapped ones (plain ints that keep counting
past 2**32), so a range here never wraps.
"""

from __future__ import annotations

from bisect import bisect_right

# Measured in docs/benchmarks.md ("Issue 11 point 6"): large enough that a burst rarely
# crosses a chunk's end, small enough that an acknowledged head is freed soon.
CHUNK_SIZE = 256 * 1024

Buffer = bytes | bytearray | memoryview


class SendBuffer:
    """Bytes [seq, end) of the stream, queued by `append`, freed by `release`."""

    __slots__ = ("_chunk_size", "_chunks", "_starts", "end", "seq")

    def __init__(self, seq: int = 0, chunk_size: int = CHUNK_SIZE) -> None:
        self.seq = seq  # the first byte still held
        self.end = seq  # one past the last byte queued
        self._starts: list[int] = []  # the sequence number of each chunk's first byte
        self._chunks: list[bytearray] = []  # bytes before `seq` in the first are freed
        self._chunk_size = chunk_size

    def __len__(self) -> int:
        return self.end - self.seq

    def append(self, data: Buffer) -> None:
        """Queue `data` (copied) after `end`."""
        n = len(data)
        if n == 0:
            return
        size = self._chunk_size
        chunks = self._chunks
        done = 0
        if chunks:
            tail = chunks[-1]
            room = size - len(tail)
            try:
                if n <= room:
                    tail += data
                    self.end += n
                    return
                if room > 0:
                    tail += memoryview(data)[:room]
                    done = room
            except BufferError:
                pass  # a view of the tail is still held: it may not grow
        view = memoryview(data)
        starts = self._starts
        start = self.end
        while done < n:
            piece = bytearray(view[done : done + size])
            starts.append(start + done)
            chunks.append(piece)
            done += len(piece)
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
        while len(starts) > 1 and starts[1] <= upto:
            del starts[0]
            del chunks[0]

    def clear(self) -> None:
        """Free every byte: `end` stays, `seq` moves up to it."""
        self.seq = self.end
        self._starts.clear()
        self._chunks.clear()

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
        i = bisect_right(starts, seq) - 1
        chunk = self._chunks[i]
        off = seq - starts[i]
        if off + n <= len(chunk):
            return memoryview(chunk)[off : off + n]
        parts: list[memoryview] = []
        while n > 0:
            chunk = self._chunks[i]
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
