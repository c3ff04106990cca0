"""A SYN flood against a listener with backlog 8, while legitimate clients connect.

Spoofed SYNs arrive from random addresses in 198.18.0.0/15 where nothing is attached,
so the listener's SYN-ACKs are lost and every half-open entry stays until its SYN-ACK
retries run out. Meanwhile a real client connects every 0.4 s and, once connected,
exchanges one byte each way with a server application that accepts at once. A client
counts as served if all of that finishes within CLIENT_DEADLINE virtual seconds.

With SYN cookies (RFC 4987 §3.6) the full SYN queue costs the legitimate clients
nothing: at least 99% get in. Without them they are shut out.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass, field

import pytest

from synack.tcp import Config, Connection, State
from synack.tcp.host import Host
from synack.tcp.listener import Listener
from synack.testing import Datagram, DropCause, FakeNetwork, Link
from synack.wire.tcp import Flags, Options, Segment, build_segment

SERVER, CLIENT, ATTACKER = "198.18.0.2", "198.18.0.1", "198.19.255.254"
PORT = 80
BACKLOG = 8
SECRET = b"syn-flood-tests".ljust(32, b"~")
SPOOF_NET = ipaddress.ip_network("198.18.0.0/15")

FLOOD_RATE = 100.0  # spoofed SYNs per second
FLOOD_END = 90.0  # seconds of flood
CLIENTS = 200
FIRST_CONNECT = 2.0  # the flood has filled the SYN queue long before
CONNECT_INTERVAL = 0.4  # so the last client connects at 81.6 s, inside the flood
CLIENT_DEADLINE = 3.0  # seconds from connect() to both bytes exchanged


class SynFlood:
    """An attacker: bare SYNs at a fixed rate, each from a fresh spoofed address and port.

    It is an `Endpoint` for the network's sake (it needs a timer), attached at its own
    address; the spoofed sources are never attached, so whatever answers them is lost.
    """

    def __init__(
        self, target: str, port: int, rate: float, until: float, seed: int, avoid: set[str]
    ) -> None:
        self.target = ipaddress.ip_address(target).packed
        self.port = port
        self.interval = 1.0 / rate
        self.until = until
        self.random = random.Random(seed)
        self.avoid = {ipaddress.ip_address(a).packed for a in avoid}
        self.next_at = 0.0
        self.sent = 0
        self._out: list[Datagram] = []

    def _spoofed(self) -> bytes:
        base = int(SPOOF_NET.network_address)
        while True:
            addr = (base + self.random.randrange(1, SPOOF_NET.num_addresses - 1)).to_bytes(4, "big")
            if addr not in self.avoid:
                return addr

    def handle_timer(self, now: float) -> None:
        while self.next_at <= now and self.next_at < self.until:
            src = self._spoofed()
            syn = Segment(
                self.random.randrange(1024, 65536),
                self.port,
                seq=self.random.getrandbits(32),
                flags=Flags.SYN,
                window=64240,
                options=Options(mss=1460),
            )
            self._out.append((build_segment(syn, src=src, dst=self.target), src, self.target))
            self.sent += 1
            self.next_at += self.interval

    def get_timer(self) -> float | None:
        return self.next_at if self.next_at < self.until else None

    def segments_to_send(self, now: float) -> list[Datagram]:
        out = self._out
        self._out = []
        return out

    def handle_segment(self, data: bytes | bytearray, src: bytes, now: float) -> None:
        pass  # nothing is ever addressed to the attacker's own address


@dataclass
class Attempt:
    conn: Connection
    started: float
    asked: bool = False
    served_at: float | None = None


@dataclass
class Outcome:
    attempts: list[Attempt]
    listener: Listener
    net: FakeNetwork
    flood: SynFlood
    syn_queue_samples: list[int] = field(default_factory=list)

    @property
    def served(self) -> int:
        return sum(
            1
            for a in self.attempts
            if a.served_at is not None and a.served_at - a.started <= CLIENT_DEADLINE
        )


def run_flood(syn_cookies: bool) -> Outcome:
    net = FakeNetwork(seed=1, link=Link(delay=0.01))
    cfg = Config(secret=SECRET)
    server = Host(SERVER, cfg)
    listener = server.listen(PORT, BACKLOG, syn_cookies=syn_cookies)
    serving: list[Connection] = []

    def server_app(_now: float) -> None:
        # Accept at once; answer the client's byte with one of ours; close after the
        # client does (so TIME-WAIT is kept by the client, as a server prefers).
        while (conn := server.accept(PORT)) is not None:
            serving.append(conn)
        for conn in list(serving):
            if conn.receive(1) == b"?":
                conn.send(b"!")
            if conn.at_eof or conn.state is State.CLOSED:
                conn.close()
                serving.remove(conn)

    client = Host(CLIENT, cfg)
    attempts: list[Attempt] = []
    pending: list[Attempt] = []

    def client_app(now: float) -> None:
        for attempt in list(pending):
            conn = attempt.conn
            if conn.state is State.ESTABLISHED and not attempt.asked:
                conn.send(b"?")
                attempt.asked = True
            if attempt.asked and conn.receive(1) == b"!":
                attempt.served_at = now
                conn.close()
                pending.remove(attempt)
            elif conn.state is State.CLOSED or now - attempt.started > CLIENT_DEADLINE:
                conn.abort()  # give up: this client was not served in time
                pending.remove(attempt)

    def connect() -> None:
        attempt = Attempt(client.connect((SERVER, PORT), net.now), net.now)
        attempts.append(attempt)
        pending.append(attempt)

    flood = SynFlood(SERVER, PORT, FLOOD_RATE, FLOOD_END, seed=7, avoid={SERVER, CLIENT})
    net.attach(SERVER, server, app=server_app)
    net.attach(CLIENT, client, app=client_app)
    net.attach(ATTACKER, flood)
    outcome = Outcome(attempts, listener, net, flood)
    for i in range(CLIENTS):
        net.call_at(FIRST_CONNECT + i * CONNECT_INTERVAL, connect)
    for t in (1.0, 30.0, 60.0, 80.0):
        net.call_at(t, lambda: outcome.syn_queue_samples.append(listener.syn_queue_length))
    # Time-outs of stragglers are noticed on the client's next input; poll once a second.
    for t in range(int(FIRST_CONNECT), int(FLOOD_END) + 5):
        net.call_at(float(t), lambda: client_app(net.now))
    net.run_for(FLOOD_END + 5.0)
    return outcome


@pytest.fixture(scope="module")
def with_cookies() -> Outcome:
    return run_flood(syn_cookies=True)


@pytest.fixture(scope="module")
def without_cookies() -> Outcome:
    return run_flood(syn_cookies=False)


def test_the_flood_fills_the_syn_queue(with_cookies: Outcome, without_cookies: Outcome) -> None:
    for outcome in (with_cookies, without_cookies):
        assert outcome.flood.sent == int(FLOOD_RATE * FLOOD_END)
        assert outcome.syn_queue_samples == [BACKLOG] * 4
        # Every SYN-ACK to a spoofed source is lost: nobody lives there.
        assert outcome.net.stats.dropped[DropCause.UNREACHABLE] > 0
    # Each half-open entry sends its SYN-ACK and 5 retransmissions before expiring.
    stats = without_cookies.listener.stats
    assert stats["syns_dropped"] > 0.9 * without_cookies.flood.sent
    assert stats["expired"] >= BACKLOG


def test_with_syn_cookies_legitimate_clients_get_in(with_cookies: Outcome) -> None:
    outcome = with_cookies
    assert len(outcome.attempts) == CLIENTS
    assert outcome.served >= 0.99 * CLIENTS, (
        f"only {outcome.served} of {CLIENTS} clients were served within {CLIENT_DEADLINE} s"
    )
    stats = outcome.listener.stats
    assert stats["cookies_sent"] > 0.9 * outcome.flood.sent  # the flood was answered statelessly
    assert stats["cookies_accepted"] >= outcome.served - BACKLOG


def test_without_syn_cookies_legitimate_clients_are_shut_out(without_cookies: Outcome) -> None:
    # Why so few get in: the flood's half-open entries hold all 8 SYN-queue slots. Each
    # lives for the SYN-ACK retry period -- 1+2+4+8+16+32 = 63 s with synack_retries=5 --
    # and when it expires the flood, at 100 SYNs/s, takes the slot again within ~10 ms.
    # A client's SYN (and its retransmissions 1 s and 3 s later) gets in only if it lands
    # in one of those few-millisecond gaps, which open 8 times per 63 s.
    outcome = without_cookies
    assert len(outcome.attempts) == CLIENTS
    failed = CLIENTS - outcome.served
    assert failed >= 0.9 * CLIENTS, f"{outcome.served} of {CLIENTS} clients got in anyway"
    assert outcome.listener.stats["cookies_sent"] == 0
