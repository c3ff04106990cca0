"""`synack view`: serve the web view on 127.0.0.1 and print its address.

Only this machine can reach it: the page shows lesson runs and traces, nothing for
other hosts. aiohttp is an extra (``pip install 'synack[view]'``); without it the
command says so in one line.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from synack.apps.lessons import NAMES
from synack.apps.lessons.i18n import LANGUAGES, language_from_environment
from synack.errors import UsageError, UserError

DEFAULT_PORT = 8765


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "view",
        help="draw a lesson or a live traced connection in a web page, as it happens",
        description="Serve a web page on 127.0.0.1 that draws a lesson (ladder, states, "
        "cwnd/RTT/in-flight plots) with pause, step, replay and speed controls, or follows "
        "the JSON trace another synack process writes (--trace-json FILE, SYNACK_TRACE_JSON).",
    )
    p.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port on 127.0.0.1 (default {DEFAULT_PORT}; 0: any free one)",
    )
    p.add_argument("--lesson", metavar="NAME", help="the lesson to open: " + ", ".join(NAMES))
    p.add_argument(
        "--lang",
        choices=LANGUAGES,
        help="language of the narration (default: from the locale, zh_* gives Chinese)",
    )
    p.add_argument(
        "--follow",
        metavar="FILE",
        action="append",
        default=[],
        help="show the connections in this JSON-lines trace live, as another process "
        "writes it (repeatable)",
    )
    p.set_defaults(func=run_view)


def run_view(args: argparse.Namespace) -> int:
    if args.lesson is not None and args.lesson not in NAMES:
        raise UsageError(f"no lesson named {args.lesson!r}; the lessons are: {', '.join(NAMES)}")
    if not 0 <= args.port <= 65535:
        raise UsageError("--port must be between 0 and 65535")
    try:
        from synack.apps.view.server import serve
    except ImportError as exc:
        raise UserError(
            f"synack view needs aiohttp ({exc.name} is missing): pip install 'synack[view]'"
        ) from None
    lang = args.lang or language_from_environment(os.environ)

    def ready(url: str) -> None:
        print(f"synack view: serving on {url} (Ctrl-C stops)", flush=True)

    try:
        asyncio.run(
            serve(args.port, lang=lang, lesson=args.lesson, follow=tuple(args.follow), ready=ready)
        )
    except KeyboardInterrupt:
        print("synack view: stopped", file=sys.stderr)
    return 0
