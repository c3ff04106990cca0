"""SACK loss recovery beyond RFC 6675's minimum: retransmissions that are lost again are
found without waiting for the RTO, and a loss right at the last recovery point starts a
new recovery. Both matter most when the RTT is far below the 200 ms minimum RTO."""

from __future__ import annotations

from synack.tcp import Config, State
from synack.testing import FakeNetwork, Link, connected_pair
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
    # losses right after a recovery ends, is repaired by SACK recovery, with no RTO.
    net = FakeNetwork(seed=1, link=Link(delay=0.0005))
    client, server = connected_pair(net, Config(secret=b"recovery" * 4))
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
    assert client.info()["timeouts"] == 0
    assert client.state is State.ESTABLISHED
