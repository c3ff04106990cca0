"""The contract `Host` offers its driver: a ready set, the earliest deadline, readiness events.

A driver feeds one input (``handle_segment`` or ``handle_timer``), asks ``ready()``
which endpoints have events, then calls ``segments_to_send`` and ``get_timer`` once.
These tests drive two hosts by hand, as such a driver would, with no network between
them but a list of datagrams (which a test may drop to make timers matter).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synack.tcp import (
    Closed,
    Config,
    Connected,
    Connection,
    ConnectionAvailable,
    DataAvailable,
    Datagram,
    EndOfStream,
    Endpoint,
    Host,
    Listener,
    SendSpace,
    State,
    TCPError,
)
from synack.tcp import host as host_module
from synack.testing import FakeNetwork, Link
from synack.wire.tcp import joined, parse_segment

CLIENT = "198.18.0.1"
SERVER = "198.18.0.2"
PORT = 80
CONFIG = Config(secret=b"host-contract".ljust(32, b"."))
E = TypeVar("E", Connection, Listener)


def deliver(hosts: list[Host], now: float, keep: Callable[[Datagram], bool] | None = None) -> int:
    """Carry datagrams between `hosts` until all are silent; `keep` may drop some."""
    by_address = {host.address: host for host in hosts}
    moved = 0
    while True:
        batch = [d for host in hosts for d in host.segments_to_send(now)]
        if not batch:
            return moved
        for datagram in batch:
            if keep is None or keep(datagram):
                seg, src, dst = datagram
                by_address[dst].handle_segment(seg, src, now)
                moved += 1


def opened(
    count: int, config: Config = CONFIG
) -> tuple[Host, Host, list[Connection], list[Connection]]:
    """A client and a server host joined by `count` established connections, events drained."""
    client_host, server_host = Host(CLIENT, config), Host(SERVER, config)
    server_host.listen(PORT)
    clients = [client_host.connect((SERVER, PORT), 0.0) for _ in range(count)]
    deliver([client_host, server_host], 0.0)
    servers = []
    while (conn := server_host.accept(PORT)) is not None:
        servers.append(conn)
    assert len(servers) == count
    assert all(c.state is State.ESTABLISHED for c in clients + servers)
    deliver([client_host, server_host], 0.0)
    for host in (client_host, server_host):
        for endpoint in host.ready():
            drain(endpoint)
    by_port = {s.remote_port: s for s in servers}
    return client_host, server_host, clients, [by_port[c.local_port] for c in clients]


def drain(endpoint: Connection | Listener) -> list[object]:
    events: list[object] = []
    while (event := endpoint.next_event()) is not None:
        events.append(event)
    return events


def test_a_host_is_the_endpoint_drivers_carry() -> None:
    endpoint: Endpoint = Host(CLIENT, CONFIG)  # checked by mypy; at run time, the methods
    for name in ("handle_segment", "segments_to_send", "get_timer", "handle_timer"):
        assert callable(getattr(endpoint, name))


def test_an_idle_host_reports_nothing_and_sends_nothing() -> None:
    client_host, server_host, _clients, _servers = opened(5)
    for host in (client_host, server_host):
        assert host.ready() == []
        assert host.segments_to_send(1.0) == []
        assert host.get_timer() is None


def test_an_input_touches_only_its_connection() -> None:
    client_host, server_host, clients, servers = opened(50)
    calls: list[Connection] = []
    for conn in servers:
        original = conn.segments_to_send

        def counted(now: float, conn: Connection = conn, original=original) -> list[bytes]:
            calls.append(conn)
            return original(now)

        conn.segments_to_send = counted  # type: ignore[method-assign]
    clients[7].send(b"hello")
    [(seg, src, _dst)] = client_host.segments_to_send(0.1)
    server_host.handle_segment(seg, src, 0.1)
    assert server_host.ready() == [servers[7]]
    assert drain(servers[7]) == [DataAvailable()]
    server_host.segments_to_send(0.1)
    server_host.get_timer()
    assert calls == [servers[7]], "the host looked at connections that had no work"
    assert server_host.ready() == []
    assert servers[7].receive() == b"hello"


def test_gathered_segments_are_the_same_bytes_and_only_for_who_asks() -> None:
    """With Config.gather_from, a full segment comes to `segments_to_send_gathered` as
    its header and a view of the send buffer (a driver's sendmsg sends them without a
    copy); every other caller still gets `bytes`, the very bytes the parts make."""
    data = random.Random(7).randbytes(8 * 1448 + 300)  # within the initial window
    outputs = {}
    for gathered in (False, True):
        config = replace(CONFIG, gather_from=1000)
        client_host, server_host, clients, servers = opened(1, config)
        assert clients[0].send(data) == len(data)
        if gathered:
            out = client_host.segments_to_send_gathered(0.5)
            kinds = [type(seg) for seg, _src, _dst in out]
            assert kinds == [tuple] * 8 + [bytes]  # the full segments; the short one not
            header, payload = out[0][0]
            assert isinstance(header, bytes) and isinstance(payload, memoryview)
            outputs[gathered] = [(joined(seg), src, dst) for seg, src, dst in out]
        else:
            outputs[gathered] = client_host.segments_to_send(0.5)
            assert all(type(seg) is bytes for seg, _src, _dst in outputs[gathered])
        for seg, src, _dst in outputs[gathered]:
            server_host.handle_segment(seg, src, 0.5)
        assert servers[0].receive() == data
    assert outputs[True] == outputs[False]


def test_a_user_call_makes_its_connection_ready_and_its_data_goes_out() -> None:
    client_host, server_host, clients, servers = opened(3)
    assert client_host.segments_to_send(0.5) == []
    assert clients[1].send(b"payload") == 7
    out = client_host.segments_to_send(0.5)
    assert len(out) == 1
    seg = parse_segment(out[0][0])
    assert (seg.src_port, seg.payload) == (clients[1].local_port, b"payload")
    assert client_host.get_timer() == clients[1].get_timer() is not None
    for seg_bytes, src, _dst in out:
        server_host.handle_segment(seg_bytes, src, 0.5)
    assert server_host.ready() == [servers[1]]


def test_readiness_readable_writable_closed() -> None:
    config = Config(secret=CONFIG.secret, send_buffer=4096)
    client_host, server_host, clients, servers = opened(1, config)
    hosts = [client_host, server_host]
    client, server = clients[0], servers[0]
    # Writable again: fill the send buffer, let the peer take and acknowledge it all.
    assert client.send(bytes(10_000)) == 4096
    deliver(hosts, 1.0)
    assert server_host.ready() == [server]
    assert drain(server) == [DataAvailable()]  # readable
    assert len(server.receive()) == 4096
    deliver(hosts, 1.0)
    assert client_host.ready() == [client]
    assert SendSpace() in drain(client)  # writable
    # Closed: the peer's FIN, then our own close through to CLOSED.
    client.close()
    deliver(hosts, 1.0)
    assert server_host.ready() == [server]
    assert EndOfStream() in drain(server)
    server.close()
    deliver(hosts, 1.0)
    assert server_host.ready() == [server]
    assert drain(server)[-1] == Closed()


def test_an_abort_is_reported_without_any_input() -> None:
    client_host, _server_host, clients, _servers = opened(2)
    clients[0].abort()
    assert client_host.ready() == [clients[0]]
    assert drain(clients[0])[-1] == Closed()
    [(seg, _src, _dst)] = client_host.segments_to_send(0.2)
    assert parse_segment(seg).flags & 0x04  # the RST
    assert list(client_host.connections.values()) == [clients[1]]


def test_a_listener_announces_a_connection_waiting_to_be_accepted() -> None:
    client_host, server_host = Host(CLIENT, CONFIG), Host(SERVER, CONFIG)
    listener = server_host.listen(PORT)
    hosts = [client_host, server_host]
    client_host.connect((SERVER, PORT), 0.0)
    deliver(hosts, 0.0)
    assert server_host.ready() == [listener]
    assert drain(listener) == [ConnectionAvailable()]
    # Edge-triggered: a second arrival while the queue is non-empty says nothing new.
    client_host.connect((SERVER, PORT), 0.0)
    deliver(hosts, 0.0)
    assert server_host.ready() == []
    assert listener.accept_queue_length == 2
    assert server_host.accept(PORT) is not None
    assert server_host.accept(PORT) is not None
    assert server_host.accept(PORT) is None
    # Emptied by accept: the next arrival is announced again.
    client_host.connect((SERVER, PORT), 0.0)
    deliver(hosts, 0.0)
    assert listener in server_host.ready()
    assert drain(listener) == [ConnectionAvailable()]


def test_closed_connections_leave_the_host() -> None:
    client_host, server_host, clients, servers = opened(2)
    hosts = [client_host, server_host]
    clients[0].close()
    deliver(hosts, 1.0)
    servers[0].close()
    deliver(hosts, 1.0)
    assert servers[0].state is State.CLOSED  # the passive closer ends at LAST-ACK's ACK
    assert clients[0].state is State.TIME_WAIT
    now = client_host.get_timer()
    assert now is not None
    client_host.handle_timer(now)  # 2*MSL passes
    deliver(hosts, now)
    for host, conn in ((client_host, clients[0]), (server_host, servers[0])):
        assert conn.state is State.CLOSED
        assert conn in host.ready()
        assert drain(conn)[-1] == Closed()
        assert conn not in host.connections.values()
        assert host.get_timer() is None
        assert all(entry[2] is not conn for entry in host._heap or ())
        assert conn not in host._timers and conn not in host._dirty
        assert conn._wake is None
    assert [*client_host.connections.values()] == [clients[1]]


def test_a_standalone_connection_has_no_owner() -> None:
    conn = Connection(("192.0.2.1", 1), ("192.0.2.2", 2), CONFIG)
    assert conn._wake is None
    conn.connect(0.0)
    assert conn.segments_to_send(0.0)  # works exactly as before
    host = Host(CLIENT, CONFIG)
    owned = host.connect((SERVER, PORT), 0.0)
    assert owned._wake is not None


# ---------------------------------------------------------------------- the deadlines

NAMES = ("connect", "accept", "send", "receive", "shutdown", "close", "abort", "deliver")
OPS = st.tuples(
    st.sampled_from((*NAMES, "advance", "advance", "unlisten")),
    st.integers(0, 7),  # which connection
    st.integers(1, 40_000),  # bytes to send
    st.floats(0.001, 300.0),  # seconds to advance
)


def endpoints_of(host: Host) -> list[Connection | Listener]:
    return [*host.connections.values(), *host.listeners.values()]


def true_minimum(host: Host) -> float | None:
    times = [t for e in endpoints_of(host) if (t := e.get_timer()) is not None]
    return min(times) if times else None


@contextmanager
def heap_from(count: int) -> Iterator[None]:
    """Hosts keep their deadlines in a heap from `count` on (and scan fewer than one)."""
    saved = host_module.HEAP_FROM, host_module.SCAN_BELOW
    host_module.HEAP_FROM, host_module.SCAN_BELOW = count, 1
    try:
        yield
    finally:
        host_module.HEAP_FROM, host_module.SCAN_BELOW = saved


@pytest.mark.parametrize("heap", [host_module.HEAP_FROM, 2], ids=["as-configured", "heap"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(OPS, max_size=40), seed=st.integers(0, 2**16))
def test_the_host_timer_is_the_earliest_of_its_endpoints(
    heap: int, ops: list[tuple[str, int, int, float]], seed: int
) -> None:
    """Across random user calls, losses, timeouts, closes and removals, ``get_timer`` is
    the minimum over the endpoints, and ``handle_timer`` runs exactly the due ones: with
    the few deadlines scanned, and with them kept in a heap from two on."""
    with heap_from(heap):
        run_host_timer_ops(ops, seed)


def run_host_timer_ops(ops: list[tuple[str, int, int, float]], seed: int) -> None:
    rng = random.Random(seed)
    config = Config(secret=CONFIG.secret, keepalive=True, keepalive_idle=30.0)
    client_host, server_host = Host(CLIENT, config), Host(SERVER, config)
    hosts = [client_host, server_host]
    watch(server_host.listen(PORT, backlog=4))
    conns: list[Connection] = []
    now = 0.0

    def check() -> None:
        for host in hosts:
            assert host.get_timer() == true_minimum(host)

    def run_timers(until: float) -> float:
        while True:
            deadlines = [d for h in hosts if (d := h.get_timer()) is not None and d <= until]
            if not deadlines:
                return until
            t = min(deadlines)
            for host in hosts:
                due = [e for e in endpoints_of(host) if (d := e.get_timer()) is not None and d <= t]
                FIRED.clear()
                host.handle_timer(t)
                assert sorted(map(id, FIRED)) == sorted(map(id, due))
                check()
            deliver(hosts, t, keep=lambda _d: rng.random() > 0.3)
            check()

    for name, index, size, seconds in ops:
        conn = conns[index % len(conns)] if conns else None
        try:
            if name == "connect":
                conns.append(watch(client_host.connect((SERVER, PORT), now)))
            elif name == "accept":
                if PORT in server_host.listeners and (c := server_host.accept(PORT)) is not None:
                    conns.append(watch(c))
            elif name == "send" and conn is not None:
                conn.send(bytes(size))
            elif name == "receive" and conn is not None:
                conn.receive()
            elif name in ("shutdown", "close", "abort") and conn is not None:
                getattr(conn, name)()
            elif name == "deliver":
                loss = seconds / 300.0
                deliver(hosts, now, keep=lambda _d, loss=loss: rng.random() >= loss)
            elif name == "advance":
                now = run_timers(now + seconds)
            elif name == "unlisten":
                server_host.unlisten(PORT)
        except TCPError:
            pass  # a call the connection's state refuses, as a user might make
        check()
        for host in hosts:
            host.segments_to_send(now)  # collected but lost: timers must recover
            check()
    run_timers(now + 10_000.0)


def test_equal_deadlines_run_in_the_order_they_were_set_scanned_or_heaped() -> None:
    """Scanning the deadlines and keeping them in a heap run due endpoints in one order:
    earliest first, equal deadlines in the order they were set."""
    starts = [0.0, 0.5, 0.0, 0.25, 0.5, 0.0] * 8  # 48 connections: past HEAP_FROM
    assert len(starts) > host_module.HEAP_FROM

    def fired_order(heap: int) -> list[tuple[float, int]]:
        with heap_from(heap):
            host = Host(CLIENT, CONFIG)
            conns = []
            for i, start in enumerate(starts):
                conns.append(watch(host.connect((SERVER, PORT + i), start)))
                host.segments_to_send(start)  # each SYN's RTO set when it is sent
            assert (host._heap is not None) == (heap <= len(starts))
            FIRED.clear()
            host.handle_timer(1000.0)
            return [(starts[conns.index(c)], conns.index(c)) for c in FIRED]  # type: ignore[arg-type]

    scanned, heaped = fired_order(10_000), fired_order(host_module.HEAP_FROM)
    assert scanned == heaped == sorted(scanned)
    assert len(scanned) == len(starts)


FIRED: list[object] = []


def watch(endpoint: E) -> E:
    """Record each call of `endpoint`'s ``handle_timer`` in `FIRED`."""
    original = endpoint.handle_timer

    def handle_timer(now: float) -> None:
        FIRED.append(endpoint)
        original(now)

    endpoint.handle_timer = handle_timer  # type: ignore[method-assign]
    return endpoint


# ---------------------------------------------------------------------- on the fake network


def run_many(seed: int, count: int = 10, size: int = 30_000) -> tuple[float, int, list[int]]:
    """`count` connections, each sending `size` bytes over a lossy link; the server is
    an application that reacts only to what ``ready()`` reports."""
    net = FakeNetwork(seed=seed, link=Link(delay=0.001, loss=0.05))
    client_host = net.add_host(CLIENT, CONFIG)
    server_host = net.add_host(SERVER, CONFIG)
    server_host.listen(PORT)
    received: dict[Connection, int] = {}

    def server_app(now: float) -> None:
        while endpoints := server_host.ready():
            for endpoint in endpoints:
                for event in drain(endpoint):
                    if isinstance(event, ConnectionAvailable):
                        while (conn := server_host.accept(PORT)) is not None:
                            received[conn] = 0
                    elif isinstance(event, DataAvailable):
                        assert isinstance(endpoint, Connection)
                        received[endpoint] += len(endpoint.receive())

    def client_app(now: float) -> None:
        for endpoint in client_host.ready():
            assert isinstance(endpoint, Connection)
            if Connected() in drain(endpoint):
                endpoint.shutdown()  # a FIN after the data queued in SYN-SENT

    net.set_app(SERVER, server_app)
    net.set_app(CLIENT, client_app)
    payload = random.Random(seed).randbytes(size)
    for _ in range(count):
        conn = client_host.connect((SERVER, PORT), net.now)
        assert conn.send(payload) == size
    net.run_until(lambda: len(received) == count and all(c.at_eof for c in received), timeout=600.0)
    return net.now, net.stats.sent, sorted(received.values())


def test_many_connections_on_a_lossy_fake_network_driven_by_readiness() -> None:
    first = run_many(3)
    assert first[2] == [30_000] * 10
    assert run_many(3) == first  # one seed, one run


def test_a_port_unreachable_goes_to_the_connection_whose_segment_it_quotes() -> None:
    """The host routes an ICMP port-unreachable by the ports of the segment it quotes
    (`Connection.port_unreachable` judges it); one it cannot place is counted."""
    client_host, _server_host, clients, _servers = opened(3)
    clients[1].send(b"ping")
    [(seg, _src, dst)] = client_host.segments_to_send(0.1)
    client_host.port_unreachable(seg[:8], dst, 0.1)
    assert [c.counters["port_unreachable"] for c in clients] == [0, 1, 0]
    assert client_host.get_timer() is not None
    client_host.port_unreachable(seg[:7], dst, 0.1)  # too short to name a connection
    client_host.port_unreachable(seg[:8], "198.18.0.9", 0.1)  # no connection to that host
    assert client_host.stats["bad_icmp"] == 2
    assert all(c.state is State.ESTABLISHED for c in clients)


def test_gathered_payloads_held_unsent_stay_the_same_bytes_whatever_follows() -> None:
    """A driver may keep gathered segments a while (the engine's backlog, when the socket
    is full): their payload views must keep their bytes while the data after them is
    sent, acknowledged and freed, and the send buffer's freed chunks are reused for new
    writes (SendBuffer reuses only chunks no view holds), and after an abort."""
    config = replace(
        CONFIG, gather_from=1000, send_buffer=4 << 20, receive_buffer=4 << 20, sack=True
    )
    client_host, server_host, clients, servers = opened(1, config)
    rng = random.Random(3)
    stream = rng.randbytes(5 << 20)  # five of the buffer's 1 MiB chunks
    sent = got = 0
    held: list[tuple[tuple[bytes, memoryview], bytes]] = []  # each with its bytes then
    now = 0.5
    while got < len(stream):
        now += 0.01
        if sent < len(stream):
            sent += clients[0].send(stream[sent : sent + (256 << 10)])
        for seg, src, _dst in client_host.segments_to_send_gathered(now):
            if isinstance(seg, tuple):
                if rng.random() < 0.05:
                    held.append((seg, b"".join(seg)))
                seg = joined(seg)
            server_host.handle_segment(seg, src, now)
        got += len(servers[0].receive())
        for seg, src, _dst in server_host.segments_to_send(now):
            client_host.handle_segment(seg, src, now)
    assert clients[0]._sndbuf.seq == clients[0]._sndbuf.end  # all acknowledged, freed
    assert len(held) > 20
    assert all(b"".join(parts) == whole for parts, whole in held)
    clients[0].send(rng.randbytes(3 << 20))  # into chunks the freed ones make
    clients[0].abort()
    assert all(b"".join(parts) == whole for parts, whole in held)
