"""A command imports only what it uses (issue 15: start-up was 0.2 s before any work).

Each check runs the command line in a fresh interpreter and lists the modules it
loaded. The timings themselves live in bench/startup.py, not here.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from synack.cli import COMMANDS, build_parser

# Run `synack ARGS` as `python -m synack` does, then print every module loaded.
_PROBE = """
import runpy, sys
sys.argv = ["synack", *sys.argv[1:]]
try:
    runpy.run_module("synack", run_name="__main__", alter_sys=True)
except SystemExit:
    pass
print("--modules--")
print("\\n".join(sorted(sys.modules)))
"""


def loaded_by(*args: str) -> set[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    _, sep, listing = done.stdout.partition("--modules--\n")
    assert sep, done.stdout + done.stderr
    return set(listing.split())


def heavy(modules: set[str], *prefixes: str) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes))


def test_help_imports_no_app_no_tcp_no_rich() -> None:
    modules = loaded_by("--help")
    assert "synack.cli" in modules
    assert not heavy(
        modules,
        "synack.tcp",
        "synack.apps.chat",
        "synack.apps.files",
        "synack.apps.lessons",
        "synack.apps.demo",
        "synack.testing",
        "rich",
        "prompt_toolkit",
        "asyncio",
    )


def test_files_get_imports_the_client_only(tmp_path: object) -> None:
    # Port 1 on loopback refuses at once: the command runs its whole start-up, then fails.
    modules = loaded_by("files", "get", "127.0.0.1:1", "nothing.txt", str(tmp_path))
    assert "synack.apps.files.client" in modules
    assert not heavy(
        modules,
        "synack.tcp",
        "synack.drivers",
        "synack.apps.files.server",
        "synack.apps.chat",
        "synack.apps.lessons",
        "synack.apps.demo",
        "synack.testing",
        "rich",
        "prompt_toolkit",
    )


def test_chat_join_does_not_load_the_servers_or_the_prompt_when_scripted() -> None:
    modules = loaded_by("chat", "join", "127.0.0.1:1", "--nick", "x")
    assert "synack.apps.chat.client" in modules
    assert not heavy(
        modules,
        "synack.tcp",
        "synack.apps.chat.server",
        "synack.apps.chat.udp_server",
        "synack.apps.files",
        "rich",
        "prompt_toolkit",
    )


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_commands_stub_says_what_its_module_says(name: str) -> None:
    """The one-line help in cli.COMMANDS and the app's own `add_parser` help agree."""
    stub = _help_lines(build_parser([]))
    full = _help_lines(build_parser([name]))
    assert stub[name] == full[name] == COMMANDS[name][1]
    assert list(stub) == list(full) == list(COMMANDS)


def _help_lines(parser: argparse.ArgumentParser) -> dict[str, str | None]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {a.dest: a.help for a in action._choices_actions}
    raise AssertionError("no sub-commands")
