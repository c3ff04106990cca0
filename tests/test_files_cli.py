"""`synack files` as a user runs it: the CLI's errors, a real server process killed mid-transfer,
the progress bar on a terminal, and files the server may not read.

Servers run as subprocesses (`python -m synack files serve ... --port 0`); every wait is for a
line, an exit, a byte count or a socket event, bounded by a timeout. Tests that take
`transport` run on every transport (tests/conftest.py), with ``--transport``.
"""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import os
import pty
import re
import resource
import selectors
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from loopthread import LoopThread, free_port, port_type
from synack import transport as seam
from synack.apps.files import ErrorCode, FileClient, RemoteError
from synack.apps.files.receiver import partial_path
from synack.cli import main
from synack.errors import UserError

T = 15.0


def blob(size: int, seed: int = 0) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest() * 32
        counter += 1
    return bytes(out[:size])


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    async def bounded() -> Any:
        async with asyncio.timeout(T):
            return await coro

    return asyncio.run(bounded())


def _drop_dac_override() -> None:
    """In the child, before exec: root without CAP_DAC_OVERRIDE/READ_SEARCH obeys file modes.

    Tests (and CI) run as root, which could otherwise read a mode-000 file.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def unprivileged() -> Callable[[], None] | None:
    return _drop_dac_override if os.geteuid() == 0 else None


def synack(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "synack", *args],
        capture_output=True,
        text=True,
        timeout=T,
        stdin=subprocess.DEVNULL,
        **kw,
    )


def _small_disk() -> None:
    """In the child: files may not grow past 1 MB (writes then fail with EFBIG, as on a full disk)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


class ServerProc:
    """`synack files serve ROOT --port 0 ...` in a subprocess; its log goes to a file."""

    def __init__(
        self,
        root: Path,
        *args: str,
        log: Path,
        transport: str = "os",
        privileged: bool = True,
        preexec: Callable[[], None] | None = None,
    ) -> None:
        self.log = log
        self.transport = transport
        serve = ["files", "serve", str(root), "--port", "0", "--transport", transport]
        with open(log, "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "synack", *serve, *args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                preexec_fn=preexec or (None if privileged else unprivileged()),
            )
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            ready = sel.select(timeout=T)
        line = self.proc.stdout.readline() if ready else ""
        match = re.search(r" on 127\.0\.0\.1:(\d+) \(", line)
        if not match:
            self.proc.kill()
            raise AssertionError(f"server did not start: {line!r} {log.read_text()!r}")
        self.port = int(match.group(1))
        self.address = f"127.0.0.1:{self.port}"

    def argv(self, command: str, *args: str) -> list[str]:
        """`synack files COMMAND` against this server, on its transport."""
        return ["files", command, self.address, *args, "--transport", self.transport]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # SIGKILL: no chance to clean up
        self.proc.wait(timeout=T)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(timeout=T)


@pytest.fixture
def served(tmp_path: Path) -> Path:
    root = tmp_path / "served"
    (root / "dir" / "sub").mkdir(parents=True)
    (root / "big.bin").write_bytes(blob(4_000_000))
    (root / "small.txt").write_bytes(b"small\n")
    (root / "dir" / "sub" / "f").write_bytes(b"f")
    return root


@pytest.fixture
def here(tmp_path: Path) -> Path:
    d = tmp_path / "local"
    d.mkdir()
    return d


@pytest.fixture
def server(served: Path, tmp_path: Path, transport: str) -> Iterator[ServerProc]:
    proc = ServerProc(served, "--allow-upload", log=tmp_path / "server.log", transport=transport)
    yield proc
    proc.stop()


def one_line_error(err: str) -> str:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("synack: "), err
    return lines[0]


# -- everyday use through the CLI -----------------------------------------------------


def test_cli_ls_get_put(
    server: ServerProc, served: Path, here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(server.argv("ls")) == 0
    out = capsys.readouterr().out
    assert re.search(r"^- 4000000  \S+ \S+  big\.bin$", out, re.M), out
    assert re.search(r"^d +-  \S+ \S+  dir/$", out, re.M), out
    assert main(server.argv("ls", "dir", "-R")) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith("  dir/sub/f")

    assert main(server.argv("get", "big.bin", str(here))) == 0
    assert main(server.argv("get", "dir", str(here / "copy"))) == 0
    (here / "note.txt").write_bytes(b"note")
    assert main(server.argv("put", str(here / "note.txt"), "dir/sub")) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # not a terminal: no progress, no chatter
    assert (here / "big.bin").read_bytes() == (served / "big.bin").read_bytes()
    assert (here / "copy" / "sub" / "f").read_bytes() == b"f"
    assert (served / "dir" / "sub" / "note.txt").read_bytes() == b"note"


def test_cli_refuses_overwrite_both_ways(
    server: ServerProc, served: Path, here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (here / "small.txt").write_bytes(b"mine")
    assert main(server.argv("get", "small.txt", str(here))) == 1
    line = one_line_error(capsys.readouterr().err)
    assert "already exists" in line and "--force" in line
    assert (here / "small.txt").read_bytes() == b"mine"
    assert main(server.argv("put", str(here / "small.txt"))) == 1
    assert "already exists" in one_line_error(capsys.readouterr().err)
    assert (served / "small.txt").read_bytes() == b"small\n"
    assert main(server.argv("put", str(here / "small.txt"), "--force")) == 0
    assert (served / "small.txt").read_bytes() == b"mine"


# -- resume after the server process is killed ----------------------------------------


class KillAt:
    """A progress sink that SIGKILLs the server once the client has received `threshold` bytes."""

    def __init__(self, server: ServerProc, threshold: int) -> None:
        self.server, self.threshold, self.seen = server, threshold, 0

    def start(self, total_bytes: int, files: int) -> None:
        pass

    def file(self, name: str) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        self.seen += nbytes
        if self.seen >= self.threshold:
            self.server.kill()

    def stop(self) -> None:
        pass


def test_resume_after_the_server_is_killed_mid_transfer(
    transport: str, served: Path, here: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Slowed to 4 MB/s, so the 4 MB file is still on its way when the client has 1 MB.
    first = ServerProc(served, "--max-rate", "4M", log=tmp_path / "first.log", transport=transport)
    # The kernel's TCP closes a killed process's connections at once; ours dies with the
    # process, and the client, which only receives, learns from its keepalive probe's ICMP
    # port-unreachable (transport/synack.py), well before its own timeout.
    timeout = T
    lost = r"closed the connection|connection to .* lost"

    async def interrupted() -> None:
        connecting = FileClient.connect(
            "127.0.0.1", first.port, timeout=timeout, transport=transport
        )
        async with await connecting as client:
            with pytest.raises(UserError, match=lost):
                await client.get("big.bin", here, progress=KillAt(first, 1_000_000))

    try:
        run(interrupted())
    finally:
        first.kill()
    assert first.proc.returncode == -signal.SIGKILL
    part = Path(partial_path(str(here / "big.bin")))
    kept = part.stat().st_size
    assert 1_000_000 <= kept < 4_000_000
    assert not (here / "big.bin").exists()  # nothing that looks complete

    second = ServerProc(served, log=tmp_path / "second.log", transport=transport)
    try:
        assert main(second.argv("get", "big.bin", str(here), "--resume")) == 0
    finally:
        second.stop()
    assert (here / "big.bin").read_bytes() == (served / "big.bin").read_bytes()
    assert not part.exists()
    # The second server sent only the rest, and the whole file was verified.
    assert (
        f"get big.bin ({4_000_000 - kept} bytes from {kept},"
        in (tmp_path / "second.log").read_text()
    )


def test_an_upload_cut_off_by_a_killed_server_names_the_command_that_continues(
    transport: str,
    served: Path,
    here: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """As for get: the error of an upload whose body had begun says that the server keeps
    the part it stored and gives the `--resume` command, which continues from there."""
    from synack.apps.files import cli as files_cli

    size = 8_000_000
    (here / "up.bin").write_bytes(blob(size))
    first = ServerProc(served, "--allow-upload", log=tmp_path / "first.log", transport=transport)
    monkeypatch.setattr(files_cli, "for_stream", lambda _stream: KillAt(first, 1_000_000))
    try:
        assert main(first.argv("put", str(here / "up.bin"))) == 1
    finally:
        first.kill()
    monkeypatch.undo()
    line = one_line_error(capsys.readouterr().err)
    words = ["synack", "files", "put", first.address, str(here / "up.bin")]
    words += ["--transport", "synack"] if transport == "synack" else []
    command = shlex.join([*words, "--resume"])
    assert f"; the server keeps the part of up.bin it stored; to continue: {command}" in line, line
    assert not (served / "up.bin").exists()
    # What reached its disk before the kill (its buffers went with it), maybe nothing.
    assert Path(partial_path(str(served / "up.bin"))).stat().st_size < size

    second = ServerProc(served, "--allow-upload", log=tmp_path / "second.log", transport=transport)
    try:
        assert main(second.argv("put", str(here / "up.bin"), "--resume")) == 0
    finally:
        second.stop()
    assert (served / "up.bin").read_bytes() == (here / "up.bin").read_bytes()


def test_resume_with_tampered_local_prefix_fails(
    server: ServerProc, served: Path, here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = bytearray((served / "big.bin").read_bytes()[:1_500_000])
    prefix[123_456] ^= 0x01
    part = Path(partial_path(str(here / "big.bin")))
    part.write_bytes(prefix)
    assert main(server.argv("get", "big.bin", str(here), "--resume")) == 1
    line = one_line_error(capsys.readouterr().err)
    assert "SHA-256 mismatch" in line and "partial file was removed" in line
    assert not (here / "big.bin").exists()
    assert not part.exists()


# -- progress ----------------------------------------------------------------------------


def test_progress_bar_on_a_terminal_and_silence_otherwise(server: ServerProc, here: Path) -> None:
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "120", "TERM": "xterm"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "synack", *server.argv("get", "big.bin", str(here))],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    seen = bytearray()
    with selectors.DefaultSelector() as sel:
        sel.register(master, selectors.EVENT_READ)
        while sel.select(timeout=T):
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
    os.close(master)
    assert proc.wait(timeout=T) == 0
    text = seen.decode(errors="replace")
    assert "ETA" in text and "MB/s" in text and "4.0/4.0 MB" in text, text
    assert "SHA-256 verified" in text

    piped = synack(*server.argv("get", "big.bin", str(here), "--force"))
    assert piped.returncode == 0 and piped.stderr == ""


# -- files the server may not read ----------------------------------------------------------


def test_unreadable_file_and_directory_are_refused(
    transport: str, tmp_path: Path, here: Path
) -> None:
    root = tmp_path / "served"
    (root / "closed").mkdir(parents=True)
    (root / "closed" / "inside").write_bytes(b"x")
    (root / "locked.txt").write_bytes(b"secret")
    (root / "open.txt").write_bytes(b"fine")
    os.chmod(root / "locked.txt", 0)
    os.chmod(root / "closed", 0)
    srv = ServerProc(root, log=tmp_path / "server.log", transport=transport, privileged=False)

    async def go() -> None:
        connecting = FileClient.connect("127.0.0.1", srv.port, timeout=T, transport=transport)
        async with await connecting as client:
            for remote in ("locked.txt", "closed"):
                with pytest.raises(RemoteError) as caught:
                    await client.get(remote, here)
                assert caught.value.code is ErrorCode.PERMISSION
                assert "permission denied" in str(caught.value)
            with pytest.raises(RemoteError) as caught:
                await client.list("closed")
            assert caught.value.code is ErrorCode.PERMISSION
            await client.get("open.txt", here)  # the server carries on

    try:
        run(go())
        cli = synack(*srv.argv("get", "locked.txt", str(here)))
        assert cli.returncode == 1
        assert one_line_error(cli.stderr) == "synack: server refused: locked.txt: permission denied"
    finally:
        srv.stop()
        os.chmod(root / "closed", 0o755)
    assert (here / "open.txt").read_bytes() == b"fine"
    assert not (here / "locked.txt").exists()


def test_serve_refuses_an_unreadable_directory(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    closed.mkdir()
    os.chmod(closed, 0)
    try:
        r = subprocess.run(
            [sys.executable, "-m", "synack", "files", "serve", str(closed), "--port", "0"],
            capture_output=True,
            text=True,
            timeout=T,
            preexec_fn=unprivileged(),
        )
    finally:
        os.chmod(closed, 0o755)
    assert r.returncode == 1
    assert one_line_error(r.stderr) == f"synack: cannot serve {closed}: permission denied"


# -- bad input on the command line ------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("nohost", "invalid address 'nohost': expected HOST:PORT"),
        ("127.0.0.1:", "the port is missing"),
        ("127.0.0.1:http", "invalid port 'http': not a number"),
        ("127.0.0.1:70000", "invalid port 70000"),
        ("127.0.0.1:0", "port 0 cannot be connected to"),
        ("999.0.0.1:8041", "invalid IPv4 address '999.0.0.1'"),
    ],
)
@pytest.mark.parametrize("command", [["ls"], ["get", "x"], ["put", "/"]])
def test_bad_address(
    command: list[str], address: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["files", command[0], address, *command[1:]]
    assert main(argv) == 2
    assert message in one_line_error(capsys.readouterr().err)


def test_refused_port(transport: str, here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as holder:  # bound, not listening: connections are refused
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        if transport != "os":
            # Ours is refused by a UDP port with no socket on it (ICMP port unreachable); a
            # bound UDP socket would silently queue the SYN instead.
            port = free_port(socket.SOCK_DGRAM)
        argv = ["files", "get", f"127.0.0.1:{port}", "x", str(here), "--transport", transport]
        assert main(argv) == 1
    assert one_line_error(capsys.readouterr().err) == (
        f"synack: cannot connect to 127.0.0.1:{port}: connection refused"
    )


async def _never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()


def test_silent_server_times_out(transport: str, capsys: pytest.CaptureFixture[str]) -> None:
    loop = LoopThread()  # the server must run while main() blocks this thread
    try:
        silent = loop.call(seam.start_server(_never_answer, "127.0.0.1", 0, transport=transport))
        port = silent.addresses[0][1]
        argv = ["files", "ls", f"127.0.0.1:{port}", "--timeout", "0.3", "--transport", transport]
        assert main(argv) == 1
        silent.close()
    finally:
        loop.stop()
    assert (
        one_line_error(capsys.readouterr().err)
        == f"synack: 127.0.0.1:{port} sent nothing for 0.3 s"
    )


def test_not_a_synack_server(transport: str, capsys: pytest.CaptureFixture[str]) -> None:
    async def go() -> None:
        async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"SSH-2.0-OpenSSH\r\n")
            writer.close()

        srv = await seam.start_server(hang_up, "127.0.0.1", 0, transport=transport)
        port = srv.addresses[0][1]
        async with srv:
            with pytest.raises(UserError) as caught:
                await FileClient.connect("127.0.0.1", port, timeout=T, transport=transport)
        assert "broke the framing" in str(caught.value) or "closed the connection" in str(
            caught.value
        )

    run(go())


def test_serve_missing_or_not_a_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["files", "serve", str(tmp_path / "nope"), "--port", "0"]) == 1
    assert (
        one_line_error(capsys.readouterr().err)
        == f"synack: cannot serve {tmp_path / 'nope'}: no such directory"
    )
    (tmp_path / "file").write_bytes(b"")
    assert main(["files", "serve", str(tmp_path / "file"), "--port", "0"]) == 1
    assert (
        one_line_error(capsys.readouterr().err)
        == f"synack: cannot serve {tmp_path / 'file'}: not a directory"
    )


def test_serve_port_in_use(
    transport: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket(socket.AF_INET, port_type(transport)) as taken:
        taken.bind(("127.0.0.1", 0))
        if taken.type == socket.SOCK_STREAM:
            taken.listen()
        port = taken.getsockname()[1]
        argv = ["files", "serve", str(tmp_path), "--port", str(port), "--transport", transport]
        assert main(argv) == 1
    assert one_line_error(capsys.readouterr().err) == (
        f"synack: cannot listen on 127.0.0.1:{port}: address already in use"
    )


def test_put_missing_local_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Reported before connecting: no server is needed to find the typo.
    assert main(["files", "put", "127.0.0.1:9", str(tmp_path / "nope.txt")]) == 1
    assert (
        one_line_error(capsys.readouterr().err)
        == f"synack: {tmp_path / 'nope.txt'}: no such file or directory"
    )


def test_get_into_missing_local_directory(
    server: ServerProc, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(server.argv("get", "small.txt", str(tmp_path / "no" / "such" / "x"))) == 1
    assert (
        one_line_error(capsys.readouterr().err)
        == f"synack: {tmp_path / 'no' / 'such'}: no such directory"
    )


def test_get_missing_remote_file(
    server: ServerProc, here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(server.argv("get", "nope.txt", str(here))) == 1
    assert (
        one_line_error(capsys.readouterr().err)
        == "synack: server refused: nope.txt: no such file or directory"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["serve", ".", "--max-rate", "0"], "invalid rate '0': must be positive"),
        (["serve", ".", "--max-rate", "fast"], "invalid rate 'fast'"),
        (["serve", ".", "--port", "65536"], "invalid port 65536"),
        (["ls", "127.0.0.1:9", "--timeout", "-1"], "invalid duration '-1': must be positive"),
    ],
)
def test_bad_flags(args: list[str], message: str) -> None:
    r = synack("files", *args)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert message in r.stderr.strip().splitlines()[-1]


def test_serve_stops_cleanly_on_sigterm(transport: str, served: Path, tmp_path: Path) -> None:
    srv = ServerProc(served, log=tmp_path / "server.log", transport=transport)
    assert srv.stop() == 0
    assert "stopped" in (tmp_path / "server.log").read_text()


def test_disk_full_during_upload_is_reported(
    transport: str, tmp_path: Path, here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "served"
    root.mkdir()
    log = tmp_path / "server.log"
    srv = ServerProc(root, "--allow-upload", log=log, transport=transport, preexec=_small_disk)
    (here / "big.bin").write_bytes(blob(3_000_000))
    (here / "ok.txt").write_bytes(b"fits")
    try:
        assert main(srv.argv("put", str(here / "big.bin"))) == 1
        line = one_line_error(capsys.readouterr().err)
        assert line == "synack: server refused: big.bin: no space left on the device", line
        assert main(srv.argv("put", str(here / "ok.txt"))) == 0  # still serving
    finally:
        srv.stop()
    assert not (root / "big.bin").exists()
    assert (root / "ok.txt").read_bytes() == b"fits"
