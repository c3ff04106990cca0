"""The person's side of `synack chat join`: a prompt on a terminal, plain lines otherwise.

On a terminal, prompt_toolkit keeps the line being typed at the bottom while
incoming messages print above it (``patch_stdout``). When stdin is not a terminal
(a pipe, a file) every input line is sent in order and every event is printed as
a line, so the client can be scripted. At the end of stdin the client quits the
way /quit does: it sends "quit" and waits for the server's "bye", which the server
sends only after handling everything sent before it — nothing typed is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading

from synack.apps.chat.client import BaseChatClient, ConnectionLost
from synack.apps.chat.commands import HELP, CommandError, parse
from synack.apps.chat.protocol import ChatError
from synack.apps.chat.render import render


async def _print_events(client: BaseChatClient) -> None:
    async for event in client.events():
        line = render(event)
        if line is not None:
            print(line, flush=True)


async def _perform(client: BaseChatClient, line: str, *, in_order: bool = False) -> bool:
    """Carry out one typed line; True when it asks to quit.

    `in_order` (scripted mode): local output such as /help's comes after the
    server's answers to the lines before it, as a script's reader expects.
    """
    try:
        request = parse(line)
        if request["op"] == "help":
            if in_order:
                await _catch_up(client)
            print(HELP, flush=True)
            return False
        if request["op"] == "quit":
            return True
        await client.send(request)
    except CommandError as exc:
        print(f"! {exc}", file=sys.stderr, flush=True)
    except ChatError as exc:
        print(f"! {exc.message}", file=sys.stderr, flush=True)
    return False


async def _catch_up(client: BaseChatClient) -> None:
    """Wait for the answers to everything sent so far and print them (bounded wait)."""
    with contextlib.suppress(ConnectionLost, TimeoutError):
        await client.sync()
    for event in client.take_ready():
        line = render(event)
        if line is not None:
            print(line, flush=True)


async def _finish(client: BaseChatClient, printer: asyncio.Task[None]) -> int:
    await client.close()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(5):
            await printer
    printer.cancel()
    reason = client.closed_reason
    if reason != "quit":
        raise ConnectionLost(reason or "lost the connection to the server")
    return 0


def _stdin_lines(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str | None]) -> None:
    """A daemon thread: blocking reads of stdin (a file or a pipe) handed to the loop.

    It reads the file descriptor with `os.read`, not `sys.stdin`: a daemon thread
    blocked inside a buffered file's lock aborts the interpreter when it exits.
    """
    put = queue.put_nowait
    pending = b""
    try:
        while chunk := os.read(0, 65536):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                loop.call_soon_threadsafe(put, raw.decode("utf-8", "replace"))
        if pending:
            loop.call_soon_threadsafe(put, pending.decode("utf-8", "replace"))
    except OSError:
        pass  # stdin closed or unreadable: treat as its end
    finally:
        with contextlib.suppress(RuntimeError):  # the loop may be gone already
            loop.call_soon_threadsafe(put, None)


async def run_scripted(client: BaseChatClient) -> int:
    """Send stdin line by line, print events; at EOF quit cleanly (after a "bye")."""
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    threading.Thread(target=_stdin_lines, args=(loop, lines), daemon=True).start()
    printer = asyncio.create_task(_print_events(client))
    while True:
        get = asyncio.create_task(lines.get())
        await asyncio.wait({get, printer}, return_when=asyncio.FIRST_COMPLETED)
        if not get.done():  # the session ended under us
            get.cancel()
            break
        line = get.result()
        if line is None or await _perform(client, line, in_order=True):
            break
    return await _finish(client, printer)


async def run_interactive(client: BaseChatClient) -> int:
    """A prompt_toolkit prompt; incoming events appear above the line being typed."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.patch_stdout import patch_stdout

    session: PromptSession[str] = PromptSession()
    with patch_stdout():
        printer = asyncio.create_task(_print_events(client))
        while True:
            prompt = asyncio.create_task(session.prompt_async(f"[#{client.room}] {client.nick}> "))
            await asyncio.wait({prompt, printer}, return_when=asyncio.FIRST_COMPLETED)
            if not prompt.done():
                prompt.cancel()
                with contextlib.suppress(asyncio.CancelledError, EOFError, KeyboardInterrupt):
                    await prompt
                break
            try:
                line = prompt.result()
            except (EOFError, KeyboardInterrupt):  # Ctrl-D or Ctrl-C: leave politely
                break
            if await _perform(client, line):
                break
        return await _finish(client, printer)
