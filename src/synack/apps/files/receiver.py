"""Receiving one file: into a partial file beside the destination, published only once verified.

Both directions use this (the client for ``get``, the server for ``put``), so
the guarantees are the same both ways:

* the bytes land in ``.NAME.synack-part`` in the destination directory, locked
  with ``flock`` so two transfers never write the same partial file;
* every byte is hashed, including a resumed prefix already on disk, and the
  SHA-256 of the whole file must equal the sender's before the partial file is
  renamed to its real name; a mismatch removes the partial file;
* an existing file is replaced only when `force` is given (the rename is a
  hard link that fails if the name exists, so even a race cannot clobber);
* an interrupted transfer leaves only the partial file, which ``--resume``
  continues.

Memory is constant (12 MiB per transfer at most): three buffers cycle between
the event loop, which fills them straight from the socket and writes them to
the file, and a hashing thread, so hashing overlaps the network and the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import os
import stat
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from synack import transport as seam

from .hashing import hash_range
from .pacing import Pacer
from .progress import NoProgress, ProgressSink
from .protocol import CHUNK, PART_SUFFIX, ConnectionClosed, ErrorCode, FilesError, from_os_error

# Buffers per transfer: one being filled from the socket while the hashing
# thread works through the others. 4 MiB each, so that the hand-offs between
# threads, which are dear in CPython, stay few (docs/benchmarks.md has the
# measurements behind these choices).
DEPTH = 3
BUFFER = 4 * CHUNK
_NAME_MAX = 255


def partial_name(name: str) -> str:
    """The partial file's name for destination `name` (hashed if it would be too long)."""
    part = f".{name}{PART_SUFFIX}"
    if len(os.fsencode(part)) <= _NAME_MAX:
        return part
    return f".{hashlib.sha256(os.fsencode(name)).hexdigest()[:32]}{PART_SUFFIX}"


def partial_path(final: str) -> str:
    head, name = os.path.split(final)
    return os.path.join(head, partial_name(name))


def partial_message(shown: str, size: int) -> str:
    """Why a transfer will not start over a partial file, and the two ways on."""
    part = partial_name(os.path.basename(shown))
    return (
        f"{shown}: an interrupted transfer left {size} bytes in {part}; "
        "add --resume to continue it, or --force to start over"
    )


class _Pipeline:
    """Write filled buffers at once and hash them in order in a worker thread.

    The write happens on the caller's thread, right after the socket filled
    the buffer, while the bytes are still in that CPU's cache; moving it to a
    thread of its own doubled the CPU time per GiB here (docs/benchmarks.md).
    Small transfers (`threaded` false) hash inline as well.
    """

    def __init__(self, fd: int, position: int, sha: Any, prefix: int, threaded: bool) -> None:
        self._fd = fd
        self._position = position
        self._sha = sha
        self._free: list[bytearray] = []
        self._buffers = 0
        self._inflight: deque[tuple[bytearray, Future[None]]] = deque()
        self._hasher: ThreadPoolExecutor | None = None
        self._prefix: Future[None] | None = None
        if threaded:
            self._hasher = ThreadPoolExecutor(1, thread_name_prefix="synack-hash")
            if prefix:
                self._prefix = self._hasher.submit(hash_range, fd, 0, prefix, sha)
        elif prefix:
            hash_range(fd, 0, prefix, sha)

    async def buffer(self, want: int) -> bytearray:
        """A buffer to fill; waits for the oldest one in flight when all are busy."""
        if self._free:
            return self._free.pop()
        if self._buffers < DEPTH or not self._inflight:
            self._buffers += 1
            return bytearray(min(BUFFER, max(want, 1)))
        buf, hashed = self._inflight.popleft()
        await _wait(hashed)
        return buf

    def submit(self, buf: bytearray, n: int) -> None:
        """Write the first `n` bytes of `buf` after the previous ones and queue them for hashing."""
        view = memoryview(buf)[:n]
        position = self._position
        self._position += n
        if self._hasher is None:
            self._sha.update(view)
            _write_all(self._fd, view, position)
            self._free.append(buf)
            return
        hashed = self._hasher.submit(self._sha.update, view)
        self._inflight.append((buf, hashed))
        _write_all(self._fd, view, position)

    async def drain(self) -> None:
        """Wait until every submitted buffer is hashed; raises the first error."""
        if self._prefix is not None:
            await _wait(self._prefix)
        while self._inflight:
            buf, hashed = self._inflight.popleft()
            await _wait(hashed)
            self._free.append(buf)

    async def settle(self) -> None:
        """Wait for every job to end, ignoring errors."""
        jobs = [hashed for _, hashed in self._inflight]
        if self._prefix is not None:
            jobs.append(self._prefix)
        self._inflight.clear()
        for job in jobs:
            with contextlib.suppress(OSError, EOFError):
                await _wait(job)

    def shutdown(self) -> None:
        if self._hasher is not None:
            self._hasher.shutdown(wait=True)


async def _wait(job: Future[None]) -> None:
    if not job.done():
        await asyncio.wrap_future(job)
    job.result()


def _write_all(fd: int, view: memoryview, position: int) -> None:
    while view:
        n = os.pwrite(fd, view, position)
        view = view[n:]
        position += n


class Receiver:
    """Receives the body of one file of `size` bytes into the destination `final`.

    `shown` names the file in messages (a wire path on the server, the local
    path on the client). Use: `open`, `receive`, `finish`; `aclose` always.
    """

    def __init__(
        self,
        final: str,
        size: int,
        *,
        shown: str,
        force: bool = False,
        resume: bool = False,
        fsync: bool = False,
    ) -> None:
        self.final = final
        self.partial = partial_path(final)
        self.size = size
        self.shown = shown
        self.force = force
        self.resume = resume
        self.fsync = fsync
        self.offset = 0
        # Body bytes not yet read from the stream (for a caller that must skip them).
        self.remaining = 0
        # True when --resume met a finished file of the right size: its bytes are
        # checked against the sender's SHA-256 instead of received again.
        self.verifying_existing = False
        self._fd: int | None = None
        self._sha = hashlib.sha256()
        self._pipeline: _Pipeline | None = None
        self.published = False
        self._receiving = False

    @property
    def kept(self) -> int:
        """Bytes in the partial file this transfer wrote to and left for ``--resume`` (0: none)."""
        if not self._receiving or self.published:
            return 0
        try:
            return os.stat(self.partial).st_size
        except OSError:
            return 0

    def open(self) -> int:
        """Claim the destination; returns the offset the sender should start from."""
        try:
            st: os.stat_result | None = os.lstat(self.final)
        except FileNotFoundError:
            st = None
        except OSError as exc:
            raise from_os_error(exc, self.shown) from None
        if st is not None:
            if stat.S_ISDIR(st.st_mode):
                raise FilesError(ErrorCode.IS_DIR, f"{self.shown}: is a directory")
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                raise FilesError(
                    ErrorCode.NOT_REGULAR, f"{self.shown}: exists and is not a regular file"
                )
            if not self.force:
                if self.resume and stat.S_ISREG(st.st_mode) and st.st_size == self.size:
                    return self._open_existing()
                raise FilesError(
                    ErrorCode.EXISTS, f"{self.shown}: already exists (use --force to overwrite)"
                )
        try:
            fd = os.open(self.partial, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o666)
        except OSError as exc:
            raise from_os_error(exc, self.shown) from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise FilesError(
                    ErrorCode.BUSY, f"{self.shown}: another transfer is writing this file"
                ) from None
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise FilesError(
                    ErrorCode.NOT_REGULAR, f"{self.shown}: partial file is not a regular file"
                )
            if st.st_size and not (self.resume or self.force):
                # What an interrupted transfer left is kept until the user says what to do.
                raise FilesError(ErrorCode.EXISTS, partial_message(self.shown, st.st_size))
            if self.resume and 0 < st.st_size <= self.size:
                self.offset = st.st_size
            elif st.st_size:
                os.ftruncate(fd, 0)
        except OSError as exc:
            os.close(fd)
            raise from_os_error(exc, self.shown) from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self.offset

    def _open_existing(self) -> int:
        try:
            self._fd = os.open(self.final, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError as exc:
            raise from_os_error(exc, self.shown) from None
        self.verifying_existing = True
        self.offset = self.size
        return self.offset

    async def receive(
        self,
        reader: asyncio.StreamReader,
        *,
        transport: str = seam.DEFAULT_TRANSPORT,
        timeout: float | None,
        pacer: Pacer | None = None,
        progress: ProgressSink | None = None,
        peer: str = "the peer",
    ) -> None:
        """Read the ``size - offset`` body bytes that follow a BLOB header in `reader`
        (which came from `transport`, whose bulk reads it uses)."""
        assert self._fd is not None, "open() first"
        pacer = pacer or Pacer()
        progress = progress or NoProgress()
        count = self.size - self.offset
        threaded = count > BUFFER or self.offset > CHUNK
        self._pipeline = _Pipeline(self._fd, self.offset, self._sha, self.offset, threaded)
        self._receiving = not self.verifying_existing
        remaining = self.remaining = count
        with seam.bulk_reader(reader, transport=transport) as bulk:
            while remaining:
                remaining = await self._receive_one(bulk, remaining, timeout, pacer, progress, peer)

    async def _receive_one(
        self,
        bulk: seam.BulkReader,
        remaining: int,
        timeout: float | None,
        pacer: Pacer,
        progress: ProgressSink,
        peer: str,
    ) -> int:
        """Fill one buffer (or what is left of the body) and hand it on; returns what remains."""
        pipe = self._pipeline
        assert pipe is not None
        buf = await self._guard(pipe.buffer(remaining))
        view = memoryview(buf)[: min(remaining, len(buf))]
        filled = 0
        try:
            while filled < len(view):
                want = pacer.allowance(len(view) - filled)
                try:
                    async with asyncio.timeout(timeout):
                        n = await bulk.readinto(view[filled : filled + want])
                except TimeoutError:
                    raise ConnectionClosed(
                        f"{peer} sent nothing for {timeout:g} s during {self.shown}"
                    ) from None
                except OSError as exc:
                    raise ConnectionClosed(
                        f"connection to {peer} lost: {exc.strerror or exc}"
                    ) from None
                if n == 0:
                    got = self.size - remaining + filled
                    raise ConnectionClosed(
                        f"{peer} closed the connection during {self.shown}"
                        f" ({got} of {self.size} bytes)"
                    )
                filled += n
                progress.advance(n)
                await pacer.spend(n)
        finally:
            # Whatever arrived is kept, even on failure: --resume starts after it.
            remaining -= filled
            self.remaining = remaining
            if filled:
                try:
                    pipe.submit(buf, filled)
                except OSError as exc:  # the disk is full, or failing
                    raise from_os_error(exc, self.shown) from None
        return remaining

    async def finish(self, expected: str) -> bool:
        """Check the whole file against the sender's SHA-256 and publish it.

        Returns True if the file was published, False if an existing file was
        found identical (``--resume`` over a finished transfer).
        """
        assert self._fd is not None, "open() first"
        if self._pipeline is None:  # nothing was received: only a prefix to hash
            threaded = self.offset > CHUNK
            self._pipeline = _Pipeline(self._fd, self.offset, self._sha, self.offset, threaded)
        await self._guard(self._pipeline.drain())
        actual = self._sha.hexdigest()
        if actual != expected:
            if self.verifying_existing:
                raise FilesError(
                    ErrorCode.EXISTS,
                    f"{self.shown}: already exists and differs from the source (use --force to overwrite)",
                )
            self._discard()
            raise FilesError(
                ErrorCode.CHECKSUM,
                f"{self.shown}: SHA-256 mismatch (expected {expected[:16]}..., got {actual[:16]}...); "
                "the partial file was removed",
            )
        if self.verifying_existing:
            return False
        try:
            if self.fsync:
                os.fsync(self._fd)
            self._publish()
            self.published = True
            if self.fsync:
                _fsync_dir(os.path.dirname(self.final) or ".")
        except OSError as exc:
            raise from_os_error(exc, self.shown) from None
        return True

    def _publish(self) -> None:
        if self.force:
            os.replace(self.partial, self.final)
            return
        try:
            os.link(self.partial, self.final)
        except FileExistsError:
            raise FilesError(
                ErrorCode.EXISTS,
                f"{self.shown}: appeared while it was being received; kept as {partial_name(os.path.basename(self.final))}",
            ) from None
        except OSError as exc:
            if exc.errno not in (
                errno.EPERM,
                errno.ENOTSUP,
                errno.EOPNOTSUPP,
                errno.EMLINK,
                errno.EXDEV,
            ):
                raise
            # No hard links on this filesystem: check, then rename (a narrow race remains).
            if os.path.lexists(self.final):
                raise FilesError(ErrorCode.EXISTS, f"{self.shown}: already exists") from None
            os.rename(self.partial, self.final)
            return
        os.unlink(self.partial)

    def _discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.partial)

    async def _guard(self, work: Any) -> Any:
        try:
            return await work
        except OSError as exc:
            raise from_os_error(exc, self.shown) from None
        except EOFError:
            # The partial file shrank under us while its prefix was being hashed.
            raise FilesError(
                ErrorCode.CHANGED, f"{self.shown}: partial file changed during resume"
            ) from None

    async def aclose(self) -> None:
        """Release the file; an unfinished partial file stays for ``--resume``."""
        if self._pipeline is not None:
            await self._pipeline.settle()
            self._pipeline.shutdown()
            self._pipeline = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
