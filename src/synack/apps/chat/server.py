"""The TCP chat server: many clients on one event loop, framed or plain text.

Each accepted connection is sniffed by its first bytes (``frame.sniff``): a synack
client sends the MAGIC preamble and speaks frames; anyone else (nc, telnet) gets a
nickname prompt and plain text lines. Both kinds meet in the same `Hub`.

Fan-out is the hot path. A member's outgoing bytes are queued and written once per
event-loop turn, joined into one ``write`` (one system call per member per turn,
not one per message). Room broadcasts are queued as ranges of the room's batch for
the turn (see `hub.Batch`), so a message costs the same for a room of 2 or of 100,
and members hearing the same range share one joined copy. A member whose transport buffer still holds more than
`max_queue` bytes after that is too slow to keep up: it is disconnected instead of
holding the room back or growing memory without bound.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any

from synack import transport as seam
from synack.apps.chat.commands import HELP, CommandError, parse
from synack.apps.chat.hub import Batch, Encoder, Event, Hub, Member, Segment
from synack.apps.chat.protocol import (
    APP,
    DEFAULT_ROOM,
    MAX_FRAME,
    ChatError,
    ErrorCode,
)
from synack.apps.chat.render import render
from synack.wire.frame import (
    MAGIC,
    PROTOCOL_VERSION,
    FrameDecoder,
    FrameError,
    Message,
    OversizedFrame,
    TruncatedFrame,
    encode_message,
    sniff,
)

READ_SIZE = 1 << 18
CLOSE_GRACE = 5.0  # seconds a kicked peer has to read its error before the socket is dropped
MAX_LINE = 8192  # bytes in one line-mode line
LINE_PROMPT = b"synack chat. Your nickname? (letters, digits, '-', '_', '.')\r\n"

if TYPE_CHECKING:
    from synack.apps.chat.cluster import Cluster
    from synack.apps.chat.cluster import Settings as ClusterSettings
    from synack.apps.chat.web import WebChat

Log = Callable[[str], None]


def encode_line(event: Event) -> bytes:
    """A server event as a line of text for nc/telnet users (CRLF, as NVT expects)."""
    text = render(event)
    return b"" if text is None else text.replace("\n", "\r\n").encode("utf-8") + b"\r\n"


class Closed(Exception):
    """Ends a connection's read loop with a reason for the log and the room."""


def ending(exc: BaseException) -> str:
    """Why a connection's task ended, for the log and the room."""
    if isinstance(exc, Closed):
        return str(exc)
    if isinstance(exc, OSError):
        return f"connection lost ({exc.strerror or type(exc).__name__})"
    return "server shutting down"  # cancelled


class Peer(Member):
    """One user's connection, whatever carries it: the outgoing queue written once per
    loop turn, the deadlines, the requests. `Connection` (a TCP or Unix stream) and the
    web chat's `WebPeer` (a WebSocket) say how bytes leave and how it closes."""

    __slots__ = (
        "accepted",
        "addr",
        "dirty",
        "done",
        "last_heard",
        "mode",
        "pending",
        "segment",
        "server",
    )

    def __init__(self, server: ChatServer, encoder: Encoder, addr: str) -> None:
        super().__init__(encoder)
        self.server = server
        self.addr = addr
        self.pending: list[bytes | Segment] = []
        # The open range of this turn's room batch; always the last item of `pending`.
        self.segment: Segment | None = None
        self.dirty = False
        self.done = False  # no more output will be queued or written
        self.mode = "?"
        self.accepted = self.last_heard = server.loop.time()

    # --- the carrier: each kind of peer's own ---------------------------------------------

    def write(self, data: bytes) -> int:
        """Hand `data` on without blocking; returns the bytes still waiting to leave."""
        raise NotImplementedError

    def close(self) -> None:
        """Close once what was handed on has left."""
        raise NotImplementedError

    def abort(self) -> None:
        """Drop the connection now."""
        raise NotImplementedError

    def uses_tls(self) -> bool:
        raise NotImplementedError

    # --- output -----------------------------------------------------------------

    def send(self, data: bytes) -> None:
        if self.done or not data:
            return
        pending = self.pending
        seg = self.segment
        if seg is not None and seg.batch.open:
            # Keep the order: the room's later broadcasts come after `data`.
            batch = seg.batch
            n = len(batch.events)
            if seg.start == n:  # nothing heard from it yet: move it after `data`
                pending.pop()
            else:
                seg.end = n
                seg = self.segment = Segment(batch, n)
            pending.append(data)
            pending.append(seg)
        else:
            self.segment = None
            pending.append(data)
        if not self.dirty:
            self.dirty = True
            self.server.mark_dirty(self)

    def join_batch(self, batch: Batch) -> None:
        if self.done:
            return
        self.segment = seg = Segment(batch, len(batch.events))
        self.pending.append(seg)
        if not self.dirty:
            self.dirty = True
            self.server.mark_dirty(self)

    def skip_batch(self, batch: Batch) -> None:
        seg = self.segment
        if seg is None or seg.batch is not batch:
            return
        n = len(batch.events)
        if seg.start == n:
            seg.start = n + 1  # a sender's own messages: no new range each time
        else:
            seg.end = n
            self.segment = seg = Segment(batch, n + 1)
            self.pending.append(seg)

    def leave_batch(self) -> None:
        seg = self.segment
        if seg is not None:
            seg.end = len(seg.batch.events)
            self.segment = None

    def flush(self) -> None:
        """Write everything queued in one call; disconnect if the peer is hopelessly behind."""
        self.dirty = False
        pending = self.pending
        seg = self.segment
        self.segment = None
        if self.done or not pending:
            pending.clear()
            return
        encoder = self.encoder
        parts = [p.data(encoder) if isinstance(p, Segment) else p for p in pending]
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        pending.clear()
        if seg is not None and seg.batch.open:
            # Written before the turn ended (a kick, a quit): still hear the rest of it.
            self.join_batch(seg.batch)
        if data and self.write(data) > self.server.max_queue:
            self.drop(f"too slow: fell behind by more than {self.server.max_queue} bytes")

    def kick(self, reason: str, code: ErrorCode) -> None:
        """Disconnect now: tell the peer why, tell the room, log it."""
        if self.done:
            return
        self.send(self.encoder({"op": "error", "code": str(code), "message": reason}))
        self.flush()
        self.server.dropped(self, reason)
        self.done = True
        self.close()  # after the queued error is written...
        # ...unless the peer never reads it: then do not hold the socket forever.
        self.server.loop.call_later(CLOSE_GRACE, self.abort)

    def drop(self, reason: str) -> None:
        """Disconnect a reader too slow for its room at once, telling it nothing (its
        queue is the problem: an error would wait behind it); tell the room, log it."""
        if self.done:
            return
        self.server.dropped(self, reason)
        self.done = True
        self.abort()

    # --- requests -------------------------------------------------------------------------

    def request(self, request: Event) -> Awaitable[None] | None:
        """One request of the protocol (PROTOCOL.md §2.3): a hello first, then the rest.

        What it returns (the hub's, for a request that waits) is awaited before the next.
        """
        if request.get("op") == "quit":
            raise Closed("quit")
        if self.key:
            return self.server.hub.handle(self, request)
        return self.hello(request)

    def hello(self, request: Event) -> Awaitable[None] | None:
        server = self.server
        try:
            if request.get("op") != "hello":
                raise ChatError(ErrorCode.BAD_REQUEST, "the first message must be 'hello'")
            if request.get("app") != APP or request.get("version") != PROTOCOL_VERSION:
                raise ChatError(
                    ErrorCode.VERSION,
                    f"this server speaks {APP!r} version {PROTOCOL_VERSION}, "
                    f"not {request.get('app')!r} version {request.get('version')!r}",
                )
            if server.cluster is not None:
                claim = server.cluster.admit(self, request.get("nick"), request.get("room"))
                return self.admit_after(claim)
            welcome = server.hub.admit(self, request.get("nick"), request.get("room"))
        except ChatError as exc:
            self.kick(exc.message, exc.code)
            return None
        welcome["idle_timeout"] = server.idle_timeout
        self.send_event(welcome)
        server.admitted(self)
        return None

    async def admit_after(self, admission: Awaitable[Event], *, typed: bool = False) -> None:
        """An admission that waits for the cluster's claim on the nickname."""
        try:
            welcome = await admission
        except ChatError as exc:
            if typed:
                self.send(f"! {exc.message}; try another:\r\n".encode())
            else:
                self.kick(exc.message, exc.code)
            return
        if self.done:  # it left while the claim was under way
            self.server.hub.remove(self, "connection closed")
            return
        if not typed:
            welcome["idle_timeout"] = self.server.idle_timeout
        self.send_event(welcome)
        self.server.admitted(self)

    def typed(self, line: str) -> Awaitable[None] | None:
        """A line a person typed (nc, the web page): a slash command or words to say."""
        try:
            request = parse(line)
        except CommandError as exc:
            self.send_event(ChatError(ErrorCode.BAD_REQUEST, str(exc)).event())
            return None
        if request["op"] == "help":
            self.send_event({"op": "help", "text": HELP})
            return None
        return self.request(request)


class Connection(Peer):
    """One stream connection (TCP, TLS or Unix): framed or line mode, told by its first bytes."""

    __slots__ = ("reader", "writer")

    def __init__(
        self, server: ChatServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        super().__init__(server, encode_message, seam.peer_name(writer))
        self.reader = reader
        self.writer = writer

    def write(self, data: bytes) -> int:
        transport = self.writer.transport
        if transport.is_closing():
            return 0
        transport.write(data)
        return transport.get_write_buffer_size()

    def close(self) -> None:
        self.writer.close()

    def abort(self) -> None:
        self.writer.transport.abort()

    def uses_tls(self) -> bool:
        return self.writer.get_extra_info("ssl_object") is not None

    # --- input ------------------------------------------------------------------------

    async def read(self) -> bytes:
        data = await self.reader.read(READ_SIZE)
        self.last_heard = self.server.loop.time()
        return data

    async def run(self) -> None:
        await (await self.start())

    async def start(self) -> Coroutine[Any, Any, None]:
        """Tell a framed peer from a line-mode one; returns the read loop to run.

        Returned, not awaited here, so that this frame (and the first bytes) is freed
        while the connection is held: memory per idle connection is what limits scale.
        """
        server = self.server
        first = b""
        try:
            async with asyncio.timeout(server.sniff_timeout):
                while sniff(first) is None:
                    data = await self.read()
                    if not data:
                        raise Closed("closed before saying anything")
                    first += data
        except TimeoutError:
            pass  # a human at nc waits for a prompt before typing anything
        prompted = not first
        if prompted:
            # Silent past the grace time: a person at nc, presumably. Prompt, but let the
            # first bytes still decide: a synack client's preamble is late when its first
            # segment was lost and resent, and it skips the prompt (PROTOCOL.md §2.1).
            self.mode = "line"
            self.encoder = encode_line
            self.send(LINE_PROMPT)
            while sniff(first) is None:
                data = await self.read()
                if not data:
                    raise Closed("connection closed")
                first += data
        if first.startswith(MAGIC):
            self.mode = "framed"
            self.encoder = encode_message
            return self.run_framed(first[len(MAGIC) :])
        self.mode = "line"
        self.encoder = encode_line
        return self.run_lines(first, prompted=prompted)

    async def run_framed(self, data: bytes) -> None:
        decoder = FrameDecoder(max_message=MAX_FRAME, max_blob=0)
        decoder.feed(data)
        reader, loop = self.reader, self.server.loop
        try:
            while more := self.handle_frames(decoder):
                if not isinstance(more, bool):
                    await more  # a request that waits (the cluster): the next comes after
                    if self.done:
                        return
                    continue
                # Read here, not in a helper coroutine: one frame less held per connection.
                data = await reader.read(READ_SIZE)
                self.last_heard = loop.time()
                if not data:
                    decoder.feed_eof()
                    raise Closed("connection closed")
                decoder.feed(data)
        except TruncatedFrame:
            raise Closed("connection lost in the middle of a frame") from None
        except FrameError as exc:
            kind = "oversized frame" if isinstance(exc, OversizedFrame) else "protocol error"
            self.kick(f"{kind}: {exc}", ErrorCode.BAD_REQUEST)

    def handle_frames(self, decoder: FrameDecoder) -> bool | Awaitable[None]:
        """Carry out every complete request; False once the connection is done, or what
        to await before the rest (a request that waits for the cluster).

        Not inline in `run_framed`: the last request would stay referenced while the
        connection waits for more.
        """
        for event in decoder:
            if not isinstance(event, Message):
                raise FrameError("chat carries no BLOB frames")
            pending = self.request(event.body)
            if self.done:
                return False
            if pending is not None:
                return pending
        return True

    async def run_lines(self, data: bytes, *, prompted: bool = False) -> None:
        if not prompted:
            self.send(LINE_PROMPT)
        buf = bytearray(data)
        while True:
            while (end := buf.find(b"\n")) >= 0:
                line = bytes(buf[:end]).rstrip(b"\r").decode("utf-8", "replace")
                del buf[: end + 1]
                pending = self.line(line)
                if pending is not None:
                    await pending  # it waits for the cluster: the next line comes after
                if self.done:
                    return
            if len(buf) > MAX_LINE:
                self.kick(f"line longer than {MAX_LINE} bytes", ErrorCode.TOO_LONG)
                return
            data = await self.read()
            if not data:
                raise Closed("connection closed")
            buf += data

    def line(self, line: str) -> Awaitable[None] | None:
        if not self.key:
            cluster = self.server.cluster
            if cluster is not None:
                claim = cluster.admit(self, line.strip(), DEFAULT_ROOM)
                return self.admit_after(claim, typed=True)
            try:
                welcome = self.server.hub.admit(self, line.strip(), DEFAULT_ROOM)
            except ChatError as exc:
                self.send(f"! {exc.message}; try another:\r\n".encode())
                return None
            self.send_event(welcome)
            self.server.admitted(self)
            return None
        return self.typed(line)


class ChatServer:
    """A chat server on one asyncio loop. Use as a library::

        server = ChatServer("127.0.0.1", 0)
        host, port = await server.start()
        ...
        await server.close()          # tells every client "shutdown", then closes

    `host` may be ``unix:PATH`` (a Unix socket, made with `unix_mode`, removed by
    `close`). With `tls` (`synack.transport.ServerTLS`) the listener speaks only TLS;
    with `tls` and `tls_port` too, `port` stays clear text (for nc) and `tls_port`
    speaks TLS, and both lead to the same rooms. `web` (host, port) adds the web chat's
    listener (`synack.apps.chat.web`, needs aiohttp): the page and its WebSocket, over
    https with `tls`, open to pages of its own origin and of `web_origins`.
    `max_clients` bounds open connections (extra ones get a "full" error);
    `idle_timeout` (seconds) disconnects peers that send nothing, synack clients
    ping to stay alive; `max_queue` (bytes) is the most a slow reader may have
    waiting before it is disconnected; `log` receives one line per connection.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        backlog: int = 128,
        max_clients: int = 1000,
        idle_timeout: float = 600.0,
        handshake_timeout: float = 10.0,
        max_queue: int = 1 << 20,
        sniff_timeout: float = 0.5,
        transport: str = seam.DEFAULT_TRANSPORT,
        tls: seam.ServerTLS | None = None,
        tls_port: int | None = None,
        unix_mode: int = seam.UNIX_MODE,
        web: tuple[str, int] | None = None,
        web_origins: Iterable[str] = (),
        redis: str | None = None,
        cluster: ClusterSettings | None = None,
        log: Log | None = None,
    ) -> None:
        if tls_port is not None and (tls is None or seam.is_unix(host)):
            raise ValueError("tls_port needs tls and a TCP host")
        if max_clients < 1 or idle_timeout <= 0 or max_queue < 1 or backlog < 1:
            raise ValueError("max_clients, idle_timeout, max_queue and backlog must be positive")
        self.host, self.port = host, port
        self.backlog = backlog
        self.max_clients = max_clients
        self.idle_timeout = idle_timeout
        self.handshake_timeout = handshake_timeout
        self.max_queue = max_queue
        self.sniff_timeout = sniff_timeout
        self.transport = transport
        self.tls = tls
        self.tls_port = tls_port
        self.unix_mode = unix_mode
        self.web_address = web
        self.web_origins = tuple(web_origins)
        self._web: WebChat | None = None
        self.redis = redis
        self.cluster_settings = cluster
        self.cluster: Cluster | None = None  # after `start`, with `redis`
        self.log = log
        self.hub = Hub(batching=True, on_batch=self._schedule)
        self.connections: set[Peer] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._dirty: list[Peer] = []
        self._flush_due = False
        self._listeners: list[seam.Server] = []
        self._sweeper: asyncio.Task[None] | None = None
        self._closing = False
        self.loop: asyncio.AbstractEventLoop

    @property
    def address(self) -> tuple[str, int]:
        """Where the server listens (after `start`); the clear-text port if there are two."""
        return self.addresses[0]

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """Each listener's (host, port): `port`'s, then `tls_port`'s if there is one."""
        if not self._listeners:
            raise RuntimeError("server not started")
        return [listener.addresses[0] for listener in self._listeners]

    async def start(self) -> tuple[str, int]:
        """Listen; returns the (host, port) actually bound. Raises OSError as the OS does."""
        self.loop = asyncio.get_running_loop()
        ports = [(self.port, self.tls if self.tls_port is None else None)]
        if self.tls_port is not None:
            ports.append((self.tls_port, self.tls))
        if self.redis is not None:
            # Imported only here: a server without --redis never loads redis-py.
            from synack.apps.chat.cluster import Cluster

            self.cluster = Cluster(self.redis, self.hub, self.cluster_settings, log=self.say)
            await self.cluster.start()  # raises cluster.Unreachable
        try:
            for port, tls in ports:
                listener = await seam.start_server(
                    self._accept,
                    self.host,
                    port,
                    transport=self.transport,
                    backlog=self.backlog,
                    tls=tls,
                    on_tls_failure=self._tls_failed,
                    unix_mode=self.unix_mode,
                )
                self._listeners.append(listener)
            if self.web_address is not None:
                from synack.apps.chat.web import WebChat

                self._web = WebChat(self, *self.web_address, origins=self.web_origins)
                self.web_address = await self._web.start()
        except BaseException:
            for listener in self._listeners:
                listener.close()
            self._listeners.clear()
            if self.cluster is not None:
                await self.cluster.close()
            raise
        self._sweeper = asyncio.create_task(self._sweep())
        return self.address

    async def close(self, message: str = "stopped by its operator", timeout: float = 2.0) -> None:
        """Stop accepting, send every client a "shutdown" notice, close all connections."""
        if self._closing:
            return
        self._closing = True
        for listener in self._listeners:
            listener.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        notice = {"op": "shutdown", "message": message}
        for conn in list(self.connections):
            if conn.mode != "?":
                conn.send_event(notice)
            conn.flush()
            conn.done = True
            conn.close()
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=timeout)
            for conn in list(self.connections):
                conn.abort()  # peers that would not take the notice
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=timeout)
        for listener in self._listeners:
            await listener.wait_closed()
        if self._web is not None:
            await self._web.close()
        if self.cluster is not None:
            await self.cluster.close()  # the other servers hear its users are gone

    @property
    def web_url(self) -> str | None:
        """The web chat's page (after `start`), if the server has a web listener."""
        return None if self._web is None else self._web.url

    @property
    def closing(self) -> bool:
        return self._closing

    async def serve_forever(self) -> None:
        """Run until cancelled (the CLI cancels it on SIGINT/SIGTERM, then calls close)."""
        await asyncio.Event().wait()

    # --- connections -----------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._closing:
            writer.close()
            return
        seam.set_nodelay(writer, transport=self.transport)
        conn = Connection(self, reader, writer)
        if self.full:
            await self._refuse(conn)
            return
        self.hold(conn)
        reason = "connection closed"
        try:
            await (await conn.start())  # conn.run(), one coroutine frame lighter
        except (Closed, OSError, asyncio.CancelledError) as exc:
            # This task is the connection's top level: ending it is all cancelling asks,
            # and asyncio's streams would report a cancelled handler as an error.
            reason = ending(exc)
        finally:
            self.release(conn, reason)

    @property
    def full(self) -> bool:
        return len(self.connections) >= self.max_clients

    def hold(self, peer: Peer) -> None:
        """Count `peer` among the connections, served by the current task until `release`."""
        task = asyncio.current_task()
        assert task is not None
        self.connections.add(peer)
        self._tasks.add(task)

    def release(self, peer: Peer, reason: str) -> None:
        """`peer`'s task ends: a quitter hears `bye`; the room hears it left, once."""
        if not peer.done:
            if reason == "quit":
                peer.send_event({"op": "bye"})
                peer.flush()
            self.dropped(peer, reason)
            peer.done = True
            peer.close()
        self.connections.discard(peer)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.discard(task)

    async def _refuse(self, conn: Connection) -> None:
        """Tell an over-limit client why, in the form it understands, then hang up."""
        first = b""
        try:
            async with asyncio.timeout(self.sniff_timeout):
                while sniff(first) is None:
                    data = await conn.reader.read(len(MAGIC))
                    if not data:
                        break
                    first += data
        except (TimeoutError, OSError):
            pass
        if not first.startswith(MAGIC):
            conn.encoder = encode_line
        conn.kick(f"server full ({self.max_clients} connections); try again later", ErrorCode.FULL)
        self.say(f"! {conn.addr} refused: server full ({self.max_clients} connections)")

    def _tls_failed(self, peer: str, reason: str) -> None:
        if not self._closing:
            self.say(f"! {peer} TLS handshake failed: {reason}")

    def admitted(self, conn: Peer) -> None:
        tls = ", TLS" if conn.uses_tls() else ""
        self.say(
            f"+ {conn.addr} {conn.nick} joined #{conn.room} "
            f"({conn.mode}{tls}; {len(self.hub.members)} online)"
        )

    def dropped(self, conn: Peer, reason: str) -> None:
        """Forget `conn` everywhere and say so on the console (once)."""
        if conn.key:
            nick = conn.nick
            if not self._closing:
                self.hub.remove(conn, reason)
            else:
                self.hub.members.pop(conn.key, None)
            self.say(f"- {conn.addr} {nick}: {reason} ({len(self.hub.members)} online)")
        elif conn in self.connections and not self._closing:
            self.say(f"- {conn.addr} (no nickname): {reason}")

    def say(self, line: str) -> None:
        """One line on the server's console, timestamped."""
        if self.log is not None:
            self.log(time.strftime("%H:%M:%S ") + line)

    # --- output batching ------------------------------------------------------------------

    def mark_dirty(self, conn: Peer) -> None:
        self._dirty.append(conn)
        self._schedule()

    def _schedule(self) -> None:
        if not self._flush_due:
            self._flush_due = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_due = False
        # A flush can kick a slow member, whose "left" notice dirties others: loop until quiet.
        while True:
            self.hub.end_turn()
            if not self._dirty:
                break
            batch, self._dirty = self._dirty, []
            for conn in batch:
                conn.flush()

    # --- timeouts -------------------------------------------------------------------------

    async def _sweep(self) -> None:
        """One timer for all connections (not one per read): drop the silent ones."""
        period = min(max(min(self.idle_timeout, self.handshake_timeout) / 4, 0.05), 5.0)
        while True:
            await asyncio.sleep(period)
            now = self.loop.time()
            for conn in list(self.connections):
                if conn.done:
                    continue
                if conn.mode != "line" and not conn.key:
                    if now - conn.accepted > self.handshake_timeout:
                        conn.kick(f"no hello within {self.handshake_timeout:g} s", ErrorCode.IDLE)
                elif now - conn.last_heard > self.idle_timeout:
                    conn.kick(f"idle for more than {self.idle_timeout:g} s", ErrorCode.IDLE)
