"""File transfer through the library API: a real server and client on loopback.

Every test runs one event loop under a bounded timeout; every wait is for an
event (a reply, a log line, a byte count), never for time to pass. Tests that
take `transport` run on every transport (tests/conftest.py): the OS's TCP and ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import stat
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from synack import transport as seam
from synack.apps.files import (
    ErrorCode,
    FileClient,
    FilesError,
    FileServer,
    Kind,
    RemoteError,
)
from synack.apps.files.channel import Channel
from synack.apps.files.client import _below
from synack.apps.files.protocol import Op, ProtocolError
from synack.apps.files.receiver import partial_path
from synack.wire.frame import HEADER, MAGIC, Message, encode_blob_header

T = 20.0


def run(coro: Coroutine[Any, Any, Any], timeout: float = T) -> Any:
    async def bounded() -> Any:
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(bounded())


def blob(size: int, seed: int = 0) -> bytes:
    """Deterministic incompressible-looking bytes."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest() * 32
        counter += 1
    return bytes(out[:size])


@contextlib.asynccontextmanager
async def serving(root: Path, transport: str, **options: Any) -> AsyncIterator[FileServer]:
    server = FileServer(root, port=0, transport=transport, **options)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


async def connect(server: FileServer) -> FileClient:
    host, port = server.address
    return await FileClient.connect(host, port, timeout=10, transport=server.transport)


class Raw:
    """A hand-driven client: says hello, then sends whatever a test wants, as a hostile peer would."""

    def __init__(self, channel: Channel) -> None:
        self.ch = channel

    @classmethod
    async def open(cls, server: FileServer, hello: dict[str, Any] | None = None) -> Raw:
        reader, writer = await seam.open_connection(*server.address, transport=server.transport)
        ch = Channel(reader, writer, timeout=10, peer="server")
        writer.write(MAGIC)
        await ch.send(hello or {"op": "hello", "app": "files", "version": 1})
        return cls(ch)

    async def welcome(self) -> dict[str, Any]:
        return await self.ch.expect(Op.WELCOME)

    async def ask(self, body: dict[str, Any]) -> dict[str, Any]:
        await self.ch.send(body)
        event = await self.ch.receive()
        assert isinstance(event, Message), event
        return event.body

    async def close(self) -> None:
        await self.ch.close()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "served"
    r.mkdir()
    (r / "small.txt").write_bytes(b"hello, world\n")
    (r / "empty").write_bytes(b"")
    (r / "big.bin").write_bytes(blob(3_000_000))
    tree = r / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "void").mkdir()
    (tree / "one.txt").write_bytes(b"1")
    (tree / "a" / "two.bin").write_bytes(blob(5_000_000, seed=2))  # more than one 4 MiB buffer
    (tree / "a" / "b" / "three").write_bytes(b"")
    return r


@pytest.fixture
def here(tmp_path: Path) -> Path:
    d = tmp_path / "local"
    d.mkdir()
    return d


def snapshot(top: Path) -> dict[str, bytes | None]:
    """Every path below `top` with its contents (None for a directory)."""
    out: dict[str, bytes | None] = {}
    for p in sorted(top.rglob("*")):
        out[str(p.relative_to(top))] = None if p.is_dir() else p.read_bytes()
    return out


def no_partials(top: Path) -> bool:
    return not [p for p in top.rglob("*.synack-part")]


# -- round trips -----------------------------------------------------------------


def test_get_single_file_round_trip(transport: str, root: Path, here: Path) -> None:
    async def go() -> None:
        async with serving(root, transport) as server, await connect(server) as client:
            done = await client.get("big.bin", here)
            assert (here / "big.bin").read_bytes() == (root / "big.bin").read_bytes()
            assert (done.files, done.bytes, done.identical) == (1, 3_000_000, 0)
            done = await client.get("small.txt", here / "renamed.txt")
            assert (here / "renamed.txt").read_bytes() == b"hello, world\n"

    run(go())
    assert no_partials(here)


def test_get_empty_file(transport: str, root: Path, here: Path) -> None:
    async def go() -> None:
        async with serving(root, transport) as server, await connect(server) as client:
            done = await client.get("empty", here)
            assert (done.files, done.bytes) == (1, 0)

    run(go())
    assert (here / "empty").read_bytes() == b""
    assert no_partials(here)


def test_get_directory_tree_recursively(transport: str, root: Path, here: Path) -> None:
    async def go() -> None:
        async with serving(root, transport) as server, await connect(server) as client:
            done = await client.get("tree", here)
            assert done.files == 3 and done.bytes == 5_000_001
            # Into a name that does not exist yet: that name becomes the copy (as cp -r does).
            await client.get("tree/a", here / "copy-of-a")

    run(go())
    assert snapshot(here / "tree") == snapshot(root / "tree")
    assert snapshot(here / "copy-of-a") == snapshot(root / "tree" / "a")
    assert (here / "tree" / "void").is_dir()


def test_put_file_and_directory_tree(transport: str, root: Path, here: Path) -> None:
    (here / "up.bin").write_bytes(blob(6_000_000, seed=7))
    (here / "dir" / "sub").mkdir(parents=True)
    (here / "dir" / "x").write_bytes(b"x" * 10)
    (here / "dir" / "sub" / "y").write_bytes(blob(4_500_000, seed=8))
    (here / "dir" / "sub" / "z").write_bytes(b"")

    async def go() -> None:
        async with (
            serving(root, transport, allow_upload=True) as server,
            await connect(server) as client,
        ):
            done = await client.put(here / "up.bin")
            assert (done.files, done.bytes) == (1, 6_000_000)
            await client.put(here / "up.bin", "tree")  # an existing remote directory: goes inside
            done = await client.put(here / "dir", "uploaded")
            assert done.files == 3
            listed = {e.path: e.kind for e in await client.list("uploaded", recursive=True)}
            assert listed == {
                "uploaded/sub": Kind.DIR,
                "uploaded/x": Kind.FILE,
                "uploaded/sub/y": Kind.FILE,
                "uploaded/sub/z": Kind.FILE,
            }

    run(go())
    assert (root / "up.bin").read_bytes() == (here / "up.bin").read_bytes()
    assert (root / "tree" / "up.bin").read_bytes() == (here / "up.bin").read_bytes()
    assert snapshot(root / "uploaded") == snapshot(here / "dir")
    assert no_partials(root)


def test_list_and_stat(transport: str, root: Path) -> None:
    async def go() -> None:
        async with serving(root, transport) as server, await connect(server) as client:
            top = {e.path: (e.kind, e.size) for e in await client.list()}
            assert top == {
                "big.bin": (Kind.FILE, 3_000_000),
                "empty": (Kind.FILE, 0),
                "small.txt": (Kind.FILE, 13),
                "tree": (Kind.DIR, top["tree"][1]),
            }
            deep = [e.path for e in await client.list("tree", recursive=True)]
            assert set(deep) == {
                "tree/a",
                "tree/one.txt",
                "tree/void",
                "tree/a/b",
                "tree/a/two.bin",
                "tree/a/b/three",
            }
            assert deep.index("tree/a") < deep.index("tree/a/two.bin")  # parents first
            assert (await client.stat("tree/one.txt")).size == 1
            assert [e.path for e in await client.list("small.txt")] == ["small.txt"]

    run(go())


def test_listing_larger_than_one_message(transport: str, root: Path) -> None:
    many = root / "many"
    many.mkdir()
    for i in range(1500):  # about 100 KiB of JSON: several `entries` messages
        (many / f"file-with-a-longish-name-{i:05d}").write_bytes(b"")

    async def go() -> None:
        async with serving(root, transport) as server, await connect(server) as client:
            entries = await client.list("many")
            assert len(entries) == 1500

    run(go())


def test_symlink_inside_root_is_served(transport: str, root: Path, here: Path) -> None:
    (root / "alias.txt").symlink_to("small.txt")
    (root / "tree-alias").symlink_to("tree")
    (root / "tree" / "loop").symlink_to("..")  # a cycle must not hang a recursive listing

    async def go() -> None:
        async with serving(root, transport) as server, await connect(server) as client:
            await client.get("alias.txt", here)
            paths = [e.path for e in await client.list("tree-alias", recursive=True)]
            assert "tree-alias/a/two.bin" in paths
            assert len(paths) == len(set(paths))

    run(go())
    assert (here / "alias.txt").read_bytes() == b"hello, world\n"


# -- overwrite, resume, verification ---------------------------------------------


def test_get_refuses_to_overwrite_without_force(transport: str, root: Path, here: Path) -> None:
    (here / "small.txt").write_bytes(b"mine")
    (here / "tree" / "a").mkdir(parents=True)
    (here / "tree" / "a" / "two.bin").write_bytes(b"mine too")

    async def go() -> None:
        async with serving(root, transport) as server, await connect(server) as client:
            with pytest.raises(FilesError) as caught:
                await client.get("small.txt", here)
            assert caught.value.code is ErrorCode.EXISTS
            with pytest.raises(FilesError) as caught:
                await client.get("tree", here)
            assert caught.value.code is ErrorCode.EXISTS
            # Nothing of the tree was transferred: the check comes before any byte moves.
            assert not (here / "tree" / "one.txt").exists()
            await client.get("small.txt", here, force=True)
            await client.get("tree", here, force=True)

    run(go())
    assert (here / "small.txt").read_bytes() == b"hello, world\n"
    assert snapshot(here / "tree") == snapshot(root / "tree")


def test_put_refuses_to_overwrite_without_force(transport: str, root: Path, here: Path) -> None:
    (here / "small.txt").write_bytes(b"replacement")

    async def go() -> None:
        async with (
            serving(root, transport, allow_upload=True) as server,
            await connect(server) as client,
        ):
            with pytest.raises(RemoteError) as caught:
                await client.put(here / "small.txt")
            assert caught.value.code is ErrorCode.EXISTS
            assert (root / "small.txt").read_bytes() == b"hello, world\n"
            await client.put(here / "small.txt", force=True)

    run(go())
    assert (root / "small.txt").read_bytes() == b"replacement"
    assert no_partials(root)


def test_resume_continues_a_partial_download(transport: str, root: Path, here: Path) -> None:
    whole = (root / "big.bin").read_bytes()
    Path(partial_path(str(here / "big.bin"))).write_bytes(whole[:1_234_567])

    async def go() -> None:
        async with serving(root, transport) as server, await connect(server) as client:
            done = await client.get("big.bin", here, resume=True)
            assert done.bytes == len(whole) - 1_234_567

    run(go())
    assert (here / "big.bin").read_bytes() == whole
    assert no_partials(here)


def test_resume_with_a_tampered_prefix_fails_verification(
    transport: str, root: Path, here: Path
) -> None:
    whole = bytearray((root / "big.bin").read_bytes()[:2_000_000])
    whole[1000] ^= 0xFF
    part = Path(partial_path(str(here / "big.bin")))
    part.write_bytes(whole)

    async def go() -> None:
        async with serving(root, transport) as server, await connect(server) as client:
            with pytest.raises(FilesError) as caught:
                await client.get("big.bin", here, resume=True)
            assert caught.value.code is ErrorCode.CHECKSUM
            assert "SHA-256 mismatch" in str(caught.value)
            # The connection is still usable, and a fresh transfer then succeeds.
            await client.get("big.bin", here, resume=True)

    run(go())
    assert (here / "big.bin").read_bytes() == (root / "big.bin").read_bytes()


def test_failed_verification_leaves_no_complete_looking_file(
    transport: str, root: Path, here: Path
) -> None:
    part = Path(partial_path(str(here / "big.bin")))
    part.write_bytes(b"\0" * 100)

    async def go() -> None:
        async with serving(root, transport) as server, await connect(server) as client:
            with pytest.raises(FilesError):
                await client.get("big.bin", here, resume=True)

    run(go())
    assert not (here / "big.bin").exists()
    assert not part.exists()


def test_resume_over_a_finished_file_checks_it_and_leaves_it(
    transport: str, root: Path, here: Path
) -> None:
    (here / "big.bin").write_bytes((root / "big.bin").read_bytes())
    same_size_but_different = bytearray((root / "small.txt").read_bytes())
    same_size_but_different[0] ^= 1
    (here / "small.txt").write_bytes(same_size_but_different)

    async def go() -> None:
        async with serving(root, transport) as server, await connect(server) as client:
            done = await client.get("big.bin", here, resume=True)
            assert (done.files, done.identical, done.bytes) == (0, 1, 0)
            with pytest.raises(FilesError) as caught:
                await client.get("small.txt", here, resume=True)
            assert caught.value.code is ErrorCode.EXISTS

    run(go())
    assert (here / "small.txt").read_bytes() == same_size_but_different


def test_interrupted_upload_resumes(transport: str, root: Path, here: Path) -> None:
    data = blob(3_000_000, seed=3)
    (here / "up.bin").write_bytes(data)
    dropped = asyncio.Event()

    def log(line: str) -> None:
        if "dropped" in line:
            dropped.set()

    async def go() -> None:
        async with serving(root, transport, allow_upload=True, log=log) as server:
            raw = await Raw.open(server)
            await raw.welcome()
            ready = await raw.ask({"op": "put", "path": "up.bin", "size": len(data)})
            assert ready == {"op": "ready", "offset": 0}
            raw.ch.writer.write(encode_blob_header(len(data)) + data[:1_000_000])
            await raw.ch.writer.drain()
            # The client goes away mid-body. Its TCP still delivers what was sent, then a FIN,
            # as the kernel does for a process that dies (our TCP would reset on an abort).
            raw.ch.writer.close()
            await dropped.wait()
            assert not (root / "up.bin").exists()
            assert Path(partial_path(str(root / "up.bin"))).stat().st_size == 1_000_000
            async with await connect(server) as client:
                done = await client.put(here / "up.bin", resume=True)
                assert done.bytes == 2_000_000

    run(go())
    assert (root / "up.bin").read_bytes() == data
    assert no_partials(root)


def test_disk_full_mid_upload_is_answered_after_the_rest_arrives_in_pieces(
    transport: str, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PROTOCOL §4.5: a server whose disk fails mid-body reads and drops the rest of the
    BLOB and answers ``no-space``. The rest comes in pieces, as it does over any network:
    a read that returns what has arrived so far is not the end of the stream."""
    import synack.apps.files.receiver as receiver_module

    data = blob(10_000_000, seed=4)
    full = asyncio.Event()

    def disk_full(fd: int, view: memoryview, position: int) -> None:
        full.set()
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(receiver_module, "_write_all", disk_full)

    async def go() -> None:
        async with serving(root, transport, allow_upload=True) as server:
            raw = await Raw.open(server)
            await raw.welcome()
            ready = await raw.ask({"op": "put", "path": "up.bin", "size": len(data)})
            assert ready == {"op": "ready", "offset": 0}
            # More than one receive buffer (4 MiB): the first write fails while the rest
            # of the body has not been sent yet.
            raw.ch.writer.write(encode_blob_header(len(data)) + data[:5_000_000])
            await raw.ch.writer.drain()
            await full.wait()
            raw.ch.writer.write(data[5_000_000:])
            digest = hashlib.sha256(data).hexdigest()
            reply = await raw.ask({"op": "sent", "sha256": digest})
            assert reply["op"] == "error" and reply["code"] == "no-space", reply
            # The connection is still usable for the next request.
            assert (await raw.ask({"op": "stat", "path": "small.txt"}))["op"] == "stat"
            await raw.close()

    run(go())
    assert not (root / "up.bin").exists()


def test_upload_with_wrong_checksum_is_not_stored(transport: str, root: Path) -> None:
    async def go() -> None:
        async with serving(root, transport, allow_upload=True) as server:
            raw = await Raw.open(server)
            await raw.welcome()
            await raw.ask({"op": "put", "path": "bad.bin", "size": 5})
            raw.ch.writer.write(encode_blob_header(5) + b"12345")
            reply = await raw.ask({"op": "sent", "sha256": "0" * 64})
            assert reply["op"] == "error" and reply["code"] == "checksum"
            await raw.close()

    run(go())
    assert not (root / "bad.bin").exists()
    assert no_partials(root)


# -- refusals ---------------------------------------------------------------------


@pytest.fixture
def outside(tmp_path: Path, root: Path) -> Path:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "passwd").write_bytes(b"root:x:0:0\n")
    (root / "linkout").symlink_to(secret)
    (root / "filelink").symlink_to(secret / "passwd")
    (root / "tree" / "up").symlink_to("../..")  # resolves to tmp_path: outside
    return secret


TRAVERSAL = [
    ("../secret/passwd", "bad-path"),
    ("tree/../../secret/passwd", "bad-path"),
    ("..", "bad-path"),
    ("/etc/passwd", "bad-path"),
    ("small.txt\x00.png", "bad-path"),
    ("tree//one.txt", "bad-path"),
    ("./small.txt", "bad-path"),
    ("linkout/passwd", "outside-root"),
    ("linkout", "outside-root"),
    ("filelink", "outside-root"),
    ("tree/up/secret/passwd", "outside-root"),
]


@pytest.mark.parametrize(("path", "code"), TRAVERSAL)
@pytest.mark.parametrize("op", ["get", "list", "stat"])
def test_paths_leading_out_of_the_root_are_refused(
    transport: str, root: Path, outside: Path, op: str, path: str, code: str
) -> None:
    async def go() -> None:
        async with serving(root, transport) as server:
            raw = await Raw.open(server)
            await raw.welcome()
            reply = await raw.ask({"op": op, "path": path, "offset": 0})
            assert reply["op"] == "error" and reply["code"] == code, reply
            assert reply["message"]
            # The refusal leaves the connection usable.
            assert (await raw.ask({"op": "stat", "path": "small.txt"}))["op"] == "stat"
            await raw.close()

    run(go())


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("../escaped", "bad-path"),
        ("/tmp/escaped", "bad-path"),
        ("linkout/escaped", "outside-root"),
        ("tree/up/escaped", "outside-root"),
        (".small.txt.synack-part", "bad-path"),
        ("", "bad-path"),
        ("no/such/dir/file", "not-found"),
        ("small.txt/under-a-file", "not-dir"),
    ],
)
def test_uploads_outside_the_root_are_refused(
    transport: str, root: Path, outside: Path, path: str, code: str
) -> None:
    before = snapshot(outside.parent)

    async def go() -> None:
        async with serving(root, transport, allow_upload=True) as server:
            raw = await Raw.open(server)
            await raw.welcome()
            reply = await raw.ask({"op": "put", "path": path, "size": 1})
            assert reply["op"] == "error" and reply["code"] == code, reply
            reply = await raw.ask({"op": "mkdir", "path": path})
            assert reply["op"] == "error" and reply["code"] == code, reply
            await raw.close()

    run(go())
    assert snapshot(outside.parent) == before


def test_uploads_refused_when_not_allowed(transport: str, root: Path, here: Path) -> None:
    (here / "new.txt").write_bytes(b"new")
    before = snapshot(root)

    async def go() -> None:
        async with serving(root, transport) as server, await connect(server) as client:
            assert not client.upload_allowed
            with pytest.raises(RemoteError) as caught:
                await client.put(here / "new.txt")
            assert caught.value.code is ErrorCode.READ_ONLY
            assert "not allowed" in str(caught.value)
            raw = await Raw.open(server)
            await raw.welcome()
            assert (await raw.ask({"op": "mkdir", "path": "d"}))["code"] == "read-only"
            await raw.close()

    run(go())
    assert snapshot(root) == before


def test_special_files_are_refused(transport: str, root: Path) -> None:
    os.mkfifo(root / "fifo")
    os.mknod(root / "sock", 0o600 | stat.S_IFSOCK)

    async def go() -> None:
        async with serving(root, transport) as server:
            raw = await Raw.open(server)
            await raw.welcome()
            for name in ("fifo", "sock"):
                reply = await raw.ask({"op": "get", "path": name})
                assert reply["code"] == "not-regular", reply
            kinds = {
                e["path"]: e["type"] for e in (await raw.ask({"op": "list", "path": ""}))["entries"]
            }
            assert kinds["fifo"] == kinds["sock"] == "other"
            await raw.close()

    run(go())


def test_device_files_are_refused(transport: str) -> None:
    # /dev holds real character devices; the server must refuse them without opening them.
    async def go() -> None:
        async with serving(Path("/dev"), transport) as server:
            raw = await Raw.open(server)
            await raw.welcome()
            for name in ("null", "zero", "urandom"):
                reply = await raw.ask({"op": "get", "path": name})
                assert reply["code"] == "not-regular", reply
            await raw.close()

    run(go())


def test_missing_file_and_bad_requests(transport: str, root: Path) -> None:
    async def go() -> None:
        async with serving(root, transport) as server:
            raw = await Raw.open(server)
            await raw.welcome()
            assert (await raw.ask({"op": "get", "path": "nope"}))["code"] == "not-found"
            assert (await raw.ask({"op": "get", "path": "tree"}))["code"] == "is-dir"
            assert (await raw.ask({"op": "get", "path": 7}))["code"] == "bad-request"
            assert (await raw.ask({"op": "get", "path": "empty", "offset": -1}))[
                "code"
            ] == "bad-request"
            assert (await raw.ask({"op": "get", "path": "small.txt", "offset": 99}))[
                "code"
            ] == "bad-offset"
            assert (await raw.ask({"op": "frobnicate"}))["code"] == "bad-request"
            assert (await raw.ask({"op": "list", "path": "", "recursive": "yes"}))[
                "code"
            ] == "bad-request"
            await raw.close()

    run(go())


def test_wrong_app_or_version_is_refused(transport: str, root: Path) -> None:
    async def go() -> None:
        async with serving(root, transport) as server:
            for hello in (
                {"op": "hello", "app": "files", "version": 99},
                {"op": "hello", "app": "chat", "version": 1},
            ):
                raw = await Raw.open(server, hello)
                with pytest.raises(RemoteError) as caught:
                    await raw.welcome()
                assert caught.value.code is ErrorCode.VERSION
                assert await raw.ch.receive() is None  # and the server closed
                await raw.close()

    run(go())


def test_client_rejects_a_hostile_listing() -> None:
    assert _below("tree", "tree/a/b") == ("a", "b")
    assert _below("", "x") == ("x",)
    for path in (
        "tree/../../etc/passwd",
        "other/x",
        "/etc/passwd",
        "tree",
        "tree/a//b",
        "tree/\x00",
    ):
        with pytest.raises(ProtocolError):
            _below("tree", path)


# -- concurrency and memory ----------------------------------------------------------


def test_many_clients_at_once(transport: str, root: Path, here: Path) -> None:
    names = ["big.bin", "tree/a/two.bin", "small.txt", "empty"]

    async def one(server: FileServer, i: int) -> None:
        async with await connect(server) as client:
            name = names[i % len(names)]
            await client.get(name, here / f"{i}-{Path(name).name}")

    async def go() -> None:
        async with serving(root, transport) as server:
            idle = await Raw.open(server)  # a client that says nothing more must not hold anyone up
            await asyncio.gather(*(one(server, i) for i in range(12)))
            await idle.close()

    run(go())
    for i in range(12):
        name = names[i % len(names)]
        assert (here / f"{i}-{Path(name).name}").read_bytes() == (root / name).read_bytes()


def peak_memory_growth(work: Callable[[], None]) -> int:
    """Bytes by which this process's peak resident memory rose while `work` ran.

    Read from the kernel (VmHWM, reset first through /proc/self/clear_refs) rather than
    with tracemalloc, which slows our TCP's per-segment allocations about tenfold.
    """
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the peak starts again from what is resident now
    before = _status_kib("VmHWM")
    work()
    return (_status_kib("VmHWM") - before) * 1024


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/self/status")


def test_memory_stays_constant_whatever_the_size(transport: str, root: Path, here: Path) -> None:
    size = 48 << 20
    with open(root / "huge.bin", "wb") as f:
        piece = blob(1 << 20, seed=9)
        for _ in range(size >> 20):
            f.write(piece)

    async def go() -> None:
        async with (
            serving(root, transport, allow_upload=True) as server,
            await connect(server) as client,
        ):
            await client.get("huge.bin", here)
            await client.put(here / "huge.bin", "again.bin")

    peak = peak_memory_growth(lambda: run(go(), timeout=60))
    # Client and server together, both directions: a few 4 MiB buffers and the TCP's own
    # (measured: about 13 MiB on the OS's TCP, 25 on ours), never the 48 MiB file.
    assert peak < 40 << 20, f"peak memory grew {peak / 2**20:.1f} MiB for a 48 MiB file"
    assert (root / "again.bin").stat().st_size == size
    assert (
        hashlib.sha256((here / "huge.bin").read_bytes()).digest()
        == hashlib.sha256((root / "huge.bin").read_bytes()).digest()
    )


def test_server_hash_cache_serves_repeat_downloads(transport: str, root: Path, here: Path) -> None:
    old = 1_000_000_000  # an mtime long past: not "racy", so its hash may be cached
    os.utime(root / "big.bin", ns=(old, old))

    async def go() -> None:
        async with serving(root, transport) as server, await connect(server) as client:
            await client.get("big.bin", here / "1")
            assert (server.digests.hits, server.digests.misses) == (0, 1)
            await client.get("big.bin", here / "2")
            assert (server.digests.hits, server.digests.misses) == (1, 1)
            # Changing the file changes its key: the next download hashes again.
            with open(root / "big.bin", "r+b") as f:
                f.write(b"X")
            await client.get("big.bin", here / "3")
            assert server.digests.misses == 2

    run(go())
    assert (here / "3").read_bytes()[:1] == b"X"


@pytest.mark.parametrize(
    "garbage",
    [
        HEADER.pack(1, 1 << 30),  # a MESSAGE far over the limit: refused before any body
        HEADER.pack(7, 3) + b"abc",  # an unknown frame type
        HEADER.pack(1, 5) + b"[1,2]",  # JSON, but not an object
        encode_blob_header(3) + b"abc",  # a BLOB where a request belongs
    ],
)
def test_broken_framing_closes_that_connection_only(
    transport: str, root: Path, here: Path, garbage: bytes
) -> None:
    async def go() -> None:
        async with serving(root, transport) as server:
            bystander = await connect(server)
            raw = await Raw.open(server)
            await raw.welcome()
            raw.ch.writer.write(garbage)
            event = await raw.ch.receive()
            assert isinstance(event, Message) and event.body["code"] == "bad-request", event
            assert await raw.ch.receive() is None  # then the server hangs up
            await raw.close()
            await bystander.get("small.txt", here)  # everyone else is still served
            await bystander.close()

    run(go())
    assert (here / "small.txt").read_bytes() == b"hello, world\n"


def test_put_destination_follows_scp(transport: str, root: Path, here: Path) -> None:
    (here / "n.txt").write_bytes(b"n")

    async def go() -> None:
        async with (
            serving(root, transport, allow_upload=True) as server,
            await connect(server) as client,
        ):
            await client.put(here / "n.txt", "tree/")  # an existing directory: inside it
            await client.put(here / "n.txt", "tree/renamed.txt")  # a new name: that name
            await client.put(here / "n.txt", "nodir/")  # a directory that is not there: made

    run(go())
    assert (root / "tree" / "n.txt").read_bytes() == b"n"
    assert (root / "tree" / "renamed.txt").read_bytes() == b"n"
    assert (root / "nodir" / "n.txt").read_bytes() == b"n"


def test_two_uploads_to_one_destination(transport: str, root: Path) -> None:
    async def go() -> None:
        async with serving(root, transport, allow_upload=True) as server:
            first, second = await Raw.open(server), await Raw.open(server)
            await first.welcome()
            await second.welcome()
            assert (await first.ask({"op": "put", "path": "same.bin", "size": 3}))["op"] == "ready"
            reply = await second.ask({"op": "put", "path": "same.bin", "size": 3})
            assert reply["code"] == "busy", reply
            first.ch.writer.write(encode_blob_header(3) + b"abc")
            digest = hashlib.sha256(b"abc").hexdigest()
            assert (await first.ask({"op": "sent", "sha256": digest}))["op"] == "stored"
            await first.close()
            await second.close()

    run(go())
    assert (root / "same.bin").read_bytes() == b"abc"


def test_a_hostile_server_cannot_make_the_client_write_outside(
    transport: str, tmp_path: Path, here: Path
) -> None:
    """A server that lists `../` paths is refused before the client creates anything."""

    async def hostile(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ch = Channel(reader, writer, timeout=10, peer="client")
        await reader.readexactly(len(MAGIC))
        await ch.request()
        await ch.send({"op": "welcome", "version": 1, "server": "evil", "upload": False})
        while (request := await ch.request()) is not None:
            if request["op"] == "stat":
                entry = {"path": "tree", "type": "dir", "size": 0, "mtime_ns": 0}
                await ch.send({"op": "stat", "entry": entry})
            else:
                evil = {"path": "tree/../../escaped", "type": "file", "size": 4, "mtime_ns": 0}
                await ch.send({"op": "entries", "entries": [evil]})
                await ch.send({"op": "end", "count": 1})

    async def go() -> None:
        server = await seam.start_server(hostile, "127.0.0.1", 0, transport=transport)
        async with server:
            port = server.addresses[0][1]
            connecting = FileClient.connect("127.0.0.1", port, timeout=10, transport=transport)
            async with await connecting as client:
                with pytest.raises(ProtocolError, match=r"not inside|unsafe"):
                    await client.get("tree", here)

    before = snapshot(tmp_path)
    run(go())
    assert snapshot(tmp_path) == before


def test_put_tree_follows_file_links_and_skips_the_rest(
    transport: str, root: Path, here: Path
) -> None:
    tree = here / "t"
    (tree / "real").mkdir(parents=True)
    (tree / "real" / "a.txt").write_bytes(b"a")
    (tree / "link.txt").symlink_to("real/a.txt")
    (tree / "dirlink").symlink_to("real")  # a loop risk: not followed
    os.mkfifo(tree / "pipe")

    async def go() -> None:
        async with (
            serving(root, transport, allow_upload=True) as server,
            await connect(server) as client,
        ):
            done = await client.put(tree, "t")
            assert sorted(Path(s.split(":")[0]).name for s in done.skipped) == ["dirlink", "pipe"]

    run(go())
    assert (root / "t" / "link.txt").read_bytes() == b"a" and not (
        root / "t" / "link.txt"
    ).is_symlink()
    assert (root / "t" / "real" / "a.txt").read_bytes() == b"a"
    assert not (root / "t" / "dirlink").exists() and not (root / "t" / "pipe").exists()
