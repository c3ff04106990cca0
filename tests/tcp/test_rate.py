"""Delivery-rate estimation (draft-cheng-iccrg-delivery-rate-estimation) and the windowed
maximum BBR keeps of it, from the draft's definitions."""

from __future__ import annotations

import random

import pytest

from synack.tcp.rate import RateSample, RateSampler
from synack.tcp.windowed import WindowedMax

MSS = 1000


def ack(sampler: RateSampler, stamps: list, now: float, min_rtt: float = 0.0) -> RateSample:
    for stamp in stamps:
        sampler.on_delivered(stamp, MSS, now)
    return sampler.sample(now, min_rtt, RateSample())


def test_a_flight_sent_at_once_is_measured_by_its_acks() -> None:
    """Ten segments leave together at t=0; their ACKs come 10 ms apart from t=0.1. Every
    stamp says 0 delivered at t=0, so the k-th ACK's interval is its ACK phase, 0.1 + ..."""
    s = RateSampler()
    stamps = [s.on_send(0.0, i * MSS) for i in range(10)]
    assert all(st.delivered == 0 and st.delivered_time == 0.0 for st in stamps)
    rs = ack(s, stamps[:1], 0.1)
    assert rs.delivered == MSS and rs.interval == pytest.approx(0.1)
    assert rs.delivery_rate == pytest.approx(MSS / 0.1)
    rs = ack(s, stamps[1:2], 0.11)
    assert rs.delivered == 2 * MSS and rs.interval == pytest.approx(0.11)
    assert rs.total_delivered == 2 * MSS and rs.newly_acked == MSS


def test_the_steady_state_rate_is_the_ack_rate() -> None:
    """A sender that sends one segment per ACK (the ACK clock) on a path delivering one
    segment every 10 ms measures 100 segments a second once a round has passed."""
    s = RateSampler()
    rate = 100 * MSS
    inflight: list = []
    now = 0.0
    for i in range(10):
        inflight.append(s.on_send(now, i * MSS))
    samples = []
    for _ in range(100):
        now += 0.01
        stamp = inflight.pop(0)
        samples.append(ack(s, [stamp], now).delivery_rate)
        inflight.append(s.on_send(now, len(inflight) * MSS))
    assert samples[-1] == pytest.approx(rate, rel=1e-6)
    assert all(r <= rate * 1.0001 for r in samples)


def test_ack_compression_cannot_inflate_the_rate() -> None:
    """The ACK phase of an interval can be squeezed (ACKs bunched on the way back); its
    send phase cannot, and the longer of the two is the interval (draft §3.3)."""
    s = RateSampler()
    a = s.on_send(0.0, 0)  # nothing in flight: the interval starts at t=0
    b = s.on_send(0.05, MSS)
    ack(s, [a], 0.1)  # C.delivered_time = 0.1; the next send phase starts at a's 0.0
    c = s.on_send(0.1, MSS)  # stamped delivered=MSS at 0.1, send phase from 0.0
    rs = ack(s, [b, c], 0.12)  # both ACKs arrive bunched, 20 ms after c left
    assert rs.interval == pytest.approx(0.1)  # the send phase, not the 20 ms ACK phase
    assert rs.delivered == 2 * MSS
    assert rs.delivery_rate == pytest.approx(2 * MSS / 0.1)


def test_the_newest_transmission_delivered_sets_the_interval() -> None:
    """A retransmission (sent late, stamped with a larger C.delivered) that arrives with
    older data: the sample starts from the retransmission's stamp."""
    s = RateSampler()
    old = s.on_send(0.0, 0)
    first = s.on_send(0.0, MSS)
    ack(s, [first], 0.1)  # C.delivered = MSS at t=0.1
    rxt = s.on_send(0.2, MSS)  # `old` is resent at 0.2, stamped delivered=MSS
    rs = ack(s, [old, rxt], 0.3)
    assert rs.prior_delivered == MSS
    assert rs.interval == pytest.approx(0.3 - 0.1)


def test_short_intervals_give_no_sample() -> None:
    s = RateSampler()
    stamp = s.on_send(0.0, 0)
    rs = ack(s, [stamp], 0.05, min_rtt=0.1)
    assert rs.delivery_rate == 0.0 and rs.delivered == MSS


def test_an_ack_that_delivers_nothing_gives_no_sample() -> None:
    s = RateSampler()
    rs = s.sample(1.0, 0.0, RateSample())
    assert rs.delivery_rate == 0.0 and rs.newly_acked == 0


def test_the_app_limited_mark_lasts_until_the_flight_is_delivered() -> None:
    """Draft §3.4: samples of data sent while application-limited are marked, until
    C.delivered passes what was delivered plus in flight when the mark was set."""
    s = RateSampler()
    stamps = [s.on_send(0.0, i * MSS) for i in range(2)]
    s.on_app_limited(2 * MSS)  # nothing more to send, two segments out
    assert s.app_limited == 2 * MSS
    late = s.on_send(0.05, 2 * MSS)  # a write arrives: this one is marked
    assert late.is_app_limited and not stamps[0].is_app_limited
    rs = ack(s, stamps[:1], 0.1)
    assert not rs.is_app_limited and s.app_limited
    ack(s, stamps[1:], 0.11)
    rs = ack(s, [late], 0.15)
    assert rs.is_app_limited  # sent while marked
    assert s.app_limited == 0  # delivered (3 segments) passed the mark (2)


def test_the_mark_is_never_zero_when_set() -> None:
    s = RateSampler()
    s.on_app_limited(0)
    assert s.app_limited == 1


def test_windowed_max_matches_a_brute_force_maximum() -> None:
    rnd = random.Random(7)
    f = WindowedMax(10)
    history: list[tuple[int, float]] = []
    for t in range(500):
        for _ in range(rnd.randrange(1, 4)):
            v = rnd.random() * 100
            history.append((t, v))
            got = f.update(v, t)
            assert got == max(x for u, x in history if u > t - 10)


def test_windowed_max_forgets_after_its_window() -> None:
    f = WindowedMax(10)
    f.update(100.0, 0)
    assert f.update(1.0, 9) == 100.0
    assert f.update(1.0, 10) == 1.0
    f.reset(5.0, 11)
    assert f.get() == 5.0


def test_windowed_max_needs_a_positive_window() -> None:
    with pytest.raises(ValueError):
        WindowedMax(0)
