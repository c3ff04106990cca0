"""`synack demo`: a guided tour on loopback that exits by itself.

Three acts, each the real thing rather than a simulation of it:

1. a chat server and two scripted clients (alice and bob) on 127.0.0.1,
   showing the length-before-data framing that fixes TCP's "sticky packets";
2. a file server and a verified download (SHA-256 end to end, written under a
   temporary name and renamed only once verified);
3. the same kind of conversation one layer down: synack's own TCP on a virtual
   network, every segment of the three-way handshake and the four-way close
   printed as tcpdump would, with the states the seeds' notes name.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import tempfile
import time
from typing import Any

from rich.console import Console

from synack.apps.chat import ChatClient, ChatError, ChatServer
from synack.apps.files import FileClient, FileServer
from synack.apps.lessons.trace import SeqTracker, tcpdump_line
from synack.tcp import Config, State
from synack.testing.fakenet import FakeNetwork, Link, PacketEvent, connected_pair
from synack.wire.frame import encode_message

FILE_SIZE = 8 * 1024 * 1024


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo", help="watch a chat, a verified file transfer and a TCP handshake, then exit"
    )
    p.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    console = Console(highlight=False, soft_wrap=True)
    started = time.monotonic()
    console.print("[bold]synack demo[/] — everything runs on 127.0.0.1 and stops by itself.\n")
    asyncio.run(_chat_act(console))
    asyncio.run(_files_act(console))
    _tcp_act(console)
    console.print(
        f"\n[bold green]Demo finished[/] in {time.monotonic() - started:.1f} s. "
        "Try it yourself: [bold]synack chat serve[/] and "
        "[bold]synack chat join 127.0.0.1:7007 --nick you[/]."
    )
    console.print(
        "Learn TCP claim by claim: [bold]synack lesson[/] lists the lessons (handshake, "
        "close, retransmit, sticky, syn-flood...), each drawn as a ladder and checked; "
        "add [bold]--lang zh[/] for Chinese."
    )
    return 0


def _step(console: Console, text: str) -> None:
    console.print(f"[cyan]>[/] {text}")


def _show(console: Console, who: str, event: dict[str, Any]) -> None:
    console.print(f"    [magenta]{who}[/] receives ", end="")
    console.print(json.dumps(event, ensure_ascii=False), markup=False)


async def _chat_act(console: Console) -> None:
    console.rule("[bold]1. Chat over TCP")
    server = ChatServer("127.0.0.1", 0)
    host, port = await server.start()
    _step(console, f"A chat server listens on {host}:{port} (bind, listen; accept waits).")
    alice = ChatClient(host, port, "alice", room="lobby")
    bob = ChatClient(host, port, "bob", room="lobby")
    try:
        welcome = await alice.connect()
        _step(
            console,
            "alice connects: connect() runs the three-way handshake "
            "(SYN, SYN-ACK, ACK), then says hello.",
        )
        _show(console, "alice", welcome)
        await bob.connect()
        _step(console, "bob connects to the same room.")
        _show(console, "alice", await alice.until("joined", nick="bob"))

        frame = encode_message({"op": "say", "text": "hi bob!"})
        _step(
            console,
            "alice says 'hi bob!'. On the wire it is one frame, the length "
            "before the data, so the reader knows where it ends:",
        )
        console.print(
            f"    type={frame[0]}  length={int.from_bytes(frame[1:9], 'big')}  "
            f"body={frame[9:].decode()}"
        )
        console.print(
            "    (TCP is a byte stream: without the length, two quick messages "
            "could arrive glued together — the 'sticky packet' problem.)"
        )
        await alice.say("hi bob!")
        _show(console, "bob", await bob.until("msg"))

        await bob.say("hello alice, got it")
        _show(console, "alice", await alice.until("msg"))

        _step(
            console,
            "bob tries to send a blank message: it is refused with a clear "
            "error (the server would refuse it too, to the sender only).",
        )
        try:
            await bob.say("   ")
        except ChatError as exc:
            console.print(f"    bob sees: {exc}")

        _step(console, "bob sends alice a private message.")
        await bob.private("alice", "psst, this one is only for you")
        _show(console, "alice", await alice.until("private"))

        _step(console, "alice asks who is here.")
        await alice.who()
        _show(console, "alice", await alice.until("users"))
    finally:
        await bob.close()
        _step(console, "bob quits: close() starts TCP's four-way close (FIN, ACK, FIN, ACK).")
        _show(console, "alice", await alice.until("left", nick="bob"))
        await alice.close()
        await server.close()
    _step(console, "The server stops; SO_REUSEADDR lets it restart on the same port at once.\n")


async def _files_act(console: Console) -> None:
    console.rule("[bold]2. File transfer with end-to-end SHA-256")
    with tempfile.TemporaryDirectory(prefix="synack-demo-") as tmp:
        served = os.path.join(tmp, "served")
        downloads = os.path.join(tmp, "downloads")
        os.mkdir(served)
        os.mkdir(downloads)
        source = os.path.join(served, "lesson.bin")
        data = os.urandom(FILE_SIZE)
        with open(source, "wb") as f:
            f.write(data)
        digest = hashlib.sha256(data).hexdigest()
        del data
        server = FileServer(served, host="127.0.0.1", port=0)
        await server.start()
        host, port = server.address
        _step(
            console,
            f"A file server shares a directory on {host}:{port}; "
            f"it holds lesson.bin ({FILE_SIZE // (1024 * 1024)} MiB).",
        )
        try:
            async with await FileClient.connect(host, port) as client:
                entries = await client.list()
                _step(
                    console,
                    "The client lists it: "
                    + ", ".join(f"{e.path} ({e.size:,} bytes)" for e in entries),
                )
                started = time.perf_counter()
                done = await client.get("lesson.bin", downloads)
                elapsed = time.perf_counter() - started
        finally:
            await server.close()
        target = os.path.join(downloads, "lesson.bin")
        with open(target, "rb") as f:
            ok = hashlib.sha256(f.read()).hexdigest() == digest
        rate = done.bytes / elapsed / 1e6 if elapsed > 0 else float("inf")
        _step(
            console,
            f"Downloaded {done.bytes:,} bytes in {elapsed * 1000:.0f} ms "
            f"({rate:,.0f} MB/s). The body went out with sendfile() after a header "
            "that gave its length.",
        )
        _step(
            console,
            "It landed as a temporary file and was renamed only after the "
            f"SHA-256 matched the server's: [bold]{'verified' if ok else 'MISMATCH'}"
            f"[/] ({digest[:16]}...).\n",
        )
        if not ok:
            raise RuntimeError("the demo download did not verify")


def _tcp_act(console: Console) -> None:
    console.rule("[bold]3. Inside TCP: synack's own stack, segment by segment")
    _step(
        console,
        "Two hosts on a virtual network (10 ms each way), running synack's "
        "user-space TCP. Every segment is printed as tcpdump would print it.",
    )
    net = FakeNetwork(seed=7, link=Link(delay=0.010))
    lines: list[str] = []
    tracker = SeqTracker()  # sequence numbers relative to each side's ISN, as tcpdump shows

    def tap(
        now: float, event: PacketEvent, segment: bytes | bytearray, src: bytes, dst: bytes
    ) -> None:
        if event is PacketEvent.SENT:
            lines.append(tcpdump_line(now, bytes(segment), src, dst, tracker))

    net.tap = tap
    client, server = connected_pair(
        net,
        Config(secret=b"synack-demo" * 3),
        client_address="198.18.0.1",
        server_address="198.18.0.2",
    )
    _flush(console, lines, "three-way handshake: SYN, SYN-ACK, ACK")
    console.print(f"    client: {client.state}, server: {server.state}")

    client.send(b"hello, server")
    net.run_until(lambda: server.receive_available > 0, 5.0, what="the data")
    _flush(
        console,
        lines,
        "data, and its acknowledgement: the sender keeps a copy until "
        "this ACK arrives, and would resend it on a timer",
    )
    console.print(f"    server reads {server.receive()!r}")
    net.run_for(0.1)
    _flush(console, lines, "")

    client.close()
    net.run_until(lambda: client.state is State.FIN_WAIT_2, 5.0, what="FIN-WAIT-2")
    _flush(console, lines, "client closes: FIN, and its ACK")
    console.print(
        f"    client: {client.state}, server: {server.state} "
        "(the server may still send; this is a half-close)"
    )
    server.close()
    net.run_until(lambda: client.state is State.TIME_WAIT, 5.0, what="TIME-WAIT")
    _flush(console, lines, "server closes too: FIN, and the last ACK")
    console.print(
        f"    client: {client.state} — it waits 2×MSL "
        f"({2 * client.config.msl:.0f} s here) so a lost last ACK can be resent; "
        f"server: {server.state}"
    )
    net.run_until(lambda: server.state is State.CLOSED, 5.0, what="server CLOSED")
    console.print(f"    the last ACK arrives: server: {server.state}")
    net.run_until(lambda: client.state is State.CLOSED, 300.0, what="client CLOSED")
    console.print(
        f"    ...{net.now:.0f} virtual seconds later, client: {client.state} "
        "(virtual time: the wait took no real time at all)."
    )


def _flush(console: Console, lines: list[str], title: str) -> None:
    if title:
        _step(console, title)
    for line in lines:
        console.print(f"    {line}", markup=False)
    lines.clear()
