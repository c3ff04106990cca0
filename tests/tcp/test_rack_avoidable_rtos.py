"""Retransmission timeouts that RACK (RFC 8985 §6) makes unnecessary, of the four kinds
`RtoAudit` found in bench/recovery.py's runs at 10% loss each way (issue 12 point 13),
each kept here as the smallest seeded run that showed it. In each, a segment sent after
the lost one got through with its ACK, so the sender knew of the loss; the lost segment
must go again by RACK, one RACK.rtt + RACK.reo_wnd after it was sent, not at the RTO.
docs/benchmarks.md ("The avoidable RTOs at 10% loss") tells how each was found.
"""

from __future__ import annotations

import pytest

from synack.tcp import Config
from synack.tcp.congestion import Cubic
from synack.testing import PacketEvent
from synack.testing.loss_runs import CLIENT, BulkRun, bulk_transfer
from synack.wire.checksum import address_bytes
from synack.wire.seq import MASK
from synack.wire.tcp import unpack_header

from .conftest import MSS, established, fire, recv
from .test_retransmit import SACK_PEER, ack, offsets

LOSS = 0.1
SENDER = address_bytes(CLIENT)


@pytest.fixture(autouse=True)
def _rfc3465_slow_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runs were found with CUBIC's slow start counting two segments per ACK (RFC
    3465's L); it now counts eight (HyStart++), which sends other segments at other
    times. The RACK rules tested here do not depend on it: the runs keep their L."""
    monkeypatch.setattr(Cubic, "slow_start_limit", 2)


def copies(
    size: int, rtt: float, seed: int, offset: int
) -> tuple[BulkRun, list[tuple[float, bool]]]:
    """The run (`loss_runs.bulk_transfer`, CUBIC) and every transmission of the segment
    at `offset` bytes into the data: (when it left, whether the network lost it)."""
    sent: list[tuple[float, bool]] = []
    first: list[int] = []

    def tap(
        now: float, event: PacketEvent, data: bytes | bytearray, src: bytes, _dst: bytes
    ) -> None:
        if src != SENDER or event not in (PacketEvent.SENT, PacketEvent.LOST):
            return
        _sp, _dp, seq, _ack, hlen, _flags, _w, _c, _u = unpack_header(data)
        if len(data) == hlen:
            return  # a pure ACK
        if not first:
            first.append(seq)  # the first data segment is at offset 0
        if (seq - first[0]) & MASK != offset:
            return
        if event is PacketEvent.SENT:
            sent.append((now, False))
        else:
            sent[-1] = (sent[-1][0], True)  # the link drops it as it is sent

    # The runs were found with a receiver that acknowledged every out-of-order segment
    # at once; SACK compression (Config.comp_sack_nr) times the ACKs otherwise.
    config = Config(congestion_control="cubic", comp_sack_nr=0)
    run = bulk_transfer(size, rtt, LOSS, seed, config, tap=tap)
    return run, sent


def rtos_between(run: BulkRun, start: float, end: float) -> list[float]:
    """The RTOs taken after `start`, up to `end`."""
    return [v.at for v in run.verdicts if start < v.at <= end]


def test_a_retransmission_lost_again_goes_when_a_later_ones_sack_arrives() -> None:
    """20 ms, seed 7: the segment at 83,984 is lost three times; its third copy (0.235 s)
    leaves just before the copy of a later hole, whose SACK is back one RTT later. That
    ACK echoes an older TSval (the receiver's TS.Recent stays at its left edge, RFC 7323
    §4.3), and RACK took the echo to mean it did not answer the copy: no sample, and the
    fourth copy waited for the RTO (0.435 s, at b5153f2)."""
    rtt = 0.02
    run, sent = copies(100_000, rtt, 7, 83_984)
    assert [lost for _t, lost in sent] == [True, True, True, False]
    third, fourth = sent[2][0], sent[3][0]
    assert fourth == pytest.approx(third + rtt)  # reo_wnd is 0 in recovery
    assert rtos_between(run, third, fourth) == []
    assert run.avoidable == 0


def test_a_copy_sacked_exactly_min_rtt_after_it_left_is_a_sample() -> None:
    """100 ms, seed 29: the segment at 82,536 is lost twice; the copies of later holes
    that left with the second copy (0.45 s) are SACKed at 0.55 s, one RTT later, exactly
    RACK.min_rtt -- but 0.55 - 0.45 is 0.0999... in floating point, which RACK took for
    "less than min_RTT ago" (RFC 8985 §6.2 condition 2): no sample, and the third copy
    waited for the RTO (0.85 s, at b5153f2). Linux compares whole microseconds."""
    rtt = 0.1
    run, sent = copies(100_000, rtt, 29, 82_536)
    assert [lost for _t, lost in sent] == [True, True, False]
    second, third = sent[1][0], sent[2][0]
    assert third == pytest.approx(second + rtt)
    assert rtos_between(run, second, third) == []
    assert run.avoidable == 0


def test_a_dsack_of_the_timeouts_retransmission_reveals_the_loss_beside_it() -> None:
    """100 ms, seed 16: the segment at 218,648 arrives but its ACK is lost; the next
    (220,096) and the tail loss probe are lost. Two RTOs resend 218,648; the second copy
    arrives (6.87 s) and its ACK, back at 6.92 s, moves SND.UNA to 220,096 with a D-SACK
    of the copy: sent after 220,096, it was delivered, so 220,096 is lost. But a
    duplicate leaves TS.Recent alone (RFC 7323 §4.3), the echo is older than the copy
    and RACK refused it; the D-SACK also undid the timeout, which takes the copy's
    sample away: 220,096 waited for a third RTO (8.44 s, at b5153f2)."""
    rtt = 0.1
    run, resent = copies(400_000, rtt, 16, 218_648)
    _run, lost = copies(400_000, rtt, 16, 220_096)
    assert [x for _t, x in resent] == [False, True, False]
    assert [x for _t, x in lost] == [True, False]
    dsacked_copy, repair = resent[-1][0], lost[1][0]
    assert repair == pytest.approx(dsacked_copy + rtt)  # when the D-SACK arrives
    assert rtos_between(run, dsacked_copy, repair) == []
    assert run.avoidable == 0


def test_the_rto_waits_for_racks_reordering_timer() -> None:
    """Found at 100 ms, seed 35 (reordering seen, so RACK.reo_wnd is SRTT): RACK armed one
    reordering timer for the latest segment in doubt (RFC 8985 §6.2), which fell a hair
    after the RTO (SRTT + 200 ms from the last ACK), so the RTO fired first although the
    segment at SND.UNA was known lost by then (at b5153f2). Since a skipped tail loss
    probe keeps the RTO's deadline, that seeded run meets other timers, and no seed of
    1-59 reproduces the coincidence; so it is scripted here: a SACK arms the
    reordering timer and the RTO's deadline is put just before it. The RTO must wait,
    RACK resend at its timer, and the RTO restart from that retransmission."""
    s = established(rtt=0.1, sack=True, peer=SACK_PEER)
    s.conn.send(bytes(4 * MSS))
    assert offsets(recv(s)) == [i * MSS for i in range(4)]
    s.now += 0.1
    assert ack(s, 0, sack=((3 * MSS, 4 * MSS),)) == []  # 0-2 in doubt, not yet lost
    reo_at = s.conn._rec.reo_at
    assert reo_at is not None and reo_at > s.now
    s.conn._rto_at = reo_at - 0.001  # the seeded run's coincidence
    assert fire(s) == [], "the RTO does not fire while RACK's timer is pending"
    assert s.conn.info()["timeouts"] == 0
    out = fire(s)
    assert s.now == pytest.approx(reo_at)
    assert offsets(out)[:1] == [0], "RACK resends SND.UNA's segment at its timer"
    assert s.conn.info()["timeouts"] == 0
    assert s.conn.get_timer() is not None
    assert s.conn._rto_at == pytest.approx(s.now + s.conn._rtt.rto)
