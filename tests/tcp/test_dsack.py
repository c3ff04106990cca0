"""D-SACK (RFC 2883 §4) at the receiver: a duplicate segment is reported in the first SACK
block of the ACK it draws, once; the examples of RFC 2883 §4.1.1 to §4.1.3, plus a
partial duplicate (§4.2) and the rule that nothing is reported without SACK."""

from __future__ import annotations

from typing import Any

from synack.wire.tcp import Segment

from .conftest import MSS, REMOTE_ISS, SEND, A, P, Sock, established, recv, seg, send
from .test_retransmit import SACK_PEER, ack, offsets


def peer_data(s: Sock, offset: int, n: int) -> list[Segment]:
    """The peer sends `n` bytes at `offset` of its stream; what we answer."""
    send(s, seg(SEND, seq=REMOTE_ISS + 1 + offset, flags=A | P, payload=bytes(n)))
    return recv(s)


def blocks(segments: list[Segment]) -> list[tuple[int, int]]:
    """The SACK blocks of the one ACK in `segments`, as offsets into the peer's stream."""
    assert len(segments) == 1, segments
    base = REMOTE_ISS + 1
    return [
        ((left - base) & 0xFFFFFFFF, (right - base) & 0xFFFFFFFF)
        for left, right in segments[0].options.sack_blocks
    ]


def acked(segments: list[Segment]) -> int:
    return (segments[-1].ack - REMOTE_ISS - 1) & 0xFFFFFFFF


def receiver(**cfg: Any) -> Sock:
    # One ACK per arrival (no SACK compression), so that each ACK's blocks can be read.
    return established(sack=True, peer=SACK_PEER, **{"comp_sack_nr": 0, **cfg})


def test_a_duplicate_below_rcv_nxt_is_reported_once() -> None:
    """RFC 2883 §4.1.1, "Reporting a duplicate segment": the ACK of 0-499 is lost, the
    sender retransmits it; the receiver answers ACK 500 with the D-SACK block 0-499."""
    s = receiver()
    assert blocks(peer_data(s, 0, 500)) == []
    out = peer_data(s, 0, 500)
    assert acked(out) == 500
    assert blocks(out) == [(0, 500)]
    # "each duplicate contiguous sequence of data received is reported in at most one
    # D-SACK block": the next ACK carries none.
    out = peer_data(s, 500, 500)
    assert acked(out) == 1000
    assert blocks(out) == []


def test_a_duplicate_below_rcv_nxt_comes_before_the_sack_blocks() -> None:
    """RFC 2883 §4.1.2, "Reporting an out-of-order segment and a duplicate segment":
    with 1000-1499 held out of order, a duplicate of 0-499 draws ACK 500 with the D-SACK
    block 0-499 first and then the SACK block 1000-1499."""
    s = receiver()
    peer_data(s, 0, 500)
    assert blocks(peer_data(s, 1000, 500)) == [(1000, 1500)]
    out = peer_data(s, 0, 500)
    assert acked(out) == 500
    assert blocks(out) == [(0, 500), (1000, 1500)]


def test_a_duplicate_of_out_of_order_data_is_reported_with_its_block() -> None:
    """RFC 2883 §4.1.3, "Reporting a duplicate of an out-of-order segment": the D-SACK
    block names the duplicate, and "the second SACK block in that SACK option should
    specify that (possibly larger) block of data" that holds it, then the others."""
    s = receiver()
    peer_data(s, 0, 500)
    peer_data(s, 1000, 500)
    peer_data(s, 1500, 500)
    assert blocks(peer_data(s, 3000, 500)) == [(3000, 3500), (1000, 2000)]
    out = peer_data(s, 1500, 500)
    assert acked(out) == 500
    assert blocks(out) == [(1500, 2000), (1000, 2000), (3000, 3500)]
    # Once: the next out-of-order arrival's ACK has plain SACK blocks only.
    assert blocks(peer_data(s, 4000, 500)) == [(4000, 4500), (1000, 2000), (3000, 3500)]


def test_a_partial_duplicate_reports_the_part_already_received() -> None:
    """RFC 2883 §4.2: a segment partly below RCV.NXT is a duplicate for that part; the
    rest is taken in, and the ACK of it reports the duplicate part at once."""
    s = receiver()
    peer_data(s, 0, 500)
    out = peer_data(s, 0, 1000)
    assert acked(out) == 1000
    assert blocks(out) == [(0, 500)]


def test_no_dsack_without_sack() -> None:
    s = established()
    peer_data(s, 0, 500)
    out = peer_data(s, 0, 500)
    assert acked(out) == 500
    assert out[0].options.sack_blocks in ((), None)


def test_the_dsack_block_takes_the_room_of_one_sack_block() -> None:
    """Without timestamps four blocks fit (RFC 2018 §3): the D-SACK block and the three
    most recent of the four held out of order."""
    s = receiver()
    peer_data(s, 0, 500)
    for off in (1000, 2000, 3000, 4000):
        peer_data(s, off, 500)
    out = peer_data(s, 0, 500)
    assert blocks(out) == [(0, 500), (4000, 4500), (3000, 3500), (2000, 2500)]


# ---------------------------------------------------------------------------- the sender's undo


def spurious_recovery(s: Sock) -> int:
    """Ten segments out; the first is delayed, not lost: SACKs for 1..3 start a fast
    recovery that resends it; then everything is acknowledged. cwnd before it."""
    s.conn.send(bytes(10 * MSS))
    assert offsets(recv(s)) == [i * MSS for i in range(10)]
    before = s.conn.cwnd
    resent: list[Segment] = []
    for last in range(2, 5):
        resent += [x for x in ack(s, 0, ((MSS, last * MSS),)) if x.payload]
    assert 0 in offsets(resent), "fast retransmit of segment 0"
    assert s.conn.info()["in_recovery"]
    assert s.conn.cwnd < before
    ack(s, s.conn.snd_max - s.conn.iss - 1)  # the delayed original arrived
    assert not s.conn.info()["in_recovery"]
    return before


def sender() -> Sock:
    return established(rtt=0.1, sack=True, peer=SACK_PEER, congestion_control="newreno")


def test_a_dsack_of_every_retransmission_undoes_the_reduction() -> None:
    """RFC 3708 §3: all retransmissions of the episode came back as duplicates, so the
    episode was spurious; the reduction is undone (RFC 4015's Eifel response)."""
    s = sender()
    before = spurious_recovery(s)
    everything = s.conn.snd_max - s.conn.iss - 1
    ack(s, everything, ((0, MSS),))  # the retransmission's D-SACK (below the ACK)
    assert s.conn.info()["dsack_undos"] == 1
    assert s.conn.cwnd >= before
    assert s.conn.ssthresh > before


def test_no_undo_without_a_dsack() -> None:
    s = sender()
    spurious_recovery(s)
    reduced = s.conn.cwnd
    everything = s.conn.snd_max - s.conn.iss - 1
    ack(s, everything)
    assert s.conn.info()["dsack_undos"] == 0
    assert s.conn.cwnd <= reduced + MSS


def test_a_dsack_of_data_never_retransmitted_undoes_nothing() -> None:
    """A duplicate made by the network (RFC 2883 §5.2) says nothing about our
    retransmissions: only a D-SACK of a retransmitted range counts."""
    s = sender()
    spurious_recovery(s)
    everything = s.conn.snd_max - s.conn.iss - 1
    ack(s, everything, ((5 * MSS, 6 * MSS),))
    assert s.conn.info()["dsack_undos"] == 0
