"""Transfer progress: a rich bar with rate and ETA on a terminal, nothing otherwise."""

from __future__ import annotations

import os
from typing import IO, TYPE_CHECKING, Protocol

from .protocol import printable

# rich is imported only when a bar is shown: a transfer in a script or a pipe
# should not pay for loading it (tens of milliseconds) before its first byte.
if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import TaskID


class ProgressSink(Protocol):
    """What the client reports while it moves bytes; the library default shows nothing."""

    def start(self, total_bytes: int, files: int) -> None: ...

    def file(self, name: str) -> None: ...

    def advance(self, nbytes: int) -> None: ...

    def stop(self) -> None: ...


class NoProgress:
    def start(self, total_bytes: int, files: int) -> None:
        pass

    def file(self, name: str) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        pass

    def stop(self) -> None:
        pass


class BarProgress:
    """One bar for the whole transfer (a directory counts as its total size)."""

    def __init__(self, console: Console) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}", table_column=None),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._task: TaskID | None = None
        self._files = 0
        self._index = 0

    def start(self, total_bytes: int, files: int) -> None:
        self._files = files
        self._task = self._progress.add_task("", total=total_bytes)
        self._progress.start()

    def file(self, name: str) -> None:
        from rich.markup import escape

        self._index += 1
        if self._task is not None:
            name = printable(name)
            label = name if self._files <= 1 else f"[{self._index}/{self._files}] {name}"
            if len(label) > 40:
                label = "..." + label[-37:]
            self._progress.update(self._task, description=escape(label))

    def advance(self, nbytes: int) -> None:
        if self._task is not None:
            self._progress.update(self._task, advance=nbytes)

    def stop(self) -> None:
        self._progress.stop()


def for_stream(stream: IO[str]) -> ProgressSink:
    """A bar if `stream` is a terminal, else silence (so logs and pipes stay clean)."""
    if not _maybe_terminal(stream):
        return NoProgress()
    from rich.console import Console

    console = Console(file=stream)
    if not console.is_terminal:
        return NoProgress()
    return BarProgress(console)


def _maybe_terminal(stream: IO[str]) -> bool:
    """False when rich would certainly not see a terminal: no tty and nothing forcing one."""
    if os.environ.get("FORCE_COLOR") or os.environ.get("TTY_COMPATIBLE"):
        return True
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or file-less stream
        return False
