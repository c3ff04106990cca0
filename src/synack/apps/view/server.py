"""The web view's server: the page, the lessons' runs, and live traces over a WebSocket.

aiohttp serves the static page (one HTML, one script, one style sheet: nothing from
outside the machine) and one WebSocket per page. Over it the page asks for a lesson
(``{"type": "lesson", "name": ..., "lang": ...}``) and receives the whole run at once,
narration already worded in the chosen language; the page paces the playback itself,
so pause, step, replay and speed need no round trip. Or it asks to follow
(``{"type": "follow"}``) and receives the records of the traced files as they are
written, from the first line on, whenever it connects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from importlib.resources import files
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from synack.apps.lessons import NAMES, lessons
from synack.apps.lessons.i18n import text
from synack.apps.view.follow import TraceFile, TraceRecords

STATIC = Path(str(files("synack.apps.view") / "static"))
POLL = 0.2  # seconds between looks at a followed file

# aiohttp's application keys (typed, rather than strings).
SETTINGS = web.AppKey("settings", dict)
RUNS = web.AppKey("runs", dict)
LOCK = web.AppKey("lock", asyncio.Lock)


def lesson_json(name: str, lang: str) -> dict[str, Any]:
    """A lesson's run as the page draws it: records with their narration worded in
    `lang`, segment bytes left out (the page never shows them)."""
    lesson = lessons()[name]
    data = lesson.run().to_json()
    for rec in data["records"]:
        rec.pop("data", None)
        if rec["kind"] in ("note", "section", "bytes"):
            rec["text"] = text(lang, rec["key"], **rec.get("params", {}))
        if rec["kind"] == "segment":
            rec["metrics_end"] = rec["src"]
    for end in data["ends"]:
        end["label"] = text(lang, end["role"])
    verdict = data["verdict"]
    if verdict is not None:
        verdict["text"] = text(lang, verdict["claim"])
        for c in verdict["checks"]:
            c["text"] = text(lang, c["key"], **c["params"])
    data["title"] = text(lang, lesson.title)
    data["lang"] = lang
    data["type"] = "lesson"
    return data


def make_app(
    *, lang: str = "en", lesson: str | None = None, follow: tuple[str, ...] = ()
) -> web.Application:
    """The view's application: `lesson` is the one the page opens on, and `follow` the
    trace files it shows live instead (when given)."""
    app = web.Application()
    app[SETTINGS] = {"lang": lang, "lesson": lesson, "follow": list(follow)}
    app[RUNS] = {}
    app[LOCK] = asyncio.Lock()
    app.router.add_get("/", _index)
    app.router.add_get("/api/lessons", _lesson_list)
    app.router.add_get("/api/lesson/{name}", _lesson)
    app.router.add_get("/ws", _websocket)
    app.router.add_static("/static/", STATIC)
    return app


async def _index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "index.html")


async def _lesson_list(request: web.Request) -> web.Response:
    lang = request.query.get("lang") or request.app[SETTINGS]["lang"]
    return web.json_response(_hello(request.app, lang))


async def _lesson(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    lang = request.query.get("lang") or request.app[SETTINGS]["lang"]
    if name not in NAMES or lang not in ("en", "zh"):
        raise web.HTTPNotFound(text=f"no lesson {name!r} in {lang!r}")
    try:
        run = await _run(request.app, name, lang)
    except Exception as exc:  # a lesson that breaks is reported, the view carries on
        raise web.HTTPInternalServerError(text=_failed(name, exc)) from None
    return web.json_response(run)


def _failed(name: str, exc: BaseException) -> str:
    return f"the lesson {name!r} failed: {type(exc).__name__}: {exc}"


def _hello(app: web.Application, lang: str) -> dict[str, Any]:
    settings = app[SETTINGS]
    return {
        "type": "hello",
        "lang": lang,
        "lesson": settings["lesson"],
        "follow": settings["follow"],
        "lessons": [{"name": name, "title": text(lang, lessons()[name].title)} for name in NAMES],
    }


async def _run(app: web.Application, name: str, lang: str) -> dict[str, Any]:
    """A lesson's run, made once per language (runs are the same every time). Lessons on
    real sockets bind ports, so one runs at a time, off the event loop."""
    runs = app[RUNS]
    async with app[LOCK]:
        if (name, lang) not in runs:
            loop = asyncio.get_running_loop()
            runs[name, lang] = await loop.run_in_executor(None, lesson_json, name, lang)
    result: dict[str, Any] = runs[name, lang]
    return result


async def _websocket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=30)
    await ws.prepare(request)
    app = request.app
    lang = app[SETTINGS]["lang"]
    await ws.send_json(_hello(app, lang))
    following: asyncio.Task[None] | None = None
    try:
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                continue
            try:
                ask = json.loads(msg.data)
            except ValueError:
                continue
            kind = ask.get("type")
            if kind == "lesson":
                name, want = ask.get("name"), ask.get("lang") or lang
                if name not in NAMES or want not in ("en", "zh"):
                    await ws.send_json({"type": "error", "text": f"no lesson {name!r}"})
                    continue
                try:
                    run = await _run(app, name, want)
                except Exception as exc:  # said on the page; the view carries on
                    await ws.send_json({"type": "error", "text": _failed(name, exc)})
                    continue
                await ws.send_json(run)
            elif kind == "follow" and following is None:
                following = asyncio.create_task(_follow(ws, app[SETTINGS]["follow"]))
    finally:
        if following is not None:
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await following
    return ws


async def _follow(ws: web.WebSocketResponse, paths: list[str]) -> None:
    """Send the followed files' records to one page as they are written."""
    readers = [(TraceFile(p), TraceRecords()) for p in paths]
    await ws.send_json({"type": "follow", "files": paths})
    while not ws.closed:
        for reader, records in readers:
            batch = records.convert(reader.read())
            if batch:
                await ws.send_json(
                    {"type": "records", "file": reader.path, "ends": records.ends, "records": batch}
                )
        await asyncio.sleep(POLL)


async def serve(
    port: int, *, lang: str, lesson: str | None, follow: tuple[str, ...], ready: Any = None
) -> None:
    """Serve on 127.0.0.1:`port` until cancelled; `ready(url)` is called once listening."""
    runner = web.AppRunner(make_app(lang=lang, lesson=lesson, follow=follow))
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        bound = runner.addresses[0][1]
        url = f"http://127.0.0.1:{bound}/"
        if lesson:
            url += f"?lesson={lesson}"
        if ready is not None:
            ready(url)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
