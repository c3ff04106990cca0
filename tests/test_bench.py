"""Every bench in bench/ still runs, at a tiny size, and prints its whole table.

The figures in docs/benchmarks.md come from these scripts; a bench that rots
silently would leave those figures with no way to reproduce them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def run_bench(script: str, *args: str, timeout: float = 120) -> str:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_files_transfer(tmp_path: Path) -> None:
    out = run_bench("files_transfer.py", "--size", "2M", "--rounds", "1", "--dir", str(tmp_path))
    for label in (
        "download, raw sendfile -> recv_into",
        "download, raw + SHA-256 at the receiver",
        "download, synack, warm server",
        "download, synack, cold server",
        "upload, raw sendfile -> recv_into",
        "upload, raw + SHA-256 at both ends",
        "upload, synack",
        "SHA-256 of the file alone",
    ):
        assert label in out, out
    assert "answered from the server's hash cache: 1 of 1" in out, out
    assert list(tmp_path.iterdir()) == [], "the bench left files behind"


def test_chat_fanout() -> None:
    out = run_bench("chat_fanout.py", "--clients", "4", "--messages", "200", "--time-limit", "20")
    assert "ratio synack/threads:" in out, out


def test_chat_cluster() -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("no redis-server here (scripts/system-deps installs Debian's)")
    out = run_bench("chat_cluster.py", "--clients", "4", "--messages", "200", "--time-limit", "20")
    for name in ("plain", "1 server", "2 servers"):
        assert re.search(rf"{name}: +800 deliveries", out), out  # every delivery made
    assert "ratio 2 servers / 1 server:" in out, out


def test_chat_conns() -> None:
    out = run_bench("chat_conns.py", "--clients", "40", "--time-limit", "20")
    for name in ("os", "synack"):  # every client logged in and held, on each transport
        assert f"chat, --transport {name}: 40 clients in" in out, out
        assert f"ratio threads/chat on {name} memory per connection:" in out, out
    assert "target (os): <= 10 KB per connection:" in out, out


def test_udp_carrier() -> None:
    out = run_bench("udp_carrier.py", "--datagrams", "3000", "--rounds", "1")
    for label in ("| plain sendto / recvfrom_into |", "| carrier, one datagram per call |"):
        assert label in out, out
    if "refused by this kernel" not in out:
        assert "| carrier, GSO + GRO |" in out, out
        assert "| carrier, GSO send, no GRO |" in out, out


@pytest.mark.timeout(180)
def test_tcp_core_bulk() -> None:
    out = run_bench(
        "tcp_core_bulk.py", "--size", "1", "--lossy-size", "1", "--rounds", "1", timeout=170
    )
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    # The header and one row per case: lossless three ways, 1% and 5% loss.
    assert len(rows) == 6, out


def test_host_idle() -> None:
    out = run_bench("host_idle.py", "--counts", "1,100", "--inputs", "300", "--rounds", "1")
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    # The header and one row per count.
    assert len(rows) == 3, out
    assert "ratio 100/1:" in out, out


def test_startup() -> None:
    out = run_bench("startup.py", "--rounds", "1")
    for label in (
        "| python -c pass |",
        '| python -c "import asyncio" |',
        "| synack --help |",
        "| synack files get, to first byte |",
        "ratio synack --help / python -c pass:",
        'ratio synack files get, to first byte / python -c "import asyncio":',
    ):
        assert label in out, out


def test_lossy_transfer() -> None:
    out = run_bench("lossy_transfer.py", "--loopback-mb", "2", "--internet-mb", "0.2")
    rows = [line for line in out.splitlines() if line.startswith("| ") and "identical" in line]
    assert len(rows) == 2, out


def test_recovery(tmp_path: Path) -> None:
    md = tmp_path / "recovery.md"
    run_bench(
        "recovery.py",
        *("--size", "0.2", "--seeds", "1", "--requests", "3", "--rtts", "20", "--losses", "5"),
        *("--markdown", str(md)),
    )
    text = md.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    # Per table a header and one row per configuration (classic, default).
    assert len(rows) == 6, text
    # Three targets per configuration, each said to be met or not.
    assert text.count("NOT met") + text.count("-> met") == 6, text


def test_bbr() -> None:
    out = run_bench("bbr.py", "--rates", "1", "--rtts", "20", "--measure", "0.5")
    rows = [line for line in out.splitlines() if line.startswith("| ") and "MB/s" in line]
    # BBR and CUBIC alone at three loss rates, then the two sharing one buffer.
    assert len(rows) == 3, out
    assert "| 1 MB/s | 20 ms | bbr |" in out and "CUBIC share" in out, out


def test_rack_cost() -> None:
    out = run_bench("rack_cost.py", "--rate", "2e6", "--measure", "0.2", "--rounds", "1")
    # Not the same segments since RFC 8985 §6.2 Steps 2-3 judge only newly SACKed bytes
    # (f862597 re-judged earlier ones): tests/tcp/test_rack_index.py holds the indexes
    # to a full walk with the new semantics instead.
    assert re.search(r"^round 1: before .* same segments: (True|False)$", out, re.M), out
    assert re.search(r"after/before median \d\.\d{3}", out), out


def test_relay_cost() -> None:
    out = run_bench(
        "relay_cost.py", "--rounds", "1", "--packets", "2000", "--rates", "20000",
        "--impair", "none,sbs",
    )  # fmt: skip
    # Both revisions relayed the load, with and without side_by_side's impairment.
    for impair in ("none", "sbs"):
        row = rf"^\| {impair} \| 20,000 \| (\d+\.\d) \(.*\) \| (\d+\.\d) \(.*\) \| \d\.\d\d "
        found = re.search(row, out, re.M)
        assert found is not None, out
        assert float(found.group(1)) > 0 and float(found.group(2)) > 0, out


def test_core_ab(tmp_path: Path) -> None:
    out = run_bench(
        "core_ab.py",
        *("--size", "0.2", "--baseline", "1", "--rounds", "2", "--tmp-dir", str(tmp_path)),
    )
    # Each worker imported its own revision's core, unpacked under tmp_path.
    sources = re.findall(r"\(synack from (.+)\)", out)
    assert len(sources) == 2 and sources[0] != sources[1], out
    assert all(source.startswith(str(tmp_path)) for source in sources), out
    assert "rounds: 2 of 0.2 MB" in out, out
    verdict = r"verdict: median B/A \d\.\d{3} \(95% interval .+\) (meets|is BELOW)"
    assert re.search(verdict, out), out
    assert list(tmp_path.iterdir()) == [], "the bench left its trees behind"


def test_transport_speed() -> None:
    out = run_bench(
        "transport_speed.py",
        *("--size", "2", "--exchanges", "20", "--rounds", "1", "--kinds", "os,mtu1500", "--ramp"),
    )
    # Bulk: each side's CPU per segment of our TCP and page faults per MB; then the round
    # trips against the kernel's.
    bulk = r"^\| mtu1500 \| .* \| \d+\.\d\d \| \d+\.\d\d \| \d+\.\d / \d+\.\d \|$"
    assert re.search(bulk, out, re.M), out
    # --ramp: the sender's cwnd, the offered window and the flight at each ACK pass.
    assert re.search(r"^mtu1500: \d+ ACK passes", out, re.M), out
    ramp = r"^ +\d+\.\d% at +\d+\.\d ms: cwnd +\d+, window +\d+, in flight +\d+$"
    assert len(re.findall(ramp, out, re.M)) >= 2, out
    assert re.search(r"^\| mtu1500 \| +\d+\.\d \| +\d+\.\d \| +\d+\.\d\d \|$", out, re.M), out


def test_rr_cost() -> None:
    out = run_bench(
        "rr_cost.py", *("--kinds", "os,mtu1500", "--runs", "1", "--exchanges", "20"), "--calls"
    )
    for kind in ("os", "mtu1500"):
        assert re.search(rf"^\| {kind} \| +\d+\.\d \(\d+\.\d-\d+\.\d\) \|$", out, re.M), out
        found = re.search(rf"^{kind}: (\d+\.\d) calls per exchange under cProfile", out, re.M)
        assert found is not None and float(found.group(1)) > 50, out
    assert "readexactly" in out, out  # the call sites, the streams' own among them


def test_segment_cost() -> None:
    out = run_bench("segment_cost.py", "--size", "2", "--rounds", "1", "--kinds", "mtu1500")
    row = [line for line in out.splitlines() if line.startswith("| mtu1500 |")]
    assert len(row) == 1, out
    cells = [float(c) for c in row[0].strip("|").split("|")[1:]]
    assert len(cells) == 6 and all(c > 0 for c in cells[:3]), out


def test_core_ab_profile(tmp_path: Path) -> None:
    out = run_bench(
        "core_ab.py",
        *("--profile", "--size", "0.2", "--rounds", "1", "--top", "200"),
        *("--tmp-dir", str(tmp_path)),
    )
    # Both sides ran the same transfer through their own core: the receive fast path is
    # taken about once per data segment on each.
    row = next(line for line in out.splitlines() if "connection.py:_predicted |" in line)
    calls_a, calls_b = (float(cell) for cell in row.split("|")[2:4])
    assert 0.9 < calls_a < 1.5 and 0.9 < calls_b < 1.5, out
    assert list(tmp_path.iterdir()) == [], "the bench left its trees behind"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_core_ab_instructions(tmp_path: Path) -> None:
    if shutil.which("valgrind") is None:
        pytest.skip("no valgrind here (scripts/system-deps installs Debian's)")
    out = run_bench(
        "core_ab.py",
        *("--instructions", "--size", "0.1", "--repeats", "1", "--tmp-dir", str(tmp_path)),
        timeout=280,
    )
    found = re.search(r"instructions: A ([\d,]+) \(.+\), B ([\d,]+) \(.+\), B/A", out)
    assert found is not None, out
    # Tens of thousands of instructions per segment each side (the interpreter's loop,
    # the checksum, both ends of the connection), and the two cores within a factor of 2.
    a, b = (int(group.replace(",", "")) for group in found.groups())
    assert 20_000 < a < 2_000_000 and 0.5 < b / a < 2, out
    assert list(tmp_path.iterdir()) == [], "the bench left its trees behind"


def _no_tun() -> str | None:
    if os.geteuid() != 0 or not os.path.exists("/dev/net/tun") or shutil.which("ip") is None:
        return "the kernel's side runs in network namespaces: needs root, /dev/net/tun and ip"
    return None


@pytest.mark.root
@pytest.mark.slow  # about 20 s: eight pairs of endpoint processes
@pytest.mark.skipif(_no_tun() is not None, reason=_no_tun() or "")
def test_side_by_side() -> None:
    proc = subprocess.Popen(
        [
            sys.executable, str(BENCH / "side_by_side.py"), "--losses", "5", "--seconds", "1",
            "--exchanges", "10", "--capacity-seconds", "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=150)
    finally:
        if proc.poll() is None:
            proc.terminate()  # its finally removes the namespaces
            proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]
    # Both stacks with both congestion controls: some goodput, every exchange done.
    for stack in ("kernel", "synack"):
        for cc in ("cubic", "bbr"):
            row = re.search(rf"^\| 5% \| {stack} \| {cc} \| (\d+\.\d\d) \|(.*)$", out, re.M)
            assert row is not None, out
            assert float(row.group(1)) > 0 and "| 10 of 10 |" in row.group(2), out
    verdicts = re.findall(r"^- 5%, (cubic|bbr): .*: (met|NOT met)$", out, re.M)
    assert len(verdicts) == 4, out  # goodput and p99, for each congestion control
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"synack-{proc.pid}-" not in namespaces, "the bench left its namespaces behind"


def test_rr_random_loss() -> None:
    out = run_bench("rr_random_loss.py", "--seeds", "1,2", "--exchanges", "60")
    for seed in (1, 2):
        assert re.search(
            rf"^seed {seed}: median \d+ ms, p99 \d+ ms, .*server timeouts \d+$", out, re.M
        )
    assert re.search(r"^all 120: median 40 ms, p99 \d+ ms, max \d+ ms, over 250 ms \d+", out, re.M)


def test_loopback_floor() -> None:
    out = run_bench("loopback_floor.py", "--rounds", "1", "--count", "20")
    for label in ("| crc32 |", "| sendto |", "| recv_into |", "**sender floor**", "| 1.50 GB/s |"):
        assert label in out, out
    floor = re.search(r"receiver floor\*\* \(recv_into \+ crc32 \+ one copy\) \| \*\*([\d.]+)", out)
    assert floor is not None and float(floor.group(1)) > 0, out
