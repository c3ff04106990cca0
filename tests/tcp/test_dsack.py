"""D-SACK (RFC 2883 §4) at the receiver: a duplicate segment is reported in the first SACK
block of the ACK it draws, once; the examples of RFC 2883 §4.1.1 to §4.1.3, plus a
partial duplicate (§4.2) and the rule that nothing is reported without SACK."""

from __future__ import annotations

from typing import Any

from synack.wire.tcp import Segment

from .conftest import REMOTE_ISS, SEND, A, P, Sock, established, recv, seg, send
from .test_retransmit import SACK_PEER


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
    return established(sack=True, peer=SACK_PEER, **cfg)


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
