"""The lessons about the socket API, on real loopback sockets and the operating system's TCP.

sticky -- claim: TCP is a byte stream without message boundaries: two sends can come
out of one read glued together, and sending each message's length first recovers them.

many-clients -- claim: a server that serves one connection at a time makes every other
client wait (connected, but unanswered) until the one before hangs up; a server that
gives each connection its own task answers them all at once.

download -- claim: one recv(1024), as in the notes' download client, gets only the
start of a file and cannot tell; sending the size first lets the client read exactly
the whole file, and a checksum proves it.

Apps reach the network only through `synack.transport` (asyncio streams), as every
app of synack must.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import os
import tempfile
from collections.abc import Awaitable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import TypeVar

from synack import transport
from synack.apps.lessons.common import check, verdict
from synack.apps.lessons.model import End, LessonRun
from synack.apps.lessons.realtime import Tape
from synack.wire.frame import (
    BlobData,
    BlobEnd,
    BlobStart,
    FrameDecoder,
    Message,
    encode_blob_header,
    encode_message,
)

HOST = "127.0.0.1"
# The TCP the socket-API lessons run on: the operating system's ("os"), or synack's
# own carried in UDP ("synack"; `synack lesson NAME --transport synack`).
LESSON_TRANSPORT: contextvars.ContextVar[str] = contextvars.ContextVar(
    "lesson_transport", default="os"
)
WAIT = 5.0  # seconds any one step may take before the lesson fails instead of hanging
ATTEMPTS = 3  # a glued read is near certain on loopback; allow a rare split a retry

T = TypeVar("T")


def _ends(left: str = "end.sender", right: str = "end.receiver") -> tuple[End, End]:
    return End("client", left, HOST), End("server", right, HOST)


async def _bounded(aw: Awaitable[T]) -> T:
    return await asyncio.wait_for(aw, WAIT)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with suppress(ConnectionError):
        await writer.wait_closed()


# ---------------------------------------------------------------------- sticky


async def _one_read(messages: list[bytes]) -> bytes:
    """Send `messages` with one write each; return what ONE read at the other end gets.

    The receiver is busy when they arrive: its transport does not read until both
    writes are done, as a server stuck in other work would not call recv. The reader
    asks for at most 1024 bytes, as the notes' recv(1024) does.
    """
    paused = asyncio.Event()
    sent = asyncio.Event()
    result: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stream = writer.transport
        if isinstance(stream, asyncio.ReadTransport):
            stream.pause_reading()
        paused.set()
        await sent.wait()
        if isinstance(stream, asyncio.ReadTransport):
            stream.resume_reading()
        try:
            result.set_result(await reader.read(1024))
        finally:
            await _close(writer)

    server = await transport.start_server(handler, HOST, 0, transport=LESSON_TRANSPORT.get())
    try:
        host, port = server.addresses[0]
        _reader, writer = await _bounded(
            transport.open_connection(host, port, transport=LESSON_TRANSPORT.get())
        )
        await _bounded(paused.wait())
        for message in messages:
            writer.write(message)
            await _bounded(writer.drain())
        sent.set()
        data = await _bounded(result)
        await _close(writer)
        return data
    finally:
        server.close()
        await server.wait_closed()


async def _glued(messages: list[bytes]) -> tuple[bytes, int]:
    """One read that returned all of `messages`, and the attempts it took."""
    whole = b"".join(messages)
    data = b""
    for attempt in range(1, ATTEMPTS + 1):
        data = await _one_read(messages)
        if data == whole:
            return data, attempt
    return data, ATTEMPTS


async def _sticky() -> LessonRun:
    tape = Tape("sticky", _ends())
    words = [b"hello", b"world"]

    tape.section("sticky.section.raw")
    tape.note("sticky.raw")
    raw, raw_attempts = await _glued(words)
    for w in words:
        tape.arrow("client", "server", f"send({w!r})")
    tape.call("server", f"recv(1024) -> {raw!r}")
    tape.note("sticky.glued", n=len(raw))

    tape.section("sticky.section.framed")
    tape.note("sticky.framed")
    frames = [encode_message({"text": w.decode()}) for w in words]
    framed, framed_attempts = await _glued(frames)
    for w, f in zip(words, frames, strict=True):
        tape.arrow("client", "server", f"send([1|{len(f) - 9}]" + '{"text":"' + w.decode() + '"})')
    tape.call("server", f"recv(1024) -> {len(framed)} bytes")
    decoder = FrameDecoder()
    decoder.feed(framed)
    recovered = [e.body["text"] for e in decoder if isinstance(e, Message)]
    tape.call("server", "frames: " + ", ".join(repr(t) for t in recovered))
    tape.note("sticky.recovered", n=len(framed), count=len(recovered))
    tape.note("sticky.udp")

    run = tape.run
    run.verdict = verdict(
        "sticky.claim",
        [
            check("sticky.check.glued", raw == b"".join(words), data=repr(raw), sends=len(words)),
            check(
                "sticky.check.framed",
                framed == b"".join(frames) and recovered == [w.decode() for w in words],
                n=len(framed),
                texts=", ".join(repr(t) for t in recovered),
            ),
        ],
        sends=[w.decode() for w in words],
        one_read=raw.decode(errors="replace"),
        framed_read_bytes=len(framed),
        recovered=recovered,
        attempts=raw_attempts + framed_attempts,
    )
    return run


def run_sticky() -> LessonRun:
    return asyncio.run(_sticky())


# ---------------------------------------------------------------------- many-clients

CLIENTS = 3


@dataclass
class _Server:
    """An echo server that serves one connection at a time, or each in its own task."""

    tape: Tape
    one_at_a_time: bool
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    active: int = 0
    most_active: int = 0
    log: list[str] = field(default_factory=list)
    finished: asyncio.Event = field(default_factory=asyncio.Event)  # every handler is done

    async def handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.one_at_a_time:
            async with self.lock:  # the notes' loop: accept, serve until it hangs up, accept
                await self._serve(reader, writer)
        else:
            await self._serve(reader, writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        tag = "?"
        try:
            while line := await reader.readline():
                tag = line.split()[-1].decode()
                self.log.append(f"serve {tag}")
                writer.write(line.upper())
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            self.active -= 1
            self.log.append(f"done {tag}")
            await _close(writer)
            if sum(entry.startswith("done") for entry in self.log) == CLIENTS:
                self.finished.set()


async def _clients(tape: Tape, one_at_a_time: bool) -> dict[str, object]:
    srv = _Server(tape, one_at_a_time)
    server = await transport.start_server(srv.handler, HOST, 0, transport=LESSON_TRANSPORT.get())
    conns: list[tuple[str, asyncio.StreamReader, asyncio.StreamWriter]] = []
    order: list[str] = []
    answered_first = 0  # replies the clients had before the first of them hung up
    try:
        host, port = server.addresses[0]
        for i in range(1, CLIENTS + 1):
            tag = f"#{i}"
            reader, writer = await _bounded(
                transport.open_connection(host, port, transport=LESSON_TRANSPORT.get())
            )
            tape.call("client", f"{tag} connect() -> ok")
            line = f"hello from {tag}\n".encode()
            tape.arrow("client", "server", f"{tag} {line.strip()!r}")
            writer.write(line)
            await _bounded(writer.drain())
            conns.append((tag, reader, writer))
        tape.note("mc.all_connected", n=CLIENTS)

        async def answer(tag: str, reader: asyncio.StreamReader) -> bytes:
            reply = await _bounded(reader.readline())
            order.append(f"reply {tag}")
            return reply

        if one_at_a_time:
            for tag, reader, writer in conns:
                reply = await answer(tag, reader)
                tape.arrow("server", "client", f"{tag} {reply.strip()!r}")
                if tag == "#1":
                    answered_first = len(order)
                    tape.note("mc.waiting")
                await _close(writer)
                order.append(f"close {tag}")
                tape.call("client", f"{tag} close()")
        else:
            replies = await asyncio.gather(*(answer(tag, reader) for tag, reader, _ in conns))
            answered_first = len(order)
            for (tag, _reader, _writer), reply in zip(conns, replies, strict=True):
                tape.arrow("server", "client", f"{tag} {reply.strip()!r}")
            tape.note("mc.all_answered", n=CLIENTS)
            for tag, _reader, writer in conns:
                await _close(writer)
                order.append(f"close {tag}")
            tape.call("client", "#1 #2 #3 close()")
        # Let the server's handlers see the ends of their streams and finish.
        await _bounded(srv.finished.wait())
    finally:
        for _tag, _reader, writer in conns:
            writer.close()
        server.close()
        await server.wait_closed()
    return {
        "most_active": srv.most_active,
        "answered_before_first_close": answered_first,
        "order": order,
        "server_log": srv.log,
    }


async def _many_clients() -> LessonRun:
    tape = Tape("many-clients", _ends("end.clients", "end.server"))
    tape.section("mc.section.serial")
    tape.note("mc.serial", n=CLIENTS)
    serial = await _clients(tape, one_at_a_time=True)
    tape.section("mc.section.concurrent")
    tape.note("mc.concurrent", n=CLIENTS)
    concurrent = await _clients(tape, one_at_a_time=False)
    tape.note("mc.lesson")

    run = tape.run
    expected_serial = [
        step for i in range(1, CLIENTS + 1) for step in (f"reply #{i}", f"close #{i}")
    ]
    run.verdict = verdict(
        "mc.claim",
        [
            check(
                "mc.check.serial",
                serial["most_active"] == 1
                and serial["answered_before_first_close"] == 1
                and serial["order"] == expected_serial,
                order=", ".join(str(s) for s in serial["order"]),  # type: ignore[attr-defined]
            ),
            check(
                "mc.check.concurrent",
                concurrent["most_active"] == CLIENTS
                and concurrent["answered_before_first_close"] == CLIENTS,
                n=CLIENTS,
                most=str(concurrent["most_active"]),
            ),
        ],
        clients=CLIENTS,
        serial=serial,
        concurrent=concurrent,
    )
    return run


def run_many_clients() -> LessonRun:
    return asyncio.run(_many_clients())


# ---------------------------------------------------------------------- download

FILE_NAME = "lesson.bin"
FILE_SIZE = 64 * 1024


async def _naive_server(root: str) -> transport.Server:
    """The notes' download server: read the name, send the whole file, close."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            name = (await reader.read(1024)).decode()
            with open(os.path.join(root, os.path.basename(name)), "rb") as f:
                writer.write(f.read())
            await writer.drain()
        except (ConnectionError, OSError):
            pass  # the client hung up after its one read
        finally:
            await _close(writer)

    return await transport.start_server(handler, HOST, 0, transport=LESSON_TRANSPORT.get())


async def _framed_server(root: str) -> transport.Server:
    """The fix: answer with the size and digest first, then exactly that many bytes."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = FrameDecoder()
        try:
            event = None
            while event is None:
                chunk = await reader.read(65536)
                if not chunk:
                    return
                decoder.feed(chunk)
                event = decoder.next_event()
            if not isinstance(event, Message):
                return
            name = os.path.basename(str(event.body.get("name", "")))
            try:
                with open(os.path.join(root, name), "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                writer.write(encode_message({"op": "error", "message": f"no such file: {name}"}))
            else:
                digest = hashlib.sha256(data).hexdigest()
                writer.write(encode_message({"op": "file", "size": len(data), "sha256": digest}))
                writer.write(encode_blob_header(len(data)) + data)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            await _close(writer)

    return await transport.start_server(handler, HOST, 0, transport=LESSON_TRANSPORT.get())


async def _framed_get(port: int, name: str) -> tuple[dict[str, object], bytes]:
    """Ask for `name`; returns the server's first message and the file's bytes."""
    reader, writer = await _bounded(
        transport.open_connection(HOST, port, transport=LESSON_TRANSPORT.get())
    )
    writer.write(encode_message({"op": "get", "name": name}))
    decoder = FrameDecoder(max_blob=1 << 30)
    header: dict[str, object] = {}
    body = bytearray()
    try:
        while True:
            event = decoder.next_event()
            if event is None:
                chunk = await _bounded(reader.read(65536))
                if not chunk:
                    decoder.feed_eof()
                    break
                decoder.feed(chunk)
            elif isinstance(event, Message):
                header = event.body
                if header.get("op") == "error":
                    break
            elif isinstance(event, BlobData):
                body += event.data
            elif isinstance(event, BlobEnd):
                break
            elif isinstance(event, BlobStart):
                pass
    finally:
        await _close(writer)
    return header, bytes(body)


async def _download() -> LessonRun:
    tape = Tape("download", _ends("end.client", "end.server"))
    content = hashlib.shake_256(b"synack download lesson").digest(FILE_SIZE)
    digest = hashlib.sha256(content).hexdigest()
    with tempfile.TemporaryDirectory(prefix="synack-lesson-") as tmp:
        served = os.path.join(tmp, "served")
        saved = os.path.join(tmp, "saved")
        os.mkdir(served)
        os.mkdir(saved)
        with open(os.path.join(served, FILE_NAME), "wb") as f:
            f.write(content)

        # Part 1: the notes' client, one recv(1024).
        tape.section("dl.section.naive")
        tape.note("dl.naive", size=FILE_SIZE)
        server = await _naive_server(served)
        try:
            reader, writer = await _bounded(
                transport.open_connection(
                    HOST, server.addresses[0][1], transport=LESSON_TRANSPORT.get()
                )
            )
            writer.write(FILE_NAME.encode())
            await _bounded(writer.drain())
            tape.arrow("client", "server", f"send(b'{FILE_NAME}')")
            first = await _bounded(reader.read(1024))
            tape.arrow("server", "client", f"send({FILE_SIZE} bytes)")
            tape.call("client", f"recv(1024) -> {len(first)} bytes")
            await _close(writer)
        finally:
            server.close()
            await server.wait_closed()
        naive_path = os.path.join(saved, "[new]" + FILE_NAME)
        with open(naive_path, "wb") as f:
            f.write(first)
        naive_size = os.path.getsize(naive_path)
        naive_ok = hashlib.sha256(first).hexdigest() == digest
        tape.note("dl.naive_result", got=naive_size, size=FILE_SIZE)

        # Part 2: size first, then exactly that many bytes, then check the digest.
        tape.section("dl.section.framed")
        tape.note("dl.framed")
        server = await _framed_server(served)
        try:
            port = server.addresses[0][1]
            tape.arrow("client", "server", 'send({"op":"get","name":..})')
            header, body = await _framed_get(port, FILE_NAME)
            tape.arrow("server", "client", f'send({{"size":{header.get("size")},"sha256":..}})')
            tape.arrow("server", "client", f"send([2|{len(body)}] + {len(body)} bytes)")
            tape.call("client", f"recv() until {len(body)} bytes")
            framed_path = os.path.join(saved, FILE_NAME)
            with open(framed_path, "wb") as f:
                f.write(body)
            framed_ok = (
                header.get("size") == len(body) == FILE_SIZE
                and hashlib.sha256(body).hexdigest() == header.get("sha256") == digest
            )
            tape.call("client", "sha256 ok" if framed_ok else "sha256 MISMATCH")
            tape.note("dl.framed_result", size=len(body))

            # Part 3: a file that is not there gets an answer, not silence.
            tape.section("dl.section.missing")
            missing, _ = await _framed_get(port, "missing.bin")
            tape.arrow("client", "server", 'send({"op":"get","name":..})')
            tape.arrow("server", "client", 'send({"op":"error",..})')
            tape.call("client", f"error: {missing.get('message')}")
            tape.note("dl.missing")
        finally:
            server.close()
            await server.wait_closed()

    run = tape.run
    run.verdict = verdict(
        "dl.claim",
        [
            check(
                "dl.check.naive",
                naive_size <= 1024 < FILE_SIZE and not naive_ok,
                got=naive_size,
                size=FILE_SIZE,
            ),
            check("dl.check.framed", framed_ok, size=len(body)),
            check(
                "dl.check.missing",
                missing.get("op") == "error" and "missing.bin" in str(missing.get("message")),
            ),
        ],
        file_size=FILE_SIZE,
        naive_bytes=naive_size,
        naive_digest_ok=naive_ok,
        framed_bytes=len(body),
        framed_digest_ok=framed_ok,
        missing_answer=missing,
    )
    return run


def run_download() -> LessonRun:
    return asyncio.run(_download())
