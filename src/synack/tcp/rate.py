"""Delivery-rate estimation (draft-cheng-iccrg-delivery-rate-estimation), for model-based
congestion control such as BBR.

Each transmission is stamped with how much had been delivered, and when, at the moment
it was sent (`SendStamp`). When an ACK delivers data, the most recently sent of the
newly delivered transmissions marks the start of an interval; the rate sample is the
data delivered since then over that interval. The interval is the longer of its send
phase and its ACK phase (draft §3.3: "the sending rate ... and the ACK rate ... the
delivery rate is the minimum of the two"), so ACK compression cannot inflate it.

A sender that runs out of data is *application-limited* (draft §3.4): its samples show
what it offered, not what the path can carry, and the congestion control may ignore
them unless they exceed its estimate. The mark lasts until the data in flight when it
was set has been delivered.

Counts are in bytes, times in seconds on the caller's clock. The connection calls, per
ACK: `on_delivered` for each transmission it newly finds delivered (cumulatively or by
SACK), then `sample` once.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Final

_NO_SAMPLE: Final = -1.0
_INF: Final = float("inf")


class SendStamp:
    """What the sender knew when a transmission left: the draft's per-packet fields
    P.delivered, P.delivered_time, P.first_sent_time, P.is_app_limited and P.sent_time.

    A burst sent at one instant carries one stamp: its segments would all be stamped
    alike, so one record for the whole range gives the same samples."""

    __slots__ = ("delivered", "delivered_time", "first_sent_time", "is_app_limited", "sent_time")

    def __init__(
        self,
        delivered: int,
        delivered_time: float,
        first_sent_time: float,
        is_app_limited: bool,
        sent_time: float,
    ) -> None:
        self.delivered = delivered
        self.delivered_time = delivered_time
        self.first_sent_time = first_sent_time
        self.is_app_limited = is_app_limited
        self.sent_time = sent_time

    def __repr__(self) -> str:
        return (
            f"<SendStamp delivered={self.delivered} at={self.delivered_time:.6f} "
            f"sent={self.sent_time:.6f} app_limited={self.is_app_limited}>"
        )


class RateSample:
    """One ACK's view of the path (the draft's rs.*), handed to the congestion control.

    `delivery_rate` is bytes per second, or 0.0 when this ACK gives no valid sample.
    `rtt` is the RTT of the newest transmission it delivered, or -1.0 if there was none
    (Karn: retransmissions are not timed; the caller leaves it at -1.0 then)."""

    __slots__ = (
        "delivered",
        "delivery_rate",
        "in_flight",
        "interval",
        "is_app_limited",
        "newly_acked",
        "newly_lost",
        "prior_delivered",
        "prior_in_flight",
        "rtt",
        "total_delivered",
    )

    def __init__(self) -> None:
        self.delivery_rate = 0.0
        self.delivered = 0  # bytes delivered over `interval`
        self.interval = 0.0
        self.prior_delivered = 0  # C.delivered when the newest delivered data was sent
        self.total_delivered = 0  # C.delivered after this ACK
        self.is_app_limited = False
        self.rtt = _NO_SAMPLE
        self.newly_acked = 0  # bytes this ACK delivered (cumulatively or by SACK)
        self.newly_lost = 0  # bytes this ACK caused to be marked lost
        self.prior_in_flight = 0  # bytes in flight before this ACK
        self.in_flight = 0  # bytes in flight after it

    def __repr__(self) -> str:
        return (
            f"<RateSample rate={self.delivery_rate:.0f}B/s delivered={self.delivered} "
            f"interval={self.interval:.6f} app_limited={self.is_app_limited} rtt={self.rtt:.6f}>"
        )


class RateSampler:
    """The connection-wide state of the draft (C.delivered, C.delivered_time,
    C.first_sent_time, C.app_limited) and the sample being built for the current ACK."""

    __slots__ = (
        "_head",
        "_mark",
        "_newest",
        "_newly",
        "_stamps",
        "_starts",
        "app_limited",
        "delivered",
        "delivered_time",
        "first_sent_time",
        "sample_out",
    )

    def __init__(self) -> None:
        self.delivered = 0  # C.delivered: bytes delivered so far
        self.delivered_time = 0.0  # C.delivered_time: when C.delivered last grew
        self.first_sent_time = 0.0  # C.first_sent_time: send time of the newest delivered data
        # C.app_limited: 0, or the C.delivered value at which the app-limited mark ends.
        self.app_limited = 0
        self._newest: SendStamp | None = None  # the newest stamp delivered by this ACK
        self._newly = 0
        # For a connection: the stamps of first transmissions by starting sequence number
        # (they go out in order, so the list is sorted), those below _head acknowledged;
        # and SND.UNA + SACKed bytes at the last ACK, which only grows as data arrives.
        self._starts: list[int] = []
        self._stamps: list[SendStamp] = []
        self._head = 0
        self._mark = -1
        self.sample_out = RateSample()  # reused for every ACK

    def on_send(self, now: float, in_flight: int) -> SendStamp:
        """Stamp a transmission leaving at `now` with `in_flight` bytes already out.

        Draft §3.2 (upon each packet transmission): "If there are no packets in
        flight yet, then we can start the delivery rate interval at the current time,
        since we know that any ACKs after now indicate that the network was able to
        deliver those packets completely in the sampling interval between now and the
        next ACK" -- C.first_sent_time = C.delivered_time = Now()."""
        if in_flight <= 0:
            self.first_sent_time = self.delivered_time = now
        return SendStamp(
            self.delivered,
            self.delivered_time,
            self.first_sent_time,
            self.app_limited != 0,
            now,
        )

    def on_delivered(self, stamp: SendStamp, nbytes: int, now: float) -> None:
        """`nbytes` of the transmission stamped `stamp` were newly delivered (ACKed or
        SACKed) by the ACK being processed at `now`. Each byte is reported once."""
        self.delivered += nbytes
        self.delivered_time = now
        self._newly += nbytes
        newest = self._newest
        # Draft §3.3 UpdateRateSample(): the interval starts at the most recently sent
        # of the packets this ACK delivered (the largest P.delivered; among a burst sent
        # together, the later send time).
        if (
            newest is None
            or stamp.delivered > newest.delivered
            or (stamp.delivered == newest.delivered and stamp.sent_time >= newest.sent_time)
        ):
            self._newest = stamp
            # "Find the most recently sent packet": the send phase of the next interval
            # begins where this one's data left.
            self.first_sent_time = stamp.sent_time

    def sample(self, now: float, min_rtt: float, into: RateSample) -> RateSample:
        """Draft §3.3 GenerateRateSample(): fill `into` for the ACK just processed.

        A sample shorter than `min_rtt` is discarded, as the draft advises ("it is
        safer to ignore ... intervals shorter than the minimum RTT"): such an interval
        saw only part of a flight and over-estimates the rate. (`min_rtt` is inf while
        no RTT is known: then every interval counts.)"""
        newest = self._newest
        self._newest = None
        into.newly_acked = self._newly
        self._newly = 0
        into.total_delivered = self.delivered
        into.delivery_rate = 0.0
        into.delivered = 0
        into.interval = 0.0
        # "Clear app-limited field if bubble is ACKed and gone."
        if self.app_limited and self.delivered > self.app_limited:
            self.app_limited = 0
        if newest is None:
            into.prior_delivered = -1  # no round trip can end on this ACK
            into.is_app_limited = False
            return into
        into.prior_delivered = newest.delivered
        into.is_app_limited = newest.is_app_limited
        send_elapsed = newest.sent_time - newest.first_sent_time
        ack_elapsed = self.delivered_time - newest.delivered_time
        # "Use the longer of the send_elapsed and ack_elapsed"
        interval = send_elapsed if send_elapsed > ack_elapsed else ack_elapsed
        delivered = self.delivered - newest.delivered
        into.delivered = delivered
        into.interval = interval
        if interval <= 0.0 or interval < min_rtt < _INF:
            return into
        into.delivery_rate = delivered / interval
        return into

    def on_app_limited(self, in_flight: int) -> None:
        """Draft §3.4: the sender has less to send than the window allows (nothing
        unsent, nothing to retransmit, the window not full). Samples until the data in
        flight now is delivered are marked application-limited."""
        # "C.app_limited = (C.delivered + C.inflight) ? : 1"
        self.app_limited = (self.delivered + in_flight) or 1

    # ------------------------------------------------------------------ by sequence number

    def on_send_range(self, start: int, now: float, idle: bool) -> None:
        """New data from sequence number `start` left at `now` (`idle`: nothing was
        outstanding before it). Retransmissions are not stamped: a retransmission's
        delivery is sampled from its first transmission's stamp, which spans a longer
        interval and so can only understate the rate, never inflate it."""
        starts = self._starts
        if starts and start <= starts[-1]:
            return
        starts.append(start)
        self._stamps.append(self.on_send(now, 0 if idle else 1))

    def on_ack(self, una: int, sacked: int, newest: int, now: float, min_rtt: float) -> RateSample:
        """The ACK just processed left SND.UNA at `una` with `sacked` bytes SACKed above
        it; `newest` is the highest sequence number it newly delivered (-1: none). The
        sample is `sample_out`, filled in (its rtt from the newest stamp's send time)."""
        total = una + sacked
        mark = self._mark
        if mark < 0:
            mark = una
        newly = total - mark if total > mark else 0
        if total > mark:
            self._mark = total
        else:
            self._mark = mark
        starts = self._starts
        head = self._head
        rs = self.sample_out
        rs.rtt = _NO_SAMPLE
        i = bisect_right(starts, newest, head) - 1 if newly and newest >= 0 else -1
        if i >= head:
            stamp = self._stamps[i]
            self.on_delivered(stamp, newly, now)
            rs.rtt = now - stamp.sent_time
        elif newly:
            self.delivered += newly
            self.delivered_time = now
            self._newly += newly
        # Forget the stamps of data wholly below SND.UNA (keep the one covering it).
        n = len(starts)
        while head + 1 < n and starts[head + 1] <= una:
            head += 1
        if head > 512 and head * 2 > n:
            del starts[:head]
            del self._stamps[:head]
            head = 0
        self._head = head
        return self.sample(now, min_rtt, rs)
