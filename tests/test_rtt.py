"""The RFC 6298 estimator with RFC 7323 Appendix G scaling: exact arithmetic, clamping, backoff."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synack.tcp.rtt import ALPHA, BETA, RTO_AFTER_SYN_TIMEOUT, RttEstimator


def estimator(rto_min: float = 0.2, rto_max: float = 120.0) -> RttEstimator:
    return RttEstimator(rto_initial=1.0, rto_min=rto_min, rto_max=rto_max)


def test_before_any_sample() -> None:
    est = estimator()
    assert est.srtt is None and est.min_rtt is None and est.latest_rtt is None
    assert est.rttvar == 0.0
    assert est.rto == est.rto_for_syn == 1.0  # RFC 6298 §2.1
    assert est.backoff_count == 0


def test_first_sample() -> None:
    est = estimator()
    est.sample(0.3)
    # RFC 6298 §2.2: SRTT = R, RTTVAR = R/2, RTO = SRTT + max(G, 4*RTTVAR).
    assert est.srtt == 0.3
    assert est.rttvar == 0.15
    assert est.rto == pytest.approx(0.3 + 4 * 0.15)
    assert est.min_rtt == est.latest_rtt == 0.3


def test_second_sample_updates_rttvar_with_old_srtt() -> None:
    est = estimator()
    est.sample(0.3)
    est.sample(0.5)
    rttvar = (1 - BETA) * 0.15 + BETA * abs(0.3 - 0.5)
    srtt = (1 - ALPHA) * 0.3 + ALPHA * 0.5
    assert est.rttvar == pytest.approx(rttvar)
    assert est.srtt == pytest.approx(srtt)
    assert est.rto == pytest.approx(srtt + 4 * rttvar)
    assert est.min_rtt == 0.3 and est.latest_rtt == 0.5


def test_converges_to_a_constant_rtt() -> None:
    est = RttEstimator(rto_initial=1.0, rto_min=0.001, rto_max=60.0)
    for _ in range(200):
        est.sample(0.05)
    assert est.srtt == pytest.approx(0.05)
    assert est.rttvar < 1e-9
    # RTTVAR is negligible: RTO = SRTT + G.
    assert est.rto == pytest.approx(0.05 + est.granularity)


def test_rto_min_floors_the_variance_term_as_linux_does() -> None:
    """RFC 6298 §2.4's minimum applied as Linux's tcp_rto_min: RTO >= SRTT + rto_min.
    With a steady RTT RTTVAR decays to nothing; a floor on the whole RTO would leave
    2 round trips on a 100 ms path, where Linux waits 300 ms."""
    for rtt in (0.01, 0.1):
        est = estimator(rto_min=0.2)
        for _ in range(100):
            est.sample(rtt)
        assert est.srtt == pytest.approx(rtt)
        assert est.rttvar < 0.001
        assert est.rto == pytest.approx(rtt + 0.2)
    # A variance term above rto_min is RFC 6298's own.
    est = estimator(rto_min=0.2)
    est.sample(0.1)  # RTTVAR = 0.05, K*RTTVAR = 0.2
    est.sample(0.3)  # RTTVAR = 3/4*0.05 + 1/4*0.2 = 0.0875, SRTT = 0.125
    assert est.rto == pytest.approx(0.125 + 4 * 0.0875)


def test_granularity_is_the_floor_of_the_variance_term() -> None:
    est = RttEstimator(1.0, 0.001, 60.0, granularity=0.01)
    for _ in range(200):
        est.sample(0.1)
    assert est.rto == pytest.approx(0.11)


def test_zero_rtt_samples_are_accepted() -> None:
    # Millisecond timestamps on loopback measure 0 ms.
    est = estimator()
    for _ in range(10):
        est.sample(0.0)
    assert est.srtt == 0.0 and est.rto == 0.2 and est.min_rtt == 0.0


def test_rto_clamped_to_max() -> None:
    est = estimator(rto_max=60.0)
    est.sample(100.0)
    assert est.srtt == 100.0
    assert est.rto == 60.0


def test_backoff_doubles_and_caps() -> None:
    est = estimator(rto_max=10.0)
    est.sample(0.5)  # RTO = 0.5 + 4 * 0.25 = 1.5
    seen = []
    for _ in range(6):
        est.backoff()
        seen.append(est.rto)
    assert seen == [3.0, 6.0, 10.0, 10.0, 10.0, 10.0]
    assert est.backoff_count == 6


def test_backoff_before_any_sample_starts_from_initial_rto() -> None:
    est = estimator()
    est.backoff()
    est.backoff()
    assert est.rto == 4.0  # SYN timeouts: 1, 2, 4, ...
    assert est.rto_for_syn == 4.0


def test_sample_clears_backoff() -> None:
    est = estimator()
    est.sample(0.5)
    est.backoff()
    est.backoff()
    est.sample(0.5)
    srtt = est.srtt
    assert srtt is not None
    assert est.rto == pytest.approx(srtt + 4 * est.rttvar)
    assert est.backoff_count == 0


def test_reset_backoff_restores_computed_rto() -> None:
    est = estimator()
    est.sample(0.5)
    computed = est.rto
    est.backoff()
    est.reset_backoff()
    assert est.rto == computed and est.backoff_count == 0


def test_appendix_g_scales_the_gains() -> None:
    one = estimator()
    many = estimator()
    for est in (one, many):
        est.sample(0.1)
    one.sample(0.2, flight_segments=1)
    many.sample(0.2, flight_segments=40)  # 20 samples expected per round trip
    assert one.srtt == pytest.approx(0.1 + ALPHA * 0.1)
    assert many.srtt == pytest.approx(0.1 + ALPHA / 20 * 0.1)
    assert many.rttvar == pytest.approx((1 - BETA / 20) * 0.05 + BETA / 20 * 0.1)
    assert one.srtt is not None and many.srtt is not None
    assert many.srtt - 0.1 < (one.srtt - 0.1) / 10


def test_appendix_g_one_window_of_samples_moves_like_one_sample() -> None:
    # ExpectedSamples = ceil(flight/2): a window of per-ACK samples (one ACK per two
    # segments) moves SRTT about as far as one sample per RTT would.
    per_rtt = estimator()
    per_ack = estimator()
    for est in (per_rtt, per_ack):
        est.sample(0.1)
    per_rtt.sample(0.2)
    for _ in range(50):
        per_ack.sample(0.2, flight_segments=100)
    assert per_rtt.srtt is not None and per_ack.srtt is not None
    assert per_ack.srtt == pytest.approx(per_rtt.srtt, rel=0.01)


@pytest.mark.parametrize("flight", [0, 1, 2, -5])
def test_appendix_g_small_flights_use_full_gains(flight: int) -> None:
    est = estimator()
    est.sample(0.1)
    est.sample(0.2, flight_segments=flight)
    assert est.srtt == pytest.approx(0.1 + ALPHA * 0.1)


def test_appendix_g_odd_flight_rounds_up() -> None:
    est = estimator()
    est.sample(0.1)
    est.sample(0.2, flight_segments=3)  # ceil(3/2) = 2
    assert est.srtt == pytest.approx(0.1 + ALPHA / 2 * 0.1)


@pytest.mark.parametrize("bad", [-0.001, math.nan, math.inf, -math.inf])
def test_bad_samples_rejected_and_nothing_changes(bad: float) -> None:
    est = estimator()
    est.sample(0.3)
    before = (est.srtt, est.rttvar, est.rto, est.min_rtt, est.latest_rtt)
    with pytest.raises(ValueError, match="rtt sample must be a finite number of seconds >= 0"):
        est.sample(bad)
    assert (est.srtt, est.rttvar, est.rto, est.min_rtt, est.latest_rtt) == before


@pytest.mark.parametrize(
    ("rto_initial", "rto_min", "rto_max", "granularity", "message"),
    [
        (1.0, 0.0, 60.0, 0.001, "need 0 < rto_min"),
        (0.1, 0.2, 60.0, 0.001, "need 0 < rto_min"),
        (100.0, 0.2, 60.0, 0.001, "need 0 < rto_min"),
        (1.0, 0.2, math.inf, 0.001, "rto_max must be a finite number"),
        (math.nan, 0.2, 60.0, 0.001, "rto_initial must be a finite number"),
        (1.0, 0.2, 60.0, -0.001, "granularity must be a finite number"),
    ],
)
def test_bad_bounds_rejected(
    rto_initial: float, rto_min: float, rto_max: float, granularity: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        RttEstimator(rto_initial, rto_min, rto_max, granularity)


def test_handshake_after_syn_timeout_without_sample_uses_three_seconds() -> None:
    est = estimator()
    est.backoff()  # the SYN timed out
    est.on_handshake_complete(syn_retransmitted=True)
    assert est.rto == RTO_AFTER_SYN_TIMEOUT == 3.0  # RFC 6298 §5.7
    assert est.backoff_count == 0
    est.sample(0.1)
    assert est.rto == pytest.approx(0.1 + 4 * 0.05)


def test_handshake_after_syn_timeout_respects_rto_max() -> None:
    est = RttEstimator(1.0, 0.2, 2.0)
    est.on_handshake_complete(syn_retransmitted=True)
    assert est.rto == 2.0


def test_handshake_with_sample_or_without_loss_keeps_rto() -> None:
    est = estimator()
    est.on_handshake_complete(syn_retransmitted=False)
    assert est.rto == 1.0
    sampled = estimator()
    sampled.sample(0.05)  # timestamps gave a sample despite the retransmission
    sampled.backoff()
    sampled.on_handshake_complete(syn_retransmitted=True)
    assert sampled.rto == pytest.approx(0.05 + 0.2)


def test_forget_samples_keeps_backed_off_rto_until_next_sample() -> None:
    est = estimator()
    est.sample(0.5)
    for _ in range(3):
        est.backoff()
    backed_off = est.rto
    est.forget_samples()
    assert est.srtt is None and est.rttvar == 0.0
    est.reset_backoff()
    assert est.rto == backed_off
    est.sample(2.0)  # initializes again as a first sample (RFC 6298 §2.2)
    assert (est.srtt, est.rttvar) == (2.0, 1.0)
    assert est.rto == 6.0


@settings(max_examples=300, deadline=None)
@given(
    bounds=st.tuples(st.floats(0.001, 5.0), st.floats(0.0, 10.0), st.floats(0.0, 200.0)).map(
        lambda b: (b[0], b[0] + b[1], b[0] + b[1] + b[2])
    ),
    script=st.lists(
        st.one_of(
            st.tuples(st.just("sample"), st.floats(0.0, 1000.0), st.integers(-1, 10_000)),
            st.tuples(st.just("backoff"), st.just(0.0), st.just(0)),
            st.tuples(st.just("reset"), st.just(0.0), st.just(0)),
            st.tuples(st.just("handshake"), st.just(0.0), st.integers(0, 1)),
            st.tuples(st.just("forget"), st.just(0.0), st.just(0)),
        ),
        max_size=100,
    ),
)
def test_rto_always_within_bounds(
    bounds: tuple[float, float, float], script: list[tuple[str, float, int]]
) -> None:
    rto_min, rto_initial, rto_max = bounds
    est = RttEstimator(rto_initial, rto_min, rto_max)
    assert rto_min <= est.rto <= rto_max
    for kind, rtt, n in script:
        if kind == "sample":
            est.sample(rtt, n)
            assert est.srtt is not None and est.srtt >= 0.0 and est.rttvar >= 0.0
        elif kind == "backoff":
            est.backoff()
        elif kind == "reset":
            est.reset_backoff()
        elif kind == "handshake":
            est.on_handshake_complete(bool(n))
        else:
            est.forget_samples()
        assert rto_min <= est.rto <= rto_max
