"""The UDP carrier over loopback: datagrams and MB per second, batched and not.

Two sockets in this one process: the sender sends a burst of datagrams (1448 random
bytes each, the payload of a full TCP segment with timestamps), the receiver reads
them all, and again, until the count is reached. One process measures the cost of
the calls themselves; the kernel's loopback work is done inside the send call.

Rows, measured in the same run, in a different order each round (best round kept):

- plain ``sendto`` / ``recvfrom_into``, one call per datagram: the baseline;
- the carrier forced to one datagram per call (``gso=False, gro=False``);
- the carrier with UDP GSO and GRO (up to 64 KiB per call each way);
- the carrier sending with GSO to a receiver without GRO (the kernel cuts the
  burst into datagrams; one read each).

    python3 bench/udp_carrier.py                        # 300,000 datagrams per row
    python3 bench/udp_carrier.py --datagrams 50000 --rounds 1
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from synack.drivers.udp import CarrierConfig, UdpCarrier

MB = 1_000_000
WAIT = 2.0  # seconds to wait for a burst before counting the rest as lost


@dataclass
class Result:
    seconds: float
    datagrams: int
    lost: int
    send_calls: int
    recv_calls: int


def payloads(size: int, burst: int) -> list[bytes]:
    pool = [os.urandom(size) for _ in range(64)]
    return [pool[i % len(pool)] for i in range(burst)]


def plain(total: int, burst: list[bytes]) -> Result:
    """The baseline loop: one sendto and one recvfrom_into per datagram."""
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx,
    ):
        for s in (tx, rx):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            s.bind(("127.0.0.1", 0))
            s.setblocking(False)
        dst = rx.getsockname()
        buf = memoryview(bytearray(65536))
        sendto, recv_into = tx.sendto, rx.recvfrom_into
        got = lost = 0
        start = time.perf_counter()
        while got + lost < total:
            n = min(len(burst), total - got - lost)
            for i in range(n):
                sendto(burst[i], dst)
            want = got + n
            while got < want:
                try:
                    recv_into(buf)
                    got += 1
                except BlockingIOError:
                    if not select.select([rx], [], [], WAIT)[0]:
                        lost += want - got
                        break
        seconds = time.perf_counter() - start
        return Result(seconds, got, lost, got + lost, got)


def carrier(total: int, burst: list[bytes], send: CarrierConfig, recv: CarrierConfig) -> Result:
    with UdpCarrier.bound(config=send) as tx, UdpCarrier.bound(config=recv) as rx:
        dst = rx.sockname
        # One burst checked byte for byte, outside the timing.
        tx.send_batch(burst, dst)
        check: list[bytes] = []
        while len(check) < len(burst) and select.select([rx], [], [], WAIT)[0]:
            check += [bytes(v) for v, _ in rx.recv_batch()]
        assert check == burst, "the carrier changed, lost or reordered datagrams"
        tx.stats.send_calls = rx.stats.recv_calls = 0
        got = lost = 0
        start = time.perf_counter()
        while got + lost < total:
            segs = burst[: min(len(burst), total - got - lost)]
            sent = tx.send_batch(segs, dst)
            assert sent == len(segs), "loopback never fills a send buffer"
            want = got + sent
            while got < want:
                n = len(rx.recv_batch())
                got += n
                if not n and not select.select([rx], [], [], WAIT)[0]:
                    lost += want - got
                    break
        seconds = time.perf_counter() - start
        return Result(seconds, got, lost, tx.stats.send_calls, rx.stats.recv_calls)


def offload_available() -> bool:
    try:
        UdpCarrier(CarrierConfig(gso=True, gro=True)).close()
    except OSError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datagrams", type=int, default=300_000, help="per row and round")
    parser.add_argument("--size", type=int, default=1448, help="bytes per datagram")
    parser.add_argument("--burst", type=int, default=256, help="datagrams per send_batch")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    burst = payloads(args.size, args.burst)
    off = CarrierConfig(gso=False, gro=False)
    on = CarrierConfig(gso=True, gro=True)
    kinds: dict[str, Callable[[], Result]] = {
        "plain sendto / recvfrom_into": lambda: plain(args.datagrams, burst),
        "carrier, one datagram per call": lambda: carrier(args.datagrams, burst, off, off),
    }
    if offload_available():
        kinds["carrier, GSO + GRO"] = lambda: carrier(args.datagrams, burst, on, on)
        kinds["carrier, GSO send, no GRO"] = lambda: carrier(args.datagrams, burst, on, off)
    else:
        print("UDP GSO/GRO: refused by this kernel; those rows are left out")

    best: dict[str, Result] = {}
    names = list(kinds)
    for r in range(args.rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            result = kinds[name]()
            if name not in best or result.seconds < best[name].seconds:
                best[name] = result

    base = best[names[0]]
    base_rate = base.datagrams / base.seconds
    print(
        f"{args.datagrams:,} datagrams of {args.size} bytes per row, bursts of {args.burst}, "
        f"best of {args.rounds} round(s), one process"
    )
    print()
    print("| path | datagrams/s | MB/s | vs plain | per send call | per recv call | lost |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        res = best[name]
        rate = res.datagrams / res.seconds
        print(
            f"| {name} | {rate:,.0f} | {rate * args.size / MB:,.0f} | {rate / base_rate:.2f}x "
            f"| {res.datagrams / max(res.send_calls, 1):.1f} "
            f"| {res.datagrams / max(res.recv_calls, 1):.1f} | {res.lost} |"
        )


if __name__ == "__main__":
    main()
