"""The course notes' TCP programs (examples/seeds) run as written on the kernel's TCP
and, with only their import changed, on ours; both ways print the same things.

Each pair runs in child processes on 127.0.0.1 with scripted input; every wait is
bounded. A server is known to be listening when a SYN to its port draws a SYN-ACK
(for ours: a segment in a UDP datagram, reset at once so the listener drops it) or
when /proc/net/tcp shows the port in LISTEN (the kernel's).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from synack.drivers.udp import CRC_TRAILER, CarrierConfig
from synack.wire.tcp import Flags, Segment, build_segment

SEEDS = Path(__file__).resolve().parents[2] / "examples" / "seeds"
LIMIT = 20.0
HOST = "127.0.0.1"
OURS = {
    "import socket\n": "import synack.socket as socket\n",
    "import socketserver\n": "from synack import socketserver\n",
}


def program(name: str, mode: str, tmp_path: Path) -> Path:
    """The seed program, or a copy whose one import line names synack's module."""
    source = SEEDS / name
    if mode == "os":
        return source
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    changed = [OURS.get(line, line) for line in lines]
    assert sum(a != b for a, b in zip(lines, changed, strict=True)) == 1, name
    copy = tmp_path / f"synack_{name}"
    copy.write_text("".join(changed), encoding="utf-8")
    return copy


def free_port(mode: str) -> int:
    kind = socket.SOCK_DGRAM if mode == "synack" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def kernel_listening(port: int) -> bool:
    with open("/proc/net/tcp") as table:
        for row in table.readlines()[1:]:
            local, state = row.split()[1], row.split()[3]
            if int(local.split(":")[1], 16) == port and state == "0A":
                return True
    return False


def carried(segment: Segment) -> bytes:
    """A segment as synack.socket's default carriage sends it (PROTOCOL.md §5)."""
    if CarrierConfig().integrity == "crc32":
        raw = build_segment(segment)
        return raw + zlib.crc32(raw).to_bytes(CRC_TRAILER, "big")
    ip = socket.inet_aton(HOST)
    return build_segment(segment, src=ip, dst=ip)


def synack_listening(port: int) -> bool:
    """Send one SYN as our TCP carries it; a SYN-ACK means a listener, then RST it."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind((HOST, 0))
        udp.connect((HOST, port))  # so that an ICMP port-unreachable is reported
        udp.settimeout(1.0)
        mine = udp.getsockname()[1]
        udp.send(carried(Segment(mine, port, 1000, 0, Flags.SYN, 1024)))
        try:
            reply = udp.recv(2048)
        except (ConnectionRefusedError, TimeoutError):
            return False
        if (reply[13] & (Flags.SYN | Flags.ACK)) != (Flags.SYN | Flags.ACK):
            return False
        udp.send(carried(Segment(mine, port, 1001, 0, Flags.RST, 0)))
        return True


def wait_listening(port: int, mode: str, server: subprocess.Popen[str]) -> None:
    check = synack_listening if mode == "synack" else kernel_listening
    deadline = time.monotonic() + LIMIT
    while not check(port):
        assert server.poll() is None, server.communicate()
        assert time.monotonic() < deadline, "the server never listened"
        time.sleep(0.02)  # a bounded poll for a condition in another process


@contextmanager
def serving(
    name: str, mode: str, tmp_path: Path, port: int, stdin: str = "", cwd: Path | None = None
) -> Iterator[subprocess.Popen[str]]:
    server = subprocess.Popen(
        [sys.executable, str(program(name, mode, tmp_path)), str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert server.stdin is not None
    server.stdin.write(stdin)
    server.stdin.close()
    server.stdin = None  # all of its input is given; communicate() must not flush it
    try:
        wait_listening(port, mode, server)
        yield server
    finally:
        if server.poll() is None:
            server.terminate()
        server.wait(LIMIT)


def output(server: subprocess.Popen[str]) -> tuple[str, str]:
    """What a server printed, once it has ended or been stopped."""
    if server.poll() is None:
        server.terminate()
    out, err = server.communicate(timeout=LIMIT)
    return out, err


def run_client(
    name: str, mode: str, tmp_path: Path, args: list[str], stdin: str = "", cwd: Path | None = None
) -> str:
    done = subprocess.run(
        [sys.executable, str(program(name, mode, tmp_path)), *args],
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=LIMIT,
        cwd=cwd,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


MODES = ["os", "synack"]


@pytest.mark.parametrize("mode", MODES)
def test_hello(mode: str, tmp_path: Path) -> None:
    port = free_port(mode)
    with serving("hello_server.py", mode, tmp_path, port) as server:
        printed = run_client("hello_client.py", mode, tmp_path, [str(port)])
        assert server.wait(LIMIT) == 0  # it serves one client, then closes
        said, err = output(server)
    assert printed == "我是服务端,专门为您服务的\n"
    assert said.endswith("你好,我是客户端,你是谁\n"), err
    peer = said.splitlines()[0]
    assert f"laddr=('127.0.0.1', {port})" in peer
    assert peer.startswith("<synack.socket.socket" if mode == "synack" else "<socket.socket")


@pytest.mark.parametrize("mode", MODES)
def test_chat(mode: str, tmp_path: Path) -> None:
    port = free_port(mode)
    replies = "first reply\n\nsecond reply\nthird reply\n"
    with serving("chat_server.py", mode, tmp_path, port, stdin=replies) as server:
        printed = run_client(
            "chat_client.py", mode, tmp_path, [str(port)], stdin="hello\n\n  \nagain\n"
        )
        # A second client after the first left: the server carried on.
        later = run_client("chat_client.py", mode, tmp_path, [str(port)], stdin="still there?\n")
        said, err = output(server)
    assert printed.count("不能发送空消息哦") == 2
    assert "来自服务端的消息>>>> first reply\n" in printed
    assert "来自服务端的消息>>>> second reply\n" in printed
    assert "来自服务端的消息>>>> third reply\n" in later
    assert "的消息>>>> hello\n" in said, err
    assert "的消息>>>> again\n" in said
    assert "的消息>>>> still there?\n" in said
    assert said.count("来自于客户端('127.0.0.1',") == 3


@pytest.mark.parametrize("mode", MODES)
def test_echo(mode: str, tmp_path: Path) -> None:
    port = free_port(mode)
    with serving("echo_server.py", mode, tmp_path, port) as server:
        first = run_client("echo_client.py", mode, tmp_path, [str(port)])
        second = run_client("echo_client.py", mode, tmp_path, [str(port)])
        said, err = output(server)
    assert first == second == "recved msg: 服务器返回的消息\n"
    assert said.splitlines() == ["b'sasa'", "b''", "b'sasa'", "b''"], err


@pytest.mark.parametrize("mode", MODES)
def test_concurrent(mode: str, tmp_path: Path) -> None:
    port = free_port(mode)
    script = program("concurrent_client.py", mode, tmp_path)
    with serving("concurrent_server.py", mode, tmp_path, port) as server:
        clients = [
            subprocess.Popen(
                [sys.executable, str(script), str(port)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
            )
            for _ in range(4)
        ]
        results = [c.communicate(timeout=LIMIT) for c in clients]
        said, err = output(server)
    for client, (out, client_err) in zip(clients, results, strict=True):
        assert client.returncode == 0, client_err
        assert out == "中国\n" * 3
    # Threads print at once: a message and its newline are two writes, so lines may mix.
    pids = sorted(int(pid) for pid in re.findall(r"b'(\d+)'", said))
    assert pids == sorted(c.pid for c in clients for _ in range(3)), err


@pytest.mark.parametrize("mode", MODES)
def test_download(mode: str, tmp_path: Path) -> None:
    served = tmp_path / "served"
    saved = tmp_path / "saved"
    served.mkdir()
    saved.mkdir()
    body = os.urandom(300_000)  # far more than one recv(1024)
    (served / "notes.bin").write_bytes(body)
    port = free_port(mode)
    with serving("download_server.py", mode, tmp_path, port, cwd=served) as server:
        run_client(
            "download_client.py", mode, tmp_path, [], f"127.0.0.1\n{port}\nnotes.bin\n", saved
        )
        run_client("download_client.py", mode, tmp_path, [], f"127.0.0.1\n{port}\nmissing\n", saved)
        said, err = output(server)
    assert (saved / "[new]notes.bin").read_bytes() == body
    assert not (saved / "[new]missing").exists()
    assert "下载的文件是:notes.bin" in said, err
    assert "没有要下载的文件(missing)" in said
