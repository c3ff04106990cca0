"""listen(backlog): the SYN queue and the accept queue, bounded as Linux bounds them;
SYN-ACK retransmission and expiry; SYN cookies; RST for closed ports.

A `Host` listens on a `FakeNetwork`. Its peers are either real hosts (whose connect()
retransmits as TCP does) or `Peer`s that send hand-built segments and record what comes
back, so that each queue decision can be seen on the wire.
"""

from __future__ import annotations

import pytest

from synack.tcp import (
    Config,
    Connection,
    ConnectionRefused,
    ConnectionReset,
    Reset,
    State,
)
from synack.tcp.host import Host
from synack.tcp.listener import SOMAXCONN, Listener
from synack.testing import FakeNetwork, Link, RawEndpoint
from synack.wire.tcp import Flags, Options, Segment, build_segment, parse_segment

SERVER, CLIENT, PEER = "198.18.2.1", "198.18.2.2", "198.18.2.3"
SERVER_IP = bytes([198, 18, 2, 1])
PORT = 80
DELAY = 0.01  # one way
SECRET = b"listener-tests".ljust(32, b"=")
CFG = Config(secret=SECRET)


class Peer:
    """A hand-driven TCP peer: sends the segments a test builds, parses what it receives."""

    def __init__(self, net: FakeNetwork, address: str = PEER) -> None:
        self.net = net
        self.raw = RawEndpoint(address)
        self.address = self.raw.address
        net.attach(address, self.raw)
        self.seen = 0

    def send(
        self,
        sport: int,
        seq: int,
        flags: Flags,
        ack: int = 0,
        window: int = 65535,
        options: Options | None = None,
        payload: bytes = b"",
    ) -> None:
        seg = Segment(
            sport,
            PORT,
            seq=seq,
            ack=ack,
            flags=flags,
            window=window,
            options=options or Options(),
            payload=payload,
        )
        self.raw.send(build_segment(seg, src=self.address, dst=SERVER_IP), SERVER)

    def syn(self, sport: int, isn: int, options: Options | None = None) -> None:
        self.send(sport, isn, Flags.SYN, options=options or Options(mss=1460))

    def received(self) -> list[tuple[float, Segment]]:
        """Segments that arrived since the last call, with their arrival times."""
        new = self.raw.received[self.seen :]
        self.seen = len(self.raw.received)
        return [(t, parse_segment(p, src=SERVER_IP, dst=self.address)) for t, p, _s in new]


def network() -> tuple[FakeNetwork, Host]:
    net = FakeNetwork(link=Link(delay=DELAY))
    server = net.add_host(SERVER, CFG)
    return net, server


def client_host(net: FakeNetwork, config: Config = CFG) -> Host:
    return net.add_host(CLIENT, config)


def connect(net: FakeNetwork, host: Host) -> Connection:
    return host.connect((SERVER, PORT), net.now)


def synacks(segments: list[tuple[float, Segment]]) -> list[tuple[float, Segment]]:
    return [(t, s) for t, s in segments if s.flags == Flags.SYN | Flags.ACK]


# ---------------------------------------------------------------------- backlog bounds


def test_backlog_is_capped_at_somaxconn_and_at_least_zero() -> None:
    _net, server = network()
    assert server.listen(1, 1 << 20).backlog == SOMAXCONN == 4096  # net.core.somaxconn
    assert server.listen(2, 8).backlog == 8
    assert server.listen(3, -1).backlog == 0  # Python's socket.listen() clamps to 0


# ---------------------------------------------------------------------- the SYN queue


def test_syn_queue_holds_backlog_half_open_connections_then_drops_syns() -> None:
    net, server = network()
    listener = server.listen(PORT, backlog=4, syn_cookies=False)
    peer = Peer(net)
    for i in range(6):
        peer.syn(40000 + i, 1000 * i)
    net.run_for(0.5)
    # Linux: inet_csk_reqsk_queue_is_full() is "qlen >= backlog"; without cookies the
    # SYN is then dropped, unanswered.
    assert listener.syn_queue_length == 4
    answered = {s.dst_port for _t, s in synacks(peer.received())}
    assert answered == {40000, 40001, 40002, 40003}
    assert listener.stats["syns_dropped"] == 2
    assert listener.accept_queue_length == 0


def test_full_syn_queue_answers_with_syn_cookies() -> None:
    net, server = network()
    listener = server.listen(PORT, backlog=4, syn_cookies=True)
    peer = Peer(net)
    for i in range(6):
        peer.syn(40000 + i, 1000 * i)
    net.run_for(0.5)
    assert listener.syn_queue_length == 4  # the cookies cost no queue entry
    answered = {s.dst_port: s for _t, s in synacks(peer.received())}
    assert set(answered) == {40000 + i for i in range(6)}
    assert all(answered[p].ack == 1000 * (p - 40000) + 1 for p in answered)
    assert listener.stats["cookies_sent"] == 2
    assert listener.stats["syns_dropped"] == 0


def test_duplicate_syn_for_a_half_open_entry_resends_its_syn_ack() -> None:
    net, server = network()
    listener = server.listen(PORT, backlog=4, syn_cookies=False)
    peer = Peer(net)
    peer.syn(40000, 5000)
    net.run_for(0.1)
    ((_t, first),) = synacks(peer.received())
    peer.syn(40000, 5000)  # our SYN-ACK was "lost": the client retransmits its SYN
    net.run_for(0.1)
    ((_t, again),) = synacks(peer.received())
    assert (again.seq, again.ack) == (first.seq, first.ack) == (first.seq, 5001)
    assert listener.syn_queue_length == 1


def test_syn_ack_is_retransmitted_with_backoff_and_the_entry_expires() -> None:
    net, server = network()
    listener = server.listen(PORT, backlog=4, syn_cookies=False)
    peer = Peer(net)
    peer.syn(40000, 777)  # and never another word
    net.run_for(62.9)
    arrivals = synacks(peer.received())
    # tcp_synack_retries = 5: sent at 0 and again after 1, 3, 7, 15 and 31 s (RTO 1 s,
    # doubling), each arriving one link delay later; all the same SYN-ACK.
    sent_at = [round(t - 2 * DELAY, 6) for t, _s in arrivals]
    assert sent_at == [0.0, 1.0, 3.0, 7.0, 15.0, 31.0]
    assert len({(s.seq, s.ack) for _t, s in arrivals}) == 1
    assert listener.syn_queue_length == 1
    # The entry gives up when its last retransmission goes unanswered: 63 s in all.
    net.run_for(0.2)
    assert listener.syn_queue_length == 0
    assert listener.stats["expired"] == 1
    assert peer.received() == []  # it leaves silently (the peer never spoke again)
    net.run_for(100.0)
    assert peer.received() == []


def test_rst_for_a_half_open_entry_removes_it() -> None:
    net, server = network()
    listener = server.listen(PORT, backlog=4, syn_cookies=False)
    peer = Peer(net)
    peer.syn(40000, 900)
    peer.syn(40001, 1900)
    net.run_for(0.1)
    assert listener.syn_queue_length == 2
    # A RST far outside the window must not tear the entry down (RFC 5961 §3.2).
    peer.send(40000, 900 + 1 + 10_000_000, Flags.RST)
    net.run_for(0.1)
    assert listener.syn_queue_length == 2
    # The RST a client's stack sends for a SYN-ACK it did not expect: SEQ = RCV.NXT.
    peer.send(40000, 901, Flags.RST)
    net.run_for(0.1)
    assert listener.syn_queue_length == 1
    # Linux drops the request (inet_csk_reqsk_queue_drop); nothing reaches accept().
    assert listener.accept_queue_length == 0, "the reset half-open entry was queued for accept()"
    assert listener.owns((peer.address, 40000)) is None
    assert server.accept(PORT) is None
    peer.received()
    net.run_for(2.0)  # only the survivor retransmits its SYN-ACK
    assert {s.dst_port for _t, s in synacks(peer.received())} == {40001}


# ---------------------------------------------------------------------- the accept queue


def established_clients(net: FakeNetwork, host: Host, count: int) -> list[Connection]:
    conns = [connect(net, host) for _ in range(count)]
    net.run_until(lambda: all(c.state is State.ESTABLISHED for c in conns), 5.0)
    net.run_for(0.1)
    return conns


@pytest.mark.parametrize("syn_cookies", [False, True])
def test_accept_queue_holds_backlog_plus_one_then_syns_are_dropped(syn_cookies: bool) -> None:
    net, server = network()
    listener = server.listen(PORT, backlog=2, syn_cookies=syn_cookies)
    clients = client_host(net)
    established_clients(net, clients, 3)
    # Linux: sk_acceptq_is_full() is "ack_backlog > max_ack_backlog": backlog + 1 fit.
    assert listener.accept_queue_length == 3
    assert listener.syn_queue_length == 0
    # Now a SYN is dropped before it takes any room -- even with cookies, which would
    # only add to a queue that is full (Linux's tcp_conn_request).
    cookies = listener.stats["cookies_sent"]  # the third client may have had one
    peer = Peer(net)
    peer.syn(41000, 31337)
    net.run_for(0.5)
    assert synacks(peer.received()) == []
    assert listener.stats["listen_overflows"] == 1
    assert listener.syn_queue_length == 0
    assert listener.stats["cookies_sent"] == cookies


def test_client_refused_by_a_full_accept_queue_gets_in_once_the_application_accepts() -> None:
    net, server = network()
    listener = server.listen(PORT, backlog=2, syn_cookies=False)
    clients = client_host(net)
    established_clients(net, clients, 3)
    started = net.now
    late = connect(net, clients)
    net.run_for(2.0)
    assert late.state is State.SYN_SENT  # its SYN and the retry at 1 s were dropped
    accepted = [server.accept(PORT) for _ in range(3)]
    assert all(c is not None for c in accepted)
    # The retry 3 s after the first SYN finds room: one round trip later it is in.
    established = net.run_until(lambda: late.state is State.ESTABLISHED, 5.0)
    assert established == pytest.approx(started + 3.0 + 2 * DELAY)
    net.run_for(0.1)
    conn = server.accept(PORT)
    assert conn is not None and conn.remote_port == late.local_port
    assert listener.accept_queue_length == 0


def test_final_ack_is_dropped_when_the_accept_queue_is_full_and_the_client_retries() -> None:
    """The client believes it is connected; the listener keeps it half-open, drops its
    ACK (and data) while there is no room, and lets it in once the application accepts."""
    net, server = network()
    listener = server.listen(PORT, backlog=2, syn_cookies=False)
    clients = client_host(net)
    established_clients(net, clients, 2)  # accept queue: 2 of 3
    c3, c4 = connect(net, clients), connect(net, clients)  # both SYNs fit the SYN queue
    net.run_until(lambda: c3.state is c4.state is State.ESTABLISHED, 1.0)
    net.run_for(0.05)
    # c3's ACK filled the accept queue (3 = backlog + 1); c4's ACK found it full.
    assert listener.accept_queue_length == 3
    assert listener.stats["listen_overflows"] >= 1
    half_open = listener.owns((c4.local_ip, c4.local_port))
    assert half_open is not None and half_open.state is State.SYN_RECEIVED
    assert c4.send(b"hello") == 5  # dropped too, until there is room
    net.run_for(2.0)
    assert listener.owns((c4.local_ip, c4.local_port)).state is State.SYN_RECEIVED  # type: ignore[union-attr]
    served = [server.accept(PORT) for _ in range(3)]
    assert all(c is not None for c in served)
    # A SYN-ACK retransmission (re-ACKed by the client) or the client's own data
    # retransmission now completes the handshake.
    net.run_until(lambda: listener.accept_queue_length == 1, 10.0)
    conn = server.accept(PORT)
    assert conn is not None and conn.remote_port == c4.local_port
    net.run_until(lambda: conn.receive_available == 5, 10.0)
    assert conn.receive() == b"hello"


# ---------------------------------------------------------------------- SYN cookies


def overflow(net: FakeNetwork, listener: Listener, peer: Peer) -> None:
    """Fill a backlog-1 SYN queue and overflow it once, so that cookies are in force."""
    peer.syn(50000, 1)
    peer.syn(50001, 2)
    net.run_for(0.1)
    assert listener.syn_queue_length == 1 and listener.stats["cookies_sent"] == 1


def test_ack_with_an_invalid_cookie_gets_a_reset() -> None:
    net, server = network()
    listener = server.listen(PORT, backlog=1, syn_cookies=True)
    peer = Peer(net)
    overflow(net, listener, peer)
    cookie = next(s for _t, s in synacks(peer.received()) if s.dst_port == 50001)
    # A forged ACK: the right port pair, a wrong cookie.
    bad = (cookie.seq + 12345) & 0xFFFFFFFF
    peer.send(50001, 3, Flags.ACK, ack=(bad + 1) & 0xFFFFFFFF)
    net.run_for(0.1)
    ((_t, rst),) = peer.received()
    # RFC 9293 §3.10.7.2: an ACK in LISTEN draws <SEQ=SEG.ACK><CTL=RST>.
    assert rst.flags == Flags.RST and rst.seq == (bad + 1) & 0xFFFFFFFF
    assert listener.stats["cookies_rejected"] == 1
    assert listener.accept_queue_length == 0
    # The genuine cookie completes the connection.
    peer.send(50001, 3, Flags.ACK, ack=(cookie.seq + 1) & 0xFFFFFFFF)
    net.run_for(0.1)
    assert listener.accept_queue_length == 1
    assert listener.stats["cookies_accepted"] == 1


def test_ack_without_a_recent_overflow_gets_a_reset() -> None:
    net, server = network()
    listener = server.listen(PORT, backlog=4, syn_cookies=True)
    peer = Peer(net)
    peer.send(50000, 10, Flags.ACK, ack=424242)
    net.run_for(0.1)
    ((_t, rst),) = peer.received()
    assert rst.flags == Flags.RST and rst.seq == 424242
    assert listener.accept_queue_length == 0


@pytest.mark.parametrize("timestamps", [True, False])
def test_cookie_connection_keeps_window_scaling_and_sack_when_timestamps_are_on(
    timestamps: bool,
) -> None:
    """The cookie's 32 bits hold only the MSS; window scale and SACK ride in the low bits
    of the SYN-ACK's timestamp, as in Linux, so without timestamps they are lost."""
    net, server = network()
    listener = server.listen(PORT, backlog=1, syn_cookies=True)
    overflow(net, listener, Peer(net))
    client = connect(net, client_host(net, Config(secret=SECRET, timestamps=timestamps)))
    net.run_until(lambda: listener.accept_queue_length == 1, 5.0)
    assert listener.stats["cookies_accepted"] == 1
    conn = server.accept(PORT)
    assert conn is not None and client.state is State.ESTABLISHED
    info = conn.info()
    assert info["timestamps"] is timestamps
    assert info["window_scaling"] is timestamps and info["sack"] is timestamps
    # Scaling really applies: the client's 2 MB buffer shows as a window beyond 64 KB.
    client.send(b"x")
    net.run_until(lambda: conn.receive_available == 1, 5.0)
    assert (conn.info()["snd_wnd"] > 65535) is timestamps
    # And data flows both ways over the cookie connection.
    payload = bytes(range(256)) * 400
    assert conn.send(payload) == len(payload)
    got = bytearray()

    def read() -> bool:
        got.extend(client.receive())
        return len(got) == len(payload)

    net.run_until(read, 30.0)
    assert bytes(got) == payload


# ---------------------------------------------------------------------- closed ports


def test_syn_to_a_port_without_listener_is_refused() -> None:
    net, _server = network()
    client = connect(net, client_host(net))
    net.run_until(lambda: client.state is State.CLOSED, 5.0)
    assert isinstance(client.error, ConnectionRefused)
    events = []
    while (ev := client.next_event()) is not None:
        events.append(ev)
    assert any(isinstance(ev, Reset) and isinstance(ev.error, ConnectionRefused) for ev in events)
    assert net.now == pytest.approx(2 * DELAY)  # refused at once, not after retries


def test_closed_port_reset_has_the_rfc_shape() -> None:
    net, _server = network()
    peer = Peer(net)
    peer.syn(42000, 1000)
    peer.send(42001, 5, Flags.ACK, ack=99)
    peer.send(42002, 7, Flags.RST)  # a RST is never answered
    net.run_for(0.1)
    got = {s.dst_port: s for _t, s in peer.received()}
    assert set(got) == {42000, 42001}
    # RFC 9293 §3.10.7.1: no ACK bit -> <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>;
    # with ACK -> <SEQ=SEG.ACK><CTL=RST>.
    assert (got[42000].flags, got[42000].seq, got[42000].ack) == (Flags.RST | Flags.ACK, 0, 1001)
    assert (got[42001].flags, got[42001].seq) == (Flags.RST, 99)


def test_unlisten_resets_connections_not_yet_accepted() -> None:
    net, server = network()
    listener = server.listen(PORT, backlog=4, syn_cookies=False)
    (client,) = established_clients(net, client_host(net), 1)
    assert listener.accept_queue_length == 1
    server.unlisten(PORT)
    net.run_until(lambda: client.state is State.CLOSED, 5.0)
    assert isinstance(client.error, ConnectionReset)
