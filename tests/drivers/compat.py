"""What the differential suites (`test_socket_compat`, `test_socketserver_compat`)
share: how an outcome is recorded, and a side run on a bounded thread."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

LIMIT = 10.0  # seconds any wait in a scenario may take


def outcome(call: Callable[[], Any]) -> tuple[Any, ...]:
    """("ok", value) or (exception class name, errno[, message for a socket timeout])."""
    try:
        value = call()
    except TimeoutError as exc:
        return ("TimeoutError", exc.errno, str(exc) if exc.errno is None else "")
    except Exception as exc:
        return (type(exc).__name__, getattr(exc, "errno", None))
    return ("ok", value)


class Background:
    """A function run on a thread, joined with a bound; its exception re-raised.
    `done` is set when it has returned or raised."""

    def __init__(self, target: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = threading.Event()

        def run() -> None:
            try:
                self.result = target()
            except BaseException as exc:
                self.error = exc
            finally:
                self.done.set()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def join(self) -> Any:
        self.thread.join(LIMIT)
        assert not self.thread.is_alive(), "background side did not finish"
        if self.error is not None:
            raise self.error
        return self.result
