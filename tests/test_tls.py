"""TLS for the chat and the file transfer (issue 15, point 2), on every transport.

Certificates are made at test time (trustme): a CA, a server certificate for
127.0.0.1 signed by it, and an unrelated CA that must not be trusted. Library
cases run once per registered transport; command-line cases run `synack` in
subprocesses. Traffic stays on 127.0.0.1 and in a temporary directory; every
wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import os
import ssl
from argparse import Namespace
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from bounded import run
from cliproc import Served, synack
from synack import transport as seam
from synack.apps.chat import ChatClient, ChatServer
from synack.apps.chat.client import ConnectionLost
from synack.apps.files import FileClient, FileServer
from synack.errors import UserError
from synack.transport import ClientTLS, ServerTLS, TLSError, TLSVerificationError
from synack.transport import tls as seam_tls

HOST = "127.0.0.1"
T = 10.0


@dataclass
class Certs:
    ca: Path
    cert: Path  # the server's certificate
    key: Path
    combined: Path  # key and certificate in one file
    other_ca: Path  # a CA that signed nothing here
    other_key: Path  # a key that belongs to another certificate
    fingerprint: str  # SHA256:<hex> of the server's certificate, computed here


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    d = tmp_path_factory.mktemp("tls")
    ca, other = trustme.CA(), trustme.CA()
    leaf = ca.issue_cert(HOST)
    paths = Certs(
        d / "ca.pem",
        d / "cert.pem",
        d / "key.pem",
        d / "combined.pem",
        d / "other-ca.pem",
        d / "other-key.pem",
        "",
    )
    ca.cert_pem.write_to_path(str(paths.ca))
    other.cert_pem.write_to_path(str(paths.other_ca))
    leaf.private_key_pem.write_to_path(str(paths.key))
    paths.cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    leaf.private_key_and_cert_chain_pem.write_to_path(str(paths.combined))
    ca.issue_cert("elsewhere.test").private_key_pem.write_to_path(str(paths.other_key))
    der = ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())
    paths.fingerprint = "SHA256:" + hashlib.sha256(der).hexdigest()
    return paths


def server_tls(certs: Certs, **kw: float) -> ServerTLS:
    return ServerTLS.from_files(str(certs.cert), str(certs.key), **kw)


def random_bytes(n: int) -> bytes:
    return os.urandom(n)


# --- the library, on every transport --------------------------------------------------


@run
async def test_chat_over_tls(transport: str, certs: Certs) -> None:
    logs: list[str] = []
    server = ChatServer(HOST, 0, transport=transport, tls=server_tls(certs), log=logs.append)
    host, port = await server.start()
    tls = ClientTLS.create(cafile=str(certs.ca))
    alice = ChatClient(host, port, "alice", transport=transport, tls=tls)
    bob = ChatClient(host, port, "bob", transport=transport, tls=tls)
    try:
        async with asyncio.timeout(T):
            await alice.connect()
            welcome = await bob.connect()
            assert welcome["members"] == ["alice"]
            await alice.say("hello over TLS")
            event = await bob.until("msg", text="hello over TLS")
            assert event["from"] == "alice"
            writer = alice._writer
            assert writer is not None and writer.get_extra_info("ssl_object") is not None
            await alice.close()
            await bob.close()
    finally:
        await server.close()
    assert any("alice joined" in line for line in logs)


@run
async def test_a_clear_port_and_a_tls_port_lead_to_the_same_rooms(
    transport: str, certs: Certs
) -> None:
    """IRC's custom: nc users on the clear port, TLS clients on the other, one chat."""
    server = ChatServer(HOST, 0, transport=transport, tls=server_tls(certs), tls_port=0)
    await server.start()
    (host, clear_port), (_, tls_port) = server.addresses
    alice = ChatClient(
        host, tls_port, "alice", transport=transport, tls=ClientTLS.create(cafile=str(certs.ca))
    )
    try:
        async with asyncio.timeout(T):
            await alice.connect()
            reader, writer = await seam.open_connection(host, clear_port, transport=transport)
            writer.write(b"bob\r\n")  # a person at nc: the nickname first
            while b"you are bob" not in await reader.readline():
                pass
            writer.write(b"hello from nc\r\n")
            event = await alice.until("msg", text="hello from nc")
            assert event["from"] == "bob"
            await alice.say("hello from TLS")
            while b"hello from TLS" not in await reader.readline():
                pass
            writer.close()
            await alice.close()
    finally:
        await server.close()


@run
async def test_files_get_and_put_over_tls_are_sha256_verified(
    transport: str, certs: Certs, tmp_path: Path
) -> None:
    """The body goes through `write` under TLS (a sendfile of the clear file into the TLS
    stream would corrupt it, and the receiver's SHA-256 check would fail)."""
    root, local = tmp_path / "root", tmp_path / "local"
    root.mkdir()
    local.mkdir()
    data = random_bytes(3 * 1024 * 1024 + 7)
    (root / "big.bin").write_bytes(data)
    (local / "up.bin").write_bytes(data[::-1])
    tls = ClientTLS.create(cafile=str(certs.ca))
    async with FileServer(
        root, port=0, allow_upload=True, transport=transport, tls=server_tls(certs)
    ) as server:
        host, port = server.address
        async with asyncio.timeout(T):
            async with await FileClient.connect(host, port, transport=transport, tls=tls) as c:
                got = await c.get("big.bin", str(local / "big.bin"))
                put = await c.put(str(local / "up.bin"), "up.bin")
    assert got.files == put.files == 1 and got.bytes == put.bytes == len(data)
    assert (local / "big.bin").read_bytes() == data
    assert (root / "up.bin").read_bytes() == data[::-1]


@run
async def test_a_certificate_that_fails_verification_is_one_line_and_the_server_serves_on(
    transport: str, certs: Certs
) -> None:
    failures: asyncio.Queue[tuple[str, str]] = asyncio.Queue()

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.read(100))
        writer.close()

    async with await seam.start_server(
        echo,
        HOST,
        0,
        transport=transport,
        tls=server_tls(certs),
        on_tls_failure=lambda peer, reason: failures.put_nowait((peer, reason)),
    ) as server:
        host, port = server.addresses[0]
        async with asyncio.timeout(T):
            untrusting = ClientTLS.create(cafile=str(certs.other_ca))
            with pytest.raises(TLSVerificationError) as caught:
                await seam.open_connection(host, port, transport=transport, tls=untrusting)
            message = str(caught.value)
            assert message.startswith(f"TLS verification failed for {host}:{port}: ")
            assert "\n" not in message

            trusted = ClientTLS.create(cafile=str(certs.ca)).context
            misnamed = ClientTLS(trusted, server_hostname="elsewhere.test")
            with pytest.raises(TLSVerificationError, match=r"[Hh]ostname mismatch"):
                await seam.open_connection(host, port, transport=transport, tls=misnamed)

            # The failed handshakes took nothing down: a trusting client is served.
            trusting = ClientTLS.create(cafile=str(certs.ca))
            reader, writer = await seam.open_connection(
                host, port, transport=transport, tls=trusting
            )
            writer.write(b"still here")
            assert await reader.read() == b"still here"
            writer.close()
            for _ in range(2):  # each refusal was reported by the server too
                peer, _reason = await failures.get()
                assert peer.startswith(f"{HOST}:")


@run
async def test_a_pin_is_checked_before_any_byte_is_sent(transport: str, certs: Certs) -> None:
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # What a connection carried: all of it, up to the end or a reset.
        try:
            received.put_nowait(await reader.read())
        except ConnectionResetError:
            received.put_nowait(b"")
        writer.close()

    def failed(_peer: str, _reason: str) -> None:
        # The wrong pin's client aborts right after its side of the handshake: the
        # server's handshake may end first or be cut off by it, a race either way.
        received.put_nowait(b"")

    tls = server_tls(certs, handshake_timeout=T / 4)  # well inside the test's bound
    assert tls.fingerprint == certs.fingerprint
    async with await seam.start_server(
        record, HOST, 0, transport=transport, tls=tls, on_tls_failure=failed
    ) as server:
        host, port = server.addresses[0]
        async with asyncio.timeout(T):
            wrong = ClientTLS.create(pin=bytes(32))
            with pytest.raises(TLSVerificationError) as caught:
                await seam.open_connection(host, port, transport=transport, tls=wrong)
            assert str(caught.value) == (
                f"TLS verification failed for {host}:{port}: certificate fingerprint "
                f"{certs.fingerprint} does not match the pinned SHA256:{'00' * 32}"
            )
            right = ClientTLS.create(pin=seam_tls.parse_pin(certs.fingerprint))
            _, writer = await seam.open_connection(host, port, transport=transport, tls=right)
            writer.write(b"pinned")
            writer.close()
            got = sorted([await received.get(), await received.get()])
    assert got == [b"", b"pinned"]  # the wrong pin's connection carried nothing


@run
async def test_a_handshake_on_a_connection_already_lost_fails_at_once(
    transport: str, certs: Certs
) -> None:
    """asyncio's start_tls on a transport already closed waits for ever (its handshake
    timeout closes nothing): a server whose client reset at once kept a task hanging.
    `upgrade` refuses such a connection at once."""
    outcome: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    async def lost_first(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.transport.abort()
        try:
            await seam_tls.upgrade(
                reader, writer, server_tls(certs).context, server_side=True, handshake_timeout=T
            )
        except OSError as exc:
            outcome.set_result(exc)
        else:
            outcome.set_result(None)

    async with await seam.start_server(lost_first, HOST, 0, transport=transport) as server:
        _, writer = await seam.open_connection(*server.addresses[0], transport=transport)
        async with asyncio.timeout(T / 2):  # well before the handshake timeout
            result = await outcome
        writer.close()
    assert isinstance(result, ConnectionResetError), result


@run
async def test_a_handler_waiting_on_a_tls_read_outlives_a_garbage_collection(
    transport: str, certs: Certs
) -> None:
    """asyncio's StreamReaderProtocol holds its reader only weakly: what keeps a server's
    handler alive while it waits is the protocol the server made for the connection,
    which holds the handler's task. start_tls takes that protocol off the transport; if
    nothing reachable held the handler then, a garbage collection destroyed it mid-read
    ("Task was destroyed but it is pending!") and the connection's end went unheard
    (the pin test's hangs in CI, os transport)."""
    reading = asyncio.Event()
    carried: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def read_all(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        reading.set()  # and nothing here keeps a reference to this task or its streams
        try:
            carried.set_result(await reader.read())
        finally:
            writer.close()

    async with await seam.start_server(
        read_all, HOST, 0, transport=transport, tls=server_tls(certs)
    ) as server:
        host, port = server.addresses[0]
        pinned = ClientTLS.create(pin=seam_tls.parse_pin(certs.fingerprint))
        async with asyncio.timeout(T):
            _, writer = await seam.open_connection(host, port, transport=transport, tls=pinned)
            await reading.wait()  # the handler is in its read now
            gc.collect()
            writer.write(b"after a collection")
            writer.close()
            assert await carried == b"after a collection"


@run
async def test_a_clear_text_client_is_cut_off_and_the_server_serves_on(
    transport: str, certs: Certs
) -> None:
    """No fallback: what nc would send to a TLS chat server ends the connection."""
    logs: asyncio.Queue[str] = asyncio.Queue()
    server = ChatServer(HOST, 0, transport=transport, tls=server_tls(certs), log=logs.put_nowait)
    host, port = await server.start()
    try:
        async with asyncio.timeout(T):
            reader, writer = await seam.open_connection(host, port, transport=transport)
            writer.write(b"alice\r\n")
            with contextlib.suppress(ConnectionResetError):
                assert await reader.read() == b""  # no prompt, nothing: cut off
            writer.close()
            line = await logs.get()
            assert "TLS handshake failed: the peer does not speak TLS" in line
            alice = ChatClient(
                host, port, "alice", transport=transport, tls=ClientTLS.create(cafile=str(certs.ca))
            )
            await alice.connect()
            await alice.close()
    finally:
        await server.close()


@run
async def test_clear_text_clients_of_a_tls_server_are_told_what_may_be_wrong(
    transport: str, certs: Certs, tmp_path: Path
) -> None:
    """Cut off at once (a FIN on the kernel's TCP, a reset on ours): either way one line
    that suggests TLS."""
    server = ChatServer(HOST, 0, transport=transport, tls=server_tls(certs))
    host, port = await server.start()
    try:
        async with asyncio.timeout(T):
            with pytest.raises(ConnectionLost, match="try --tls"):
                await ChatClient(host, port, "eve", transport=transport).connect()
    finally:
        await server.close()
    async with FileServer(tmp_path, port=0, transport=transport, tls=server_tls(certs)) as files:
        host, port = files.address
        async with asyncio.timeout(T):
            with pytest.raises(UserError, match="try --tls"):
                await FileClient.connect(host, port, transport=transport)


@run
async def test_a_silent_client_is_cut_off_at_the_handshake_timeout(certs: Certs) -> None:
    failures: asyncio.Queue[str] = asyncio.Queue()

    async def never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise AssertionError("a connection without a handshake reached the app")

    async with await seam.start_server(
        never,
        HOST,
        0,
        tls=server_tls(certs, handshake_timeout=0.3),
        on_tls_failure=lambda peer, reason: failures.put_nowait(reason),
    ) as server:
        host, port = server.addresses[0]
        async with asyncio.timeout(T):
            reader, writer = await asyncio.open_connection(host, port)  # a raw OS socket
            with contextlib.suppress(ConnectionResetError):
                assert await reader.read() == b""
            writer.close()
            assert await failures.get() == "no handshake within the time allowed"


@run
async def test_bytes_read_before_the_upgrade_go_first(transport: str, certs: Certs) -> None:
    """A server that reads the first bytes (to sniff them) hands them to the upgrade; on our
    TCP the client's first record can also reach the clear stream before the upgrade."""
    tls = server_tls(certs)

    async def sniff_then_upgrade(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        first = await reader.readexactly(5)  # a TLS record header
        assert first[0] == 0x16  # handshake
        tls_reader, tls_writer = await seam_tls.upgrade(
            reader, writer, tls.context, server_side=True, already_read=first
        )
        tls_writer.write((await tls_reader.read(100)).upper())
        tls_writer.close()

    async with await seam.start_server(sniff_then_upgrade, HOST, 0, transport=transport) as server:
        host, port = server.addresses[0]
        async with asyncio.timeout(T):
            reader, writer = await seam.open_connection(
                host, port, transport=transport, tls=ClientTLS.create(cafile=str(certs.ca))
            )
            writer.write(b"sniffed")
            assert await reader.read() == b"SNIFFED"
            writer.close()


@run
async def test_bulk_reads_over_tls_take_no_byte_past_the_body(transport: str, certs: Certs) -> None:
    """The files receiver's bulk reads over TLS: asyncio's TLS layer decrypts into the
    caller's buffer, and what follows the body is left to the StreamReader."""
    header, body, trailer = b"BODY\n", random_bytes(3 * 1024 * 1024 + 11), random_bytes(99)
    accepted: asyncio.Queue[asyncio.StreamWriter] = asyncio.Queue()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.put_nowait(writer)

    async with await seam.start_server(
        hold, HOST, 0, transport=transport, tls=server_tls(certs)
    ) as server:
        host, port = server.addresses[0]
        async with asyncio.timeout(T):
            reader, writer = await seam.open_connection(
                host, port, transport=transport, tls=ClientTLS.create(cafile=str(certs.ca))
            )
            peer = await accepted.get()
            peer.write(header + body + trailer)
            assert await reader.readline() == header
            got = bytearray()
            buffer = memoryview(bytearray(1 << 20))
            with seam.bulk_reader(reader, transport=transport) as bulk:
                while len(got) < len(body):
                    n = await bulk.readinto(buffer[: len(body) - len(got)])
                    assert n > 0
                    got += buffer[:n]
            assert got == body
            assert await reader.readexactly(len(trailer)) == trailer
            peer.close()
            with seam.bulk_reader(reader, transport=transport) as bulk:
                assert await bulk.readinto(buffer) == 0  # the end of the stream
            writer.close()


@run
async def test_tls_over_a_unix_socket(certs: Certs, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    data = random_bytes(1_000_003)
    (root / "a.bin").write_bytes(data)
    address = f"unix:{tmp_path / 'files.sock'}"
    async with FileServer(root, host=address, port=0, tls=server_tls(certs)):
        async with asyncio.timeout(T):
            # No host name to check over a Unix socket: the pin, or the CA chain alone.
            for tls in (
                ClientTLS.create(pin=seam_tls.parse_pin(certs.fingerprint)),
                ClientTLS.create(cafile=str(certs.ca), check_hostname=False),
            ):
                async with await FileClient.connect(address, 0, tls=tls) as client:
                    await client.get("a.bin", str(tmp_path / "a.bin"), force=True)
                assert (tmp_path / "a.bin").read_bytes() == data
            with pytest.raises(TLSError, match="no host name to check"):
                await FileClient.connect(address, 0, tls=ClientTLS.create(cafile=str(certs.ca)))


def test_pins_take_the_printed_form_and_openssls() -> None:
    digest = bytes(range(32))
    printed = seam_tls.fingerprint(b"x")
    assert printed == "SHA256:" + hashlib.sha256(b"x").hexdigest()
    assert seam_tls.parse_pin(printed) == hashlib.sha256(b"x").digest()
    openssl = ":".join(f"{b:02X}" for b in digest)  # openssl x509 -fingerprint -sha256
    assert seam_tls.parse_pin(openssl) == digest
    assert seam_tls.parse_pin("sha256:" + digest.hex()) == digest
    for bad in ("", "SHA256:", "SHA256:abc", "MD5:" + digest.hex(), "SHA256:" + "zz" * 32):
        with pytest.raises(ValueError, match="expected SHA256: and 64 hex digits"):
            seam_tls.parse_pin(bad)


def test_unusable_server_certificates_are_one_line(certs: Certs, tmp_path: Path) -> None:
    with pytest.raises(TLSError, match="cannot read the TLS certificate"):
        ServerTLS.from_files(str(tmp_path / "missing.pem"))
    with pytest.raises(TLSError, match="holds no PEM certificate"):
        ServerTLS.from_files(str(certs.key))
    with pytest.raises(TLSError, match="the key does not match the certificate"):
        ServerTLS.from_files(str(certs.cert), str(certs.other_key))
    with pytest.raises(TLSError, match="no usable private key"):
        ServerTLS.from_files(str(certs.cert))  # no key in the certificate file
    assert ServerTLS.from_files(str(certs.combined)).fingerprint == certs.fingerprint
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(certs.key.read_bytes(), None)
    encrypted = tmp_path / "encrypted.pem"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(TLSError, match="the private key is encrypted"):
        ServerTLS.from_files(str(certs.cert), str(encrypted))  # no passphrase prompt
    with pytest.raises(TLSError, match="cannot read the CA file"):
        ClientTLS.create(cafile=str(tmp_path / "missing-ca.pem"))


# --- the command line ------------------------------------------------------------------


def one_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def files_server(certs: Certs, tmp_path: Path) -> Iterator[Served]:
    root = tmp_path / "share"
    root.mkdir()
    (root / "a.txt").write_text("over TLS\n")
    args = ["files", "serve", str(root), "--port", "0"]
    served = Served(
        *args, "--tls-cert", str(certs.cert), "--tls-key", str(certs.key), log=tmp_path / "log"
    )
    yield served
    served.kill()


def test_the_server_prints_its_fingerprint_and_a_pin_is_checked(
    files_server: Served, certs: Certs
) -> None:
    assert "TLS only" in files_server.banner
    assert certs.fingerprint in files_server.line()  # the second line: what clients pin
    address = files_server.address
    done = synack("files", "ls", address, "--tls-pin", certs.fingerprint)
    assert done.returncode == 0, done.stderr
    assert "a.txt" in done.stdout
    openssl_form = ":".join(certs.fingerprint[7:][i : i + 2].upper() for i in range(0, 64, 2))
    assert synack("files", "ls", address, "--tls-pin", openssl_form).returncode == 0

    wrong = "SHA256:" + "ab" * 32
    done = synack("files", "get", address, "a.txt", "--tls-pin", wrong)
    assert done.returncode == 1
    assert one_line(done.stderr) == (
        f"synack: TLS verification failed for {address}: certificate fingerprint "
        f"{certs.fingerprint} does not match the pinned {wrong}"
    )
    done = synack("files", "ls", address, "--tls-pin", "SHA256:123")
    assert done.returncode == 2 and "64 hex digits" in one_line(done.stderr)


def test_a_ca_file_or_the_system_store_verifies_the_server(
    files_server: Served, certs: Certs, tmp_path: Path
) -> None:
    address = files_server.address
    done = synack(
        "files", "get", address, "a.txt", str(tmp_path / "got.txt"), "--tls-ca", str(certs.ca)
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "got.txt").read_text() == "over TLS\n"

    done = synack("files", "ls", address, "--tls-ca", str(certs.other_ca))
    assert done.returncode == 1
    assert one_line(done.stderr).startswith(f"synack: TLS verification failed for {address}: ")

    # --tls alone trusts the system's store (OpenSSL reads SSL_CERT_FILE in its place here).
    store = {"SSL_CERT_FILE": str(certs.ca), "SSL_CERT_DIR": str(tmp_path)}
    assert synack("files", "ls", address, "--tls", env=store).returncode == 0
    store["SSL_CERT_FILE"] = str(certs.other_ca)
    done = synack("files", "ls", address, "--tls", env=store)
    assert done.returncode == 1
    assert one_line(done.stderr).startswith(f"synack: TLS verification failed for {address}: ")

    # Clear text to a TLS-only server: cut off, one line that names the likely cause.
    done = synack("files", "ls", address)
    assert done.returncode == 1 and "try --tls" in one_line(done.stderr)


def test_chat_over_tls_on_the_command_line(certs: Certs, tmp_path: Path) -> None:
    args = ["chat", "serve", "--port", "0", "--tls-cert", str(certs.combined)]
    with Served(*args, log=tmp_path / "log") as served:
        assert certs.fingerprint in served.line()
        address = served.address
        done = synack(
            "chat",
            "join",
            address,
            "--nick",
            "bob",
            "--tls-pin",
            certs.fingerprint,
            input="hello\n",
            stdin=None,
        )
        assert done.returncode == 0, done.stderr
        assert "you are bob" in done.stdout
        done = synack("chat", "join", address, "--nick", "eve", input="hi\n", stdin=None)
        assert done.returncode == 1 and "try --tls" in one_line(done.stderr)
        assert served.stop() == 0


def test_chat_serve_with_a_clear_port_and_a_tls_port(certs: Certs, tmp_path: Path) -> None:
    args = ["chat", "serve", "--port", "0", "--tls-port", "0", "--tls-cert", str(certs.combined)]
    with Served(*args, log=tmp_path / "log") as served:
        assert "TLS" not in served.banner  # --port stays clear text
        tls_line = served.line()
        assert tls_line.startswith("synack chat: listening on ") and "(tcp, TLS only)" in tls_line
        tls_address = tls_line.split("listening on ")[1].split()[0]
        assert certs.fingerprint in served.line()
        for address, extra in ((served.address, []), (tls_address, ["--tls-ca", str(certs.ca)])):
            done = synack(
                "chat", "join", address, "--nick", "bob", *extra, input="hi\n", stdin=None
            )
            assert done.returncode == 0, done.stderr
        assert served.stop() == 0
    done = synack("chat", "serve", "--port", "0", "--tls-port", "0")
    assert done.returncode == 2 and "--tls-port needs --tls-cert" in one_line(done.stderr)


def test_tls_and_udp_are_refused_together() -> None:
    done = synack("chat", "join", "127.0.0.1:7", "--nick", "bob", "--udp", "--tls")
    assert done.returncode == 2
    assert "the UDP chat has no TLS" in one_line(done.stderr)
    done = synack("chat", "serve", "--udp", "--port", "0", "--tls-cert", "x.pem")
    assert done.returncode == 2
    assert "the UDP chat has no TLS" in one_line(done.stderr)


def test_bad_tls_options_are_one_line(certs: Certs, tmp_path: Path) -> None:
    done = synack(
        "files", "serve", str(tmp_path), "--port", "0", "--tls-cert", str(tmp_path / "no.pem")
    )
    assert done.returncode == 1 and "cannot read the TLS certificate" in one_line(done.stderr)
    done = synack("files", "serve", str(tmp_path), "--port", "0", "--tls-key", str(certs.key))
    assert done.returncode == 2 and "--tls-key needs --tls-cert" in one_line(done.stderr)
    args = ["--tls-cert", str(certs.cert), "--tls-key", str(certs.other_key)]
    done = synack("chat", "serve", "--port", "0", *args)
    assert done.returncode == 1 and "does not match" in one_line(done.stderr)
    done = synack("files", "ls", f"unix:{tmp_path / 's.sock'}", "--tls")
    assert done.returncode == 2
    assert "no host name to check" in one_line(done.stderr)


def test_the_resume_hint_repeats_the_tls_options() -> None:
    from synack.apps.files.cli import _resume_command

    args = Namespace(
        address="127.0.0.1:8041",
        remote="big.iso",
        local=None,
        transport="os",
        tls=False,
        tls_ca="ca.pem",
        tls_pin="SHA256:" + "ab" * 32,
    )
    command = _resume_command(args, "get", ["big.iso"])
    assert command == (
        "synack files get 127.0.0.1:8041 big.iso --tls-ca ca.pem "
        f"--tls-pin SHA256:{'ab' * 32} --resume"
    )
