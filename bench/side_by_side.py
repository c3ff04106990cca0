"""synack's TCP beside the kernel's, through the same `synack netem` impairments.

For each loss rate (1% and 5% each way by default), 20 ms of delay each way (40 ms
RTT) and a rate cap on the relay, with one seed:

  kernel   Linux's TCP between two network namespaces, through netem's TUN mode
           (`synack.apps.netem.tun`: 198.18.0.0/15, made and removed by this run);
  synack   our TCP over UDP on 127.0.0.1 (`synack.asyncio`, MTU 1500), through
           netem's UDP relay;

each with CUBIC and with BBR (the kernel's through TCP_CONGESTION, ours through
`Config.congestion_control`). The relay runs in this process, each endpoint in a
process of its own, so the relay's CPU and each endpoint's are measured apart.

  bulk  one-way goodput: the client writes random bytes as fast as drain allows; the
        server counts what arrives for --seconds from the first byte, then aborts.
  rr    --exchanges 1 KiB request / 1 KiB response round trips, one at a time
        (TCP_NODELAY); median and 99th percentile.

The rate caps count whole IP packets on both relays (the UDP relay counts each
datagram with its 28 bytes of IPv4 and UDP headers), so both stacks meet the same
bottleneck. Both use
the kernel's autotuning maxima (tcp_wmem, tcp_rmem) as their buffer limits. A first
"capacity" pass runs bulk with no impairment and no cap, to show what the relay can
move here and so that the cap is well below it. The table puts each goodput beside
the Mathis estimate, MSS/RTT x 1.22/sqrt(p), with each stack's own payload per
segment, and ends with the issue's targets and their verdicts.

Needs root, /dev/net/tun and iproute2 for the kernel's runs. Namespaces left by a
run that was killed are removed by the next one.

    sudo .venv/bin/python bench/side_by_side.py                       # the full run
    sudo .venv/bin/python bench/side_by_side.py --losses 5 --seconds 2 --exchanges 20
    sudo .venv/bin/python bench/side_by_side.py --ccs cubic --no-rr --seeds 1,2,3,4,5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import socket
import statistics
import struct
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MB = 1_000_000
DELAY = 0.020  # seconds each way: a 40 ms round trip
REQUEST = 1024
CHUNK = 256 * 1024
KERNEL_PORT = 5001
GRACE = 30.0  # seconds an endpoint may outlive its planned run before it gives up
BIN = 0.050  # seconds: the slow exchanges' histogram
STACKS = ("kernel", "synack")
CCS = ("cubic", "bbr")

# ---------------------------------------------------------------------- the endpoints


def sysctl_max(name: str) -> int:
    """The largest buffer the kernel's autotuning may give (tcp_wmem/tcp_rmem max)."""
    with open(f"/proc/sys/net/ipv4/{name}") as f:
        return int(f.read().split()[2])


def cpu_and_wait() -> tuple[float, float]:
    """Seconds this thread has run, and waited runnable for a vCPU (schedstat): on a
    shared machine a low CPU share with a long wait means starved, not idle."""
    try:
        with open("/proc/thread-self/schedstat") as f:
            ran, waited, _ = f.read().split()
    except OSError:
        return time.process_time(), 0.0
    return int(ran) / 1e9, int(waited) / 1e9


def synack_config(cc: str, no_delay: bool) -> Any:
    from synack.tcp.config import Config

    return Config(
        congestion_control=cc,
        no_delay=no_delay,
        send_buffer=sysctl_max("tcp_wmem"),
        receive_buffer=sysctl_max("tcp_rmem"),
    )


def kernel_socket(cc: str, no_delay: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, cc.encode())
    if no_delay:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    return sock


def kernel_info(sock: Any) -> dict[str, Any]:
    """The few TCP_INFO fields the table uses (struct tcp_info in linux/tcp.h)."""
    raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 248)
    cc = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16)
    info = {
        "congestion_control": cc.split(b"\0")[0].decode(),
        "payload_mss": struct.unpack_from("I", raw, 16)[0],  # tcpi_snd_mss
        "srtt": struct.unpack_from("I", raw, 68)[0] / 1e6,  # tcpi_rtt, µs
        "retransmits": struct.unpack_from("I", raw, 100)[0],  # tcpi_total_retrans
    }
    if len(raw) >= 244:  # Linux 6.7 and later
        info["timeouts"] = struct.unpack_from("H", raw, 240)[0]  # tcpi_total_rto
        info["rto_recoveries"] = struct.unpack_from("H", raw, 242)[0]
    return info


def synack_info(writer: asyncio.StreamWriter) -> dict[str, Any]:
    info = writer.transport.connection.info()  # type: ignore[attr-defined]
    out = {"congestion_control": info["congestion_control"], "srtt": info["srtt"]}
    out["payload_mss"] = info["snd_mss"]  # already less the options of every segment
    for key in (
        "retransmits",
        "timeouts",
        "loss_probes",
        "fast_retransmits",
        "spurious_rtos",
        "segments_sent",
        "segments_received",
    ):
        if key in info:
            out[key] = info[key]
    return out


async def connect(stack: str, cc: str, host: str, port: int, no_delay: bool) -> Any:
    if stack == "kernel":
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + 10  # the server may still be starting
        while True:
            sock = kernel_socket(cc, no_delay)
            try:
                await loop.sock_connect(sock, (host, port))
                break
            except OSError:
                sock.close()
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)
        return await asyncio.open_connection(sock=sock, limit=1 << 20)
    from synack import asyncio as synack_asyncio

    return await synack_asyncio.open_connection(
        host, port, limit=1 << 20, config=synack_config(cc, no_delay)
    )


async def listen(stack: str, cc: str, host: str, handler: Any, no_delay: bool) -> Any:
    """A server; returns (server, port)."""
    if stack == "kernel":
        sock = kernel_socket(cc, no_delay)  # accepted sockets inherit both options
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, KERNEL_PORT))
        sock.listen(8)
        server: Any = await asyncio.start_server(handler, sock=sock, limit=1 << 20)
        return server, KERNEL_PORT
    from synack import asyncio as synack_asyncio

    server = await synack_asyncio.start_server(
        handler, host, 0, limit=1 << 20, config=synack_config(cc, no_delay)
    )
    return server, server.addresses[0][1]


def info_of(stack: str, writer: asyncio.StreamWriter) -> dict[str, Any]:
    return (
        kernel_info(writer.get_extra_info("socket")) if stack == "kernel" else synack_info(writer)
    )


async def serve(args: argparse.Namespace) -> dict[str, Any]:
    """One connection: count bulk bytes for `seconds` from the first, or echo requests."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[dict[str, Any]] = loop.create_future()

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        total = len(await reader.read(1 << 20))
        start, (cpu, wait) = time.monotonic(), cpu_and_wait()
        try:
            async with asyncio.timeout_at(loop.time() + args.seconds):
                while data := await reader.read(1 << 20):
                    total += len(data)
        except TimeoutError:
            pass
        elapsed = time.monotonic() - start
        ran, waited = cpu_and_wait()
        result = {"bytes": total, "elapsed": elapsed, "cpu": ran - cpu, "wait": waited - wait}
        result["info"] = info_of(args.stack, writer)
        if args.stack == "synack":
            result["counts"] = carrier_counts(writer)
        writer.transport.abort()  # the client stops on the reset
        done.set_result(result)

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        cpu = time.process_time()
        try:
            while True:
                writer.write(await reader.readexactly(REQUEST))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        result = {"cpu": time.process_time() - cpu, "info": info_of(args.stack, writer)}
        writer.close()
        done.set_result(result)

    handler = sink if args.test == "bulk" else echo
    server, port = await listen(args.stack, args.cc, args.host, handler, args.test == "rr")
    print(f"ready {port}", flush=True)
    try:
        return await done
    finally:
        server.close()


async def bulk_client(args: argparse.Namespace) -> dict[str, Any]:
    _reader, writer = await connect(args.stack, args.cc, args.host, args.port, False)
    # A second descriptor of the kernel's socket: TCP_INFO after the server's reset,
    # when asyncio has closed its own.
    kept = None
    if args.stack == "kernel":
        kept = socket.socket(fileno=os.dup(writer.get_extra_info("socket").fileno()))
    block = os.urandom(4 * 1024 * 1024)  # random bytes: checksums do real work
    view = memoryview(block)
    sent = 0
    cpu, wait = cpu_and_wait()
    try:
        async with asyncio.timeout(args.seconds + GRACE):
            while True:
                offset = sent % len(block)
                writer.write(view[offset : offset + CHUNK])
                sent += len(view[offset : offset + CHUNK])
                await writer.drain()
    except (ConnectionError, TimeoutError):
        pass
    if kept is not None:
        info = kernel_info(kept)
        kept.close()
    else:
        info = synack_info(writer)
        info["counts"] = carrier_counts(writer)
    writer.transport.abort()
    ran, waited = cpu_and_wait()
    return {"sent": sent, "cpu": ran - cpu, "wait": waited - wait, "info": info}


async def rr_client(args: argparse.Namespace) -> dict[str, Any]:
    reader, writer = await connect(args.stack, args.cc, args.host, args.port, True)
    times: list[float] = []
    cpu = time.process_time()
    try:
        async with asyncio.timeout(args.exchanges * 0.5 + GRACE):
            for _ in range(args.exchanges):
                request = os.urandom(REQUEST)
                start = time.perf_counter()
                writer.write(request)
                answer = await reader.readexactly(REQUEST)
                times.append(time.perf_counter() - start)
                if answer != request:
                    raise AssertionError("the echo came back different")
    except TimeoutError:
        pass  # reported: fewer exchanges than asked for
    result = {"times": times, "cpu": time.process_time() - cpu, "info": info_of(args.stack, writer)}
    writer.close()
    return result


COUNTED: Counter[str] = Counter()


def count_calls() -> None:
    """SIDE_BY_SIDE_COUNT=1: count, in this endpoint, the loop's iterations, the engine's
    socket reads and timer firings, the pacing timer, and the ACKs with SACK blocks the
    sender took with the blocks in them (a wrapper per call: well under a µs each)."""
    from synack.drivers.aio import LoopEngine
    from synack.tcp.connection import Connection
    from synack.tcp.recovery import Recovery

    def wrap(cls: Any, name: str, key: str, blocks: bool = False) -> None:
        original = getattr(cls, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            COUNTED[key] += 1
            if blocks:
                COUNTED["sack_blocks"] += len(args[1])
            return original(*args, **kwargs)

        setattr(cls, name, counted)

    wrap(asyncio.base_events.BaseEventLoop, "_run_once", "loop_iterations")
    wrap(LoopEngine, "_readable", "readable_passes")
    wrap(LoopEngine, "_fire", "timer_firings")
    wrap(Connection, "_pacing_timer", "pacing_timer")
    wrap(Recovery, "on_sack", "acks_with_sack", blocks=True)


def carrier_counts(writer: Any) -> dict[str, int]:
    """The UDP carrier's calls and datagrams (its `CarrierStats`) and COUNTED."""
    stats = writer.transport._engine.engine.carrier.stats
    out = {
        k: getattr(stats, k)
        for k in ("send_calls", "datagrams_sent", "recv_calls", "datagrams_received")
    }
    return {**out, **COUNTED}


def endpoint_main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="side_by_side.py endpoint")
    p.add_argument("--stack", choices=STACKS, required=True)
    p.add_argument("--cc", choices=CCS, required=True)
    p.add_argument("--test", choices=("bulk", "rr"), required=True)
    p.add_argument("--role", choices=("server", "client"), required=True)
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--exchanges", type=int, default=100)
    args = p.parse_args(argv)
    if args.stack == "synack" and os.environ.get("SIDE_BY_SIDE_COUNT"):
        count_calls()
    if args.role == "server":
        body = serve(args)
    else:
        body = bulk_client(args) if args.test == "bulk" else rr_client(args)
    limit = args.seconds + args.exchanges * 0.5 + 2 * GRACE

    async def bounded() -> dict[str, Any]:
        async with asyncio.timeout(limit):
            return await body

    profile_dir = os.environ.get("SIDE_BY_SIDE_PROFILE")
    if not profile_dir:
        print(json.dumps(asyncio.run(bounded())), flush=True)
        return
    import cProfile  # where an endpoint's CPU goes: one file per endpoint

    profiler = cProfile.Profile(time.process_time)  # CPU time: the machine is shared
    result = profiler.runcall(asyncio.run, bounded())
    stem = f"{args.stack}-{args.cc}-{args.test}-{args.role}-{os.getpid()}"
    profiler.dump_stats(os.path.join(profile_dir, stem + ".prof"))
    print(json.dumps(result), flush=True)


# ---------------------------------------------------------------------- the runs


@dataclass
class Case:
    stack: str
    cc: str
    loss: float  # each way; the capacity pass has 0 and no delay
    capacity: bool = False
    goodput: list[float] = field(default_factory=list)  # bytes/s, one per round
    times: list[float] = field(default_factory=list)  # rr, every round pooled
    p99s: list[float] = field(default_factory=list)  # rr, one per round
    asked: int = 0  # rr exchanges asked for, every round
    cpu: dict[str, list[float]] = field(default_factory=dict)  # share of one vCPU
    drops: list[tuple[int, int]] = field(default_factory=list)  # (dropped, received)
    info: dict[str, Any] = field(default_factory=dict)  # sender's, last bulk round
    rr_info: dict[str, Any] = field(default_factory=dict)  # client's, last rr round
    relay_cost: list[float] = field(default_factory=list)  # relay CPU seconds per packet
    # bulk, last round: each endpoint's CPU seconds, and the receiver's counts
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    receiver_counts: dict[str, int] = field(default_factory=dict)

    def add_cpu(self, name: str, seconds: float, wall: float) -> None:
        self.cpu.setdefault(name, []).append(seconds / wall if wall > 0 else 0.0)


def impairment(loss: float, rate: float | None, capacity: bool) -> Any:
    from synack.apps.netem.impair import Impairment

    if capacity:
        return Impairment()
    return Impairment(delay=DELAY, loss=loss, rate=rate)


def endpoint_cmd(role: str, case: Case, test: str, host: str, port: int, a: Any) -> list[str]:
    return [
        sys.executable, os.path.abspath(__file__), "endpoint", "--stack", case.stack,
        "--cc", case.cc, "--test", test, "--role", role, "--host", host, "--port", str(port),
        "--seconds", str(a.capacity_seconds if case.capacity else a.seconds),
        "--exchanges", str(a.exchanges),
    ]  # fmt: skip


async def start(cmd: list[str], ns: str | None) -> asyncio.subprocess.Process:
    if ns is not None:
        cmd = ["ip", "netns", "exec", ns, *cmd]
    return await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.PIPE, start_new_session=True
    )


async def last_json(proc: asyncio.subprocess.Process, limit: float) -> dict[str, Any]:
    assert proc.stdout is not None
    async with asyncio.timeout(limit):
        out = await proc.stdout.read()
        await proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"an endpoint failed (exit {proc.returncode})")
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


async def start_capture(ns: str, device: str, path: str) -> asyncio.subprocess.Process:
    """dumpcap on `device` inside `ns`, returned once it is capturing."""
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", ns, "dumpcap", "-q", "-i", device, "-w", path,
        stderr=asyncio.subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    assert proc.stderr is not None
    async with asyncio.timeout(GRACE):
        while b"Capturing" not in await proc.stderr.readline():
            if proc.returncode is not None:
                raise RuntimeError(f"dumpcap failed in {ns}")
    return proc


async def sample_ss(namespaces: list[str], path: str, every: float = 0.02) -> None:
    """`ss -tin` in each namespace every `every` seconds (the kernel's rto, rtt,
    backoff), one timestamped block per sample, until cancelled."""
    with open(path, "w") as out:
        while True:
            for ns in namespaces:
                proc = await asyncio.create_subprocess_exec(
                    "ip", "netns", "exec", ns, "ss", "-tinH", "state", "established",
                    stdout=asyncio.subprocess.PIPE,
                )  # fmt: skip
                text, _ = await proc.communicate()
                out.write(f"@ {time.time():.6f} {ns}\n{text.decode()}")
            await asyncio.sleep(every)


async def run_pair(case: Case, test: str, a: Any, log: Callable[[str], None]) -> None:
    """One bulk or rr run of `case`: relay, server and client, all stopped after."""
    from synack.apps.netem import tun
    from synack.apps.netem.relay import UdpRelay

    up = down = impairment(case.loss, a.rate, case.capacity)
    procs: list[asyncio.subprocess.Process] = []
    topology = None
    udp_relay = None
    tun_relay = None
    limit = a.seconds + a.exchanges * 0.5 + 3 * GRACE
    captures: list[asyncio.subprocess.Process] = []
    sampler = None
    stem = ""
    if a.capture:
        os.makedirs(a.capture, exist_ok=True)
        stem = os.path.join(
            a.capture, f"{case.stack}-{case.cc}-{case.loss * 100:g}-{test}-{len(case.drops)}"
        )
        if case.stack == "synack":  # each endpoint writes its own
            os.environ["SYNACK_PCAP"] = stem + "-{pid}.pcap"
            os.environ["SYNACK_TRACE_JSON"] = stem + "-{pid}.jsonl"
    try:
        if case.stack == "kernel":
            topology = tun.Topology()
            topology.setup()
            assert topology.dev_a is not None and topology.dev_b is not None
            if a.capture:
                for ns, dev, end in (
                    (topology.ns_a, topology.name_a, "client"),
                    (topology.ns_b, topology.name_b, "server"),
                ):
                    captures.append(await start_capture(ns, dev, f"{stem}-{end}.pcap"))
                sampler = asyncio.create_task(
                    sample_ss([topology.ns_a, topology.ns_b], f"{stem}-ss.txt")
                )
            tun_relay = tun.TunRelay(topology.dev_a, topology.dev_b, up, down, seed=a.seed)
            server_ns, client_ns = topology.ns_b, topology.ns_a
            host = tun.B_ADDRESS
        else:
            server_ns = client_ns = None
            host = "127.0.0.1"
        cpu, wait = cpu_and_wait()  # this process only relays while the endpoints run
        server = await start(endpoint_cmd("server", case, test, host, 0, a), server_ns)
        procs.append(server)
        assert server.stdout is not None
        async with asyncio.timeout(GRACE):
            ready = (await server.stdout.readline()).decode().split()
        if ready[:1] != ["ready"]:
            raise RuntimeError("the server did not start")
        port = int(ready[1])
        if tun_relay is not None:
            tun_relay.start()
        else:
            udp_relay = UdpRelay(("127.0.0.1", 0), (host, port), up, down, seed=a.seed)
            host, port = await udp_relay.start()
        client = await start(endpoint_cmd("client", case, test, host, port, a), client_ns)
        procs.append(client)
        got_client = await last_json(client, limit)
        got_server = await last_json(server, limit)
        if a.capture and topology is not None:  # the namespaces' TCP counters (nstat's)
            for ns, end in ((topology.ns_a, "client"), (topology.ns_b, "server")):
                with open(f"{stem}-{end}-netstat.txt", "wb") as f:
                    f.write(tun.ip("netns", "exec", ns, "cat", "/proc/net/netstat").encode())
        ran, waited = cpu_and_wait()
        relay_cpu, relay_wait = ran - cpu, waited - wait
        if tun_relay is not None:
            summary = tun_relay.stop()
        else:
            assert udp_relay is not None
            summary = await udp_relay.stop()
            udp_relay = None
    finally:
        for proc in procs + captures:
            if proc.returncode is None:
                await tun.stop_command(proc)
        if sampler is not None:
            sampler.cancel()
        os.environ.pop("SYNACK_PCAP", None)
        os.environ.pop("SYNACK_TRACE_JSON", None)
        if udp_relay is not None:
            await udp_relay.stop()
        if tun_relay is not None:
            tun_relay.stop()
        if topology is not None:
            for problem in topology.teardown():
                log(f"side_by_side: could not remove: {problem}")
    lanes = [summary.lane("up"), summary.lane("down")]
    case.drops.append(
        (sum(s.lost + s.queue_dropped + s.overflow for s in lanes), sum(s.received for s in lanes))
    )
    if test == "bulk":
        case.goodput.append(got_server["bytes"] / got_server["elapsed"])
        case.info = got_client["info"]
        case.receiver_counts = got_server.get("counts", {})
        case.cpu_seconds = {"sender": got_client["cpu"], "receiver": got_server["cpu"]}
        elapsed = got_server["elapsed"]
        case.add_cpu("relay", relay_cpu, elapsed)
        case.add_cpu("relay wait", relay_wait, elapsed)
        case.add_cpu("sender wait", got_client["wait"], elapsed)
        case.add_cpu("receiver wait", got_server["wait"], elapsed)
        case.relay_cost.append(relay_cpu / max(1, case.drops[-1][1]))
        case.add_cpu("sender", got_client["cpu"], got_server["elapsed"])
        case.add_cpu("receiver", got_server["cpu"], got_server["elapsed"])
    else:
        times = got_client["times"]
        case.times += times
        case.asked += a.exchanges
        if times:
            case.p99s.append(percentile(times, 0.99))
        case.rr_info = got_client["info"]


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def mathis(payload_mss: int, loss: float) -> float:
    return payload_mss / (2 * DELAY) * 1.22 / math.sqrt(loss)


# ---------------------------------------------------------------------- the report


def mb(values: list[float]) -> str:
    if not values:
        return "-"
    mid = statistics.median(values) / MB
    if len(values) == 1:
        return f"{mid:.2f}"
    return f"{mid:.2f} ({min(values) / MB:.2f}-{max(values) / MB:.2f})"


def pct(values: list[float]) -> str:
    return f"{statistics.median(values):.0%}" if values else "-"


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1e3:.0f}"


def table(cases: list[Case], a: Any) -> list[str]:
    lines = [
        "| loss each way | stack | CC | goodput MB/s | Mathis MB/s | of Mathis "
        "| rr median ms | rr p99 ms (rounds) | rr max ms | exchanges "
        "| CPU relay / sender / receiver (bulk) | waiting for a vCPU, same order "
        "| relay µs/packet | relay dropped |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cases:
        mss = int(c.info.get("payload_mss") or 1448)
        estimate = None if c.capacity or not c.loss else mathis(mss, c.loss)
        good = statistics.median(c.goodput) if c.goodput else None
        ratio = "-" if estimate is None or good is None else f"{good / estimate:.1f}x"
        rounds = "-".join(ms(v) for v in sorted({min(c.p99s), max(c.p99s)})) if c.p99s else "-"
        p99 = ms(percentile(c.times, 0.99)) if c.times else "-"
        dropped = sum(d for d, _ in c.drops)
        received = sum(r for _, r in c.drops)
        cpu = " / ".join(pct(c.cpu.get(k, [])) for k in ("relay", "sender", "receiver"))
        wait = " / ".join(pct(c.cpu.get(f"{k} wait", [])) for k in ("relay", "sender", "receiver"))
        loss = "none, no delay, no cap" if c.capacity else f"{c.loss:.0%}"
        lines.append(
            f"| {loss} | {c.stack} | {c.cc} | {mb(c.goodput)} "
            f"| {'-' if estimate is None else f'{estimate / MB:.2f}'} | {ratio} "
            f"| {ms(statistics.median(c.times)) if c.times else '-'} | {p99} ({rounds}) "
            f"| {ms(max(c.times)) if c.times else '-'} "
            f"| {len(c.times) if c.asked else '-'}{f' of {c.asked}' if c.asked else ''} "
            f"| {cpu} | {wait} "
            f"| {f'{statistics.median(c.relay_cost) * 1e6:.1f}' if c.relay_cost else '-'} "
            f"| {dropped / received if received else 0:.1%} of {received} |"
        )
    return lines


def verdicts(cases: list[Case]) -> list[str]:
    """The issue's targets, each with the figures it compares."""
    by = {(c.stack, c.cc, c.loss): c for c in cases if not c.capacity}
    lines = []
    for loss in sorted({c.loss for c in cases if not c.capacity}):
        for cc, share in (("cubic", 1.0), ("bbr", 0.8)):
            k, s = by.get(("kernel", cc, loss)), by.get(("synack", cc, loss))
            if k is None or s is None or not k.goodput or not s.goodput:
                continue
            kg, sg = statistics.median(k.goodput), statistics.median(s.goodput)
            met = "met" if sg >= share * kg else "NOT met"
            lines.append(
                f"- {loss:.0%}, {cc}: synack {sg / MB:.2f} MB/s vs kernel {kg / MB:.2f} MB/s "
                f"= {sg / kg:.2f}x (target >= {share:g}x): {met}"
            )
        for cc in CCS:
            k, s = by.get(("kernel", cc, loss)), by.get(("synack", cc, loss))
            if k is None or s is None or not k.times or not s.times:
                continue
            kp, sp = percentile(k.times, 0.99), percentile(s.times, 0.99)
            met = "met" if sp <= kp else "NOT met"
            lines.append(
                f"- {loss:.0%}, {cc}: rr p99 synack {ms(sp)} ms vs kernel {ms(kp)} ms "
                f"(target: at most the kernel's): {met}"
            )
    return lines


def tails(cases: list[Case]) -> str:
    """Where each stack's slow exchanges fall: the timers that repaired them."""
    lines = [
        "Slow exchanges (over 100 ms, 2.5 RTT), their times in ms (min / median / max), "
        "and the rr client's counters at the end of its last round:"
    ]
    for c in cases:
        if not c.times:
            continue
        slow = sorted(t for t in c.times if t > 0.1)
        spread = " / ".join(ms(v) for v in (slow[0], statistics.median(slow), slow[-1]))
        bins = Counter(int(t / BIN) for t in slow)
        clusters = ", ".join(
            f"{b * BIN * 1e3:.0f}-{(b + 1) * BIN * 1e3:.0f}: {n}" for b, n in sorted(bins.items())
        )
        lines.append(
            f"- {c.loss:.0%} {c.stack} {c.cc}: {len(slow)} of {len(c.times)} slow"
            f"{f' ({spread}; by {BIN * 1e3:.0f} ms: {clusters})' if slow else ''}; "
            f"{json.dumps(c.rr_info)}"
        )
    return "\n".join(lines)


def per_segment(c: Case) -> str:
    """Where each segment's cost goes, last round: the sender's per segment it sent,
    the receiver's per segment it received (the counts need SIDE_BY_SIDE_COUNT=1)."""
    info = c.info
    sent = max(1, info["segments_sent"])
    acks = info["segments_received"]
    parts = [
        f"sender CPU {c.cpu_seconds.get('sender', 0.0) / sent * 1e6:.1f} µs/segment",
        f"ACKs/segment {acks / sent:.3f}",
    ]
    counts = info.get("counts", {})
    if counts.get("send_calls"):
        parts.append(f"segments/send call {counts['datagrams_sent'] / counts['send_calls']:.1f}")
    if counts.get("recv_calls"):
        parts.append(f"ACKs/read {counts['datagrams_received'] / counts['recv_calls']:.1f}")
    for key in ("loop_iterations", "timer_firings", "pacing_timer", "readable_passes"):
        if key in counts:
            parts.append(f"{key.replace('_', ' ')}/segment {counts[key] / sent:.3f}")
    if counts.get("acks_with_sack"):
        parts.append(f"SACK blocks/ACK {counts['sack_blocks'] / counts['acks_with_sack']:.2f}")
    rc = c.receiver_counts
    if rc.get("datagrams_received"):
        got = rc["datagrams_received"]
        parts.append(
            f"receiver CPU {c.cpu_seconds.get('receiver', 0.0) / got * 1e6:.1f} µs/segment, "
            f"segments/read {got / max(1, rc['recv_calls']):.1f}, "
            f"ACK datagrams/send call {rc['datagrams_sent'] / max(1, rc['send_calls']):.1f}"
        )
        if "loop_iterations" in rc:
            parts.append(f"receiver loop iterations/segment {rc['loop_iterations'] / got:.3f}")
    return f"per segment, {c.loss:.0%} {c.stack} {c.cc}: " + "; ".join(parts)


# ---------------------------------------------------------------------- main


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--losses", default="1,5", help="loss percentages each way (default 1,5)")
    p.add_argument("--rate", default="40MB/s", help="the relay's rate cap each way (40MB/s)")
    p.add_argument("--seconds", type=float, default=15, help="bulk seconds (15)")
    p.add_argument("--exchanges", type=int, default=600, help="rr exchanges (600)")
    p.add_argument("--rounds", type=int, default=1, help="rounds over every case (1)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--seeds",
        help="comma-separated seeds, each round run once per seed (overrides --seed): "
        "the medians are then over seeds too, as one seed's cell moves a lot",
    )
    p.add_argument("--stacks", default=",".join(STACKS))
    p.add_argument("--ccs", default=",".join(CCS))
    p.add_argument("--no-rr", action="store_true", help="bulk only")
    p.add_argument("--no-bulk", action="store_true", help="request/response only")
    p.add_argument("--capacity-seconds", type=float, default=5, help="0: no capacity pass")
    p.add_argument(
        "--capture",
        metavar="DIR",
        help="write pcaps of every run into DIR: the kernel's from dumpcap on both TUN "
        "devices (and `ss -tin` samples), ours from SYNACK_PCAP and SYNACK_TRACE_JSON",
    )
    a = p.parse_args(argv)
    a.seed_list = [int(x) for x in a.seeds.split(",")] if a.seeds else [a.seed]
    return a


async def run_all(a: argparse.Namespace, log: Callable[[str], None]) -> list[Case]:
    from synack.apps.netem import tun

    stacks = a.stacks.split(",")
    if "kernel" in stacks:
        tun.check_can_run()
        tun.remove_stale(log)
    cases: list[Case] = []
    if a.capacity_seconds > 0:
        cases += [Case(stack, "cubic", 0.0, capacity=True) for stack in stacks]
    for loss in a.losses:
        for cc in a.ccs.split(","):
            cases += [Case(stack, cc, loss) for stack in stacks]
    for round_ in range(a.rounds):
        for seed in a.seed_list:
            a.seed = seed  # what run_pair's relays take
            for case in cases:
                tests = [
                    test
                    for test, off in (("bulk", a.no_bulk and not case.capacity), ("rr", a.no_rr))
                    if not off and not (test == "rr" and case.capacity)
                ]
                for test in tests:
                    log(
                        f"round {round_ + 1}, seed {seed}: {case.stack} {case.cc} "
                        f"{case.loss:.0%} {test}"
                    )
                    await run_pair(case, test, a, log)
    return cases


def main(argv: list[str]) -> None:
    if argv[:1] == ["endpoint"]:
        endpoint_main(argv[1:])
        return
    from synack.apps.netem.units import format_rate, parse_rate

    a = parse_args(argv)
    a.losses = [float(x) / 100 for x in a.losses.split(",")]
    a.rate = parse_rate("--rate", a.rate)

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    def stop(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")  # unwinds through every finally

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)
    cases = asyncio.run(run_all(a, log))
    print(
        f"{DELAY * 2e3:.0f} ms RTT ({DELAY * 1e3:.0f} ms each way), rate cap "
        f"{format_rate(a.rate)} each way (queue 1000 packets), "
        f"seed{'s' if len(a.seed_list) > 1 else ''} {','.join(map(str, a.seed_list))}, "
        f"bulk {a.seconds:g} s, {a.exchanges} exchanges of 1 KiB, {a.rounds} round(s); "
        f"capacity pass {a.capacity_seconds:g} s; buffers: tcp_wmem max "
        f"{sysctl_max('tcp_wmem')}, tcp_rmem max {sysctl_max('tcp_rmem')}"
    )
    print()
    print("\n".join(table(cases, a)))
    print()
    print("\n".join(verdicts(cases)))
    print()
    print(tails(cases))
    for c in cases:
        if c.goodput and not c.capacity:
            rounds = " ".join(f"{g / MB:.3f}" for g in c.goodput)
            print(
                f"bulk, {c.loss:.0%} {c.stack} {c.cc}: MB/s by run {rounds}; "
                f"the sender's counters, last round: {json.dumps(c.info)}"
            )
    for c in cases:
        if c.goodput and c.stack == "synack" and "segments_sent" in c.info:
            print(per_segment(c))
    for c in cases:
        if c.capacity and c.relay_cost:
            cost = statistics.median(c.relay_cost)
            print(
                f"capacity, {c.stack}'s relay: {cost * 1e6:.1f} µs of CPU per packet, "
                f"so at most {1 / cost:,.0f} packets/s on one vCPU "
                f"({1500 / cost / MB:.0f} MB/s if every packet were 1500 bytes)"
            )


if __name__ == "__main__":
    main(sys.argv[1:])
