"""RACK (RFC 8985 §6): loss decided by time since a later-sent segment was delivered, not
by counting duplicate ACKs; each test follows the clause it names."""

from __future__ import annotations

import os

import pytest

from synack.tcp import Config
from synack.tcp.recovery import REO_WND_PERSIST, Recovery
from synack.tcp.rtt import RttEstimator
from synack.testing import FakeNetwork, Link, connected_pair

from .conftest import MSS, Sock, advance, established, recv
from .test_retransmit import SACK_PEER, ack, flight, offsets

RTT = 0.1
CLIENT = "198.18.0.1"
SERVER = "198.18.0.2"


def sender() -> Sock:
    """ESTABLISHED after a 100 ms handshake (SRTT = min_RTT = 100 ms), four segments sent
    at t = 0.1; the peer SACKs segment 1 one round trip later, at t = 0.2."""
    s = established(rtt=RTT, sack=True, peer=SACK_PEER)
    flight(s, 4)
    s.at(2 * RTT)
    assert ack(s, 0, ((MSS, 2 * MSS),)) == []
    return s


def test_a_segment_reordered_within_reo_wnd_is_not_lost() -> None:
    """§6.2 Step 5: a segment sent before the one delivered is lost only once
    "Segment.xmit_ts + RACK.rtt + RACK.reo_wnd - Now()" is <= 0; with one segment SACKed
    and no reordering seen, reo_wnd is min_RTT / 4 (Step 4). Segment 0 arrives 10 ms
    late, within the 25 ms window: nothing is retransmitted."""
    s = sender()
    s.at(2 * RTT + 0.01)
    assert ack(s, 2 * MSS) == []
    sent = advance(s, 3 * RTT)
    assert [t for t, x in sent if x.payload] == []
    assert s.conn.info()["retransmits"] == 0
    assert not s.conn.info()["in_recovery"]


def test_a_segment_beyond_reo_wnd_is_lost_at_rack_rtt_plus_reo_wnd_after_its_send() -> None:
    """§6.2: "it is RECOMMENDED that the sender install a reordering timer"; when it
    fires, segment 0 (sent at 0.1) is lost at 0.1 + RACK.rtt (0.1) + reo_wnd (0.025),
    and fast recovery resends it then -- not after DupThresh SACKs, not after the RTO."""
    s = sender()
    assert s.conn.get_timer() == pytest.approx(0.1 + RTT + RTT / 4)
    sent = advance(s, 2 * RTT + RTT / 4)
    data = [(t, x) for t, x in sent if x.payload]
    assert offsets([x for _t, x in data]) == [0]
    assert data[0][0] == pytest.approx(0.225)
    assert s.conn.info()["fast_retransmits"] == 1
    assert s.conn.info()["timeouts"] == 0


def test_without_rack_the_same_loss_waits_for_dupthresh_or_the_rto() -> None:
    """Config(rack=False): RFC 6675's DupThresh path, kept for comparison. One SACKed
    segment is below the threshold, so the reordering timer does not exist and the
    first timer to run is the RTO."""
    s = established(rtt=RTT, sack=True, peer=SACK_PEER, rack=False, tail_loss_probe=False)
    flight(s, 4)
    s.at(2 * RTT)
    assert ack(s, 0, ((MSS, 2 * MSS),)) == []
    assert s.conn.get_timer() == pytest.approx(RTT + s.conn.rto)  # set when it was sent


def recovery() -> Recovery:
    rtt = RttEstimator(1.0, 0.2, 120.0)
    rtt.sample(RTT)
    rec = Recovery(rtt, MSS)
    rec.sack_ok = True
    rec.reordering_seen = True  # Step 4 returns 0 without reordering seen
    return rec


def test_dsack_widens_reo_wnd_once_per_round_and_is_bounded_by_srtt() -> None:
    """§6.2 Step 4: "If RACK.dsack_round is None AND any DSACK option is present on latest
    received ACK: RACK.dsack_round = SND.NXT; RACK.reo_wnd_mult += 1;
    RACK.reo_wnd_persist = 16", and reo_wnd = min(reo_wnd_mult * min_RTT / 4, SRTT)."""
    rec = recovery()
    assert rec.reo_wnd() == pytest.approx(RTT / 4)
    rec.on_dsack(0, MSS, una=0, snd_max=10 * MSS)
    assert rec.reo_wnd() == pytest.approx(2 * RTT / 4)
    assert rec.reo_wnd_persist == REO_WND_PERSIST
    rec.on_dsack(MSS, 2 * MSS, una=0, snd_max=10 * MSS)  # the same round: no growth
    assert rec.reo_wnd() == pytest.approx(2 * RTT / 4)
    rec.on_dsack(MSS, 2 * MSS, una=10 * MSS, snd_max=20 * MSS)  # the round has passed
    assert rec.reo_wnd() == pytest.approx(3 * RTT / 4)
    for round_end in range(3, 10):
        rec.on_dsack(0, MSS, una=round_end * 10 * MSS, snd_max=(round_end + 1) * 10 * MSS)
    assert rec.reo_wnd() == pytest.approx(RTT)  # "bounded ... SHOULD be SRTT"


def test_reo_wnd_returns_to_its_base_after_16_recoveries_without_dsack() -> None:
    """§6.2 Step 4: "Else if exiting Fast or RTO recovery: RACK.reo_wnd_persist -= 1; If
    RACK.reo_wnd_persist <= 0: RACK.reo_wnd_mult = 1"."""
    rec = recovery()
    rec.on_dsack(0, MSS, una=0, snd_max=10 * MSS)
    for _ in range(REO_WND_PERSIST - 1):
        rec._recovery_ended()
        assert rec.reo_wnd() == pytest.approx(2 * RTT / 4)
    rec._recovery_ended()
    assert rec.reo_wnd() == pytest.approx(RTT / 4)


# RFC 8985 §6.2 Steps 2-3 judge only what an ACK newly acknowledges.


def rec_of(s: Sock) -> Recovery:
    return s.conn._rec


def test_in_order_sacks_after_a_loss_are_not_reordering() -> None:
    """§6.2 Step 3: "Else if Segment.end_seq < RACK.fack AND Segment.retransmitted is
    FALSE: RACK.reordering_seen = TRUE", for each segment newly acknowledged. Segment 0 is
    lost and 1..7 arrive in order, one SACK each: no segment is newly SACKed below
    RACK.fack, so reordering is never seen, and in the recovery reo_wnd is 0 (Step 4)."""
    s = established(rtt=RTT, sack=True, peer=SACK_PEER)
    flight(s, 8)
    for k in range(1, 8):
        s.at(2 * RTT + k * 0.001)
        ack(s, 0, ((MSS, (k + 1) * MSS),))
        assert not rec_of(s).reordering_seen, k
    advance(s, 3 * RTT)
    assert s.conn.info()["in_recovery"]
    assert rec_of(s).reo_wnd() == 0
    s.at(3 * RTT + 0.01)
    ack(s, 8 * MSS)  # the retransmission of segment 0 arrives
    assert not rec_of(s).reordering_seen


def test_a_late_segment_below_fack_is_reordering() -> None:
    """§6.2 Step 3 for a segment newly SACKed below RACK.fack: 0 is lost, 2 is late."""
    s = established(rtt=RTT, sack=True, peer=SACK_PEER)
    flight(s, 4)
    s.at(2 * RTT)
    ack(s, 0, ((MSS, 2 * MSS),))
    ack(s, 0, ((MSS, 2 * MSS), (3 * MSS, 4 * MSS)))
    assert not rec_of(s).reordering_seen
    ack(s, 0, ((MSS, 4 * MSS),))
    assert rec_of(s).reordering_seen


def test_a_late_segment_acknowledged_cumulatively_is_reordering() -> None:
    """§6.2 Step 3 "(selectively or cumulatively) acknowledged": segment 0 arrives after
    1 and 2, and only the cumulative ACK shows it."""
    s = established(rtt=RTT, sack=True, peer=SACK_PEER)
    flight(s, 4)
    s.at(2 * RTT)
    ack(s, 0, ((MSS, 2 * MSS),))
    ack(s, 0, ((MSS, 3 * MSS),))
    assert not rec_of(s).reordering_seen
    ack(s, 3 * MSS)
    assert rec_of(s).reordering_seen


def test_a_cumulative_ack_with_new_sack_blocks_is_not_reordering() -> None:
    """A delayed ACK of segment 0 folded into the SACK of segment 2 (1 lost): 0 is newly
    acknowledged before 2 in transmit order, so it is judged against RACK.fack as it was
    before this ACK, not as the ACK's own SACK block left it."""
    s = established(rtt=RTT, sack=True, peer=SACK_PEER)
    flight(s, 4)
    s.at(2 * RTT)
    ack(s, MSS, ((2 * MSS, 3 * MSS),))
    assert not rec_of(s).reordering_seen


def test_rack_rtt_comes_from_the_newly_sacked_segment() -> None:
    """§6.2 Step 2: "For each Segment newly acknowledged ... RACK.rtt = rtt". Segments 0-1
    leave at 0.1, 2-3 at 0.15; 3 is SACKed at 0.25, then 1 at 0.30: RACK.rtt is 1's
    0.2 s, not the 0.15 s of 3, SACKed before."""
    s = established(rtt=RTT, sack=True, peer=SACK_PEER)
    flight(s, 2)
    s.at(0.15)
    s.conn.send(bytes(2 * MSS))
    recv(s)
    s.at(0.25)
    ack(s, 0, ((3 * MSS, 4 * MSS),))
    assert rec_of(s).rack_rtt == pytest.approx(0.1)
    s.at(0.30)
    ack(s, 0, ((MSS, 2 * MSS), (3 * MSS, 4 * MSS)))
    assert rec_of(s).rack_rtt == pytest.approx(0.2)


def bulk_over(link: Link, size: int = 600_000) -> tuple[Recovery, int]:
    """`size` random bytes client to server over `link` both ways: the client's
    recovery, and the most transmission records (bursts) it ever had in flight."""
    net = FakeNetwork(seed=11, link=Link(delay=0.01))
    client, server = connected_pair(net, Config(secret=b"rack-reordering!" * 2))
    net.run_for(0.5)
    net.set_default_link(link)
    rec: Recovery = client._rec
    received = bytearray()
    peak = [0]

    def on_server(now: float) -> None:
        received.extend(server.receive())

    def on_client(now: float) -> None:
        if len(rec.sent) > peak[0]:
            peak[0] = len(rec.sent)
        client.send(data[client_sent[0] : client_sent[0] + 65536])

    data = os.urandom(size)
    client_sent = [0]
    orig_send = client.send

    def send(chunk: bytes) -> int:
        n = orig_send(chunk)
        client_sent[0] += n
        return n

    client.send = send  # type: ignore[method-assign]
    net.set_app(SERVER, on_server)
    net.set_app(CLIENT, on_client)
    on_client(net.now)
    net.run_until(lambda: len(received) == size, 60.0, what="the transfer")
    assert bytes(received) == data
    return rec, peak[0]


def test_loss_without_reordering_never_sets_reordering_seen() -> None:
    """Losses, each repaired, with many bursts in flight and nothing reordered: Step 3
    never finds a segment delivered below RACK.fack."""
    rec, peak = bulk_over(Link(delay=0.01, loss=0.02))
    assert peak >= 3
    assert rec.fast_retransmits > 0
    assert not rec.reordering_seen


def test_reordering_on_the_link_sets_reordering_seen() -> None:
    """A packet held back past one later packet (1 ms apart at 1.5 MB/s) arrives before
    RACK deems it lost: the cumulative ACK that covers it is Step 3's evidence. (Held
    back past DupThresh packets, it would be resent first, and only a D-SACK tells.)"""
    rec, peak = bulk_over(Link(delay=0.01, rate=1.5e6, reorder=0.02, reorder_delay=0.0015))
    assert peak >= 3
    assert rec.reordering_seen
