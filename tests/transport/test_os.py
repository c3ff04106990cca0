"""The os transport's particulars, beyond the contract every transport keeps: what the
kernel's TCP does on abort, and that each fast path really takes its shortcut."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from bounded import run
from synack import transport as seam
from synack.transport import OsTransport, Transport

from .pairs import HOST, PENDING, T, connected, random_bytes

OS = seam.get("os")


def test_the_os_transport_is_registered_as_the_default() -> None:
    assert isinstance(OS, OsTransport)
    assert seam.DEFAULT_TRANSPORT == "os"
    assert "os" in seam.TRANSPORTS


@run
async def test_abort_with_nothing_unread_reaches_the_peer_as_eof() -> None:
    """asyncio's abort() closes the socket; with no unread data Linux sends FIN, not RST."""
    async with connected(OS) as pair:
        pair.accepted.writer.transport.abort()
        async with asyncio.timeout(T):
            assert await pair.client.reader.read(1) == b""
        assert pair.client.reader.at_eof()


@run
async def test_bulk_reader_stands_in_for_the_protocol_while_open() -> None:
    async with connected(OS) as pair:
        raw = pair.client.writer.transport
        original = raw.get_protocol()
        body = random_bytes(1 << 20)
        buffer = memoryview(bytearray(len(body)))
        with OS.bulk_reader(pair.client.reader) as bulk:
            first = asyncio.ensure_future(bulk.readinto(buffer))
            done, _ = await asyncio.wait({first}, timeout=PENDING)
            assert not done
            # Waiting on an empty stream, it has put its own protocol in (one copy, recv_into).
            assert raw.get_protocol() is not original
            assert isinstance(raw.get_protocol(), asyncio.BufferedProtocol)
            pair.accepted.writer.write(body)
            async with asyncio.timeout(T):
                filled = await first
                while filled < len(body):
                    filled += await bulk.readinto(buffer[filled:])
            assert buffer == body
        assert raw.get_protocol() is original  # given back on close
        tail = random_bytes(10)
        pair.accepted.writer.write(tail)
        async with asyncio.timeout(T):
            assert await pair.client.reader.readexactly(10) == tail


@run
async def test_sendfile_on_a_socket_stream_does_not_take_the_generic_route(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def generic(*args: object) -> int:
        raise AssertionError("the generic read-and-write loop was used")

    monkeypatch.setattr(Transport, "sendfile", generic)
    data = random_bytes(1 << 20)
    path = tmp_path / "f"
    path.write_bytes(data)
    async with connected(OS) as pair:
        with path.open("rb") as file:
            async with asyncio.timeout(T):
                reading = asyncio.ensure_future(pair.accepted.reader.readexactly(len(data)))
                assert await OS.sendfile(pair.client.writer, file, 0, len(data)) == len(data)
                assert await reading == data


@run
async def test_set_nodelay_sets_tcp_nodelay() -> None:
    async with connected(OS) as pair:
        sock = pair.client.writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)  # asyncio sets it by default
        seam.set_nodelay(pair.client.writer, transport="os")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


@run
async def test_a_restarted_server_gets_its_port_back() -> None:
    """SO_REUSEADDR: a connection the server closed first (TIME-WAIT) does not hold the port."""
    async with connected(OS) as pair:
        port = pair.server.addresses[0][1]
        pair.accepted.writer.close()  # the server's side closes first: it will sit in TIME-WAIT
        async with asyncio.timeout(T):
            assert await pair.client.reader.read() == b""
            pair.client.writer.close()
            await pair.client.writer.wait_closed()
            await pair.accepted.writer.wait_closed()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async with await OS.start_server(handler, HOST, port) as again:
        assert again.addresses == [(HOST, port)]
