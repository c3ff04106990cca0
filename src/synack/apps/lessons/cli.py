"""`synack lesson [NAME]`: list the lessons, or run one and draw it.

Colour only on a terminal (and never with NO_COLOR set); otherwise plain text, so a
lesson piped to a file or a projector's capture reads the same everywhere. The
exit status is 0 when the lesson's claim held, 1 when it did not.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

from synack.apps.lessons import NAMES, lessons
from synack.apps.lessons.i18n import LANGUAGES, language_from_environment, text
from synack.apps.lessons.ladder import DEFAULT_WIDTH, Line, render
from synack.apps.lessons.pcap import write_pcap
from synack.apps.lessons.streams import LESSON_TRANSPORT
from synack.errors import UsageError, UserError, describe_os_error
from synack.transport import tracing


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "lesson",
        help="learn TCP by watching it: run a lesson (no NAME: list them)",
        description="Each lesson makes one claim of the course notes happen, draws it as a "
        "ladder diagram with narration, and checks that the claim held.",
    )
    p.add_argument("name", nargs="?", metavar="NAME", help="the lesson to run: " + ", ".join(NAMES))
    p.add_argument(
        "--lang",
        choices=LANGUAGES,
        help="language of the narration (default: from the locale, zh_* gives Chinese)",
    )
    p.add_argument(
        "--pcap", metavar="FILE", help="also write the lesson's segments to FILE for Wireshark"
    )
    p.add_argument(
        "--transport",
        choices=("os", "synack"),
        default="os",
        help="the TCP under the socket-API lessons (sticky, many-clients, download): the "
        "operating system's, or synack's own carried in UDP, whose segments --pcap can "
        "write (default: %(default)s; the other lessons always run on synack's TCP)",
    )
    p.add_argument(
        "--json", action="store_true", help="print the run as JSON records instead of drawing it"
    )
    p.add_argument(
        "--width", type=int, metavar="COLUMNS", help="line width (default: the terminal's)"
    )
    p.set_defaults(func=run_lesson)


def run_lesson(args: argparse.Namespace) -> int:
    lang = args.lang or language_from_environment(os.environ)
    colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    width = args.width or (
        shutil.get_terminal_size().columns if sys.stdout.isatty() else DEFAULT_WIDTH
    )
    if args.width is not None and args.width < 60:
        raise UsageError("--width must be at least 60 columns")
    if args.name is None:
        _print_list(lang)
        return 0
    if args.name not in NAMES:
        raise UsageError(f"no lesson named {args.name!r}; the lessons are: {', '.join(NAMES)}")
    lesson = lessons()[args.name]
    loopback = lesson.setting == "loopback"
    if args.pcap and not lesson.tcp:
        raise UserError(text(lang, "cli.pcap.no_tcp", name=lesson.name))
    if args.pcap and loopback and args.transport != "synack":
        raise UserError(text(lang, "cli.pcap.loopback", name=lesson.name))
    if loopback and args.transport == "synack":
        LESSON_TRANSPORT.set("synack")
        if args.pcap:
            try:
                tracing.enable(pcap=args.pcap)
            except OSError as exc:
                raise UserError(describe_os_error(exc, f"cannot write {args.pcap}")) from None
    run = lesson.run()
    if args.json:
        json.dump(run.to_json(), sys.stdout, ensure_ascii=False, indent=1)
        sys.stdout.write("\n")
    else:
        _print_lines(render(run, lang, width), colour)
    if args.pcap and not loopback:
        count = write_pcap(args.pcap, run.segments("sent", background=None))
        print(text(lang, "cli.pcap.written", count=count, path=args.pcap), file=sys.stderr)
    return 0 if run.verdict is not None and run.verdict.passed else 1


def _print_list(lang: str) -> None:
    print(text(lang, "cli.list.heading"))
    print()
    all_lessons = lessons()
    width = max(len(name) for name in NAMES) + 2
    for name in NAMES:
        lesson = all_lessons[name]
        setting = text(lang, f"cli.list.{lesson.setting}")
        print(f"  {name:<{width}}{text(lang, lesson.title)}  [{setting}]")
        print(f"  {'':<{width}}{text(lang, lesson.summary)}")
    print()
    print(text(lang, "cli.list.usage"))


def _print_lines(lines: list[Line], colour: bool) -> None:
    if not colour:
        sys.stdout.write("".join(line.plain + "\n" for line in lines))
        return
    from rich.console import Console
    from rich.text import Text

    console = Console(highlight=False, soft_wrap=True, emoji=False)
    for line in lines:
        t = Text()
        for s, style in line.spans:
            t.append(s, style or None)
        t.rstrip()
        console.print(t)
