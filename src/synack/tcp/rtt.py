"""Round-trip time estimation and the retransmission timeout (RFC 6298, RFC 7323 Appendix G).

The estimator only averages the samples it is given. Choosing them is the
caller's job, and that is where Karn's rule lives (RFC 6298 §3): "RTT samples
MUST NOT be made using segments that were retransmitted (and thus for which
it is ambiguous whether the reply was for the first instance of the packet or
a later instance)" -- unless the sample comes from the timestamp option
(RFC 7323 §4.1), whose echoed value says which transmission was answered.
Timestamps give a sample on every ACK, many per round trip; Appendix G of
RFC 7323 scales the gains down by the number of samples expected per RTT so
that the averages still span about one round trip's worth of history.
"""

from __future__ import annotations

import math
from typing import Final

# RFC 6298 §2: "alpha = 1/8 and beta = 1/4 (as suggested in [JK88])", and K = 4.
ALPHA: Final = 1.0 / 8.0
BETA: Final = 1.0 / 4.0
K: Final = 4.0
_INF: Final = math.inf
# RFC 6298 §5.7: after a SYN timed out, "the RTO MUST be re-initialized to 3 seconds
# when data transmission begins".
RTO_AFTER_SYN_TIMEOUT: Final = 3.0


def _check_seconds(name: str, value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number of seconds >= 0, not {value!r}")


class RttEstimator:
    """SRTT, RTTVAR and the RTO of one connection; all times in seconds.

    `rto` is the value to arm the retransmission timer with: the RTO of
    RFC 6298 §2 with its variance term at least rto_min (Linux's floor: the RTO is
    at least SRTT + rto_min), at most rto_max, and doubled by each `backoff`.
    Before the first sample `srtt`, `min_rtt` and `latest_rtt` are None,
    `rttvar` is 0.0 and `rto` is rto_initial (RFC 6298 §2.1).
    """

    __slots__ = (
        "_base_rto",
        "backoff_count",
        "granularity",
        "latest_rtt",
        "min_rtt",
        "rto",
        "rto_initial",
        "rto_max",
        "rto_min",
        "rttvar",
        "srtt",
    )

    def __init__(
        self, rto_initial: float, rto_min: float, rto_max: float, granularity: float = 0.001
    ) -> None:
        for name, value in (
            ("rto_initial", rto_initial),
            ("rto_min", rto_min),
            ("rto_max", rto_max),
            ("granularity", granularity),
        ):
            _check_seconds(name, value)
        if not 0 < rto_min <= rto_initial <= rto_max:
            raise ValueError(
                f"need 0 < rto_min <= rto_initial <= rto_max, "
                f"got {rto_min!r}, {rto_initial!r}, {rto_max!r}"
            )
        self.rto_initial = rto_initial
        self.rto_min = rto_min
        self.rto_max = rto_max
        self.granularity = granularity  # G, the clock granularity of the samples
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.min_rtt: float | None = None
        self.latest_rtt: float | None = None
        self._base_rto = rto_initial  # RTO before backoff
        self.rto = rto_initial
        self.backoff_count = 0  # backoffs since the last sample or reset_backoff

    def sample(self, rtt: float, flight_segments: int = 1) -> None:
        """Take one RTT measurement, made while `flight_segments` full segments were in flight.

        Raises ValueError for a negative or non-finite `rtt`: a timestamp echo
        from the future means the caller computed the sample wrongly.
        """
        if not 0.0 <= rtt < _INF:  # also rejects NaN
            raise ValueError(f"rtt sample must be a finite number of seconds >= 0, not {rtt!r}")
        self.latest_rtt = rtt
        min_rtt = self.min_rtt
        if min_rtt is None or rtt < min_rtt:
            self.min_rtt = rtt
        srtt = self.srtt
        if srtt is None:
            # RFC 6298 §2.2: "SRTT <- R, RTTVAR <- R/2".
            srtt = rtt
            rttvar = rtt / 2.0
        else:
            # RFC 7323 Appendix G: "ExpectedSamples = ceiling(FlightSize / (SMSS * 2))",
            # "alpha' = alpha / ExpectedSamples", "beta' = beta / ExpectedSamples".
            expected = (flight_segments + 1) // 2
            if expected < 1:
                expected = 1
            # RFC 6298 §2.3, in this order (RTTVAR uses the SRTT before the update):
            # "RTTVAR <- (1 - beta) * RTTVAR + beta * |SRTT - R'|",
            # "SRTT <- (1 - alpha) * SRTT + alpha * R'".
            beta = BETA / expected
            alpha = ALPHA / expected
            rttvar = (1.0 - beta) * self.rttvar + beta * abs(srtt - rtt)
            srtt = (1.0 - alpha) * srtt + alpha * rtt
        self.srtt = srtt
        self.rttvar = rttvar
        # RFC 6298 §2.2/2.3: "RTO <- SRTT + max (G, K*RTTVAR)"; §2.5 allows a maximum.
        # §2.4's minimum ("if it is less than 1 second, then the RTO SHOULD be rounded up
        # to 1 second") is applied as Linux applies its 200 ms tcp_rto_min: to the
        # variance term, so RTO >= SRTT + rto_min (Linux keeps rttvar_us >= rto_min). A
        # floor on the whole RTO would be 2 round trips on a 100 ms path: a lost
        # retransmission, which RACK finds one round trip after sending it, would lose
        # the race to the timer. A valid sample ends any backoff: Karn's algorithm keeps
        # the backed-off RTO only until an ACK for an unretransmitted segment.
        k_rttvar = K * rttvar
        g = self.granularity
        if k_rttvar < g:
            k_rttvar = g
        if k_rttvar < self.rto_min:
            k_rttvar = self.rto_min
        rto = srtt + k_rttvar
        if rto > self.rto_max:
            rto = self.rto_max
        self._base_rto = rto
        self.rto = rto
        self.backoff_count = 0

    def backoff(self) -> None:
        """The retransmission timer expired: RFC 6298 §5.5, "set RTO <- RTO * 2", up to rto_max."""
        rto = self.rto * 2.0
        self.rto = rto if rto < self.rto_max else self.rto_max
        self.backoff_count += 1

    def reset_backoff(self) -> None:
        """Return to the computed RTO without a new sample (e.g. a new connection attempt)."""
        self.rto = self._base_rto
        self.backoff_count = 0

    @property
    def base_rto(self) -> float:
        """The RTO before any backoff: what one round trip and its variance allow."""
        return self._base_rto

    @property
    def rto_for_syn(self) -> float:
        """The timeout for a SYN or SYN-ACK: the current RTO (rto_initial until sampled)."""
        return self.rto

    def on_handshake_complete(self, syn_retransmitted: bool) -> None:
        """Data transmission begins. RFC 6298 §5.7: if a SYN timed out and no sample was
        taken, the RTO is re-initialized to 3 s (if smaller) rather than the 1 s initial value."""
        if syn_retransmitted and self.srtt is None:
            rto = max(self._base_rto, RTO_AFTER_SYN_TIMEOUT)
            self._base_rto = min(max(rto, self.rto_min), self.rto_max)
        self.reset_backoff()

    def forget_samples(self) -> None:
        """Drop SRTT and RTTVAR, keeping the backed-off RTO until the next sample.

        RFC 6298 §5: after backing off several times the host "MAY clear SRTT and
        RTTVAR", as they are likely bogus; the next sample then initializes them (§2.2).
        """
        self.srtt = None
        self.rttvar = 0.0
        self._base_rto = self.rto

    def __repr__(self) -> str:
        return (
            f"<RttEstimator srtt={self.srtt} rttvar={self.rttvar} rto={self.rto} "
            f"backoff={self.backoff_count}>"
        )
