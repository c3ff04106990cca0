"""The web chat's WebSocket (`chat serve --web`), spoken by aiohttp's client and by hand.

A browser user meets framed (`ChatClient`) and line-mode (nc) users in the same rooms;
the TCP side runs on every transport (tests/conftest.py), the web listener always on
the OS's TCP. Every wait is bounded; tests wait for events, never for time to pass.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import socket
import ssl
import struct
import sys
from pathlib import Path
from typing import Any

import pytest

aiohttp = pytest.importorskip("aiohttp", reason="the web chat needs aiohttp (the web extra)")

from bounded import run  # noqa: E402
from cliproc import Served, synack  # noqa: E402
from synack import transport as seam  # noqa: E402
from synack.apps.chat import ChatClient, ChatServer  # noqa: E402
from synack.apps.chat.protocol import MAX_FRAME  # noqa: E402
from synack.apps.chat.web import STATIC  # noqa: E402

T = 5.0  # the bound on every wait
HELLO = {"op": "hello", "app": "chat", "version": 1}
XSS = "<script>window.pwned=1</script><img src=x onerror=\"document.title='pwned'\">"


class Web:
    """A WebSocket user: requests as JSON, events from the JSON lines the server sends."""

    def __init__(self, session: Any, ws: Any) -> None:
        self.session, self.ws = session, ws
        self.pending: list[dict[str, Any]] = []

    @classmethod
    async def open(cls, url: str, nick: str | None = None, **kw: Any) -> Web:
        session = aiohttp.ClientSession()
        try:
            ws = await session.ws_connect(url + "ws", timeout=aiohttp.ClientWSTimeout(T), **kw)
        except BaseException:
            await session.close()
            raise
        web = cls(session, ws)
        if nick is not None:
            await web.send({**HELLO, "nick": nick})
            welcome = await web.event()
            assert welcome is not None and welcome["op"] == "welcome", welcome
        return web

    async def send(self, request: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(request))

    async def type(self, line: str) -> None:
        await self.send({"op": "line", "text": line})

    async def event(self) -> dict[str, Any] | None:
        """The next event, or None once the server closed the WebSocket."""
        async with asyncio.timeout(T):
            while not self.pending:
                msg = await self.ws.receive()
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    return None
                assert msg.data.endswith("\n"), msg.data  # JSON lines, each ended
                self.pending = [json.loads(line) for line in msg.data.splitlines()]
            return self.pending.pop(0)

    async def until(self, op: str) -> dict[str, Any]:
        while True:
            event = await self.event()
            assert event is not None, f"closed before {op!r}"
            if event["op"] == op:
                return event

    async def until_closed(self) -> list[dict[str, Any]]:
        events = []
        while (event := await self.event()) is not None:
            events.append(event)
        return events

    async def close(self) -> None:
        await self.ws.close()
        await self.session.close()


async def started(transport: str = "os", **kw: Any) -> tuple[ChatServer, int, str, list[str]]:
    log: list[str] = []
    kw.setdefault("web", ("127.0.0.1", 0))
    server = ChatServer("127.0.0.1", 0, transport=transport, log=log.append, **kw)
    _, port = await server.start()
    assert server.web_url is not None
    return server, port, server.web_url, log


async def joined(port: int, nick: str, transport: str) -> ChatClient:
    client = ChatClient("127.0.0.1", port, nick, timeout=T, transport=transport)
    await client.connect()
    return client


async def nc(port: int, nick: str, transport: str) -> tuple[Any, Any]:
    """A line-mode user, as with nc: past the prompt and the welcome line."""
    reader, writer = await seam.open_connection("127.0.0.1", port, transport=transport)
    writer.write(nick.encode() + b"\n")
    async with asyncio.timeout(T):
        assert b"nickname?" in await reader.readline()
        assert (await reader.readline()).startswith(b"* you are " + nick.encode())
    return reader, writer


async def line(reader: Any) -> str:
    async with asyncio.timeout(T):
        data: bytes = await reader.readline()
    return data.decode().rstrip("\r\n")


async def bounded(condition: Any, what: str) -> None:
    """Wait until `condition()` holds, polling the real state, at most T."""
    async with asyncio.timeout(T):
        while not condition():
            await asyncio.sleep(0.01)
    assert condition(), what


# --- the same rooms, the same commands -------------------------------------------------------


@run
async def test_a_browser_user_meets_framed_and_nc_users_in_one_room(transport: str) -> None:
    server, port, url, log = await started(transport)
    bob = await joined(port, "bob", transport)
    reader, writer = await nc(port, "carol", transport)
    alice = await Web.open(url)
    await alice.send({**HELLO, "nick": "alice"})
    welcome = await alice.event()
    assert welcome is not None
    assert welcome["op"] == "welcome" and welcome["members"] == ["bob", "carol"]
    assert welcome["idle_timeout"] == server.idle_timeout
    assert await bob.until("joined", nick="alice") == {
        "op": "joined",
        "room": "lobby",
        "nick": "alice",
    }
    assert await line(reader) == "* alice joined #lobby"
    assert any("alice joined #lobby (web; 3 online)" in x for x in log)

    await alice.type("hello from a browser")
    said = {"op": "msg", "room": "lobby", "from": "alice", "text": "hello from a browser"}
    assert await bob.until("msg") == said
    assert await line(reader) == "<alice> hello from a browser"
    await bob.say("hello from a terminal")
    assert await alice.until("msg") == {**said, "from": "bob", "text": "hello from a terminal"}
    writer.write(b"and from nc\n")
    assert await alice.until("msg") == {**said, "from": "carol", "text": "and from nc"}
    await alice.send({"op": "say", "text": "a request, not a typed line"})  # §2.3 as is
    assert (await bob.until("msg", **{"from": "alice"}))["text"] == "a request, not a typed line"

    await alice.close()
    assert (await bob.until("left"))["nick"] == "alice"
    await bounded(lambda: len(server.connections) == 2, "the browser's peer is gone")
    assert "alice" not in server.hub.members
    await bob.close()
    writer.close()
    await server.close()


@run
async def test_private_messages_both_ways(transport: str) -> None:
    server, port, url, _ = await started(transport)
    bob = await joined(port, "bob", transport)
    reader, writer = await nc(port, "carol", transport)
    alice = await Web.open(url, "alice")
    await alice.type("/msg bob just between us")
    assert await bob.until("private") == {
        "op": "private",
        "from": "alice",
        "to": "bob",
        "text": "just between us",
    }
    assert await alice.until("sent") == {"op": "sent", "to": "bob", "text": "just between us"}
    await bob.private("alice", "got it")
    assert await alice.until("private") == {
        "op": "private",
        "from": "bob",
        "to": "alice",
        "text": "got it",
    }
    writer.write(b"/msg alice from nc\n")
    assert (await alice.until("private"))["from"] == "carol"
    await alice.type("/msg carol back to nc")
    while (text := await line(reader)) != "*alice* back to nc":
        assert not text.startswith("<"), text  # a private message is not said to the room
    await alice.type("/msg nobody hello")
    assert (await alice.until("error"))["code"] == "no-such-user"
    await alice.close()
    await bob.close()
    writer.close()
    await server.close()


@run
async def test_every_command_of_the_terminal_works_from_the_page() -> None:
    server, port, url, _ = await started()
    bob = await joined(port, "bob", "os")
    alice = await Web.open(url, "alice")
    await alice.type("/help")
    help_text = (await alice.until("help"))["text"]
    for command in ("/join ROOM", "/msg NICK TEXT", "/who [ROOM]", "/rooms", "/nick NEW"):
        assert command in help_text
    await alice.type("/who")
    assert (await alice.until("users"))["nicks"] == ["alice", "bob"]
    await alice.type("/nick ally")
    assert await bob.until("renamed") == {
        "op": "renamed",
        "room": "lobby",
        "old": "alice",
        "new": "ally",
    }
    await alice.type("/join #Garden")
    assert await alice.until("joined") == {"op": "joined", "room": "garden", "nick": "ally"}
    assert (await bob.until("left"))["reason"] == "moved to #garden"
    await alice.type("/rooms")
    rooms = (await alice.until("rooms"))["rooms"]
    assert rooms == [{"room": "garden", "count": 1}, {"room": "lobby", "count": 1}]
    await bob.join("garden")
    assert (await alice.until("joined"))["nick"] == "bob"
    await alice.type("//slash")
    assert (await bob.until("msg"))["text"] == "/slash"  # said, not a command
    await alice.type("/bogus")
    assert (await alice.until("error"))["message"] == "unknown command /bogus (try /help)"
    await alice.type("/nick BOB")
    assert (await alice.until("error"))["code"] == "nick-taken"
    await alice.type("   ")
    assert (await alice.until("error"))["code"] == "empty"
    await alice.type("/quit")
    assert await alice.until_closed() == [{"op": "bye"}]
    assert alice.ws.close_code == 1000
    assert (await bob.until("left"))["reason"] == "quit"
    await alice.session.close()
    await bob.close()
    await server.close()


# --- what a browser must not be able to do ---------------------------------------------------


@run
async def test_markup_travels_as_text_and_the_page_runs_only_its_own_script() -> None:
    server, port, url, _ = await started()
    bob = await joined(port, "bob", "os")
    alice = await Web.open(url, "alice")
    await bob.say(XSS)
    assert (await alice.until("msg"))["text"] == XSS  # verbatim: the page shows it as text
    await alice.type(XSS)
    assert (await bob.until("msg"))["text"] == XSS
    refused = await Web.open(url)
    await refused.send({**HELLO, "nick": "<script>"})
    assert [e["code"] for e in await refused.until_closed()] == ["bad-nick"]
    await refused.session.close()

    async with aiohttp.ClientSession() as session, session.get(url) as page:
        assert page.status == 200
        policy = page.headers["Content-Security-Policy"]
        html = await page.text()
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    assert "unsafe-inline" not in policy
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts and all(" src=" in tag for tag in scripts)  # no inline script to allow
    script = (STATIC / "chat.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script, sink
    await alice.close()
    await bob.close()
    await server.close()


@run
async def test_bad_messages_close_the_websocket_and_leave_no_member() -> None:
    server, port, url, log = await started()
    bob = await joined(port, "bob", "os")
    cases: list[tuple[str, Any]] = [
        ("bytes", b"\x00SNK"),
        ("text", "not json"),
        ("text", "[1, 2]"),
        ("json", {"op": "say", "text": "before hello"}),
        ("json", {"op": "line", "text": "/who"}),  # a typed line needs a nickname first
        ("json", {**HELLO, "version": 99, "nick": "zed"}),
    ]
    codes = []
    for kind, payload in cases:
        web = await Web.open(url)
        if kind == "bytes":
            await web.ws.send_bytes(payload)
        elif kind == "text":
            await web.ws.send_str(payload)
        else:
            await web.send(payload)
        events = await web.until_closed()
        assert len(events) == 1 and events[0]["op"] == "error", (payload, events)
        codes.append(events[0]["code"])
        await web.session.close()
    assert codes == ["bad-request"] * 5 + ["version"]
    # Bad messages after the hello too; the room hears that the sender left.
    alice = await Web.open(url, "alice")
    await alice.ws.send_bytes(b"binary")
    assert [e["code"] for e in await alice.until_closed()] == ["bad-request"]
    assert (await bob.until("left"))["nick"] == "alice"
    await alice.session.close()
    await bounded(lambda: len(server.connections) == 1, "only bob is left")
    assert sum("binary messages are not part of the chat" in x for x in log) == 2
    await bob.close()
    await server.close()


@run
async def test_an_oversized_message_is_refused_and_its_sender_removed() -> None:
    server, port, url, _ = await started()
    bob = await joined(port, "bob", "os")
    alice = await Web.open(url, "alice")
    await alice.type("x" * MAX_FRAME)  # with its JSON around it: over the limit
    assert await alice.until_closed() == []
    assert alice.ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
    left = await bob.until("left")
    assert left["nick"] == "alice" and "protocol error" in left["reason"]
    await alice.session.close()
    # Just under the limit is a message like any other (the text limit then applies).
    carol = await Web.open(url, "carol")
    body = json.dumps({"op": "line", "text": "y" * 4000})
    assert len(body) < MAX_FRAME
    await carol.ws.send_str(body)
    assert (await bob.until("msg"))["text"] == "y" * 4000
    await carol.type("z" * 4001)
    assert (await carol.until("error"))["code"] == "too-long"
    await carol.close()
    await bob.close()
    await server.close()


@run
async def test_websockets_from_other_sites_are_refused() -> None:
    server, _, url, log = await started(web_origins=["https://chat.example.org"])
    port = server.web_address[1] if server.web_address else 0
    refused = [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": f"http://127.0.0.1:{port + 1}"},  # another port is another origin
        {"Origin": f"https://127.0.0.1:{port}"},  # and another scheme
        # DNS rebinding: a remote name pointed at 127.0.0.1, its page's own origin.
        {"Origin": f"http://rebind.example:{port}", "Host": f"rebind.example:{port}"},
    ]
    for headers in refused:
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await Web.open(url, headers=headers)
        assert caught.value.status == 403, headers
    accepted = [
        {},  # no Origin: a program, not a page
        {"Origin": f"http://127.0.0.1:{port}"},  # the chat page's own
        {"Origin": f"http://localhost:{port}", "Host": f"localhost:{port}"},
        {"Origin": "https://chat.example.org"},  # --web-origin
        {"Origin": "https://chat.example.org", "Host": "chat.example.org"},  # via the proxy
    ]
    for i, headers in enumerate(accepted):
        web = await Web.open(url, f"user{i}", headers=headers)
        await web.close()
    assert sum("refused: cross-site WebSocket from origin" in x for x in log) == 4
    assert any("does not name this machine's loopback" in x for x in log)
    await server.close()


@run
async def test_a_browser_that_vanishes_is_cleaned_up() -> None:
    server, port, url, log = await started()
    bob = await joined(port, "bob", "os")
    alice = await Web.open(url, "alice")
    alice.ws._response.connection.transport.abort()  # no close frame: the tab was killed
    left = await bob.until("left")
    assert left["nick"] == "alice" and left["reason"].startswith("connection")
    await bounded(lambda: len(server.connections) == 1, "the browser's peer is gone")
    assert any(" alice: connection" in x for x in log)
    await alice.session.close()
    # A WebSocket that never says hello is dropped after the handshake timeout.
    await server.close()
    server, port, url, _ = await started(handshake_timeout=0.2)
    silent = await Web.open(url)
    assert [e["code"] for e in await silent.until_closed()] == ["idle"]
    await silent.session.close()
    await server.close()


def _handshake(port: int) -> socket.socket:
    """A WebSocket opened by hand on a socket with a small receive buffer, which the test
    then never reads: a browser too slow for its room."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(T)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    reply = b""
    while b"\r\n\r\n" not in reply:
        reply += sock.recv(1)  # byte by byte: nothing after the headers is taken
    assert reply.startswith(b"HTTP/1.1 101"), reply
    payload = json.dumps({**HELLO, "nick": "slowpoke"}).encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(struct.pack("!BB", 0x81, 0x80 | len(payload)) + mask + masked)
    return sock


@run
async def test_a_browser_too_slow_for_its_room_is_dropped() -> None:
    server, port, _, log = await started(max_queue=64 * 1024)
    bob = await joined(port, "bob", "os")
    web_port = server.web_address[1] if server.web_address else 0
    slow = await asyncio.to_thread(_handshake, web_port)
    try:
        await bob.until("joined")
        text = os.urandom(1500).hex()  # 3000 random characters
        for _ in range(2000):  # at most ~6 MB, far past any socket buffer: bounded
            await bob.say(text)
            if any("slowpoke: too slow" in x for x in log):
                break
        left = await bob.until("left", timeout=T)
        assert left["nick"] == "slowpoke" and left["reason"].startswith("too slow")
        await bounded(lambda: len(server.connections) == 1, "the slow peer is gone")
    finally:
        slow.close()
    await bob.close()
    await server.close()


def test_a_browser_that_stops_answering_pings_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    from synack.apps.chat import web

    monkeypatch.setattr(web, "HEARTBEAT", 0.2)  # 30 s in service

    @run
    async def body() -> None:
        server, port, _, log = await started()
        bob = await joined(port, "bob", "os")
        web_port = server.web_address[1] if server.web_address else 0
        mute = await asyncio.to_thread(_handshake, web_port)  # it never reads: no pong
        try:
            assert (await bob.until("joined"))["nick"] == "slowpoke"
            left = await bob.until("left", timeout=T)
            assert left["nick"] == "slowpoke" and "No PONG received" in left["reason"]
            await bounded(lambda: len(server.connections) == 1, "the mute peer is gone")
            assert any("slowpoke: protocol error: No PONG" in x for x in log)
        finally:
            mute.close()
        await bob.close()
        await server.close()

    body()


@run
async def test_a_full_server_says_so_and_shutdown_is_announced() -> None:
    server, port, url, _ = await started(max_clients=1)
    bob = await joined(port, "bob", "os")
    full = await Web.open(url)
    events = await full.until_closed()
    assert [e["code"] for e in events] == ["full"]
    await full.session.close()
    await bob.close()
    await bounded(lambda: not server.connections, "bob is gone")
    alice = await Web.open(url, "alice")
    closing = asyncio.create_task(server.close("maintenance"))
    assert await alice.until_closed() == [{"op": "shutdown", "message": "maintenance"}]
    await closing
    await alice.session.close()


# --- TLS and the command line -------------------------------------------------------------


@run
async def test_with_a_certificate_the_page_and_websocket_are_https_and_wss(
    tmp_path: Path,
) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    tls = seam.ServerTLS.from_files(str(cert), str(key))
    server, _, url, log = await started(tls=tls)
    assert url.startswith("https://127.0.0.1:")
    context = ssl.create_default_context()
    ca.configure_trust(context)
    alice = await Web.open(url, "alice", ssl=context)
    await alice.type("/who")
    assert (await alice.until("users"))["nicks"] == ["alice"]
    assert any("alice joined #lobby (web, TLS; 1 online)" in x for x in log)
    await alice.close()
    with pytest.raises(aiohttp.ClientError):  # no clear-text fallback
        await Web.open(url.replace("https", "http"), "bob")
    await server.close()


def test_serve_web_prints_the_page_and_serves_it(tmp_path: Path, transport: str) -> None:
    args = ["chat", "serve", "--port", "0", "--web", "127.0.0.1:0", "--transport", transport]
    with Served(*args, log=tmp_path / "serve.log") as served:
        banner = served.line()
        match = re.search(r"web chat on (http://127\.0\.0\.1:\d+/) \(page and WebSocket\)", banner)
        assert match, banner

        async def visit() -> None:
            async with aiohttp.ClientSession() as session, session.get(match.group(1)) as page:
                assert page.status == 200
                assert "synack chat" in await page.text()
            web = await Web.open(match.group(1), "alice")
            await web.type("/who")
            assert (await web.until("users"))["nicks"] == ["alice"]
            await web.close()

        asyncio.run(visit())
        assert served.stop() == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--web", "0", "--udp"], "leave out --udp"),
        (["--web-origin", "https://a.example"], "--web-origin needs --web"),
        (["--web", "0", "--web-origin", "a.example"], "invalid origin 'a.example'"),
        (["--web", "0", "--web-origin", "https://a.example/chat"], "invalid origin"),
        (["--web", "99999"], "invalid port 99999"),
        (["--web", "::1:80"], "write IPv6 as [ADDR]:PORT"),
    ],
)
def test_serve_web_mistakes_are_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = synack("chat", "serve", "--port", "0", *args)
    assert result.returncode == 2, result
    assert message in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.count("\n") <= 2  # argparse adds a usage line


def test_serve_web_without_aiohttp_is_one_line_and_exit_2() -> None:
    code = (
        "import sys; sys.modules['aiohttp'] = None\n"  # as if it were not installed
        "from synack.cli import main\n"
        "sys.exit(main(['chat', 'serve', '--port', '0', '--web', '0']))\n"
    )
    import subprocess

    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=T * 3
    )
    assert result.returncode == 2, result
    assert result.stderr.strip().splitlines() == [
        "synack: --web needs aiohttp (aiohttp is missing): pip install 'synack[web]'"
    ]
