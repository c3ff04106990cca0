"""BBR v1's model and modes (synack.tcp.bbr), driven by synthetic rate samples and by a
small packet-level path: one bottleneck, a fixed propagation delay, no loss.

The connection's own use of BBR (pacing through its timer, samples from its ACKs, loss
each way) is tested on the fake network in tests/tcp/test_bbr_paths.py."""

from __future__ import annotations

import heapq
import itertools
import math

import pytest

from synack.tcp.bbr import (
    DRAIN_GAIN,
    HIGH_GAIN,
    MIN_PIPE_SEGMENTS,
    PACING_MARGIN,
    PROBE_RTT_DURATION,
    RTPROP_FILTER_SECONDS,
    Bbr,
    Mode,
)
from synack.tcp.congestion import make_congestion_control
from synack.tcp.rate import RateSample, RateSampler

MSS = 1000


class Path:
    """A sender (RateSampler + Bbr, always with data to send, paced in send quanta) on a
    path with one bottleneck of `rate` bytes/s and `rtt` seconds of propagation delay.
    Records each ACK's (time, mode, pacing_gain, queue in bytes)."""

    def __init__(self, rate: float, rtt: float, seed: int = 1) -> None:
        self.rate = rate
        self.rtt = rtt
        self.bbr = Bbr(MSS, 10, seed=seed)
        self.sampler = RateSampler()
        self.in_flight = 0
        self.busy_until = 0.0
        self.pace_at = 0.0
        self.now = 0.0
        self.events: list[tuple[float, int, object]] = []
        self.seq = 0
        self.log: list[tuple[float, Mode, float, float, int]] = []
        self.send_wakeup = False

    def queue_bytes(self, now: float) -> float:
        return max(0.0, self.busy_until - now) * self.rate

    def try_send(self) -> None:
        bbr = self.bbr
        now = self.now
        if bbr.pacing_rate and now < self.pace_at:
            if not self.send_wakeup:
                self.send_wakeup = True
                self.push(self.pace_at, None)
            return
        budget = bbr.send_quantum if bbr.pacing_rate else 1 << 40
        sent = 0
        while self.in_flight + MSS <= bbr.cwnd and sent < budget:
            stamp = self.sampler.on_send(now, self.in_flight)
            self.in_flight += MSS
            sent += MSS
            depart = max(self.busy_until, now) + MSS / self.rate
            self.busy_until = depart
            self.push(depart + self.rtt, (stamp, now))
        if sent and bbr.pacing_rate:
            self.pace_at = max(self.pace_at, now) + sent / bbr.pacing_rate
            if self.in_flight + MSS <= bbr.cwnd and not self.send_wakeup:
                self.send_wakeup = True  # more may go once the pacing time comes
                self.push(self.pace_at, None)

    def push(self, when: float, what: object) -> None:
        self.seq += 1
        heapq.heappush(self.events, (when, self.seq, what))

    def run(self, seconds: float) -> None:
        end = self.now + seconds
        self.try_send()
        while self.events and self.events[0][0] <= end:
            when, _, what = heapq.heappop(self.events)
            self.now = when
            if what is None:
                self.send_wakeup = False
            else:
                stamp, sent_at = what  # type: ignore[misc]
                self.sampler.on_delivered(stamp, MSS, when)
                min_rtt = self.bbr.min_rtt if self.bbr.min_rtt != math.inf else 0.0
                rs = self.sampler.sample(when, min_rtt, RateSample())
                rs.rtt = when - sent_at
                rs.prior_in_flight = self.in_flight
                self.in_flight -= MSS
                rs.in_flight = self.in_flight
                self.bbr.on_rate_sample(rs, when)
                bbr = self.bbr
                self.log.append(
                    (when, bbr.mode, bbr.pacing_gain, self.queue_bytes(when), bbr.round_count)
                )
            self.try_send()
        self.now = end


def sample(
    *,
    rate: float,
    rtt: float,
    acked: int = MSS,
    prior_delivered: int,
    total: int,
    in_flight: int = 0,
    prior_in_flight: int = 0,
    app_limited: bool = False,
) -> RateSample:
    rs = RateSample()
    rs.delivery_rate = rate
    rs.rtt = rtt
    rs.newly_acked = acked
    rs.prior_delivered = prior_delivered
    rs.total_delivered = total
    rs.in_flight = in_flight
    rs.prior_in_flight = prior_in_flight
    rs.is_app_limited = app_limited
    return rs


def rounds(
    bbr: Bbr, n: int, rate: float, rtt: float, now: float, delivered: int
) -> tuple[float, int]:
    """`n` round trips, each one ACK of `rate` that starts a round."""
    for _ in range(n):
        now += rtt
        prior = delivered
        delivered += MSS
        bbr.on_rate_sample(sample(rate=rate, rtt=rtt, prior_delivered=prior, total=delivered), now)
    return now, delivered


# ---------------------------------------------------------------------- on a path


@pytest.mark.parametrize(("rate", "rtt"), [(1e6, 0.04), (10e6, 0.01), (5e6, 0.1)])
def test_startup_finds_the_bottleneck_then_drains_into_probe_bw(rate: float, rtt: float) -> None:
    p = Path(rate, rtt)
    p.run(3.0 + 40 * rtt)
    modes = [m for _, m, _, _, _ in p.log]
    first = {m: modes.index(m) for m in Mode if m in modes}
    assert first[Mode.STARTUP] < first[Mode.DRAIN] < first[Mode.PROBE_BW]
    # Startup doubles per round from 10 segments: the initial window's round,
    # log2(BDP/IW) doubling rounds, two for the samples to catch up with the sending
    # rate, and the three that show the growth has stopped.
    drain_round = next(r for _, m, _, _, r in p.log if m is Mode.DRAIN)
    assert drain_round <= math.ceil(math.log2(rate * rtt / (10 * MSS))) + 6
    assert p.bbr.btl_bw == pytest.approx(rate, rel=0.02)
    assert p.bbr.min_rtt == pytest.approx(rtt + MSS / rate, rel=0.02)
    assert p.bbr.filled_pipe


@pytest.mark.parametrize(("rate", "rtt"), [(1e6, 0.04), (10e6, 0.02)])
def test_probe_bw_keeps_the_standing_queue_under_one_bdp(rate: float, rtt: float) -> None:
    p = Path(rate, rtt)
    p.run(4.0)
    bdp = rate * rtt
    steady = [q for t, m, _, q, _ in p.log if m is Mode.PROBE_BW and t > 1.0]
    assert steady
    assert max(steady) < bdp
    # The 0.75 phase drains what the 1.25 phase queued, down to the three send quanta
    # that BBR's target flight adds to one BDP (Linux's quantization budget).
    assert min(steady) <= 3 * p.bbr.send_quantum + 2 * MSS


def test_probe_bw_cycles_the_pacing_gain_once_per_rtprop() -> None:
    p = Path(2e6, 0.02)
    p.run(3.0)
    gains = []
    for _, mode, gain, _, _ in p.log:
        if mode is Mode.PROBE_BW and (not gains or gains[-1] != gain):
            gains.append(gain)
    # Consecutive distinct gains follow the cycle: 1.25 then 0.75 then 1 (six phases
    # of 1 are one run of equal values here).
    cycle = [1.25, 0.75, 1.0]
    start = gains.index(1.25)
    for i, g in enumerate(gains[start : start + 12]):
        assert g == cycle[i % 3]
    # Eight phases of about one RTprop each: a cycle of 1.25 phases takes ~8 RTTs.
    probes = [
        t
        for (t, _, g, _, _), prev in zip(p.log[1:], p.log, strict=False)
        if g == 1.25 and prev[2] != 1.25
    ]
    gaps = [b - a for a, b in itertools.pairwise(probes)]
    assert gaps and all(8 * 0.02 <= gap <= 8 * 0.02 * 1.5 for gap in gaps)


def test_the_pacing_rate_is_the_gain_times_the_bandwidth() -> None:
    p = Path(4e6, 0.02)
    p.run(2.0)
    bbr = p.bbr
    assert bbr.mode is Mode.PROBE_BW
    assert bbr.pacing_rate == pytest.approx(bbr.pacing_gain * bbr.btl_bw * PACING_MARGIN)
    # 4 MB/s is above 24 Mbit/s: a millisecond of data per burst.
    assert bbr.send_quantum == int(bbr.pacing_rate * 0.001)


# ---------------------------------------------------------------------- synthetic samples


def test_full_pipe_after_three_rounds_without_a_quarter_more_bandwidth() -> None:
    bbr = Bbr(MSS)
    now, delivered = rounds(bbr, 1, 1e5, 0.1, 0.0, 0)
    for rate in (2e5, 4e5, 8e5):  # doubling: still filling
        now, delivered = rounds(bbr, 1, rate, 0.1, now, delivered)
    assert not bbr.filled_pipe and bbr.mode is Mode.STARTUP
    assert bbr.pacing_gain == HIGH_GAIN and bbr.cwnd_gain == HIGH_GAIN
    now, delivered = rounds(bbr, 2, 9e5, 0.1, now, delivered)  # +12%: not a quarter
    assert not bbr.filled_pipe
    bbr.on_rate_sample(  # a third round, with a queue in flight: Drain has work to do
        sample(
            rate=9.5e5,
            rtt=0.1,
            prior_delivered=delivered,
            total=delivered + MSS,
            in_flight=10 * 95_000,
        ),
        now + 0.1,
    )
    assert bbr.filled_pipe
    assert bbr.mode is Mode.DRAIN and bbr.pacing_gain == DRAIN_GAIN


def test_app_limited_rounds_do_not_end_startup_nor_lower_the_estimate() -> None:
    bbr = Bbr(MSS)
    now, delivered = rounds(bbr, 3, 1e6, 0.1, 0.0, 0)
    for _ in range(6):
        now += 0.1
        prior, delivered = delivered, delivered + MSS
        bbr.on_rate_sample(
            sample(rate=1e5, rtt=0.1, prior_delivered=prior, total=delivered, app_limited=True),
            now,
        )
    assert not bbr.filled_pipe
    assert bbr.btl_bw == 1e6
    # An application-limited sample above the estimate is taken.
    prior, delivered = delivered, delivered + MSS
    bbr.on_rate_sample(
        sample(rate=2e6, rtt=0.1, prior_delivered=prior, total=delivered, app_limited=True), now
    )
    assert bbr.btl_bw == 2e6


def test_the_bandwidth_estimate_forgets_after_ten_rounds() -> None:
    bbr = Bbr(MSS)
    now, delivered = rounds(bbr, 1, 5e6, 0.1, 0.0, 0)
    now, delivered = rounds(bbr, 9, 1e6, 0.1, now, delivered)
    assert bbr.btl_bw == 5e6
    now, delivered = rounds(bbr, 1, 1e6, 0.1, now, delivered)
    assert bbr.btl_bw == 1e6


def test_probe_rtt_after_ten_seconds_without_a_lower_rtt() -> None:
    """Draft §4.3.5: when RTprop is ten seconds old, hold the flight at four segments for
    200 ms and a round, then take the RTT seen meanwhile as RTprop."""
    bbr = Bbr(MSS)
    rtt = 0.05
    now, delivered = rounds(bbr, 12, 1e6, rtt, 0.0, 0)
    assert bbr.filled_pipe
    bbr.on_rate_sample(
        sample(rate=1e6, rtt=rtt, prior_delivered=delivered, total=delivered + MSS), now
    )
    assert bbr.mode is Mode.PROBE_BW
    before = bbr.cwnd
    stamp = bbr.min_rtt_stamp
    delivered += MSS
    # RTTs above the minimum until the estimate is ten seconds old.
    while now <= stamp + RTPROP_FILTER_SECONDS:
        now += rtt
        bbr.on_rate_sample(
            sample(
                rate=1e6,
                rtt=2 * rtt,
                prior_delivered=delivered - MSS,
                total=delivered,
                in_flight=before,
            ),
            now,
        )
        delivered += MSS
        if bbr.mode is Mode.PROBE_RTT:
            break
    assert bbr.mode is Mode.PROBE_RTT
    assert now > stamp + RTPROP_FILTER_SECONDS
    assert bbr.cwnd == MIN_PIPE_SEGMENTS * MSS
    assert bbr.min_rtt == 2 * rtt  # the expired estimate took the latest sample
    # The flight falls to four segments: 200 ms and one round later ProbeRTT ends.
    entered = now
    while bbr.mode is Mode.PROBE_RTT:
        now += 0.01
        bbr.on_rate_sample(
            sample(
                rate=1e6,
                rtt=rtt,
                prior_delivered=delivered - MSS,
                total=delivered,
                in_flight=MIN_PIPE_SEGMENTS * MSS,
            ),
            now,
        )
        delivered += MSS
        assert now < entered + 1.0
    assert now >= entered + PROBE_RTT_DURATION
    assert bbr.mode is Mode.PROBE_BW
    assert bbr.min_rtt == rtt and bbr.min_rtt_stamp == pytest.approx(now)
    assert bbr.cwnd >= before  # the window before ProbeRTT is restored


def test_an_idle_restart_does_not_enter_probe_rtt() -> None:
    bbr = Bbr(MSS)
    now, delivered = rounds(bbr, 12, 1e6, 0.05, 0.0, 0)
    bbr.restart_after_idle(now + 20.0)
    bbr.on_rate_sample(
        sample(rate=1e6, rtt=0.06, prior_delivered=delivered, total=delivered + MSS), now + 20.1
    )
    assert bbr.mode is not Mode.PROBE_RTT
    assert bbr.min_rtt == 0.06  # the old estimate expired and the new sample replaced it


# ---------------------------------------------------------------------- loss


def test_fast_recovery_conserves_packets_for_a_round_then_restores_the_window() -> None:
    bbr = Bbr(MSS)
    now, delivered = rounds(bbr, 12, 1e6, 0.05, 0.0, 0)
    full = bbr.cwnd
    assert full > 16 * MSS
    bbr.on_congestion(now, 10 * MSS)
    assert bbr.cwnd == 10 * MSS  # no multiplicative decrease: the flight, held
    bbr.on_rate_sample(
        sample(
            rate=1e6,
            rtt=0.05,
            prior_delivered=delivered - 10 * MSS,
            total=delivered + MSS,
            in_flight=12 * MSS,
        ),
        now + 0.01,
    )
    assert bbr.cwnd == 13 * MSS  # in flight + delivered: one out per one in
    bbr.on_recovery_end(now + 0.05)
    assert bbr.cwnd == full


def test_a_second_loss_in_one_recovery_changes_nothing() -> None:
    bbr = Bbr(MSS)
    rounds(bbr, 12, 1e6, 0.05, 0.0, 0)
    bbr.on_congestion(1.0, 30 * MSS)
    bbr.on_congestion(1.01, 5 * MSS)
    assert bbr.cwnd == 30 * MSS


def test_a_loss_on_a_standing_queue_bounds_the_flight_and_random_loss_does_not() -> None:
    """A recovery that begins while every RTT sample of two rounds sat 50% above RTprop
    (a drop-tail buffer someone keeps full) halves the flight BBR may keep; the same loss
    on an empty queue (random loss) keeps v1's packet conservation only."""
    rtt = 0.05
    queued = Bbr(MSS)
    now, delivered = rounds(queued, 12, 1e6, rtt, 0.0, 0)
    alone = Bbr(MSS)
    rounds(alone, 12, 1e6, rtt, 0.0, 0)
    now, delivered = rounds(queued, 2, 1e6, 1.5 * rtt, now, delivered)
    full = alone.cwnd
    assert full > 20 * MSS
    queued.on_congestion(now, 20 * MSS)
    alone.on_congestion(now, 20 * MSS)
    assert alone.cwnd == 20 * MSS
    assert queued.cwnd == 10 * MSS
    # The bound outlasts the recovery, then grows by one segment a round.
    queued.on_recovery_end(now)
    alone.on_recovery_end(now)
    assert alone.cwnd == full
    assert queued.cwnd == 10 * MSS
    now, delivered = rounds(queued, 3, 1e6, rtt, now, delivered)
    assert queued.cwnd == 13 * MSS


def test_a_queue_already_answered_by_a_cut_does_not_cut_again() -> None:
    """The rounds just after a cut still time segments sent before it: a loss then
    (random loss as the queue drains) keeps the bound; once two rounds of segments sent
    after the cut show the queue still standing, a loss halves it again."""
    rtt = 0.05
    bbr = Bbr(MSS)
    now, delivered = rounds(bbr, 12, 1e6, rtt, 0.0, 0)
    now, delivered = rounds(bbr, 2, 1e6, 1.5 * rtt, now, delivered)
    bbr.on_congestion(now, 20 * MSS)
    assert bbr.cwnd == 10 * MSS
    bbr.on_recovery_end(now)
    now, delivered = rounds(bbr, 2, 1e6, 1.5 * rtt, now, delivered)
    bbr.on_congestion(now, 12 * MSS)
    assert bbr.cwnd == 12 * MSS  # packet conservation only: the bound stays
    bbr.on_recovery_end(now)
    assert bbr.cwnd == 12 * MSS  # 10 segments grown by one a round
    now, delivered = rounds(bbr, 1, 1e6, 1.5 * rtt, now, delivered)
    bbr.on_congestion(now, 12 * MSS)
    assert bbr.cwnd == 6 * MSS


def test_a_loss_on_a_standing_queue_ends_startup() -> None:
    bbr = Bbr(MSS)
    now, delivered = 0.0, 0
    for i in range(4):  # the rate still doubling: Startup
        now, delivered = rounds(bbr, 1, 1e5 * 2**i, 0.05 if i < 2 else 0.08, now, delivered)
    assert bbr.mode is Mode.STARTUP
    bbr.on_congestion(now, 200 * MSS)
    assert bbr.filled_pipe
    # Not half of Startup's overshoot (100 segments): one BDP of the model.
    assert bbr.cwnd == bbr.inflight(1.0) < 50 * MSS


def test_a_timeout_restarts_from_one_segment_and_restores_after_the_episode() -> None:
    bbr = Bbr(MSS)
    now, delivered = rounds(bbr, 12, 1e6, 0.05, 0.0, 0)
    full = bbr.cwnd
    bbr.on_rto(now, 8 * MSS)
    assert bbr.cwnd == MSS
    # Retransmissions (stamped before the timeout) arrive: growth by what is delivered,
    # from the four-segment floor, but not yet the window from before.
    old = delivered - 5 * MSS
    for k in range(1, 4):
        bbr.on_rate_sample(
            sample(rate=0.0, rtt=-1.0, prior_delivered=old, total=delivered + k * MSS),
            now + 0.1 * k,
        )
    assert MIN_PIPE_SEGMENTS * MSS <= bbr.cwnd < full
    # Data sent after the timeout arrives: the loss episode is over, the window is back.
    bbr.on_rate_sample(
        sample(rate=0.0, rtt=-1.0, prior_delivered=delivered, total=delivered + 4 * MSS),
        now + 0.5,
    )
    assert bbr.cwnd >= full


def test_undo_keeps_the_model_and_returns_the_window() -> None:
    bbr = Bbr(MSS)
    now, delivered = rounds(bbr, 12, 1e6, 0.05, 0.0, 0)
    full = bbr.cwnd
    prior = bbr.snapshot()
    bbr.on_congestion(now, 4 * MSS)
    now, delivered = rounds(bbr, 2, 2e6, 0.05, now, delivered)
    after = bbr.undone_by(prior)
    assert after is bbr
    assert bbr.cwnd >= full and bbr.btl_bw == 2e6


def test_factory_and_windows_in_segments_across_an_mss_change() -> None:
    bbr = make_congestion_control("bbr", 1448, 10)
    assert isinstance(bbr, Bbr) and bbr.uses_rate_samples and bbr.pacing_rate == 0.0
    assert bbr.cwnd == 14480
    bbr.set_mss(1000)
    assert bbr.cwnd == 10000 and bbr.send_quantum == 1000  # unpaced: one segment
    assert bbr.in_slow_start
