"""Slash commands: what a person types, turned into protocol requests.

The synack client and the server's line mode (nc, telnet) share this table, so a
command means the same thing whichever way someone connects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class CommandError(ValueError):
    """A command line that cannot be turned into a request (shown to the user as is)."""


@dataclass(frozen=True, slots=True)
class Command:
    op: str
    args: tuple[str, ...]  # names of the positional arguments; "text" takes the rest of the line
    optional: int  # how many trailing args may be left out
    help: str


COMMANDS: dict[str, Command] = {
    "help": Command("help", (), 0, "show this help"),
    "join": Command("join", ("room",), 0, "leave this room and join ROOM"),
    "msg": Command("private", ("to", "text"), 0, "send TEXT to NICK only"),
    "who": Command("who", ("room",), 1, "list the members of ROOM (default: this room)"),
    "rooms": Command("rooms", (), 0, "list the rooms and how many are in each"),
    "nick": Command("nick", ("nick",), 0, "change your nickname to NEW"),
    "quit": Command("quit", (), 0, "leave the chat"),
}

_USAGE = {"join": "ROOM", "msg": "NICK TEXT", "who": "[ROOM]", "nick": "NEW"}

HELP = "\n".join(
    [
        "Type a line to say it to your room. Commands:",
        *(
            f"  /{name} {_USAGE.get(name, '')}".ljust(22) + cmd.help
            for name, cmd in COMMANDS.items()
        ),
        "  //text".ljust(22) + "say a line that starts with '/'",
    ]
)


def parse(line: str) -> dict[str, Any]:
    """One typed line to a request: ``{"op": "say", "text": line}`` unless it is a command."""
    line = line.rstrip("\r\n")
    if not line.startswith("/") or line.startswith("//"):
        return {"op": "say", "text": line[1:] if line.startswith("//") else line}
    name, _, rest = line[1:].partition(" ")
    cmd = COMMANDS.get(name.lower())
    if cmd is None:
        raise CommandError(f"unknown command /{name} (try /help)")
    request: dict[str, Any] = {"op": cmd.op}
    words = rest.strip()
    for i, arg in enumerate(cmd.args):
        last = i == len(cmd.args) - 1
        if arg == "text" and last:
            value, words = words, ""
        else:
            value, _, words = words.partition(" ")
            words = words.strip()
        if not value:
            if i >= len(cmd.args) - cmd.optional:
                break
            raise CommandError(f"usage: /{name.lower()} {_USAGE[name.lower()]}")
        request[arg] = value
    if words:
        raise CommandError(f"usage: /{name.lower()} {_USAGE.get(name.lower(), '')}".rstrip())
    return request
