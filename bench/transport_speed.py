"""Our TCP over UDP against the kernel's TCP, between two processes on loopback.

Each case runs a receiver (or echo server) in a child process and the sender in
this one, over asyncio streams from `synack.transport`, so both transports do
the same application work. The kernel's TCP ("os") runs in the same script,
interleaved round by round, and every figure is reported as a ratio to it:
these machines are shared and noisy, and the ratio is what stays put.

Cases:
  bulk       one-way goodput: the sender writes random bytes as fast as drain allows,
             the receiver reads and counts them; MB/s from the sender's first write to
             the receiver's report of the last byte.
  rr         1 KiB request / 1 KiB response round trips, one at a time; median and p99.

Configurations of our TCP: the internet-safe MTU (1500) with the default CRC-32 per
datagram, the same with the TCP checksum instead, and the loopback MTU (64 KiB).

Bulk runs also report each side's CPU time per segment of our TCP (process CPU time
over the payload divided by the connection's MSS less its options): sender and
receiver run on two vCPUs, so the busier side's cost per segment bounds the rate;
and each side's page faults per MB moved (minor faults over the transfer: memory
glibc mapped fresh for a large short-lived buffer, then touched a page at a time).
`--ramp` prints, for one bulk transfer of each of our kinds, the sender's cwnd, the
window the receiver offers and what is in flight each time an ACK pass arrives, at
fractions of the bytes acknowledged: in flight 0 is a ping-pong (the receiver took
the whole flight in one pass, and the sender waited for its ACK).
`--profile DIR` runs each bulk transfer's sender and receiver under cProfile, timed
by process CPU time (a wall clock would charge a system call for the other process
it wakes and gives the CPU to), writes DIR/KIND-sender.prof and DIR/KIND-receiver.prof,
and prints each side's self time grouped by layer (bench/profile_groups.py); the
profiler inflates Python calls, so read the shares there and the µs per segment from
a run without it.

    python3 bench/transport_speed.py                   # 200 MB bulk, 2000 round trips, 3 rounds
    python3 bench/transport_speed.py --size 20 --exchanges 200 --rounds 1
    python3 bench/transport_speed.py --pin              # both processes on one vCPU (rr)
    python3 bench/transport_speed.py --spread --no-rr   # bulk: sender on vCPU 0, receiver on 1
    python3 bench/transport_speed.py --kinds os,mtu1500 --no-rr      # only these, bulk only
    python3 bench/transport_speed.py --profile /tmp/prof --kinds mtu1500 --size 50 --rounds 1
    python3 bench/transport_speed.py --ramp --kinds mtu1500 --size 100 --rounds 1 --no-rr
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from synack.drivers import aio
from synack.drivers.udp import LOOPBACK_MTU, CarrierConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
import profile_groups

MB = 1_000_000
CHUNK = 256 * 1024
REQUEST = 1024
LIMIT = 120.0  # seconds any one run may take

CARRIERS = {
    "mtu1500": CarrierConfig(),  # the defaults: internet-safe MTU, CRC-32 per datagram
    "mtu1500-tcp-checksum": CarrierConfig(integrity="tcp"),  # as an IPv4 path needs it
    "loopback": CarrierConfig(mtu=LOOPBACK_MTU),  # datagrams up to 64 KiB
}


def minor_faults() -> int:
    """Page faults this process took so far (memory mapped fresh and touched)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def payload_per_segment(writer: asyncio.StreamWriter) -> int | None:
    """Payload bytes in a full segment of our TCP (None for the kernel's)."""
    conn = getattr(writer.transport, "connection", None)
    return None if conn is None else int(conn.snd_mss)


# -- the child: a server that counts, or echoes -------------------------------------------


async def open_stream(kind: str, host: str, port: int) -> Any:
    if kind == "os":
        return await asyncio.open_connection(host, port, limit=1 << 20)
    return await aio.open_connection(host, port, limit=1 << 20, carrier=CARRIERS[kind])


async def serve(kind: str, role: str) -> None:
    done = asyncio.get_running_loop().create_future()

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        total = 0
        data = await reader.read(1 << 20)
        cpu_start = time.process_time()  # from the first bytes on: the bulk work only
        faults_start = minor_faults()
        while data:
            total += len(data)
            data = await reader.read(1 << 20)
        cpu = time.process_time() - cpu_start
        faults = minor_faults() - faults_start
        writer.write(f"{total} {cpu} {faults}\n".encode())
        await writer.drain()
        writer.close()
        done.set_result(None)

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                writer.write(await reader.readexactly(REQUEST))
        except asyncio.IncompleteReadError:
            pass
        writer.close()
        done.set_result(None)

    handler = sink if role == "bulk" else echo
    if kind == "os":
        server: Any = await asyncio.start_server(handler, "127.0.0.1", 0, limit=1 << 20)
        port = server.sockets[0].getsockname()[1]
    else:
        server = await aio.start_server(
            handler, "127.0.0.1", 0, limit=1 << 20, carrier=CARRIERS[kind]
        )
        port = server.addresses[0][1]
    print(port, flush=True)
    async with asyncio.timeout(LIMIT):
        await done
    server.close()


def child_main(kind: str, role: str, profile: str | None) -> None:
    if profile is None:
        asyncio.run(serve(kind, role))
        return
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    try:
        asyncio.run(serve(kind, role))
    finally:
        profiler.disable()
        profiler.dump_stats(profile)


# -- the parent: the sender, timing ---------------------------------------------------------


def start_child(
    kind: str, role: str, pin: int | None, profile: str | None = None
) -> tuple[subprocess.Popen[str], int]:
    cmd = [sys.executable, __file__, "--child", kind, role]
    if profile is not None:
        cmd += ["--child-profile", profile]
    if pin is not None:
        cmd = ["taskset", "-c", str(pin), *cmd]
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    return child, int(child.stdout.readline())


class BulkResult:
    def __init__(
        self,
        rate: float,
        sender_cpu: float,
        receiver_cpu: float,
        mss: int | None,
        faults: tuple[int, int] = (0, 0),
    ):
        self.rate = rate  # bytes per second
        self.sender_cpu = sender_cpu  # CPU seconds of each process during the transfer
        self.receiver_cpu = receiver_cpu
        self.mss = mss  # payload per full segment (our TCP), else None
        self.faults = faults  # page faults of each process during the transfer


RAMP_MARKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 0.99)


def watch_acks(
    writer: asyncio.StreamWriter, samples: list[tuple[float, int, int, int, int]]
) -> None:
    """Note the sender's (time, snd_una, cwnd, snd_wnd, bytes in flight) after each of
    its engine's receive passes (the ACKs)."""
    transport: Any = writer.transport
    conn = transport.connection
    engine = transport._engine.engine
    receive = engine.receive

    def noting(now: float) -> Any:
        errors = receive(now)
        una = conn.snd_una
        samples.append((time.perf_counter(), una, conn.cwnd, conn.snd_wnd, conn.snd_max - una))
        return errors

    engine.receive = noting


def ramp_lines(
    kind: str, size: int, mss: int, samples: list[tuple[float, int, int, int, int]]
) -> list[str]:
    lines = [
        f"{kind}: {len(samples)} ACK passes; at each fraction of the bytes acknowledged"
        f" (in segments of {mss} bytes):"
    ]
    if not samples:
        return lines
    t0, una0 = samples[0][0], samples[0][1]
    marks = list(RAMP_MARKS)
    for t, una, cwnd, wnd, flight in samples:
        done = (una - una0) / size
        if marks and done >= marks[0]:
            lines.append(
                f"  {done * 100:5.1f}% at {(t - t0) * 1000:7.1f} ms: cwnd {cwnd / mss:5.0f}, "
                f"window {wnd / mss:5.0f}, in flight {flight / mss:5.0f}"
            )
            while marks and done >= marks[0]:
                marks.pop(0)
    return lines


async def bulk(
    kind: str,
    size: int,
    profile_dir: str | None = None,
    ramp: list[tuple[float, int, int, int, int]] | None = None,
    spread: bool = False,
) -> BulkResult:
    child_prof = None if profile_dir is None else f"{profile_dir}/{kind}-receiver.prof"
    child, port = start_child(kind, "bulk", 1 if spread else None, child_prof)
    profiler = None if profile_dir is None else cProfile.Profile(time.process_time)
    try:
        reader, writer = await open_stream(kind, "127.0.0.1", port)
        if ramp is not None and kind != "os":
            watch_acks(writer, ramp)
        payload = memoryview(os.urandom(CHUNK))
        if profiler is not None:
            profiler.enable()
        cpu_start = time.process_time()
        faults_start = minor_faults()
        start = time.perf_counter()
        sent = 0
        async with asyncio.timeout(LIMIT):
            while sent < size:
                writer.write(payload[: min(CHUNK, size - sent)])
                sent += min(CHUNK, size - sent)
                await writer.drain()
            writer.write_eof()
            line = await reader.readline()
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
        faults = minor_faults() - faults_start
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(f"{profile_dir}/{kind}-sender.prof")
        counted, child_cpu, child_faults = line.split()
        if int(counted) != size:
            raise AssertionError(f"{kind}: the receiver counted {int(counted)} of {size} bytes")
        mss = payload_per_segment(writer)
        writer.close()
        return BulkResult(size / elapsed, cpu, float(child_cpu), mss, (faults, int(child_faults)))
    finally:
        await asyncio.to_thread(child.wait, LIMIT)  # the loop must run: our TCP lives on it


async def request_response(kind: str, exchanges: int, pin: int | None) -> list[float]:
    child, port = start_child(kind, "rr", pin)
    try:
        reader, writer = await open_stream(kind, "127.0.0.1", port)
        if kind != "os":
            writer.transport.set_no_delay(True)
        else:
            import socket

            writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        request = os.urandom(REQUEST)
        times = []
        async with asyncio.timeout(LIMIT):
            for _ in range(exchanges):
                start = time.perf_counter()
                writer.write(request)
                await reader.readexactly(REQUEST)
                times.append(time.perf_counter() - start)
        writer.write_eof()
        writer.close()
        return times
    finally:
        await asyncio.to_thread(child.wait, LIMIT)  # the loop must run: our TCP lives on it


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def cpu_columns(results: list[BulkResult], size: int) -> str:
    """Median CPU µs per segment (our TCP) or CPU s per GB (the kernel's), each side."""
    mss = results[0].mss
    snd = statistics.median(r.sender_cpu for r in results)
    rcv = statistics.median(r.receiver_cpu for r in results)
    if mss is None:
        return f"{snd / size * 1e9:.2f} s/GB | {rcv / size * 1e9:.2f} s/GB"
    segments = size / mss
    return f"{snd / segments * 1e6:.2f} | {rcv / segments * 1e6:.2f}"


def fault_column(results: list[BulkResult], size: int) -> str:
    """Median page faults per MB moved, each side: memory mapped fresh and touched, which
    glibc does for every large short-lived buffer (bytes objects, a StreamReader's)."""
    snd = statistics.median(r.faults[0] for r in results)
    rcv = statistics.median(r.faults[1] for r in results)
    return f"{snd / (size / MB):.1f} / {rcv / (size / MB):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=200, help="MB per bulk run")
    parser.add_argument("--exchanges", type=int, default=2000, help="round trips per rr run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (best and median shown)")
    parser.add_argument("--pin", action="store_true", help="rr: both processes on vCPU 0")
    parser.add_argument(
        "--kinds", default=",".join(["os", *CARRIERS]), help="comma-separated: os and/or carriers"
    )
    parser.add_argument(
        "--spread",
        action="store_true",
        help="bulk: the sender on vCPU 0, the receiver on vCPU 1 (the scheduler otherwise "
        "sometimes puts both on one, which halves a run)",
    )
    parser.add_argument("--no-rr", action="store_true", help="bulk only")
    parser.add_argument("--no-bulk", action="store_true", help="rr only")
    parser.add_argument("--profile", metavar="DIR", help="cProfile each side of each bulk run")
    parser.add_argument(
        "--ramp", action="store_true", help="cwnd, window and flight at each ACK (first round)"
    )
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--child-profile", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, role = args.child
        child_main(kind, role, args.child_profile)
        return
    if args.pin:
        os.sched_setaffinity(0, {0})
    spread_from = os.sched_getaffinity(0)
    if args.spread and not {0, 1} <= spread_from:
        parser.error("--spread needs vCPUs 0 and 1")
    kinds = [k for k in args.kinds.split(",") if k]
    for k in kinds:
        if k != "os" and k not in CARRIERS:
            parser.error(f"unknown kind {k!r}: os, {', '.join(CARRIERS)}")
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)
    size = args.size * MB
    results: dict[str, list[BulkResult]] = {k: [] for k in kinds}
    rtts: dict[str, list[float]] = {k: [] for k in kinds}
    ramps: dict[str, list[tuple[float, int, int, int, int]]] = {k: [] for k in kinds}
    for i in range(args.rounds):
        order = kinds[i % len(kinds) :] + kinds[: i % len(kinds)]  # rotate: no kind always first
        for kind in order:
            if not args.no_bulk:
                ramp = ramps[kind] if args.ramp and i == 0 else None
                if args.spread:
                    os.sched_setaffinity(0, {0})
                results[kind].append(asyncio.run(bulk(kind, size, args.profile, ramp, args.spread)))
                if args.spread:
                    os.sched_setaffinity(0, spread_from)
            if not args.no_rr:
                rtts[kind].extend(
                    asyncio.run(request_response(kind, args.exchanges, 0 if args.pin else None))
                )
    print(f"bulk: {args.size} MB per run, {args.rounds} rounds; rr: {args.exchanges} x 1 KiB")
    if not args.no_bulk:
        base = max(r.rate for r in results["os"]) if "os" in results else None
        print(
            "| transport | bulk best MB/s | bulk median MB/s | ratio to os (best) "
            "| sender CPU µs/segment | receiver CPU µs/segment | page faults per MB, sender / receiver |"
        )
        print("|---|---|---|---|---|---|---|")
        for kind in kinds:
            rates = [r.rate for r in results[kind]]
            ratio = f"{max(rates) / base:5.3f}" if base else "-"
            print(
                f"| {kind} | {max(rates) / MB:7.1f} | {statistics.median(rates) / MB:7.1f} "
                f"| {ratio} | {cpu_columns(results[kind], size)} | {fault_column(results[kind], size)} |"
            )
        print(
            "each round's MB/s:", {k: [round(r.rate / MB) for r in v] for k, v in results.items()}
        )
    if not args.no_rr:
        os_median = statistics.median(rtts["os"]) if "os" in rtts else None
        print("| transport | rr median µs | rr p99 µs | rr median ratio to os |")
        print("|---|---|---|---|")
        for kind in kinds:
            med = statistics.median(rtts[kind])
            ratio = f"{med / os_median:5.2f}" if os_median else "-"
            print(f"| {kind} | {med * 1e6:7.1f} | {p99(rtts[kind]) * 1e6:7.1f} | {ratio} |")
    if args.ramp and not args.no_bulk:
        for kind in kinds:
            if kind != "os":
                unit = results[kind][0].mss or 1
                print("\n".join(ramp_lines(kind, size, unit, ramps[kind])))
    if args.profile:
        for kind in kinds:
            mss = results[kind][-1].mss
            segments = size // mss if mss else None
            for side in ("sender", "receiver"):
                print()
                path = f"{args.profile}/{kind}-{side}.prof"
                print("\n".join(profile_groups.table(path, segments, f"{kind} {side}")))


if __name__ == "__main__":
    main()
