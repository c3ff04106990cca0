"""The UDP chat client: the same async API as `ChatClient`, over datagrams.

UDP may lose, duplicate or reorder datagrams and has no flow control, so this
client numbers its requests, resends each until the server acknowledges it (a few
tries, then it reports that the request may not have arrived), sends keepalives so
the server keeps its session, and uses the server's per-peer numbers to drop
duplicates and report gaps (``{"op": "gap", "missed": N}``) and late arrivals
(``"late": true``). See docs/PROTOCOL.md §3.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import Any

from synack.apps.chat import udp_protocol as udp
from synack.apps.chat.client import (
    BaseChatClient,
    ChatRefused,
    ConnectionLost,
    check_request,
)
from synack.apps.chat.protocol import (
    APP,
    DEFAULT_ROOM,
    MAX_DATAGRAM,
    ChatError,
    ErrorCode,
)
from synack.errors import UserError
from synack.wire.frame import PROTOCOL_VERSION

Event = dict[str, Any]

RTO = 0.25  # seconds before a request without an ack is sent again
MAX_TRIES = 6  # sends of one request before it is reported as possibly lost
SEEN_WINDOW = 256
# Events that end the session when the server sends them.
_ENDINGS = {"bye": "quit", "shutdown": "the server shut down"}


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, client: UdpChatClient) -> None:
        self.client = client

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.client._received(data)

    def error_received(self, exc: Exception) -> None:
        self.client._failed(exc)


class UdpChatClient(BaseChatClient):
    """A chat session over UDP. Same methods as `ChatClient`; `close` waits for acks."""

    def __init__(
        self,
        host: str,
        port: int,
        nick: str,
        *,
        room: str | None = None,
        timeout: float = 5.0,
        rto: float = RTO,
        max_tries: int = MAX_TRIES,
    ) -> None:
        super().__init__(nick, room)
        self.host, self.port = host, port
        self.timeout = timeout
        self.rto = rto  # first resend after this long; then 2x, 3x... longer
        self.max_tries = max_tries
        self.lost_requests = 0
        self._transport: asyncio.DatagramTransport | None = None
        self._token = ""
        self._seq = 0
        self._unacked: dict[int, list[Any]] = {}  # seq -> [datagram, tries, next send time]
        self._expected = 1  # the next server seq
        self._seen: set[int] = set()
        self._seen_order: deque[int] = deque()
        self._keepalive = 10.0
        self._last_heard = self._last_sent = time.monotonic()
        self._reply: asyncio.Future[Event] | None = None
        self._timer: asyncio.Task[None] | None = None

    async def connect(self) -> Event:
        """Say hello until the server answers; returns the welcome event.

        Raises OSError (refused: nothing listens there), ChatRefused, UserError on timeout.
        """
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(
            lambda: _Endpoint(self), remote_addr=(self.host, self.port)
        )
        hello: Event = {
            "op": "hello",
            "app": APP,
            "version": PROTOCOL_VERSION,
            "nick": self.nick,
            "room": self.room or DEFAULT_ROOM,
        }
        base = len(udp.encode({**hello, "pad": ""}))
        hello["pad"] = " " * max(0, MAX_DATAGRAM - base)  # see the server: no amplification
        datagram = udp.encode(hello)
        self._reply = loop.create_future()
        try:
            async with asyncio.timeout(self.timeout):
                while True:
                    self._transport.sendto(datagram)
                    done, _ = await asyncio.wait({self._reply}, timeout=self.rto * 2)
                    if done:
                        reply = self._reply.result()
                        break
        except TimeoutError:
            self._transport.close()
            raise UserError(
                f"no answer from {self.host}:{self.port} over UDP in {self.timeout:g} s "
                "(is `synack chat serve --udp` running there?)"
            ) from None
        except OSError:
            self._transport.close()
            raise
        finally:
            self._reply = None
        if reply.get("op") == "error":
            self._transport.close()
            raise ChatRefused(str(reply.get("code")), str(reply.get("message")))
        self.nick, self.room = str(reply.get("nick")), str(reply.get("room"))
        self._token = str(reply.get("token"))
        seq = reply.pop("seq", 0)
        self._expected = seq + 1 if isinstance(seq, int) else 1
        keepalive = reply.get("keepalive")
        if isinstance(keepalive, int | float) and keepalive > 0:
            self._keepalive = float(keepalive)
        self._last_heard = time.monotonic()
        self._timer = asyncio.create_task(self._tick())
        return reply

    # --- sending --------------------------------------------------------------------

    async def send(self, request: Event) -> None:
        """Check and send one request; it is resent until acknowledged (or given up on)."""
        check_request(request)
        if self._transport is None or self.closed_reason is not None:
            raise ConnectionLost(self.closed_reason or "not connected")
        if request.get("op") == "say":
            udp.check_relay({"op": "msg", "room": self.room, "from": self.nick, **request})
        elif request.get("op") == "private":
            udp.check_relay({"op": "private", "from": self.nick, **request})
        self._seq += 1
        datagram = udp.encode({**request, "seq": self._seq, "token": self._token})
        if len(datagram) > MAX_DATAGRAM:
            raise ChatError(
                ErrorCode.TOO_LONG,
                f"request of {len(datagram)} bytes does not fit one {MAX_DATAGRAM}-byte datagram",
            )
        now = time.monotonic()
        self._unacked[self._seq] = [datagram, 1, now + self.rto]
        self._transmit(datagram, now)

    async def sync(self, timeout: float = 5.0) -> None:
        """Send a ping and wait until it is acknowledged (or given up on). The server
        handles requests in the order they arrive and answers each before it reads
        the next, so the answers to what was sent before are on their way first."""
        await self.send({"op": "ping"})
        seq = self._seq
        async with asyncio.timeout(timeout):
            while seq in self._unacked and self.closed_reason is None:
                await asyncio.sleep(self.rto / 8)

    def _transmit(self, datagram: bytes, now: float) -> None:
        assert self._transport is not None
        self._transport.sendto(datagram)
        self._last_sent = now

    async def _tick(self) -> None:
        """Resend what is unacknowledged, keep the session alive, notice a silent server."""
        while self.closed_reason is None:
            await asyncio.sleep(self.rto / 2)
            now = time.monotonic()
            for seq, entry in list(self._unacked.items()):
                datagram, tries, due = entry
                if now < due:
                    continue
                if tries >= self.max_tries:
                    del self._unacked[seq]
                    self.lost_requests += 1
                    self._deliver(
                        {
                            "op": "error",
                            "code": "lost",
                            "message": f"no acknowledgement after {self.max_tries} tries: "
                            "that request may not have arrived",
                        }
                    )
                    continue
                entry[1], entry[2] = tries + 1, now + self.rto * (tries + 1)
                self._transmit(datagram, now)
            if now - self._last_sent >= self._keepalive and self.closed_reason is None:
                with contextlib.suppress(ConnectionLost):
                    await self.send({"op": "ping"})
            if now - self._last_heard > 3 * self._keepalive:
                self._end(f"no word from the server for {now - self._last_heard:.0f} s")

    # --- receiving ----------------------------------------------------------------------

    def _received(self, data: bytes) -> None:
        try:
            event = udp.decode(data)
        except ChatError:
            return  # not ours or mangled: UDP carries no promise, drop it
        self._last_heard = time.monotonic()
        op = event.get("op")
        if self._reply is not None:
            if op in ("welcome", "error") and not self._reply.done():
                self._reply.set_result(event)
            return
        if op == "ack":
            self._unacked.pop(event.get("seq"), None)  # type: ignore[arg-type]
            return
        seq = event.pop("seq", None)
        if isinstance(seq, int):
            if seq in self._seen:
                return  # a duplicate
            self._seen.add(seq)
            self._seen_order.append(seq)
            if len(self._seen_order) > SEEN_WINDOW:
                self._seen.discard(self._seen_order.popleft())
            if seq > self._expected:
                self._deliver({"op": "gap", "missed": seq - self._expected})
            elif seq < self._expected:
                event["late"] = True
            self._expected = max(self._expected, seq + 1)
        self._deliver(event)
        if op in _ENDINGS:
            reason = _ENDINGS[str(op)]
            self._end(reason if op == "bye" else f"{reason} ({event.get('message')})")
        elif op == "error" and event.get("code") in (ErrorCode.IDLE, ErrorCode.UNKNOWN_PEER):
            why = event.get("message") or event.get("code")  # a short error has no message
            self._end(f"the server dropped this session ({why})")

    def _failed(self, exc: Exception) -> None:
        if self._reply is not None:
            if not self._reply.done():
                self._reply.set_exception(exc)
            return
        if isinstance(exc, ConnectionRefusedError):
            self._end("the server is gone (connection refused)")

    # --- closing --------------------------------------------------------------------------

    async def close(self, timeout: float = 5.0) -> None:
        """Wait (bounded) until every request is acknowledged, then quit. Idempotent."""
        if self._transport is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(deadline):
                while self._unacked and self.closed_reason is None:
                    await asyncio.sleep(self.rto / 4)
                if self.closed_reason is None:
                    await self.send({"op": "quit"})
                    while self.closed_reason is None:
                        await asyncio.sleep(self.rto / 4)
        self._end("quit")
        if self._timer is not None:
            self._timer.cancel()
        self._transport.close()
