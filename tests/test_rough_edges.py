"""Issue 15 point 6: rough edges a new user met, each pinned by a test.

Command-line errors, the help texts' one style, UDP replies to unproven sources,
lookalike nicknames, /msg confirmation and /help ordering, interrupted downloads,
and uploads into a directory that does not exist yet.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bounded import run
from synack.cli import build_parser

T = 15.0


def synack(
    *args: str, stdin: str | None = None, timeout: float = T
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "synack", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


# --- a bad port is one line and exit 2 ---------------------------------------------------


@pytest.mark.parametrize("port", ["-1", "99999", "abc"])
@pytest.mark.parametrize(
    "command",
    [["chat", "serve"], ["chat", "serve", "--udp"], ["files", "serve", "."]],
    ids=["chat", "chat-udp", "files"],
)
def test_a_bad_port_is_one_line_and_exit_2(command: list[str], port: str) -> None:
    done = synack(*command, f"--port={port}")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "invalid port" in lines[0] and "--port" in lines[0], lines


def test_a_port_that_looks_like_an_option_is_still_one_line() -> None:
    done = synack("chat", "serve", "--port", "-1")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr


# --- chat --help and files --help speak one style --------------------------------------------


def _subcommands(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[name]
    raise KeyError(name)


def _groups() -> dict[str, argparse.ArgumentParser]:
    return {app: _subcommands(build_parser([app]), app) for app in ("chat", "files")}


def test_chat_and_files_name_their_subcommands_alike() -> None:
    for app, parser in _groups().items():
        help_text = parser.format_help()
        assert re.search(rf"^usage: synack {app} \[-h\] COMMAND \.\.\.$", help_text, re.M), (
            help_text
        )
        assert parser.description, f"synack {app} --help has no description"


def test_every_default_is_shown_as_default_colon() -> None:
    """Defaults read "(default: X)" in both apps; no bare "(X)" and no dest-style metavars."""
    for app, group in _groups().items():
        for verb, parser in _subcommands_of(group).items():
            for action in parser._actions:
                if not action.option_strings or action.help in (None, argparse.SUPPRESS):
                    continue
                where = f"synack {app} {verb} {action.option_strings[-1]}"
                shows_value = action.default not in (None, False, argparse.SUPPRESS)
                if shows_value:
                    assert "(default: %(default)" in action.help, where
                assert not re.search(r"\(%\(default\)", action.help), where
                if action.metavar is None and action.nargs != 0 and "_" in action.dest:
                    pytest.fail(f"{where}: name its value (metavar), e.g. SECONDS or N")
            text = parser.format_help()
            assert not re.search(r"\((?!default: )[\d.]+[^)]*\)", text), (app, verb, text)


def _subcommands_of(group: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in group._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


# --- a UDP chat server never answers an unproven source with more than it sent ---------------


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.inbox.put_nowait(data)

    def taken(self) -> list[bytes]:
        out = []
        while not self.inbox.empty():
            out.append(self.inbox.get_nowait())
        return out


@run
async def test_udp_replies_to_unproven_sources_are_no_larger_than_what_they_sent() -> None:
    from synack.apps.chat import UdpChatServer

    server = UdpChatServer("127.0.0.1", 0)
    addr = await server.start()
    loop = asyncio.get_running_loop()
    _, probe = await loop.create_datagram_endpoint(_Datagrams, local_addr=("127.0.0.1", 0))
    # After each case a second socket sends a datagram that always draws an answer. The
    # server reads and answers in arrival order, so once the marker's answer is in,
    # every answer to the case is in the probe's inbox too: no waiting on the clock.
    _, marker = await loop.create_datagram_endpoint(_Datagrams, local_addr=("127.0.0.1", 0))
    token_less_ping = b'{"op":"ping","seq":1,"token":"0123456789abcdef"}'
    cases = [
        b"",
        b"x",
        b"{}",
        b"z" * 50,
        token_less_ping,
        b'{"op":"say","text":"hello, anyone here?"}',
    ]
    try:
        for sent in cases:
            probe.transport.sendto(sent, addr)
            marker.transport.sendto(b"z" * 50, addr)
            async with asyncio.timeout(5):
                await marker.inbox.get()
            replies = probe.taken()
            assert all(len(r) <= len(sent) for r in replies), (sent, replies)
            if len(sent) < 20:
                assert replies == [], (sent, replies)  # nothing useful fits: silence
            else:
                assert len(replies) == 1, (sent, replies)  # a short error with its code
                reply = json.loads(replies[0])
                assert reply["op"] == "error" and reply["code"] in ("bad-request", "unknown-peer")
    finally:
        probe.transport.close()
        marker.transport.close()
        await server.close()


# --- nicknames that only look different are one nickname ------------------------------------

LOOKALIKES = [
    ("alice", "ALICE"),  # case alone, as before
    ("alice", "\u0430lice"),  # Cyrillic а
    ("alice", "\u0410LICE"),  # Cyrillic А, upper case
    ("poe", "\u0440\u043e\u0435"),  # Cyrillic р о е: one script, no mixing to catch
    ("paypal", "p\u0430yp\u0430l"),
    ("Alice", "AIice"),  # capital i for small L
    ("bob", "B0B"),  # digit zero, any case
    ("alice", "alice\u3164"),  # an invisible Hangul filler (a letter!) on the end
]
DISTINCT = [("alice", "alicia"), ("ann", "anne"), ("li", "ll"), ("bob", "rob"), ("émile", "emile")]


def _one_name(a: str, b: str) -> bool:
    from synack.apps.chat.protocol import check_nick, nick_keys

    return bool(set(nick_keys(check_nick(a))) & set(nick_keys(check_nick(b))))


@pytest.mark.parametrize(("a", "b"), LOOKALIKES)
def test_lookalike_nicknames_are_one_name(a: str, b: str) -> None:
    assert _one_name(a, b) and _one_name(b, a)


@pytest.mark.parametrize(("a", "b"), DISTINCT)
def test_different_nicknames_stay_different(a: str, b: str) -> None:
    assert not _one_name(a, b)


def test_the_skeleton_table_is_unicodes_whole_table() -> None:
    """Generated from confusables.txt and DerivedCoreProperties.txt, not typed in part."""
    from pathlib import Path

    import synack.apps.chat.protocol as protocol

    text = Path(protocol.__file__).with_name("confusables.tsv").read_text(encoding="utf-8")
    assert "confusables.txt" in text and "Version: " in text
    assert "DerivedCoreProperties" in text
    table = protocol._prototypes()
    assert len(table) > 6000
    assert table[0x0430] == "a" and table[0x0049] == "l" and table[0x200B] == ""


@run
async def test_the_server_refuses_a_lookalike_of_a_connected_nickname() -> None:
    from synack.apps.chat import ChatClient, ChatRefused, ChatServer

    server = ChatServer("127.0.0.1", 0)
    host, port = await server.start()
    alice = ChatClient(host, port, "alice")
    await alice.connect()
    try:
        with pytest.raises(ChatRefused) as refused:
            await ChatClient(host, port, "\u0430lice").connect()
        assert refused.value.code == "nick-taken"
        assert "too similar to 'alice'" in str(refused.value)
        bob = ChatClient(host, port, "bob")
        await bob.connect()
        await bob.set_nick("\u0430lic\u0435")
        error = await bob.until("error")
        assert error["code"] == "nick-taken" and "too similar" in error["message"]
        await bob.set_nick("B0B")  # one's own lookalike is still one's own name
        assert (await bob.until("renamed"))["new"] == "B0B"
        await bob.close()
    finally:
        await alice.close()
        await server.close()


# --- /msg is confirmed to its sender; /help in a script comes after earlier answers --------


@run
async def test_a_private_message_is_confirmed_to_its_sender() -> None:
    from synack.apps.chat import ChatClient, ChatServer

    server = ChatServer("127.0.0.1", 0, sniff_timeout=0.1)
    host, port = await server.start()
    alice = ChatClient(host, port, "alice")
    await alice.connect()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(b"bob\n")
        while b"you are bob" not in await reader.readline():
            pass
        await alice.private("BOB", "psst")
        assert await alice.until("sent") == {"op": "sent", "to": "bob", "text": "psst"}
        writer.write("/msg \u0430lice got it\n".encode())  # a lookalike reaches alice...
        assert (await alice.until("private"))["text"] == "got it"
        while (line := await reader.readline()).startswith(b"*"):
            pass
        assert line.decode() == "\u2192 alice: got it\r\n"  # ...and says so, named right
    finally:
        writer.close()
        await alice.close()
        await server.close()


@pytest.mark.parametrize("udp", [False, True], ids=["tcp", "udp"])
def test_scripted_help_comes_after_the_answers_to_earlier_lines(udp: bool) -> None:
    flags = ["--udp"] if udp else []
    server = subprocess.Popen(
        [sys.executable, "-m", "synack", "chat", "serve", "--port", "0", "--quiet", *flags],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    bob = None
    try:
        assert server.stdout is not None
        address = server.stdout.readline().split("listening on ")[1].split()[0]
        bob = subprocess.Popen(
            [sys.executable, "-m", "synack", "chat", "join", address, "--nick", "bob", *flags],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert bob.stdout is not None and "you are bob" in bob.stdout.readline()
        script = "/msg bob hi\n/who\n/rooms\n/help\n"
        done = synack("chat", "join", address, "--nick", "alice", *flags, stdin=script)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        order = [
            "\u2192 bob: hi",
            "* in #lobby: alice, bob",
            "* rooms: #lobby (2)",
            "Type a line to say it to your room. Commands:",
            "* bye",
        ]
        assert [line for line in lines if line in order] == order, lines
    finally:
        if bob is not None:
            bob.kill()
            bob.wait(T)
        server.kill()
        server.wait(T)


# --- put ... inbox/ makes inbox inside the served root ---------------------------------------


def _files_server(root: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen(
        [sys.executable, "-m", "synack", "files", "serve", str(root), "--port", "0", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert server.stdout is not None
    line = server.stdout.readline()
    return server, line.split(" on ", 1)[1].split()[0]


def test_put_into_a_missing_directory_ending_in_slash_makes_it(tmp_path: Path) -> None:
    root, here = tmp_path / "served", tmp_path / "here"
    root.mkdir()
    here.mkdir()
    (here / "notes.txt").write_text("remember the milk\n")
    (here / "tree").mkdir()
    (here / "tree" / "leaf.txt").write_text("leaf\n")
    server, address = _files_server(root, "--allow-upload")
    try:
        notes = str(here / "notes.txt")
        done = synack("files", "put", address, notes, "inbox/")  # as the README shows it
        assert done.returncode == 0, done.stderr
        assert (root / "inbox" / "notes.txt").read_text() == "remember the milk\n"
        done = synack("files", "put", address, str(here / "tree"), "a/b/c/")  # mkdir -p
        assert done.returncode == 0, done.stderr
        assert (root / "a" / "b" / "c" / "tree" / "leaf.txt").read_text() == "leaf\n"
        done = synack("files", "put", address, notes, "inbox/notes.txt/")  # a file, not a dir
        assert done.returncode == 1 and "not a directory" in done.stderr, done.stderr
    finally:
        server.kill()
        server.wait(T)


def test_put_never_makes_a_directory_outside_the_served_root(tmp_path: Path) -> None:
    root, outside = tmp_path / "served", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "escape").symlink_to(outside)
    local = tmp_path / "x.txt"
    local.write_text("x")
    server, address = _files_server(root, "--allow-upload")
    read_only, ro_address = _files_server(root)
    try:
        done = synack("files", "put", address, str(local), "escape/new/")
        assert done.returncode == 1 and "outside" in done.stderr, done.stderr
        done = synack("files", "put", address, str(local), "../up/")
        assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
        done = synack("files", "put", ro_address, str(local), "inbox/")
        assert done.returncode == 1 and "upload" in done.stderr, done.stderr
        assert list(outside.iterdir()) == [] and not (tmp_path / "up").exists()
        assert sorted(p.name for p in root.iterdir()) == ["escape"]
    finally:
        for proc in (server, read_only):
            proc.kill()
            proc.wait(T)


# --- an interrupted download says how to resume; a plain re-run keeps the partial file --------


def _partial(target: Path) -> Path:
    from synack.apps.files.receiver import partial_path

    return Path(partial_path(str(target)))


def test_a_plain_rerun_keeps_the_partial_file_and_names_resume_and_force(tmp_path: Path) -> None:
    served, here = tmp_path / "served", tmp_path / "here"
    served.mkdir()
    here.mkdir()
    data = os.urandom(300_000)
    (served / "big.bin").write_bytes(data)
    part = _partial(here / "big.bin")
    server, address = _files_server(served)
    try:
        part.write_bytes(data[:100_000])
        done = synack("files", "get", address, "big.bin", str(here))
        assert done.returncode == 1, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "--resume" in lines[0] and "--force" in lines[0], lines
        assert "100000 bytes" in lines[0], lines
        assert part.read_bytes() == data[:100_000] and not (here / "big.bin").exists()
        done = synack("files", "get", address, "big.bin", str(here), "--resume")
        assert done.returncode == 0, done.stderr
        assert (here / "big.bin").read_bytes() == data and not part.exists()
        (here / "big.bin").unlink()
        part.write_bytes(b"not the right bytes at all")
        done = synack("files", "get", address, "big.bin", str(here), "--force")  # start over
        assert done.returncode == 0, done.stderr
        assert (here / "big.bin").read_bytes() == data and not part.exists()
    finally:
        server.kill()
        server.wait(T)


@pytest.mark.parametrize("how", ["ctrl-c", "server-dies"])
def test_an_interrupted_download_says_how_to_resume(tmp_path: Path, how: str) -> None:
    served, here = tmp_path / "served", tmp_path / "here"
    served.mkdir()
    here.mkdir()
    data = os.urandom(3_000_000)
    (served / "big.bin").write_bytes(data)
    part = _partial(here / "big.bin")
    server, address = _files_server(served, "--max-rate", "1M")  # about 3 s for the file
    try:
        client = subprocess.Popen(
            [sys.executable, "-m", "synack", "files", "get", address, "big.bin", str(here)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + T
        while not part.exists():  # made just before the request goes out
            assert time.monotonic() < deadline and client.poll() is None
            time.sleep(0.02)
        # Mid-transfer, by the clock: the server sends at 1 MB/s, so half a second in
        # about a sixth has come, and nothing outside the client can see it (it writes
        # in 4 MiB buffers, so the partial file stays empty until it is interrupted).
        time.sleep(0.5)
        if how == "ctrl-c":
            client.send_signal(signal.SIGINT)
        else:
            server.kill()
        _, err = client.communicate(timeout=T)
        assert client.returncode == (130 if how == "ctrl-c" else 1), err
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        command = f"synack files get {address} big.bin {here} --resume"
        assert lines[0].endswith(f"to continue: {command}"), lines[0]
        kept = part.stat().st_size
        assert 0 < kept < len(data) and f"{kept} bytes kept in {part}" in lines[0], lines
        if how == "server-dies":
            server.wait(T)
            server, address = _files_server(served)
            command = command.replace(command.split()[3], address)
        done = synack(*command.split()[1:])
        assert done.returncode == 0, done.stderr
        assert (here / "big.bin").read_bytes() == data and not part.exists()
    finally:
        server.kill()
        server.wait(T)
