"""UDP chat over real loopback datagrams: commands, size limits, expiry, and what UDP
does to datagrams (loss, duplication, reordering) as the client and server see it."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Self

import pytest

from bounded import run
from synack.apps.chat import ChatError, UdpChatClient, UdpChatServer
from synack.apps.chat.protocol import MAX_DATAGRAM

T = 3.0


class RawPeer(asyncio.DatagramProtocol):
    """A hand-driven UDP socket: send exact datagrams, receive them as dicts."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[tuple[dict[str, Any], tuple[str, int]]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport

    @classmethod
    async def open(cls, local_port: int = 0) -> Self:
        loop = asyncio.get_running_loop()
        _, peer = await loop.create_datagram_endpoint(cls, local_addr=("127.0.0.1", local_port))
        return peer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.inbox.put_nowait((json.loads(data), addr))

    def send(self, body: dict[str, Any] | bytes, addr: tuple[str, int]) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
        self.transport.sendto(data, addr)

    async def recv(self) -> dict[str, Any]:
        async with asyncio.timeout(T):
            return (await self.inbox.get())[0]

    async def until(self, op: str) -> dict[str, Any]:
        while (ev := await self.recv())["op"] != op:
            pass
        return ev

    @property
    def port(self) -> int:
        return int(self.transport.get_extra_info("sockname")[1])


def padded_hello(nick: str) -> bytes:
    hello = {"op": "hello", "app": "chat", "version": 1, "nick": nick, "pad": ""}
    hello["pad"] = " " * (MAX_DATAGRAM - len(json.dumps(hello, separators=(",", ":"))))
    return json.dumps(hello, separators=(",", ":")).encode()


async def raw_member(addr: tuple[str, int], nick: str) -> tuple[RawPeer, str]:
    peer = await RawPeer.open()
    peer.send(padded_hello(nick), addr)
    welcome = await peer.until("welcome")
    return peer, welcome["token"]


async def started(**kwargs: Any) -> tuple[UdpChatServer, tuple[str, int]]:
    server = UdpChatServer("127.0.0.1", 0, **kwargs)
    return server, await server.start()


async def client(addr: tuple[str, int], nick: str, room: str | None = None) -> UdpChatClient:
    c = UdpChatClient(addr[0], addr[1], nick, room=room, timeout=T)
    await c.connect()
    return c


@run
async def test_same_commands_as_tcp() -> None:
    server, addr = await started()
    alice = await client(addr, "alice")
    bob = await client(addr, "bob")
    assert (await alice.until("joined"))["nick"] == "bob"
    await alice.say("hi over udp")
    assert await bob.until("msg") == {
        "op": "msg",
        "room": "lobby",
        "from": "alice",
        "text": "hi over udp",
    }
    await bob.private("alice", "psst")
    assert (await alice.until("private"))["text"] == "psst"
    await bob.join("attic")
    assert (await alice.until("left"))["reason"] == "moved to #attic"
    await alice.rooms()
    assert (await alice.until("rooms"))["rooms"] == [
        {"room": "attic", "count": 1},
        {"room": "lobby", "count": 1},
    ]
    await alice.set_nick("alicia")
    assert (await alice.until("renamed"))["new"] == "alicia"
    await alice.private("nobody", "x")
    assert (await alice.until("error"))["code"] == "no-such-user"
    await alice.close()
    await bob.close()
    assert alice.lost_requests == 0 and alice.closed_reason == "quit"
    await server.close()


@run
async def test_oversized_message_refused_by_client_before_sending() -> None:
    server, addr = await started()
    alice = await client(addr, "alice")
    with pytest.raises(ChatError, match="too long for one datagram") as info:
        await alice.say("é" * 700)  # 700 characters, 1400 bytes of UTF-8
    assert info.value.code == "too-long"
    assert alice._seq == 0  # nothing was numbered, so nothing was sent
    await alice.close()
    await server.close()


@run
async def test_oversized_datagram_refused_by_server() -> None:
    server, addr = await started()
    peer, token = await raw_member(addr, "mallory")
    bob = await client(addr, "bob")
    peer.send({"op": "say", "text": "x" * 2000, "token": token, "seq": 1}, addr)
    err = await peer.until("error")
    assert err["code"] == "too-long" and "exceeds 1200" in err["message"]
    # just under the datagram limit, but the relayed form would not fit
    near = {"op": "say", "text": "y" * 1140, "token": token, "seq": 2}
    assert len(json.dumps(near, separators=(",", ":"))) <= MAX_DATAGRAM
    peer.send(near, addr)
    assert "too long for one datagram" in (await peer.until("error"))["message"]
    peer.send({"op": "say", "text": "ok", "token": token, "seq": 3}, addr)
    assert (await bob.until("msg"))["text"] == "ok"  # bob saw only the one that fits
    await bob.close()
    await server.close()


@run
async def test_duplicates_are_relayed_once_and_acked_every_time() -> None:
    server, addr = await started()
    peer, token = await raw_member(addr, "dup")
    bob = await client(addr, "bob")
    say = {"op": "say", "text": "once", "token": token, "seq": 7}
    peer.send(say, addr)
    peer.send(say, addr)  # a retransmission, or the network duplicating it
    assert await peer.until("ack") == {"op": "ack", "seq": 7}
    assert await peer.until("ack") == {"op": "ack", "seq": 7}
    peer.send({"op": "say", "text": "twice", "token": token, "seq": 8}, addr)
    assert (await bob.until("msg"))["text"] == "once"
    assert (await bob.until("msg"))["text"] == "twice"  # not "once" again
    await bob.close()
    await server.close()


@run
async def test_requests_need_the_session_token() -> None:
    server, addr = await started()
    peer, token = await raw_member(addr, "real")
    forger = await RawPeer.open()
    forger.send({"op": "say", "text": "spoof", "token": token, "seq": 1}, addr)  # wrong address
    assert (await forger.until("error"))["code"] == "unknown-peer"
    peer.send({"op": "say", "text": "spoof", "token": "0" * 16, "seq": 1}, addr)  # wrong token
    assert (await peer.until("error"))["code"] == "unknown-peer"
    await server.close()


@run
async def test_unpadded_hello_gets_no_answer() -> None:
    server, addr = await started()
    peer = await RawPeer.open()
    peer.send({"op": "hello", "app": "chat", "version": 1, "nick": "tiny"}, addr)
    peer.send(padded_hello("padded"), addr)
    welcome = await peer.recv()  # the first and only answer is to the padded hello
    assert welcome["op"] == "welcome" and welcome["nick"] == "padded"
    assert server.dropped_datagrams == 1
    await server.close()


@run
async def test_silent_peers_expire_and_keepalives_keep_clients() -> None:
    server, addr = await started(peer_timeout=0.4)
    silent, _ = await raw_member(addr, "silent")
    lively = await client(addr, "lively")  # keepalive every peer_timeout / 3
    err = await silent.until("error")
    assert err["code"] == "idle"
    left = await lively.until("left")
    assert left["nick"] == "silent" and "silent for more than 0.4 s" in left["reason"]
    await lively.who()
    assert (await lively.until("users"))["nicks"] == ["lively"]
    await lively.close()
    await server.close()


@run
async def test_full_server_and_taken_nick() -> None:
    server, addr = await started(max_peers=1)
    alice = await client(addr, "alice")
    with pytest.raises(Exception, match="server full") as info:
        await client(addr, "bob")
    assert getattr(info.value, "code", None) == "full"
    server.max_peers = 5
    with pytest.raises(Exception, match="taken"):
        await client(addr, "ALICE")
    await alice.close()
    await server.close()


# --- the client against a fake server that misbehaves as UDP may -----------------------------


class FakeServer(RawPeer):
    async def welcome(self, nick: str) -> tuple[str, int]:
        hello, addr = await asyncio.wait_for(self.inbox.get(), T)
        assert hello["op"] == "hello" and len(json.dumps(hello)) >= MAX_DATAGRAM - 20
        self.send({"op": "welcome", "nick": nick, "room": "lobby", "token": "t", "seq": 1}, addr)
        return addr

    async def request(self) -> dict[str, Any]:
        async with asyncio.timeout(T):
            return (await self.inbox.get())[0]


@run
async def test_client_reports_gaps_drops_duplicates_and_marks_late_arrivals() -> None:
    fake = await FakeServer.open()
    c = UdpChatClient("127.0.0.1", fake.port, "me", timeout=T)
    connecting = asyncio.create_task(c.connect())
    addr = await fake.welcome("me")
    await connecting
    msg = {"op": "msg", "room": "lobby", "from": "x"}
    fake.send({**msg, "text": "two", "seq": 2}, addr)
    fake.send({**msg, "text": "four", "seq": 4}, addr)  # 3 is missing...
    fake.send({**msg, "text": "four", "seq": 4}, addr)  # ...and 4 came twice
    fake.send({**msg, "text": "three", "seq": 3}, addr)  # ...and 3 turns up late
    events = [await c.recv(T) for _ in range(4)]
    assert events == [
        {**msg, "text": "two"},
        {"op": "gap", "missed": 1},
        {**msg, "text": "four"},
        {**msg, "text": "three", "late": True},
    ]
    fake.send({"op": "bye", "seq": 5}, addr)
    await c.close(timeout=T)


@run
async def test_client_resends_until_acked_and_waits_for_acks_before_quitting() -> None:
    fake = await FakeServer.open()
    c = UdpChatClient("127.0.0.1", fake.port, "me", timeout=T, rto=0.05)
    connecting = asyncio.create_task(c.connect())
    addr = await fake.welcome("me")
    await connecting
    await c.say("are you there")
    first = await fake.request()
    second = await fake.request()  # no ack yet, so it came again
    assert first == second and first["op"] == "say" and first["token"] == "t"
    closing = asyncio.create_task(c.close(timeout=T))
    third = await fake.request()
    assert third == first  # close() does not quit while a message is unacknowledged
    fake.send({"op": "ack", "seq": first["seq"]}, addr)
    while (req := await fake.request())["op"] != "quit":
        assert req == first  # resends in flight when the ack arrived
    fake.send({"op": "ack", "seq": req["seq"]}, addr)
    fake.send({"op": "bye", "seq": 2}, addr)
    await closing
    assert c.closed_reason == "quit" and c.lost_requests == 0


@run
async def test_client_gives_up_on_a_request_and_says_so() -> None:
    fake = await FakeServer.open()
    c = UdpChatClient("127.0.0.1", fake.port, "me", timeout=T, rto=0.02, max_tries=4)
    connecting = asyncio.create_task(c.connect())
    await fake.welcome("me")
    await connecting
    await c.say("into the void")
    err = await c.until("error", timeout=T)
    assert err["code"] == "lost" and "after 4 tries" in err["message"]
    assert c.lost_requests == 1
    sent = [await fake.request() for _ in range(4)]
    assert all(r == sent[0] for r in sent)  # the same request, four times
    c._transport.close()  # type: ignore[union-attr]


@run
async def test_client_notices_the_server_is_gone() -> None:
    server, addr = await started()
    c = await client(addr, "me")
    server._transport.close()  # type: ignore[union-attr]  # no shutdown notice: just gone
    await c.say("hello?")  # the kernel answers with ICMP port unreachable
    while await c.recv(T) is not None:
        pass
    assert c.closed_reason == "the server is gone (connection refused)"
    await c.close()
