"""Sending one file: the body by sendfile, the SHA-256 computed beside it in a thread.

Both directions use this (the server for ``get``, the client for ``put``).
The sender never reads the body into Python: the kernel copies it from the
page cache to the socket, while a worker thread hashes the same file with
positional reads (or the server's cache already knows the hash).
"""

from __future__ import annotations

import asyncio
import os
import stat
import time
from typing import IO

from .channel import Channel
from .hashing import DigestCache, file_digest, stat_key
from .pacing import Pacer
from .progress import NoProgress, ProgressSink
from .protocol import CHUNK, ErrorCode, FilesError, from_os_error

# Bytes per sendfile call: up to 8 MiB, so that the calls' fixed cost vanishes
# on a fast link; down to 256 KiB on a slow one, where each call must finish
# well within the peer timeout (a slow link is not a dead one) and progress
# should still move.
SLICE = 8 * CHUNK
MIN_SLICE = CHUNK // 4


class FileShrank(Exception):
    """The file ended before the announced size: the BLOB cannot be completed."""


class Source:
    """A regular file opened for sending; `shown` names it in messages."""

    def __init__(self, file: IO[bytes], st: os.stat_result, shown: str) -> None:
        self.file = file
        self.st = st
        self.shown = shown

    @property
    def size(self) -> int:
        return self.st.st_size

    @classmethod
    def open(cls, path: str, shown: str, *, expect: os.stat_result | None = None) -> Source:
        """Open `path` for reading; only a regular file is accepted.

        ``O_NONBLOCK`` keeps a FIFO swapped in at the last moment from blocking
        the open; ``O_NOFOLLOW`` refuses a symlink swapped in for the last
        component. If `expect` is given, the file must still be that inode.
        """
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
        if expect is not None:
            flags |= os.O_NOFOLLOW
        try:
            fd = os.open(path, flags)
        except OSError as exc:
            raise from_os_error(exc, shown) from None
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                raise FilesError(ErrorCode.IS_DIR, f"{shown}: is a directory")
            if not stat.S_ISREG(st.st_mode):
                raise FilesError(ErrorCode.NOT_REGULAR, f"{shown}: not a regular file")
            if expect is not None and (st.st_dev, st.st_ino) != (expect.st_dev, expect.st_ino):
                raise FilesError(ErrorCode.CHANGED, f"{shown}: replaced while being opened")
            return cls(open(fd, "rb", buffering=0, closefd=True), st, shown)
        except BaseException:
            os.close(fd)
            raise

    def digest(self, cache: DigestCache | None = None) -> asyncio.Future[str]:
        """Start hashing the whole file; the future is the hex SHA-256."""
        if cache is not None:
            return asyncio.ensure_future(cache.digest(self.file.fileno(), self.st))
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(None, file_digest, os.dup(self.file.fileno()), self.size)

    async def send(
        self,
        channel: Channel,
        offset: int,
        *,
        pacer: Pacer | None = None,
        progress: ProgressSink | None = None,
    ) -> None:
        """A BLOB of bytes ``[offset, size)``; raises `FileShrank` if the file came up short."""
        pacer = pacer or Pacer()
        progress = progress or NoProgress()
        channel.send_blob_header(self.size - offset)
        position = offset
        slice_size = CHUNK
        while position < self.size:
            step = min(pacer.allowance(slice_size), self.size - position)
            started = time.monotonic()
            sent = await channel.send_body(self.file, position, step)
            took = time.monotonic() - started
            if took < 0.1:
                slice_size = min(slice_size * 2, SLICE)
            elif took > 1.0:
                slice_size = max(slice_size // 2, MIN_SLICE)
            position += sent
            progress.advance(sent)
            if sent < step:
                raise FileShrank(f"{self.shown}: file shrank to {position} bytes while being sent")
            await pacer.spend(sent)

    def changed(self) -> bool:
        """Whether the file's contents may differ from when it was opened."""
        try:
            return stat_key(os.fstat(self.file.fileno())) != stat_key(self.st)
        except OSError:
            return True

    def close(self) -> None:
        self.file.close()
