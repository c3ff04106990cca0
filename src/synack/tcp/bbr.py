"""BBR congestion control, version 1 (draft-cardwell-iccrg-bbr-congestion-control-00,
Linux's tcp_bbr.c): a model of the path instead of a reaction to loss.

BBR estimates the bottleneck bandwidth (the windowed maximum of delivery-rate samples
over ten round trips) and the round-trip propagation time (the minimum RTT over ten
seconds), paces at about that bandwidth and keeps about two bandwidth-delay products
in flight. Four modes move the estimates: Startup doubles the rate each round until it
stops growing, Drain empties the queue Startup built, ProbeBW cycles the pacing gain
(1.25 to probe, 0.75 to drain, then six rounds at 1) and ProbeRTT drops to four segments
for 200 ms when the minimum RTT has not been seen for ten seconds.

Why version 1: random loss is what a TCP carried over UDP meets on Wi-Fi and mobile
paths, and version 1 does not read loss as congestion. BBRv2 and v3 bound the data in
flight once a round loses more than 2% of its packets, which at 5% random loss holds
the rate far below the path's (issue 12 point 10). Loss still governs *what* is resent:
the connection's recovery, with cwnd held by packet conservation for one round (as
Linux's v1 does).

One thing is taken from v2: a loss that comes with a standing queue bounds the flight
(`inflight_hi`, see LOSS_BETA). Plain v1 took most of a one-BDP drop-tail buffer shared
with CUBIC (CUBIC kept 4-34% of the link); at 10 ms the paced BBR flow itself saw only
4-5% loss there, so no loss *rate* threshold that lets 5% random loss pass can tell the
competition apart, but the queue can: random loss happens on an empty queue, a buffer
overflow on a full one. With the bound CUBIC keeps 34-82% of the link in 10 of the 12
rows of bench/bbr.py's share table, but 16-20% at 5-10 MB/s and 100 ms, where BBR, paced,
is hardly ever in a recovery again after Startup; the random-loss rows still hold, at a
cost of up to 12 points where BBR's own queue trips the bound (docs/benchmarks.md).

Not taken from Linux's v1: its long-term bandwidth sampling for token-bucket policers
(it needs 20% loss to engage), the TSO-specific parts of the quantization budget, and
its per-ACK loss count (Linux takes the packets newly marked lost off cwnd and ends a
1.25 probe early on loss; the connection reports no losses per ACK, so `newly_lost` is
0 and those two steps do nothing here).

Units: bytes, bytes per second, seconds. `on_rate_sample` runs for every ACK that
delivers data, in or out of recovery; the connection paces new data at `pacing_rate`
in bursts of `send_quantum`.
"""

from __future__ import annotations

import math
import random
from enum import Enum
from typing import ClassVar, Final

from synack.tcp.congestion import CongestionControl
from synack.tcp.rate import RateSample
from synack.tcp.windowed import WindowedMax

# Draft §4.1.1: "BBRHighGain = 2/ln(2)", the smallest gain that doubles the delivery
# rate each round trip; Drain's pacing gain is its inverse.
HIGH_GAIN: Final = 2.0 / math.log(2.0)
DRAIN_GAIN: Final = 1.0 / HIGH_GAIN
# Draft §4.3.4.5 (ProbeBW): "a cwnd_gain of 2" and the eight-phase pacing gain cycle.
CWND_GAIN: Final = 2.0
PACING_GAIN_CYCLE: Final = (1.25, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
# Draft §4.1.1: "BtlBwFilterLen ... 10 packet-timed round trips", "RTpropFilterLen
# ... 10 seconds", "ProbeRTTDuration ... 200 milliseconds", "BBRMinPipeCwnd ... 4*SMSS".
BTLBW_FILTER_ROUNDS: Final = 10
RTPROP_FILTER_SECONDS: Final = 10.0
PROBE_RTT_DURATION: Final = 0.2
MIN_PIPE_SEGMENTS: Final = 4
# Draft §4.3.2.2 (full pipe): "if BBR.BtlBw has not grown by at least 25% ... for
# three rounds".
FULL_BW_THRESH: Final = 1.25
FULL_BW_ROUNDS: Final = 3
# Linux paces 1% below the estimate (bbr_pacing_margin_percent) so that the queue
# the model would otherwise leave at the bottleneck drains.
PACING_MARGIN: Final = 0.99
# Draft §4.2.2 (send quantum): one segment below 1.2 Mbit/s, two below 24 Mbit/s, else
# a millisecond of data up to 64 KB.
_QUANTUM_LOW_RATE: Final = 1.2e6 / 8
_QUANTUM_MID_RATE: Final = 24e6 / 8
_QUANTUM_MAX: Final = 64 * 1024
# A loss that comes with a queue bounds the flight: BBRv2's inflight_hi (draft-
# cardwell-iccrg-bbr-congestion-control-02, Linux's tcp_bbr2.c
# bbr2_handle_inflight_too_high cuts it to BBRBeta 0.7 x the flight at loss), but set
# by a recovery that begins while every RTT sample of the last two rounds stood at
# least QUEUE_THRESH x RTprop above RTprop -- a standing queue -- instead of by a
# loss rate above 2%. Random loss on an empty queue is left alone (the 5% target);
# a drop-tail buffer that a loss-based flow keeps full is not. The *minimum* of the
# rounds' samples, not the maximum: under loss, a sample may time a segment sent
# before a hole was repaired, and BBR's own 1.25 probe lifts the maximum for a round.
# The beta is 0.5, not v2's 0.7: in a one-BDP buffer at 1 MB/s and 10 ms (a 7-segment
# BDP), 0.7 left CUBIC 22% of the link; 0.5 left it 36% (docs/benchmarks.md).
LOSS_BETA: Final = 0.5
QUEUE_THRESH: Final = 0.25
# inflight_hi then grows by one segment per round trip outside recovery (Reno's
# additive increase: a loss-based flow's own pace), so that the flow finds its share
# again once the other flow leaves or backs off.
INFLIGHT_HI_GROWTH: Final = 1
# After a cut in round r, the queue signal counts again only once both its rounds time
# segments sent after the cut: round r+1 still times segments sent in round r, so from
# round r+3 (r+2 and r+3). Earlier samples time the queue already answered: Startup's,
# still in them after Drain, once cut BBR a second time, to half a BDP, on a random
# loss (tests/tcp/test_bbr_paths.py, 1 MB/s, 100 ms, 1%: 0.75 of the link).
QUEUE_ROUNDS_AFTER_CUT: Final = 3


class Mode(Enum):
    STARTUP = "startup"
    DRAIN = "drain"
    PROBE_BW = "probe_bw"
    PROBE_RTT = "probe_rtt"


class Bbr(CongestionControl):
    """BBR v1: the congestion window and the pacing rate from a bandwidth and RTT model."""

    name: ClassVar[str] = "bbr"
    uses_rate_samples: ClassVar[bool] = True

    __slots__ = (
        "_bound_round",
        "_btl_bw",
        "_conservation_until",
        "_cycle_index",
        "_cycle_stamp",
        "_delivered",
        "_full_bw",
        "_full_bw_count",
        "_idle_restart",
        "_in_recovery",
        "_inflight_hi",
        "_loss_until",
        "_next_round_delivered",
        "_prev_round_min_rtt",
        "_prior_cwnd",
        "_probe_rtt_done",
        "_probe_rtt_round_done",
        "_random",
        "_round_min_rtt",
        "cwnd_gain",
        "filled_pipe",
        "min_rtt",
        "min_rtt_stamp",
        "mode",
        "pacing_gain",
        "pacing_rate",
        "round_count",
        "round_start",
        "send_quantum",
    )

    def __init__(self, mss: int, initial_window: int = 10, seed: int = 0) -> None:
        super().__init__(mss, initial_window)
        self._random = random.Random(seed)  # ProbeBW's starting phase, as Linux randomises it
        self._btl_bw = WindowedMax(BTLBW_FILTER_ROUNDS)
        self.min_rtt = math.inf  # RTprop
        self.min_rtt_stamp = 0.0
        self.round_count = 0
        self.round_start = False
        self._next_round_delivered = 0
        self.filled_pipe = False
        self._full_bw = 0.0
        self._full_bw_count = 0
        self._cycle_index = 0
        self._cycle_stamp = 0.0
        self._prior_cwnd = 0
        self._in_recovery = False
        # Packet conservation lasts until data sent after C.delivered was this arrives.
        self._conservation_until = -1
        # A timeout's loss episode ends when data sent after C.delivered was this arrives.
        self._loss_until = -1
        self._delivered = 0  # C.delivered at the latest sample
        self._probe_rtt_done = 0.0  # when ProbeRTT may end (0.0: in flight not yet low)
        self._probe_rtt_round_done = False
        self._idle_restart = False
        # The smallest RTT samples of this round and the one before (the queue signal).
        self._round_min_rtt = math.inf
        self._prev_round_min_rtt = math.inf
        self._inflight_hi = math.inf  # bytes; inf until a loss with a queue
        self._bound_round = -QUEUE_ROUNDS_AFTER_CUT  # round_count at the latest cut
        self.pacing_rate = 0.0  # bytes/s; 0.0 until the first RTT is known (no pacing)
        self.send_quantum = mss
        self._enter_startup()

    # ------------------------------------------------------------------ the model

    @property
    def btl_bw(self) -> float:
        """The bottleneck bandwidth estimate in bytes/s (0.0 before any sample)."""
        return self._btl_bw.get()

    @property
    def bdp(self) -> float:
        """Estimated bandwidth-delay product in bytes (0.0 until both are known)."""
        if self.min_rtt == math.inf:
            return 0.0
        return self._btl_bw.get() * self.min_rtt

    def inflight(self, gain: float) -> int:
        """Draft §4.2.3.2 BBRInflight(gain): gain x BDP plus the quantization budget
        (three send quanta, so that bursts do not leave the pipe short)."""
        if self.min_rtt == math.inf:
            return self.initial_window * self.mss  # "no valid RTT samples yet"
        return int(gain * self.bdp) + 3 * self.send_quantum

    def on_rate_sample(self, rs: RateSample, now: float) -> None:
        """Draft §4.2 (upon every ACK): update the model and state, then the controls."""
        if rs.newly_acked <= 0:
            return
        self._delivered = rs.total_delivered
        if 0 <= self._loss_until <= rs.prior_delivered:
            self.on_recovery_end(now)  # data sent since the timeout has arrived
        self._update_round(rs)
        if 0.0 <= rs.rtt < self._round_min_rtt:
            self._round_min_rtt = rs.rtt
        self._update_btl_bw(rs)
        self._check_cycle_phase(rs, now)
        self._check_full_pipe(rs)
        self._check_drain(rs, now)
        self._update_min_rtt(rs, now)
        self._set_pacing_rate(self.pacing_gain, rs)
        self._set_send_quantum()
        self._set_cwnd(rs)

    def _update_round(self, rs: RateSample) -> None:
        # Draft §4.1.1.3: a round trip ends when data sent after the previous round's
        # end is delivered.
        self.round_start = False
        if rs.prior_delivered >= self._next_round_delivered:
            self._next_round_delivered = rs.total_delivered
            self.round_count += 1
            self.round_start = True
            self._prev_round_min_rtt = self._round_min_rtt
            self._round_min_rtt = math.inf
            if self._inflight_hi != math.inf and not self._in_recovery:
                self._inflight_hi += INFLIGHT_HI_GROWTH * self.mss

    def _update_btl_bw(self, rs: RateSample) -> None:
        # Draft §4.1.1.5: an application-limited sample enters the filter only if it
        # shows more than the estimate (it can only understate the path).
        rate = rs.delivery_rate
        if rate > 0.0 and (not rs.is_app_limited or rate >= self._btl_bw.get()):
            self._btl_bw.update(rate, self.round_count)

    def _update_min_rtt(self, rs: RateSample, now: float) -> None:
        # Draft §4.1.2.3: take a sample no larger than RTprop, or any sample once the
        # estimate is ten seconds old; then ProbeRTT, if it was old.
        expired = now > self.min_rtt_stamp + RTPROP_FILTER_SECONDS
        if rs.rtt >= 0.0 and (rs.rtt <= self.min_rtt or expired):
            self.min_rtt = rs.rtt
            self.min_rtt_stamp = now
        if expired and not self._idle_restart and self.mode is not Mode.PROBE_RTT:
            self._enter_probe_rtt()
        if self.mode is Mode.PROBE_RTT:
            self._handle_probe_rtt(rs, now)
        self._idle_restart = False

    # ------------------------------------------------------------------ the modes

    def _enter_startup(self) -> None:
        self.mode = Mode.STARTUP
        self.pacing_gain = HIGH_GAIN
        self.cwnd_gain = HIGH_GAIN

    def _check_full_pipe(self, rs: RateSample) -> None:
        # Draft §4.3.2.2: the pipe is full once three rounds in a row (not limited by
        # the application) failed to raise the bandwidth by a quarter.
        if self.filled_pipe or not self.round_start or rs.is_app_limited:
            return
        bw = self._btl_bw.get()
        if bw >= self._full_bw * FULL_BW_THRESH:
            self._full_bw = bw
            self._full_bw_count = 0
            return
        self._full_bw_count += 1
        if self._full_bw_count >= FULL_BW_ROUNDS:
            self.filled_pipe = True

    def _check_drain(self, rs: RateSample, now: float) -> None:
        # Draft §4.3.3: leave Startup for Drain once the pipe is full; leave Drain for
        # ProbeBW once the queue Startup built has drained (in flight <= one BDP).
        if self.mode is Mode.STARTUP and self.filled_pipe:
            self.mode = Mode.DRAIN
            self.pacing_gain = DRAIN_GAIN
            self.cwnd_gain = HIGH_GAIN
        if self.mode is Mode.DRAIN and rs.in_flight <= self.inflight(1.0):
            self._enter_probe_bw(now)

    def _enter_probe_bw(self, now: float) -> None:
        # Draft §4.3.4.4: start at a random phase other than the draining 0.75, so that
        # flows do not probe in step.
        self.mode = Mode.PROBE_BW
        self.cwnd_gain = CWND_GAIN
        n = len(PACING_GAIN_CYCLE)
        self._cycle_index = n - 1 - self._random.randrange(n - 1)
        self._advance_cycle_phase(now)

    def _advance_cycle_phase(self, now: float) -> None:
        self._cycle_index = (self._cycle_index + 1) % len(PACING_GAIN_CYCLE)
        self._cycle_stamp = now
        self.pacing_gain = PACING_GAIN_CYCLE[self._cycle_index]

    def _check_cycle_phase(self, rs: RateSample, now: float) -> None:
        # Draft §4.3.4.4 BBRIsNextCyclePhase(): a phase lasts one RTprop; probing (1.25)
        # also runs until the flight reached 1.25 BDP or loss says the pipe is full;
        # draining (0.75) ends early once the flight is down to one BDP.
        if self.mode is not Mode.PROBE_BW:
            return
        gain = self.pacing_gain
        full_length = now - self._cycle_stamp > self.min_rtt
        if gain > 1.0:
            done = full_length and (rs.newly_lost > 0 or rs.prior_in_flight >= self.inflight(gain))
        elif gain < 1.0:
            done = full_length or rs.prior_in_flight <= self.inflight(1.0)
        else:
            done = full_length
        if done:
            self._advance_cycle_phase(now)

    def _enter_probe_rtt(self) -> None:
        self.mode = Mode.PROBE_RTT
        self.pacing_gain = 1.0
        self.cwnd_gain = 1.0
        self._save_cwnd()
        self._probe_rtt_done = 0.0

    def _handle_probe_rtt(self, rs: RateSample, now: float) -> None:
        # Draft §4.3.5: hold the flight at BBRMinPipeCwnd for 200 ms and one round trip,
        # then take the RTT seen meanwhile as the new RTprop and leave.
        if self._probe_rtt_done == 0.0:
            if rs.in_flight <= MIN_PIPE_SEGMENTS * self.mss:
                self._probe_rtt_done = now + PROBE_RTT_DURATION
                self._probe_rtt_round_done = False
                self._next_round_delivered = rs.total_delivered
            return
        if self.round_start:
            self._probe_rtt_round_done = True
        if self._probe_rtt_round_done and now > self._probe_rtt_done:
            self.min_rtt_stamp = now
            self._restore_cwnd()
            if self.filled_pipe:
                self._enter_probe_bw(now)
            else:
                self._enter_startup()

    # ------------------------------------------------------------------ the controls

    def _set_pacing_rate(self, gain: float, rs: RateSample) -> None:
        # Draft §4.2.1: pace at gain x BtlBw; before the pipe is full never lower the
        # rate (an early sample may understate it). The first RTT sample sets the rate
        # the window over that RTT gives, as Linux's bbr_init_pacing_rate_from_rtt does
        # (the initial window itself leaves unpaced: no RTT is known then).
        if self.pacing_rate == 0.0 and rs.rtt > 0.0:
            self.pacing_rate = HIGH_GAIN * self.cwnd / rs.rtt
        bw = self._btl_bw.get()
        if bw <= 0.0:
            return
        rate = gain * bw * PACING_MARGIN
        if self.filled_pipe or rate > self.pacing_rate:
            self.pacing_rate = rate

    def _set_send_quantum(self) -> None:
        rate = self.pacing_rate
        mss = self.mss
        if rate < _QUANTUM_LOW_RATE:
            self.send_quantum = mss
        elif rate < _QUANTUM_MID_RATE:
            self.send_quantum = 2 * mss
        else:
            self.send_quantum = max(2 * mss, min(int(rate * 0.001), _QUANTUM_MAX))

    def _set_cwnd(self, rs: RateSample) -> None:
        # Draft §4.2.3: grow toward cwnd_gain x BDP by what each ACK delivers (never
        # faster, so a stale model does not burst); in the first round of recovery,
        # packet conservation: no more than what is in flight plus what just left.
        mss = self.mss
        acked = rs.newly_acked
        cwnd = self.cwnd
        if self._conservation_until >= 0:
            if rs.prior_delivered < self._conservation_until:
                self.cwnd = max(cwnd, rs.in_flight + acked)
                return
            self._conservation_until = -1  # a round since the recovery began
        target = self.inflight(self.cwnd_gain)
        if self.mode is Mode.PROBE_BW and self._cycle_index == 0:
            target += 2 * mss  # Linux: room to probe with a whole extra burst
        if self.filled_pipe:
            cwnd = min(cwnd + acked, target)
        elif cwnd < target or rs.total_delivered < self.initial_window * mss:
            cwnd += acked
        floor = MIN_PIPE_SEGMENTS * mss
        if cwnd < floor:
            cwnd = floor
        if self.mode is Mode.PROBE_RTT and cwnd > floor:
            cwnd = floor
        if cwnd > self._inflight_hi:
            cwnd = max(int(self._inflight_hi), floor)
        self.cwnd = cwnd

    def _save_cwnd(self) -> None:
        # Draft §4.2.3.4: remember the last window that was not reduced by recovery or
        # ProbeRTT, to return to afterwards.
        if not self._in_recovery and self.mode is not Mode.PROBE_RTT:
            self._prior_cwnd = self.cwnd
        else:
            self._prior_cwnd = max(self._prior_cwnd, self.cwnd)

    def _restore_cwnd(self) -> None:
        if self._prior_cwnd > self.cwnd:
            self.cwnd = self._prior_cwnd

    # ------------------------------------------------------------------ the connection's events

    def on_ack(self, acked: int, now: float, rtt: float, in_flight: int) -> None:
        """Nothing: BBR's window moves with `on_rate_sample`, in and out of recovery."""

    def on_congestion(self, now: float, in_flight: int) -> None:
        """Fast recovery begins: packet conservation for one round (draft §4.2.3.4),
        not a multiplicative decrease -- random loss says nothing about the queue."""
        if self._in_recovery:
            return
        self._save_cwnd()
        self._in_recovery = True
        self._conservation_until = self._delivered
        self.cwnd = max(in_flight, MIN_PIPE_SEGMENTS * self.mss)
        if self._queue_delay() >= QUEUE_THRESH * self.min_rtt:
            # A buffer overflowed under a standing queue: the pipe is full (v2 leaves
            # Startup on such loss too; without this an RTO, which restarts the
            # full-pipe detector, kept Startup's gain of 2.89 for seconds beside CUBIC).
            hi = int(LOSS_BETA * min(in_flight, self._inflight_hi))
            if not self.filled_pipe:
                # Startup's flight is its overshoot, not the flow's share: bound it by
                # the model's BDP (1.4 BDPs, half the overshoot, left CUBIC 16% at 5 MB/s
                # and 100 ms; one BDP of the model, 20%).
                hi = min(hi, self.inflight(1.0))
            self.filled_pipe = True
            hi = max(hi, MIN_PIPE_SEGMENTS * self.mss)
            self._inflight_hi = hi
            self._bound_round = self.round_count
            self._prior_cwnd = min(self._prior_cwnd, hi)
            self.cwnd = min(self.cwnd, hi)

    def _queue_delay(self) -> float:
        """The queue every RTT sample of this round and the last one waited behind
        (0.0 before there are samples, or while they may predate the latest cut)."""
        if self.round_count < self._bound_round + QUEUE_ROUNDS_AFTER_CUT:
            return 0.0
        d = min(self._round_min_rtt, self._prev_round_min_rtt) - self.min_rtt
        return 0.0 if math.isnan(d) or d == math.inf else d

    def on_recovery_end(self, now: float) -> None:
        super().on_recovery_end(now)
        self._in_recovery = False
        self._conservation_until = -1
        self._loss_until = -1
        self._restore_cwnd()

    def on_rto(self, now: float, in_flight: int) -> None:
        """A retransmission timeout: one segment in flight, then grow by what is
        delivered (Linux's TCP_CA_Loss). The window before returns once data sent
        after the timeout is delivered: the connection resends the holes before any
        new data, so that is when Linux's loss state ends too (SND.UNA past the
        timeout's SND.MAX), give or take holes still being repaired. The full-pipe
        detector restarts, as Linux's does."""
        if not self._in_recovery:
            self._save_cwnd()
        self._in_recovery = True
        self._conservation_until = -1
        self._loss_until = self._delivered
        self.cwnd = self.mss
        self._full_bw = 0.0
        self._full_bw_count = 0

    def undone_by(self, prior: CongestionControl) -> CongestionControl:
        """A spurious recovery: the model learned meanwhile is kept; only the window
        comes back (Linux's bbr_undo_cwnd also keeps the model)."""
        self._in_recovery = False
        self._conservation_until = -1
        self._loss_until = -1
        self.cwnd = max(self.cwnd, prior.cwnd, self._prior_cwnd)
        if isinstance(prior, Bbr):
            self._inflight_hi = max(self._inflight_hi, prior._inflight_hi)
        return self

    def restart_after_idle(self, now: float) -> None:
        """After idle the model still holds, and pacing spreads the window out, so the
        window is kept (Linux's BBR does the same); ProbeBW resumes at gain 1 and the
        idle period is not mistaken for an RTprop expiry."""
        self._idle_restart = True
        self._flight_left = -1
        if self.mode is Mode.PROBE_BW:
            bw = self._btl_bw.get()
            if bw > 0.0:
                self.pacing_rate = bw * PACING_MARGIN

    def set_mss(self, mss: int) -> None:
        super().set_mss(mss)
        self._set_send_quantum()

    @property
    def in_slow_start(self) -> bool:
        return self.mode is Mode.STARTUP

    def __repr__(self) -> str:
        return (
            f"<Bbr {self.mode.value} cwnd={self.cwnd} bw={self.btl_bw:.0f}B/s "
            f"min_rtt={self.min_rtt:.6f} pacing={self.pacing_rate:.0f}B/s>"
        )
