"""`synack view` without a browser: its HTTP and WebSocket endpoints, the page's assets
(nothing from outside the machine), and a trace written by another process reaching
a page live through ``--follow``."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aiohttp", reason="synack view needs aiohttp (the view extra)")

import aiohttp
from aiohttp.test_utils import TestClient, TestServer

from cliproc import Served, synack
from synack.apps.lessons import NAMES
from synack.apps.view.follow import TraceFile, TraceRecords
from synack.apps.view.server import STATIC, make_app

T = 30.0


async def _client(**kw: Any) -> TestClient[Any, Any]:
    client = TestClient(TestServer(make_app(**kw)))
    await client.start_server()
    return client


async def _next_json(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    """The next message of type `kind` (others skipped), within T."""
    async with asyncio.timeout(T):
        while True:
            msg: dict[str, Any] = await ws.receive_json()
            if msg["type"] == kind:
                return msg


def test_the_page_and_its_assets_are_served() -> None:
    async def main() -> None:
        client = await _client()
        try:
            page = await client.get("/")
            assert page.status == 200
            html = await page.text()
            assert '<script src="/static/view.js">' in html and "/static/view.css" in html
            for name in ("view.js", "view.css"):
                asset = await client.get(f"/static/{name}")
                assert asset.status == 200
            listing = await (await client.get("/api/lessons")).json()
            assert [lesson["name"] for lesson in listing["lessons"]] == list(NAMES)
            assert (await client.get("/api/lesson/nope")).status == 404
        finally:
            await client.close()

    asyncio.run(main())


def _without_comments(text: str) -> str:
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"(?m)^\s*//.*$", "", text)


def test_the_page_loads_nothing_from_outside_the_machine() -> None:
    files = sorted(p for p in STATIC.iterdir() if p.is_file())
    assert {p.name for p in files} == {"index.html", "view.js", "view.css"}
    for path in files:
        code = _without_comments(path.read_text(encoding="utf-8"))
        assert "http://" not in code and "https://" not in code, path.name
        assert not re.search(r"""(src|href)\s*=\s*["']//""", code), path.name
        assert "@import" not in code and "url(http" not in code, path.name


def test_a_lesson_over_the_websocket() -> None:
    async def main() -> None:
        client = await _client(lang="en", lesson="handshake")
        try:
            async with client.ws_connect("/ws") as ws:
                hello = await _next_json(ws, "hello")
                assert hello["lesson"] == "handshake" and hello["follow"] == []
                await ws.send_json({"type": "lesson", "name": "handshake", "lang": "en"})
                run = await _next_json(ws, "lesson")
                await ws.send_json({"type": "lesson", "name": "nope"})
                error = await _next_json(ws, "error")
        finally:
            await client.close()
        sent = [r for r in run["records"] if r["kind"] == "segment" and r["event"] == "sent"]
        assert [r["flags"] for r in sent] == ["S", "S.", "."]
        assert all(r["cwnd"] and r["metrics_end"] == r["src"] for r in sent)
        assert "data" not in sent[0]
        states = [(r["end"], r["state"]) for r in run["records"] if r["kind"] == "state"]
        assert ("client", "SYN_SENT") in states and ("server", "SYN_RCVD") in states
        notes = [r["text"] for r in run["records"] if r["kind"] == "note"]
        assert notes and all(notes)
        assert run["verdict"]["passed"] and run["verdict"]["text"]
        assert "nope" in error["text"]

    asyncio.run(main())


def test_a_lesson_in_chinese() -> None:
    async def main() -> dict[str, Any]:
        client = await _client(lang="en")
        try:
            return dict(await (await client.get("/api/lesson/retransmit?lang=zh")).json())
        finally:
            await client.close()

    run = asyncio.run(main())
    notes = " ".join(r["text"] for r in run["records"] if r["kind"] == "note")
    assert re.search(r"[\u4e00-\u9fff]", notes)
    assert any(r["kind"] == "segment" and r["event"] == "lost" for r in run["records"])
    assert any(r["kind"] == "timer" for r in run["records"])


def test_trace_lines_become_lesson_records(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    reader = TraceFile(str(path))
    assert reader.read() == []  # not written yet
    lines = [
        {"t": 100.0, "event": "state", "src": "127.0.0.1", "sport": 5000, "dst": "127.0.0.1",
         "dport": 80, "old": "CLOSED", "new": "SYN-SENT"},
        {"t": 100.001, "event": "segment", "dir": "out", "src": "127.0.0.1", "sport": 5000,
         "dst": "127.0.0.1", "dport": 80, "flags": "S", "seq": 1000, "ack": None, "win": 65535,
         "len": 0, "cwnd": 14480, "srtt": None, "inflight": 1},
        {"t": 100.002, "event": "segment", "dir": "in", "src": "127.0.0.1", "sport": 80,
         "dst": "127.0.0.1", "dport": 5000, "flags": "S.", "seq": 7, "ack": 1001, "win": 65535,
         "len": 0, "cwnd": 14480, "srtt": 0.001, "inflight": 0},
    ]  # fmt: skip
    text = "".join(json.dumps(line) + "\n" for line in lines)
    path.write_text(text[:-10])  # the last line half written
    first = reader.read()
    assert len(first) == 2
    with open(path, "a") as f:
        f.write(text[-10:] + "not json\n")
    second = reader.read()
    assert len(second) == 1
    records = TraceRecords().convert(first + second)
    state, *segments = records
    assert state == {"kind": "state", "t": 0.0, "end": "client", "state": "SYN_SENT", "tag": "#1"}
    synack_sent = segments[2]
    assert (synack_sent["src"], synack_sent["dst"], synack_sent["flags"]) == (
        "server",
        "client",
        "S.",
    )
    assert (synack_sent["seq"], synack_sent["ack"]) == (0, 1)
    assert synack_sent["metrics_end"] == "client"  # the tracing side is the client
    path.write_text(text[: len(text) // 3].rsplit("\n", 1)[0] + "\n")  # written afresh
    assert len(reader.read()) == 1


def test_bad_command_lines_are_one_line() -> None:
    done = synack("view", "--lesson", "nope")
    assert done.returncode == 2 and "no lesson named 'nope'" in done.stderr
    assert done.stderr.count("\n") == 1


TRANSFER = """
import asyncio
from synack.drivers import aio

async def main():
    async def handle(r, w):
        w.write(await r.read(100)); await w.drain(); w.close()
    server = await aio.start_server(handle, "127.0.0.1", 0)
    r, w = await aio.open_connection("127.0.0.1", server.addresses[0][1])
    w.write(b"ping"); await w.drain()
    assert await r.read() == b"ping"
    w.close()
    server.close()

asyncio.run(main())
"""


def test_a_trace_from_another_process_reaches_the_page_live(tmp_path: Path) -> None:
    """The documented way: the traced process writes SYNACK_TRACE_JSON=FILE, and
    ``synack view --follow FILE`` (started first) pushes its records to the page."""
    trace = tmp_path / "live.jsonl"
    with Served("view", "--port", "0", "--follow", str(trace), log=tmp_path / "view.log") as view:
        ws_url = view.address.replace("http://", "ws://").rstrip("/") + "/ws"

        async def main() -> list[dict[str, Any]]:
            got: list[dict[str, Any]] = []
            async with aiohttp.ClientSession() as session, session.ws_connect(ws_url) as ws:
                hello = await _next_json(ws, "hello")
                assert hello["follow"] == [str(trace)]
                await ws.send_json({"type": "follow"})
                await _next_json(ws, "follow")
                env = {k: v for k, v in os.environ.items() if not k.startswith("SYNACK_")}
                env["SYNACK_TRACE_JSON"] = str(trace)
                proc = await asyncio.create_subprocess_exec(sys.executable, "-c", TRANSFER, env=env)
                assert await asyncio.wait_for(proc.wait(), T) == 0
                deadline = time.monotonic() + T
                while not any(r.get("flags") == "P." and r["length"] == 4 for r in got):
                    assert time.monotonic() < deadline, got
                    msg = await _next_json(ws, "records")
                    got.extend(msg["records"])
                    assert msg["ends"][0]["address"].startswith("127.0.0.1:")
            return got

        records = asyncio.run(main())
        view.proc.send_signal(signal.SIGINT)
        assert view.proc.wait(timeout=T) == 0
    sent = [r for r in records if r["kind"] == "segment" and r["event"] == "sent"]
    assert [r["flags"] for r in sent[:3]] == ["S", "S.", "."]
    assert sent[0]["src"] == "client" and sent[0]["seq"] == 0
    assert any(r["cwnd"] for r in sent)
    assert ("client", "ESTABLISHED") in {
        (r["end"], r["state"]) for r in records if r["kind"] == "state"
    }


def test_synack_view_serves_until_interrupted(tmp_path: Path) -> None:
    with Served("view", "--port", "0", "--lesson", "retransmit", log=tmp_path / "v.log") as view:
        assert view.address.startswith("http://127.0.0.1:")
        assert view.address.endswith("/?lesson=retransmit")
        view.proc.send_signal(signal.SIGINT)
        assert view.proc.wait(timeout=T) == 0
    assert "stopped" in (tmp_path / "v.log").read_text()


def test_a_lesson_that_fails_is_reported_and_the_view_carries_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from synack.apps.view import server

    def broken(name: str, lang: str) -> dict[str, Any]:
        raise TimeoutError("the client to give up")

    monkeypatch.setattr(server, "lesson_json", broken)

    async def main() -> None:
        client = await _client()
        try:
            reply = await client.get("/api/lesson/retransmit")
            assert reply.status == 500
            assert "'retransmit' failed: TimeoutError" in await reply.text()
            async with client.ws_connect("/ws") as ws:
                await ws.send_json({"type": "lesson", "name": "handshake"})
                error = await _next_json(ws, "error")
                assert "the client to give up" in error["text"]
            assert (await client.get("/")).status == 200
        finally:
            await client.close()

    asyncio.run(main())


def _ui_table(js: str, lang: str) -> dict[str, str]:
    block = re.search(rf"^    {lang}: \{{(.*?)^    \}},", js, re.S | re.M)
    assert block, f"no {lang} table in view.js"
    return dict(re.findall(r'(\w+): "([^"]*)"', block.group(1)))


def test_the_pages_own_words_are_in_both_languages() -> None:
    """The buttons, status and plot titles follow --lang as the narration does: every
    key the page uses is in both tables, and none is left in English in Chinese."""
    js = (STATIC / "view.js").read_text()
    html = (STATIC / "index.html").read_text()
    en, zh = _ui_table(js, "en"), _ui_table(js, "zh")
    assert en.keys() == zh.keys()
    used = set(re.findall(r'data-i18n="(\w+)"', html)) | set(re.findall(r"\bt\(\"(\w+)\"\)", js))
    used |= set(re.findall(r'setStatus\("(\w+)"', js))
    assert used and used <= en.keys(), used - en.keys()
    for key in en:
        assert re.search(r"[\u4e00-\u9fff]", zh[key]), f"{key!r} is not translated: {zh[key]!r}"
