"""The `synack` command: one entry point, one sub-command group per app.

Each app registers its own sub-commands (``register(subparsers)``) so the
apps stay independent of each other. Only the app a command line names is
imported: `COMMANDS` gives every other one a one-line stub, enough for
``synack --help`` and for argparse's list of choices. Importing every app up
front cost a fifth of a second per command (the TCP core, rich, the demo),
more than some whole transfers. A handler returns an exit status; `UserError`
and `OSError` become one line on stderr and a non-zero exit, and so does a
malformed command line (argparse's usage block is left out: one line says it).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from synack import __version__
from synack.errors import UserError, describe_os_error

# command -> (module with ``register(subparsers)``, the one line ``synack --help`` shows).
# The module's own `add_parser` help must say the same (tests/test_startup.py checks).
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": (
        "synack.apps.demo",
        "watch a chat, a verified file transfer and a TCP handshake, then exit",
    ),
    "chat": ("synack.apps.chat.cli", "chat rooms over TCP or UDP (server and client)"),
    "files": (
        "synack.apps.files.cli",
        "serve a directory; list, download and upload files (SHA-256 verified)",
    ),
    "lesson": (
        "synack.apps.lessons.cli",
        "learn TCP by watching it: run a lesson (no NAME: list them)",
    ),
    "netem": (
        "synack.apps.netem.cli",
        "impair UDP (relay) or any IP traffic (tun): loss, delay, reordering...",
    ),
    "plot": (
        "synack.apps.plot.cli",
        "draw a TCP connection from a pcap file: time-sequence, throughput, RTT",
    ),
    "view": (
        "synack.apps.view.cli",
        "draw a lesson or a live traced connection in a web page, as it happens",
    ),
}


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line: what is wrong, and where help is."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def chosen_command(argv: Sequence[str]) -> str | None:
    """The command `argv` names: its first word that is not an option, if it is one of ours."""
    for arg in argv:
        if arg == "--":
            return None
        if not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser for `argv` (default: sys.argv): complete for the command it names, stubs
    for the others. ``build_parser([name])`` gives the complete parser of command `name`."""
    chosen = chosen_command(sys.argv[1:] if argv is None else argv)
    parser = Parser(
        prog="synack",
        description="Client/server networking from the three-way handshake up.",
    )
    parser.add_argument("--version", action="version", version=f"synack {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_line) in COMMANDS.items():
        if name == chosen:
            importlib.import_module(module).register(sub)
        else:
            sub.add_parser(name, help=help_line, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(args_list)
    try:
        args = parser.parse_args(args_list)
        prepare = getattr(args, "prepare", None)  # a command's setup before it runs
        if prepare is not None:
            prepare(args)
        status = args.func(args)
    except KeyboardInterrupt:
        print("synack: interrupted", file=sys.stderr)
        return 130
    except UserError as exc:
        print(f"synack: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"synack: {describe_os_error(exc)}", file=sys.stderr)
        return 1
    return int(status or 0)
