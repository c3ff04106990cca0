"""The contract every transport keeps (after trio's ``check_half_closeable_stream``).

Each case runs once per registered transport (`synack.transport.names()`), so a
transport registered later gets the whole suite with no change here; and once
more on the os transport with every fast path swapped for the generic default
that a transport without shortcuts inherits. Payloads are random; every wait
is bounded; traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from bounded import run
from synack import transport as seam
from synack.transport import STREAM_LIMIT, BulkReader, Transport

from .pairs import HOST, PENDING, End, T, connected, random_bytes, read_hashed, write_until_blocked


class GenericPaths(seam.OsTransport):
    """The os transport with its fast paths replaced by the base class's generic ones."""

    name = "os-generic"
    bulk_reader = Transport.bulk_reader
    sendfile = Transport.sendfile
    set_nodelay = Transport.set_nodelay


TRANSPORTS = [seam.get(name) for name in seam.names()] + [GenericPaths()]


@pytest.fixture(params=TRANSPORTS, ids=lambda t: t.name)
def transport(request: pytest.FixtureRequest) -> Transport:
    t: Transport = request.param
    return t


# --- connect, echo, addresses -------------------------------------------------------


@run
async def test_connect_and_echo(transport: Transport) -> None:
    async with connected(transport) as pair:
        host, port = pair.server.addresses[0]
        assert host == HOST and 0 < port < 65536
        assert pair.client.writer.get_extra_info("peername")[:2] == (host, port)
        for size in (1, 1000, 300_000):
            data = random_bytes(size)
            pair.client.writer.write(data)
            async with asyncio.timeout(T):
                await pair.client.writer.drain()
                echoed = await pair.accepted.reader.readexactly(size)
                pair.accepted.writer.write(echoed)
                assert await pair.client.reader.readexactly(size) == data


@run
async def test_server_lists_its_addresses_and_stops_accepting_when_closed(
    transport: Transport,
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await transport.start_server(handler, HOST, 0)
    (host, port), *_ = server.addresses
    server.close()
    async with asyncio.timeout(T):
        await server.wait_closed()
        with pytest.raises(ConnectionRefusedError):
            await transport.open_connection(host, port)


# --- half-close and EOF ---------------------------------------------------------------


@pytest.mark.parametrize("closer", ["client", "server"])
@run
async def test_half_close_leaves_the_other_direction_open(
    transport: Transport, closer: str
) -> None:
    async with connected(transport) as pair:
        done, other = (
            (pair.client, pair.accepted) if closer == "client" else (pair.accepted, pair.client)
        )
        request, reply = random_bytes(70_000), random_bytes(90_000)
        assert done.writer.can_write_eof()
        done.writer.write(request)
        done.writer.write_eof()
        async with asyncio.timeout(T):
            assert await other.reader.read() == request  # everything, then EOF
            assert other.reader.at_eof()
            assert await other.reader.read(1) == b""
            other.writer.write(reply)  # the direction not shut still carries data
            await other.writer.drain()
            other.writer.write_eof()
            assert await done.reader.read() == reply
            assert done.reader.at_eof()


@run
async def test_eof_is_empty_bytes_and_cuts_short_a_readexactly(transport: Transport) -> None:
    async with connected(transport) as pair:
        tail = random_bytes(3)
        pair.accepted.writer.write(tail)
        pair.accepted.writer.close()
        async with asyncio.timeout(T):
            with pytest.raises(asyncio.IncompleteReadError) as caught:
                await pair.client.reader.readexactly(10)
            assert caught.value.partial == tail
            assert await pair.client.reader.read(100) == b""
            assert pair.client.reader.at_eof()
            await pair.accepted.writer.wait_closed()


# --- reset and refused ----------------------------------------------------------------


@run
async def test_abort_with_unread_data_resets_the_peer(transport: Transport) -> None:
    """A peer that aborts with bytes it never read resets the connection (RFC 9293
    §3.10.4 ABORT; Linux sends RST from close() when data is unread): both the
    pending `drain` and the next read raise ConnectionResetError."""
    async with connected(transport) as pair:
        blocked = await write_until_blocked(pair.client.writer)  # the peer reads nothing
        pair.accepted.writer.transport.abort()
        async with asyncio.timeout(T):
            with pytest.raises(ConnectionResetError):
                await blocked.drain
            with pytest.raises(ConnectionResetError):
                await pair.client.reader.read(1)


@run
async def test_abort_ends_the_peers_stream(transport: Transport) -> None:
    """With nothing unread, an abort may reach the peer as a reset or (OS TCP: close()
    sends FIN) as an end of stream; either way its reads end at once."""
    async with connected(transport) as pair:
        pair.accepted.writer.transport.abort()
        async with asyncio.timeout(T):
            with contextlib.suppress(ConnectionResetError):
                assert await pair.client.reader.read(1) == b""


@run
async def test_connecting_where_nobody_listens_is_refused(transport: Transport) -> None:
    async with connected(transport) as pair:
        host, port = pair.server.addresses[0]
    # The listener is closed now; the port is fresh from the OS, so nobody else holds it.
    async with asyncio.timeout(T):
        with pytest.raises(ConnectionRefusedError):
            await transport.open_connection(host, port)


# --- flow control -------------------------------------------------------------------


@run
async def test_drain_blocks_while_the_peer_does_not_read_and_resumes_when_it_does(
    transport: Transport,
) -> None:
    async with connected(transport) as pair:
        writer = pair.client.writer
        blocked = await write_until_blocked(writer)
        low, high = writer.transport.get_write_buffer_limits()
        assert writer.transport.get_write_buffer_size() > high
        with pytest.raises(TimeoutError):  # still held back, however long we look
            await asyncio.wait_for(asyncio.shield(blocked.drain), PENDING)
        async with asyncio.timeout(T):
            reading = asyncio.ensure_future(read_hashed(pair.accepted.reader, blocked.written))
            await blocked.drain
            assert writer.transport.get_write_buffer_size() <= low
            assert await reading == blocked.sha.digest()


# --- fast paths ---------------------------------------------------------------------


async def bulk_read(bulk: BulkReader, count: int, buffer: memoryview) -> bytes:
    """Exactly `count` bytes through `bulk`, turning the loop between reads as a caller
    with other work (the file receiver hashes and writes) does."""
    got = bytearray()
    while len(got) < count:
        n = await bulk.readinto(buffer[: count - len(got)])
        assert 0 < n <= count - len(got)
        got += buffer[:n]
        await asyncio.sleep(0)
    return bytes(got)


@run
async def test_bulk_read_waits_for_data_then_fills_the_callers_buffer(
    transport: Transport,
) -> None:
    body, trailer = random_bytes(5 * 1024 * 1024 + 17), random_bytes(64)
    buffer = memoryview(bytearray(100_003))  # an odd size: no read lines up with a segment
    async with connected(transport) as pair:
        with transport.bulk_reader(pair.client.reader) as bulk:
            first = asyncio.ensure_future(bulk.readinto(buffer))
            done, _ = await asyncio.wait({first}, timeout=PENDING)
            assert not done, "readinto returned with nothing sent"
            for start in range(0, len(body), 300_000):
                pair.accepted.writer.write(body[start : start + 300_000])
            pair.accepted.writer.write(trailer)
            async with asyncio.timeout(T):
                n = await first
                head = bytes(buffer[:n])
                rest = await bulk_read(bulk, len(body) - n, buffer)
        assert head + rest == body
        async with asyncio.timeout(T):
            # Closed, the bulk reader took no byte past what was asked: the stream reads on.
            assert await pair.client.reader.readexactly(len(trailer)) == trailer
            pair.accepted.writer.write_eof()
            with transport.bulk_reader(pair.client.reader) as bulk:
                assert await bulk.readinto(buffer) == 0  # the end of the stream


@run
async def test_bulk_read_takes_what_the_stream_holds_first(transport: Transport) -> None:
    header, body, trailer = b"BODY\n", random_bytes(5 * 1024 * 1024 + 17), random_bytes(64)
    buffer = memoryview(bytearray(100_003))
    async with connected(transport) as pair:
        pair.accepted.writer.write(header + body + trailer)
        pair.accepted.writer.write_eof()
        async with asyncio.timeout(T):
            assert await pair.client.reader.readline() == header  # the StreamReader holds more
            with transport.bulk_reader(pair.client.reader) as bulk:
                assert await bulk_read(bulk, len(body), buffer) == body
            assert await pair.client.reader.readexactly(len(trailer)) == trailer
            assert await pair.client.reader.read() == b""


@run
async def test_bulk_read_sees_a_reset(transport: Transport) -> None:
    async with connected(transport) as pair:
        # Both directions full and unread, so that the server's abort is a reset.
        to_client = await write_until_blocked(pair.accepted.writer)
        to_server = await write_until_blocked(pair.client.writer)
        buffer = memoryview(bytearray(1 << 16))
        async with asyncio.timeout(T):
            with transport.bulk_reader(pair.client.reader) as bulk:
                assert await bulk.readinto(buffer) > 0
                pair.accepted.writer.transport.abort()
                with pytest.raises(ConnectionResetError):
                    while await bulk.readinto(buffer):  # ends: only so much was sent
                        pass
            await asyncio.gather(to_client.drain, to_server.drain, return_exceptions=True)


@pytest.fixture
def random_file(tmp_path: Path) -> Iterator[tuple[Path, bytes]]:
    data = random_bytes(3 * 1024 * 1024 + 5)
    path = tmp_path / "payload.bin"
    path.write_bytes(data)
    yield path, data


@run
async def test_sendfile_honours_offset_and_count(
    transport: Transport, random_file: tuple[Path, bytes]
) -> None:
    path, data = random_file
    offset, count = 1001, 2 * 1024 * 1024 + 7
    after = random_bytes(10)
    async with connected(transport) as pair:
        with path.open("rb") as file:
            async with asyncio.timeout(T):
                reading = asyncio.ensure_future(
                    pair.accepted.reader.readexactly(count + len(after))
                )
                assert await transport.sendfile(pair.client.writer, file, offset, count) == count
                assert file.tell() == offset + count
                pair.client.writer.write(after)  # ordinary writes follow the body in order
                assert await reading == data[offset : offset + count] + after

                # Asked for more than the file holds: sends what there is, says how much.
                reading = asyncio.ensure_future(pair.accepted.reader.read())
                sent = await transport.sendfile(pair.client.writer, file, len(data) - 99, 1000)
                assert sent == 99
                pair.client.writer.write_eof()
                assert await reading == data[-99:]


@run
async def test_set_nodelay_keeps_the_stream_working(transport: Transport) -> None:
    async with connected(transport) as pair:
        transport.set_nodelay(pair.client.writer)
        transport.set_nodelay(pair.accepted.writer)
        data = random_bytes(7)
        pair.client.writer.write(data)
        async with asyncio.timeout(T):
            assert await pair.accepted.reader.readexactly(7) == data


# --- closing --------------------------------------------------------------------------


@run
async def test_close_while_writing_delivers_everything_then_eof(transport: Transport) -> None:
    async with connected(transport) as pair:
        writer = pair.client.writer
        data = random_bytes(16 * 1024 * 1024)
        writer.write(data)
        assert writer.transport.get_write_buffer_size() > 0  # closing with bytes still queued
        writer.close()
        assert writer.is_closing()
        async with asyncio.timeout(T):
            received = await read_hashed(pair.accepted.reader, len(data))
            assert received == hashlib.sha256(data).digest()
            assert await pair.accepted.reader.read(1) == b""
            await writer.wait_closed()


# --- TLS ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) contexts: a CA made for this run, a certificate for 127.0.0.1."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOST).configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


async def start_tls(
    end: End, context: ssl.SSLContext, *, server_side: bool, limit: int = STREAM_LIMIT
) -> End:
    """Upgrade `end` to TLS with `loop.start_tls`; new streams over the TLS transport."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit)
    protocol = asyncio.StreamReaderProtocol(reader)
    tls = await loop.start_tls(
        end.writer.transport,
        protocol,
        context,
        server_side=server_side,
        server_hostname=None if server_side else HOST,
    )
    assert tls is not None
    protocol.connection_made(tls)
    return End(reader, asyncio.StreamWriter(tls, protocol, reader, loop))


@run
async def test_upgrade_to_tls_with_start_tls(
    transport: Transport,
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
    random_file: tuple[Path, bytes],
) -> None:
    server_context, client_context = tls
    path, data = random_file
    async with connected(transport) as pair:
        async with asyncio.timeout(T):
            pair.client.writer.write(b"STARTTLS\r\n")
            assert await pair.accepted.reader.readline() == b"STARTTLS\r\n"
            pair.accepted.writer.write(b"OK\r\n")
            upgrading = asyncio.ensure_future(
                start_tls(pair.accepted, server_context, server_side=True)
            )
            assert await pair.client.reader.readline() == b"OK\r\n"
            client = await start_tls(pair.client, client_context, server_side=False)
            server = await upgrading

            assert client.writer.get_extra_info("ssl_object") is not None
            assert client.writer.get_extra_info("peercert")["subjectAltName"] == (
                ("IP Address", HOST),
            )
            for size in (1, 200_000):  # echo
                message = random_bytes(size)
                client.writer.write(message)
                echoed = await server.reader.readexactly(size)
                server.writer.write(echoed)
                assert await client.reader.readexactly(size) == message

            # The fast paths still work on the encrypted stream (sendfile by writes; bulk
            # reads decrypted straight into the buffer where asyncio's TLS layer allows).
            reading = asyncio.ensure_future(server.reader.readexactly(len(data) - 10))
            with path.open("rb") as file:
                sent = await transport.sendfile(client.writer, file, 10, len(data) - 10)
            assert sent == len(data) - 10
            assert await reading == data[10:]
            server.writer.write(data)
            got = bytearray()
            buffer = memoryview(bytearray(65_537))
            with transport.bulk_reader(client.reader) as bulk:
                while len(got) < len(data):
                    n = await bulk.readinto(buffer[: len(data) - len(got)])
                    assert n > 0
                    got += buffer[:n]
            assert got == data

            client.writer.close()  # close_notify, then the server's EOF
            assert await server.reader.read() == b""
            server.writer.close()
            await client.writer.wait_closed()
            await server.writer.wait_closed()
