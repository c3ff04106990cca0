"""Our TCP on asyncio over real loopback UDP: what the contract suite does not cover.

(`tests/transport/test_contract.py` already runs echo, half-close, EOF, reset,
refusal, backpressure, bulk reads, sendfile, close-while-writing and TLS against
the ``synack`` transport.) Here: both carrier paths and MTUs, garbage at a
listening port, a peer that vanishes, many connections at once, and what a
process that exits does to its connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import hashlib
import os
import socket
import subprocess
import sys
import textwrap
import warnings
import weakref
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bounded import run
from synack.drivers import aio
from synack.drivers.engine import Engine
from synack.drivers.udp import LOOPBACK_MTU, CarrierConfig, UdpCarrier
from synack.tcp import Config, Host

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1 << 20):
        writer.write(data)
        await writer.drain()
    writer.close()


async def round_trip(
    carrier: CarrierConfig, size: int, handler: Handler = echo
) -> tuple[bytes, bytes, aio.SynackServer]:
    server = await aio.start_server(handler, "127.0.0.1", 0, carrier=carrier)
    host, port = server.addresses[0]
    reader, writer = await aio.open_connection(host, port, carrier=carrier)
    payload = os.urandom(size)

    async def send() -> None:
        writer.write(payload)
        await writer.drain()
        writer.write_eof()

    sender = asyncio.create_task(send())
    got = await reader.read(-1)
    await sender
    writer.close()
    await writer.wait_closed()
    return payload, got, server


@pytest.mark.parametrize(
    "carrier",
    [
        pytest.param(CarrierConfig(), id="mtu1500-offload"),
        pytest.param(CarrierConfig(gso=False, gro=False), id="mtu1500-fallback"),
        pytest.param(CarrierConfig(mtu=LOOPBACK_MTU), id="loopback-offload"),
        pytest.param(CarrierConfig(mtu=LOOPBACK_MTU, gso=False, gro=False), id="loopback-fallback"),
        pytest.param(CarrierConfig(integrity="tcp"), id="mtu1500-tcp-checksum"),
    ],
)
@run
async def test_a_stream_crosses_both_ways_exactly_on_every_carrier_path(
    carrier: CarrierConfig,
) -> None:
    payload, got, server = await round_trip(carrier, 3_000_000)
    assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()
    engine = server.engine.engine
    stats = engine.carrier.stats
    if carrier.gso is False:
        assert stats.send_calls == stats.datagrams_sent  # one datagram per call, forced
    elif engine.carrier.gso and carrier.mtu != LOOPBACK_MTU:
        assert stats.send_calls < stats.datagrams_sent  # bursts went out batched
    # With the loopback MTU each data segment fills a call, and only the ACKs one read
    # owes (RFC 5681 §4.2) may share one, when a read brings more than two segments.
    server.close()


@pytest.mark.parametrize("integrity", ["crc32", "tcp"])
@run
async def test_large_segments_go_out_gathered_and_arrive_whole(
    integrity: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the loopback MTU the engine takes full segments as header and payload view
    (Config.gather_from) and sends them with the trailer as one datagram's buffers."""
    gathered = 0
    original = Host.segments_to_send_gathered

    def counting(self: Host, now: float) -> Any:
        nonlocal gathered
        out = original(self, now)
        gathered += sum(isinstance(seg, tuple) for seg, _src, _dst in out)
        return out

    monkeypatch.setattr(Host, "segments_to_send_gathered", counting)
    carrier = CarrierConfig(mtu=LOOPBACK_MTU, integrity=integrity)
    payload, got, server = await round_trip(carrier, 3_000_000)
    assert got == payload
    # 3 MB each way (an echo) is 46 full segments of 65,471 or 65,475 bytes each way.
    assert gathered >= 2 * 45, gathered
    server.close()


@pytest.mark.parametrize("gro", [None, False], ids=["gro", "no-gro"])
@run
async def test_the_datagrams_of_one_read_reach_the_host_in_one_call(
    gro: bool | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine hands the host what one receive pass brought from one address as one
    batch (Host.handle_segments), whether GRO coalesced it or not; every datagram goes
    through a batch, and the stream still arrives exactly."""
    runs: list[int] = []
    original = Host.handle_segments

    def counting(self: Host, segments: Any, src: Any, now: float) -> None:
        runs.append(len(segments))
        original(self, segments, src, now)

    monkeypatch.setattr(Host, "handle_segments", counting)
    carrier = CarrierConfig(gro=gro)
    payload, got, server = await round_trip(carrier, 3_000_000)
    assert got == payload
    assert max(runs) > 8, runs  # bursts were batched
    # Both ends' engines fed batches; the server's datagrams are among them.
    assert 0 < server.engine.engine.carrier.stats.datagrams_received <= sum(runs)
    server.close()


class TurnCounting(asyncio.Protocol):
    """Notes each delivery's size and loop iteration: a marker callback scheduled at
    an iteration's first delivery runs before anything of the next iteration's."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.sizes: list[int] = []
        self.turns: list[int] = []
        self.turn_of: list[int] = []  # the loop iteration (turn) of each delivery
        self.eof_at = -1
        self.done = asyncio.get_running_loop().create_future()
        self._turn_open = False

    def _turn_over(self) -> None:
        self._turn_open = False

    def data_received(self, data: bytes) -> None:
        if not self._turn_open:
            self._turn_open = True
            self.turns.append(0)
            asyncio.get_running_loop().call_soon(self._turn_over)
        self.turns[-1] += len(data)
        self.sizes.append(len(data))
        self.turn_of.append(len(self.turns))
        self.data += data

    def eof_received(self) -> bool:
        self.eof_at = len(self.data)
        self.done.set_result(None)
        return False


@run
async def test_a_large_receive_pass_is_handed_on_in_pieces_the_rest_a_loop_turn_later() -> None:
    """A receive pass may bring a megabyte; a protocol gets at most DELIVER_MAX bytes
    per call (as from asyncio's own transports), what is left on a later loop
    iteration, in order, and the end of the stream after the last byte."""
    carrier = CarrierConfig(mtu=LOOPBACK_MTU)  # 64 KiB datagrams: passes of many KiB
    accepted: asyncio.Future[TurnCounting] = asyncio.get_running_loop().create_future()

    def factory() -> TurnCounting:
        accepted.set_result(TurnCounting())
        return accepted.result()

    server = await aio.create_server(factory, "127.0.0.1", 0, carrier=carrier)
    _, writer = await aio.open_connection(*server.addresses[0], carrier=carrier)
    payload = os.urandom(8_000_000)
    writer.write(payload)
    writer.write_eof()
    await writer.drain()
    got = await accepted
    await got.done
    assert got.data == payload
    assert got.eof_at == len(payload)
    assert max(got.sizes) == aio.DELIVER_MAX  # some pass brought more, and was cut
    cut = [i for i, size in enumerate(got.sizes[:-1]) if size == aio.DELIVER_MAX]
    assert all(got.turn_of[i + 1] > got.turn_of[i] for i in cut)  # the rest came later
    writer.close()
    await writer.wait_closed()
    server.close()


@run
async def test_a_no_delay_write_is_sent_inside_write_and_others_wait_for_the_loop() -> None:
    """With TCP_NODELAY a write goes out before ``write`` returns, as asyncio's own
    transports send; without it, one loop turn's writes wait for the loop to send them
    together."""
    server = await aio.start_server(echo, "127.0.0.1", 0)
    reader, writer = await aio.open_connection(*server.addresses[0])
    transport = writer.transport
    stats = transport._engine.engine.carrier.stats  # type: ignore[attr-defined]
    transport.set_no_delay(True)  # type: ignore[attr-defined]
    before = stats.datagrams_sent
    writer.write(b"n" * 100)
    assert stats.datagrams_sent == before + 1
    assert await reader.readexactly(100) == b"n" * 100
    transport.set_no_delay(False)  # type: ignore[attr-defined]
    before = stats.datagrams_sent
    writer.write(b"a" * 10)
    writer.write(b"b" * 10)
    assert stats.datagrams_sent == before  # nothing yet: the loop's turn sends them
    assert await reader.readexactly(20) == b"a" * 10 + b"b" * 10
    writer.close()
    await writer.wait_closed()
    server.close()


@run
async def test_the_mss_follows_the_carriers_mtu() -> None:
    cases = (
        (CarrierConfig(), 1452 - 4),  # the CRC-32 trailer takes 4 bytes of each datagram
        (CarrierConfig(integrity="tcp"), 1452),
        (CarrierConfig(mtu=LOOPBACK_MTU), 65487 - 4),
    )
    for carrier, mss in cases:
        server = await aio.start_server(echo, "127.0.0.1", 0, carrier=carrier)
        _reader, writer = await aio.open_connection(*server.addresses[0], carrier=carrier)
        conn = writer.transport.connection  # type: ignore[attr-defined]
        timestamps = 12  # every segment carries them (RFC 7323)
        assert conn.info()["snd_mss"] == mss - timestamps
        writer.close()
        await writer.wait_closed()
        server.close()


@run
async def test_garbage_at_a_listening_port_is_counted_and_changes_nothing() -> None:
    server = await aio.start_server(echo, "127.0.0.1", 0)
    host, port = server.addresses[0]
    reader, writer = await aio.open_connection(host, port)
    writer.write(b"before")
    assert await reader.readexactly(6) == b"before"
    engine = server.engine.engine
    bad_before = engine.host.stats["bad_segment"]
    junk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    junk.bind(("127.0.0.1", 0))
    jport = junk.getsockname()[1]
    wrong_ports = (port + 1).to_bytes(2, "big") + port.to_bytes(2, "big") + os.urandom(40)
    header = jport.to_bytes(2, "big") + port.to_bytes(2, "big")
    bad_offset = header + bytes(8) + b"\xf0" + bytes(7)
    bad_offset += zlib.crc32(bad_offset).to_bytes(4, "big")  # carried intact: the core judges it
    bad_crc = header + os.urandom(36)  # a segment altered on the way: its CRC-32 fails
    datagrams = [b"", b"x", os.urandom(19), wrong_ports, bad_offset, bad_crc]
    for datagram in datagrams:
        junk.sendto(datagram, (host, port))
    junk.close()
    # Loopback queues each datagram on the server's socket as it is sent, so the junk is
    # read before the segment that carries "after": once that is echoed, all was seen.
    writer.write(b"after")
    assert await reader.readexactly(5) == b"after"
    assert engine.garbage == 3  # too short for a TCP header and its CRC-32
    assert engine.host.stats["bad_segment"] - bad_before == 1  # a header longer than itself
    assert engine.corrupt == 2  # random bytes: their last four are not their CRC-32
    client_port = writer.get_extra_info("sockname")[1]
    assert list(engine.host.connections) == [(port, socket.inet_aton(host), client_port)]
    writer.write(b"still")
    assert await reader.readexactly(5) == b"still"
    writer.close()
    await writer.wait_closed()
    server.close()


def black_hole(server: aio.SynackServer) -> socket.socket:
    """Silence the server without a word: its engine goes, and a UDP socket that never
    reads holds its port, so nothing answers (no FIN, no RST, no ICMP), as with a host
    switched off or a firewall that drops."""
    address = server.addresses[0]
    server.engine.close()
    hole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    hole.bind(address)
    return hole


@run
async def test_a_peer_that_vanishes_is_detected_by_the_retransmission_limit() -> None:
    quick = Config(rto_initial=0.05, rto_min=0.05, max_retransmits=3)
    server = await aio.start_server(echo, "127.0.0.1", 0, config=quick)
    reader, writer = await aio.open_connection(*server.addresses[0], config=quick)
    writer.write(b"ping")
    assert await reader.readexactly(4) == b"ping"
    with black_hole(server):
        writer.write(b"anyone there?")
        with pytest.raises(TimeoutError) as caught:
            await reader.read(100)
    assert caught.value.errno == errno.ETIMEDOUT
    writer.close()


@run
async def test_an_idle_peer_that_vanishes_is_detected_by_keepalive() -> None:
    keepalive = Config(
        keepalive=True, keepalive_idle=0.1, keepalive_interval=0.05, keepalive_count=2
    )
    server = await aio.start_server(echo, "127.0.0.1", 0, config=keepalive)
    reader, writer = await aio.open_connection(*server.addresses[0], config=keepalive)
    writer.write(b"ping")
    assert await reader.readexactly(4) == b"ping"
    with black_hole(server), pytest.raises(TimeoutError) as caught:
        await reader.read(100)  # nothing was sent: only keepalive can notice
    assert caught.value.errno == errno.ETIMEDOUT


@run
async def test_a_peer_whose_port_closed_is_found_within_an_rto_or_two_not_minutes() -> None:
    """No process holds the peer's port: our next segment draws an ICMP port-unreachable,
    the probe one RTO later another, and the connection is reset as the RST of the
    peer's kernel would reset it (docs/PROTOCOL.md §5.4). With the default timers, where
    the retransmission limit alone would take about 15 minutes."""
    server = await aio.start_server(echo, "127.0.0.1", 0)
    reader, writer = await aio.open_connection(*server.addresses[0])
    writer.write(b"ping")
    assert await reader.readexactly(4) == b"ping"
    server.engine.close()  # its process is gone: the port is closed
    started = asyncio.get_running_loop().time()
    writer.write(b"anyone there?")
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(100), 10)
    assert asyncio.get_running_loop().time() - started < 3.0
    conn = writer.transport.connection  # type: ignore[attr-defined]
    assert conn.counters["port_unreachable"] >= 2
    writer.close()


@run
async def test_many_connections_at_once_each_get_their_own_bytes() -> None:
    server = await aio.start_server(echo, "127.0.0.1", 0)
    host, port = server.addresses[0]

    async def client(i: int) -> bool:
        reader, writer = await aio.open_connection(host, port)
        payload = os.urandom(20_000 + i)
        writer.write(payload)
        writer.write_eof()
        got = await reader.read(-1)
        writer.close()
        await writer.wait_closed()
        return got == payload

    results = await asyncio.gather(*(client(i) for i in range(100)))
    assert all(results)
    server.close()


@run
async def test_a_server_restarts_on_its_port_while_the_old_ones_connections_close() -> None:
    """As SO_REUSEADDR lets a kernel listener restart beside its TIME-WAIT connections, a
    new server listens on the UDP socket that still carries the old server's connections."""
    first = await aio.start_server(echo, "127.0.0.1", 0)
    host, port = first.addresses[0]
    old_reader, old_writer = await aio.open_connection(host, port)
    old_writer.write(b"old")
    assert await old_reader.readexactly(3) == b"old"
    first.close()
    await first.wait_closed()
    second = await aio.start_server(echo, host, port)  # was: EADDRINUSE
    assert second.addresses == [(host, port)]
    with pytest.raises(OSError) as caught:
        await aio.start_server(echo, host, port)  # but one listener per port, as before
    assert caught.value.errno == errno.EADDRINUSE
    reader, writer = await aio.open_connection(host, port)
    writer.write(b"new")
    assert await reader.readexactly(3) == b"new"
    old_writer.write(b"still")  # the old server's connection is carried on
    assert await old_reader.readexactly(5) == b"still"
    for w in (writer, old_writer):
        w.close()
        await w.wait_closed()
    second.close()


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


@run
async def test_a_client_connection_costs_memory_for_what_it_receives_not_its_whole_area() -> None:
    """Each client connection has its own UDP socket and receive area (1 MiB by default);
    a chat client that receives a few hundred bytes must not make all of it resident
    (it did: 4,000 bench clients held 3.4 GB)."""
    server = await aio.start_server(echo, "127.0.0.1", 0)
    host, port = server.addresses[0]
    before = _rss_kib()
    streams = [await aio.open_connection(host, port) for _ in range(40)]
    for reader, writer in streams:
        writer.write(b"hello")
        assert await reader.readexactly(5) == b"hello"
    per = (_rss_kib() - before) / len(streams)
    assert per < 256, f"{per:.0f} KiB resident per client connection"
    for _, writer in streams:
        writer.close()
        await writer.wait_closed()
    server.close()


def test_a_loop_that_ends_with_a_connection_in_time_wait_leaves_no_socket_open() -> None:
    """The side that closes first holds TIME-WAIT, which only its engine's UDP socket
    answers for. A program that closed every stream and let asyncio.run end has nothing
    left to close (as with the kernel's TCP), so no "unclosed socket" ResourceWarning
    may come when the engine is collected."""
    states = []

    async def main() -> None:
        server = await aio.start_server(echo, "127.0.0.1", 0)
        reader, writer = await aio.open_connection(*server.addresses[0])
        writer.write(b"x")
        assert await reader.readexactly(1) == b"x"
        writer.write_eof()
        assert await reader.read() == b""  # the server's FIN after ours: we hold TIME-WAIT
        writer.close()
        await writer.wait_closed()
        states.append(writer.transport.connection.state)  # type: ignore[attr-defined]
        server.close()
        await server.wait_closed()

    gc.collect()  # what earlier tests left, collected outside the watch
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(asyncio.wait_for(main(), 10))
        gc.collect()
    assert [str(state) for state in states] == ["TIME-WAIT"]
    unclosed = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert not [m for m in unclosed if "socket" in m], unclosed


def test_an_engine_closed_at_exit_closes_its_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    """At exit, weakref's own atexit hook (registered after ours, so run before it)
    makes every finalizer a no-op; the exit linger's close() must still close the
    socket (it did not: 160 UDP sockets of a test run's lingering engines were left
    to the interpreter's teardown, each with a ResourceWarning)."""
    carrier = UdpCarrier.bound("127.0.0.1", 0)
    engine = Engine(carrier, Host("127.0.0.1"))
    monkeypatch.setattr(weakref.finalize, "_shutdown", True)  # as after weakref's hook
    engine.close()
    assert carrier.fileno() == -1


CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from synack.drivers import aio

    async def main(port, size, mode):
        reader, writer = await aio.open_connection("127.0.0.1", port)
        if mode == "unread":
            writer.transport.pause_reading()  # what arrives now stays in TCP's buffer
            writer.write(b"go")
            conn = writer.transport.connection
            async with asyncio.timeout(5):
                while conn.receive_available < size:
                    await asyncio.sleep(0.005)
        else:
            writer.write(bytes(range(256)) * (size // 256))
        # and return without closing anything: the process just ends

    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]))
    """
)


def exiting_child(port: int, size: int, mode: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", CHILD, str(port), str(size), mode])


@run
async def test_a_process_that_exits_closes_its_connections_with_fin_after_its_data() -> None:
    got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def collect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got.set_result(await reader.read(-1))  # to the child's FIN
        writer.close()

    server = await aio.start_server(collect, "127.0.0.1", 0)
    size = 4_000_000  # more than the connection sends before the child's main returns
    child = await asyncio.to_thread(exiting_child, server.addresses[0][1], size, "write")
    data = await got
    assert data == bytes(range(256)) * (size // 256)
    assert await asyncio.to_thread(child.wait, 10) == 0
    server.close()


@run
async def test_a_process_that_exits_with_unread_data_resets_its_connections() -> None:
    outcome: asyncio.Future[BaseException | bytes] = asyncio.get_running_loop().create_future()

    async def talk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert await reader.readexactly(2) == b"go"
        writer.write(b"unread")  # the child has paused reading: these stay unread
        try:
            outcome.set_result(await reader.read(-1))
        except ConnectionResetError as exc:
            outcome.set_result(exc)

    server = await aio.start_server(talk, "127.0.0.1", 0)
    child = await asyncio.to_thread(exiting_child, server.addresses[0][1], 6, "unread")
    result = await outcome
    assert isinstance(result, ConnectionResetError), result
    assert await asyncio.to_thread(child.wait, 10) == 0
    server.close()


@run
async def test_a_finished_client_releases_its_udp_socket_after_closing() -> None:
    """The server closes first (so TIME-WAIT is its own); once the client has read to
    the end and closed, its last ACK in, the client's engine closes its UDP socket."""

    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"bye")
        writer.close()

    server = await aio.start_server(greet, "127.0.0.1", 0)
    reader, writer = await aio.open_connection(*server.addresses[0])
    engine = writer.transport._engine  # type: ignore[attr-defined]
    released = asyncio.get_running_loop().create_future()
    close = engine.close

    def closing() -> None:
        close()
        if not released.done():
            released.set_result(None)

    engine.close = closing  # the engine closes itself when idle: note when
    assert await reader.read() == b"bye"
    writer.close()
    await writer.wait_closed()
    await asyncio.wait_for(released, 5)
    assert engine.closed
    assert engine.host.connections == {}
    server.close()


@pytest.mark.parametrize("integrity", ["crc32", "tcp"])
@run
async def test_through_synack_netem_a_stream_arrives_whole_and_corruption_never_reaches_it(
    integrity: str,
) -> None:
    """The relay gives each client its own upstream port, as a NAT does, so the UDP
    ports differ from those the peers wrote into their TCP headers (PROTOCOL.md §5.1);
    it also loses, reorders, duplicates and corrupts. Issue 13's small CI version."""
    from synack.apps.netem.impair import Impairment
    from synack.apps.netem.relay import UdpRelay

    carrier = CarrierConfig(integrity=integrity)
    quick = Config(rto_min=0.05, rto_initial=0.2)
    server = await aio.start_server(echo, "127.0.0.1", 0, carrier=carrier, config=quick)
    bad = Impairment(delay=0.002, loss=0.05, reorder=0.02, duplicate=0.02, corrupt=0.02)
    relay = UdpRelay(("127.0.0.1", 0), server.addresses[0], bad, bad, seed=7)
    host, port = await relay.start()
    reader, writer = await aio.open_connection(host, port, carrier=carrier, config=quick)
    payload = os.urandom(300_000)

    async def send() -> None:
        writer.write(payload)
        await writer.drain()
        writer.write_eof()

    sender = asyncio.create_task(send())
    got = await reader.read(-1)
    await sender
    assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()
    summary = await relay.stop()
    corrupted = summary.lane("up").corrupted + summary.lane("down").corrupted
    assert corrupted > 0, "the relay was asked to corrupt datagrams and did not"
    client_engine = writer.transport._engine.engine  # type: ignore[attr-defined]
    server_engine = server.engine.engine
    assert server_engine.translated > 0 and client_engine.translated > 0
    if integrity == "crc32":
        caught = server_engine.corrupt + client_engine.corrupt
    else:
        caught = sum(
            c.stats["bad_checksum"]
            for e in (server_engine, client_engine)
            for c in e.host.connections.values()
        )
    assert caught > 0
    writer.close()
    server.close()


def test_default_buffers_hold_a_window_of_full_segments_and_a_given_config_is_kept() -> None:
    from synack.drivers.engine import WINDOW_SEGMENTS, config_for

    loopback = CarrierConfig(mtu=LOOPBACK_MTU)
    cfg = config_for(loopback, None)
    assert cfg.receive_buffer >= WINDOW_SEGMENTS * loopback.segment_mss
    assert cfg.send_buffer == cfg.receive_buffer and not cfg.checksum
    assert config_for(CarrierConfig(), None).receive_buffer == Config().receive_buffer
    mine = Config(receive_buffer=1 << 20, send_buffer=1 << 20)
    kept = config_for(loopback, mine)  # the caller's buffers stand; only MSS and checksum
    assert (kept.receive_buffer, kept.send_buffer) == (1 << 20, 1 << 20)
    assert kept.mss == loopback.segment_mss


def test_the_carriage_gives_the_loss_probe_a_10_ms_floor_unless_the_caller_sets_one() -> None:
    # Our ACKs leave from a process the scheduler may hold: Linux's 2 ms (the core's own
    # choice, None) fired spurious probes on loopback; a caller's value stands.
    from synack.drivers.engine import PROBE_TIMEOUT_MIN, config_for

    assert PROBE_TIMEOUT_MIN == 0.010
    assert Config().probe_timeout_min is None
    assert config_for(CarrierConfig(), None).probe_timeout_min == PROBE_TIMEOUT_MIN
    mine = Config(congestion_control="bbr")
    assert config_for(CarrierConfig(), mine).probe_timeout_min == PROBE_TIMEOUT_MIN
    assert config_for(CarrierConfig(), Config(probe_timeout_min=0.0)).probe_timeout_min == 0.0
    with pytest.raises(ValueError, match="probe_timeout_min"):
        Config(probe_timeout_min=-1.0)


@run
async def test_no_delay_is_on_by_default_as_asyncio_sets_it_and_a_config_decides() -> None:
    """asyncio sets TCP_NODELAY on its own TCP sockets; our transports start with it on
    too, on both ends, unless the caller's Config says otherwise."""
    server = await aio.start_server(echo, "127.0.0.1", 0)
    _reader, writer = await aio.open_connection(*server.addresses[0])
    assert writer.transport.connection.config.no_delay  # type: ignore[attr-defined]
    assert server.engine.host.config.no_delay
    writer.close()
    await writer.wait_closed()
    _reader, writer = await aio.open_connection(*server.addresses[0], config=Config())
    assert not writer.transport.connection.config.no_delay  # type: ignore[attr-defined]
    writer.close()
    await writer.wait_closed()
    server.close()


@run
async def test_force_close_reports_its_error_even_when_unread_bytes_end_the_connection() -> None:
    """`_force_close(exc)` (asyncio's TLS layer's abort) with received bytes unread: the
    close sends RST and the connection's Closed comes at once, ahead of the queued
    connection_lost; the protocol must still hear `exc`, not None."""
    loop = asyncio.get_running_loop()

    class Paused(asyncio.Protocol):
        def __init__(self) -> None:
            self.lost: asyncio.Future[BaseException | None] = loop.create_future()

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.ReadTransport)
            transport.pause_reading()

        def connection_lost(self, exc: BaseException | None) -> None:
            self.lost.set_result(exc)

    async def send_and_wait(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"x" * 1000)
        with contextlib.suppress(ConnectionError):
            await reader.read()
        writer.close()

    server = await aio.start_server(send_and_wait, "127.0.0.1", 0)
    try:
        transport, protocol = await aio.create_connection(Paused, *server.addresses[0])
        assert isinstance(transport, aio.SynackTransport)
        while transport.connection.receive_available < 1000:
            await asyncio.sleep(0.01)  # bounded by @run
        error = ConnectionAbortedError("the TLS layer gave up")
        transport._force_close(error)
        assert isinstance(protocol, Paused)
        assert await protocol.lost is error
    finally:
        server.close()
