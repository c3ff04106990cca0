"""NewReno (RFC 5681) and CUBIC (RFC 9438) windows, driven by a fluid ACK clock in virtual time.

`run_rounds` models a bulk sender that keeps its whole window in flight: each
round trip, one ACK per `ack_bytes` of the window arrives, evenly spaced over
the RTT, and reports the window as in flight before it.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synack.tcp.congestion import (
    ALGORITHMS,
    ALPHA_CUBIC,
    BETA_CUBIC,
    CUBIC_C,
    LOSS_BASED,
    SSTHRESH_INFINITE,
    CongestionControl,
    Cubic,
    NewReno,
    initial_window_bytes,
    make_congestion_control,
)

MSS = 1448


def run_rounds(
    cc: CongestionControl, now: float, rtt: float, rounds: int, ack_bytes: int = MSS
) -> tuple[float, list[int]]:
    """Run `rounds` round trips of a window-limited sender; returns the end time and the
    cwnd at the start of each round (and at the end)."""
    history = [cc.cwnd]
    for _ in range(rounds):
        acks = max(1, cc.cwnd // ack_bytes)
        step = rtt / acks
        for _ in range(acks):
            now += step
            cc.on_ack(ack_bytes, now, rtt, cc.cwnd)
        history.append(cc.cwnd)
    return now, history


def drain(cc: CongestionControl, now: float, rtt: float) -> float:
    """The application has no more data: the window in flight is acknowledged over one
    round trip and nothing new is sent. Returns the time of the last ACK."""
    flight = cc.cwnd
    step = rtt / max(1, flight // MSS)
    while flight > 0:
        now += step
        acked = min(MSS, flight)
        cc.on_ack(acked, now, rtt, flight)
        flight -= acked
    return now


def run_until(cc: CongestionControl, now: float, rtt: float, until: float) -> float:
    """Run whole round trips until virtual time reaches `until`."""
    while now < until:
        now, _ = run_rounds(cc, now, rtt, 1)
    return now


def cubic_after_loss(w_max_segments: int, now: float = 100.0) -> Cubic:
    """A CUBIC sender that had w_max_segments in flight when a loss was detected."""
    cc = Cubic(MSS)
    cc.cwnd = w_max_segments * MSS
    cc.on_congestion(now, cc.cwnd)
    cc.on_recovery_end(now)
    return cc


# --------------------------------------------------------------------------- common


class TestCommon:
    def test_initial_window_is_rfc6928(self) -> None:
        assert NewReno(1460).cwnd == 14600
        assert Cubic(MSS).cwnd == 10 * MSS
        # "min(10*MSS, max(2*MSS, 14600))": large segments are capped at 14600 bytes...
        assert NewReno(9000).cwnd == 18000
        assert NewReno(4000).cwnd == 14600
        # ...and the cap scales with other initial windows.
        assert NewReno(1000, initial_window=4).cwnd == 4000
        assert NewReno(MSS, initial_window=1).cwnd == MSS
        assert initial_window_bytes(536) == 5360

    def test_ssthresh_starts_arbitrarily_high(self) -> None:
        for cls in (NewReno, Cubic):
            cc = cls(MSS)
            assert cc.ssthresh == SSTHRESH_INFINITE
            assert cc.in_slow_start
            assert "ssthresh=inf" in repr(cc)

    def test_factory_builds_each_algorithm(self) -> None:
        for name, cls in ALGORITHMS.items():
            cc = make_congestion_control(name, 1200, 4)
            assert type(cc) is cls
            assert cc.name == name
            assert (cc.mss, cc.cwnd) == (1200, 4800)

    def test_factory_rejects_unknown_name(self) -> None:
        with pytest.raises(
            ValueError,
            match=r"unknown congestion control 'vegas' \(choose from bbr, cubic, newreno\)",
        ):
            make_congestion_control("vegas", MSS, 10)

    @pytest.mark.parametrize("cls", [NewReno, Cubic])
    @pytest.mark.parametrize("mss", [0, -1, 1.5, True])
    def test_bad_mss_rejected(self, cls: type[CongestionControl], mss: Any) -> None:
        with pytest.raises(ValueError, match="mss must be a positive integer"):
            cls(mss)
        cc = cls(MSS)
        with pytest.raises(ValueError, match="mss must be a positive integer"):
            cc.set_mss(mss)
        assert cc.mss == MSS

    @pytest.mark.parametrize("cls", [NewReno, Cubic])
    def test_bad_initial_window_and_in_flight_rejected(self, cls: type[CongestionControl]) -> None:
        with pytest.raises(ValueError, match="initial_window must be at least 1 segment"):
            cls(MSS, 0)
        cc = cls(MSS)
        with pytest.raises(ValueError, match="in_flight must not be negative"):
            cc.on_congestion(0.0, -1)
        with pytest.raises(ValueError, match="in_flight must not be negative"):
            cc.on_rto(0.0, -1)
        assert cc.cwnd == 10 * MSS and cc.ssthresh == SSTHRESH_INFINITE

    @pytest.mark.parametrize("cls", [NewReno, Cubic])
    def test_set_mss_recomputes_untouched_initial_window(
        self, cls: type[CongestionControl]
    ) -> None:
        cc = cls(1460)
        cc.set_mss(1448)  # timestamps negotiated: 12 bytes of options per segment
        assert (cc.mss, cc.cwnd) == (1448, 14480)
        cc.set_mss(9000)
        assert cc.cwnd == 18000  # RFC 6928's byte cap, not 10 jumbo segments

    @pytest.mark.parametrize("cls", [NewReno, Cubic])
    def test_set_mss_keeps_window_in_segments(self, cls: type[CongestionControl]) -> None:
        cc = cls(1000)
        cc.cwnd = 40_000
        cc.on_congestion(0.0, 40_000)
        ssthresh_segments = cc.ssthresh / 1000
        cc.cwnd = 30_000
        cc.set_mss(500)  # path MTU shrank
        assert cc.cwnd == 15_000
        assert cc.ssthresh == int(ssthresh_segments * 500)
        cc.set_mss(500)  # unchanged: nothing moves
        assert cc.cwnd == 15_000

    @pytest.mark.parametrize("cls", [NewReno, Cubic])
    def test_growth_after_set_mss_uses_new_mss(self, cls: type[CongestionControl]) -> None:
        cc = cls(1460)
        cc.set_mss(1000)
        before = cc.cwnd
        cc.on_ack(20_000, 1.0, 0.1, cc.cwnd)
        assert cc.cwnd == before + cls.slow_start_limit * 1000  # L*SMSS of the new MSS

    @pytest.mark.parametrize("cls", [NewReno, Cubic])
    def test_restart_after_idle_returns_to_initial_window(
        self, cls: type[CongestionControl]
    ) -> None:
        cc = cls(MSS)
        _, _ = run_rounds(cc, 0.0, 0.05, 4)
        assert cc.cwnd > 10 * MSS
        cc.restart_after_idle(10.0)
        assert cc.cwnd == 10 * MSS  # RW = min(IW, cwnd), RFC 5681 §4.1
        small = cls(MSS)
        small.on_rto(0.0, 20 * MSS)
        small.restart_after_idle(1.0)
        assert small.cwnd == MSS  # never raised

    @pytest.mark.parametrize("cls", [NewReno, Cubic])
    def test_syn_loss_gives_one_segment_window(self, cls: type[CongestionControl]) -> None:
        cc = cls(MSS)
        cc.on_syn_loss()
        assert cc.cwnd == MSS
        _, history = run_rounds(cc, 0.0, 0.1, 3)
        assert history == [MSS, 2 * MSS, 4 * MSS, 8 * MSS]


class TestApplicationLimited:
    """Whether the window was used is judged when the sender last transmitted."""

    @pytest.mark.parametrize("cls", [NewReno, Cubic])
    def test_batch_of_acks_in_slow_start_doubles(self, cls: type[CongestionControl]) -> None:
        # A driver feeds a whole window of ACKs before letting the connection send:
        # the flight shrinks ACK by ACK while cwnd grows, yet the window was full.
        cc = cls(MSS)
        for i in range(10):
            cc.on_ack(MSS, 1.0, 0.1, (10 - i) * MSS)
        assert cc.cwnd == 20 * MSS

    @pytest.mark.parametrize("cls", [NewReno, Cubic])
    def test_batch_of_acks_in_congestion_avoidance(self, cls: type[CongestionControl]) -> None:
        cc = cls(MSS)
        cc.cwnd = 40 * MSS
        cc.on_congestion(1.0, 40 * MSS)
        cc.on_recovery_end(1.0)
        before = cc.cwnd
        for i in range(before // MSS):
            cc.on_ack(MSS, 1.0 + i * 1e-4, 0.1, before - i * MSS)
        assert cc.cwnd > before

    @pytest.mark.parametrize("cls", [NewReno, Cubic])
    def test_new_small_send_after_drain_is_application_limited(
        self, cls: type[CongestionControl]
    ) -> None:
        cc = cls(MSS)
        now = drain(cc, 0.0, 0.1)
        assert cc.cwnd == 20 * MSS  # the last full window still counted
        for _ in range(20):
            now += 0.1
            cc.on_ack(MSS, now, 0.1, MSS)  # one segment sent and acknowledged each time
        assert cc.cwnd == 20 * MSS

    @pytest.mark.parametrize("cls", [NewReno, Cubic])
    def test_rwnd_limited_sender_does_not_grow(self, cls: type[CongestionControl]) -> None:
        cc = cls(MSS)
        for i in range(100):
            # The peer's window holds 4 segments; each ACK lets one more be sent.
            cc.on_ack(MSS, i * 0.01, 0.1, 4 * MSS)
        assert cc.cwnd == 10 * MSS


# --------------------------------------------------------------------------- NewReno


class TestNewReno:
    def test_slow_start_doubles_per_round_trip(self) -> None:
        cc = NewReno(MSS)
        _, history = run_rounds(cc, 0.0, 0.1, 5)
        assert history == [10 * MSS * 2**i for i in range(6)]

    def test_slow_start_doubles_with_delayed_acks(self) -> None:
        # RFC 3465 L = 2*SMSS: an ACK for two segments counts both.
        cc = NewReno(MSS)
        _, history = run_rounds(cc, 0.0, 0.1, 4, ack_bytes=2 * MSS)
        assert history == [10 * MSS * 2**i for i in range(5)]

    def test_slow_start_counts_at_most_two_segments_per_ack(self) -> None:
        cc = NewReno(MSS)
        cc.on_ack(10 * MSS, 0.1, 0.1, cc.cwnd)  # a stretch ACK for the whole window
        assert cc.cwnd == 12 * MSS

    def test_slow_start_stops_at_ssthresh(self) -> None:
        cc = NewReno(MSS)
        cc.ssthresh = 11 * MSS
        cc.on_ack(2 * MSS, 0.1, 0.1, cc.cwnd)
        assert cc.cwnd == 11 * MSS
        assert not cc.in_slow_start

    def test_congestion_avoidance_adds_one_mss_per_round_trip(self) -> None:
        cc = NewReno(MSS)
        cc.cwnd = cc.ssthresh = 20 * MSS
        _, history = run_rounds(cc, 0.0, 0.1, 10)
        assert history == [(20 + i) * MSS for i in range(11)]

    def test_congestion_avoidance_is_exact_for_odd_ack_sizes(self) -> None:
        cc = NewReno(MSS)
        cc.cwnd = cc.ssthresh = 20 * MSS
        acked_total = 0
        for _ in range(1000):
            cc.on_ack(777, 1.0, 0.1, cc.cwnd)
            acked_total += 777
        # Window by window: +1 MSS each time a full cwnd of bytes has been counted.
        remaining, cwnd = acked_total, 20 * MSS
        while remaining >= cwnd:
            remaining -= cwnd
            cwnd += MSS
        assert cc.cwnd == cwnd

    def test_loss_halves_flight(self) -> None:
        cc = NewReno(MSS)
        cc.cwnd = 40 * MSS
        cc.on_congestion(1.0, 40 * MSS)
        assert cc.ssthresh == cc.cwnd == 20 * MSS
        assert not cc.in_slow_start

    def test_ssthresh_uses_flight_size_not_cwnd(self) -> None:
        cc = NewReno(MSS)
        cc.cwnd = 40 * MSS
        cc.on_congestion(1.0, 30 * MSS + 1)
        assert cc.ssthresh == (30 * MSS + 1) // 2

    def test_ssthresh_floor_is_two_segments(self) -> None:
        cc = NewReno(MSS)
        cc.on_congestion(1.0, MSS)
        assert cc.ssthresh == cc.cwnd == 2 * MSS
        cc.on_recovery_end(1.1)
        cc.on_rto(2.0, 0)
        assert cc.ssthresh == 2 * MSS

    def test_one_reduction_per_loss_episode(self) -> None:
        cc = NewReno(MSS)
        cc.cwnd = 40 * MSS
        cc.on_congestion(1.0, 40 * MSS)
        cc.on_congestion(1.01, 20 * MSS)  # not a new episode: ignored
        assert cc.ssthresh == cc.cwnd == 20 * MSS
        cc.on_recovery_end(1.2)
        cc.on_congestion(1.3, 20 * MSS)
        assert cc.ssthresh == 10 * MSS

    def test_rto_collapses_to_one_segment(self) -> None:
        cc = NewReno(MSS)
        cc.cwnd = 40 * MSS
        cc.on_rto(1.0, 40 * MSS)
        assert cc.cwnd == MSS
        assert cc.ssthresh == 20 * MSS
        # Slow start again, counting one segment per ACK (RFC 3465 L = 1*SMSS after an RTO).
        cc.on_ack(4 * MSS, 1.5, 0.1, cc.cwnd)
        assert cc.cwnd == 2 * MSS
        _, history = run_rounds(cc, 1.5, 0.1, 4)
        assert history == [2 * MSS, 4 * MSS, 8 * MSS, 16 * MSS, 20 * MSS]
        # Congestion avoidance from ssthresh, and L is 2*SMSS again for later slow starts.
        _, history = run_rounds(cc, 2.0, 0.1, 2)
        assert history == [20 * MSS, 21 * MSS, 22 * MSS]

    def test_repeated_rto_keeps_ssthresh(self) -> None:
        cc = NewReno(MSS)
        cc.cwnd = 40 * MSS
        cc.on_rto(1.0, 40 * MSS)
        cc.on_rto(3.0, MSS)  # the retransmission timed out too
        assert (cc.cwnd, cc.ssthresh) == (MSS, 20 * MSS)
        cc.on_ack(MSS, 3.1, 0.1, MSS)  # new data acknowledged: the episode is over
        cc.on_rto(6.0, 8 * MSS)
        assert (cc.cwnd, cc.ssthresh) == (MSS, 4 * MSS)

    def test_rto_during_fast_recovery_does_not_halve_again(self) -> None:
        cc = NewReno(MSS)
        cc.cwnd = 40 * MSS
        cc.on_congestion(1.0, 40 * MSS)
        cc.on_rto(2.0, 40 * MSS)
        assert (cc.cwnd, cc.ssthresh) == (MSS, 20 * MSS)

    def test_no_growth_when_application_limited(self) -> None:
        for cwnd, ssthresh in ((20 * MSS, SSTHRESH_INFINITE), (20 * MSS, 10 * MSS)):
            cc = NewReno(MSS)
            cc.cwnd, cc.ssthresh = cwnd, ssthresh
            for i in range(200):
                cc.on_ack(MSS, i * 0.01, 0.1, 5 * MSS)  # a quarter of the window in use
            assert cc.cwnd == cwnd
        # A window that is not a whole number of segments still counts as used when
        # less than one segment of it was left.
        cc = NewReno(MSS)
        cc.cwnd = cc.ssthresh = 20 * MSS + 700
        for _ in range(30):
            cc.on_ack(MSS, 1.0, 0.1, 20 * MSS)
        assert cc.cwnd == 21 * MSS + 700

    def test_zero_acked_is_ignored(self) -> None:
        cc = NewReno(MSS)
        cc.on_ack(0, 1.0, 0.1, cc.cwnd)
        assert cc.cwnd == 10 * MSS


# --------------------------------------------------------------------------- CUBIC


class TestCubic:
    RTT = 0.1
    W_MAX = 1000  # segments: 100 ms * 1000 segments is the regime where the cubic curve rules

    def test_multiplicative_decrease_is_beta(self) -> None:
        cc = Cubic(MSS)
        cc.cwnd = 100 * MSS
        cc.on_congestion(5.0, 100 * MSS)
        assert cc.ssthresh == cc.cwnd == int(100 * MSS * BETA_CUBIC)
        assert cc.w_max == pytest.approx(100.0)
        # §4.6: ssthresh from flight_size, with 2 segments as the floor.
        cc2 = Cubic(MSS)
        cc2.cwnd = 100 * MSS
        cc2.on_congestion(5.0, 50 * MSS)
        assert cc2.ssthresh == int(50 * MSS * 0.7)
        cc3 = Cubic(MSS)
        cc3.on_congestion(5.0, MSS)
        assert cc3.ssthresh == cc3.cwnd == 2 * MSS

    def test_k_follows_equation_2(self) -> None:
        cc = cubic_after_loss(self.W_MAX)
        cc.on_ack(MSS, 100.001, self.RTT, cc.cwnd)  # the first ACK opens the epoch
        cwnd_epoch = int(self.W_MAX * MSS * BETA_CUBIC) / MSS
        assert cc.k == pytest.approx(math.cbrt((self.W_MAX - cwnd_epoch) / CUBIC_C))
        assert cc.k == pytest.approx(math.cbrt(self.W_MAX * (1 - BETA_CUBIC) / CUBIC_C), rel=1e-3)

    def test_window_follows_the_cubic_function(self) -> None:
        cc = cubic_after_loss(self.W_MAX)
        start = 100.0
        k = math.cbrt(self.W_MAX * (1 - BETA_CUBIC) / CUBIC_C)  # about 9.09 s
        now = start
        for t in (1.0, 3.0, 5.0, 7.0, k, 11.0, 12.0, 13.0):
            now = run_until(cc, now, self.RTT, start + t)
            elapsed = now - start
            expected = CUBIC_C * (elapsed - k) ** 3 + self.W_MAX
            assert cc.cwnd / MSS == pytest.approx(expected, rel=0.01), f"t={elapsed:.2f}"
            # The Reno-friendly estimate stays below the curve in this regime.
            assert cc.w_est < cc.cwnd / MSS

    def test_reaches_w_max_at_k_and_is_concave_then_convex(self) -> None:
        cc = cubic_after_loss(self.W_MAX)
        k = math.cbrt(self.W_MAX * (1 - BETA_CUBIC) / CUBIC_C)
        rounds = int(2 * k / self.RTT)
        _, history = run_rounds(cc, 100.0, self.RTT, rounds)
        at_k = history[round(k / self.RTT)]
        assert at_k / MSS == pytest.approx(self.W_MAX, rel=0.005)
        growth = [b - a for a, b in itertools.pairwise(history)]
        plateau = round(k / self.RTT)
        before, after = growth[5 : plateau - 5], growth[plateau + 5 :]
        # Concave: the increments shrink towards W_max; convex: they grow beyond it.
        assert all(b <= a + MSS for a, b in itertools.pairwise(before))
        assert before[0] > 10 * before[-1]
        assert all(b + MSS >= a for a, b in itertools.pairwise(after))
        assert after[-1] > 10 * after[0]
        assert max(growth[plateau - 3 : plateau + 3]) <= 2 * MSS

    def test_growth_per_round_trip_capped_at_half_the_window(self) -> None:
        # Far past K, W_cubic(t + RTT) is huge: §4.4 limits the target to 1.5 * cwnd.
        cc = cubic_after_loss(100)
        _, history = run_rounds(cc, 100.0, 2.0, 12)
        ratios = [b / a for a, b in itertools.pairwise(history)]
        assert max(ratios) <= 1.5 + 1e-3
        assert sum(r > 1.49 for r in ratios) >= 5  # the cap binds round after round

    def test_fast_convergence_lowers_w_max(self) -> None:
        cc = cubic_after_loss(self.W_MAX)
        now = run_until(cc, 100.0, self.RTT, 103.0)  # well before K: cwnd < W_max
        cwnd_segments = cc.cwnd / MSS
        assert cwnd_segments < self.W_MAX
        cc.on_congestion(now, cc.cwnd)
        cc.on_recovery_end(now)
        expected_w_max = cwnd_segments * (1 + BETA_CUBIC) / 2
        assert cc.w_max == pytest.approx(expected_w_max)
        # The new curve plateaus at the lowered W_max, not at the window of the loss.
        start = now
        cc.on_ack(MSS, now + 0.001, self.RTT, cc.cwnd)
        k = cc.k
        now = run_until(cc, now + 0.001, self.RTT, start + k)
        assert cc.cwnd / MSS == pytest.approx(expected_w_max, rel=0.01)

    def test_no_fast_convergence_when_window_grew_past_w_max(self) -> None:
        cc = cubic_after_loss(200)
        now = run_until(cc, 100.0, self.RTT, 110.0)  # K = cbrt(150) = 5.3 s
        assert cc.cwnd / MSS > 200
        segments = cc.cwnd / MSS
        cc.on_congestion(now, cc.cwnd)
        assert cc.w_max == pytest.approx(segments)

    def test_reno_friendly_region_dominates_small_bdp(self) -> None:
        # 10 ms RTT and a 20-segment window: K = cbrt(15) = 2.47 s is 247 round trips,
        # while Reno would regain the loss in a handful. §4.3: cwnd follows W_est.
        rtt = 0.01
        cc = cubic_after_loss(20)
        cwnd_epoch = cc.cwnd / MSS
        now, history = run_rounds(cc, 100.0, rtt, 30)
        # Each round trip adds alpha_cubic segments until W_est reaches cwnd_prior, then 1.
        w_est = cwnd_epoch
        for cwnd in history[1:]:
            alpha = 1.0 if w_est >= 20 else ALPHA_CUBIC
            w_est += alpha  # one window of ACKs: alpha * cwnd/cwnd
            assert cwnd / MSS == pytest.approx(w_est, abs=1.0)
        assert cc.w_est == pytest.approx(cc.cwnd / MSS, abs=0.01)
        assert cc.w_cubic(now - 100.0) < cc.w_est
        # Growth beyond cwnd_prior is Reno's 1 segment per round trip.
        tail = [b - a for a, b in itertools.pairwise(history[-6:])]
        assert all(MSS * 0.8 <= g <= MSS * 1.2 for g in tail)

    def test_reno_friendly_alpha_restarts_after_each_loss(self) -> None:
        rtt = 0.01
        cc = cubic_after_loss(20)
        now, _ = run_rounds(cc, 100.0, rtt, 40)  # W_est passed cwnd_prior: alpha is 1
        cc.on_congestion(now, cc.cwnd)
        cc.on_recovery_end(now)
        now, history = run_rounds(cc, now, rtt, 5)
        growth = [(b - a) / MSS for a, b in itertools.pairwise(history)]
        assert growth == pytest.approx([ALPHA_CUBIC] * 5, abs=0.05)

    def test_alpha_cubic_value(self) -> None:
        assert math.isclose(ALPHA_CUBIC, 3 * 0.3 / 1.7)

    def test_rto_then_slow_start_then_convex_from_k_zero(self) -> None:
        cc = cubic_after_loss(self.W_MAX)
        now = run_until(cc, 100.0, self.RTT, 102.0)
        before = cc.cwnd
        cc.on_rto(now, before)
        assert cc.cwnd == MSS
        assert cc.ssthresh == int(before * BETA_CUBIC)
        assert cc.w_max == 0.0  # forgotten until the next stage starts (§4.8)
        # Slow start back to ssthresh (one segment counted per ACK after the timeout).
        acks = 0
        while cc.in_slow_start:
            now += 0.001
            cc.on_ack(MSS, now, self.RTT, cc.cwnd)
            acks += 1
        assert cc.cwnd == cc.ssthresh
        assert acks == math.ceil((cc.ssthresh - MSS) / MSS)
        epoch_start = now
        cwnd_epoch = cc.cwnd / MSS
        cc.on_ack(MSS, now, self.RTT, cc.cwnd)
        assert cc.k == 0.0
        assert cc.w_max == pytest.approx(cwnd_epoch)
        # K = 0: the window is convex from the start, C*t^3 above cwnd_epoch.
        for t in (2.0, 4.0, 6.0):
            now = run_until(cc, now, self.RTT, epoch_start + t)
            elapsed = now - epoch_start
            expected = max(CUBIC_C * elapsed**3 + cwnd_epoch, cc.w_est)
            assert cc.cwnd / MSS == pytest.approx(expected, rel=0.02)

    def test_repeated_rto_keeps_ssthresh(self) -> None:
        cc = Cubic(MSS)
        cc.cwnd = 100 * MSS
        cc.on_rto(1.0, 100 * MSS)
        cc.on_rto(3.0, MSS)
        assert (cc.cwnd, cc.ssthresh) == (MSS, 70 * MSS)

    def test_rto_during_recovery_keeps_the_reduction(self) -> None:
        cc = Cubic(MSS)
        cc.cwnd = 100 * MSS
        cc.on_congestion(1.0, 100 * MSS)
        cc.on_rto(2.0, 100 * MSS)
        assert (cc.cwnd, cc.ssthresh) == (MSS, 70 * MSS)

    def test_first_stage_without_loss_starts_at_k_zero(self) -> None:
        # §4.10: slow start ended without a loss (here: ssthresh set from outside).
        cc = Cubic(MSS)
        cc.ssthresh = cc.cwnd = 50 * MSS
        cc.on_ack(MSS, 1.0, self.RTT, cc.cwnd)
        assert (cc.k, cc.w_max) == (0.0, 50.0)

    def test_no_growth_when_application_limited(self) -> None:
        cc = cubic_after_loss(self.W_MAX)
        cwnd = cc.cwnd
        for i in range(500):
            cc.on_ack(MSS, 100.0 + i * 0.01, self.RTT, cwnd // 2)
        assert cc.cwnd == cwnd

    def test_application_limited_time_is_not_counted(self) -> None:
        # Two identical senders run out of data after 2 s of growth and drain their
        # window. One has more at once; the other sends one segment per round trip for
        # 5 s first. Afterwards both must follow the same curve, shifted by those 5 s.
        steady = cubic_after_loss(self.W_MAX)
        paused = cubic_after_loss(self.W_MAX)
        now_s = drain(steady, run_rounds(steady, 100.0, self.RTT, 20)[0], self.RTT)
        now_p = drain(paused, run_rounds(paused, 100.0, self.RTT, 20)[0], self.RTT)
        cwnd = paused.cwnd
        for _ in range(50):
            now_p += self.RTT
            paused.on_ack(MSS, now_p, self.RTT, MSS)  # one segment in flight
        assert paused.cwnd == cwnd
        _, hist_s = run_rounds(steady, now_s, self.RTT, 40)
        _, hist_p = run_rounds(paused, now_p, self.RTT, 40)
        for a, b in zip(hist_s, hist_p, strict=True):
            assert b == pytest.approx(a, rel=0.01)

    def test_silence_after_application_limited_ack_is_not_counted(self) -> None:
        # The last ACK before a pause found the window unused; the next one, 5 s later,
        # finds it full again. The 5 s without ACKs must not advance the curve either.
        steady = cubic_after_loss(self.W_MAX)
        paused = cubic_after_loss(self.W_MAX)
        now_s = drain(steady, run_rounds(steady, 100.0, self.RTT, 20)[0], self.RTT)
        now_p = drain(paused, run_rounds(paused, 100.0, self.RTT, 20)[0], self.RTT)
        paused.on_ack(MSS, now_p, self.RTT, MSS)
        now_p += 5.0
        _, hist_s = run_rounds(steady, now_s, self.RTT, 40)
        _, hist_p = run_rounds(paused, now_p, self.RTT, 40)
        for a, b in zip(hist_s, hist_p, strict=True):
            assert b == pytest.approx(a, rel=0.01)

    def test_target_is_one_rtt_ahead(self) -> None:
        # §4.4: the target is W_cubic(t + RTT), so after each round trip of ACKs the
        # window has caught up with the curve at the current time, not one RTT behind.
        rtt = 0.5
        cc = cubic_after_loss(self.W_MAX)
        now = 100.0
        for _ in range(6):
            now, _ = run_rounds(cc, now, rtt, 1)
            t = now - 100.0
            assert cc.cwnd / MSS == pytest.approx(cc.w_cubic(t), rel=0.01)
            assert cc.cwnd / MSS > 1.01 * cc.w_cubic(t - rtt)

    def test_slow_start_matches_newreno(self) -> None:
        cubic, reno = Cubic(MSS), NewReno(MSS)
        _, hc = run_rounds(cubic, 0.0, 0.1, 6)
        _, hr = run_rounds(reno, 0.0, 0.1, 6)
        assert hc == hr

    def test_slow_start_doubles_with_stretch_acks(self) -> None:
        """HyStart++'s L = 8 for a sender that does not pace (RFC 9406 §4.2-4.3): a
        receiver that reads in batches and acknowledges five segments at once still
        lets slow start double per round trip (NewReno's L = 2: 1.4x)."""
        cubic, reno = Cubic(MSS), NewReno(MSS)
        _, hc = run_rounds(cubic, 0.0, 0.1, 3, ack_bytes=5 * MSS)
        _, hr = run_rounds(reno, 0.0, 0.1, 3, ack_bytes=5 * MSS)
        assert hc == [10 * MSS, 20 * MSS, 40 * MSS, 80 * MSS]
        assert hr[1] == 14 * MSS
        cc = Cubic(MSS)
        cc.on_ack(10 * MSS, 0.1, 0.1, cc.cwnd)  # a stretch ACK for the whole window
        assert cc.cwnd == 18 * MSS  # at most eight segments counted
        cc.on_congestion(0.2, cc.cwnd)
        cc.on_rto(0.3, cc.cwnd)
        cc.on_ack(4 * MSS, 0.4, 0.1, cc.cwnd)
        assert cc.cwnd == 2 * MSS  # after an RTO, RFC 3465 §2.3's L = 1*SMSS still

    def test_mss_change_keeps_the_curve(self) -> None:
        cc = cubic_after_loss(self.W_MAX)
        now = run_until(cc, 100.0, self.RTT, 103.0)
        segments = cc.cwnd / MSS
        cc.set_mss(MSS // 2)
        assert cc.cwnd / (MSS // 2) == pytest.approx(segments, abs=1e-2)
        assert cc.w_max == pytest.approx(self.W_MAX)
        k = cc.k
        now = run_until(cc, now, self.RTT, 100.0 + k)
        assert cc.cwnd / (MSS // 2) == pytest.approx(self.W_MAX, rel=0.01)


# --------------------------------------------------------------------------- properties

events = st.lists(
    st.one_of(
        st.tuples(st.just("ack"), st.integers(1, 64 * 1024), st.floats(0.0, 2.0)),
        st.tuples(st.just("loss"), st.integers(0, 1 << 22), st.floats(0.0, 2.0)),
        st.tuples(st.just("rto"), st.integers(0, 1 << 22), st.floats(0.0, 2.0)),
        st.tuples(st.just("end"), st.just(0), st.floats(0.0, 2.0)),
        st.tuples(st.just("idle"), st.just(0), st.floats(0.0, 2.0)),
        st.tuples(st.just("mss"), st.integers(500, 9000), st.floats(0.0, 2.0)),
    ),
    max_size=200,
)


@settings(max_examples=200, deadline=None)
@given(name=st.sampled_from(LOSS_BASED), script=events)
def test_windows_stay_sane_under_any_event_sequence(
    name: str, script: list[tuple[str, int, float]]
) -> None:
    cc = make_congestion_control(name, MSS, 10)
    now = 0.0
    for kind, value, dt in script:
        now += dt
        if kind == "ack":
            # Any in-flight value from idle to window-limited (and beyond: a cwnd just cut).
            cc.on_ack(value, now, 0.05, cc.cwnd * (value % 3) // 2)
        elif kind == "loss":
            cc.on_congestion(now, value)
        elif kind == "rto":
            cc.on_rto(now, value)
        elif kind == "end":
            cc.on_recovery_end(now)
        elif kind == "idle":
            cc.restart_after_idle(now)
        else:
            cc.set_mss(value)
        assert isinstance(cc.cwnd, int) and isinstance(cc.ssthresh, int)
        assert cc.cwnd >= cc.mss
        assert cc.ssthresh >= 2 * cc.mss
        if kind in ("loss", "rto"):
            assert cc.cwnd <= max(cc.ssthresh, 2 * cc.mss)


@pytest.mark.parametrize("name", LOSS_BASED)
def test_a_reduced_window_that_equals_the_old_initial_window_is_scaled_not_reset(
    name: str,
) -> None:
    """Found by hypothesis: after a loss, a cwnd that happened to equal the initial window
    of the old MSS was taken for an untouched one and reset to the new MSS's initial window,
    leaving cwnd far above ssthresh. Only a window no loss has touched is recomputed."""
    cc = ALGORITHMS[name](1448)
    cc.on_congestion(0.0, 0)  # loss with nothing in flight: ssthresh and cwnd at the floor
    cc.set_mss(7300)  # the floor of 2 segments, scaled: 14600 bytes, which is also IW(7300)
    assert cc.cwnd == 14600
    cc.set_mss(500)
    assert cc.cwnd == 14600 * 500 // 7300  # scaled in segments, not reset to IW(500)
    cc.on_congestion(0.0, 0)
    assert cc.cwnd <= max(cc.ssthresh, 2 * 500)
