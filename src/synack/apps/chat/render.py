"""Server events as one line of text for a person: the client's screen and line mode."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from synack.apps.chat.protocol import strip_controls


def _s(event: dict[str, Any], name: str) -> str:
    return strip_controls(str(event.get(name, "")))


def _welcome(e: dict[str, Any]) -> str:
    others = e.get("members", [])
    who = ", ".join(strip_controls(str(n)) for n in others) if others else "nobody else yet"
    return f"* you are {_s(e, 'nick')} in #{_s(e, 'room')} (here: {who}); /help lists commands"


def _left(e: dict[str, Any]) -> str:
    reason = _s(e, "reason")
    return f"* {_s(e, 'nick')} left #{_s(e, 'room')}" + (f" ({reason})" if reason else "")


def _users(e: dict[str, Any]) -> str:
    nicks = ", ".join(strip_controls(str(n)) for n in e.get("nicks", []))
    return f"* in #{_s(e, 'room')}: {nicks or 'nobody'}"


def _rooms(e: dict[str, Any]) -> str:
    rooms = e.get("rooms", [])
    listing = ", ".join(
        f"#{strip_controls(str(r.get('room')))} ({r.get('count')})"
        for r in rooms
        if isinstance(r, dict)
    )
    return f"* rooms: {listing or 'none'}"


def _help(e: dict[str, Any]) -> str:
    # The one event of several lines: each line made safe on its own.
    return "\n".join(strip_controls(line) for line in str(e.get("text", "")).split("\n"))


_RENDER: dict[str, Callable[[dict[str, Any]], str | None]] = {
    "welcome": _welcome,
    "msg": lambda e: ("(late) " if e.get("late") else "") + f"<{_s(e, 'from')}> {_s(e, 'text')}",
    "gap": lambda e: f"* ({_s(e, 'missed')} messages lost on the way)",
    "private": lambda e: f"*{_s(e, 'from')}* {_s(e, 'text')}",
    "sent": lambda e: f"\N{RIGHTWARDS ARROW} {_s(e, 'to')}: {_s(e, 'text')}",
    "joined": lambda e: f"* {_s(e, 'nick')} joined #{_s(e, 'room')}",
    "left": _left,
    "renamed": lambda e: f"* {_s(e, 'old')} is now known as {_s(e, 'new')}",
    "users": _users,
    "rooms": _rooms,
    "error": lambda e: f"! {_s(e, 'message') or _s(e, 'code')}",
    "shutdown": lambda e: f"* server shutting down: {_s(e, 'message')}",
    "bye": lambda e: "* bye",
    "help": _help,
    "pong": lambda e: None,
    "ack": lambda e: None,
}


def render(event: dict[str, Any]) -> str | None:
    """One line for `event`, or None for protocol chatter a person need not see."""
    fn = _RENDER.get(str(event.get("op")))
    if fn is None:
        return f"? {strip_controls(str(event))}"  # a newer server's event: show it raw
    return fn(event)
