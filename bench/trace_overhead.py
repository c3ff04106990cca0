"""What tracing costs when it is off (and when it is on), where its hook lives: the Engine.

The TCP core knows nothing of tracing; the drivers' `Engine` checks its ``observer``
once per batch of datagrams. So the figure that matters is the drivers' speed with
the observer None against the same drivers without tracing ("base": today's
``engine.py`` and ``aio.py`` with the commit that added ``drivers/trace.py``
reversed, loaded as a package of their own; the same core and carrier under both;
where later work has moved the drivers so far that the reversal no longer gives
working drivers, the newest revision's drivers from which it does, as the output says). The requirement: within 2%.

Cases, the variants interleaved round by round; the median and the best run shown
(the best is the steadier figure on a shared machine):
  engine   Engine.receive + transmit on a fake carrier and host: the datagram loops
           alone, nanoseconds per datagram (32 per batch), where a per-segment cost
           would show most.
  bulk     a transfer between two engines on one event loop over loopback (both ends
           in this process, so the core's work on both sides is counted): CPU time
           per MB (CPU, not wall time: these machines are shared and noisy).

Variants: base, off (today's default), and for information pcap (a pcap file written)
and text (tcpdump-style lines, to /dev/null).

    python3 bench/trace_overhead.py                  # 7 rounds, 30 MB bulk
    python3 bench/trace_overhead.py --rounds 3 --size 10
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from synack.drivers import aio, engine, trace
from synack.drivers.udp import CarrierConfig

MB = 1_000_000
CHUNK = 256 * 1024
ROOT = Path(__file__).resolve().parent.parent
BATCH = 32


BASE_DRIVERS = "today's drivers"


def driver_revisions() -> list[str]:
    """Commits that changed engine.py or aio.py, newest first."""
    return subprocess.run(
        [
            "git",
            "log",
            "--format=%H",
            "--",
            "src/synack/drivers/engine.py",
            "src/synack/drivers/aio.py",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()


def driver_source(name: str, revision: str | None) -> bytes:
    if revision is None:
        return (ROOT / "src/synack/drivers" / f"{name}.py").read_bytes()
    return subprocess.run(
        ["git", "show", f"{revision}:src/synack/drivers/{name}.py"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout


def load_base(rev: str | None, where: Path) -> tuple[str, ModuleType, ModuleType]:
    """Today's engine.py and aio.py with the commit that added tracing (`rev`) reversed:
    the drivers as they would be without it, as a package of their own."""
    if rev is None:
        rev = subprocess.run(
            ["git", "log", "--diff-filter=A", "--format=%H", "--", "src/synack/drivers/trace.py"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()[-1]
    diff = subprocess.run(
        [
            "git",
            "diff",
            f"{rev}^",
            rev,
            "--",
            "src/synack/drivers/engine.py",
            "src/synack/drivers/aio.py",
        ],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    sys.path.insert(0, str(where))
    # Today's drivers first; where later work has moved the code the tracing commit
    # touched so far that reversing it no longer leaves working drivers, the newest
    # revision of the drivers from which it does (said in the output).
    for attempt, source in enumerate([None, *driver_revisions()]):
        loaded = reversed_drivers(rev, diff, source, where / str(attempt), f"synack_base_{attempt}")
        if loaded is not None:
            global BASE_DRIVERS
            BASE_DRIVERS = "today's drivers" if source is None else f"the drivers of {source[:10]}"
            return rev, loaded[0], loaded[1]
    raise SystemExit(f"could not take {rev[:10]} out of the drivers of any revision")


def reversed_drivers(
    rev: str, diff: bytes, source: str | None, where: Path, package_name: str
) -> tuple[ModuleType, ModuleType] | None:
    """engine.py and aio.py of `source` (None: the checkout) with `diff` reversed, as the
    package `package_name`; None if that does not give drivers without tracing that work."""
    drivers = where / "src" / "synack" / "drivers"
    drivers.mkdir(parents=True)
    for name in ("engine", "aio"):
        (drivers / f"{name}.py").write_bytes(driver_source(name, source))
    undo = subprocess.run(
        ["patch", "-R", "-p1", "-f", "--no-backup-if-mismatch", "-r", "-"],
        cwd=where,
        input=diff,
        capture_output=True,
    )
    failed = [line for line in undo.stdout.decode().splitlines() if "FAILED" in line]
    package = where / package_name
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in ("engine", "aio"):
        text = (drivers / f"{name}.py").read_text()
        text = text.replace(
            "from synack.drivers.engine import", f"from {package_name}.engine import"
        )
        (package / f"{name}.py").write_text(text)
    sys.path.insert(0, str(where))
    try:
        base_engine = importlib.import_module(f"{package_name}.engine")
        base_aio = importlib.import_module(f"{package_name}.aio")
        if hasattr(base_engine.Engine, "state_changed"):
            return None
        engine_case(base_engine, 1)  # the datagram loops run
    except Exception:
        return None
    if failed:  # an import block that moved since, usually: say so, the figures stand
        print(f"note: reversing {rev[:10]}: " + "; ".join(failed), file=sys.stderr)
    return base_engine, base_aio


# -- engine: the datagram loops alone ---------------------------------------------------------


class FakeCarrier:
    """What Engine asks of a UdpCarrier, with prepared datagrams and a send that takes all."""

    def __init__(self, datagrams: list[tuple[bytes, tuple[str, int]]]) -> None:
        self.sockname = ("127.0.0.1", 7007)
        self.config = CarrierConfig()
        self._datagrams = datagrams

    def recv_batch(self) -> list[tuple[bytes, tuple[str, int]]]:
        return self._datagrams

    def recv_reads(self, **_: Any) -> list[tuple[bytes, int, tuple[str, int]]]:
        return [(d, len(d), addr) for d, addr in self._datagrams]

    def errors(self) -> list[Any]:
        return []

    def send_batch(self, segments: list[Any], addr: tuple[str, int]) -> int:
        return len(segments)

    def fileno(self) -> int:
        return -1

    def close(self) -> None:
        pass


class FakeHost:
    address = bytes([127, 0, 0, 1])

    def __init__(self, out: list[tuple[bytes, bytes, bytes]]) -> None:
        self.connections: dict[Any, Any] = {}
        self.listeners: dict[Any, Any] = {}
        self._out = out

    def handle_segment(self, data: Any, src: bytes, now: float) -> None:
        pass

    def handle_segments(self, segments: Any, src: bytes, now: float) -> None:
        pass

    def segments_to_send(self, now: float) -> list[tuple[bytes, bytes, bytes]]:
        return self._out

    # The engine asks for large segments gathered (Config.gather_from); these are small.
    segments_to_send_gathered = segments_to_send


def engine_case(module: ModuleType, batches: int) -> float:
    """Nanoseconds per datagram through receive and transmit."""
    import zlib

    segment = bytes.fromhex("9c4a1b5f") + os.urandom(1448 + 28)  # ports 40010 -> 7007
    segment = (40010).to_bytes(2, "big") + (7007).to_bytes(2, "big") + segment[4:]
    datagram = segment + zlib.crc32(segment).to_bytes(4, "big")
    inbound = [(datagram, ("127.0.0.1", 40010))] * BATCH
    out = [(segment, FakeHost.address, FakeHost.address)] * BATCH
    eng = module.Engine(FakeCarrier(inbound), FakeHost(out))
    start = time.process_time()
    for _ in range(batches):
        eng.receive(0.0)
        eng.transmit(0.0)
    elapsed = time.process_time() - start
    eng.close()
    return elapsed / (batches * BATCH * 2) * 1e9


# -- bulk: a real transfer on one loop -------------------------------------------------------------


async def transfer(driver: ModuleType, size: int) -> float:
    """CPU seconds per MB moved between two engines of this process."""
    done = asyncio.get_running_loop().create_future()

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        total = 0
        while data := await reader.read(1 << 20):
            total += len(data)
        writer.close()
        done.set_result(total)

    server = await driver.start_server(sink, "127.0.0.1", 0)
    _reader, writer = await driver.open_connection("127.0.0.1", server.addresses[0][1])
    payload = memoryview(os.urandom(CHUNK))
    start = time.process_time()
    sent = 0
    while sent < size:
        writer.write(payload[: min(CHUNK, size - sent)])
        sent += min(CHUNK, size - sent)
        await writer.drain()
    writer.write_eof()
    got = await asyncio.wait_for(done, 120)
    elapsed = time.process_time() - start
    writer.close()
    server.close()
    if got != size:
        raise AssertionError(f"received {got} of {size} bytes")
    return elapsed / (size / MB)


def run_bulk(variant: str, base_aio: ModuleType, size: int, scratch: Path) -> float:
    tracer: trace.Tracer | None = None
    if variant == "pcap":
        tracer = trace.Tracer(pcap=trace.PcapFile(str(scratch / "bench.pcap")))
    elif variant == "text":
        tracer = trace.Tracer(text=open(os.devnull, "w"))  # noqa: SIM115 (closed below)
    before = trace.use(tracer)
    try:
        driver = base_aio if variant == "base" else aio
        return asyncio.run(transfer(driver, size))
    finally:
        trace.use(before)
        if tracer is not None:
            if tracer.pcap is not None:
                tracer.pcap.close()
            if tracer.text is not None:
                tracer.text.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--size", type=int, default=30, help="MB per bulk run")
    parser.add_argument("--batches", type=int, default=20000, help="engine case: batches per run")
    parser.add_argument("--base", default=None, help="git revision of the untraced drivers")
    args = parser.parse_args()
    trace.use(None)  # whatever the environment says: off unless a variant turns it on
    with tempfile.TemporaryDirectory(prefix="synack-trace-bench-") as scratch:
        measure(args, Path(scratch))


def measure(args: argparse.Namespace, scratch: Path) -> None:
    rev, base_engine, base_aio = load_base(args.base, scratch)
    engine_ns: dict[str, list[float]] = {"base": [], "off": []}
    bulk: dict[str, list[float]] = {"base": [], "off": [], "pcap": [], "text": []}
    for i in range(args.rounds):
        pair = [("base", base_engine), ("off", engine)]
        for name, module in pair[i % 2 :] + pair[: i % 2]:
            engine_ns[name].append(engine_case(module, args.batches))
        order = list(bulk)
        for name in order[i % 4 :] + order[: i % 4]:
            bulk[name].append(run_bulk(name, base_aio, args.size * MB, scratch))
    print(f"base: {BASE_DRIVERS} without {rev[:10]} (tracing); {args.rounds} rounds")
    print("| case | variant | median | best | median / base | best / base |")
    print("|---|---|---|---|---|---|")
    rows = [("engine loops", "ns/datagram", 1.0, engine_ns)]
    rows.append((f"bulk {args.size} MB", "ms CPU/MB", 1000.0, bulk))
    for case, unit, scale, table in rows:
        base_median, base_best = statistics.median(table["base"]), min(table["base"])
        for name, values in table.items():
            m, b = statistics.median(values), min(values)
            print(
                f"| {case} | {name} | {m * scale:7.2f} {unit} | {b * scale:7.2f} {unit} "
                f"| {m / base_median:.3f} | {b / base_best:.3f} |"
            )


if __name__ == "__main__":
    main()
