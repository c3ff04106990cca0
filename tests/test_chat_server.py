"""The TCP chat server and client library over real loopback connections.

Each test runs its own server on port 0 and waits for conditions (an event, an
end of stream) with bounded timeouts, never for time to pass. Tests that take
`transport` run on every transport (tests/conftest.py): the OS's TCP and ours.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import Any

import pytest

from bounded import run
from synack import transport as seam
from synack.apps.chat import ChatClient, ChatRefused, ChatServer, ConnectionLost
from synack.apps.chat.server import LINE_PROMPT
from synack.wire.frame import (
    HEADER,
    MAGIC,
    FrameDecoder,
    FrameType,
    Message,
    encode_message,
)

T = 3.0  # the bound on every wait


class Raw:
    """A hand-driven framed client, for what the real client would never send."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.decoder = FrameDecoder()

    @classmethod
    async def open(cls, port: int, transport: str, nick: str | None = None, **hello: Any) -> Raw:
        reader, writer = await seam.open_connection("127.0.0.1", port, transport=transport)
        raw = cls(reader, writer)
        writer.write(MAGIC)
        if nick is not None:
            raw.send({"op": "hello", "app": "chat", "version": 1, "nick": nick, **hello})
            welcome = await raw.event()
            assert welcome is not None and welcome["op"] == "welcome", welcome
        return raw

    def send(self, body: dict[str, Any]) -> None:
        self.writer.write(encode_message(body))

    async def event(self) -> dict[str, Any] | None:
        async with asyncio.timeout(T):
            while True:
                ev = self.decoder.next_event()
                if isinstance(ev, Message):
                    return ev.body
                data = await self.reader.read(65536)
                if not data:
                    return None
                self.decoder.feed(data)

    async def until(self, op: str) -> dict[str, Any]:
        while True:
            ev = await self.event()
            assert ev is not None, f"connection ended before {op!r}"
            if ev["op"] == op:
                return ev

    async def until_closed(self) -> list[dict[str, Any]]:
        events = []
        while (ev := await self.event()) is not None:
            events.append(ev)
        return events


class Log(list[str]):
    """The server's console lines, with a way to wait for one."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Event()

    def append(self, line: str) -> None:
        super().append(line)
        self.changed.set()

    async def wait_for(self, text: str) -> str:
        async with asyncio.timeout(T):
            while True:
                for line in self:
                    if text in line:
                        return line
                self.changed.clear()
                await self.changed.wait()


async def started(transport: str, **kwargs: Any) -> tuple[ChatServer, int, Log]:
    log = Log()
    server = ChatServer("127.0.0.1", 0, log=log.append, transport=transport, **kwargs)
    _, port = await server.start()
    return server, port, log


async def joined(port: int, nick: str, room: str | None = None, *, transport: str) -> ChatClient:
    client = ChatClient("127.0.0.1", port, nick, room=room, timeout=T, transport=transport)
    await client.connect()
    return client


async def connection(
    port: int, transport: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A bare connection to the server (a line-mode user, or one that says nothing)."""
    return await seam.open_connection("127.0.0.1", port, transport=transport)


# --- rooms, broadcast, private messages ---------------------------------------------------


@run
async def test_broadcast_reaches_the_room_only_and_not_the_sender(transport: str) -> None:
    server, port, _ = await started(transport)
    alice = await joined(port, "alice", transport=transport)
    bob = await joined(port, "bob", transport=transport)
    carol = await joined(port, "carol", room="kitchen", transport=transport)
    assert (await alice.until("joined"))["nick"] == "bob"
    await alice.say("hello lobby")
    await carol.say("hello kitchen")
    got = await bob.until("msg")
    assert got == {"op": "msg", "room": "lobby", "from": "alice", "text": "hello lobby"}
    # alice hears nothing of her own line nor of the kitchen: the next thing she gets is her /who
    await alice.who()
    assert await alice.recv(T) == {"op": "users", "room": "lobby", "nicks": ["alice", "bob"]}
    for c in (alice, bob, carol):
        await c.close()
    await server.close()


@run
async def test_join_leave_notices_who_and_rooms(transport: str) -> None:
    server, port, _ = await started(transport)
    alice = await joined(port, "alice", transport=transport)
    bob = await joined(port, "bob", transport=transport)
    await alice.until("joined", nick="bob")
    await bob.join("#Garden")
    assert await bob.until("joined") == {"op": "joined", "room": "garden", "nick": "bob"}
    assert bob.room == "garden"
    left = await alice.until("left")
    assert left == {"op": "left", "room": "lobby", "nick": "bob", "reason": "moved to #garden"}
    await alice.rooms()
    rooms = await alice.until("rooms")
    assert rooms["rooms"] == [{"room": "garden", "count": 1}, {"room": "lobby", "count": 1}]
    await alice.who("garden")
    assert (await alice.until("users"))["nicks"] == ["bob"]
    await bob.join("garden")
    assert "already in" in (await bob.until("error"))["message"]
    await bob.close()
    await alice.close()
    await server.close()


@run
async def test_many_requests_in_one_read_keep_every_members_order(transport: str) -> None:
    # One write, so the server handles them in one turn: broadcasts then share the room's
    # batch, and direct replies, moves between rooms and own messages must keep their places.
    server, port, _ = await started(transport)
    bob = await Raw.open(port, transport, "bob")
    alice = await Raw.open(port, transport, "alice")
    assert (await bob.until("joined"))["nick"] == "alice"
    requests: list[dict[str, Any]] = [
        {"op": "say", "text": "1"},
        {"op": "private", "to": "bob", "text": "p"},
        {"op": "say", "text": "2"},
        {"op": "who"},
        {"op": "join", "room": "garden"},
        {"op": "say", "text": "3"},  # garden: nobody hears it
        {"op": "join", "room": "lobby"},
        {"op": "say", "text": "4"},
        {"op": "ping"},
    ]
    alice.writer.write(b"".join(encode_message(r) for r in requests))
    heard = [await bob.event() for _ in range(6)]
    assert heard == [
        {"op": "msg", "room": "lobby", "from": "alice", "text": "1"},
        {"op": "private", "from": "alice", "to": "bob", "text": "p"},
        {"op": "msg", "room": "lobby", "from": "alice", "text": "2"},
        {"op": "left", "room": "lobby", "nick": "alice", "reason": "moved to #garden"},
        {"op": "joined", "room": "lobby", "nick": "alice"},
        {"op": "msg", "room": "lobby", "from": "alice", "text": "4"},
    ]
    replies = [await alice.event() for _ in range(5)]
    assert replies == [
        {"op": "sent", "to": "bob", "text": "p"},
        {"op": "users", "room": "lobby", "nicks": ["alice", "bob"]},
        {"op": "joined", "room": "garden", "nick": "alice"},
        {"op": "joined", "room": "lobby", "nick": "alice"},
        {"op": "pong"},
    ]
    bob.send({"op": "ping"})
    assert await bob.event() == {"op": "pong"}
    for raw in (alice, bob):
        raw.writer.close()
    await server.close()


@run
async def test_private_messages_and_unknown_recipient(transport: str) -> None:
    server, port, _ = await started(transport)
    alice = await joined(port, "alice", transport=transport)
    bob = await joined(port, "bob", room="elsewhere", transport=transport)
    await alice.private("BOB", "psst")  # nicknames match without regard to case
    assert await bob.until("private") == {
        "op": "private",
        "from": "alice",
        "to": "bob",
        "text": "psst",
    }
    await alice.private("nobody", "hi")
    err = await alice.until("error")
    assert err["code"] == "no-such-user"
    await alice.close()
    await bob.close()
    await server.close()


@run
async def test_nicknames_are_unique_regardless_of_case(transport: str) -> None:
    server, port, _ = await started(transport)
    alice = await joined(port, "alice", transport=transport)
    with pytest.raises(ChatRefused, match="taken") as info:
        await joined(port, "ALICE", transport=transport)
    assert info.value.code == "nick-taken"
    with pytest.raises(ChatRefused) as bad:
        await joined(port, "no spaces", transport=transport)
    assert bad.value.code == "bad-nick"
    bob = await joined(port, "bob", transport=transport)
    await bob.set_nick("Alice")
    assert (await bob.until("error"))["code"] == "nick-taken"
    await bob.set_nick("robert")
    assert await alice.until("renamed") == {
        "op": "renamed",
        "room": "lobby",
        "old": "bob",
        "new": "robert",
    }
    assert (await bob.until("renamed"))["new"] == "robert" and bob.nick == "robert"
    await alice.close()
    await bob.close()
    # the names are free again once their owners have gone
    again = await joined(port, "alice", transport=transport)
    await again.close()
    await server.close()


@run
async def test_empty_and_bad_messages_are_refused_to_their_sender(transport: str) -> None:
    server, port, _ = await started(transport)
    raw = await Raw.open(port, transport, "alice")
    bob = await joined(port, "bob", transport=transport)
    for text, code in [
        ("", "empty"),
        ("   \t", "empty"),
        ("a\x1b[2Jb", "bad-text"),
        (5, "bad-request"),
    ]:
        raw.send({"op": "say", "text": text})
        assert (await raw.until("error"))["code"] == code
    raw.send({"op": "dance"})
    assert (await raw.until("error"))["code"] == "bad-request"
    raw.send({"op": "say", "text": "fine"})
    assert (await bob.until("msg"))["text"] == "fine"  # bob saw only the good one
    await bob.close()
    await server.close()


# --- faults: one connection's trouble is no one else's -------------------------------------


@run
async def test_a_client_vanishing_mid_frame_harms_no_one(transport: str) -> None:
    server, port, log = await started(transport)
    alice = await joined(port, "alice", transport=transport)
    ghost = await Raw.open(port, transport, "ghost")
    await alice.until("joined", nick="ghost")
    frame = encode_message({"op": "say", "text": "never finished"})
    ghost.writer.write(frame[: len(frame) // 2])
    # Gone as a dying process goes when the TCP underneath closes for it: a FIN after the
    # bytes (the kernel's TCP does so for an abort too; ours resets on abort, as RFC 9293 does).
    ghost.writer.close()
    left = await alice.until("left")
    assert left["nick"] == "ghost" and "middle of a frame" in left["reason"]
    bob = await joined(port, "bob", transport=transport)
    await bob.say("still here")
    assert (await alice.until("msg"))["text"] == "still here"
    assert any("ghost" in line and "middle of a frame" in line for line in log)
    await alice.close()
    await bob.close()
    await server.close()


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (HEADER.pack(FrameType.MESSAGE, 1 << 40), "oversized"),
        (HEADER.pack(FrameType.MESSAGE, 2) + b"[]", "protocol error"),
        (HEADER.pack(9, 2) + b"{}", "protocol error"),
        (HEADER.pack(FrameType.BLOB, 3) + b"abc", "oversized"),
    ],
    ids=["oversized", "not-an-object", "unknown-type", "blob"],
)
@run
async def test_a_bad_frame_closes_that_connection_only(
    transport: str, bad: bytes, reason: str
) -> None:
    server, port, _ = await started(transport)
    alice = await joined(port, "alice", transport=transport)
    mallory = await Raw.open(port, transport, "mallory")
    await alice.until("joined", nick="mallory")
    mallory.writer.write(bad)
    events = await mallory.until_closed()
    assert events[-1]["op"] == "error" and events[-1]["code"] == "bad-request"
    assert (await alice.until("left"))["reason"].startswith(reason)
    bob = await joined(port, "bob", transport=transport)
    await alice.say("hi bob")
    assert (await bob.until("msg"))["text"] == "hi bob"
    await alice.close()
    await bob.close()
    await server.close()


@run
async def test_hello_must_come_first_and_match_the_version(transport: str) -> None:
    server, port, _ = await started(transport)
    raw = await Raw.open(port, transport)
    raw.send({"op": "say", "text": "hi"})
    assert [e["code"] for e in await raw.until_closed()] == ["bad-request"]
    raw = await Raw.open(port, transport)
    raw.send({"op": "hello", "app": "chat", "version": 2, "nick": "x"})
    assert [e["code"] for e in await raw.until_closed()] == ["version"]
    raw = await Raw.open(port, transport)
    raw.send({"op": "hello", "app": "files", "version": 1, "nick": "x"})
    assert [e["code"] for e in await raw.until_closed()] == ["version"]
    await server.close()


@run
async def test_a_slow_reader_is_dropped_and_does_not_slow_the_room(transport: str) -> None:
    server, port, log = await started(transport, max_queue=64 * 1024)
    sloth = await Raw.open(port, transport, "sloth")
    sock = sloth.writer.get_extra_info("socket")
    if sock is not None:  # an OS socket: shrink its kernel buffer (ours is the core's own)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sloth.writer.transport.pause_reading()  # type: ignore[attr-defined]  # stop reading at all
    fast = await joined(port, "fast", transport=transport)
    talker = await joined(port, "talker", transport=transport)
    text = "x" * 995
    sent = 0
    lefts: list[Any] = []
    # Bounded: 64 KiB of queue plus the TCP buffers underneath (a few MiB on our TCP) is
    # passed long before 20,000 messages.
    while sent < 20_000 and "sloth" in {m.nick for m in server.hub.members.values()}:
        sent += 1
        await talker.say(f"{text}{sent:05d}")
        if sent % 50 == 0:
            # The fast reader keeps up: it reads up to the message just said (the room's
            # other news, such as the sloth leaving, kept), while the sloth reads nothing.
            while True:
                event = await fast.recv(timeout=5.0)
                if event is None:
                    raise ConnectionLost(fast.closed_reason or "connection closed")
                if event["op"] == "left":
                    lefts.append(event)
                if event["op"] == "msg" and event["text"].endswith(f"{sent:05d}"):
                    break
    assert sent < 20_000, "the slow reader was never dropped"
    left = lefts[0] if lefts else await fast.until("left")
    assert left["nick"] == "sloth" and "too slow" in left["reason"]
    await talker.say("after")
    while (await fast.until("msg"))["text"] != "after":
        pass
    assert any("sloth: too slow" in line for line in log)
    await fast.close()
    await talker.close()
    await server.close()


@run
async def test_idle_clients_are_dropped_but_pinging_clients_stay(transport: str) -> None:
    server, port, _log = await started(transport, idle_timeout=0.4)
    quiet = await Raw.open(port, transport, "quiet")
    lively = await joined(port, "lively", transport=transport)  # pings every idle_timeout/3
    events = await quiet.until_closed()
    assert events[-1]["code"] == "idle"
    # quiet was silent for 0.4 s; lively was connected all that time and is still served
    left = await lively.until("left")
    assert left["nick"] == "quiet" and "idle" in left["reason"]
    await lively.who()
    assert (await lively.until("users"))["nicks"] == ["lively"]
    await lively.close()
    await server.close()


@run
async def test_a_connection_that_never_says_hello_is_closed(transport: str) -> None:
    server, port, _log = await started(transport, handshake_timeout=0.3)
    raw = await Raw.open(port, transport)  # preamble only
    events = await raw.until_closed()
    assert events[-1]["code"] == "idle" and "no hello" in events[-1]["message"]
    await server.close()


@run
async def test_maximum_connection_count(transport: str) -> None:
    server, port, log = await started(transport, max_clients=2)
    a = await joined(port, "a", transport=transport)
    b = await joined(port, "b", transport=transport)
    with pytest.raises(ChatRefused) as info:
        await joined(port, "c", transport=transport)
    assert info.value.code == "full"
    reader, writer = await connection(port, transport)
    writer.write(b"dave\r\n")  # a line-mode user is told in text
    async with asyncio.timeout(T):
        assert (await reader.read()).startswith(b"! server full")
    await a.close()
    # a freed slot is usable again
    c = await joined(port, "c", transport=transport)
    assert any("refused: server full" in line for line in log)
    await b.close()
    await c.close()
    await server.close()


# --- restart, shutdown, the console log ---------------------------------------------------


@run
async def test_immediate_restart_on_the_same_port(transport: str) -> None:
    server, port, _ = await started(transport)
    client = await joined(port, "alice", transport=transport)
    await server.close()  # the server closes first: its side of the connection is in TIME_WAIT
    assert await client.until("shutdown")
    if transport == "os":  # the seeds' error belongs to the OS's TCP (ours has no TIME_WAIT port)
        # Without SO_REUSEADDR the port cannot be bound again right now...
        plain = socket.socket()
        with pytest.raises(OSError) as info:
            plain.bind(("127.0.0.1", port))
        plain.close()
        assert info.value.errno == errno.EADDRINUSE
    # ...and the chat server restarts at once, on either transport.
    again = ChatServer("127.0.0.1", port, transport=transport)
    assert (await again.start())[1] == port
    back = await joined(port, "alice", transport=transport)
    await back.close()
    await client.close()
    await again.close()


@run
async def test_close_tells_every_client_shutdown(transport: str) -> None:
    server, port, _log = await started(transport)
    alice = await joined(port, "alice", transport=transport)
    reader, writer = await connection(port, transport)
    writer.write(b"bob\n")
    async with asyncio.timeout(T):
        while b"you are bob" not in await reader.readline():
            pass
    await server.close("maintenance")
    assert await alice.until("shutdown") == {"op": "shutdown", "message": "maintenance"}
    assert await alice.recv(T) is None
    assert alice.closed_reason is not None and "shut down" in alice.closed_reason
    async with asyncio.timeout(T):
        rest = await reader.read()
    assert b"* server shutting down: maintenance\r\n" in rest
    await alice.close()


@run
async def test_console_log_has_a_line_per_connection(transport: str) -> None:
    server, port, log = await started(transport)
    alice = await joined(port, "alice", transport=transport)
    await alice.close()
    _, writer = await connection(port, transport)
    writer.close()
    await log.wait_for("(no nickname)")
    await server.close()
    joins = [x for x in log if "+ 127.0.0.1:" in x]
    leaves = [x for x in log if "- 127.0.0.1:" in x]
    assert len(joins) == 1 and "alice joined #lobby (framed; 1 online)" in joins[0]
    assert any("alice: quit (0 online)" in x for x in leaves)
    assert any("(no nickname)" in x for x in leaves)


# --- line mode: nc and telnet users in the same rooms --------------------------------------


async def line_user(
    port: int, nick: str, transport: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await connection(port, transport)
    async with asyncio.timeout(T):
        assert b"nickname?" in await reader.readline()  # prompted after the sniff grace time
    writer.write(nick.encode() + b"\r\n")
    return reader, writer


async def line(reader: asyncio.StreamReader) -> str:
    async with asyncio.timeout(T):
        data = await reader.readline()
    assert data.endswith(b"\r\n"), data
    return data[:-2].decode()


@run
async def test_line_mode_interoperates_with_framed_clients(transport: str) -> None:
    server, port, log = await started(transport, sniff_timeout=0.05)
    alice = await joined(port, "alice", transport=transport)
    reader, writer = await line_user(port, "alice", transport)  # taken: asked again
    assert await line(reader) == "! nickname 'alice' is taken; try another:"
    writer.write(b"nc-user\n")
    assert await line(reader) == "* you are nc-user in #lobby (here: alice); /help lists commands"
    await alice.until("joined", nick="nc-user")

    await alice.say("hello text world")
    assert await line(reader) == "<alice> hello text world"
    writer.write("héllo framed world\r\n".encode())
    assert (await alice.until("msg")) == {
        "op": "msg",
        "room": "lobby",
        "from": "nc-user",
        "text": "héllo framed world",
    }
    writer.write(b"\r\n")
    assert await line(reader) == "! empty message not sent"
    writer.write(b"/msg alice just you\n/who\n/bogus\n")
    assert await alice.until("private") == {
        "op": "private",
        "from": "nc-user",
        "to": "alice",
        "text": "just you",
    }
    assert await line(reader) == "\u2192 alice: just you"  # the sender's confirmation
    assert await line(reader) == "* in #lobby: alice, nc-user"
    assert await line(reader) == "! unknown command /bogus (try /help)"
    await alice.private("nc-user", "back at you")
    assert await line(reader) == "*alice* back at you"
    writer.write(b"/help\n")
    assert (await line(reader)).startswith("Type a line")
    while not (await line(reader)).startswith("  //text"):
        pass
    writer.write(b"/quit\n")
    assert await line(reader) == "* bye"
    async with asyncio.timeout(T):
        assert await reader.read() == b""
    assert (await alice.until("left"))["reason"] == "quit"
    assert any("nc-user joined #lobby (line;" in x for x in log)
    await alice.close()
    await server.close()


@run
async def test_line_mode_user_who_types_before_the_prompt(transport: str) -> None:
    server, port, _ = await started(
        transport, sniff_timeout=5.0
    )  # the first bytes decide, not the timer
    reader, writer = await connection(port, transport)
    writer.write(b"quick\nhi all\n")
    assert b"nickname?" in await reader.readline()
    assert "you are quick" in await line(reader)
    bob = await joined(port, "bob", transport=transport)
    writer.write(b"again\n")
    assert (await bob.until("msg"))["text"] == "again"
    await bob.close()
    await server.close()


@run
async def test_a_framed_client_whose_preamble_comes_late_is_still_framed(transport: str) -> None:
    """A lost first segment can hold a synack client's preamble past the grace time: the
    server has prompted for a nickname by then, but the preamble still makes it framed."""
    server, port, log = await started(transport, sniff_timeout=0.05)
    alice = await joined(port, "alice", transport=transport)
    reader, writer = await connection(port, transport)
    async with asyncio.timeout(T):
        assert b"nickname?" in await reader.readline()  # the grace time passed in silence
    writer.write(
        MAGIC + encode_message({"op": "hello", "app": "chat", "version": 1, "nick": "bob"})
    )
    late = Raw(reader, writer)
    assert (await late.event() or {}).get("op") == "welcome"
    assert (await alice.until("joined"))["nick"] == "bob"
    late.send({"op": "say", "text": "framed after all"})
    assert (await alice.until("msg"))["text"] == "framed after all"
    assert any("bob joined #lobby (framed;" in line for line in log)
    await alice.close()
    await server.close()


@run
async def test_the_client_skips_a_prompt_sent_before_its_preamble_arrived(transport: str) -> None:
    async def prompted_first(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(len(MAGIC))
        hello = FrameDecoder()
        while not isinstance(hello.next_event(), Message):
            hello.feed(await reader.read(100))
        welcome = {"op": "welcome", "version": 1, "nick": "bob", "room": "lobby", "members": []}
        writer.write(LINE_PROMPT + encode_message(welcome))
        await reader.read(100)  # the client's quit
        writer.close()

    srv = await seam.start_server(prompted_first, "127.0.0.1", 0, transport=transport)
    client = ChatClient("127.0.0.1", srv.addresses[0][1], "bob", timeout=T, transport=transport)
    assert (await client.connect())["op"] == "welcome"
    await client.close()
    srv.close()


@run
async def test_line_mode_overlong_line_is_refused(transport: str) -> None:
    server, port, _ = await started(transport, sniff_timeout=0.05)
    reader, writer = await line_user(port, "verbose", transport)
    await line(reader)
    writer.write(b"y" * 20_000)
    async with asyncio.timeout(T):
        rest = await reader.read()
    assert rest.startswith(b"! line longer than 8192 bytes")
    await server.close()


# --- the client's own failures --------------------------------------------------------------


@run
async def test_client_against_something_that_is_not_a_chat_server(transport: str) -> None:
    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        writer.close()

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    for handler, expect in [
        (http, "broke the protocol|middle of a frame"),
        (mute, "did not answer"),
    ]:
        srv = await seam.start_server(handler, "127.0.0.1", 0, transport=transport)
        port = srv.addresses[0][1]
        client = ChatClient("127.0.0.1", port, "x", timeout=0.3, transport=transport)
        with pytest.raises(ConnectionLost, match=expect):
            await client.connect()
        srv.close()


@run
async def test_client_notices_when_the_server_vanishes(transport: str) -> None:
    server, port, _ = await started(transport)
    alice = await joined(port, "alice", transport=transport)
    for conn in list(server.connections):
        conn.writer.transport.abort()  # the server's side drops without a word
    assert await alice.recv(T) is None
    # The kernel's TCP sends an abort as a FIN when nothing is unread; ours resets.
    assert alice.closed_reason in (
        "the server closed the connection",
        "lost the connection to the server (Connection reset by peer)",
    )
    with pytest.raises(ConnectionLost):
        await alice.say("anyone?")
    await server.close()
