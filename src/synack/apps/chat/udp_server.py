"""The UDP chat server: a datagram relay over the same `Hub` as the TCP server.

There is no connection: a peer is an address that said hello and got a token.
Every request carries the token (a blind spoofer cannot guess it) and a ``seq``;
the server acknowledges each seq, carries out a retransmitted duplicate only
once, and forgets peers that stay silent for `peer_timeout` seconds. Datagrams
to a peer carry the peer's own ``seq`` so it can spot loss, duplicates and
reordering. See docs/PROTOCOL.md §3.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import deque

from synack import __version__
from synack.apps.chat import udp_protocol as udp
from synack.apps.chat.hub import Event, Hub, Member
from synack.apps.chat.protocol import (
    APP,
    MAX_DATAGRAM,
    ChatError,
    ErrorCode,
    check_text,
    field,
)
from synack.apps.chat.server import Log
from synack.wire.frame import PROTOCOL_VERSION

SEEN_WINDOW = 256  # request seqs remembered per peer, to drop duplicates
# Bytes the socket's send buffer may hold in asyncio's queue before datagrams are
# dropped: UDP has no flow control, so the server sheds load instead of queueing.
MAX_SEND_BACKLOG = 1 << 20


class UdpPeer(Member):
    """A peer known by its address and token; its datagrams get its own sequence numbers."""

    __slots__ = ("addr", "last_heard", "out_seq", "seen", "seen_order", "server", "token")

    def __init__(self, server: UdpChatServer, addr: tuple[str, int], now: float) -> None:
        super().__init__(udp.encode)
        self.server = server
        self.addr = addr
        self.token = secrets.token_hex(8)
        self.last_heard = now
        self.out_seq = 0
        self.seen: set[int] = set()
        self.seen_order: deque[int] = deque()

    def send(self, data: bytes) -> None:
        self.out_seq += 1
        self.server.sendto(udp.with_seq(data, self.out_seq), self.addr)

    def send_event(self, event: Event) -> None:
        self.send(udp.fit(event))

    def first_time(self, seq: int) -> bool:
        """True unless `seq` was seen recently (a retransmission or a network duplicate)."""
        if seq in self.seen:
            return False
        self.seen.add(seq)
        self.seen_order.append(seq)
        if len(self.seen_order) > SEEN_WINDOW:
            self.seen.discard(self.seen_order.popleft())
        return True


class UdpChatServer(asyncio.DatagramProtocol):
    """A UDP chat relay. Use as a library: ``await start()``, ``await close()``.

    `peer_timeout`: seconds of silence after which a peer is forgotten (clients
    send a keepalive every third of it). `max_peers` bounds the sessions held.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        peer_timeout: float = 30.0,
        max_peers: int = 1000,
        log: Log | None = None,
    ) -> None:
        if peer_timeout <= 0 or max_peers < 1:
            raise ValueError("peer_timeout and max_peers must be positive")
        self.host, self.port = host, port
        self.peer_timeout = peer_timeout
        self.max_peers = max_peers
        self.log = log
        self.hub = Hub()
        self.peers: dict[tuple[str, int], UdpPeer] = {}
        self.dropped_datagrams = 0
        self._transport: asyncio.DatagramTransport | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._handlers = {"quit": self._quit, "ping": self._ping}

    @property
    def address(self) -> tuple[str, int]:
        if self._transport is None:
            raise RuntimeError("server not started")
        host, port = self._transport.get_extra_info("sockname")[:2]
        return host, port

    async def start(self) -> tuple[str, int]:
        """Bind; returns the (host, port) bound. Raises OSError as the OS does."""
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, local_addr=(self.host, self.port))
        self._sweeper = asyncio.create_task(self._sweep())
        return self.address

    async def close(self, message: str = "stopped by its operator") -> None:
        """Tell every peer "shutdown" (one datagram each; it may be lost) and unbind."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        for peer in list(self.peers.values()):
            peer.send_event({"op": "shutdown", "message": message})
        self.peers.clear()
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    async def serve_forever(self) -> None:
        await asyncio.Event().wait()

    # --- asyncio.DatagramProtocol ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check: 3.11's selector datagram transport does not subclass it.
        self._transport = transport  # type: ignore[assignment]

    def error_received(self, exc: Exception) -> None:
        # An ICMP error for an earlier datagram (a client that went away): its peer
        # will expire; nothing else to do, and no reason to stop serving others.
        pass

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        t = self._transport
        # Selector datagram transports have it; typeshed does not say so.
        if t is None or t.get_write_buffer_size() > MAX_SEND_BACKLOG:  # type: ignore[attr-defined]
            self.dropped_datagrams += 1
            return
        t.sendto(data, addr)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        now = time.monotonic()
        peer = self.peers.get(addr)
        proven: UdpPeer | None = None  # the peer, once this datagram carries its token
        try:
            request = udp.decode(data)
            if request.get("op") == "hello":
                self._hello(request, addr, now, len(data))
                return
            if peer is None or request.get("token") != peer.token:
                raise ChatError(ErrorCode.UNKNOWN_PEER, "no session for you here: join again")
            proven = peer
            peer.last_heard = now
            seq = request.get("seq")
            if isinstance(seq, int):
                self.sendto(udp.encode({"op": "ack", "seq": seq}), addr)
                if not peer.first_time(seq):
                    return
            op = request.get("op")
            handler = self._handlers.get(op) if isinstance(op, str) else None
            if handler is not None:
                handler(peer, request)
                return
            if op in ("say", "private"):
                self._check_relay(peer, request)
            self.hub.handle(peer, request)
        except ChatError as exc:
            if proven is not None:
                proven.send(udp.encode(exc.event()))
            else:
                self._refuse_unproven(exc, addr, len(data))

    def _refuse_unproven(self, exc: ChatError, addr: tuple[str, int], received: int) -> None:
        """Answer a datagram without a valid token with no more bytes than it had.

        Its source address may be forged: a reply larger than the datagram would make
        this server an amplifier aimed at whoever owns that address. The full error if
        it fits, else just its code, else nothing (docs/PROTOCOL.md §3.3).
        """
        for event in (exc.event(), {"op": "error", "code": str(exc.code)}):
            reply = udp.encode(event)
            if len(reply) <= received:
                self.sendto(reply, addr)
                return
        self.dropped_datagrams += 1

    def _hello(self, request: Event, addr: tuple[str, int], now: float, size: int) -> None:
        if size < MAX_DATAGRAM:
            # Padded hellos mean a forged source address never makes us send more bytes
            # than we received (no amplification); a real client always pads.
            self.dropped_datagrams += 1
            return
        peer = self.peers.get(addr)
        if peer is not None and peer.nick == request.get("nick"):
            peer.last_heard = now
            self._welcome(peer)  # our welcome was lost and the hello retransmitted
            return
        if request.get("app") != APP or request.get("version") != PROTOCOL_VERSION:
            raise ChatError(ErrorCode.VERSION, f"this server speaks {APP!r} version 1 over UDP")
        if peer is not None:
            self._forget(peer, "rejoined")
        if len(self.peers) >= self.max_peers:
            raise ChatError(ErrorCode.FULL, f"server full ({self.max_peers} peers)")
        peer = UdpPeer(self, addr, now)
        self.hub.admit(peer, request.get("nick"), request.get("room"))
        self.peers[addr] = peer
        self._welcome(peer)
        self._say(
            f"+ {addr[0]}:{addr[1]} {peer.nick} joined #{peer.room} (udp; {len(self.peers)} online)"
        )

    def _welcome(self, peer: UdpPeer) -> None:
        others = sorted(m.nick for m in self.hub.rooms.get(peer.room, {}).values() if m is not peer)
        peer.send_event(
            {
                "op": "welcome",
                "version": PROTOCOL_VERSION,
                "server": f"synack {__version__}",
                "nick": peer.nick,
                "room": peer.room,
                "members": others,
                "token": peer.token,
                "keepalive": self.peer_timeout / 3,
                "max_datagram": MAX_DATAGRAM,
            }
        )

    def _check_relay(self, peer: UdpPeer, request: Event) -> None:
        text = check_text(field(request, "text"))
        udp.check_relay(
            {"op": "private", "from": peer.nick, "to": str(request.get("to", "")), "text": text}
            if request.get("op") == "private"
            else {"op": "msg", "room": peer.room, "from": peer.nick, "text": text}
        )

    def _quit(self, peer: UdpPeer, request: Event) -> None:
        peer.send_event({"op": "bye"})
        self._forget(peer, "quit")

    def _ping(self, peer: UdpPeer, request: Event) -> None:
        pass  # the ack already answered it; last_heard is updated

    def _forget(self, peer: UdpPeer, reason: str) -> None:
        if self.peers.get(peer.addr) is peer:
            del self.peers[peer.addr]
        self.hub.remove(peer, reason)
        self._say(
            f"- {peer.addr[0]}:{peer.addr[1]} {peer.nick}: {reason} ({len(self.peers)} online)"
        )

    def _say(self, line: str) -> None:
        if self.log is not None:
            self.log(time.strftime("%H:%M:%S ") + line)

    async def _sweep(self) -> None:
        period = min(max(self.peer_timeout / 4, 0.05), 5.0)
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for peer in list(self.peers.values()):
                if now - peer.last_heard > self.peer_timeout:
                    peer.send_event(
                        {"op": "error", "code": str(ErrorCode.IDLE), "message": "silent too long"}
                    )
                    self._forget(peer, f"silent for more than {self.peer_timeout:g} s")
