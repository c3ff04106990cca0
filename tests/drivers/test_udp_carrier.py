"""The UDP carrier on real loopback sockets: whole datagrams, batching both ways,
full socket buffers, and ICMP errors. Every wait is a bounded select/poll.

Paths: "offload" forces UDP GSO and GRO on (skipped where the kernel refuses them),
"fallback" forces one datagram per system call.
"""

from __future__ import annotations

import errno
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from synack.drivers.engine import port_closed_at_peer
from synack.drivers.udp import (
    LOOPBACK_MTU,
    MAX_UDP_PAYLOAD,
    Address,
    CarrierConfig,
    CarrierError,
    Datagram,
    UdpCarrier,
    gso_runs,
    mss_for,
)
from synack.tcp import Config

WAIT = 5.0  # seconds any one wait may take
PATHS = [pytest.param(True, id="offload"), pytest.param(False, id="fallback")]


@pytest.fixture
def opened() -> Iterator[list[UdpCarrier]]:
    carriers: list[UdpCarrier] = []
    yield carriers
    for carrier in carriers:
        carrier.close()


def carrier(
    opened: list[UdpCarrier],
    offload: bool | None,
    host: str = "127.0.0.1",
    sock: socket.socket | None = None,
    **settings: int,
) -> UdpCarrier:
    cfg = CarrierConfig(gso=offload, gro=offload, **settings)
    try:
        if sock is None:
            made = UdpCarrier.bound(host, 0, cfg)
        else:
            made = UdpCarrier(cfg, sock=sock)
            made.bind(host, 0)
    except OSError as e:
        if offload and e.errno in (errno.ENOPROTOOPT, errno.EINVAL, errno.EOPNOTSUPP):
            pytest.skip(f"the kernel refuses UDP GSO/GRO: {e}")
        raise
    opened.append(made)
    return made


def receive(rx: UdpCarrier, count: int) -> list[tuple[bytes, Address]]:
    """Exactly `count` datagrams (copied out), waiting at most WAIT seconds in all."""
    got: list[tuple[bytes, Address]] = []
    deadline = time.monotonic() + WAIT
    while len(got) < count:
        left = deadline - time.monotonic()
        assert left > 0, f"only {len(got)} of {count} datagrams arrived"
        select.select([rx], [], [], left)
        got.extend((bytes(view), addr) for view, addr in rx.recv_batch())
    assert len(got) == count, f"{len(got)} datagrams arrived, {count} expected"
    return got


def assert_quiet(rx: UdpCarrier, wait: float = 0.2) -> None:
    """Nothing more arrives within `wait` seconds."""
    readable, _, _ = select.select([rx], [], [], wait)
    extra = rx.recv_batch() if readable else []
    assert not extra, f"{len(extra)} unexpected datagrams"


def wait_for_error(c: UdpCarrier) -> None:
    """Until an ICMP error is pending on the socket (poll reports POLLERR)."""
    poller = select.poll()
    poller.register(c.fileno(), select.POLLIN)
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        for _fd, events in poller.poll(100):
            if events & select.POLLERR:
                return
    raise AssertionError("no ICMP error arrived")


def dead_port(host: str = "127.0.0.1") -> Address:
    """An address where nothing is bound (a port just released)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        name = s.getsockname()
    return (name[0], name[1])


def randoms(*sizes: int) -> list[bytes]:
    return [os.urandom(n) for n in sizes]


# ---------------------------------------------------------------------- sizes


def test_mss_from_mtu() -> None:
    assert mss_for(1500) == 1500 - 20 - 8 - 20 == 1452
    assert mss_for(1500, ipv6=True) == 1432
    assert mss_for(576) == 528
    assert MAX_UDP_PAYLOAD == 65507
    assert mss_for(LOOPBACK_MTU) == MAX_UDP_PAYLOAD - 20 == 65487
    assert CarrierConfig().mss == 1452
    assert CarrierConfig(mtu=LOOPBACK_MTU).mss == 65487
    # The TCP core takes every MSS the carrier can produce.
    assert Config(mss=mss_for(LOOPBACK_MTU)).mss == 65487
    assert Config(mss=mss_for(136)).mss == 88
    for bad in (135, LOOPBACK_MTU + 1):
        with pytest.raises(ValueError):
            mss_for(bad)
        with pytest.raises(ValueError):
            CarrierConfig(mtu=bad)
    with pytest.raises(ValueError):
        CarrierConfig(receive_area=65535)


def test_gso_runs() -> None:
    # Equal sizes then one shorter closes a run; a larger one starts a new run.
    assert gso_runs([1000] * 5 + [700] + [1200] * 3) == [(0, 6), (6, 9)]
    assert gso_runs([100, 100, 50, 50, 50]) == [(0, 3), (3, 5)]
    assert gso_runs([100, 200, 100]) == [(0, 1), (1, 3)]
    # At most 64 KiB less headers per call: 45 segments of 1448 (65160 bytes).
    assert gso_runs([1448] * 100) == [(0, 45), (45, 90), (90, 100)]
    # At most 64 segments per call.
    assert gso_runs([100] * 200) == [(0, 64), (64, 128), (128, 192), (192, 200)]
    # Zero-length and oversize segments travel alone.
    assert gso_runs([10, 0, 10]) == [(0, 1), (1, 2), (2, 3)]
    assert gso_runs([70000, 10]) == [(0, 1), (1, 2)]
    assert gso_runs([]) == []


# ---------------------------------------------------------------------- bursts


@pytest.mark.parametrize("offload", PATHS)
def test_burst_arrives_as_the_same_datagrams(opened: list[UdpCarrier], offload: bool) -> None:
    tx, rx = carrier(opened, offload), carrier(opened, offload)
    assert (tx.gso, tx.gro, rx.gso, rx.gro) == (offload,) * 4
    segments = randoms(*[1200] * 20, 300)
    assert tx.send_batch(segments, rx.sockname) == 21
    got = receive(rx, 21)
    assert got == [(s, tx.sockname) for s in segments]
    assert (tx.stats.datagrams_sent, tx.stats.bytes_sent) == (21, 24300)
    assert (rx.stats.datagrams_received, rx.stats.bytes_received) == (21, 24300)
    assert rx.stats.truncated == 0
    if offload:
        # One GSO send, and one GRO read of the burst queued before we read.
        assert tx.stats.send_calls == 1 < 21
        assert rx.stats.recv_calls < 21
    else:
        assert tx.stats.send_calls == 21
        assert rx.stats.recv_calls == 21
    assert_quiet(rx)


def test_receiver_without_gro_gets_a_gso_burst_as_datagrams(opened: list[UdpCarrier]) -> None:
    tx = carrier(opened, True)
    rx = carrier(opened, False)
    segments = randoms(*[1448] * 30, 17)
    assert tx.send_batch(segments, rx.sockname) == 31
    assert tx.stats.send_calls == 1
    assert receive(rx, 31) == [(s, tx.sockname) for s in segments]
    # The kernel cut the GSO buffer into datagrams: one read each.
    assert rx.stats.recv_calls == 31


@pytest.mark.parametrize("offload", PATHS)
def test_mixed_sizes(opened: list[UdpCarrier], offload: bool) -> None:
    tx, rx = carrier(opened, offload), carrier(opened, offload)
    sizes = [1000] * 5 + [700] + [1200] * 3 + [100, 100, 1] + [1448] * 100 + [0] + [64] * 150
    segments = randoms(*sizes)
    assert tx.send_batch(segments, rx.sockname) == len(segments)
    assert receive(rx, len(segments)) == [(s, tx.sockname) for s in segments]
    calls = len(gso_runs(sizes)) if offload else len(sizes)
    assert tx.stats.send_calls == calls
    assert rx.stats.bytes_received == sum(sizes)
    assert_quiet(rx)


@pytest.mark.parametrize("offload", PATHS)
def test_largest_datagram_with_the_loopback_mtu(opened: list[UdpCarrier], offload: bool) -> None:
    tx = carrier(opened, offload, mtu=LOOPBACK_MTU)
    rx = carrier(opened, offload, mtu=LOOPBACK_MTU)
    assert tx.mss == 65487
    segments = randoms(MAX_UDP_PAYLOAD, MAX_UDP_PAYLOAD, 1)
    assert tx.send_batch(segments, rx.sockname) == 3
    assert receive(rx, 3) == [(s, tx.sockname) for s in segments]
    assert rx.stats.truncated == 0


@pytest.mark.parametrize("offload", PATHS)
def test_oversize_datagram_is_refused_and_reported(opened: list[UdpCarrier], offload: bool) -> None:
    tx, rx = carrier(opened, offload), carrier(opened, offload)
    before, too_big, after = randoms(10, MAX_UDP_PAYLOAD + 1, 20)
    # Dealt with: the oversize one is dropped, as a network drops what it cannot carry.
    assert tx.send_batch([before, too_big, after], rx.sockname) == 3
    assert receive(rx, 2) == [(before, tx.sockname), (after, tx.sockname)]
    assert tx.stats.send_refused == 1
    assert [(e.errno, e.dest, e.offender) for e in tx.errors()] == [
        (errno.EMSGSIZE, rx.sockname, "")  # raised here: no host sent it
    ]
    assert tx.errors() == []


@pytest.mark.parametrize("offload", PATHS)
def test_recv_batch_bounds(opened: list[UdpCarrier], offload: bool) -> None:
    tx = carrier(opened, False)  # separate datagrams, so each read takes one
    rx = carrier(opened, offload)
    segments = randoms(*[500] * 50)
    assert tx.send_batch(segments, rx.sockname) == 50
    select.select([rx], [], [], WAIT)
    first = [bytes(v) for v, _ in rx.recv_batch(max_datagrams=10)]
    assert first == segments[:10]
    # max_bytes leaves room for one largest datagram only: one read.
    second = [bytes(v) for v, _ in rx.recv_batch(max_bytes=65536)]
    assert second == segments[10:11]
    rest = [data for data, _ in receive(rx, 39)]
    assert rest == segments[11:]


@pytest.mark.parametrize("offload", PATHS)
def test_until_short_ends_a_batch_at_a_short_datagram(
    opened: list[UdpCarrier], offload: bool
) -> None:
    """A datagram shorter than the MTU allows ends the batch (the end of a burst, most
    likely): what follows stays queued, keeps the socket readable, and comes next."""
    tx = carrier(opened, False)  # separate datagrams, so each read takes one
    rx = carrier(opened, offload)
    full = rx.config.mtu - 28  # IPv4 and UDP headers
    segments = randoms(full, full, 100, full, 100)
    assert tx.send_batch(segments, rx.sockname) == 5
    select.select([rx], [], [], WAIT)
    first = [bytes(v) for v, _ in rx.recv_batch(until_short=True)]
    assert first == segments[:3]
    readable, _, _ = select.select([rx], [], [], WAIT)
    assert readable == [rx]
    assert [bytes(v) for v, _ in rx.recv_batch(until_short=True)] == segments[3:]
    assert rx.stats.datagrams_received == 5


def test_socket_buffers_report_what_the_kernel_granted(opened: list[UdpCarrier]) -> None:
    c = carrier(opened, None, send_buffer=100_000, receive_buffer=200_000)
    with socket.fromfd(c.fileno(), socket.AF_INET, socket.SOCK_DGRAM) as dup:
        assert c.send_buffer == dup.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        assert c.receive_buffer == dup.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    # Linux doubles each request for its bookkeeping (both are under its caps).
    assert c.send_buffer >= 100_000
    assert c.receive_buffer >= 200_000


# ---------------------------------------------------------------------- full socket buffers


class ShortSocket(socket.socket):
    """A UDP socket that fails its send number `fail_at` (counting from 0) with `code`."""

    fail_at = -1
    code = errno.EAGAIN
    gso_error: int | None = None

    def __init__(self) -> None:
        super().__init__(socket.AF_INET, socket.SOCK_DGRAM)
        self.sends = 0

    def _tick(self) -> None:
        n = self.sends
        self.sends += 1
        if n == self.fail_at:
            raise OSError(self.code, os.strerror(self.code))

    def sendto(self, *args: Any) -> int:
        self._tick()
        return super().sendto(*args)

    def sendmsg(self, *args: Any) -> int:
        if self.gso_error is not None and len(args) > 1 and args[1]:
            raise OSError(self.gso_error, os.strerror(self.gso_error))
        self._tick()
        return super().sendmsg(*args)


@pytest.mark.parametrize("code", [errno.EAGAIN, errno.ENOBUFS])
@pytest.mark.parametrize("offload", PATHS)
def test_full_socket_reports_the_prefix_sent(
    opened: list[UdpCarrier], offload: bool, code: int
) -> None:
    sock = ShortSocket()
    sock.fail_at, sock.code = 2, code
    tx = carrier(opened, offload, sock=sock)
    rx = carrier(opened, offload)
    segments = randoms(*[1000] * 200)
    sent = tx.send_batch(segments, rx.sockname)
    # Fallback: sendto #2 failed; offload: the third GSO call (runs of 64).
    assert sent == (128 if offload else 2)
    assert tx.stats.send_blocked == 1
    assert receive(rx, sent) == [(s, tx.sockname) for s in segments[:sent]]
    assert_quiet(rx)
    assert tx.send_batch(segments[sent:], rx.sockname) == 200 - sent
    assert [d for d, _ in receive(rx, 200 - sent)] == segments[sent:]
    assert_quiet(rx)
    assert tx.stats.datagrams_sent == 200
    assert tx.errors() == []


def test_route_that_refuses_gso_falls_back(opened: list[UdpCarrier]) -> None:
    sock = ShortSocket()
    sock.gso_error = errno.EIO  # what Linux says when the device cannot checksum for GSO
    tx = carrier(opened, True, sock=sock)
    rx = carrier(opened, False)
    segments = randoms(*[1000] * 10, 5)
    assert tx.send_batch(segments, rx.sockname) == 11
    assert receive(rx, 11) == [(s, tx.sockname) for s in segments]
    assert tx.gso is False
    assert tx.stats.gso_fallbacks == 1
    assert tx.send_batch(segments, rx.sockname) == 11
    assert tx.stats.send_calls == 22
    receive(rx, 11)


def test_full_socket_during_the_gso_fallback(opened: list[UdpCarrier]) -> None:
    sock = ShortSocket()
    sock.gso_error = errno.EIO
    sock.fail_at = 3  # the fourth one-by-one send finds the socket full
    tx = carrier(opened, True, sock=sock)
    rx = carrier(opened, False)
    segments = randoms(*[1000] * 10, 5)
    assert tx.send_batch(segments, rx.sockname) == 3
    assert [d for d, _ in receive(rx, 3)] == segments[:3]
    assert tx.send_batch(segments[3:], rx.sockname) == 8
    assert [d for d, _ in receive(rx, 8)] == segments[3:]
    assert_quiet(rx)


class NoOffloadSocket(socket.socket):
    """A UDP socket on a kernel without UDP_SEGMENT or UDP_GRO."""

    def setsockopt(self, level: int, option: int, value: Any, *rest: Any) -> None:
        if level == socket.SOL_UDP:
            raise OSError(errno.ENOPROTOOPT, os.strerror(errno.ENOPROTOOPT))
        return super().setsockopt(level, option, value, *rest)


def test_gso_and_gro_used_only_where_offered(opened: list[UdpCarrier]) -> None:
    c = carrier(opened, None, sock=NoOffloadSocket(socket.AF_INET, socket.SOCK_DGRAM))
    assert (c.gso, c.gro) == (False, False)
    with pytest.raises(OSError):
        UdpCarrier(CarrierConfig(gso=True), sock=NoOffloadSocket(socket.AF_INET, socket.SOCK_DGRAM))
    with pytest.raises(OSError):
        UdpCarrier(CarrierConfig(gro=True), sock=NoOffloadSocket(socket.AF_INET, socket.SOCK_DGRAM))


# A full send buffer for real: loopback hands each datagram to the receiver at once and
# never fills the sender's buffer, so this runs in a private network namespace whose
# loopback has a token-bucket queue (8 Mbit/s) holding datagrams back.
NAMESPACE_SCRIPT = r"""
import json, os, select, subprocess, sys, time
from synack.drivers.udp import CarrierConfig, UdpCarrier
subprocess.run("ip link set lo up && tc qdisc add dev lo root tbf rate 8mbit burst 3000 "
               "latency 2s", shell=True, check=True)
offload = sys.argv[1] == "1"
tx = UdpCarrier.bound(config=CarrierConfig(gso=offload, gro=offload, send_buffer=1))
rx = UdpCarrier.bound(config=CarrierConfig(gso=offload, gro=offload))
segments = [os.urandom(1000) for _ in range(200)]

def receive(count):
    got, deadline = [], time.monotonic() + 10
    while len(got) < count and time.monotonic() < deadline:
        select.select([rx], [], [], 0.5)
        got += [bytes(v) for v, _ in rx.recv_batch()]
    return got

first = tx.send_batch(segments, rx.sockname)
prefix = receive(first)
select.select([rx], [], [], 0.3)
extra = len(rx.recv_batch())
done, rest = first, []
deadline = time.monotonic() + 20
while done < len(segments) and time.monotonic() < deadline:
    select.select([], [tx], [], 1)
    n = tx.send_batch(segments[done:], rx.sockname)
    rest += receive(n)
    done += n
print(json.dumps({
    "first": first, "prefix_ok": prefix == segments[:first], "extra": extra,
    "all_ok": segments[first:] == rest, "blocked": tx.stats.send_blocked,
    "sent": tx.stats.datagrams_sent, "calls": tx.stats.send_calls,
}))
"""


@pytest.mark.root
@pytest.mark.parametrize("offload", PATHS)
def test_full_send_buffer_in_a_namespace(offload: bool) -> None:
    unshare, tc = shutil.which("unshare"), shutil.which("tc")
    if os.geteuid() != 0 or unshare is None or tc is None:
        pytest.skip("needs root, unshare and tc for a private network namespace")
    done = subprocess.run(
        [unshare, "-n", sys.executable, "-c", NAMESPACE_SCRIPT, "1" if offload else "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0 and "Operation not permitted" in done.stderr:
        pytest.skip("network namespaces are not permitted here")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert 0 < result["first"] < 200, result  # the first call stopped part way
    assert result["prefix_ok"] and result["extra"] == 0, result
    assert result["all_ok"] and result["sent"] == 200, result
    assert result["blocked"] >= 1, result


# ---------------------------------------------------------------------- ICMP errors


@pytest.mark.parametrize("offload", PATHS)
def test_port_unreachable_is_reported_and_harms_nothing(
    opened: list[UdpCarrier], offload: bool
) -> None:
    me, peer = carrier(opened, offload), carrier(opened, offload)
    dead = dead_port()
    d1, d2, d3, d4 = randoms(100, 1200, 1200, 50)
    assert peer.send_batch([d1], me.sockname) == 1  # queued before the error
    assert me.send_batch([b"anyone there?"], dead) == 1
    wait_for_error(me)
    assert peer.send_batch([d2, d3], me.sockname) == 2  # and after it
    assert receive(me, 3) == [(d, peer.sockname) for d in (d1, d2, d3)]
    # The error quotes the start of the datagram that drew it (a TCP header's worth)
    # and names the host that sent it: here the destination itself.
    assert me.errors() == [(errno.ECONNREFUSED, dead, b"anyone there?", dead[0])]
    assert me.errors() == []
    # A send while an error is pending goes out once, and the error is still reported.
    assert me.send_batch([d1], dead) == 1
    wait_for_error(me)
    assert me.send_batch([d4], peer.sockname) == 1
    assert receive(peer, 1) == [(d4, me.sockname)]
    assert_quiet(peer)
    assert me.errors() == [(errno.ECONNREFUSED, dead, d1[:20], dead[0])]
    assert me.stats.send_refused == 0


@pytest.mark.parametrize("offload", PATHS)
def test_a_queued_error_stops_waking_the_reader(opened: list[UdpCarrier], offload: bool) -> None:
    me = carrier(opened, offload)
    dead = dead_port()
    assert me.send_batch([b"x"], dead) == 1
    wait_for_error(me)
    # Someone reads SO_ERROR: the error no longer fails a receive, but the queue still
    # holds it and poll keeps reporting POLLERR, which would wake an event loop forever.
    with socket.fromfd(me.fileno(), socket.AF_INET, socket.SOCK_DGRAM) as dup:
        assert dup.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNREFUSED
    assert me.recv_batch() == []
    poller = select.poll()
    poller.register(me.fileno(), select.POLLIN)
    assert poller.poll(0) == []
    assert [e[:2] for e in me.errors()] == [(errno.ECONNREFUSED, dead)]


def test_ipv6(opened: list[UdpCarrier]) -> None:
    try:
        me, peer = carrier(opened, None, "::1"), carrier(opened, None, "::1")
    except OSError as e:
        pytest.skip(f"no IPv6 loopback: {e}")
    assert me.mss == 1432
    segments = randoms(*[1200] * 10, 7)
    assert me.send_batch(segments, peer.sockname) == 11
    assert receive(peer, 11) == [(s, me.sockname) for s in segments]
    dead = dead_port("::1")
    assert me.send_batch([b"x"], dead) == 1
    wait_for_error(me)
    assert [e[:2] for e in me.errors()] == [(errno.ECONNREFUSED, dead)]


@pytest.mark.parametrize("offload", PATHS)
def test_a_datagram_in_parts_arrives_joined(opened: list[UdpCarrier], offload: bool) -> None:
    """A datagram given as a pair of buffers (a segment and its trailer) is sent
    gathered and arrives as one datagram, in a GSO burst (beside a whole one) or alone."""
    tx = carrier(opened, offload)
    rx = carrier(opened, offload)
    heads = randoms(*[1000] * 5)
    tails = randoms(*[4] * 5)
    burst: list[Datagram] = [(h, t) for h, t in zip(heads, tails, strict=True)]
    burst[-1] = heads[-1][:500] + tails[-1]  # a shorter last one, whole, in the same run
    assert tx.send_batch(burst, rx.sockname) == 5
    assert tx.send_batch([(heads[0], tails[0])], rx.sockname) == 1
    expected = [h + t for h, t in zip(heads[:4], tails[:4], strict=True)]
    expected += [heads[-1][:500] + tails[-1], heads[0] + tails[0]]
    assert [data for data, _ in receive(rx, 6)] == expected
    assert tx.stats.bytes_sent == 5 * 1004 + 504
    if offload and tx.gso:
        assert tx.stats.send_calls == 2  # the five went in one call


@pytest.mark.parametrize("offload", PATHS)
def test_a_datagram_in_parts_between_whole_ones_arrives_joined(
    opened: list[UdpCarrier], offload: bool
) -> None:
    """Whole and gathered datagrams of one size mix in any order within a GSO run: a
    retransmission (whole) before new data (header, payload view and trailer in
    parts) and a short last segment (whole), as the engine sends with the TCP
    checksum; the parts of one in the middle of the run are sent, not refused."""
    tx = carrier(opened, offload)
    rx = carrier(opened, offload)
    whole, header, payload, trailer, tail = randoms(1000, 40, 956, 4, 300)
    burst: list[Datagram] = [whole, (header, memoryview(payload), trailer), whole, tail]
    assert tx.send_batch(burst, rx.sockname) == 4
    expected = [whole, header + payload + trailer, whole, tail]
    assert [data for data, _ in receive(rx, 4)] == expected
    assert tx.stats.bytes_sent == 3 * 1000 + 300
    if offload and tx.gso:
        assert tx.stats.send_calls == 1
    assert_quiet(rx)


def test_only_the_peers_own_port_unreachable_quoting_a_segment_is_judged() -> None:
    """What the drivers hand to `Host.port_unreachable`: the peer itself says no process
    holds the port, about a segment it quotes. A router or firewall on the way that
    rejects (another offender), another error, or a quote too short names nobody."""
    peer = ("127.0.0.5", 4000)
    header = bytes(20)
    assert port_closed_at_peer(CarrierError(errno.ECONNREFUSED, peer, header, "127.0.0.5"))
    for error in (
        CarrierError(errno.ECONNREFUSED, peer, header, "127.0.0.9"),  # a firewall's REJECT
        CarrierError(errno.ECONNREFUSED, peer, b"", "127.0.0.5"),  # quoted nothing
        CarrierError(errno.EHOSTUNREACH, peer, header, "127.0.0.5"),
        CarrierError(errno.EMSGSIZE, peer, header, ""),  # raised locally
    ):
        assert not port_closed_at_peer(error), error
