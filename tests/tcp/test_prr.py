"""Proportional Rate Reduction (RFC 9937) on virtual time: what fast recovery sends on each
ACK, segment by segment, on the RFC's own example (a window of 20 segments, ssthresh at
half) and on a burst of losses, with NewReno and CUBIC.

The test plays a SACK receiver (`Peer`): it is told which of our segments arrived, in
order, and answers each as RFC 2018 says (cumulative ACK, the block holding the newest
segment first). Every ACK of a round arrives at one instant, one round trip after the
data, so RACK (RFC 8985) finds a segment lost as soon as DupThresh segments above it are
SACKed, as RFC 6675 would, and the limited transmit of RFC 3042 sends one new segment on
each of the first two duplicate ACKs -- the RFC's example assumes both.
"""

from __future__ import annotations

from typing import Any

from synack.tcp import State
from synack.wire.tcp import Segment

from .conftest import LOCAL_ISS, MSS, SEND, Sock, established, recv, seg, send
from .test_retransmit import SACK_PEER, offsets

RTT = 0.125  # exact in binary: RACK's sums of send times and RTTs compare exactly


class Peer:
    """The receiving end, in segment numbers (segment k holds bytes [k*MSS, (k+1)*MSS))."""

    def __init__(self, s: Sock) -> None:
        self.s = s
        self.got: set[int] = set()

    def arrive(self, k: int) -> list[int]:
        """Segment `k` arrives; the ACK goes back and what we send in answer is returned
        (as segment numbers)."""
        self.got.add(k)
        una = 0
        while una in self.got:
            una += 1
        blocks: list[tuple[int, int]] = []
        above = sorted(x for x in self.got if x > una)
        for x in above:
            if blocks and blocks[-1][1] == x:
                blocks[-1] = (blocks[-1][0], x + 1)
            else:
                blocks.append((x, x + 1))
        # RFC 2018 §4: "The first SACK block ... MUST specify the contiguous block of data
        # containing the segment which triggered this ACK"; then the most recent others.
        blocks.sort(key=lambda b: not b[0] <= k < b[1])
        sack = tuple((LOCAL_ISS + 1 + lo * MSS, LOCAL_ISS + 1 + hi * MSS) for lo, hi in blocks[:4])
        send(self.s, seg(SEND, ack=LOCAL_ISS + 1 + una * MSS, sack=sack))
        return [o // MSS for o in offsets(recv(self.s))]


def start(cc: str, **cfg: Any) -> tuple[Sock, Peer]:
    """ESTABLISHED with SACK after a 125 ms handshake, cwnd = 20 segments, all sent at
    t = RTT (the RFC's "cwnd = FlightSize = pipe = 20 segments"); the ACKs of this round
    come back one RTT later (`round_of` moves the clock on a round trip each time). More data is queued than will be sent."""
    s = established(
        rtt=RTT, sack=True, peer=SACK_PEER, initial_window=20, congestion_control=cc, **cfg
    )
    s.conn.send(bytes(80 * MSS))
    first: list[Segment] = recv(s)
    assert [o // MSS for o in offsets(first)] == list(range(20))
    return s, Peer(s)


def round_of(peer: Peer, arrivals: list[int]) -> dict[int, list[int]]:
    """One round trip later, each arrival in turn: what the sender sent in answer to
    its ACK."""
    peer.s.at(peer.s.now + RTT)
    return {k: peer.arrive(k) for k in arrivals}


def test_one_loss_newreno_follows_the_rfc_example() -> None:
    """RFC 9937's example: segment 0 of 20 lost, ssthresh = 10 (NewReno halves FlightSize,
    leaving out limited transmit, RFC 5681 §3.2). Limited transmit sends 20 and 21; the
    third duplicate ACK starts recovery, where "RecoverFS = SND.NXT - SND.UNA" less the
    two segments SACKed before it (20) and "SndCnt = CEIL(prr_delivered * ssthresh /
    RecoverFS) - prr_out": the fast retransmit, then one new segment on every other ACK
    -- the RFC's "sent" row, and its cwnd row 19, 18, 18, 17, 17, ..., 11, 10 ends at
    ssthresh, so the last two ACKs send nothing."""
    s, peer = start("newreno")
    sent = round_of(peer, list(range(1, 20)))
    expected: dict[int, list[int]] = {k: [] for k in range(1, 20)}
    expected[1], expected[2], expected[3] = [20], [21], [0]
    for i, k in enumerate(range(5, 18, 2)):
        expected[k] = [22 + i]
    assert sent == expected
    assert s.conn.ssthresh == 10 * MSS
    # The next round: the retransmission and the new data arrive; recovery ends at the
    # recovery point (SND.NXT when it began, 22) with cwnd = ssthresh (§6: "cwnd =
    # ssthresh" at the end of recovery).
    round_of(peer, [20, 21, 0])
    assert not s.conn.info()["in_recovery"]
    assert s.conn.cwnd == 10 * MSS


def test_one_loss_cubic_reduces_to_its_own_ssthresh() -> None:
    """The same loss with CUBIC: ssthresh = 0.7 * 20 = 14 segments (RFC 9438 §4.6), so
    SndCnt = CEIL(prr_delivered * 14 / 20) - prr_out lets 7 segments go for every 10
    delivered: on ACKs 3 (the retransmission), 4, 5, 7, 8, 10, 11, 13, 14, 15; once the
    pipe is down to ssthresh (ACK 17) the reduction bound holds it there: one segment for
    each one delivered (ACKs 18, 19)."""
    s, peer = start("cubic")
    sent = round_of(peer, list(range(1, 20)))
    assert s.conn.ssthresh == 14 * MSS
    sending = [k for k, out in sent.items() if out]
    assert sending == [1, 2, 3, 4, 5, 7, 8, 10, 11, 13, 14, 15, 18, 19]
    assert sent[3] == [0]
    assert [x for k in sending if k != 3 for x in sent[k]] == list(range(20, 33))
    # pipe at the end of the round: 33 segments sent, 19 SACKed, the lost one resent.
    assert 33 - 19 == 14


def test_burst_loss_conservative_bound_until_a_safe_ack() -> None:
    """Segments 0-14 of 20 lost (the RFC's second example): when recovery starts the
    pipe (4) is far below ssthresh (10), and the reduction bound decides. SACKs that do
    not advance SND.UNA are not "safe ACKs" (SND.UNA must advance, no further loss
    indicated), so PRR-CRB sends what was delivered: one segment each. Once the
    retransmissions arrive, each cumulative ACK is safe and PRR-SSRB sends one segment
    more than was delivered, "MIN(ssthresh - pipe, SndCnt)": slow start up to ssthresh."""
    s, peer = start("newreno")
    sent = round_of(peer, [15, 16, 17, 18, 19])
    assert sent == {15: [20], 16: [21], 17: [0], 18: [1], 19: [2]}
    assert s.conn.ssthresh == 10 * MSS
    # The second round, in the order sent: 20 and 21 are SACKs (not safe: one each);
    # then 0, 1 and 2 each move SND.UNA by one segment with no further loss: two each.
    second = round_of(peer, [20, 21, 0, 1, 2])
    assert second == {20: [3], 21: [4], 0: [5, 6], 1: [7, 8], 2: [9, 10]}
    # The third round: two safe ACKs fill the pipe (8 -> 10 = ssthresh), then
    # "MIN(ssthresh - pipe, SndCnt)" holds it there: one segment per segment delivered.
    third = round_of(peer, [3, 4, 5, 6, 7, 8, 9, 10])
    assert [len(out) for out in third.values()] == [2, 2, 1, 1, 1, 1, 1, 1]
    assert s.conn.info()["in_recovery"]
    assert s.conn.info()["retransmits"] == 15


def test_an_ack_that_shows_further_loss_is_not_safe() -> None:
    """As above, but segment 21 (limited transmit) is lost as well. 20 arrives (a SACK);
    then the ACK of the retransmitted segment 0 advances SND.UNA, and RACK finds 21 --
    sent before that retransmission, not delivered -- lost on it: "no further loss
    indicated" fails, so the conservative bound applies to that ACK: one segment for the
    one delivered, not two. The next cumulative ACKs are safe again."""
    s, peer = start("newreno")
    sent = round_of(peer, [15, 16, 17, 18, 19])
    assert sent == {15: [20], 16: [21], 17: [0], 18: [1], 19: [2]}
    second = round_of(peer, [20, 0, 1, 2])
    assert second[20] == [3]
    assert second[0] == [4]  # not safe: PRR-CRB
    assert second[1] == [5, 6] and second[2] == [7, 8]  # safe: PRR-SSRB
    assert s.conn.info()["retransmits"] == 9


def test_prr_off_sends_cwnd_minus_pipe() -> None:
    """Config(prr=False): RFC 6675's cwnd - pipe rule, for comparison. cwnd drops to
    ssthresh at once, so nothing goes until the pipe has drained below 10 -- then one
    segment per ACK: the "half a window of silence" PRR exists to avoid."""
    s, peer = start("newreno", prr=False)
    sent = round_of(peer, list(range(1, 20)))
    sending = [k for k, out in sent.items() if out]
    assert sending == [1, 2, 3, *range(13, 20)]
    assert s.conn.state is State.ESTABLISHED
