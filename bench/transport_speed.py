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

    python3 bench/transport_speed.py                   # 200 MB bulk, 2000 round trips, 3 rounds
    python3 bench/transport_speed.py --size 20 --exchanges 200 --rounds 1
    python3 bench/transport_speed.py --pin              # both processes on one vCPU (rr)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from synack.drivers import aio
from synack.drivers.udp import LOOPBACK_MTU, CarrierConfig

MB = 1_000_000
CHUNK = 256 * 1024
REQUEST = 1024
LIMIT = 120.0  # seconds any one run may take

CARRIERS = {
    "mtu1500": CarrierConfig(),  # the defaults: internet-safe MTU, CRC-32 per datagram
    "mtu1500-tcp-checksum": CarrierConfig(integrity="tcp"),  # as an IPv4 path needs it
    "loopback": CarrierConfig(mtu=LOOPBACK_MTU),  # datagrams up to 64 KiB
}


# -- the child: a server that counts, or echoes -------------------------------------------


async def open_stream(kind: str, host: str, port: int) -> Any:
    if kind == "os":
        return await asyncio.open_connection(host, port, limit=1 << 20)
    return await aio.open_connection(host, port, limit=1 << 20, carrier=CARRIERS[kind])


async def serve(kind: str, role: str) -> None:
    done = asyncio.get_running_loop().create_future()

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        total = 0
        while data := await reader.read(1 << 20):
            total += len(data)
        writer.write(f"{total}\n".encode())
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


# -- the parent: the sender, timing ---------------------------------------------------------


def start_child(kind: str, role: str, pin: int | None) -> tuple[subprocess.Popen[str], int]:
    cmd = [sys.executable, __file__, "--child", kind, role]
    if pin is not None:
        cmd = ["taskset", "-c", str(pin), *cmd]
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    return child, int(child.stdout.readline())


async def bulk(kind: str, size: int) -> float:
    child, port = start_child(kind, "bulk", None)
    try:
        reader, writer = await open_stream(kind, "127.0.0.1", port)
        payload = memoryview(os.urandom(CHUNK))
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
        if int(line) != size:
            raise AssertionError(f"{kind}: the receiver counted {int(line)} of {size} bytes")
        writer.close()
        return size / elapsed
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=200, help="MB per bulk run")
    parser.add_argument("--exchanges", type=int, default=2000, help="round trips per rr run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (best and median shown)")
    parser.add_argument("--pin", action="store_true", help="rr: both processes on vCPU 0")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, role = args.child
        asyncio.run(serve(kind, role))
        return
    if args.pin:
        os.sched_setaffinity(0, {0})
    kinds = ["os", *CARRIERS]
    rates: dict[str, list[float]] = {k: [] for k in kinds}
    rtts: dict[str, list[float]] = {k: [] for k in kinds}
    for i in range(args.rounds):
        order = kinds[i % len(kinds) :] + kinds[: i % len(kinds)]  # rotate: no kind always first
        for kind in order:
            rates[kind].append(asyncio.run(bulk(kind, args.size * MB)))
            rtts[kind].extend(
                asyncio.run(request_response(kind, args.exchanges, 0 if args.pin else None))
            )
    os_best = max(rates["os"])
    os_median = statistics.median(rtts["os"])
    os_p99 = p99(rtts["os"])
    print(f"bulk: {args.size} MB per run, {args.rounds} rounds; rr: {args.exchanges} x 1 KiB")
    print(
        "| transport | bulk best MB/s | bulk median MB/s | ratio to os (best) "
        "| rr median µs | rr p99 µs | rr median ratio to os |"
    )
    print("|---|---|---|---|---|---|---|")
    for kind in kinds:
        best = max(rates[kind])
        median = statistics.median(rates[kind])
        med = statistics.median(rtts[kind])
        print(
            f"| {kind} | {best / MB:7.1f} | {median / MB:7.1f} | {best / os_best:5.3f} "
            f"| {med * 1e6:7.1f} | {p99(rtts[kind]) * 1e6:7.1f} | {med / os_median:5.2f} |"
        )
    print(f"os rr p99: {os_p99 * 1e6:.1f} µs")


if __name__ == "__main__":
    main()
