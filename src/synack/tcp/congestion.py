"""Congestion control behind one small interface: NewReno (RFC 5681, RFC 6582) and CUBIC (RFC 9438).

The connection owns loss *detection* and *recovery* (which bytes to resend,
SACK, the pipe estimate); an algorithm here owns only the window: how it grows
on acknowledgements and how far it falls on a loss. Windows are in bytes.

What the connection must tell us, and when:

* `on_ack` for every ACK that newly acknowledges data outside loss recovery,
  with the bytes outstanding *before* that ACK;
* `on_congestion` once when it enters fast recovery, `on_recovery_end` when
  the recovery point is acknowledged, `on_rto` on each retransmission timeout;
* `set_mss` when the effective send MSS becomes known or changes,
  `restart_after_idle` before sending after an idle period longer than the
  RTO, `on_syn_loss` when data starts after a retransmitted SYN or SYN-ACK;
* for a model-based algorithm (`uses_rate_samples`, BBR in `synack.tcp.bbr`),
  `on_rate_sample` with a delivery-rate sample (`synack.tcp.rate`) for every
  ACK that delivers data, in or out of recovery. Such an algorithm also sets
  `pacing_rate` (bytes/s, 0.0 for none) and `send_quantum` (the burst the
  connection may send at once); the loss-based ones leave both at 0, unpaced.

`on_ack` runs for every ACK of a bulk transfer, so it is kept to attribute
reads and arithmetic; everything that can be is computed on the rare events.
"""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar, Final

if TYPE_CHECKING:
    from synack.tcp.rate import RateSample

# RFC 5681 §3.1: "The initial value of ssthresh SHOULD be set arbitrarily high
# (e.g., to the size of the largest possible advertised window)". Any window
# larger than a scaled receive window (2**30) can never be reached.
SSTHRESH_INFINITE: Final = 1 << 62


def initial_window_bytes(mss: int, segments: int = 10) -> int:
    """The initial cwnd in bytes for an initial window of `segments` segments.

    RFC 6928 §2: IW = min(10*MSS, max(2*MSS, 14600)). For other segment counts
    14600 is read as segments*1460, so that the byte cap scales the same way.
    """
    return min(segments * mss, max(2 * mss, segments * 1460))


def _check_mss(mss: int) -> None:
    if not isinstance(mss, int) or isinstance(mss, bool) or mss < 1:
        raise ValueError(f"mss must be a positive integer, not {mss!r}")


def _check_in_flight(in_flight: int) -> None:
    if in_flight < 0:
        raise ValueError(f"in_flight must not be negative, not {in_flight!r}")


class CongestionControl(ABC):
    """Byte-counted congestion window (cwnd) and slow-start threshold (ssthresh).

    Growth is withheld while the sender is application-limited (RFC 7661,
    RFC 9438 §5.8): when, after its last transmission, the window still had
    room for another full segment (``in_flight + mss <= cwnd``). Two details
    keep a bulk transfer from looking application-limited:

    * a full segment, not a byte: testing ``in_flight < cwnd`` would freeze a
      window that is not a whole number of segments, since the sender never
      sends a partial segment into the remainder;
    * *after its last transmission*: a driver may feed a batch of ACKs before
      it lets the connection send, so within the batch the flight shrinks
      while cwnd grows. When nothing was sent since the previous ACK (the
      flight is no larger than that ACK left it), the previous verdict holds,
      as Linux keeps `is_cwnd_limited` until the next transmission.

    A loss *episode* starts with `on_congestion` or `on_rto` and ends with the
    next `on_ack` or `on_recovery_end`. Within one episode the window is
    reduced once: RFC 5681 §3.1 holds ssthresh when a segment already resent
    by the timer times out again, and a timeout during fast recovery does not
    cut again the window that recovery already halved (Linux does the same).
    """

    name: ClassVar[str]
    # Whether the connection must build delivery-rate samples for `on_rate_sample`.
    uses_rate_samples: ClassVar[bool] = False
    # Pacing: the loss-based algorithms send as the ACK clock lets them (class-level 0s;
    # a pacing algorithm keeps its own in slots).
    pacing_rate: float = 0.0
    send_quantum: int = 0
    # The shortest interval a delivery-rate sample may span (BBR's RTprop; inf: unknown).
    min_rtt: float = math.inf
    # Slow start's L: segments one ACK may add to cwnd (RFC 3465's 2 unless a class says).
    slow_start_limit: ClassVar[int] = 2

    __slots__ = (
        "_abc_limit",
        "_flight_left",
        "_reduced",
        "_window_used",
        "cwnd",
        "initial_window",
        "mss",
        "ssthresh",
    )

    def __init__(self, mss: int, initial_window: int = 10) -> None:
        _check_mss(mss)
        if not isinstance(initial_window, int) or initial_window < 1:
            raise ValueError(f"initial_window must be at least 1 segment, not {initial_window!r}")
        self.mss = mss
        self.initial_window = initial_window
        # RFC 6928: IW = min(10*MSS, max(2*MSS, 14600)) for the default of 10.
        self.cwnd = initial_window_bytes(mss, initial_window)
        self.ssthresh = SSTHRESH_INFINITE  # "arbitrarily high" initially (RFC 5681 §3.1)
        # Slow start counts at most L bytes per ACK. We use RFC 3465's L = 2*SMSS, which
        # keeps slow start doubling per RTT when the peer delays its ACKs (RFC 5681's plain
        # min(N, SMSS) would grow 1.5x), and RFC 3465 §2.3's L = 1*SMSS in the slow start
        # that follows a retransmission timeout, whose ACKs may cover segments sent long ago.
        self._abc_limit = self.slow_start_limit * mss
        self._reduced = False  # the window was already reduced in this loss episode
        # The flight the previous ACK left behind (-1: judge the next ACK afresh), and
        # whether the window was in use at the last transmission.
        self._flight_left = -1
        self._window_used = False

    @abstractmethod
    def on_ack(self, acked: int, now: float, rtt: float, in_flight: int) -> None:
        """`acked` bytes were newly acknowledged outside loss recovery.

        `rtt` is the current smoothed RTT in seconds; `in_flight` is the
        bytes outstanding *before* this ACK. Grow cwnd only when the window was
        actually used (RFC 7661 / RFC 9438 §4.2: not while application-limited,
        i.e. when another full segment would have fitted: in_flight + mss <= cwnd,
        judged at the last transmission; see the class docstring).
        """

    def on_rate_sample(self, rs: RateSample, now: float) -> None:  # noqa: B027 (a hook)
        """Every ACK that delivered data, after the connection has processed it (only
        called when `uses_rate_samples`)."""

    @abstractmethod
    def on_congestion(self, now: float, in_flight: int) -> None:
        """Loss detected by duplicate ACKs or SACK: entering fast recovery.

        Sets ssthresh (NewReno: max(in_flight/2, 2*MSS), RFC 5681 eq. 4; CUBIC:
        flight_size*beta_cubic, RFC 9438 §4.6) and cwnd = ssthresh. A second
        call in the same loss episode changes nothing (one reduction per loss).
        """

    @abstractmethod
    def on_rto(self, now: float, in_flight: int) -> None:
        """Retransmission timeout: ssthresh reduced as on_congestion, cwnd = 1 MSS (the loss window)."""

    def on_recovery_end(self, now: float) -> None:
        """Fast recovery finished (the recovery point was acknowledged)."""
        self._reduced = False
        self._flight_left = -1

    def snapshot(self) -> CongestionControl:
        """A copy of the whole state, kept before a reduction so that a reduction found
        spurious can be undone: RFC 9438 §4.9 restores cwnd, ssthresh, W_max, K and
        t_epoch to their values before the congestion event (Linux keeps prior_cwnd
        and prior_ssthresh for its undo)."""
        return copy.copy(self)

    def undone_by(self, prior: CongestionControl) -> CongestionControl:
        """The state to continue with after undoing a reduction: `prior` (a snapshot of
        this object), with cwnd never below what it has grown to since (RFC 9438 §4.9,
        and Linux's max(cwnd, prior_cwnd))."""
        restored = copy.copy(prior)
        restored.cwnd = max(self.cwnd, prior.cwnd)
        restored.ssthresh = max(self.ssthresh, prior.ssthresh)
        restored._reduced = False
        restored._flight_left = -1
        return restored

    def set_mss(self, mss: int) -> None:
        """The effective send MSS changed (handshake options, PMTU).

        The windows keep their size in *segments*, as Linux counts them; a
        window still at the initial value is recomputed by RFC 6928 instead.
        """
        _check_mss(mss)
        old = self.mss
        if mss == old:
            return
        iw = self.initial_window
        # Still at the initial window only if no loss ever set ssthresh: after one, a cwnd
        # that merely equals the old IW is a reduced window and is scaled like any other.
        if self.ssthresh == SSTHRESH_INFINITE and self.cwnd == initial_window_bytes(old, iw):
            self.cwnd = initial_window_bytes(mss, iw)
        else:
            self.cwnd = max(mss, self.cwnd * mss // old)
        if self.ssthresh != SSTHRESH_INFINITE:
            self.ssthresh = max(2 * mss, self.ssthresh * mss // old)
        self._abc_limit = self._abc_limit // old * mss
        self.mss = mss

    def restart_after_idle(self, now: float) -> None:
        """Nothing was sent for longer than the RTO: restart from at most the initial window.

        RFC 5681 §4.1: "cwnd is reduced to no more than RW [= min(IW, cwnd)]
        before beginning transmission", so that an idle connection does not
        send a stale window in one burst.
        """
        self.cwnd = min(self.cwnd, initial_window_bytes(self.mss, self.initial_window))
        self._flight_left = -1

    def on_syn_loss(self) -> None:
        """The SYN or SYN-ACK had to be retransmitted: data starts with a one-segment window.

        RFC 5681 §3.1: "if the SYN or SYN/ACK is lost, the initial window used
        by a sender after a correctly transmitted SYN MUST be one segment".
        """
        self.cwnd = self.mss

    def _slow_start(self, cwnd: int, acked: int) -> None:
        """RFC 5681 §3.1 slow start, "cwnd += min(N, SMSS)", with RFC 3465's L = 2*SMSS
        (or the class's `slow_start_limit`): cwnd += min(N, L). Stop at ssthresh; from
        there congestion avoidance counts."""
        limit = self._abc_limit
        cwnd += acked if acked < limit else limit
        if cwnd >= self.ssthresh:
            cwnd = self.ssthresh
            self._abc_limit = self.slow_start_limit * self.mss
        self.cwnd = cwnd

    @property
    def in_slow_start(self) -> bool:
        # RFC 5681 §3.1: slow start when cwnd < ssthresh.
        return self.cwnd < self.ssthresh

    def __repr__(self) -> str:
        ssthresh = "inf" if self.ssthresh == SSTHRESH_INFINITE else str(self.ssthresh)
        return f"<{type(self).__name__} mss={self.mss} cwnd={self.cwnd} ssthresh={ssthresh}>"


class NewReno(CongestionControl):
    """RFC 5681 §3.1 window growth and reduction, with RFC 3465 byte counting.

    Fast recovery itself (RFC 6582's partial and full ACKs, RFC 6675's pipe)
    is the connection's; this class sets cwnd = ssthresh when recovery starts.
    """

    name = "newreno"

    __slots__ = ("_bytes_acked",)

    def __init__(self, mss: int, initial_window: int = 10) -> None:
        super().__init__(mss, initial_window)
        self._bytes_acked = 0  # RFC 3465 §2.1 bytes_acked, counted in congestion avoidance

    def on_ack(self, acked: int, now: float, rtt: float, in_flight: int) -> None:
        self._reduced = False
        cwnd = self.cwnd
        if in_flight > self._flight_left:  # sent since the previous ACK: judge afresh
            self._window_used = in_flight + self.mss > cwnd
        self._flight_left = in_flight - acked
        if not self._window_used or acked <= 0:
            return  # application-limited: the window was not tested (RFC 7661)
        if cwnd < self.ssthresh:
            self._slow_start(cwnd, acked)
            return
        # RFC 5681 §3.1 congestion avoidance by byte counting (RFC 3465 §2.1): "When
        # bytes_acked becomes greater than or equal to the value of the congestion window,
        # bytes_acked is reduced by the value of cwnd. Next, cwnd is incremented by a
        # full-sized segment (SMSS)." Exact: one SMSS per window of acknowledged bytes.
        counted = self._bytes_acked + acked
        if counted >= cwnd:
            counted -= cwnd
            self.cwnd = cwnd + self.mss
        self._bytes_acked = counted

    def on_congestion(self, now: float, in_flight: int) -> None:
        _check_in_flight(in_flight)
        if self._reduced:
            return
        self._reduced = True
        # RFC 5681 eq. (4): "ssthresh = max (FlightSize / 2, 2*SMSS)"
        self.ssthresh = self.cwnd = max(in_flight // 2, 2 * self.mss)
        self._bytes_acked = 0  # RFC 3465 §2.1: reset when cwnd is reduced
        self._abc_limit = 2 * self.mss
        self._flight_left = -1

    def on_rto(self, now: float, in_flight: int) -> None:
        _check_in_flight(in_flight)
        if not self._reduced:
            # RFC 5681 §3.1: on a timeout of a segment "not yet resent by way of the
            # retransmission timer, the value of ssthresh MUST be set to no more than" eq. (4).
            self.ssthresh = max(in_flight // 2, 2 * self.mss)
        self._reduced = True
        # RFC 5681 §3.1: "cwnd MUST be set to no more than the loss window, LW, which
        # equals 1 full-sized segment".
        self.cwnd = self.mss
        self._bytes_acked = 0
        self._abc_limit = self.mss
        self._flight_left = -1

    def set_mss(self, mss: int) -> None:
        old = self.mss
        super().set_mss(mss)
        self._bytes_acked = self._bytes_acked * mss // old


# RFC 9438 §5.1: "C SHOULD be set to 0.4"; §4.6: "beta_cubic SHOULD be set to 0.7".
CUBIC_C: Final = 0.4
BETA_CUBIC: Final = 0.7
# RFC 9438 §4.3: "alpha_cubic = 3 * (1 - beta_cubic) / (1 + beta_cubic)" gives Reno's
# average window under the same loss rate.
ALPHA_CUBIC: Final = 3.0 * (1.0 - BETA_CUBIC) / (1.0 + BETA_CUBIC)
# RFC 9438 §4.7: "W_max = cwnd * (1 + beta_cubic) / 2".
_FAST_CONVERGENCE: Final = (1.0 + BETA_CUBIC) / 2.0
# RFC 9438 §4.2: target is at most 1.5 * cwnd, so the window never grows faster than
# in slow start.
_MAX_TARGET: Final = 1.5


class Cubic(CongestionControl):
    """CUBIC (RFC 9438): the window follows C*(t-K)^3 + W_max after each loss.

    The RFC counts W_max, W_est and cwnd_prior in segments; they are kept here
    in bytes (C premultiplied by the MSS) so that `on_ack` needs no unit
    conversions, and the properties below give them back in segments.
    Fast convergence (§4.7) is on. Slow start is NewReno's (§4.10 permits it
    in place of HyStart++), with HyStart++'s per-ACK limit but not its
    delay-based exit: see `slow_start_limit`.
    """

    name = "cubic"
    # RFC 9438 §4.10: CUBIC "SHOULD use the HyStart++ slow start algorithm [RFC9406]",
    # whose slow start adds min(N, L*SMSS) per ACK with L = 8 for a sender that does
    # not pace (RFC 9406 §4.2-4.3); ours does not. A receiver that reads in batches
    # may acknowledge many segments at once (Linux: one ACK per GRO packet; ours ACKs
    # every second segment of a read, at most 4 ACKs per pass), and RFC 3465's L = 2
    # then grows cwnd by only 1.25x per round trip. Linux's tcp_slow_start counts every
    # acknowledged segment.
    slow_start_limit = 8

    __slots__ = (
        "_alpha_mss",
        "_c_mss",
        "_carry",
        "_cwnd_prior",
        "_epoch_started",
        "_k",
        "_last_ack",
        "_stale",
        "_t_origin",
        "_w_est",
        "_w_max",
    )

    def __init__(self, mss: int, initial_window: int = 10) -> None:
        super().__init__(mss, initial_window)
        self._c_mss = CUBIC_C * mss  # C in bytes per second cubed
        # 0.0 stands for "undefined" (no congestion event yet, or forgotten by an RTO):
        # the next congestion avoidance stage then starts with K = 0 (§4.8, §4.10).
        self._w_max = 0.0
        self._k = 0.0
        # t_epoch + K: the time at which the curve reaches W_max, so t - K = now - _t_origin.
        self._t_origin = 0.0
        self._epoch_started = False
        self._cwnd_prior = 0.0
        self._w_est = 0.0
        self._alpha_mss = ALPHA_CUBIC * mss  # alpha_cubic, in bytes per window acknowledged
        self._carry = 0.0  # fractional bytes of cwnd growth not yet applied
        self._last_ack = 0.0
        # The next congestion avoidance ACK must first start the epoch, or move it past
        # an application-limited interval.
        self._stale = True

    @property
    def w_max(self) -> float:
        """W_max in segments (0.0 while undefined)."""
        return self._w_max / self.mss

    @property
    def w_est(self) -> float:
        """W_est in segments, the Reno-friendly estimate (§4.3)."""
        return self._w_est / self.mss

    @property
    def cwnd_prior(self) -> float:
        """cwnd_prior in segments (§4.1.2)."""
        return self._cwnd_prior / self.mss

    @property
    def k(self) -> float:
        """K in seconds for the current congestion avoidance stage."""
        return self._k

    def w_cubic(self, t: float) -> float:
        """W_cubic(t) in segments, t seconds after the current epoch began (§4.2 eq. 1)."""
        d = t - self._k
        return CUBIC_C * d * d * d + self._w_max / self.mss

    def on_ack(self, acked: int, now: float, rtt: float, in_flight: int) -> None:
        self._reduced = False
        cwnd = self.cwnd
        mss = self.mss
        if in_flight > self._flight_left:  # sent since the previous ACK: judge afresh
            self._window_used = in_flight + mss > cwnd
        self._flight_left = in_flight - acked
        if not self._window_used or acked <= 0:
            # §4.2: "The elapsed time t in Figure 1 MUST NOT include periods during which
            # cwnd has not been updated due to application-limited behavior"; the epoch
            # moves forward by the time spent so, and cwnd does not grow (§5.8).
            if self._epoch_started:
                self._t_origin += now - self._last_ack
            self._last_ack = now
            self._stale = True
            return
        if cwnd < self.ssthresh:
            self._slow_start(cwnd, acked)  # §4.10: slow start as RFC 5681
            return
        if self._stale:
            self._resync(now, cwnd)
        self._last_ack = now

        d = now - self._t_origin  # t - K
        c = self._c_mss
        w_max = self._w_max
        # §4.3: "W_est = W_est + alpha_cubic * segments_acked / cwnd"; in bytes,
        # alpha*MSS * acked/cwnd. "Once W_est has grown to reach the cwnd at the time of
        # most recently setting ssthresh -- that is, W_est >= cwnd_prior -- the sender
        # SHOULD set alpha_cubic to 1".
        w_est = self._w_est + self._alpha_mss * acked / cwnd
        self._w_est = w_est
        if w_est >= self._cwnd_prior:
            self._alpha_mss = mss
        if c * d * d * d + w_max < w_est:
            # §4.3: "If W_cubic(t) is less than W_est, then the protocol is in the
            # Reno-friendly region and cwnd SHOULD be set to W_est at each reception of a
            # new ACK." (Never lowered here: cwnd may already be ahead, toward W_cubic(t+RTT).)
            if w_est > cwnd:
                self.cwnd = int(w_est)
            return
        # §4.2: target = W_cubic(t + RTT), clamped to [cwnd, 1.5*cwnd]; §4.4/§4.5: "cwnd MUST be
        # incremented by (target - cwnd)/cwnd for each received new ACK" -- per segment
        # acknowledged, so (target - cwnd) * acked / cwnd bytes for `acked` bytes.
        d += rtt
        target = c * d * d * d + w_max
        if target <= cwnd:
            return
        cap = _MAX_TARGET * cwnd
        if target > cap:
            target = cap
        carry = self._carry + (target - cwnd) * acked / cwnd
        if carry >= 1.0:
            whole = int(carry)
            self.cwnd = cwnd + whole
            carry -= whole
        self._carry = carry

    def _resync(self, now: float, cwnd: int) -> None:
        """Start the congestion avoidance stage, or skip the application-limited pause."""
        self._stale = False
        if self._epoch_started:
            self._t_origin += now - self._last_ack  # no ACK since an application-limited one
            return
        # The first ACK of a congestion avoidance stage fixes t_epoch, cwnd_epoch, K, W_est.
        self._epoch_started = True
        self._carry = 0.0
        self._alpha_mss = ALPHA_CUBIC * self.mss
        # §4.3: "W_est is set equal to cwnd_epoch at the start of the congestion avoidance stage."
        self._w_est = float(cwnd)
        if self._w_max == 0.0:
            # §4.8 (after a timeout) and §4.10 (slow start ended without a loss): "K is set
            # to 0, and W_max is set to the congestion window size at the beginning of the
            # current congestion avoidance stage".
            self._w_max = float(cwnd)
            self._k = 0.0
            if self._cwnd_prior == 0.0:
                self._cwnd_prior = float(cwnd)  # §4.10: "CUBIC sets cwnd_prior = cwnd"
        else:
            # §4.2 eq. 2: "K = cubic_root((W_max - cwnd_epoch) / C)"; negative when the
            # stage starts above W_max, so that W_cubic(0) = cwnd_epoch still holds.
            self._k = math.cbrt((self._w_max - cwnd) / self._c_mss)
        self._t_origin = now + self._k

    def on_congestion(self, now: float, in_flight: int) -> None:
        _check_in_flight(in_flight)
        if self._reduced:
            return
        self._reduced = True
        mss = self.mss
        cwnd = float(self.cwnd)
        # §4.7: "if (cwnd < W_max AND fast_convergence_enabled) { W_max = cwnd *
        # (1 + beta_cubic) / 2 } else { W_max = cwnd }" -- with cwnd before the reduction.
        self._w_max = cwnd * _FAST_CONVERGENCE if cwnd < self._w_max else cwnd
        # §4.6: "ssthresh = flight_size * beta_cubic", "cwnd_prior = cwnd",
        # "cwnd = max(ssthresh, 2)", "ssthresh = max(ssthresh, 2)".
        self._cwnd_prior = cwnd
        self.ssthresh = self.cwnd = max(int(in_flight * BETA_CUBIC), 2 * mss)
        self._abc_limit = self.slow_start_limit * mss
        self._epoch_started = False  # the next stage starts at the first ACK after recovery
        self._stale = True
        self._flight_left = -1

    def on_rto(self, now: float, in_flight: int) -> None:
        _check_in_flight(in_flight)
        mss = self.mss
        if not self._reduced:
            # §4.8: "CUBIC follows Reno to reduce cwnd [RFC5681] but sets ssthresh using
            # beta_cubic (same as in Section 4.6)".
            self._cwnd_prior = float(self.cwnd)
            self.ssthresh = max(int(in_flight * BETA_CUBIC), 2 * mss)
        self._reduced = True
        self.cwnd = mss
        self._abc_limit = mss
        # §4.8: the first stage after a timeout uses K = 0 and W_max = cwnd_epoch.
        self._w_max = 0.0
        self._epoch_started = False
        self._stale = True
        self._flight_left = -1

    def set_mss(self, mss: int) -> None:
        old = self.mss
        super().set_mss(mss)
        # The curve keeps its shape in segments: rescale what is kept in bytes.
        scale = mss / old
        self._w_max *= scale
        self._w_est *= scale
        self._cwnd_prior *= scale
        self._alpha_mss *= scale
        self._c_mss = CUBIC_C * mss
        self._carry = 0.0

    def restart_after_idle(self, now: float) -> None:
        super().restart_after_idle(now)
        # The curve was drawn for the window before the idle period; start a new stage.
        self._epoch_started = False
        self._stale = True


# BBR builds on CongestionControl above; synack.tcp's package import loads this module
# first, so the cycle resolves.
from synack.tcp.bbr import Bbr  # noqa: E402

ALGORITHMS: Final[dict[str, type[CongestionControl]]] = {
    NewReno.name: NewReno,
    Cubic.name: Cubic,
    Bbr.name: Bbr,
}
# The algorithms that read loss as congestion (and so cut the window on it).
LOSS_BASED: Final = (NewReno.name, Cubic.name)


def make_congestion_control(name: str, mss: int, initial_window: int) -> CongestionControl:
    """The algorithm called `name` ("newreno", "cubic" or "bbr"), with its initial window."""
    try:
        cls = ALGORITHMS[name]
    except KeyError:
        choices = ", ".join(sorted(ALGORITHMS))
        raise ValueError(f"unknown congestion control {name!r} (choose from {choices})") from None
    return cls(mss, initial_window)
