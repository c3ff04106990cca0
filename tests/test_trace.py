"""The trace of synack's TCP: tcpdump's layout byte for byte, JSON records with our
congestion state, one line per state change, off unless asked for, and the command
line's flags (refused, in one line, where there is nothing of ours to trace)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from synack.drivers import aio, trace
from synack.drivers.engine import Engine
from synack.drivers.udp import LOOPBACK_MTU, CarrierConfig
from synack.wire.pcap import read_packets
from synack.wire.tcp import Flags, Options, Segment, build_segment
from synack.wire.tcpdump import Relative, flag_letters, segment_fields, segment_line, state_line

A = bytes([127, 0, 0, 1])
B = bytes([127, 0, 0, 2])
ISN_A = 1_000_000
ISN_B = 4_294_967_000  # wraps past 2**32 within a few bytes
T = 30.0
SYNACK = [sys.executable, "-m", "synack"]


def _seg(
    src: int, dst: int, seq: int, ack: int, flags: Flags, payload: bytes = b"", **opts: object
) -> bytes:
    return build_segment(
        Segment(
            src,
            dst,
            seq=seq & 0xFFFFFFFF,
            ack=ack & 0xFFFFFFFF,
            flags=flags,
            window=512,
            options=Options(**opts),  # type: ignore[arg-type]
            payload=payload,
        )
    )


# ---------------------------------------------------------------------- the lines


def test_lines_read_as_tcpdump_prints_them() -> None:
    rel = Relative()
    syn = _seg(40000, 7007, ISN_A, 0, Flags.SYN, mss=1448, sack_permitted=True, wscale=7)
    synack = _seg(7007, 40000, ISN_B, ISN_A + 1, Flags.SYN | Flags.ACK, mss=1448)
    ack = _seg(40000, 7007, ISN_A + 1, ISN_B + 1, Flags.ACK, timestamps=(5, 9))
    data = _seg(40000, 7007, ISN_A + 1, ISN_B + 1, Flags.ACK | Flags.PSH, b"x" * 100)
    sack = _seg(
        7007, 40000, ISN_B + 1, ISN_A + 1, Flags.ACK, sack_blocks=((ISN_A + 201, ISN_A + 301),)
    )
    fin = _seg(7007, 40000, ISN_B + 1, ISN_A + 101, Flags.FIN | Flags.ACK)
    rst = _seg(40000, 7007, ISN_A + 101, ISN_B + 2, Flags.RST | Flags.ACK)
    lines = [
        segment_line("12:00:00.000001", True, syn, A, B, rel),
        segment_line("12:00:00.000002", False, synack, B, A, rel),
        segment_line("12:00:00.000003", True, ack, A, B, rel),
        segment_line("12:00:00.000004", True, data, A, B, rel),
        segment_line("12:00:00.000005", False, sack, B, A, rel),
        segment_line("12:00:00.000006", False, fin, B, A, rel),
        segment_line("12:00:00.000007", True, rst, A, B, rel),
    ]
    head = "IP 127.0.0.1.40000 > 127.0.0.2.7007: "
    back = "IP 127.0.0.2.7007 > 127.0.0.1.40000: "
    assert lines == [
        f"12:00:00.000001 Out {head}Flags [S], seq {ISN_A}, win 512, "
        "options [mss 1448,nop,nop,sackOK,nop,wscale 7], length 0",
        f"12:00:00.000002 In  {back}Flags [S.], seq {ISN_B}, ack {ISN_A + 1}, win 512, "
        "options [mss 1448], length 0",
        f"12:00:00.000003 Out {head}Flags [.], ack 1, win 512, "
        "options [nop,nop,TS val 5 ecr 9], length 0",
        f"12:00:00.000004 Out {head}Flags [P.], seq 1:101, ack 1, win 512, length 100",
        f"12:00:00.000005 In  {back}Flags [.], ack 1, win 512, "
        "options [nop,nop,sack 1 {201:301}], length 0",
        f"12:00:00.000006 In  {back}Flags [F.], seq 1, ack 101, win 512, length 0",
        f"12:00:00.000007 Out {head}Flags [R.], seq 101, ack 2, win 512, length 0",
    ]


def test_flags_are_tcpdumps_letters_in_tcpdumps_order() -> None:
    assert flag_letters(Flags.SYN) == "S"
    assert flag_letters(Flags.SYN | Flags.ACK) == "S."
    assert flag_letters(Flags.FIN | Flags.PSH | Flags.ACK) == "FP."
    assert flag_letters(Flags.SYN | Flags.ECE | Flags.CWR) == "SEW"
    assert flag_letters(0) == "none"


def test_numbers_stay_absolute_until_both_syns_are_seen() -> None:
    rel = Relative()
    data = _seg(40000, 7007, ISN_A + 1, ISN_B + 1, Flags.ACK, b"abc")
    assert ", seq 1000001:1000004, ack 4294967001," in segment_line("t", True, data, A, B, rel)


def test_broken_segments_are_shown_not_raised() -> None:
    rel = Relative()
    assert "[bad hdr length]" in segment_line("t", False, b"\x00" * 10, B, A, rel)
    bad_offset = bytearray(_seg(1, 2, 0, 0, Flags.ACK))
    bad_offset[12] = 0xF0  # a 60-byte header in a 20-byte segment
    assert "[bad hdr length 60]" in segment_line("t", False, bytes(bad_offset), B, A, rel)
    cut = bytearray(_seg(1, 2, 0, 0, Flags.ACK, timestamps=(1, 2)))
    cut[23] = 40  # an option longer than the header
    assert "bad opt" in segment_line("t", False, bytes(cut), B, A, rel)


def test_state_lines_and_json_fields() -> None:
    assert (
        state_line("12:00:00.5", A, 40000, B, 7007, "SYN-SENT", "ESTABLISHED")
        == "12:00:00.5 State 127.0.0.1.40000 > 127.0.0.2.7007: SYN-SENT -> ESTABLISHED"
    )
    fields = segment_fields(
        _seg(40000, 7007, 5, 9, Flags.ACK | Flags.PSH, b"hi", timestamps=(1, 2))
    )
    assert fields == {
        "sport": 40000,
        "dport": 7007,
        "flags": "P.",
        "seq": 5,
        "ack": 9,
        "win": 512,
        "len": 2,
        "options": {"ts": [1, 2]},
    }
    assert segment_fields(_seg(1, 2, 0, 7, Flags.SYN))["ack"] is None


# ---------------------------------------------------------------------- a traced connection


@pytest.fixture
def tracer(tmp_path: Path) -> Iterator[trace.Tracer]:
    tracer = trace.Tracer(
        text=io.StringIO(), json_out=io.StringIO(), pcap=trace.PcapFile(str(tmp_path / "t.pcap"))
    )
    before = trace.use(tracer)
    try:
        yield tracer
    finally:
        trace.use(before)
        assert tracer.pcap is not None
        tracer.pcap.close()


async def _exchange(size: int, carrier: CarrierConfig | None = None) -> bytes:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.readexactly(size)
        writer.write(data[:10])
        await writer.drain()
        writer.close()

    server = await aio.start_server(handle, "127.0.0.1", 0, carrier=carrier)
    reader, writer = await aio.open_connection("127.0.0.1", server.addresses[0][1], carrier=carrier)
    writer.write(os.urandom(size))
    await writer.drain()
    answer = await reader.read()
    writer.close()
    # Both ends have sent their FIN and the server's last ACK; wait for the client's CLOSED.
    transport = writer.transport
    assert isinstance(transport, aio.SynackTransport)
    conn = transport.connection
    while conn.state.value != "CLOSED":
        await asyncio.sleep(0.01)
    server.close()
    return answer


def test_a_connection_in_one_process_is_traced_once_per_segment(tracer: trace.Tracer) -> None:
    answer = asyncio.run(asyncio.wait_for(_exchange(20_000), T))
    assert len(answer) == 10
    assert isinstance(tracer.text, io.StringIO) and isinstance(tracer.json_out, io.StringIO)
    lines = tracer.text.getvalue().splitlines()
    stamp = r"\d\d:\d\d:\d\d\.\d{6}"
    assert all(re.match(stamp + r" (Out|In |State) ", line) for line in lines), lines[:5]
    segments = [line for line in lines if " IP " in line]
    # Both ends are in this process: each segment is shown once, when sent.
    assert all(" Out IP " in line for line in segments)
    assert sum("Flags [S]," in line for line in segments) == 1
    assert sum("Flags [S.]," in line for line in segments) == 1
    changes = [line.split(": ", 1)[1] for line in lines if " State " in line]
    client_port = re.search(r"Out IP 127\.0\.0\.1\.(\d+) > [\d.]+: Flags \[S\]", "\n".join(lines))
    assert client_port is not None
    client = [
        line.split(": ", 1)[1]
        for line in lines
        if f" State 127.0.0.1.{client_port.group(1)} " in line
    ]
    assert client == [
        "CLOSED -> SYN-SENT",
        "SYN-SENT -> ESTABLISHED",
        "ESTABLISHED -> CLOSE-WAIT",
        "CLOSE-WAIT -> LAST-ACK",
        "LAST-ACK -> CLOSED",
    ]
    assert "SYN-RECEIVED -> ESTABLISHED" in changes and "FIN-WAIT-2 -> TIME-WAIT" in changes
    records = [json.loads(r) for r in tracer.json_out.getvalue().splitlines()]
    seg_records = [r for r in records if r["event"] == "segment"]
    assert len(seg_records) == len(segments)
    data = [r for r in seg_records if r["len"] > 0 and r["sport"] != client_port]
    assert data and all(
        {"cwnd", "ssthresh", "srtt", "rto", "inflight", "state"} <= r.keys() for r in data
    )
    assert all(r["cwnd"] > 0 and r["rto"] > 0 for r in data)
    assert any(r["inflight"] > 0 for r in data)
    assert [r["new"] for r in records if r["event"] == "state"][:2] == ["SYN-SENT", "ESTABLISHED"]
    assert tracer.pcap is not None
    tracer.pcap.flush()
    linktype, packets = read_packets(Path(tracer.pcap.path).read_bytes())
    assert len(packets) == len(segments) and linktype == 101


def test_segments_sent_gathered_are_traced_whole(tracer: trace.Tracer) -> None:
    """With the loopback MTU full segments leave the core as header and payload apart
    (Config.gather_from); the trace and the pcap still show each segment whole."""
    size = 300_000
    answer = asyncio.run(asyncio.wait_for(_exchange(size, CarrierConfig(mtu=LOOPBACK_MTU)), T))
    assert len(answer) == 10
    assert isinstance(tracer.json_out, io.StringIO)
    records = [json.loads(r) for r in tracer.json_out.getvalue().splitlines()]
    data = [r["len"] for r in records if r["event"] == "segment" and r["len"] > 10]
    assert sum(data) == size and max(data) > 60_000  # full 64 KiB segments, all of them
    assert tracer.pcap is not None
    tracer.pcap.flush()
    _linktype, packets = read_packets(Path(tracer.pcap.path).read_bytes())
    # Each packet is the IPv4 header, the TCP header with its options, and the payload.
    full = [p for _time, p in packets if len(p) > 60_000]
    assert len(full) == sum(n > 60_000 for n in data)
    assert all(len(p) == 20 + 32 + max(data) for p in full)


def test_engines_have_no_observer_unless_asked(tmp_path: Path) -> None:
    before = trace.use(None)
    try:

        async def make() -> Engine:
            server = await aio.start_server(lambda r, w: None, "127.0.0.1", 0)
            engine = server.engine.engine
            server.close()
            return engine

        assert asyncio.run(make()).observer is None
    finally:
        trace.use(before)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNACK_")}
    probe = "from synack.drivers import trace; print(trace.current())"
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=T
    )
    assert done.stdout.strip() == "None"


_LIBRARY_USE = """
import asyncio
from synack.drivers import aio

async def main():
    async def handle(r, w):
        w.write(await r.read(100)); await w.drain(); w.close()
    server = await aio.start_server(handle, "127.0.0.1", 0)
    r, w = await aio.open_connection("127.0.0.1", server.addresses[0][1])
    w.write(b"ping"); await w.drain()
    assert await r.read() == b"ping"
    w.close()
    server.close()

asyncio.run(main())
"""


@pytest.mark.parametrize("mode", ["1", "json"])
def test_synack_trace_in_the_environment_traces_library_use(tmp_path: Path, mode: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNACK_")}
    env["SYNACK_TRACE"] = mode
    env["SYNACK_EXIT_LINGER"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", _LIBRARY_USE], env=env, capture_output=True, text=True, timeout=T
    )
    assert done.returncode == 0, done.stderr
    if mode == "1":
        assert " Out IP 127.0.0.1." in done.stderr and "Flags [P.]" in done.stderr
        assert "State 127.0.0.1." in done.stderr and "-> ESTABLISHED" in done.stderr
    else:
        records = [json.loads(line) for line in done.stderr.splitlines()]
        assert {r["event"] for r in records} == {"segment", "state"}
        assert any(r.get("len") == 4 and r["flags"] == "P." for r in records)


def test_a_json_file_per_process(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNACK_")}
    env["SYNACK_TRACE_JSON"] = str(tmp_path / "trace-{pid}.jsonl")
    done = subprocess.run(
        [sys.executable, "-c", _LIBRARY_USE], env=env, capture_output=True, text=True, timeout=T
    )
    assert done.returncode == 0 and done.stderr == ""
    (path,) = tmp_path.glob("trace-*.jsonl")
    assert re.fullmatch(r"trace-\d+\.jsonl", path.name)
    assert all(json.loads(line)["t"] > 1e9 for line in path.read_text().splitlines())


def test_a_forked_child_leaves_the_parents_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "fork.pcap"
    tracer = trace.Tracer(pcap=trace.PcapFile(str(path)))
    trace._all.add(tracer)
    seg = _seg(1, 2, 0, 0, Flags.ACK, b"x" * 10)
    tracer.segment(True, seg, A, B, 1.0, None)
    pid = os.fork()
    if pid == 0:  # the child: its copy of the tracer must not write
        inherited_off = tracer.disabled
        tracer.segment(True, seg, A, B, 2.0, None)
        os._exit(0 if inherited_off else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    tracer.segment(True, seg, A, B, 3.0, None)
    tracer.close()
    _, packets = read_packets(path.read_bytes())
    assert len(packets) == 2


def test_a_capture_that_cannot_be_written_ends_and_the_connection_carries_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    class FullDisk(io.BytesIO):
        def write(self, data: object) -> int:
            raise OSError(28, "No space left on device")

    pcap = trace.PcapFile(str(tmp_path / "full.pcap"))
    pcap._file.close()
    pcap._file = FullDisk()  # type: ignore[assignment]
    tracer = trace.Tracer(pcap=pcap)
    seg = _seg(1, 2, 0, 0, Flags.ACK, b"x")
    tracer.segment(True, seg, A, B, 1.0, None)  # no exception reaches the engine
    tracer.segment(True, seg, A, B, 2.0, None)
    assert tracer.pcap is None
    assert capsys.readouterr().err == (
        f"synack: the pcap file {tmp_path / 'full.pcap'}: no space left on device; "
        "0 packets written, no more\n"
    )


# ---------------------------------------------------------------------- the command line


def test_trace_flags_on_another_transport_say_there_is_nothing_to_trace() -> None:
    for args, words in (
        (["files", "ls", "127.0.0.1:1", "--trace"], "on --transport os"),
        (["files", "get", "127.0.0.1:1", "x", "--pcap", "x.pcap"], "on --transport os"),
        (["chat", "join", "127.0.0.1:1", "--nick", "a", "--udp", "--trace"], "with --udp"),
        (["chat", "serve", "--port", "0", "--trace-json", "-"], "on --transport os"),
    ):
        done = subprocess.run([*SYNACK, *args], capture_output=True, text=True, timeout=T)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr == f"synack: nothing of synack's TCP to trace {words} (use tcpdump)\n"


def test_a_pcap_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "x.pcap"
    done = subprocess.run(
        [*SYNACK, "files", "ls", "127.0.0.1:1", "--transport", "synack", "--pcap", str(missing)],
        capture_output=True,
        text=True,
        timeout=T,
    )
    assert done.returncode == 1
    assert (
        done.stderr == f"synack: cannot write the pcap file {missing}: no such file or directory\n"
    )


def test_files_ls_with_trace_prints_the_connection(tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_text("hi\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNACK_")}
    server = subprocess.Popen(
        [*SYNACK, "files", "serve", str(tmp_path), "--port", "0", "--transport", "synack"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        match = re.search(r" on 127\.0\.0\.1:(\d+) \(", server.stdout.readline())
        assert match
        port = match.group(1)
        done = subprocess.run(
            [*SYNACK, "files", "ls", f"127.0.0.1:{port}", "--transport", "synack", "--trace"],
            env=env,
            capture_output=True,
            text=True,
            timeout=T,
        )
    finally:
        server.terminate()
        server.wait(timeout=T)
    assert done.returncode == 0 and "hello.txt" in done.stdout
    err = done.stderr.splitlines()
    assert re.search(rf"Out IP 127\.0\.0\.1\.\d+ > 127\.0\.0\.1\.{port}: Flags \[S\]", err[1])
    assert re.search(rf"In  IP 127\.0\.0\.1\.{port} > 127\.0\.0\.1\.\d+: Flags \[S\.\]", err[2])
    assert any("State" in line and "-> FIN-WAIT-1" in line for line in err)


def test_the_overhead_bench_runs(tmp_path: Path) -> None:
    """bench/trace_overhead.py (docs/benchmarks.md's figures) still runs, at a tiny size."""
    bench = Path(__file__).resolve().parent.parent / "bench" / "trace_overhead.py"
    done = subprocess.run(
        [sys.executable, str(bench), "--rounds", "1", "--size", "1", "--batches", "20"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for row in ("| engine loops | base |", "| engine loops | off |", "| bulk 1 MB | pcap |"):
        assert row in done.stdout, done.stdout


_BLOCKING_USE = """
import synack.socket as socket

with socket.create_server(("127.0.0.1", 0)) as srv:
    with socket.create_connection(srv.getsockname(), timeout=10) as c:
        conn, _ = srv.accept()
        c.sendall(b"ping")
        assert conn.recv(4) == b"ping"
        conn.close()
"""


def test_synack_socket_is_traced_with_its_state_changes(tmp_path: Path) -> None:
    """The blocking driver passes on the state changes it drains, as the asyncio one does."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNACK_")}
    env["SYNACK_TRACE"] = "1"
    env["SYNACK_EXIT_LINGER"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", _BLOCKING_USE], env=env, capture_output=True, text=True, timeout=T
    )
    assert done.returncode == 0, done.stderr
    assert "Flags [P.]" in done.stderr
    assert "State 127.0.0.1." in done.stderr and "-> ESTABLISHED" in done.stderr
