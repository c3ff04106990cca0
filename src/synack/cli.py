"""The `synack` command: one entry point, one sub-command group per app.

Each app registers its own sub-commands (``register(subparsers)``) so the
apps stay independent of each other. A handler returns an exit status;
`UserError` and `OSError` become one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from synack import __version__
from synack.errors import UserError, describe_os_error


def build_parser() -> argparse.ArgumentParser:
    from synack.apps import demo
    from synack.apps.chat import cli as chat_cli
    from synack.apps.files import cli as files_cli
    from synack.apps.lessons import cli as lessons_cli
    from synack.apps.netem import cli as netem_cli

    parser = argparse.ArgumentParser(
        prog="synack",
        description="Client/server networking from the three-way handshake up.",
    )
    parser.add_argument("--version", action="version", version=f"synack {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    demo.register(sub)
    chat_cli.register(sub)
    files_cli.register(sub)
    lessons_cli.register(sub)
    netem_cli.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
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
