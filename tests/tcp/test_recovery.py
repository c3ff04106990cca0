"""SACK loss recovery beyond RFC 6675's minimum: retransmissions that are lost again are
found without waiting for the RTO, and a loss right at the last recovery point starts a
new recovery. Both matter most when the RTT is far below the 200 ms minimum RTO."""

from __future__ import annotations

import random
from collections import deque

from synack.tcp import Config, State
from synack.tcp.recovery import Sent
from synack.testing import FakeNetwork, Link, connected_pair
from synack.testing.loss_runs import RtoAudit, RtoKind
from synack.wire.checksum import address_bytes
from synack.wire.tcp import Segment

from .conftest import MSS, Sock, established, recv
from .test_retransmit import SACK_PEER, ack, offsets


def sack_blocks(*segments: tuple[int, int]) -> tuple[tuple[int, int], ...]:
    """SACK blocks covering segment numbers [first, last) of our stream."""
    return tuple((first * MSS, last * MSS) for first, last in segments)


def data(segments: list[Segment]) -> list[Segment]:
    return [x for x in segments if x.payload]


def test_a_lost_retransmission_is_resent_before_the_rto() -> None:
    s: Sock = established(rtt=0.1, sack=True, peer=SACK_PEER, congestion_control="newreno")
    s.conn.send(bytes(30 * MSS))
    assert offsets(recv(s)) == [i * MSS for i in range(10)]  # the initial window
    # Segment 0 is lost; three SACKs for 1..3 start recovery and resend it.
    ack(s, 0, sack_blocks((1, 2)))
    ack(s, 0, sack_blocks((1, 3)))
    out = data(ack(s, 0, sack_blocks((1, 4))))
    assert offsets(out)[:1] == [0], "fast retransmit of segment 0"
    # The retransmission is lost too. As the rest of the first flight is SACKed, new
    # segments go out, sent after the retransmission.
    later: list[int] = []
    for last in range(5, 11):
        out = data(ack(s, 0, sack_blocks((1, last))))
        assert 0 not in offsets(out), "nothing says the retransmission was lost yet"
        later += offsets(out)
    assert later and min(later) >= 10 * MSS
    # One of those arrives and is SACKed while segment 0 is still missing: its
    # retransmission was lost, and it goes out again at once, not after a timeout.
    # (Segments 10..13 went out before the retransmission, by limited transmit: SACKs
    # for them would prove nothing.)
    first_later = min(later) // MSS
    out = data(ack(s, 0, sack_blocks((1, 10), (first_later, first_later + 1))))
    assert 0 in offsets(out), "the lost retransmission is sent again"
    assert s.conn.info()["timeouts"] == 0


def test_five_percent_loss_recovers_without_timeouts() -> None:
    # Random loss of 5% each way, 1 ms RTT: every loss, including lost retransmissions and
    # losses right after a recovery ends, is repaired by SACK recovery: no RTO that a
    # later segment's SACK could have spared (RtoAudit). A retransmission lost with
    # nothing sent after it (the very tail, inside a recovery, where RFC 8985 §7.2 sends
    # no probe) can only be found by the RTO, as in Linux.
    net = FakeNetwork(seed=1, link=Link(delay=0.0005))
    client, server = connected_pair(net, Config(secret=b"recovery" * 4))
    audit = RtoAudit(client, address_bytes("198.18.0.1"), address_bytes("198.18.0.2"))
    audit.install(net)
    net.set_default_link(Link(delay=0.0005, loss=0.05))
    payload = bytes(range(256)) * 4096  # 1 MiB
    sent = client.send(payload)
    received = bytearray()

    def feed(now: float) -> None:
        nonlocal sent
        if sent < len(payload):
            sent += client.send(payload[sent:])

    def drain(now: float) -> None:
        received.extend(server.receive())

    net.set_app("198.18.0.1", feed)
    net.set_app("198.18.0.2", drain)
    net.run_until(lambda: len(received) == len(payload), 60.0, what="1 MiB through 5% loss")
    assert bytes(received) == payload
    assert client.info()["retransmits"] > 20  # there was loss to repair
    assert len(audit.verdicts) == client.info()["timeouts"] <= 1
    assert [v.kind for v in audit.verdicts if v.kind is RtoKind.AVOIDABLE] == []
    assert client.state is State.ESTABLISHED


def test_a_partial_ack_sends_the_segments_it_shows_lost_at_once() -> None:
    """RFC 6675 §5 (C): "If cwnd - pipe >= 1 SMSS the sender SHOULD transmit one or more
    segments as follows: (C.1) The scoreboard MUST be queried via NextSeg () for the
    sequence number range of the next segment to transmit (if any), and the given
    segment sent." -- on a partial ACK as on any other ACK of the recovery.

    Which segments NextSeg () returns is where the RFCs leave room: RFC 6675's IsLost ()
    counts SACKed segments above a hole, and after a partial ACK nothing may lie above
    the tail. Linux (RACK, RFC 8985 §6.2) deems lost whatever was sent before a
    transmission that has since been delivered: the partial ACK proves that the
    retransmission it covers arrived, so the unSACKed segments sent before it are lost.
    """
    # The classic path (RFC 6675 and this Linux-like rule).
    s: Sock = established(
        rtt=0.1, sack=True, peer=SACK_PEER, congestion_control="newreno", rack=False
    )
    s.conn.send(bytes(10 * MSS))
    assert offsets(recv(s)) == [i * MSS for i in range(10)]
    # Segments 0, 8 and 9 are lost. SACKs for 1..7 start recovery (at 1..3) and resend 0.
    resent: list[Segment] = []
    for last in range(2, 8):
        resent += data(ack(s, 0, sack_blocks((1, last))))
    assert offsets(resent) == [0]
    assert s.conn.cwnd == 5 * MSS  # RFC 5681 eq. (4): FlightSize / 2
    # The retransmission arrives, and its partial ACK one round trip later (sooner, it
    # could only be the original's, RFC 8985 §6.2): up to the hole at 8. Nothing is in
    # the pipe any more (cwnd - pipe = 5 SMSS), and segments 8 and 9 went out before
    # the retransmission that just arrived: both are resent now, not after the RTO.
    s.at(0.2)
    assert offsets(data(ack(s, 8 * MSS))) == [8 * MSS, 9 * MSS]
    assert s.conn.info()["timeouts"] == 0
    assert offsets(data(ack(s, 10 * MSS))) == []
    assert not s.conn.info()["in_recovery"]


def test_a_partial_ack_resends_a_hole_below_sacked_data_at_once() -> None:
    """RFC 6675 §5 (C) and §4 NextSeg () (1): "If there exists a smallest unSACKed
    sequence number 'S2' that meets the following three criteria for determining loss,
    the sequence range of one segment of up to SMSS octets starting with S2 MUST be
    returned." A partial ACK that shows the retransmission of segment 0 delivered shows
    segment 8, sent before it and still not SACKed, lost (RACK's rule, as in Linux)."""
    s: Sock = established(
        rtt=0.1, sack=True, peer=SACK_PEER, congestion_control="newreno", rack=False
    )
    s.conn.send(bytes(10 * MSS))
    recv(s)
    resent: list[Segment] = []
    for last in range(2, 8):
        resent += data(ack(s, 0, sack_blocks((1, last))))
    assert offsets(resent) == [0]
    # Segments 0 and 8 were lost; the partial ACK, a round trip after the
    # retransmission, brings the SACK of 9 with it.
    s.at(0.2)
    assert offsets(data(ack(s, 8 * MSS, sack_blocks((9, 10))))) == [8 * MSS]
    assert s.conn.info()["timeouts"] == 0


def worst_srtt_through_heavy_loss(seed: int, path_rtt: float) -> float:
    """76 KB over a path of `path_rtt`, with 20% loss each way once the handshake is done:
    the highest SRTT the sender had at any moment."""
    net = FakeNetwork(seed=seed, link=Link(delay=path_rtt / 2))
    client, server = connected_pair(net, Config(secret=b"heavy-loss" * 4))
    net.set_default_link(Link(delay=path_rtt / 2, loss=0.2))
    payload = bytes(range(256)) * 304  # 76 KB
    sent = client.send(payload)
    received = bytearray()
    worst = 0.0

    def feed(now: float) -> None:
        nonlocal sent, worst
        if sent < len(payload):
            sent += client.send(payload[sent:])
        worst = max(worst, client.srtt or 0.0)

    def drain(now: float) -> None:
        received.extend(server.receive())

    net.set_app("198.18.0.1", feed)
    net.set_app("198.18.0.2", drain)
    net.run_until(lambda: len(received) == len(payload), 3600.0, what=f"seed {seed}")
    assert bytes(received) == payload
    assert client.info()["retransmits"] > 0  # there was loss to repair
    return worst


def test_heavy_loss_never_inflates_srtt() -> None:
    """RFC 6298 §3 (Karn): "RTT samples MUST NOT be made using segments that were
    retransmitted (and thus for which it is ambiguous whether the reply was for the first
    instance of the packet or a later instance). The only case when TCP can safely take
    RTT samples from retransmitted segments is when the TCP timestamp option is employed,
    since the timestamp option removes the ambiguity regarding which instance of the data
    segment triggered the acknowledgment."

    Under heavy loss an ACK is lost, the retransmission arrives as a duplicate, and the
    receiver -- keeping TS.Recent as RFC 7323 §4.3 (2) says -- echoes the timestamp of an
    earlier segment, seconds old: no instance is named, and the sample must not be taken.
    76 KB over a 100 ms path with 20% loss each way once the handshake is done: whatever
    the seed, SRTT never exceeds four times the path's round trip (it reached a minute,
    and the transfer ten minutes, before)."""
    for seed in range(100):
        worst = worst_srtt_through_heavy_loss(seed, 0.1)
        assert worst <= 4 * 0.1, f"seed {seed}: SRTT reached {worst:.3f} s"


def _records_held(conn: object) -> int:
    """The transmission records the sender's recovery keeps, in whichever of its queues
    and lists: what must not grow with the bytes a connection has carried."""
    rec = conn._rec  # type: ignore[attr-defined]
    held = 0
    for name in type(rec).__slots__:
        value = getattr(rec, name, None)
        if isinstance(value, (deque, list)):
            held += sum(isinstance(item, Sent) for item in value)
    return held


def _bulk(total: int, loss: float, seed: int) -> int:
    """Move `total` random bytes in 1448-byte writes (one burst each, as a chat or a
    request stream makes); the records the sender holds once all is acknowledged."""
    net = FakeNetwork(seed=seed, link=Link(delay=0.005))
    client, server = connected_pair(net, Config())
    net.set_default_link(Link(delay=0.005, loss=loss))
    payload = random.Random(seed).randbytes(total)
    sent = 0
    got = bytearray()

    def feed(now: float) -> None:
        nonlocal sent
        while sent < total and client.send_space >= MSS:
            sent += client.send(payload[sent : sent + MSS])

    def drain(now: float) -> None:
        got.extend(server.receive())

    net.set_app("198.18.0.1", feed)
    net.set_app("198.18.0.2", drain)
    feed(net.now)
    net.run_until(
        lambda: len(got) == total and client.snd_una == client.snd_max,
        timeout=600.0,
        what="every byte delivered and acknowledged",
    )
    assert bytes(got) == payload
    return _records_held(client)


def test_the_sender_forgets_every_transmission_once_all_is_acknowledged() -> None:
    # A loss-free flow never runs RACK's detection, which is what used to drop records
    # from its time-ordered queue: one record per burst stayed for the connection's life.
    assert _bulk(400 * MSS, 0.0, seed=1) == 0
    assert _bulk(400 * MSS, 0.03, seed=2) == 0
