"""The interactive prompt (prompt_toolkit) driven through a pipe instead of a keyboard."""

from __future__ import annotations

import asyncio
import io

import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output.plain_text import PlainTextOutput

from synack.apps.chat import ChatClient, ChatServer, ConnectionLost
from synack.apps.chat.console import run_interactive

T = 3.0


async def session(port: int, nick: str, transport: str) -> ChatClient:
    client = ChatClient("127.0.0.1", port, nick, timeout=T, transport=transport)
    await client.connect()
    return client


def test_typed_lines_are_sent_and_quit_ends_cleanly(transport: str) -> None:
    screen = io.StringIO()

    async def main() -> None:
        server = ChatServer("127.0.0.1", 0, transport=transport)
        _, port = await server.start()
        bob = await session(port, "bob", transport)
        alice = await session(port, "alice", transport)
        with (
            create_pipe_input() as keys,
            create_app_session(input=keys, output=PlainTextOutput(screen)),
        ):
            prompt = asyncio.create_task(run_interactive(alice))
            keys.send_text("hello from the prompt\r")
            assert (await bob.until("msg", timeout=T))["text"] == "hello from the prompt"
            await bob.say("hi alice")
            keys.send_text("/nick alicia\r")
            assert (await bob.until("renamed", timeout=T))["new"] == "alicia"
            keys.send_text("/quit\r")
            async with asyncio.timeout(T):
                assert await prompt == 0
        assert alice.closed_reason == "quit"
        await bob.close()
        await server.close()

    asyncio.run(main())
    assert "<bob> hi alice" in screen.getvalue()  # printed above the prompt


def test_losing_the_server_ends_the_prompt(transport: str) -> None:
    screen = io.StringIO()

    async def main() -> None:
        server = ChatServer("127.0.0.1", 0, transport=transport)
        _, port = await server.start()
        alice = await session(port, "alice", transport)
        with (
            create_pipe_input() as keys,
            create_app_session(input=keys, output=PlainTextOutput(screen)),
        ):
            prompt = asyncio.create_task(run_interactive(alice))
            keys.send_text("half a line")  # no Enter: the user is typing when the server goes
            await server.close("maintenance")
            with pytest.raises(ConnectionLost, match="shut down \\(maintenance\\)"):
                async with asyncio.timeout(T):
                    await prompt

    asyncio.run(main())
    assert "* server shutting down: maintenance" in screen.getvalue()
