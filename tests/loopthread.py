"""Blocking tests on either transport: an event loop in a thread, and a blocking stream on it.

Synchronous tests (the CLI's, which run `main()` or wait on subprocesses) need
servers and clients that do not block the test's own thread. On the ``os``
transport a plain socket would do, but our TCP has no OS socket: its connections
live on an event loop. `LoopThread` runs such a loop; `BlockingStream` gives a
test ``sendall``/``recv``/``close`` over a connection made on it, for any
transport. Every call is bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from synack import transport as seam

T = TypeVar("T")

TIMEOUT = 5.0


def port_type(transport: str) -> socket.SocketKind:
    """The kind of OS socket whose port a transport's server takes: ours listens on a UDP
    port (so "port in use" and "nothing there" are about UDP ports)."""
    return socket.SOCK_STREAM if transport == "os" else socket.SOCK_DGRAM


def free_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """A port of `kind` that nothing on 127.0.0.1 holds right now."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LoopThread:
    """An event loop running in a daemon thread; `call` runs a coroutine on it and waits."""

    def __init__(self, timeout: float = TIMEOUT) -> None:
        self.timeout = timeout
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(self.timeout if timeout is None else timeout)

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(self.timeout)
        self.loop.close()


class BlockingStream:
    """A client connection on `transport`, used as a blocking socket is.

    ``recv`` returns b"" at the end of the stream, as ``socket.recv`` does.
    """

    def __init__(self, host: str, port: int, *, transport: str, timeout: float = TIMEOUT) -> None:
        self._thread = LoopThread(timeout)
        try:
            self.reader, self.writer = self._thread.call(
                seam.open_connection(host, port, transport=transport)
            )
        except BaseException:
            self._thread.stop()
            raise

    def sendall(self, data: bytes) -> None:
        async def send() -> None:
            self.writer.write(data)
            await self.writer.drain()

        self._thread.call(send())

    def recv(self, n: int) -> bytes:
        return self._thread.call(self.reader.read(n))

    def close(self) -> None:
        async def close() -> None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()

        if not self._thread.loop.is_closed():
            self._thread.call(close())
            self._thread.stop()

    def __enter__(self) -> BlockingStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
