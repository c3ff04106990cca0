"""The cost of TLS on a verified file transfer: the same download and upload, plain and over TLS.

    python3 bench/files_tls.py                        # 200 MiB, 7 rounds
    python3 bench/files_tls.py --size 16M --rounds 1  # a quick run

Two ``synack files serve`` processes serve one directory: one in clear text and
one with ``--tls-cert`` (a certificate made for the run by trustme, from the
test extras). The client runs in this process through the library
(`FileClient.get` / `.put`), timed from the request to the verified file under
its real name, exactly as bench/files_transfer.py times synack. Downloads come
from warm servers (one unmeasured download first fills each server's hash
cache), so a download's server side is the transport alone.

What TLS changes, besides encrypting: Python 3.11 has no kernel TLS, so the
sender's body goes through ``write`` (256 KiB reads, encrypted by OpenSSL in
asyncio's TLS protocol) instead of ``sendfile``, and the receiver reads through
the StreamReader instead of ``recv_into`` its own buffers. Every round runs each
kind once, starting at a different kind each round; the file is random bytes.
The table gives the best and the median of the rounds, and TLS's rate as a
ratio of the plain rate; and the CPU seconds per GiB that client and server
used together (median; the client's hashing thread included), which a busy
machine disturbs less than the rates.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import selectors
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from files_transfer import make_file, parse_size  # the same helpers as the plain bench
from synack.apps.files import FileClient
from synack.transport import ClientTLS


def make_certificate(work: Path) -> tuple[Path, Path]:
    """(server certificate + key, CA) for 127.0.0.1, made for this run."""
    try:
        import trustme
    except ImportError:
        raise SystemExit("this bench needs trustme: pip install -e '.[test]'") from None
    ca = trustme.CA()
    server, trusted = work / "server.pem", work / "ca.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(server))
    ca.cert_pem.write_to_path(str(trusted))
    return server, trusted


class ServerProcess:
    """``synack files serve ROOT --port 0 --allow-upload [EXTRA...]`` in its own process."""

    def __init__(self, root: Path, log: Path, *extra: str, transport: str) -> None:
        argv = [sys.executable, "-m", "synack", "files", "serve", str(root), "--port", "0"]
        argv += ["--allow-upload", "--transport", transport, *extra]
        with open(log, "ab") as err:
            self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, text=True)
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            ready = sel.select(timeout=20)
        line = self.proc.stdout.readline() if ready else ""
        m = re.search(r":(\d+) \(", line)
        if not m:
            self.proc.kill()
            raise SystemExit(f"the synack server did not start: {line!r}")
        self.port = int(m.group(1))

    def cpu(self) -> float:
        """CPU seconds the server has used (Linux: user + system from /proc)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def _timed(
    port: int,
    transport: str,
    tls: ClientTLS | None,
    work: Callable[[FileClient], Awaitable[object]],
) -> float:
    async with await FileClient.connect("127.0.0.1", port, transport=transport, tls=tls) as c:
        start = time.perf_counter()
        await work(c)
        return time.perf_counter() - start


def download(port: int, transport: str, tls: ClientTLS | None, dst: Path) -> float:
    return asyncio.run(_timed(port, transport, tls, lambda c: c.get("big.bin", str(dst))))


def upload(port: int, transport: str, tls: ClientTLS | None, src: Path) -> float:
    return asyncio.run(
        _timed(port, transport, tls, lambda c: c.put(str(src), "up.bin", force=True))
    )


async def _cipher(port: int, transport: str, tls: ClientTLS) -> str:
    async with await FileClient.connect("127.0.0.1", port, transport=transport, tls=tls) as c:
        ssl_object = c._channel.writer.get_extra_info("ssl_object")
        assert isinstance(ssl_object, ssl.SSLObject)
        name, version, _bits = ssl_object.cipher() or ("?", "?", 0)
        return f"{name} ({version})"


ROWS = [
    ("down_plain", "download, plain"),
    ("down_tls", "download, TLS"),
    ("up_plain", "upload, plain"),
    ("up_tls", "upload, TLS"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=parse_size, default=200 << 20, help="default 200M")
    parser.add_argument("--rounds", type=int, default=7, help="default 7")
    parser.add_argument("--transport", default="os", help="os or synack (default: os)")
    parser.add_argument("--dir", default=None, help="where to put the temporary directory")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="synack-bench-tls-", dir=args.dir))
    served, local = work / "served", work / "local"
    served.mkdir()
    local.mkdir()
    try:
        src = served / "big.bin"
        make_file(src, args.size)
        hour_ago = time.time_ns() - 3600 * 10**9  # older than the hash cache's racy window
        os.utime(src, ns=(hour_ago, hour_ago))
        upload_src = local / "upload.bin"
        os.link(src, upload_src)
        cert, ca = make_certificate(work)
        tls = ClientTLS.create(cafile=str(ca))
        log = work / "server.log"
        plain = ServerProcess(served, log, transport=args.transport)
        secure = ServerProcess(served, log, "--tls-cert", str(cert), transport=args.transport)
        out = local / "down.bin"
        results: dict[str, list[float]] = {key: [] for key, _ in ROWS}
        cpu: dict[str, list[float]] = {key: [] for key, _ in ROWS}
        up = served / "up.bin"
        runs: list[tuple[str, Callable[[], float], Path, ServerProcess]] = [
            ("down_plain", lambda: download(plain.port, args.transport, None, out), out, plain),
            ("down_tls", lambda: download(secure.port, args.transport, tls, out), out, secure),
            ("up_plain", lambda: upload(plain.port, args.transport, None, upload_src), up, plain),
            ("up_tls", lambda: upload(secure.port, args.transport, tls, upload_src), up, secure),
        ]
        try:
            cipher = asyncio.run(_cipher(secure.port, args.transport, tls))
            for port, client_tls in ((plain.port, None), (secure.port, tls)):
                download(port, args.transport, client_tls, out)  # fills the hash cache
                out.unlink()
            for round_ in range(args.rounds):
                shift = round_ % len(runs)
                for key, run, made, server in runs[shift:] + runs[:shift]:
                    before = time.process_time() + server.cpu()
                    results[key].append(run())
                    cpu[key].append(time.process_time() + server.cpu() - before)
                    made.unlink(missing_ok=True)
        finally:
            plain.stop()
            secure.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def rate(key: str, pick: Callable[[list[float]], float]) -> float:
        return float(args.size / pick(results[key]) / 1e6)

    print(
        f"file {args.size / (1 << 20):.0f} MiB of random bytes, {args.rounds} rounds, "
        f"--transport {args.transport}; {os.cpu_count()} CPUs; load average "
        f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after; cipher {cipher}"
    )
    print(f"{'transfer':30} {'best MB/s':>9} {'median':>7} {'CPU s/GiB':>9}   seconds, each round")
    gib = args.size / (1 << 30)
    for key, label in ROWS:
        each = " ".join(f"{t:.2f}" for t in results[key])
        per_gib = statistics.median(cpu[key]) / gib
        print(
            f"{label:30} {rate(key, min):9.0f} {rate(key, statistics.median):7.0f} "
            f"{per_gib:9.2f}   {each}"
        )
    for direction in ("down", "up"):
        best = rate(f"{direction}_tls", min) / rate(f"{direction}_plain", min)
        median = rate(f"{direction}_tls", statistics.median) / rate(
            f"{direction}_plain", statistics.median
        )
        name = "download" if direction == "down" else "upload"
        cpu_ratio = statistics.median(cpu[f"{direction}_tls"]) / statistics.median(
            cpu[f"{direction}_plain"]
        )
        print(
            f"ratio TLS/plain, {name}: best {best:.2f}, median {median:.2f}; "
            f"CPU per byte x{cpu_ratio:.2f}"
        )


if __name__ == "__main__":
    main()
