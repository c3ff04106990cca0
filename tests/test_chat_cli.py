"""`synack chat serve` and `synack chat join` as a user runs them: real processes, real signals.

Every wait is for a line, an exit or a socket event, bounded by a timeout. Tests that
take `transport` run on every transport (tests/conftest.py), with ``--transport``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from loopthread import BlockingStream, free_port, port_type
from synack import transport as seam
from synack.apps.chat import ChatClient, ChatServer
from synack.cli import main
from synack.transport.synack import KEEPALIVE_IDLE
from synack.wire.frame import MAGIC, FrameDecoder, Message, encode_message

T = 5.0
TRANSPORTS = seam.names()


class Proc:
    """A `synack` subprocess whose stdout lines can be waited for."""

    def __init__(self, *args: str, stdin: int | None = subprocess.DEVNULL) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.p = subprocess.Popen(
            [sys.executable, "-m", "synack", *args],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.p.stdout is not None
        for raw in self.p.stdout:
            self.lines.put(raw.decode().rstrip("\n"))
        self.lines.put(None)

    def expect(self, text: str, timeout: float = T) -> str:
        """The first stdout line (from now on) containing `text`."""
        while True:
            line = self.lines.get(timeout=timeout)
            if line is None:
                raise AssertionError(f"stdout ended before {text!r}; saw {self.seen}")
            self.seen.append(line)
            if text in line:
                return line

    def rest(self) -> list[str]:
        out = []
        while (line := self.lines.get(timeout=T)) is not None:
            out.append(line)
        return out

    def finish(self, timeout: float = T) -> tuple[int, str]:
        code = self.p.wait(timeout=timeout)
        assert self.p.stderr is not None
        return code, self.p.stderr.read().decode()

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(timeout=T)


@contextlib.contextmanager
def serve(*args: str, transport: str | None = None) -> Iterator[tuple[Proc, int]]:
    flags = ["--transport", transport] if transport is not None else []
    proc = Proc("chat", "serve", "--port", "0", *flags, *args)
    try:
        line = proc.expect("listening on")
        port = int(line.split("listening on ")[1].split()[0].rsplit(":", 1)[1])
        yield proc, port
    finally:
        proc.kill()


def join(port: int, nick: str, transport: str) -> Proc:
    """`synack chat join` with its stdin a pipe the test writes to."""
    address = f"127.0.0.1:{port}"
    return Proc(
        "chat", "join", address, "--nick", nick, "--transport", transport, stdin=subprocess.PIPE
    )


class Framed:
    """A blocking framed client for synchronous tests."""

    def __init__(self, port: int, nick: str, transport: str) -> None:
        self.sock = BlockingStream("127.0.0.1", port, transport=transport, timeout=T)
        self.decoder = FrameDecoder()
        hello = {"op": "hello", "app": "chat", "version": 1, "nick": nick}
        self.sock.sendall(MAGIC + encode_message(hello))
        assert self.event()["op"] == "welcome"

    def event(self) -> dict[str, Any]:
        while True:
            ev = self.decoder.next_event()
            if isinstance(ev, Message):
                return ev.body
            data = self.sock.recv(65536)
            assert data, "connection closed"
            self.decoder.feed(data)

    def until(self, op: str) -> dict[str, Any]:
        while (ev := self.event())["op"] != op:
            pass
        return ev

    def say(self, text: str) -> None:
        self.sock.sendall(encode_message({"op": "say", "text": text}))


class ServerThread:
    """A ChatServer on its own loop in a thread, so `main()` can run in the test's thread."""

    def __init__(self, transport: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.server = ChatServer("127.0.0.1", 0, transport=transport)
        self.port = 0
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.port = self.loop.run_until_complete(self.server.start())[1]
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert ready.wait(T)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(T)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(T)


# --- signals --------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signals_shut_the_server_down_cleanly_and_tell_the_clients(
    sig: signal.Signals, transport: str
) -> None:
    with serve(transport=transport) as (proc, port):
        framed = Framed(port, "alice", transport)
        proc.expect("alice joined")
        text = BlockingStream("127.0.0.1", port, transport=transport, timeout=T)
        text.sendall(b"bob\n")
        proc.expect("bob joined")
        proc.p.send_signal(sig)
        assert framed.until("shutdown") == {"op": "shutdown", "message": "stopped by its operator"}
        received = b""
        while chunk := text.recv(4096):
            received += chunk
        assert received.endswith(b"* server shutting down: stopped by its operator\r\n")
        assert framed.sock.recv(1) == b""  # and then the server hung up
        # The clients hang up too, so no closing handshake is left for the server's exit
        # (a process running our TCP gives its connections a moment to finish closing).
        framed.sock.close()
        text.close()
        code, err = proc.finish()
        assert code == 0, err
        assert proc.expect("stopped")
        assert "Traceback" not in err


def test_udp_server_shuts_down_on_sigterm_and_tells_its_peers() -> None:
    with serve("--udp") as (proc, port):
        peer = Proc(
            "chat", "join", f"127.0.0.1:{port}", "--nick", "u1", "--udp", stdin=subprocess.PIPE
        )
        peer.expect("you are u1")
        proc.p.send_signal(signal.SIGTERM)
        assert proc.finish()[0] == 0
        peer.expect("server shutting down")
        code, err = peer.finish()
        assert code == 1 and err.strip() == "synack: the server shut down (stopped by its operator)"


# --- scripted clients -----------------------------------------------------------------------


def test_scripted_join_delivers_every_line_before_quitting_at_eof(transport: str) -> None:
    with serve("--quiet", transport=transport) as (_, port):
        observer = Framed(port, "observer", transport)
        lines = [f"line {i}" for i in range(300)]
        bot = join(port, "bot", transport)
        assert bot.p.stdin is not None
        bot.p.stdin.write(("\n".join(lines) + "\n").encode())
        bot.p.stdin.close()  # EOF straight after the last line
        code, err = bot.finish()
        assert code == 0, err
        assert bot.expect("* bye")
        got: list[str] = []
        while len(got) < len(lines):
            ev = observer.event()
            if ev["op"] == "msg":
                got.append(ev["text"])
        assert got == lines
        observer.sock.close()


def test_scripted_join_prints_what_arrives_and_reports_local_errors(transport: str) -> None:
    with serve("--quiet", transport=transport) as (_, port):
        bot = join(port, "bot", transport)
        bot.expect("you are bot in #lobby")
        other = Framed(port, "other", transport)
        bot.expect("* other joined #lobby")
        other.say("hello bot")
        assert bot.expect("<other>") == "<other> hello bot"
        assert bot.p.stdin is not None
        bot.p.stdin.write(b"/bogus\n\n/who\n")
        bot.p.stdin.flush()
        assert bot.expect("* in #lobby") == "* in #lobby: bot, other"
        bot.p.stdin.write(b"/quit\n")
        bot.p.stdin.flush()
        code, err = bot.finish()
        assert code == 0
        assert err.splitlines() == [
            "! unknown command /bogus (try /help)",
            "! empty message not sent",
        ]
        other.sock.close()


# How soon a peer on our TCP learns that a SIGKILLed process is gone: its keepalive probe
# draws an ICMP port-unreachable (transport/synack.py), confirmed one RTO later.
NOTICED = KEEPALIVE_IDLE + T


@pytest.mark.parametrize("how", ["killed", "shutdown"])
def test_losing_the_server_is_one_clear_line_and_a_failure(how: str, transport: str) -> None:
    with serve("--quiet", transport=transport) as (server, port):
        bot = join(port, "bot", transport)
        bot.expect("you are bot")
        if how == "killed":
            # No notice at all: the kernel closes a killed process's sockets (FIN); ours
            # die with it, and the client, which only waits for messages, learns from its
            # keepalive probe.
            server.p.kill()
        else:
            server.p.send_signal(signal.SIGTERM)
        code, err = bot.finish(timeout=NOTICED)
        assert code == 1
        reset = "synack: lost the connection to the server (Connection reset by peer)"
        expected = {
            ("killed", "os"): "synack: the server closed the connection",
            ("killed", "synack"): reset,
            ("shutdown", transport): "synack: the server shut down (stopped by its operator)",
        }[how, transport]
        assert err.strip() == expected


def test_a_killed_client_leaves_the_room_and_frees_its_nickname(transport: str) -> None:
    with serve("--quiet", transport=transport) as (_, port):
        alice = join(port, "alice", transport)
        alice.expect("you are alice")
        bob = join(port, "bob", transport)
        bob.expect("you are bob")
        alice.expect("* bob joined #lobby")
        bob.p.kill()  # on our TCP, the server learns from its keepalive probe
        try:
            left = alice.expect("* bob left #lobby", timeout=NOTICED)
            assert left in (
                "* bob left #lobby (connection closed)",
                "* bob left #lobby (connection lost (Connection reset by peer))",
            ), left
            again = join(port, "bob", transport)
            again.expect("you are bob")
            again.kill()
        finally:
            alice.kill()
            bob.kill()


def test_udp_chat_between_two_processes() -> None:
    with serve("--udp") as (proc, port):
        observer = Proc(
            "chat", "join", f"127.0.0.1:{port}", "--nick", "obs", "--udp", stdin=subprocess.PIPE
        )
        observer.expect("you are obs")
        sender = Proc(
            "chat", "join", f"127.0.0.1:{port}", "--nick", "snd", "--udp", stdin=subprocess.PIPE
        )
        assert sender.p.stdin is not None
        sender.p.stdin.write(b"over udp\n/msg obs quietly\n" + b"z" * 1300 + b"\n")
        sender.p.stdin.close()
        code, err = sender.finish()
        assert code == 0
        assert "message too long for one datagram" in err
        assert observer.expect("<snd>") == "<snd> over udp"
        assert observer.expect("*snd*") == "*snd* quietly"
        assert observer.p.stdin is not None
        observer.p.stdin.close()
        assert observer.finish()[0] == 0
        proc.expect("snd joined #lobby (udp;")


# --- --transport ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["chat", "serve"],
        ["chat", "join"],
        ["files", "serve"],
        ["files", "get"],
        ["files", "put"],
        ["files", "ls"],
    ],
    ids=" ".join,
)
def test_every_tcp_command_offers_every_transport(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines anywhere
    assert f"--transport {{{','.join(TRANSPORTS)}}}" in text, text
    assert "synack's own TCP" in text and "UDP port" in text, text


def test_synack_transport_refuses_to_listen_on_every_address(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for command in (["chat", "serve"], ["files", "serve", "."]):
        assert main([*command, "--host", "0.0.0.0", "--transport", "synack"]) == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and err.startswith(
            "synack: --transport synack listens on one address, not 0.0.0.0"
        ), err


# --- one-line errors through main() ----------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (
            ["chat", "join", "127.0.0.1", "--nick", "a"],
            2,
            "invalid address '127.0.0.1': expected HOST:PORT",
        ),
        (
            ["chat", "join", "127.0.0.1:99999", "--nick", "a"],
            2,
            "invalid port 99999: must be 0-65535",
        ),
        (["chat", "join", "127.0.0.1:0", "--nick", "a"], 2, "port 0 cannot be connected to"),
        (["chat", "join", "300.1.1.1:7", "--nick", "a"], 2, "invalid IPv4 address '300.1.1.1'"),
        (["chat", "join", "127.0.0.1:7", "--nick", "a b"], 2, "invalid nickname 'a b'"),
        (["chat", "join", "127.0.0.1:7", "--nick", "a", "--room", "#"], 2, "invalid room '#'"),
    ],
)
def test_bad_arguments(
    argv: list[str], code: int, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == code
    _out, err = capsys.readouterr()
    assert err.startswith("synack: ") and message in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    "flags", [["--transport", name] for name in TRANSPORTS] + [["--udp"]], ids=[*TRANSPORTS, "udp"]
)
def test_refused_connection(flags: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port(socket.SOCK_STREAM if flags == ["--transport", "os"] else socket.SOCK_DGRAM)
    argv = ["chat", "join", f"127.0.0.1:{port}", "--nick", "a", *flags]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err == f"synack: cannot connect to 127.0.0.1:{port}: connection refused\n"


def test_nickname_taken_and_server_full(transport: str, capsys: pytest.CaptureFixture[str]) -> None:
    st = ServerThread(transport)
    argv = ["chat", "join", f"127.0.0.1:{st.port}", "--transport", transport, "--nick"]
    try:
        alice = Framed(st.port, "alice", transport)
        assert main([*argv, "Alice"]) == 1
        assert capsys.readouterr().err == "synack: nickname 'Alice' is taken\n"
        st.server.max_clients = 1
        assert main([*argv, "bob"]) == 1
        err = capsys.readouterr().err
        assert err == "synack: server full (1 connections); try again later\n"
        alice.sock.close()
    finally:
        st.stop()


def test_serve_on_a_port_in_use(transport: str, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket(socket.AF_INET, port_type(transport)) as taken:
        taken.bind(("127.0.0.1", 0))
        if taken.type == socket.SOCK_STREAM:
            taken.listen()
        port = taken.getsockname()[1]
        assert main(["chat", "serve", "--port", str(port), "--transport", transport]) == 1
    err = capsys.readouterr().err
    assert err == f"synack: cannot listen on 127.0.0.1:{port}: address already in use\n"


def test_library_client_against_a_threaded_server(transport: str) -> None:
    """The API the demo uses works from plain asyncio.run, against a server elsewhere."""
    st = ServerThread(transport)

    async def chat() -> None:
        a = ChatClient("127.0.0.1", st.port, "a", transport=transport)
        b = ChatClient("127.0.0.1", st.port, "b", transport=transport)
        await a.connect()
        await b.connect()
        await a.say("hi b")
        assert (await b.until("msg"))["text"] == "hi b"
        await a.close()
        await b.close()

    try:
        asyncio.run(chat())
    finally:
        st.stop()
