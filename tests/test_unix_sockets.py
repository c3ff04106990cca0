"""``unix:PATH`` addresses for the chat and the file transfer (issue 15, point 4).

Sockets live in the test's temporary directory. The socket file is checked for
its mode, for its removal when the server stops (also on SIGTERM), for its
replacement when a killed server left it behind, and for never being taken
from a live server or replacing something that is not a socket. Every wait is
bounded.
"""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from bounded import run
from cliproc import Served, synack
from synack import transport as seam
from synack.apps.chat import ChatClient, ChatServer
from synack.apps.files import FileClient, FileServer
from synack.transport import AddressInUse, UnsupportedAddress

T = 10.0


def mode_of(path: Path) -> int:
    st = path.lstat()
    assert stat.S_ISSOCK(st.st_mode), f"{path} is not a socket"
    return stat.S_IMODE(st.st_mode)


def one_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


# --- the library ----------------------------------------------------------------------


@run
async def test_chat_over_a_unix_socket(tmp_path: Path) -> None:
    address = f"unix:{tmp_path / 'chat.sock'}"
    logs: list[str] = []
    server = ChatServer(address, 0, log=logs.append)
    assert await server.start() == (address, 0)
    alice, bob = ChatClient(address, 0, "alice"), ChatClient(address, 0, "bob")
    try:
        async with asyncio.timeout(T):
            await alice.connect()
            await bob.connect()
            await bob.say("hello through the file system")
            event = await alice.until("msg", text="hello through the file system")
            assert event["from"] == "bob"
            await alice.close()
            await bob.close()
    finally:
        await server.close()
    # Unix peers have no address: the log names their process and user instead.
    joined = [line for line in logs if "alice joined" in line]
    assert joined and f"unix:pid={os.getpid()},uid={os.getuid()}" in joined[0]


@run
async def test_files_get_and_put_over_a_unix_socket(tmp_path: Path) -> None:
    root, local = tmp_path / "root", tmp_path / "local"
    root.mkdir()
    local.mkdir()
    data = os.urandom(2 * 1024 * 1024 + 3)
    (root / "a.bin").write_bytes(data)
    (local / "b.bin").write_bytes(data[::-1])
    address = f"unix:{tmp_path / 'files.sock'}"
    async with FileServer(root, host=address, port=0, allow_upload=True) as server:
        assert server.address == (address, 0)
        async with asyncio.timeout(T):
            async with await FileClient.connect(address, 0) as client:
                await client.get("a.bin", str(local / "a.bin"))
                await client.put(str(local / "b.bin"))
    assert (local / "a.bin").read_bytes() == data
    assert (root / "b.bin").read_bytes() == data[::-1]


@run
async def test_the_socket_is_made_with_its_mode_and_removed_on_close(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    umask = os.umask(0o022)
    try:
        for asked, expected in ((None, 0o600), (0o660, 0o660)):
            extra = {} if asked is None else {"unix_mode": asked}
            server = await seam.start_server(handler, f"unix:{path}", 0, **extra)
            assert mode_of(path) == expected  # never wider, whatever the umask
            assert os.umask(0o022) == 0o022  # and the umask is given back
            server.close()
            await server.wait_closed()
            assert not path.exists()
    finally:
        os.umask(umask)


@run
async def test_a_live_servers_socket_is_refused_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    address = f"unix:{path}"

    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"first")
        writer.close()

    async with await seam.start_server(greet, address, 0):
        inode = path.lstat().st_ino
        with pytest.raises(AddressInUse, match=f"another server answers at {address}$"):
            await seam.start_server(greet, address, 0)
        assert path.lstat().st_ino == inode
        async with asyncio.timeout(T):
            reader, writer = await seam.open_connection(address, 0)
            assert await reader.read() == b"first"
            writer.close()


@run
async def test_unix_sockets_need_the_os_transport(tmp_path: Path) -> None:
    assert seam.supports_unix("os") and not seam.supports_unix("synack")
    with pytest.raises(UnsupportedAddress, match="carries TCP in UDP datagrams"):
        await seam.open_connection(f"unix:{tmp_path / 's.sock'}", 0, transport="synack")


# --- the command line -----------------------------------------------------------------


def serve(app: str, address: str, tmp_path: Path) -> Served:
    """`synack chat serve` or `synack files serve DIR` on `address`."""
    if app == "chat":
        return Served("chat", "serve", "--host", address, log=tmp_path / "log")
    root = tmp_path / "share"
    root.mkdir(exist_ok=True)
    (root / "a.txt").write_text("through a Unix socket\n")
    return Served("files", "serve", str(root), "--host", address, log=tmp_path / "log")


def client_works(app: str, address: str) -> None:
    if app == "chat":
        done = synack("chat", "join", address, "--nick", "bob", input="hi\n", stdin=None)
        assert done.returncode == 0, done.stderr
        assert "you are bob" in done.stdout
    else:
        done = synack("files", "ls", address)
        assert done.returncode == 0, done.stderr
        assert "a.txt" in done.stdout


@pytest.mark.parametrize("app", ["chat", "files"])
def test_a_cli_server_serves_on_a_unix_socket_and_removes_it_on_sigterm(
    app: str, tmp_path: Path
) -> None:
    path = tmp_path / f"{app}.sock"
    address = f"unix:{path}"
    with serve(app, address, tmp_path) as server:
        assert server.address == address
        assert mode_of(path) == 0o600
        client_works(app, address)
        assert server.stop() == 0
        assert not path.exists()


@pytest.mark.parametrize("app", ["chat", "files"])
def test_a_stale_socket_from_a_killed_server_does_not_stop_a_restart(
    app: str, tmp_path: Path
) -> None:
    path = tmp_path / f"{app}.sock"
    address = f"unix:{path}"
    with serve(app, address, tmp_path) as server:
        server.kill()  # SIGKILL: the socket file stays behind
    assert stat.S_ISSOCK(path.lstat().st_mode)
    done = synack(
        "files" if app == "files" else "chat",
        *(["ls", address] if app == "files" else ["join", address, "--nick", "bob"]),
    )
    assert done.returncode == 1
    assert one_line(done.stderr) == f"synack: cannot connect to {address}: connection refused"
    with serve(app, address, tmp_path) as server:
        client_works(app, address)
        assert server.stop() == 0
    assert not path.exists()


def test_a_live_servers_socket_is_never_removed(tmp_path: Path) -> None:
    path = tmp_path / "chat.sock"
    address = f"unix:{path}"
    with serve("chat", address, tmp_path) as server:
        inode = path.lstat().st_ino
        for argv in (
            ["chat", "serve", "--host", address],
            ["files", "serve", str(tmp_path), "--host", address],
        ):
            done = synack(*argv)
            assert done.returncode == 1
            assert one_line(done.stderr) == (
                f"synack: address in use: another server answers at {address}"
            )
        assert path.lstat().st_ino == inode
        client_works("chat", address)
        assert server.stop() == 0


def test_what_is_not_a_socket_is_left_alone(tmp_path: Path) -> None:
    regular = tmp_path / "notes.txt"
    regular.write_text("precious\n")
    folder = tmp_path / "folder"
    folder.mkdir()
    for path in (regular, folder):
        done = synack("chat", "serve", "--host", f"unix:{path}")
        assert done.returncode == 1
        assert one_line(done.stderr) == (
            f"synack: cannot listen on unix:{path}: something other than a socket is there"
        )
    assert regular.read_text() == "precious\n"
    assert folder.is_dir()


def test_unix_addresses_are_checked_before_anything_runs(tmp_path: Path) -> None:
    address = f"unix:{tmp_path / 'x.sock'}"
    for argv in (
        ["chat", "join", address, "--nick", "bob", "--transport", "synack"],
        ["files", "serve", str(tmp_path), "--host", address, "--transport", "synack"],
    ):
        done = synack(*argv)
        assert done.returncode == 2
        assert one_line(done.stderr) == (
            "synack: --transport synack carries TCP in UDP datagrams and has no Unix-socket "
            "form (unix: addresses need the os transport)"
        )
    done = synack("chat", "join", address, "--nick", "bob", "--udp")
    assert done.returncode == 2 and "needs HOST:PORT" in one_line(done.stderr)
    done = synack("files", "ls", "unix:")
    assert done.returncode == 2 and "the socket path is missing" in one_line(done.stderr)
    done = synack("files", "ls", address)
    assert done.returncode == 1
    assert one_line(done.stderr) == (
        f"synack: cannot connect to {address}: no such file or directory"
    )
    done = synack("chat", "serve", "--host", address, "--socket-mode", "666")
    assert done.returncode == 2 and "choose 600 or 660" in one_line(done.stderr)
