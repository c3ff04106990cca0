"""Chat servers in a cluster (``chat serve --redis``) on a real redis-server.

Each test starts its own redis-server (Debian's package, installed by
scripts/system-deps) on 127.0.0.1 and a free port, with no persistence, and stops
it after. The servers run in this process with short heartbeats, so that a death
or an outage is noticed in a fraction of a second; the test of a server killed
with SIGKILL runs servers as subprocesses with the default timings, to show the
10 s promise holds as shipped. Every wait is a bounded wait for a condition.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bounded import run
from cliproc import Served, synack
from redisproc import RedisServer
from synack.apps.chat import ChatClient, ChatRefused, ChatServer

pytest.importorskip("redis", reason="the cluster needs redis-py (the test extra has it)")
from synack.apps.chat.cluster import Settings

T = 5.0  # the bound on every wait for an event
FAST = Settings(heartbeat=0.1, dead_after=0.4, timeout=1.0, backoff=0.05, max_backoff=0.2)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    try:
        server = RedisServer(tmp_path)
    except FileNotFoundError:
        pytest.skip("no redis-server here (scripts/system-deps installs Debian's)")
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def chat_server(redis: RedisServer, settings: Settings = FAST) -> tuple[ChatServer, int]:
    server = ChatServer("127.0.0.1", 0, redis=redis.url, cluster=settings)
    _, port = await server.start()
    return server, port


async def joined(port: int, nick: str, room: str | None = None) -> ChatClient:
    client = ChatClient("127.0.0.1", port, nick, room=room, timeout=T)
    await client.connect()
    return client


async def refused(port: int, nick: str) -> ChatRefused:
    with pytest.raises(ChatRefused) as info:
        await joined(port, nick)
    return info.value


async def until_true(check: Any, what: str, limit: float = T) -> None:
    """Poll an async condition (each poll is a real request) until it holds."""
    async with asyncio.timeout(limit):
        while not await check():
            await asyncio.sleep(0.02)


async def who(client: ChatClient, room: str | None = None) -> list[str]:
    await client.who(room)
    nicks: list[str] = (await client.until("users", timeout=T))["nicks"]
    return nicks


async def rename_outcome(client: ChatClient, old: str) -> str:
    """ "renamed" once `client` (formerly `old`) is renamed, or the code of its error."""
    async with asyncio.timeout(T):
        while True:
            event = await client.recv(T)
            assert event is not None, "connection ended"
            if event["op"] == "error":
                return str(event["code"])
            if event["op"] == "renamed" and event["old"] == old:
                return "renamed"


async def close_all(*things: Any) -> None:
    for thing in things:
        await thing.close()


# --- one set of rooms across servers -------------------------------------------------------


@run
async def test_rooms_private_messages_who_and_rooms_across_servers(
    redis_server: RedisServer,
) -> None:
    a, port_a = await chat_server(redis_server)
    b, port_b = await chat_server(redis_server)
    alice = await joined(port_a, "alice")
    bob = await joined(port_b, "bob")
    # alice's server hears of bob through Redis: a "joined" like any other
    assert (await alice.until("joined", timeout=T))["nick"] == "bob"
    await alice.say("hello from A")
    assert await bob.until("msg", timeout=T) == {
        "op": "msg",
        "room": "lobby",
        "from": "alice",
        "text": "hello from A",
    }
    await bob.say("hello from B")
    assert (await alice.until("msg", timeout=T))["text"] == "hello from B"
    assert await who(alice) == ["alice", "bob"]
    assert await who(bob) == ["alice", "bob"]
    # private messages, both ways; the sender hears it went (to the name as written there)
    await alice.private("BOB", "psst")
    assert await bob.until("private", timeout=T) == {
        "op": "private",
        "from": "alice",
        "to": "bob",
        "text": "psst",
    }
    assert (await alice.until("sent", timeout=T))["to"] == "bob"
    await bob.private("alice", "hi back")
    assert (await alice.until("private", timeout=T))["text"] == "hi back"
    # rooms: carol on A in #dev; bob moves there from B; /rooms counts both servers
    carol = await joined(port_a, "carol", room="dev")
    await bob.join("dev")
    assert (await carol.until("joined", timeout=T))["nick"] == "bob"
    left = await alice.until("left", timeout=T)
    assert left == {"op": "left", "room": "lobby", "nick": "bob", "reason": "moved to #dev"}
    await carol.say("dev talk")
    assert (await bob.until("msg", timeout=T))["text"] == "dev talk"
    await alice.rooms()
    listing = (await alice.until("rooms", timeout=T))["rooms"]
    assert listing == [{"room": "dev", "count": 2}, {"room": "lobby", "count": 1}]
    assert await who(alice, "dev") == ["bob", "carol"]
    # a nickname change on B is seen on A, and the new name takes private messages
    await bob.set_nick("robert")
    renamed = await carol.until("renamed", timeout=T)
    assert (renamed["old"], renamed["new"]) == ("bob", "robert")
    await carol.private("robert", "still you?")
    assert (await bob.until("private", timeout=T))["text"] == "still you?"
    # a user who quits on B is gone on A
    await bob.close()
    gone = await carol.until("left", timeout=T)
    assert gone["nick"] == "robert"
    assert await who(carol) == ["carol"]
    await close_all(alice, carol, a, b)


@run
async def test_nicknames_are_unique_across_servers(redis_server: RedisServer) -> None:
    a, port_a = await chat_server(redis_server)
    b, port_b = await chat_server(redis_server)
    alice = await joined(port_a, "alice")
    for taken in ("alice", "ALICE", "\N{CYRILLIC SMALL LETTER A}lice"):
        assert (await refused(port_b, taken)).code == "nick-taken"
    bob = await joined(port_b, "bob")
    await bob.set_nick("Alice")
    assert (await bob.until("error", timeout=T))["code"] == "nick-taken"
    # once alice leaves A, her name is free on B
    await alice.close()
    await bob.until("left", timeout=T)
    await bob.set_nick("alice")
    assert (await bob.until("renamed", timeout=T))["new"] == "alice"
    await close_all(bob, a, b)


@run
async def test_two_servers_claiming_one_nickname_at_once_admit_one(
    redis_server: RedisServer,
) -> None:
    a, port_a = await chat_server(redis_server)
    b, port_b = await chat_server(redis_server)
    names = [f"racer{i}" for i in range(10)]

    async def attempt(port: int, nick: str) -> ChatClient | None:
        try:
            return await joined(port, nick)
        except ChatRefused as exc:
            assert exc.code == "nick-taken", exc
            return None

    # each name is asked of both servers at the same moment: exactly one admits it
    results = await asyncio.gather(*(attempt(p, n) for n in names for p in (port_a, port_b)))
    winners = [c for c in results if c is not None]
    assert sorted(c.nick for c in winners) == names
    # and so for nickname changes: two users ask for the same new name at once
    ann = await joined(port_a, "ann")
    ben = await joined(port_b, "ben")
    await asyncio.gather(ann.set_nick("dana"), ben.set_nick("dana"))
    outcomes = [await rename_outcome(ann, "ann"), await rename_outcome(ben, "ben")]
    assert sorted(outcomes) == ["nick-taken", "renamed"], outcomes
    await close_all(*winners, ann, ben, a, b)


# --- a server dies; Redis goes away and comes back ------------------------------------------


def port_of(served: Served) -> int:
    return int(served.address.rsplit(":", 1)[1])


@pytest.mark.slow
def test_a_killed_servers_users_are_gone_for_the_others_within_10_s(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """As shipped: both servers with the default heartbeat (2 s) and dead_after (6 s)."""
    serve = ("chat", "serve", "--port", "0", "--redis", redis_server.url)
    with Served(*serve, log=tmp_path / "a.log") as a, Served(*serve, log=tmp_path / "b.log") as b:
        assert "in the cluster on" in a.line()

        async def body() -> float:
            alice = await joined(port_of(a), "alice")
            bob = await joined(port_of(b), "bob")
            await until_true(lambda: _is(who(bob), ["alice", "bob"]), "B sees alice")
            killed = time.monotonic()
            a.kill()  # SIGKILL: no goodbye to Redis or anyone
            left = await bob.until("left", nick="alice", timeout=12.0)
            took = time.monotonic() - killed
            assert left["reason"] == "their server stopped responding"
            assert await who(bob) == ["bob"]
            # B carries on: a newcomer joins it, even under the dead user's name
            carol = await joined(port_of(b), "alice")
            await carol.say("still here")
            assert (await bob.until("msg", timeout=T))["text"] == "still here"
            await close_all(carol, bob)
            with pytest.raises(Exception):  # noqa: B017 (alice's server is gone)
                await alice.say("anyone?")
                await alice.sync(timeout=1.0)
            return took

        took = asyncio.run(asyncio.wait_for(body(), 30.0))
        assert took < 10.0, f"gone after {took:.1f} s"


@run
async def test_while_redis_is_down_local_rooms_work_and_joins_wait(
    redis_server: RedisServer,
) -> None:
    a, port_a = await chat_server(redis_server)
    b, port_b = await chat_server(redis_server)
    alice = await joined(port_a, "alice")
    carol = await joined(port_a, "carol")
    bob = await joined(port_b, "bob")
    await until_true(lambda: _is(who(bob), ["alice", "bob", "carol"]), "bob sees A's users")

    redis_server.stop()

    async def join_refused() -> bool:
        try:
            client = await joined(port_a, "dave")
        except ChatRefused as exc:
            assert exc.code == "unavailable", exc
            assert "cluster" in str(exc)
            return True
        await client.close()
        return False

    await until_true(join_refused, "A refuses joins")
    await alice.say("local still works")
    assert (await carol.until("msg", timeout=T))["text"] == "local still works"
    await carol.set_nick("caroline")
    error = await carol.until("error", timeout=T)
    assert error["code"] == "unavailable"
    await alice.private("carol", "local private")
    assert (await carol.until("private", timeout=T))["text"] == "local private"
    # B's users, out of reach, are shown as gone once the outage outlasts dead_after
    gone = await alice.until("left", nick="bob", timeout=T)
    assert "out of reach" in gone["reason"]

    redis_server.start()

    async def join_admitted() -> bool:
        try:
            client = await joined(port_a, "dave")
        except ChatRefused as exc:
            assert exc.code == "unavailable", exc
            return False
        await client.close()
        return True

    await until_true(join_admitted, "A admits joins again")
    # both servers registered their members again: the rooms carry on across them
    await alice.until("joined", nick="bob", timeout=T)
    await until_true(lambda: _is(who(bob), ["alice", "bob", "carol"]), "B sees A's users")
    await alice.say("back again")
    assert (await bob.until("msg", text="back again", timeout=T))["from"] == "alice"
    await carol.set_nick("caroline")
    assert (await bob.until("renamed", timeout=T))["new"] == "caroline"
    await close_all(alice, carol, bob, a, b)


async def _is(names: Any, wanted: list[str]) -> bool:
    return bool(await names == wanted)


@run
async def test_a_server_cut_off_and_back_renames_a_member_whose_name_was_taken(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """A stalls (SIGSTOP) past dead_after: B gives it up for dead and a newcomer on B
    takes alice's name. When A runs again it finds it was given up, registers again,
    and alice (whose name is now someone else's) becomes alice-2."""
    serve = ("chat", "serve", "--port", "0", "--redis", redis_server.url)
    timing = ("--heartbeat", "0.1", "--dead-after", "0.5")
    with Served(*serve, *timing, log=tmp_path / "a.log") as a:
        b, port_b = await chat_server(redis_server)
        alice = await joined(port_of(a), "alice")
        bob = await joined(port_b, "bob")
        await until_true(lambda: _is(who(bob), ["alice", "bob"]), "B sees alice")
        os.kill(a.proc.pid, signal.SIGSTOP)
        try:
            await bob.until("left", nick="alice", timeout=T)
            newcomer = await joined(port_b, "alice")
        finally:
            os.kill(a.proc.pid, signal.SIGCONT)
        error = await alice.until("error", timeout=T)
        assert error["code"] == "nick-taken"
        assert "you are now 'alice-2'" in error["message"]
        await bob.until("joined", nick="alice-2", timeout=T)
        assert await who(bob) == ["alice", "alice-2", "bob"]
        await alice.say("renamed but here")
        got = await newcomer.until("msg", timeout=T)
        assert (got["from"], got["text"]) == ("alice-2", "renamed but here")
        await close_all(alice, bob, newcomer, b)


# --- the command line ------------------------------------------------------------------------


def test_serve_with_redis_that_does_not_answer_is_one_line_and_exit_1() -> None:
    done = synack("chat", "serve", "--port", "0", "--redis", "redis://127.0.0.1:1/0")
    assert done.returncode == 1
    assert done.stderr.startswith("synack: cannot reach Redis at redis://127.0.0.1:1/0: ")
    assert done.stderr.count("\n") == 1, done.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--redis", "http://example.org"), "--redis 'http://example.org'"),
        (("--heartbeat", "1"), "--heartbeat needs --redis"),
        (("--redis", "redis://127.0.0.1:1", "--heartbeat", "5", "--dead-after", "2"), "shorter"),
        (("--redis", "redis://127.0.0.1:1", "--udp"), "UDP chat cannot join a cluster"),
    ],
)
def test_cluster_options_misused_are_one_line_and_exit_2(args: tuple[str, ...], words: str) -> None:
    done = synack("chat", "serve", "--port", "0", *args)
    assert done.returncode == 2, done.stderr
    assert words in done.stderr and done.stderr.count("\n") == 1, done.stderr


def test_redis_option_without_redis_py_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['redis'] = None; from synack.cli import main; "
        "sys.exit(main(['chat', 'serve', '--port', '0', '--redis', 'redis://127.0.0.1:1']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=T * 3
    )
    assert done.returncode == 2
    assert done.stderr == (
        "synack: --redis needs redis-py, which is not installed: pip install 'synack[cluster]'\n"
    )
