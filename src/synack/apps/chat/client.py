"""The TCP chat client as a small async library (the `synack chat join` console uses it).

    client = ChatClient("127.0.0.1", port, "alice", room="lobby")
    welcome = await client.connect()      # raises ChatRefused, ConnectionLost, OSError
    await client.say("hello")
    event = await client.recv()           # a dict such as {"op": "msg", "from": ..., "text": ...}
    await client.close()                  # quit cleanly: everything said before has arrived

Events are the JSON objects of docs/PROTOCOL.md §2, as dicts. They are read by a
background task into a queue, so a slow consumer never stalls the connection's
other work (keepalives), and nothing received is dropped before `recv` sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from synack import transport as seam
from synack.apps.chat.protocol import (
    APP,
    MAX_FRAME,
    ChatError,
    ErrorCode,
    check_nick,
    check_room,
    check_text,
    field,
)
from synack.errors import UserError
from synack.wire.frame import (
    MAGIC,
    PROTOCOL_VERSION,
    FrameDecoder,
    FrameError,
    FrameType,
    Message,
    TruncatedFrame,
    encode_message,
)

Event = dict[str, Any]
READ_SIZE = 1 << 16


class ChatRefused(UserError):
    """The server answered the hello with an error (nickname taken, server full...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class ConnectionLost(UserError):
    """The server went away, or stopped speaking the protocol."""


def _check_who(request: Event) -> None:
    if request.get("room") is not None:
        check_room(request["room"])


# What a client checks before sending, so the user hears about a mistake at once.
_CHECKS: dict[str, Any] = {
    "say": lambda r: check_text(field(r, "text")),
    "private": lambda r: (check_nick(field(r, "to")), check_text(field(r, "text"))),
    "join": lambda r: check_room(field(r, "room")),
    "nick": lambda r: check_nick(field(r, "nick")),
    "who": _check_who,
    "rooms": lambda r: None,
    "ping": lambda r: None,
    "quit": lambda r: None,
}


def check_request(request: Event) -> None:
    """Raise ChatError for a request the server would refuse anyway."""
    check = _CHECKS.get(request.get("op"))  # type: ignore[arg-type]
    if check is None:
        raise ChatError(ErrorCode.BAD_REQUEST, f"unknown op {request.get('op')!r}")
    check(request)


class BaseChatClient:
    """What the TCP and UDP clients share: request helpers and the event queue."""

    def __init__(self, nick: str, room: str | None) -> None:
        self.nick = nick
        self.room = room
        self.closed_reason: str | None = None  # why the session ended, once it has
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()

    async def send(self, request: Event) -> None:
        raise NotImplementedError

    async def say(self, text: str) -> None:
        await self.send({"op": "say", "text": text})

    async def private(self, nick: str, text: str) -> None:
        await self.send({"op": "private", "to": nick, "text": text})

    async def join(self, room: str) -> None:
        await self.send({"op": "join", "room": room})

    async def who(self, room: str | None = None) -> None:
        await self.send({"op": "who"} if room is None else {"op": "who", "room": room})

    async def rooms(self) -> None:
        await self.send({"op": "rooms"})

    async def set_nick(self, nick: str) -> None:
        await self.send({"op": "nick", "nick": nick})

    async def close(self, timeout: float = 5.0) -> None:
        raise NotImplementedError

    async def sync(self, timeout: float = 5.0) -> None:
        """Return once the server has answered every request sent before this call.

        Its answers are then in the event queue (`take_ready`), so a caller can show
        something of its own after them, in order. Raises TimeoutError.
        """
        raise NotImplementedError

    def take_ready(self) -> list[Event]:
        """The events that have arrived and were not read yet, taken out of the queue."""
        ready: list[Event] = []
        while not self._queue.empty():
            event = self._queue.get_nowait()
            if event is None:  # the end: it stays, for `recv` to see
                self._queue.put_nowait(None)
                break
            ready.append(event)
        return ready

    def _deliver(self, event: Event) -> None:
        op = event.get("op")
        if op == "joined" and event.get("nick") == self.nick:
            self.room = str(event.get("room"))
        elif op == "renamed" and event.get("old") == self.nick:
            self.nick = str(event.get("new"))
        if op != "pong":
            self._queue.put_nowait(event)

    def _end(self, reason: str) -> None:
        if self.closed_reason is None:
            self.closed_reason = reason
            self._queue.put_nowait(None)

    async def recv(self, timeout: float | None = None) -> Event | None:
        """The next event, or None once the session has ended (see `closed_reason`)."""
        async with asyncio.timeout(timeout):
            event = await self._queue.get()
        if event is None:
            self._queue.put_nowait(None)  # every later recv sees the end too
        return event

    async def events(self) -> AsyncIterator[Event]:
        while (event := await self.recv()) is not None:
            yield event

    async def until(self, op: str, timeout: float = 5.0, **fields: Any) -> Event:
        """Skip events until one with this `op` (and these field values) arrives.

        Raises TimeoutError, or ConnectionLost if the session ends first.
        """
        async with asyncio.timeout(timeout):
            while True:
                event = await self.recv()
                if event is None:
                    raise ConnectionLost(self.closed_reason or "connection closed")
                if event.get("op") == op and all(event.get(k) == v for k, v in fields.items()):
                    return event


class ChatClient(BaseChatClient):
    """One connection to a chat server, as an async API.

    Requests (`say`, `join`, `private`, `who`, `rooms`, `set_nick`) return once sent;
    answers and everything else the server says arrive through `recv`/`events`.
    Local checks raise `ChatError` before anything is sent.
    """

    def __init__(
        self,
        host: str,
        port: int,
        nick: str,
        *,
        room: str | None = None,
        transport: str = seam.DEFAULT_TRANSPORT,
        tls: seam.ClientTLS | None = None,
        timeout: float = 10.0,
    ) -> None:
        super().__init__(nick, room)
        self.host, self.port = host, port
        self.transport = transport
        self.tls = tls
        self.timeout = timeout
        self._writer: asyncio.StreamWriter | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._quitting = False
        # One future per ping in flight, oldest first; each pong settles the oldest.
        self._pongs: deque[asyncio.Future[None]] = deque()

    @property
    def where(self) -> str:
        """The server's address as the user wrote it (``HOST:PORT``, ``unix:PATH``)."""
        return seam.format_address(self.host, self.port)

    async def connect(self) -> Event:
        """Connect and say hello; returns the welcome event.

        Raises OSError (refused, unreachable), ChatRefused (nickname taken...),
        ConnectionLost (not a chat server, or it hung up), UserError on timeout,
        `synack.transport.TLSError` when TLS (`tls=`) fails or the server fails its check.
        """
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await seam.open_connection(
                    self.host, self.port, transport=self.transport, tls=self.tls
                )
        except TimeoutError:
            raise UserError(f"cannot connect to {self.where}: timed out") from None
        self._writer = writer
        seam.set_nodelay(writer, transport=self.transport)
        hello: Event = {"op": "hello", "app": APP, "version": PROTOCOL_VERSION, "nick": self.nick}
        if self.room is not None:
            hello["room"] = self.room
        decoder = FrameDecoder(max_message=MAX_FRAME, max_blob=0)
        try:
            writer.write(MAGIC + encode_message(hello))
            async with asyncio.timeout(self.timeout):
                await self._skip_prompt(reader, decoder)
                reply = await self._read_event(reader, decoder)
        except TimeoutError:
            writer.close()
            raise ConnectionLost(
                f"{self.where} did not answer the hello (is it a synack chat server?)"
            ) from None
        except ConnectionResetError:
            writer.close()
            raise ConnectionLost(
                f"{self.where} reset the connection during the hello{self._tls_hint()}"
            ) from None
        except (OSError, ConnectionLost):
            writer.close()
            raise
        if reply is None:
            writer.close()
            raise ConnectionLost(
                f"{self.where} closed the connection during the hello{self._tls_hint()}"
            )
        if reply.get("op") == "error":
            writer.close()
            raise ChatRefused(str(reply.get("code")), str(reply.get("message")))
        if reply.get("op") != "welcome":
            writer.close()
            raise ConnectionLost(f"unexpected answer to hello: {reply.get('op')!r}")
        self.nick, self.room = str(reply.get("nick")), str(reply.get("room"))
        self._tasks.append(asyncio.create_task(self._read_loop(reader, decoder)))
        idle = reply.get("idle_timeout")
        if isinstance(idle, int | float) and idle > 0:
            self._tasks.append(asyncio.create_task(self._keepalive(idle / 3)))
        return reply

    def _tls_hint(self) -> str:
        """A TLS-only server cuts off a clear-text hello at once: say what may be wrong."""
        return (
            ""
            if self.tls is not None
            else " (a TLS-only server does this to clear text: try --tls)"
        )

    async def _skip_prompt(self, reader: asyncio.StreamReader, decoder: FrameDecoder) -> None:
        """Skip the line-mode prompt a server sends first when our preamble reached it after
        its grace time (a lost segment, resent; PROTOCOL.md §2.1). A frame begins with its
        type byte, a text line never does; one line at most is skipped."""
        first = await reader.read(1)
        if first and first[0] not in (FrameType.MESSAGE, FrameType.BLOB):
            try:
                await reader.readuntil(b"\n")
            except asyncio.IncompleteReadError:
                pass  # the end of the stream: reading on reports it
            except asyncio.LimitOverrunError:
                raise ConnectionLost("the server broke the protocol: text, not frames") from None
            return
        decoder.feed(first)

    async def _read_event(
        self, reader: asyncio.StreamReader, decoder: FrameDecoder
    ) -> Event | None:
        try:
            while True:
                event = decoder.next_event()
                if isinstance(event, Message):
                    return event.body
                if event is not None:
                    raise FrameError("unexpected BLOB frame")
                data = await reader.read(READ_SIZE)
                if not data:
                    decoder.feed_eof()
                    return None
                decoder.feed(data)
        except TruncatedFrame:
            raise ConnectionLost("the server's connection ended in the middle of a frame") from None
        except FrameError as exc:
            raise ConnectionLost(f"the server broke the protocol: {exc}") from None

    async def _read_loop(self, reader: asyncio.StreamReader, decoder: FrameDecoder) -> None:
        reason = "the server closed the connection"
        try:
            while (event := await self._read_event(reader, decoder)) is not None:
                self._deliver(event)
                if event.get("op") == "bye":
                    reason = "quit"
                elif event.get("op") == "shutdown":
                    reason = f"the server shut down ({event.get('message')})"
        except ConnectionLost as exc:
            reason = str(exc)
        except OSError as exc:
            reason = f"lost the connection to the server ({exc.strerror or exc})"
        finally:
            self._end(reason)
            while self._pongs:  # no pong will come now: release whoever waits
                pong = self._pongs.popleft()
                if not pong.done():
                    pong.set_result(None)
            for task in self._tasks:
                if task is not asyncio.current_task():
                    task.cancel()

    async def _keepalive(self, period: float) -> None:
        while True:
            await asyncio.sleep(period)
            with contextlib.suppress(ConnectionLost):
                await self.send({"op": "ping"})

    # --- requests ---------------------------------------------------------------

    async def send(self, request: Event) -> None:
        """Check and send one request (any op of docs/PROTOCOL.md §2.2)."""
        check_request(request)
        writer = self._writer
        if writer is None or self.closed_reason is not None or writer.is_closing():
            raise ConnectionLost(self.closed_reason or "not connected")
        if request.get("op") == "ping":
            # Before the write: the pong may be read while drain() waits.
            self._pongs.append(asyncio.get_running_loop().create_future())
        writer.write(encode_message(request))
        try:
            await writer.drain()
        except OSError as exc:
            raise ConnectionLost(
                f"lost the connection to the server ({exc.strerror or exc})"
            ) from None

    async def sync(self, timeout: float = 5.0) -> None:
        """Send a ping and wait for its pong: the server answers requests in order (§2.3)."""
        await self.send({"op": "ping"})
        pong = self._pongs[-1] if self._pongs else None
        if pong is not None:
            async with asyncio.timeout(timeout):
                await asyncio.shield(pong)

    def _deliver(self, event: Event) -> None:
        if event.get("op") == "pong" and self._pongs:
            pong = self._pongs.popleft()
            if not pong.done():
                pong.set_result(None)
        super()._deliver(event)

    async def close(self, timeout: float = 5.0) -> None:
        """Quit: the server answers "bye" after everything sent before, then hangs up.

        Events that arrive meanwhile stay readable through `recv`. Idempotent.
        """
        writer = self._writer
        if writer is None:
            return
        if self.closed_reason is None and not self._quitting:
            self._quitting = True
            with contextlib.suppress(ConnectionLost):
                await self.send({"op": "quit"})
        reader_task = self._tasks[0] if self._tasks else None
        if reader_task is not None:
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.shield(reader_task)
            except TimeoutError:
                pass
        for task in self._tasks:
            task.cancel()
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
