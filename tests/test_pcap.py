"""pcap files of synack's TCP: the wire pieces byte by byte, the file a process writes
(locked, ``{pid}``), and real transfers read back by tshark as plain TCP: no malformed
packet, no bad checksum, and on a clean transfer no retransmission or gap."""

from __future__ import annotations

import hashlib
import os
import random
import re
import select
import shutil
import socket
import struct
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import pytest

from synack.drivers.trace import FileInUse, PcapFile, expand
from synack.wire.checksum import internet_checksum, tcp_checksum_ok
from synack.wire.ipv4 import DONT_FRAGMENT, PROTO_TCP, MalformedPacket, parse_ipv4
from synack.wire.pcap import (
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_RAW,
    PcapError,
    file_header,
    ip_payload,
    read_packets,
    record,
    tcp_packet,
)
from synack.wire.tcp import Flags, Segment, build_segment

LOOPBACK = "127.0.0.1"
A = bytes([198, 18, 0, 1])
B = bytes([198, 18, 0, 2])
T = 90.0  # seconds any one process may take
SYNACK = [sys.executable, "-m", "synack"]
CLIENT = ["--transport", "synack", "--timeout", "30"]
CHECK_CHECKSUMS = ["-o", "tcp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE"]
TSHARK = shutil.which("tshark")
needs_tshark = pytest.mark.skipif(
    TSHARK is None, reason="no tshark (scripts/system-deps installs it where it can)"
)


def _segment(payload: bytes = b"hello", *, checksum_zero: bool = True) -> bytes:
    seg = Segment(40000, 7007, seq=1000, ack=2000, flags=Flags.ACK | Flags.PSH, window=512)
    seg.payload = payload
    data = build_segment(seg) if checksum_zero else build_segment(seg, src=A, dst=B)
    return data


# ---------------------------------------------------------------------- the wire pieces


def test_a_segment_becomes_an_ipv4_packet_with_both_checksums_right() -> None:
    seg = _segment()
    assert seg[16:18] == b"\0\0"  # as on synack's default carriage (PROTOCOL §5.3)
    packet = tcp_packet(seg, A, B, 7)
    ip = parse_ipv4(packet)
    assert (ip.src, ip.dst, ip.proto, ip.ident, ip.ttl) == (A, B, PROTO_TCP, 7, 64)
    assert struct.unpack_from("!H", packet, 6)[0] == DONT_FRAGMENT
    assert struct.unpack_from("!H", packet, 2)[0] == len(packet) == 20 + len(seg)
    assert internet_checksum(packet[:20]) == 0
    assert tcp_checksum_ok(A, B, ip.payload)
    assert ip.payload[:16] == seg[:16] and ip.payload[18:] == seg[18:]
    # A segment that already carries its checksum (integrity="tcp") keeps the same one.
    assert tcp_packet(_segment(checksum_zero=False), A, B, 7) == packet


def test_a_file_round_trips_through_the_reader() -> None:
    rows = [(1_700_000_000.25, tcp_packet(_segment(bytes([i]) * i), A, B, i)) for i in range(5)]
    data = file_header() + b"".join(record(t, p) for t, p in rows)
    linktype, back = read_packets(data)
    assert linktype == LINKTYPE_RAW
    assert [p for _t, p in back] == [p for _t, p in rows]
    assert all(abs(t - rows[0][0]) < 1e-6 for t, _p in back)
    # A last record cut short (a writer killed mid-write) is left out, the rest kept.
    assert len(read_packets(data[:-3])[1]) == 4
    with pytest.raises(PcapError):
        read_packets(b"\x0a\x0d\x0d\x0a" + bytes(40))  # pcapng
    with pytest.raises(PcapError):
        read_packets(b"not a capture at all....")


def test_the_reader_finds_ipv4_under_the_links_tcpdump_writes() -> None:
    packet = tcp_packet(_segment(), A, B, 1)
    ether = bytes(12) + b"\x08\x00" + packet
    vlan = bytes(12) + b"\x81\x00\x00\x05\x08\x00" + packet
    sll = bytes(14) + b"\x08\x00" + packet
    sll2 = b"\x08\x00" + bytes(18) + packet
    assert ip_payload(LINKTYPE_ETHERNET, ether) == packet
    assert ip_payload(LINKTYPE_ETHERNET, vlan) == packet
    assert ip_payload(LINKTYPE_LINUX_SLL, sll) == packet
    assert ip_payload(LINKTYPE_LINUX_SLL2, sll2) == packet
    assert ip_payload(LINKTYPE_ETHERNET, bytes(12) + b"\x86\xdd" + bytes(40)) is None  # IPv6
    with pytest.raises(MalformedPacket):
        parse_ipv4(packet[:30])  # shorter than its total length


def test_the_process_file_is_locked_and_pid_gives_each_process_its_own(tmp_path: Path) -> None:
    path = str(tmp_path / "cap.pcap")
    first = PcapFile(path)
    try:
        with pytest.raises(FileInUse, match=r"another process; put \{pid\} in the name"):
            PcapFile(path)
    finally:
        first.close()
    assert expand(str(tmp_path / "cap-{pid}.pcap")).endswith(f"cap-{os.getpid()}.pcap")
    # A child that inherits the variable without {pid} is refused, in one line.
    holder = PcapFile(path)
    try:
        child = subprocess.run(
            [sys.executable, "-m", "synack", "files", "ls", "127.0.0.1:9", "--transport", "synack"],
            env={**os.environ, "SYNACK_PCAP": path},
            capture_output=True,
            text=True,
            timeout=T,
        )
    finally:
        holder.close()
    assert child.returncode == 1
    assert child.stderr.count("\n") == 1 and "being written by another process" in child.stderr


def test_ip_identification_counts_per_sender_and_times_never_go_back(tmp_path: Path) -> None:
    pcap = PcapFile(str(tmp_path / "x.pcap"))
    seg = _segment()
    pcap.write(10.0, seg, A, B)
    pcap.write(9.0, seg, B, A)  # an earlier time (another clock read) keeps file order
    pcap.write(11.0, seg, A, B)
    pcap.close()
    _, rows = read_packets((tmp_path / "x.pcap").read_bytes())
    assert [parse_ipv4(p).ident for _t, p in rows] == [1, 1, 2]
    assert [t for t, _p in rows] == [10.0, 10.0, 11.0]


# ---------------------------------------------------------------------- real transfers


class PortRewritingRelay:
    """A lossy relay for synack's carriage: a NAT that also rewrites the TCP ports inside.

    synack's TCP ports are its UDP ports (PROTOCOL §5.1), so a relay must put its own
    ports in each segment (and a fresh CRC-32 trailer, §5.3) for the ends to accept it.
    Datagrams are dropped with probability `loss`, from a seeded generator per direction.
    """

    def __init__(self, target: int, loss: float, seed: int) -> None:
        self.target = target
        self.loss = loss
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind((LOOPBACK, 0))
        self.back.bind((LOOPBACK, 0))
        self.port = self.front.getsockname()[1]
        self.rng = {"up": random.Random(seed), "down": random.Random(seed + 1)}
        self.dropped = {"up": 0, "down": 0}
        self.client: tuple[str, int] | None = None
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _rewrite(data: bytes, sport: int, dport: int) -> bytes:
        seg = bytearray(data[:-4])
        struct.pack_into("!HH", seg, 0, sport, dport)
        return bytes(seg) + zlib.crc32(seg).to_bytes(4, "big")

    def _run(self) -> None:
        back_port = self.back.getsockname()[1]
        while not self._stop.is_set():
            ready, _, _ = select.select([self.front, self.back], [], [], 0.05)
            for sock in ready:
                try:
                    data, addr = sock.recvfrom(65535)
                except OSError as exc:  # an ICMP error from an end that went away
                    self.errors.append(repr(exc))
                    continue
                way = "up" if sock is self.front else "down"
                if self.rng[way].random() < self.loss:
                    self.dropped[way] += 1
                    continue
                if way == "up":
                    self.client = addr
                    self.back.sendto(
                        self._rewrite(data, back_port, self.target), (LOOPBACK, self.target)
                    )
                elif self.client is not None:
                    self.front.sendto(self._rewrite(data, self.port, self.client[1]), self.client)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=T)
        self.front.close()
        self.back.close()


def _serve(root: Path, env: dict[str, str], *flags: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [*SYNACK, "files", "serve", str(root), "--port", "0", "--transport", "synack", *flags],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], T)
    line = proc.stdout.readline() if ready else ""
    match = re.search(r" on 127\.0\.0\.1:(\d+) \(", line)
    if not match:
        proc.kill()
        raise AssertionError(f"server did not start: {line!r} {proc.communicate()[1]!r}")
    return proc, int(match.group(1))


def _get(port: int, dest: Path, env: dict[str, str], *flags: str, why: object = "") -> None:
    done = subprocess.run(
        [*SYNACK, "files", "get", f"{LOOPBACK}:{port}", "data.bin", str(dest), *CLIENT, *flags],
        env=env,
        capture_output=True,
        text=True,
        timeout=T,
    )
    assert done.returncode == 0, f"{done.stderr} {why}"


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()  # a clean stop: the capture is flushed at exit
    proc.communicate(timeout=T)
    assert proc.returncode == 0


def _as_data(path: Path) -> list[str]:
    """``-d`` options that decode the connection's payload as plain data.

    Wireshark's heuristic dissectors now and then take random file bytes for a protocol
    of their own (LBM's lbmsrs did, once in a few runs), ask for reassembly, and report
    a retransmission overlapping the piece they hold as a malformed packet. Decode As
    is what a Wireshark user does about that; it leaves TCP's own analysis as it is.
    """
    _linktype, rows = read_packets(path.read_bytes())
    packet = parse_ipv4(rows[0][1])
    sport, dport = struct.unpack_from("!HH", packet.payload)
    return ["-d", f"tcp.port=={sport},data", "-d", f"tcp.port=={dport},data"]


def _tshark(path: Path, *args: str) -> str:
    assert TSHARK is not None
    done = subprocess.run(
        [TSHARK, "-r", str(path), *CHECK_CHECKSUMS, *_as_data(path), *args],
        capture_output=True,
        text=True,
        timeout=T,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _followed(path: Path) -> tuple[bytes, bytes]:
    """The bytes of the first TCP stream each way, as Wireshark's Follow TCP Stream shows them."""
    text = _tshark(path, "-q", "-z", "follow,tcp,raw,0")
    sent = {True: bytearray(), False: bytearray()}
    for line in text.splitlines():
        hexdigits = line.strip()
        if hexdigits and all(c in "0123456789abcdef" for c in hexdigits):
            sent[line.startswith("\t")] += bytes.fromhex(hexdigits)
    return bytes(sent[False]), bytes(sent[True])


def _count(path: Path, display_filter: str) -> int:
    return len(_tshark(path, "-Y", display_filter).splitlines())


BAD = "_ws.malformed || tcp.checksum.status == 0 || ip.checksum.status == 0"
GAPS = "tcp.analysis.retransmission || tcp.analysis.lost_segment || tcp.analysis.ack_lost_segment"


@pytest.fixture
def served(tmp_path: Path) -> tuple[Path, str]:
    root = tmp_path / "served"
    root.mkdir()
    data = random.Random(3).randbytes(2_000_000)
    (root / "data.bin").write_bytes(data)
    return root, hashlib.sha256(data).hexdigest()


def _check(path: Path) -> None:
    """Every packet decodes as TCP/IPv4 with verified checksums, and expert info has no errors."""
    assert _count(path, "tcp") > 1000
    assert _count(path, BAD) == 0, _tshark(path, "-Y", BAD)[:2000]
    expert = _tshark(path, "-q", "-z", "expert")
    assert "Errors (" not in expert and "Malformed" not in expert, expert


@needs_tshark
def test_tshark_reads_a_clean_transfer_as_plain_tcp(
    tmp_path: Path, served: tuple[Path, str]
) -> None:
    root, digest = served
    data = (root / "data.bin").read_bytes()
    server_cap, client_cap = tmp_path / "server.pcap", tmp_path / "client.pcap"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNACK_")}
    proc, port = _serve(root, env, "--pcap", str(server_cap))
    try:
        _get(port, tmp_path / "got.bin", env, "--pcap", str(client_cap))
    finally:
        _stop(proc)
    assert hashlib.sha256((tmp_path / "got.bin").read_bytes()).hexdigest() == digest
    for cap in (server_cap, client_cap):
        _check(cap)
        assert _count(cap, GAPS) == 0, _tshark(cap, "-Y", GAPS)[:2000]
        # Stream follow puts the file back together from the capture alone.
        assert data in _followed(cap)[1]
    conversations = _tshark(server_cap, "-q", "-z", "conv,tcp")
    assert f"127.0.0.1:{port}" in conversations


@needs_tshark
def test_tshark_reads_a_lossy_transfer_with_retransmissions_and_no_errors(
    tmp_path: Path, served: tuple[Path, str]
) -> None:
    root, digest = served
    caps = tmp_path / "caps"
    caps.mkdir()
    # Both ends inherit one variable; {pid} gives each its own file.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNACK_")}
    env["SYNACK_PCAP"] = str(caps / "cap-{pid}.pcap")
    proc, port = _serve(root, env)
    relay = PortRewritingRelay(port, loss=0.05, seed=1)
    try:
        _get(relay.port, tmp_path / "got.bin", env, why=vars(relay))
    finally:
        relay.close()
        _stop(proc)
    assert hashlib.sha256((tmp_path / "got.bin").read_bytes()).hexdigest() == digest
    assert relay.dropped["up"] + relay.dropped["down"] > 20 and not relay.errors
    files = sorted(caps.glob("cap-*.pcap"))
    assert [f.name for f in files if f.name == f"cap-{proc.pid}.pcap"], files
    assert len(files) == 2
    server_cap = caps / f"cap-{proc.pid}.pcap"
    for cap in files:
        _check(cap)
    # The sender saw its losses: Wireshark marks the retransmissions.
    assert _count(server_cap, "tcp.analysis.retransmission") > 0
