"""The web chat: one HTTP listener that serves the chat page and its WebSocket.

A browser user is one more `Peer` of the `ChatServer`, in the same hub as the framed
and line-mode users: the same rooms, nicknames, commands, limits and slow-reader rule.
aiohttp carries it (a page and a WebSocket on one port, so the page needs no address
of its own to connect to, and one origin to check); it is imported only by a server
started with a web listener. Browsers speak the kernel's TCP, so the web listener is
always on the OS transport, whatever `--transport` the chat port uses.

The WebSocket carries JSON (docs/PROTOCOL.md §2.8): the requests of §2.3 from the
browser, one per message, and a ``line`` request for what a person typed, read by
`commands.parse` as line mode reads it; events to the browser as JSON lines, all those
of one loop turn in one message (one write per turn, as for stream peers).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
from collections.abc import Awaitable, Iterable
from importlib.resources import files
from pathlib import Path

from aiohttp import WSMsgType, web

from synack.apps.chat.hub import Event
from synack.apps.chat.protocol import MAX_FRAME, ChatError, ErrorCode
from synack.apps.chat.server import CLOSE_GRACE, ChatServer, Closed, Peer, ending
from synack.apps.common import listen_error
from synack.transport import format_address

STATIC = Path(str(files("synack.apps.chat") / "static"))
HEARTBEAT = 30.0  # seconds between pings: a browser that vanished is gone within two
# The page runs only its own script and style, and talks only to its own origin: even a
# message that slipped past the page's escaping could not load or run anything.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def encode_web(event: Event) -> bytes:
    """An event as one JSON line; a turn's lines go to the browser as one message."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


class WebPeer(Peer):
    """A browser's WebSocket. Output leaves through a task of its own (aiohttp's writes
    are coroutines); what waits for it counts toward the slow-reader limit."""

    __slots__ = ("closing", "outbox", "pump", "queued", "ready", "secure", "transport", "ws")

    def __init__(self, server: ChatServer, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.transport = request.transport
        peer = self.transport.get_extra_info("peername") if self.transport else None
        super().__init__(server, encode_web, format_address(*peer[:2]) if peer else "web:?")
        self.mode = "web"
        self.ws = ws
        self.secure = request.secure
        self.outbox: list[bytes] = []
        self.queued = 0
        self.closing = False
        self.ready = asyncio.Event()
        self.pump = asyncio.create_task(self._pump())

    def write(self, data: bytes) -> int:
        if self.closing or self.ws.closed:
            return 0
        self.outbox.append(data)
        self.queued += len(data)
        self.ready.set()
        transport = self.transport
        return self.queued + (0 if transport is None else transport.get_write_buffer_size())

    def close(self) -> None:
        self.closing = True
        self.ready.set()

    def abort(self) -> None:
        self.pump.cancel()
        if self.transport is not None:
            self.transport.abort()

    def uses_tls(self) -> bool:
        return bool(self.secure)

    async def _pump(self) -> None:
        """Send what `write` queued, joined; after `close`, the rest and a close frame."""
        ws = self.ws
        try:
            while True:
                await self.ready.wait()
                self.ready.clear()
                while self.outbox:
                    data = b"".join(self.outbox)
                    self.outbox.clear()
                    self.queued = 0
                    await ws.send_frame(data, WSMsgType.TEXT)
                if self.closing:
                    await ws.close()
                    return
        except (ConnectionError, RuntimeError):
            return  # the browser went away: the read side notices and says so

    async def run(self) -> None:
        """Read the browser's requests until it goes, quits or is dropped."""
        ws, loop = self.ws, self.server.loop
        while not self.done:
            msg = await ws.receive()
            self.last_heard = loop.time()
            if msg.type is WSMsgType.TEXT:
                pending = self.received(msg.data)
                if pending is not None:
                    await pending  # this request waits (the cluster): the next comes after
            elif msg.type is WSMsgType.BINARY:
                self.kick("binary messages are not part of the chat", ErrorCode.BAD_REQUEST)
            elif msg.type is WSMsgType.ERROR:
                raise Closed(f"protocol error: {msg.data}")
            else:  # CLOSE, CLOSING, CLOSED
                raise Closed("connection closed")

    def received(self, text: str) -> Awaitable[None] | None:
        try:
            request = json.loads(text)
        except ValueError:
            request = None
        if not isinstance(request, dict):
            self.kick("each message must be one JSON object", ErrorCode.BAD_REQUEST)
            return None
        if request.get("op") == "line" and self.key:
            line = request.get("text")
            if isinstance(line, str):
                return self.typed(line)
            self.send_event(ChatError(ErrorCode.BAD_REQUEST, "'line' needs 'text'").event())
            return None
        return self.request(request)


class WebChat:
    """The web listener of a `ChatServer`: the page at ``/``, the WebSocket at ``/ws``.

    A WebSocket is accepted from a page of this listener's own origin (the scheme and
    the Host the browser asked for) or of one of `origins` (a reverse proxy's public
    address), and from clients that send no Origin (programs, not pages: no other
    site can be speaking through them). On a loopback address the Host must name the
    loopback too (or an allowed origin's host): a remote site that points its own name
    at 127.0.0.1 (DNS rebinding) is refused.
    """

    def __init__(
        self, server: ChatServer, host: str, port: int, *, origins: Iterable[str] = ()
    ) -> None:
        self.server = server
        self.host, self.port = host, port
        self.origins = frozenset(_origin(o) for o in origins)
        self.origin_hosts = frozenset(_hostname(o.partition("://")[2]) for o in self.origins)
        self.scheme = "http" if server.tls is None else "https"
        self.loopback = _is_loopback(host)
        self._runner: web.AppRunner | None = None
        self.address: tuple[str, int] = (host, port)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{format_address(*self.address)}/"

    async def start(self) -> tuple[str, int]:
        app = web.Application()
        app[SERVER] = self.server
        app[WEB] = self
        app.router.add_get("/", _index)
        app.router.add_get("/ws", _websocket)
        app.router.add_static("/static/", STATIC)
        app.on_response_prepare.append(_headers)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=CLOSE_GRACE)
        await runner.setup()
        tls = self.server.tls
        site = web.TCPSite(
            runner,
            self.host,
            self.port,
            ssl_context=None if tls is None else tls.context,
            reuse_address=True,
        )
        try:
            await site.start()
        except BaseException as exc:
            await runner.cleanup()
            if isinstance(exc, OSError):
                raise listen_error(exc, self.host, self.port) from None
            raise
        self._runner = runner
        bound = runner.addresses[0]
        self.address = (bound[0], bound[1])
        return self.address

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def refusal(self, request: web.Request) -> str | None:
        """Why this WebSocket upgrade is refused, or None to accept it."""
        host = (request.headers.get("Host") or "").lower()
        name = _hostname(host)
        if self.loopback and not (_is_loopback(name) or name in self.origin_hosts):
            return f"Host {host!r} does not name this machine's loopback"
        origin = request.headers.get("Origin")
        if origin is None:
            return None
        origin = _origin(origin)
        if origin in self.origins or origin == f"{self.scheme}://{host}":
            return None
        return f"cross-site WebSocket from origin {origin!r}"


def _origin(text: str) -> str:
    return text.strip().rstrip("/").lower()


def _hostname(host: str) -> str:
    """The name in a Host header, without its port or an IPv6 literal's brackets."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


SERVER = web.AppKey("server", ChatServer)
WEB = web.AppKey("web", WebChat)


async def _headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)


async def _index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "index.html")


async def _websocket(request: web.Request) -> web.StreamResponse:
    server, chat = request.app[SERVER], request.app[WEB]
    refusal = chat.refusal(request)
    if refusal is not None:
        server.say(f"! {request.remote} refused: {refusal}")
        raise web.HTTPForbidden(text=refusal + "\n")
    if server.closing:
        raise web.HTTPServiceUnavailable(text="the chat server is shutting down\n")
    ws = web.WebSocketResponse(
        max_msg_size=MAX_FRAME, compress=False, heartbeat=HEARTBEAT, timeout=CLOSE_GRACE
    )
    await ws.prepare(request)
    peer = WebPeer(server, ws, request)
    if server.full:
        peer.kick(
            f"server full ({server.max_clients} connections); try again later", ErrorCode.FULL
        )
        server.say(f"! {peer.addr} refused: server full ({server.max_clients} connections)")
    else:
        server.hold(peer)
        reason = "connection closed"
        try:
            await peer.run()
        except (Closed, OSError, asyncio.CancelledError) as exc:
            reason = ending(exc)
        finally:
            server.release(peer, reason)
    # The pump sends what is left and the close frame; a peer that takes neither is cut.
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait({peer.pump}, timeout=CLOSE_GRACE)
    if not peer.pump.done():
        peer.abort()
    return ws
