"""Retransmission: the RTO of RFC 6298 with backoff and Karn's rule, SYN and SYN-ACK
retries, giving up, fast retransmit and NewReno partial ACKs (RFC 5681, RFC 6582,
RFC 3042), and SACK (RFC 2018 blocks from the receiver, RFC 6675 recovery at the sender)."""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise
from typing import Any

import pytest

from synack.tcp import ConnectionTimedOut, State
from synack.wire.tcp import Segment

from .conftest import (
    LOCAL_ISS,
    MSS,
    RECV,
    REMOTE_ISS,
    SEND,
    A,
    P,
    S,
    Sock,
    established,
    events,
    fire,
    recv,
    recv_nothing,
    seg,
    send,
    state,
    syn_received,
    syn_sent,
    tsval,
)

SACK_PEER = {"sack_permitted": True}


def ack(
    s: Sock, acked: int, sack: tuple[tuple[int, int], ...] = (), **changes: Any
) -> list[Segment]:
    """The peer acknowledges `acked` bytes of ours, SACKing byte ranges (offsets into our
    stream); returns what we send in answer."""
    blocks = tuple((LOCAL_ISS + 1 + lo, LOCAL_ISS + 1 + hi) for lo, hi in sack)
    send(s, seg(SEND, ack=LOCAL_ISS + 1 + acked, sack=blocks, **changes))
    return recv(s)


def offsets(segments: list[Segment]) -> list[int]:
    """Where each segment's data starts in our stream."""
    return [(x.seq - LOCAL_ISS - 1) & 0xFFFFFFFF for x in segments]


def flight(s: Sock, count: int) -> list[Segment]:
    s.conn.send(bytes(range(256)) * (count * MSS // 256) + bytes(count * MSS % 256))
    sent = recv(s)
    assert offsets(sent) == [i * MSS for i in range(count)]
    return sent


# ---------------------------------------------------------------------------- the RTO


def test_rto_from_the_handshake_sample() -> None:
    # RFC 6298 §2.2: SRTT <- R, RTTVAR <- R/2, RTO <- SRTT + max(G, 4*RTTVAR).
    s = established(rtt=0.1)
    assert s.conn.srtt == pytest.approx(0.1)
    assert s.conn.rto == pytest.approx(0.3)


def test_rto_is_at_least_rto_min() -> None:
    # RFC 6298 §2.4 allows a minimum; the config's rto_min (200 ms, as Linux) floors
    # the variance term, so the RTO is at least SRTT + rto_min.
    s = established(rtt=0.0)
    assert s.conn.rto == pytest.approx(0.2)
    s = established(rtt=0.0, rto_min=0.5, rto_initial=1.0)
    assert s.conn.rto == pytest.approx(0.5)


def test_retransmission_timeout_with_backoff() -> None:
    s = established(rtt=0.1)
    s.conn.send(b"abc")
    [first] = recv(s)
    assert s.conn.get_timer() == pytest.approx(0.4)
    # §5.4-5.6: retransmit the earliest unacknowledged segment, double the RTO, restart.
    expected_times = [0.4, 1.0, 2.2, 4.6, 9.4]
    for when, nxt in pairwise(expected_times):
        assert fire(s) == [first]
        assert s.now == pytest.approx(when)
        assert s.conn.get_timer() == pytest.approx(nxt)
    assert s.conn.info()["timeouts"] == 4
    ack(s, 3)
    assert s.conn.get_timer() is None


def test_backoff_stops_at_rto_max() -> None:
    s = established(rtt=0.1, rto_max=1.0)
    s.conn.send(b"abc")
    recv(s)
    times = []
    for _ in range(5):
        fire(s)
        times.append(s.now)
    gaps = [b - a for a, b in pairwise(times)]
    assert gaps == pytest.approx([0.6, 1.0, 1.0, 1.0])


def test_give_up_after_max_retransmits() -> None:
    s = established(rtt=0.1, max_retransmits=3)
    s.conn.send(b"abc")
    [first] = recv(s)
    for _ in range(3):
        assert fire(s) == [first]
    assert fire(s) == []
    assert state(s) is State.CLOSED
    assert events(s) == ["TimedOut(ConnectionTimedOut)", "Closed"]
    with pytest.raises(ConnectionTimedOut):
        s.conn.send(b"x")
    with pytest.raises(ConnectionTimedOut):
        s.conn.receive()


def test_user_timeout_gives_up_early() -> None:
    # RFC 5482 / RFC 9293 §3.8.3: abort when data stays unacknowledged this long.
    s = established(rtt=0.1, user_timeout=2.0)
    s.conn.send(b"abc")
    recv(s)
    fire(s)  # 0.4
    fire(s)  # 1.0
    assert fire(s) == []  # 2.2: 2.1 s without progress
    assert state(s) is State.CLOSED
    assert events(s) == ["TimedOut(ConnectionTimedOut)", "Closed"]


def test_rto_goes_back_to_one_segment_and_slow_starts() -> None:
    # RFC 5681 §3.1: after a timeout, "cwnd MUST be set to no more than the loss window,
    # LW, which equals 1 full-sized segment", and resend from SND.UNA.
    s = established(rtt=0.1)
    flight(s, 5)
    assert offsets(fire(s)) == [0]
    assert s.conn.cwnd == MSS
    assert offsets(ack(s, MSS)) == [MSS, 2 * MSS]
    assert offsets(ack(s, 3 * MSS)) == [3 * MSS, 4 * MSS]
    assert ack(s, 5 * MSS) == []
    assert s.conn.get_timer() is None


# ---------------------------------------------------------------------------- Karn


def test_karn_no_sample_from_a_retransmitted_segment() -> None:
    # RFC 6298 §3: "RTT samples MUST NOT be made using segments that were retransmitted",
    # and the backed-off RTO stays until a valid sample (§5.7 note on Karn's algorithm).
    s = established(rtt=0.1)
    s.conn.send(b"abc")
    recv(s)
    fire(s)  # at 0.4; RTO 0.6
    s.at(0.45)
    ack(s, 3)
    assert s.conn.srtt == pytest.approx(0.1)
    assert s.conn.rto == pytest.approx(0.6)
    s.conn.send(b"def")
    recv(s)
    assert s.conn.get_timer() == pytest.approx(0.45 + 0.6)
    s.at(0.55)
    ack(s, 6)  # a fresh segment: a valid sample of 0.1 s
    assert s.conn.srtt == pytest.approx(0.1)
    # 0.1 + max(4 * (3/4 * 0.05), rto_min): the 200 ms floor of the variance term.
    assert s.conn.rto == pytest.approx(0.3)


@pytest.mark.parametrize("echo", ["original", "retransmission"])
def test_karn_with_timestamps_needs_the_echo_of_the_retransmission(echo: str) -> None:
    """RFC 6298 §3: "RTT samples MUST NOT be made using segments that were retransmitted
    (and thus for which it is ambiguous whether the reply was for the first instance of
    the packet or a later instance). The only case when TCP can safely take RTT samples
    from retransmitted segments is when the TCP timestamp option is employed, since the
    timestamp option removes the ambiguity regarding which instance of the data segment
    triggered the acknowledgment."

    It removes it only when the echo is that instance's. RFC 7323 §4.3 (2) copies a
    TSval to TS.Recent only from a segment with "SEG.SEQ <= Last.ACK.sent" that TCP
    accepts, so a retransmission that arrives as a duplicate (its first ACK was lost) is
    answered with the TS.Recent of an earlier segment: an echo older than the
    retransmission that triggered the ACK. Measuring from it would count the whole RTO
    wait as round-trip time; RFC 7323 §4.1 ("A TSecr value received in a segment MAY
    be used to update the averaged RTT measurement only if ...") lets the sender refuse
    it, and Karn's rule says it must.
    """
    s = established(rtt=0.1, timestamps=True, peer={"ts": (1000, tsval(0))})
    s.conn.send(b"abc")
    [first] = recv(s)
    assert first.options.timestamps == (tsval(0.1), 1000)
    assert fire(s) == [seg(first, options=replace(first.options, timestamps=(tsval(0.4), 1000)))]
    assert s.conn.rto == pytest.approx(0.6)  # backed off (RFC 6298 §5.5)
    s.at(0.45)
    echoed = tsval(0.1) if echo == "original" else tsval(0.4)
    ack(s, 3, ts=(1100, echoed))
    if echo == "original":
        # No sample: SRTT keeps the handshake's 0.1 s and the RTO stays backed off
        # until a valid sample (RFC 6298 §5.7's note on Karn's algorithm).
        assert s.conn.srtt == pytest.approx(0.1)
        assert s.conn.rto == pytest.approx(0.6)
    else:
        # The echo of the retransmission itself: a valid sample of 0.05 s.
        assert s.conn.srtt == pytest.approx(0.1 * 7 / 8 + 0.05 / 8)
        assert s.conn.rto < 0.6


def test_syn_retransmission_gives_no_sample_and_rto_of_3s() -> None:
    s = syn_sent()
    fire(s)
    s.at(1.05)
    send(s, seg(SEND, seq=REMOTE_ISS, flags=S | A, mss=MSS))
    assert state(s) is State.ESTABLISHED
    assert s.conn.srtt is None
    assert s.conn.rto == pytest.approx(3.0)  # RFC 6298 §5.7
    assert s.conn.cwnd == MSS  # RFC 5681 §3.1: a lost SYN means an initial window of one


# ---------------------------------------------------------------------------- SYN and SYN-ACK


def test_syn_retries_then_gives_up() -> None:
    s = syn_sent(syn_retries=3)
    syn = seg(RECV, seq=LOCAL_ISS, ack=0, flags=S, mss=1460)
    for when in (1.0, 3.0, 7.0):
        assert fire(s) == [syn]
        assert s.now == pytest.approx(when)
    assert s.conn.get_timer() == pytest.approx(15.0)
    assert fire(s) == []
    assert state(s) is State.CLOSED
    assert events(s) == ["TimedOut(ConnectionTimedOut)", "Closed"]


def test_syn_ack_retries_then_gives_up() -> None:
    s = syn_received(synack_retries=2, syn_retries=10)
    synack = seg(RECV, seq=LOCAL_ISS, flags=S | A, mss=1460)
    for when in (1.0, 3.0):
        assert fire(s) == [synack]
        assert s.now == pytest.approx(when)
    assert fire(s) == []
    assert s.now == pytest.approx(7.0)
    assert state(s) is State.CLOSED
    assert events(s) == ["TimedOut(ConnectionTimedOut)", "Closed"]


# ---------------------------------------------------------------------------- fast retransmit


def test_fast_retransmit_on_the_third_duplicate_ack() -> None:
    s = established(rtt=0.1, congestion_control="newreno")
    sent = flight(s, 6)
    assert ack(s, 0) == []
    assert ack(s, 0) == []
    assert ack(s, 0) == [sent[0]]  # RFC 5681 §3.2: retransmit without waiting for the RTO
    assert s.conn.info()["fast_retransmits"] == 1
    assert s.conn.info()["in_recovery"]


@pytest.mark.parametrize("sack", [False, True], ids=["no-sack", "sack"])
@pytest.mark.parametrize("cc", ["newreno", "cubic"])
def test_fast_retransmit_with_a_full_initial_window(cc: str, sack: bool) -> None:
    # RFC 5681 §3.2 step 4 ("The lost segment starting at SND.UNA MUST be retransmitted")
    # and RFC 6675 §5 step 4.2: entering recovery retransmits the first hole at once,
    # whatever the reduced cwnd says about the rest of the flight.
    s = established(rtt=0.1, congestion_control=cc, sack=sack, peer=SACK_PEER if sack else None)
    sent = flight(s, 10)
    blocks = [((MSS, (i + 2) * MSS),) if sack else () for i in range(3)]
    assert ack(s, 0, blocks[0]) == []
    assert ack(s, 0, blocks[1]) == []
    assert ack(s, 0, blocks[2]) == [sent[0]]


def test_limited_transmit_sends_new_data_on_the_first_two_dupacks() -> None:
    # RFC 3042: each of the first two duplicate ACKs lets one new segment out.
    s = established(rtt=0.1, congestion_control="newreno")
    s.conn.send(bytes(12 * MSS))
    assert len(recv(s)) == 10  # the initial window (RFC 6928)
    assert offsets(ack(s, 0)) == [10 * MSS]
    assert offsets(ack(s, 0)) == [11 * MSS]
    assert offsets(ack(s, 0)) == [0]


@pytest.mark.parametrize("sack", [False, True], ids=["no-sack", "sack"])
def test_limited_transmit_is_two_segments_and_stays_out_of_flight_size(sack: bool) -> None:
    """RFC 3042 §2: a new segment on each of the first two duplicate ACKs, only if "the
    amount of outstanding data would remain less than or equal to the congestion window
    plus 2 segments. In other words, the sender can only send two segments beyond the
    congestion window (cwnd)." With SACK, the SACKed segment of each duplicate ACK has
    already left the pipe: that is the room limited transmit gives, not more.

    RFC 5681 §3.2 step 2: "When the third duplicate ACK is received, a TCP MUST set
    ssthresh to no more than the value given in equation (4). When [RFC3042] is in use,
    additional data sent in limited transmit MUST NOT be included in this calculation."
    """
    s = established(
        rtt=0.1, congestion_control="newreno", sack=sack, peer=SACK_PEER if sack else None
    )
    s.conn.send(bytes(20 * MSS))
    assert len(recv(s)) == 10  # the initial window, cwnd = 10 segments
    blocks = [((MSS, (i + 2) * MSS),) if sack else () for i in range(3)]
    assert offsets(ack(s, 0, blocks[0])) == [10 * MSS]
    assert offsets(ack(s, 0, blocks[1])) == [11 * MSS]
    assert offsets(ack(s, 0, blocks[2]))[:1] == [0]
    # FlightSize is the 10 segments outstanding before limited transmit: ssthresh = 5.
    assert s.conn.ssthresh == 5 * MSS


@pytest.mark.parametrize(
    ("batched", "flight"), [(True, 10), (False, 12)], ids=["one-batch", "one-at-a-time"]
)
def test_flight_size_is_the_flight_before_a_batch_of_acks(batched: bool, flight: int) -> None:
    """RFC 5681 §3.2 step 2's FlightSize when the ACKs arrive in one batch (UDP GRO):
    a cumulative ACK of 4 segments, then three that SACK beyond a hole, all processed
    before the sender may send. The flight the loss was found in is the 10 segments the
    sender had out, not the 6 left between two ACKs of the batch (ssthresh 3 segments).
    Read one at a time, the sender refills after the cumulative ACK (4 segments, and 2
    more that slow start's growth to 12 allows), and the flight is 12."""
    s = established(rtt=0.1, congestion_control="newreno", sack=True, peer=SACK_PEER)
    s.conn.send(bytes(30 * MSS))
    assert len(recv(s)) == 10  # cwnd = 10 segments
    for lo, hi in ((4, 4), (5, 6), (5, 7), (5, 8)):
        blocks = ((LOCAL_ISS + 1 + lo * MSS, LOCAL_ISS + 1 + hi * MSS),) if hi > lo else ()
        send(s, seg(SEND, ack=LOCAL_ISS + 1 + 4 * MSS, sack=blocks))
        if not batched and lo == hi:
            assert len(recv(s)) == flight - 6  # the refill
    assert s.conn.info()["in_recovery"]
    assert s.conn.ssthresh == flight // 2 * MSS


def test_newreno_partial_ack_retransmits_the_next_hole() -> None:
    # RFC 6582 §3.2 step 5: a partial ACK means the segment after it was lost too;
    # "retransmit the first unacknowledged segment" at once.
    s = established(rtt=0.1, congestion_control="newreno")
    sent = flight(s, 6)
    for _ in range(3):
        got = ack(s, 0)
    assert got == [sent[0]]
    assert offsets(ack(s, 2 * MSS)) == [2 * MSS]
    assert s.conn.info()["in_recovery"]
    assert offsets(ack(s, 4 * MSS)) == [4 * MSS]
    ack(s, 6 * MSS)  # a full ACK: recovery is over
    assert not s.conn.info()["in_recovery"]
    assert s.conn.get_timer() is None


def test_no_second_fast_retransmit_for_old_losses() -> None:
    # RFC 6582 §3.2 step 2: duplicate ACKs below the recovery point start no new recovery.
    s = established(rtt=0.1, congestion_control="newreno")
    flight(s, 4)
    for _ in range(3):
        ack(s, 0)
    for _ in range(5):
        ack(s, 0)
    assert s.conn.info()["fast_retransmits"] == 1


# ---------------------------------------------------------------------------- SACK, receiver side


def test_sack_blocks_most_recent_first() -> None:
    # RFC 2018 §4: "The first SACK block ... MUST specify the contiguous block of data
    # containing the segment which triggered this ACK"; the rest repeat the most recently
    # reported blocks. (One ACK per arrival: no SACK compression.)
    s = established(sack=True, peer=SACK_PEER, comp_sack_nr=0)
    base = REMOTE_ISS + 1

    def segment_at(offset: int) -> list[Segment]:
        send(s, seg(SEND, seq=base + offset, flags=A | P, payload=bytes(500)))
        return recv(s)

    def sack_ack(*blocks: tuple[int, int]) -> list[Segment]:
        return [seg(RECV, ack=base, sack=tuple((base + lo, base + hi) for lo, hi in blocks))]

    assert segment_at(500) == sack_ack((500, 1000))
    assert segment_at(1500) == sack_ack((1500, 2000), (500, 1000))
    assert segment_at(2500) == sack_ack((2500, 3000), (1500, 2000), (500, 1000))
    assert segment_at(1000) == sack_ack((500, 2000), (2500, 3000))  # merged, and most recent
    assert segment_at(3500) == sack_ack((3500, 4000), (500, 2000), (2500, 3000))
    # The first hole is filled: data up to 2000 is in order; no block lies below RCV.NXT.
    assert segment_at(0) == [
        seg(
            RECV,
            ack=base + 2000,
            window=65535 - 2000,
            sack=((base + 3500, base + 4000), (base + 2500, base + 3000)),
        )
    ]
    assert segment_at(2000) == [
        seg(RECV, ack=base + 3000, window=65535 - 3000, sack=((base + 3500, base + 4000),))
    ]
    assert s.conn.receive() == bytes(3000)


def test_sack_blocks_fit_beside_timestamps() -> None:
    # RFC 2018 §3: with the 12 bytes of timestamps, at most three blocks fit in 40 bytes.
    s = established(
        sack=True, timestamps=True, comp_sack_nr=0, peer={"sack_permitted": True, "ts": (1, 0)}
    )
    base = REMOTE_ISS + 1
    for offset in (100, 300, 500, 700):
        send(s, seg(SEND, seq=base + offset, flags=A | P, payload=bytes(100), ts=(2, 0)))
        [dup] = recv(s)
    assert dup.options.sack_blocks == tuple((base + lo, base + lo + 100) for lo in (700, 500, 300))
    assert dup.options.timestamps is not None


def test_no_sack_blocks_unless_negotiated() -> None:
    s = established(sack=True)  # the peer did not offer SACK-permitted
    send(s, seg(SEND, seq=REMOTE_ISS + 501, flags=A | P, payload=bytes(500)))
    assert recv(s) == [RECV]


# ---------------------------------------------------------------------------- SACK, sender side


def test_sack_recovery_retransmits_only_the_hole() -> None:
    s = established(rtt=0.1, sack=True, peer=SACK_PEER)
    sent = flight(s, 6)
    assert ack(s, 0, ((MSS, 2 * MSS),)) == []
    assert ack(s, 0, ((MSS, 3 * MSS),)) == []
    # RFC 6675: three segments SACKed above the hole make it lost.
    assert ack(s, 0, ((MSS, 4 * MSS),)) == [sent[0]]
    assert ack(s, 0, ((MSS, 6 * MSS),)) == []  # nothing else is missing
    assert ack(s, 6 * MSS) == []
    assert s.conn.info()["retransmits"] == 1


def test_sack_recovery_skips_sacked_segments_between_holes() -> None:
    s = established(rtt=0.1, sack=True, peer=SACK_PEER)
    sent = flight(s, 6)
    retransmitted: list[Segment] = []
    retransmitted += ack(s, 0, ((MSS, 2 * MSS),))
    retransmitted += ack(s, 0, ((3 * MSS, 4 * MSS), (MSS, 2 * MSS)))
    retransmitted += ack(s, 0, ((3 * MSS, 5 * MSS), (MSS, 2 * MSS)))
    retransmitted += ack(s, 0, ((3 * MSS, 6 * MSS), (MSS, 2 * MSS)))
    assert retransmitted == [sent[0], sent[2]]  # segments 1 and 3: never the SACKed 2
    ack(s, 6 * MSS)
    assert s.conn.get_timer() is None


def test_rto_does_not_resend_sacked_data() -> None:
    # Without RACK, whose reordering timer would repair the hole before the RTO.
    s = established(rtt=0.1, sack=True, peer=SACK_PEER, rack=False)
    flight(s, 4)
    assert ack(s, 0, ((2 * MSS, 3 * MSS),)) == []
    assert offsets(fire(s)) == [0]  # loss window: one segment
    assert offsets(ack(s, MSS, ((2 * MSS, 3 * MSS),))) == [MSS, 3 * MSS]


def test_a_dsack_of_a_probe_leaves_the_flight_as_it_was() -> None:
    """A window-limited flight arrives whole but its ACKs are lost; the tail loss probe
    resends its last segment (RFC 8985 §7.3), which the peer already had. The answer
    acknowledges the flight and reports the duplicate in a D-SACK block (RFC 2883
    §4.1.1). That block is not data newly held above SND.UNA (the scoreboard of RFC
    6675 Update () is of SACKed data), so this is no duplicate ACK, and the flight the
    congestion control judges the window's use by is the one before the ACK, as Linux's
    prior_in_flight is: the whole window, in use, and slow start grows it by the four
    segments acknowledged (CUBIC's L = 8*SMSS, RFC 9406). Counted with the duplicate,
    the flight looked one segment short of the window and the window unused, so it did
    not grow (after a timeout the same miscount kept cwnd at one segment, whose lone
    ACK the peer may delay 40 ms, RFC 5681 §4.2)."""
    s = established(rtt=0.1, sack=True, peer=SACK_PEER, initial_window=4)
    flight(s, 4)
    assert s.conn.cwnd == 4 * MSS
    assert offsets(fire(s)) == [3 * MSS]  # the probe
    assert s.conn.stats["loss_probes"] == 1
    ack(s, 4 * MSS, ((3 * MSS, 4 * MSS),))
    assert s.conn.cwnd == 8 * MSS
    assert not s.conn.info()["in_recovery"]


def test_sack_blocks_beyond_what_was_sent_are_ignored() -> None:
    s = established(rtt=0.1, sack=True, peer=SACK_PEER)
    flight(s, 2)
    ack(s, 0, ((5 * MSS, 6 * MSS),))
    assert not s.conn.info()["in_recovery"]
    recv_nothing(s)
