"""Our TCP through `synack netem`: large transfers under loss arrive whole.

A synack file server and client (`synack.apps.files` on `--transport synack`, the
asyncio driver) with the netem relay between them, all in one process on
127.0.0.1: 5% loss each way, 20 ms of delay each way, 1% reordering and 1%
duplication, one seed. Each configuration downloads a file of random bytes and
checks its SHA-256; the table gives the time, the goodput against the Mathis
estimate (MSS/RTT x 1.22/sqrt(p)), and what the relay did.

    python3 bench/lossy_transfer.py                          # 200 MB loopback MTU, 20 MB MTU 1500
    python3 bench/lossy_transfer.py --loopback-mb 5 --internet-mb 1
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import math
import os
import tempfile
import time
from pathlib import Path

from synack.apps.netem.impair import Impairment
from synack.apps.netem.relay import UdpRelay
from synack.drivers import aio
from synack.drivers.udp import LOOPBACK_MTU, CarrierConfig

MB = 1_000_000
LOSS = 0.05
DELAY = 0.020
LIMIT = 900.0  # seconds any one transfer may take


async def transfer(size: int, carrier: CarrierConfig, seed: int, folder: Path) -> dict[str, float]:
    data = os.urandom(size)
    source = folder / "source.bin"
    source.write_bytes(data)
    served = asyncio.get_running_loop().create_future()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(1)  # "go"
        with source.open("rb") as f:
            while chunk := f.read(1 << 20):
                writer.write(chunk)
                await writer.drain()
        writer.write_eof()
        await reader.read()  # until the client closes
        writer.close()
        served.set_result(None)

    server = await aio.start_server(serve, "127.0.0.1", 0, carrier=carrier)
    bad = Impairment(delay=DELAY, loss=LOSS, reorder=0.01, duplicate=0.01)
    relay = UdpRelay(("127.0.0.1", 0), server.addresses[0], bad, bad, seed=seed)
    host, port = await relay.start()
    start = time.perf_counter()
    reader, writer = await aio.open_connection(host, port, carrier=carrier)
    writer.write(b"g")
    digest = hashlib.sha256()
    got = 0
    async with asyncio.timeout(LIMIT):
        while chunk := await reader.read(1 << 20):
            digest.update(chunk)
            got += len(chunk)
    elapsed = time.perf_counter() - start
    info = writer.transport.connection.info()  # type: ignore[attr-defined]
    writer.close()
    async with asyncio.timeout(LIMIT):
        await served
    summary = await relay.stop()
    server.close()
    if got != size or digest.digest() != hashlib.sha256(data).digest():
        raise AssertionError(f"the file did not arrive whole: {got} of {size} bytes")
    up, down = summary.lane("up"), summary.lane("down")
    return {
        "elapsed": elapsed,
        "goodput": size / elapsed,
        "mss": info["snd_mss"],
        "dropped": up.dropped + down.dropped,
        "passed": up.passed + down.passed,
    }


def mathis(mss: int) -> float:
    return mss / (2 * DELAY) * 1.22 / math.sqrt(LOSS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loopback-mb", type=float, default=200, help="MB with the loopback MTU")
    parser.add_argument("--internet-mb", type=float, default=20, help="MB with MTU 1500")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    cases = [
        ("loopback MTU", int(args.loopback_mb * MB), CarrierConfig(mtu=LOOPBACK_MTU)),
        ("MTU 1500", int(args.internet_mb * MB), CarrierConfig()),
    ]
    print(
        f"5% loss and {DELAY * 1000:.0f} ms each way, 1% reordering, 1% duplication, seed {args.seed}"
    )
    print(
        "| carriage | size | SHA-256 | seconds | goodput MB/s | Mathis MB/s | ratio | relay dropped |"
    )
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for label, size, carrier in cases:
            r = asyncio.run(transfer(size, carrier, args.seed, Path(folder)))
            estimate = mathis(int(r["mss"]))
            print(
                f"| {label} | {size / MB:g} MB | identical | {r['elapsed']:.1f} "
                f"| {r['goodput'] / MB:.2f} | {estimate / MB:.2f} | {r['goodput'] / estimate:.2f} "
                f"| {int(r['dropped'])} of {int(r['dropped'] + r['passed'])} |"
            )


if __name__ == "__main__":
    main()
