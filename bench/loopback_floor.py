"""The least work a 64 KiB segment can cost each side over the loopback MTU, with
nothing of TCP in it: what bounds issue 11's loopback-MTU goodput target.

Each side of a bulk transfer over UDP with the CRC-32 trailer must at least, per
datagram of 65,507 bytes (a segment of 65,471 payload bytes):

  sender    zlib.crc32 of the segment, and one sendto of it to a loopback socket
            (the kernel's copy and its delivery to the receiving socket);
  receiver  one recv_into, zlib.crc32 of the segment, and one copy of the payload
            into a `bytes` of its own: the least a stream API does to hand it over
            (asyncio's StreamReader then copies it twice more, into its buffer and
            out of it at read(), as it does for the kernel's TCP).

These are timed here one at a time, interleaved, in one process (the minimum over
rounds: interference only ever adds time), on random bytes, and compared with the
time one side has per segment at a goodput G: 65,471 bytes / G (43.6 µs at 1.5 GB/s).
The floor leaves out everything TCP adds (headers, ACKs, the core's bookkeeping, the
event loop's wake-ups) and the asyncio streams' own copies, so a real transfer can
only be slower.

    python3 bench/loopback_floor.py
    python3 bench/loopback_floor.py --rounds 20 --count 500
"""

from __future__ import annotations

import argparse
import os
import socket
import time
import zlib
from collections.abc import Callable

PAYLOAD = 65_471  # a full segment's payload with the loopback MTU (timestamps, CRC-32)
DATAGRAM = PAYLOAD + 32 + 4  # TCP header with timestamps, the payload, the trailer
READ = 1 << 20  # what bench/transport_speed.py's receiving application asks per read
TARGETS = (1.5e9, 1.0e9, 0.75e9)


def timed(step: Callable[[int], None], count: int) -> float:
    """Microseconds per call of `step(i)`, CPU time of this thread."""
    start = time.thread_time()
    for i in range(count):
        step(i)
    return (time.thread_time() - start) / count * 1e6


def measure(rounds: int, count: int) -> dict[str, float]:
    pool = [os.urandom(DATAGRAM) for _ in range(16)]
    views = [memoryview(p)[32 : 32 + PAYLOAD] for p in pool]
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for s in (tx, rx):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        s.bind(("127.0.0.1", 0))
    dest = rx.getsockname()
    area = bytearray(1 << 20)
    slots = [memoryview(area)[k * 65536 : (k + 1) * 65536] for k in range(16)]

    def crc(i: int) -> None:
        zlib.crc32(pool[i & 15][: DATAGRAM - 4])

    def copy(i: int) -> None:
        bytes(views[i & 15])

    best: dict[str, float] = {}
    try:
        for _ in range(rounds):
            got = {"crc32": timed(crc, count)}
            # sendto then recv_into, the socket never holding more than one datagram.
            send_t = recv_t = 0.0
            for i in range(count):
                t0 = time.thread_time()
                tx.sendto(pool[i & 15], dest)
                t1 = time.thread_time()
                rx.recv_into(slots[i & 15])
                t2 = time.thread_time()
                send_t += t1 - t0
                recv_t += t2 - t1
            got["sendto"] = send_t / count * 1e6
            got["recv_into"] = recv_t / count * 1e6
            got["copy of the payload"] = timed(copy, count)
            for k, v in got.items():
                best[k] = min(best.get(k, v), v)
    finally:
        tx.close()
        rx.close()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--count", type=int, default=400, help="segments per step per round")
    args = parser.parse_args()
    best = measure(args.rounds, args.count)
    sender = best["crc32"] + best["sendto"]
    receiver = best["recv_into"] + best["crc32"] + best["copy of the payload"]
    print(f"per segment of {PAYLOAD} payload bytes, µs of CPU (best of {args.rounds} rounds):")
    print("| step | µs |")
    print("|---|---|")
    for name, value in best.items():
        print(f"| {name} | {value:.1f} |")
    print(f"| **sender floor** (crc32 + sendto) | **{sender:.1f}** |")
    print(f"| **receiver floor** (recv_into + crc32 + one copy) | **{receiver:.1f}** |")
    print()
    print("| goodput | µs per segment per side | sender floor's share | receiver floor's share |")
    print("|---|---|---|---|")
    for rate in TARGETS:
        budget = PAYLOAD / rate * 1e6
        print(
            f"| {rate / 1e9:.2f} GB/s | {budget:.1f} | {sender / budget:.0%} | "
            f"{receiver / budget:.0%} |"
        )
    print(
        f"ceiling with no TCP work at all: sender {PAYLOAD / sender:.0f} MB/s, "
        f"receiver {PAYLOAD / receiver:.0f} MB/s"
    )


if __name__ == "__main__":
    main()
