"""RACK (RFC 8985 §6): loss decided by time since a later-sent segment was delivered, not
by counting duplicate ACKs; each test follows the clause it names."""

from __future__ import annotations

import pytest

from synack.tcp.recovery import REO_WND_PERSIST, Recovery
from synack.tcp.rtt import RttEstimator

from .conftest import MSS, Sock, advance, established
from .test_retransmit import SACK_PEER, ack, flight, offsets

RTT = 0.1


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
