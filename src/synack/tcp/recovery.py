"""Loss detection and recovery of one connection's sender, beside the connection
(as aioquic keeps ``recovery.py`` beside ``connection.py``).

The connection tells a `Recovery` what it sent (`on_transmit`), what came back
(`on_sack`, `on_dsack`, `on_duplicate_ack`, `on_ack_advance`) and when its timers
fired (`on_rto`, the PTO through `probe_due`); the recovery answers which bytes
are lost and what to retransmit next (`retransmissions`), how much new data the
window leaves room for (`send_room`), when its own timer is due (`tlp_at`), and
whether a reduction was spurious (undo). It never builds a segment, reads a clock
or holds the connection: values come in as arguments, and the congestion
controller is passed to the calls that change it.

The scoreboard is RFC 6675's (`sacked`, `pipe`, NextSeg as `retransmissions`).
Loss is detected by RACK (RFC 8985 §6: a segment is lost once one sent after it
has been delivered and a reordering window has passed), or, with
``Config.loss_detection = "dupack"`` or without SACK, by RFC 6675's DupThresh
rule; then tail loss probes (RFC 8985 §7), Proportional Rate Reduction for how
much may be sent during recovery (RFC 9937, which obsoleted RFC 6937 in December
2025), RACK's marking on a timeout (RFC 8985 §6.3), and undo: of a spurious fast
recovery (RFC 3708 with D-SACK) and of a spurious timeout (F-RTO, RFC 5682, and Eifel
detection, RFC 3522), with RFC 4015's response.

Every transmission is also kept as a `Sent` record, in the order sent: the
per-segment state that time-based loss detection and delivery-rate estimation
(draft-cheng-iccrg-delivery-rate-estimation, for BBR) read. One record covers a
burst sent at one instant, as Linux's per-skb state covers a TSO burst; see
`Sent` for the fields a rate sampler fills in.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections import deque

from synack.tcp.congestion import CongestionControl
from synack.tcp.ranges import RangeSet
from synack.tcp.rtt import RttEstimator
from synack.wire.seq import MASK

# RFC 5681 §3.2 and RFC 6675: three duplicate ACKs (or that many SACKed segments) mean loss.
DUP_THRESH = 3
# RFC 8985 §7.2's TLP.max_ack_delay (WCDelAckT in its drafts): "when the FlightSize is
# one segment, the sender MAY inflate the PTO by TLP.max_ack_delay to accommodate a
# potentially delayed acknowledgment"; "The actual value of TLP.max_ack_delay is
# implementation specific." 200 ms, as Linux's TCP_DELACK_MAX.
WCDELACKT = 0.2
# With more than one segment out, Linux adds its minimum timer to the 2 SRTT
# (TCP_TIMEOUT_MIN_US in tcp_schedule_loss_probe): Config.probe_timeout_min's default.
PTO_MIN = 0.002
_FAR = 1 << 62
_HALF = 1 << 31
# RFC 8985 §6.2 Step 4: the reordering window grown by D-SACKs is kept for this many
# recoveries without one ("Reset the window after 16 DSACK-free recoveries").
REO_WND_PERSIST = 16


def _end(seg: Sent) -> int:
    return seg.end


def _start(seg: Sent) -> int:
    return seg.start


def _order(seg: Sent) -> int:
    return seg.order


class Sent:
    """One transmission of [start, end) (end includes a FIN's number) at `xmit_ts`.

    Only what RACK, the scoreboard and the undo read: a rate sampler (BBR) keeps its
    own stamps (rate.py), so the bulk path's one record per burst stays small.
    """

    __slots__ = (
        "end",
        "lost",
        "order",
        "retransmitted",
        "start",
        "xmit_ts",
    )

    def __init__(
        self, start: int, end: int, xmit_ts: float, retransmitted: bool, order: int
    ) -> None:
        self.start = start
        self.end = end
        self.xmit_ts = xmit_ts
        self.retransmitted = retransmitted
        self.lost = False  # RACK deemed this retransmission lost and queued it again
        # Place in the order of transmission: RACK_sent_after compares by this, which
        # is what "sent after" means, where xmit_ts may tie (a burst, a frozen clock).
        self.order = order


class Recovery:
    """The sender's loss detection and recovery state (one per connection)."""

    __slots__ = (
        "dsack_round",
        "dsack_undos",
        "dupacks",
        "fast_retransmits",
        "frto",
        "frto_new",
        "fs_flight",
        "fs_snd_max",
        "high_rxt",
        "in_recovery",
        "loss_probe_recoveries",
        "loss_probes",
        "lost_edge",
        "lost_originals",
        "lt_bytes",
        "lt_una",
        "mirrored",
        "mss",
        "new_loss",
        "newly_sacked",
        "orig_high",
        "originals",
        "prior_fack",
        "prr",
        "prr_cwnd",
        "prr_delivered",
        "prr_entry",
        "prr_out",
        "prr_sacked",
        "pto_at",
        "pto_min",
        "rack",
        "rack_end",
        "rack_fack",
        "rack_order",
        "rack_rtt",
        "rack_xmit_ts",
        "recover",
        "recover_by_rto",
        "recover_fs",
        "reno_sacked",
        "reo_at",
        "reo_wnd_mult",
        "reo_wnd_persist",
        "reordering_seen",
        "rto_recovery",
        "rto_xmit_ms",
        "rtt",
        "rtx_at",
        "rtx_now",
        "rxt_again",
        "rxt_latest",
        "rxt_log",
        "rxt_records",
        "rxt_sent",
        "rxt_span",
        "sack_ok",
        "sacked",
        "sent",
        "sent_count",
        "seq_sorted",
        "spurious_rtos",
        "tlp",
        "tlp_end",
        "tlp_retrans",
        "tlp_sampled",
        "tlp_start",
        "tsorted",
        "undo_cc",
        "undo_dsacked",
        "undo_ranges",
        "undo_rto",
    )

    def __init__(
        self,
        rtt: RttEstimator,
        mss: int,
        *,
        tlp: bool = True,
        rack: bool = True,
        prr: bool = True,
        pto_min: float = PTO_MIN,
    ) -> None:
        self.rtt = rtt  # the connection's estimator: SRTT and min_RTT are read from it
        self.pto_min = pto_min  # Config.probe_timeout_min, resolved
        self.sack_ok = False
        self.mss = mss
        self.dupacks = 0
        # Bytes limited transmit (RFC 3042) sent beyond cwnd, counted while SND.UNA
        # stayed at lt_una; RFC 5681 §3.2 leaves them out of FlightSize.
        self.lt_bytes = 0
        self.lt_una = -1
        # FlightSize before the first ACK that advanced SND.UNA since the connection
        # last had a chance to send (fs_snd_max: SND.MAX then; -1: no such ACK yet,
        # which the connection sets at every chance to send).
        self.fs_flight = 0
        self.fs_snd_max = -1
        self.in_recovery = False  # fast recovery (RFC 6582 / RFC 6675)
        self.recover = 0  # RecoveryPoint: no new recovery until SND.UNA passes it
        self.recover_by_rto = False  # recover was set by a timeout (RFC 6675 §5.1)
        self.rto_recovery = False  # SND.UNA is still below the recovery point of an RTO
        self.high_rxt = 0  # retransmitted up to here in the current episode
        self.lost_edge = 0  # unSACKed bytes below here are deemed lost
        self.sacked = RangeSet()  # the scoreboard: what the peer has SACKed above SND.UNA
        self.reno_sacked = 0  # without SACK: bytes the duplicate ACKs say have left the network
        # Retransmissions of this loss episode as [start, end, SND.MAX when sent], to spot
        # a retransmission that was itself lost, and ranges to send once more.
        self.rxt_log: list[tuple[int, int, int]] = []
        self.rxt_again: list[tuple[int, int]] = []
        self.rtx_now = False  # resend the first hole now, whatever the window says
        self.rtx_at = 0.0  # when the current fast recovery's first retransmission left
        # Tail loss probe (RFC 8985 §7): the PTO deadline; TLP.end_seq (SND.MAX when the
        # probe went out, -1 when no probe is outstanding) and where the probe began;
        # TLP.is_retrans; and whether an RTT sample came since the last probe (§7.3).
        self.tlp = tlp
        self.pto_at: float | None = None
        self.tlp_end = -1
        self.tlp_start = 0
        self.tlp_retrans = False
        self.tlp_sampled = True
        # Undoing a spurious fast recovery (RFC 3708 with D-SACK, RFC 9438 §4.9): the
        # congestion state before the reduction, and the ranges retransmitted since that
        # no D-SACK has yet shown to have arrived twice.
        self.undo_cc: CongestionControl | None = None
        self.undo_ranges: list[tuple[int, int]] = []
        self.undo_dsacked = 0
        # Undoing a spurious RTO (RFC 4015's response): the timeout's reduction may be
        # undone (undo_cc is the state before it); it was found spurious (undo_rto); when
        # its retransmission left, on our clock in ms (Eifel detection, RFC 3522, compares
        # the echoed timestamp with it); F-RTO (RFC 5682 §3) is watching the ACKs, and its
        # step 2b asks for new data, not retransmissions, on the next transmission.
        self.undo_rto = False
        self.rto_xmit_ms = -1
        self.frto = False
        self.frto_new = False
        # Transmissions still outstanding, oldest first.
        self.sent: deque[Sent] = deque()
        # The records RACK may still judge, in the order sent: those neither lost, nor
        # wholly SACKed, nor acknowledged (as Linux's tsorted_sent_queue). A record
        # leaves when `rack_detect` walks past it so judged; the walk stops at
        # RACK.segment, so its cost is what is still in doubt, not the flight.
        self.tsorted: deque[Sent] = deque()
        # The original transmissions RACK has found lost (and sent before RACK.segment),
        # taken out of `tsorted` while `seq_sorted` holds: in the order sent, which is
        # then sequence order, so that only the newest of them can still move the loss
        # edge or the reordering timer, and `rack_detect` need not walk the others
        # again on every ACK (see `_rack_lost_originals`).
        self.lost_originals: deque[Sent] = deque()
        # Indexes so that a SACK touches only the records it concerns: the original
        # transmissions not yet acknowledged, in sequence order (which is the order
        # sent, while `seq_sorted` holds), and the retransmissions (few: one per loss).
        # `orig_high`: where the latest original ended.
        self.originals: deque[Sent] = deque()
        self.rxt_sent: list[Sent] = []  # in the order of their starts
        self.rxt_span = 0  # the longest of them
        self.seq_sorted = True
        self.orig_high = -1
        # While nothing is in doubt (no SACK, no retransmission, no timeout since the
        # queues were last empty) `tsorted` and `originals` would hold exactly the
        # records of `sent`: they stay empty and `sent` stands for them, so a flow that
        # does not lose keeps one queue per record, not three. `_unmirror` fills them.
        self.mirrored = True
        # RACK (RFC 8985 §6.1): RACK.xmit_ts and RACK.end_seq of the most recently sent
        # segment delivered (-1.0: none yet), RACK.rtt, RACK.fack, RACK.reordering_seen,
        # RACK.reo_wnd_mult, RACK.reo_wnd_persist and RACK.dsack_round (-1: None); the
        # reordering timer; and how many retransmissions are among the `sent` records.
        self.rack = rack
        self.rack_xmit_ts = -1.0
        self.rack_end = 0
        self.rack_order = -1  # the transmission number of RACK.segment
        self.sent_count = 0
        self.rack_rtt = 0.0
        self.rack_fack = 0
        # RACK.fack before the SACK blocks of an ACK that also moves SND.UNA (-1: none):
        # Step 3 judges its cumulatively acknowledged bytes against it.
        self.prior_fack = -1
        self.reordering_seen = False
        self.reo_wnd_mult = 1
        self.reo_wnd_persist = 0
        self.dsack_round = -1
        self.reo_at: float | None = None
        self.rxt_records = 0
        self.rxt_latest: dict[int, int] = {}  # start -> order of its latest retransmission
        # PRR (RFC 9937): prr_delivered, prr_out and RecoverFS of this recovery; the
        # window it allows (pipe + sndcnt, as of the last ACK); the SACKed bytes its last
        # count saw, and those the latest ACK newly SACKed; and whether the latest ACK
        # showed a further loss (then it is not a "safe ACK").
        self.prr = prr
        self.prr_delivered = 0
        self.prr_out = 0
        self.recover_fs = 0
        self.prr_cwnd = 0
        self.prr_entry = False  # the next count is the one of the ACK that began it
        self.prr_sacked = 0
        self.newly_sacked = 0
        self.new_loss = False
        # Counters the connection reports.
        self.fast_retransmits = 0
        self.loss_probes = 0
        self.loss_probe_recoveries = 0
        self.dsack_undos = 0
        self.spurious_rtos = 0

    def reset(self, iss: int) -> None:
        """The send sequence starts at `iss` (a new ISN)."""
        self.recover = self.high_rxt = self.lost_edge = iss

    @property
    def counters(self) -> dict[str, int]:
        return {
            "fast_retransmits": self.fast_retransmits,
            "loss_probes": self.loss_probes,
            "loss_probe_recoveries": self.loss_probe_recoveries,
            "dsack_undos": self.dsack_undos,
            "spurious_rtos": self.spurious_rtos,
        }

    # ------------------------------------------------------------------ what was sent

    def on_send(self, start: int, end: int, fin: bool, now: float) -> None:
        """New data [start, end), and a FIN after it if `fin`, left at `now`: the bulk
        path's one call per burst, so it does only what new data needs."""
        self.sent_count = order = self.sent_count + 1
        seg_end = end + 1 if fin else end
        seg = Sent(start, seg_end, now, False, order)
        if seg_end > start:
            if start < self.orig_high:
                if self.mirrored:
                    self._unmirror()
                self.seq_sorted = False  # sent below new data: the index no longer holds
            self.orig_high = seg_end
        self.sent.append(seg)
        if not self.mirrored:
            self.tsorted.append(seg)
            if seg_end > start and self.rack and self.seq_sorted:
                self.originals.append(seg)
        if self.in_recovery:
            self.prr_out += end - start  # RFC 9937: "prr_out += (data sent)"

    def on_transmit(
        self, start: int, end: int, fin: bool, now: float, snd_max: int, retransmit: bool
    ) -> None:
        """Data [start, end), and a FIN after it if `fin`, left at `now` (`snd_max` is
        SND.MAX after it)."""
        if not retransmit:
            self.on_send(start, end, fin, now)
            return
        if self.mirrored:
            self._unmirror()
        self.sent_count = order = self.sent_count + 1
        seg = Sent(start, end + 1 if fin else end, now, True, order)
        self.sent.append(seg)
        self.tsorted.append(seg)
        if self.rack:
            rxt = self.rxt_sent  # by start (see _rack_update_sacked)
            if rxt and rxt[-1].start > start:
                insort(rxt, seg, key=_start)
            else:
                rxt.append(seg)
            if seg.end - start > self.rxt_span:
                self.rxt_span = seg.end - start
        if self.in_recovery:
            self.prr_out += end - start  # RFC 9937: "prr_out += (data sent)"
        self.rxt_records += 1
        self.rxt_latest[start] = order
        if self.rtx_at < 0:
            self.rtx_at = now  # the recovery's first retransmission
        if self.rto_xmit_ms < 0 and self.undo_cc is not None and self.rto_recovery:
            self.rto_xmit_ms = int(now * 1000)  # the RTO's first retransmission
        if self.sack_ok and end > start:
            if not self.rack:  # RACK finds lost retransmissions by their send time
                self.rxt_log.append((start, end, snd_max))
            if self.undo_cc is not None:
                self.undo_ranges.append((start, end))

    @property
    def timer_at(self) -> float | None:
        """When the recovery's timer is due: the reordering timer or the PTO."""
        reo = self.reo_at
        pto = self.pto_at
        if reo is None:
            return pto
        return reo if pto is None or reo < pto else pto

    def stop_timers(self) -> None:
        self.reo_at = self.pto_at = None

    # ------------------------------------------------------------------ the scoreboard

    def pipe(self, una: int, snd_max: int) -> int:
        """Bytes in the network (RFC 6675 §4 SetPipe): outstanding, minus SACKed, minus
        lost-and-not-yet-retransmitted."""
        out = snd_max - una
        if self.sack_ok:
            out -= self.sacked.total
        else:
            out -= self.reno_sacked
        if self.high_rxt < self.lost_edge:
            out -= self._unsacked_between(self.high_rxt, self.lost_edge)
        return out

    def on_sack(
        self,
        blocks: tuple[tuple[int, int], ...],
        una: int,
        snd_max: int,
        now: float,
        ack: int,
    ) -> bool:
        """RFC 6675 Update(): mark SACKed ranges; True if any byte was newly SACKed.
        (`ack`: the ACK's cumulative acknowledgement.)"""
        if self.mirrored:
            self._unmirror()
        hi = snd_max
        sacked = self.sacked
        before = sacked.total
        track = self.rack
        if track and ack > una:
            self.prior_fack = self.rack_fack  # on_ack_advance follows and reads it
        pieces: list[tuple[int, int]] = []
        starts = sacked.starts
        ends = sacked.ends
        for left32, right32 in blocks:
            d = (left32 - una) & MASK
            left = una + (d - 0x100000000 if d >= 0x80000000 else d)
            right = left + ((right32 - left32) & MASK)
            if left < una:
                left = una  # a D-SACK or stale block: only the part above SND.UNA counts
            if right > hi:
                continue  # RFC 2018: blocks beyond what we sent are bogus
            if right <= left:
                continue
            if track:
                # The bytes this block newly covers: RACK judges only these (RFC 8985
                # §6.2: "for each Segment newly acknowledged").
                i = bisect_right(starts, left) - 1  # sacked.next_gap(left), in place
                gap = ends[i] if i >= 0 and left < ends[i] else left
                if gap >= right:
                    continue  # SACKed before (an ACK repeats its older blocks): no news
                while gap < right:
                    nxt = sacked.next_start(gap)
                    top = right if nxt is None or nxt > right else nxt
                    pieces.append((gap, top))
                    gap = sacked.next_gap(top) if top < right else right
            sacked.add(left, right)
        self.newly_sacked = sacked.total - before
        changed = self.newly_sacked > 0
        if changed:
            if self.rack:
                if len(pieces) > 1:
                    pieces.sort()  # blocks come most recent first; Step 3 goes in sequence
                self._rack_update_sacked(una, now, pieces)
            elif self.in_recovery:
                edge = self._sack_lost_edge(una)
                if edge > self.lost_edge:
                    self.lost_edge = edge
                    self.new_loss = True
            if self.rxt_log:
                self._find_lost_retransmissions(una)
        return changed

    def _find_lost_retransmissions(self, una: int) -> None:
        """A retransmission whose range is still not SACKed, while data first sent *after*
        it has been SACKed, was lost too (Linux's lost-retransmit detection, the idea
        RACK, RFC 8985, generalises). RFC 6675 alone would wait for the RTO, which costs
        hundreds of round trips when the RTT is far below the 200 ms minimum RTO."""
        sacked = self.sacked
        highest = sacked.ends[-1]
        keep = []
        for start, end, marker in self.rxt_log:
            if end <= una or sacked.covered(max(start, una), end) == end - max(start, una):
                continue  # it arrived
            if highest > marker:
                self.rxt_again.append((max(start, una), end))
                self.new_loss = True
            else:
                keep.append((start, end, marker))
        self.rxt_log = keep

    def _sack_lost_edge(self, una: int) -> int:
        """RFC 6675 IsLost(): unSACKed bytes below the returned edge are lost.

        A byte is lost once more than (DupThresh-1)*SMSS bytes, or DupThresh
        discontiguous ranges, above it have been SACKed.
        """
        limit = (DUP_THRESH - 1) * self.mss
        total = 0
        starts = self.sacked.starts
        ends = self.sacked.ends
        for count, i in enumerate(range(len(starts) - 1, -1, -1), 1):
            total += ends[i] - starts[i]
            if total > limit or count >= DUP_THRESH:
                return starts[i]
        return una

    def _unsacked_between(self, lo: int, hi: int) -> int:
        return hi - lo - self.sacked.covered(lo, hi) if hi > lo else 0

    def _next_unsacked(self, lo: int, hi: int) -> int:
        """The first sequence number in [lo, hi) not covered by the scoreboard, or -1."""
        gap = self.sacked.next_gap(lo)
        return gap if gap < hi else -1

    def _next_sacked_start(self, seq: int) -> int:
        start = self.sacked.next_start(seq)
        return _FAR if start is None else start

    # ------------------------------------------------------------------ what to send

    def retransmissions(self, una: int, snd_max: int, mss: int, cwnd: int) -> list[tuple[int, int]]:
        """The ranges to retransmit now, in order (RFC 6675 §5 NextSeg () rule (1)):
        first retransmissions found lost themselves (already counted in the pipe), then
        the holes below the loss edge as far as cwnd - pipe allows. The caller sends
        each (and reports it to `on_transmit`)."""
        if self.frto_new:
            return []  # F-RTO step 2b: new data first (see on_ack_after_rto)
        if self.in_recovery and self.prr and self.sack_ok:
            cwnd = self.prr_cwnd
        out: list[tuple[int, int]] = []
        again = self.rxt_again
        while again:
            start, end = again.pop()
            start = self._next_unsacked(max(start, una), end)
            if start >= 0:
                out.append((start, min(end, start + mss, self._next_sacked_start(start))))
        if self.high_rxt < self.lost_edge:
            pipe = self.pipe(una, snd_max)
            while self.high_rxt < self.lost_edge:
                start = self._next_unsacked(self.high_rxt, self.lost_edge)
                if start < 0:
                    self.high_rxt = self.lost_edge
                    break
                end = min(start + mss, self.lost_edge, self._next_sacked_start(start))
                if pipe + (end - start) > cwnd and pipe > 0 and not self.rtx_now:
                    break
                # RFC 5681 §3.2 step 4, RFC 6582 §3.2 step 3 and RFC 6675 §5 (4.2): the
                # segment at SND.UNA is resent on entering recovery (and after a partial
                # ACK) whatever the pipe says; the window governs the rest.
                self.rtx_now = False
                out.append((start, end))
                pipe += end - start
                self.high_rxt = end
        return out

    def send_room(self, cwnd: int, una: int, snd_max: int, mss: int) -> int:
        """Bytes of new data the congestion window leaves room for now (in fast
        recovery, the window PRR allows)."""
        if self.in_recovery and self.prr and self.sack_ok:
            cwnd = self.prr_cwnd
        room = cwnd - self.pipe(una, snd_max)
        dupacks = self.dupacks
        if dupacks > 0 and not self.in_recovery:
            # RFC 3042 limited transmit: a new segment for each of the first two
            # dupACKs, as long as "the amount of outstanding data would remain less
            # than or equal to the congestion window plus 2 segments". Without SACK
            # the dupACKs do not shrink the pipe, so their room is added here. With
            # SACK the segment each dupACK SACKs has already left the pipe, which is
            # that room (Linux does limited transmit so): nothing is added, and the
            # cap holds, except in an RTO's recovery, where the pipe alone governs.
            if not self.sack_ok:
                room += min(dupacks, 2) * mss
            elif una >= self.recover:
                lt_room = cwnd + min(dupacks, 2) * mss - (snd_max - una)
                if lt_room < room:
                    room = lt_room
        return room

    def on_new_data_sent(self, flight: int, cwnd: int, una: int, snd_max: int) -> None:
        """New data went out while `flight` bytes were outstanding. If that was on a
        duplicate ACK, count what it put beyond cwnd: the limited transmit of RFC 3042,
        which the ssthresh of a recovery starting at this SND.UNA must leave out of
        FlightSize."""
        if self.dupacks <= 0 or self.in_recovery:
            return
        if self.lt_una != una:  # a new episode: SND.UNA moved since
            self.lt_una = una
            self.lt_bytes = 0
        beyond = snd_max - una - max(cwnd, flight)
        if beyond > 0:
            self.lt_bytes += beyond

    # ------------------------------------------------------------------ what came back

    def on_duplicate_ack(self, cc: CongestionControl, una: int, snd_max: int, now: float) -> bool:
        """A duplicate ACK (RFC 5681 §2; with SACK, RFC 6675 §2's: one that SACKs new
        data). True if it started a fast recovery."""
        self.dupacks += 1
        if self.rack and self.sack_ok:
            # RFC 8985 §6.2: RACK, not DupThresh, decides (reo_wnd is 0 once DupThresh
            # segments are SACKed and no reordering was seen, which gives the same
            # answer), in recovery as out of it: it also finds lost retransmissions.
            return self.rack_detect(cc, una, snd_max, now)
        if self.in_recovery:
            if not self.sack_ok:
                # Each duplicate ACK means one more segment has left the network
                # (RFC 6582 §3.2 step 4's window inflation, counted as Linux counts it).
                self.reno_sacked = min(
                    self.reno_sacked + self.mss, max(snd_max - una - self.mss, 0)
                )
            return False
        lost = self.dupacks >= DUP_THRESH or (self.sack_ok and self._sack_lost_edge(una) > una)
        if not lost:
            return False
        # No new recovery while SND.UNA is below the last recovery point (RFC 6675 §5.1
        # after a timeout; RFC 6582 §3.2 step 2). Without SACK, duplicate ACKs at exactly
        # the point may still be echoes of the old window, so NewReno waits for SND.UNA to
        # pass it; with SACK the blocks say what arrived, and reaching the point is enough.
        if una < self.recover or (
            una == self.recover and not self.sack_ok and not self.recover_by_rto
        ):
            return False
        self.enter_recovery(cc, una, snd_max, now)
        return True

    def enter_recovery(
        self, cc: CongestionControl, una: int, snd_max: int, now: float, lost_edge: int = 0
    ) -> None:
        """Fast retransmit and fast recovery (RFC 5681 §3.2, RFC 6582, RFC 6675 §5);
        `lost_edge`: unSACKed bytes below it are lost (RACK's verdict), else IsLost ()."""
        in_flight = snd_max - una
        if snd_max == self.fs_snd_max and self.fs_flight > in_flight and not cc.uses_rate_samples:
            # An ACK earlier in this batch, read before the sender could send, advanced
            # SND.UNA: FlightSize is the flight the sender had before it. ACKs read in
            # one batch (UDP GRO at the peer or on the path) are all processed before the
            # sender sends again, so a cumulative ACK early in the batch takes its bytes
            # out of the flight, and a loss found later in the same batch found a
            # 16-segment flight at 12: through netem's UDP relay, which sends with GSO, a
            # quarter of CUBIC's reductions cut cwnd to 0.32-0.48x instead of 0.7x
            # (docs/benchmarks.md). A sender that reads one ACK at a time refills between
            # them. (Linux takes cwnd, which is at least this flight where the window was
            # in use.) For ssthresh only: BBR keeps the flight now, what packet
            # conservation holds (Linux's BBR: the pipe).
            in_flight = self.fs_flight
        # RFC 5681 §3.2 step 2: ssthresh from FlightSize; "When [RFC3042] is in use,
        # additional data sent in limited transmit MUST NOT be included in this
        # calculation." (Linux halves cwnd, which excludes it the same way.)
        limited = self.lt_bytes if self.lt_una == una else 0
        self.undo_cc = cc.snapshot()
        self.undo_ranges.clear()
        self.undo_dsacked = 0
        cc.on_congestion(now, max(in_flight - limited, 0))
        self.lt_bytes = 0
        self.in_recovery = True
        self.pto_at = None  # RFC 8985 §7.2: no probes during recovery
        self.tlp_end = -1  # the recovery now repairs what the probe was sent to find
        self.recover = snd_max  # RecoveryPoint = HighData
        self.recover_by_rto = False
        # HighRxt: what a previous recovery retransmitted above SND.UNA (it may resend
        # bytes past its own recovery point) is still in flight, not lost again until
        # shown to be; starting over from SND.UNA resent it at once (tests/tcp/
        # test_recovery_bugs.py). Linux likewise keeps an skb's retransmitted mark.
        if self.high_rxt < una:
            self.high_rxt = una
        self.fast_retransmits += 1
        self.rtx_now = True
        self.rtx_at = -1.0
        mss = self.mss
        # RFC 9937 §6.1: "prr_delivered = 0", "prr_out = 0", "RecoverFS = SND.NXT -
        # SND.UNA", and "RecoverFS -= (bytes SACKed in scoreboard) - (bytes newly
        # SACKed)": bytes SACKed before the ACK that began the recovery will not be
        # counted as delivered during it. (Linux takes cwnd before the reduction; the
        # RFC's choice is what we follow.) The first count, `prr_on_ack` for this same
        # ACK, adds what it cumulatively acknowledged.
        sacked_before = self.sacked.total - self.newly_sacked if self.sack_ok else 0
        self.prr_delivered = self.prr_out = 0
        self.recover_fs = max(in_flight - sacked_before, 1)
        self.prr_sacked = sacked_before if self.sack_ok else self.reno_sacked
        self.prr_entry = True
        self.prr_cwnd = 0  # until this ACK's count: the forced fast retransmit only
        self.new_loss = True
        if self.sack_ok:
            edge = lost_edge if lost_edge else self._sack_lost_edge(una)
            self.lost_edge = min(max(edge, una + mss), snd_max)
        else:
            self.reno_sacked = min(DUP_THRESH * mss, max(in_flight - mss, 0))
            self.lost_edge = min(una + mss, snd_max)

    def on_ack_advance(
        self,
        cc: CongestionControl,
        acked: int,
        ack: int,
        snd_max: int,
        now: float,
        in_flight: int,
        echo_ms: int,
    ) -> None:
        """SND.UNA moved up by `acked` to `ack`; `in_flight` is the pipe before it did;
        `echo_ms` is when (on our clock, in ms) the segment whose TSval the ACK echoes
        was sent, or -1."""
        if self.fs_snd_max < 0:  # the first ACK of this batch to advance SND.UNA
            self.fs_snd_max = snd_max
            self.fs_flight = snd_max - ack + acked
        self.dupacks = 0
        sent = self.sent
        newest: Sent | None = None
        if self.mirrored and not self.in_recovery and not self.rto_recovery:
            # Nothing in doubt (see `mirrored`): every record is an original, sent in
            # sequence order, none SACKed or retransmitted, so RACK.fack and high_rxt
            # are at or below the old SND.UNA and no step below but these can apply.
            while sent and sent[0].end <= ack:
                newest = sent.popleft()
            if sent and sent[0].start < ack:
                newest = sent[0]  # partly acknowledged
            if newest is not None and self.rack:
                lo = ack - acked
                if newest.start > lo:
                    lo = newest.start
                if lo >= self.high_rxt:
                    # `_rack_advance` written out: this runs on every ACK of a bulk flow.
                    end = newest.end
                    if end > ack:
                        end = ack
                    xmit_ts = newest.xmit_ts
                    self.rack_rtt = now - xmit_ts
                    order = newest.order
                    if order > self.rack_order or (
                        order == self.rack_order and end > self.rack_end
                    ):
                        self.rack_xmit_ts = xmit_ts
                        self.rack_order = order
                        self.rack_end = end
                    if end > self.rack_fack:
                        self.rack_fack = end
            if self.high_rxt < ack:
                self.high_rxt = ack
            if self.lost_edge < ack:
                self.lost_edge = ack
            cc.on_ack(acked, now, self.rtt.srtt or 0.0, in_flight)
            return
        if self.rxt_records:
            # Retransmissions sit among later transmissions: take out all that arrived.
            newest = self._take_delivered(ack, now, echo_ms)
            sent = self.sent
        else:
            while sent and sent[0].end <= ack:
                newest = sent.popleft()
        if not self.mirrored:
            originals = self.originals
            while originals and originals[0].end <= ack:
                originals.popleft()
            # An acknowledged record is out of RACK's queue for good (`rack_detect`
            # would drop it unjudged): without this, a flow that stopped losing would
            # keep every record.
            tsorted = self.tsorted
            while tsorted and tsorted[0].end <= ack:
                tsorted.popleft()
            if not sent:
                self.mirrored = True  # all three queues are empty: equal again
                self.lost_originals.clear()  # all acknowledged
        newest_end = ack
        if sent and sent[0].start < ack and not sent[0].retransmitted:
            newest = sent[0]  # partly acknowledged: sent no earlier than those taken out
        rxt_below = self.high_rxt  # bytes below it were retransmitted in this episode
        if self.rack:
            fack = self.prior_fack
            if fack < 0:
                fack = self.rack_fack  # no SACK blocks on this ACK
            self.prior_fack = -1
            lo = ack - acked
            if fack > lo and not self.reordering_seen:
                # RFC 8985 §6.2 Step 3 for the bytes acknowledged cumulatively, not
                # SACKed before: "Else if Segment.end_seq < RACK.fack AND
                # Segment.retransmitted is FALSE: RACK.reordering_seen = TRUE". Such
                # bytes below RACK.fack (as it was before this ACK) are a late arrival.
                if lo < rxt_below:
                    lo = rxt_below
                top = ack if ack < fack else fack
                if lo < top and self._unsacked_between(lo, top) > 0:
                    self.reordering_seen = True
        if self.sacked:
            self.sacked.trim_below(ack)
        if self.high_rxt < ack:
            self.high_rxt = ack
        if self.lost_edge < ack:
            self.lost_edge = ack
        if self.rxt_log and ack >= self.recover:
            self.rxt_log.clear()  # the loss episode is over: its retransmissions arrived
        if self.rack:
            # RFC 8985 §6.2 Step 2: "ignore a segment as invalid if any of its sequence
            # range has been retransmitted before" (and the two conditions, which an
            # original transmission always meets): an original record's newly
            # acknowledged bytes below high_rxt were resent, the ACK may be the copy's.
            if newest is not None and not newest.retransmitted:
                lo = ack - acked  # (comparisons, not max()/min(): this runs per ACK)
                if newest.start > lo:
                    lo = newest.start
                if lo >= rxt_below:
                    end = newest.end
                    self._rack_advance(newest, end if end < newest_end else newest_end, now)
            if self.dsack_round >= 0 and ack >= self.dsack_round:
                self.dsack_round = -1  # RFC 8985 §6.2 Step 4: a round has passed
        # Congestion control: RFC 6582 §3.2 steps 3 and 5 (partial and full ACKs).
        if not self.in_recovery:
            cc.on_ack(acked, now, self.rtt.srtt or 0.0, in_flight)
            if self.rto_recovery and ack >= self.recover:
                self.rto_recovery = False
                self.undo_cc = None  # the timeout was not found spurious
                self.frto = self.frto_new = False
                self._recovery_ended()  # the RTO's recovery
            if self.rack and self.sack_ok and sent:
                first = sent[0]
                if first.order < self.rack_order or (
                    first.order == self.rack_order and self.rack_end > ack
                ):
                    self.rack_detect(cc, ack, snd_max, now)
            return
        if ack >= self.recover:
            self.in_recovery = False
            self.rxt_log.clear()
            self.reno_sacked = 0
            self._recovery_ended()
            cc.on_recovery_end(now)
        elif not self.sack_ok:
            # Partial ACK without SACK: the next hole starts at the new SND.UNA.
            self.reno_sacked = max(0, self.reno_sacked - acked)
            self.lost_edge = min(ack + self.mss, snd_max)
            self.high_rxt = ack
            self.rtx_now = True  # RFC 6582 §3.2 step 5 (the RTO restarts at the caller)
            self.new_loss = True
        elif self.rack:
            self.rack_detect(cc, ack, snd_max, now)
        elif self.lost_edge < self.recover and not self.rtx_now and self._rtx_answered(now):
            # Partial ACK with SACK. RFC 6675 §5 (C) sends whatever NextSeg () returns
            # while cwnd - pipe >= 1 SMSS, but its IsLost () needs SACKed data above
            # a hole, and after a partial ACK there may be none (a lost tail). Here
            # we do as Linux (RACK, RFC 8985 §6.2): a segment is lost once one sent
            # after it has been delivered. The segment at SND.UNA was retransmitted
            # when the recovery began, after everything below the recovery point
            # had been sent; the partial ACK shows it delivered, so every byte below
            # the recovery point still not SACKed is lost, and NextSeg () rule (1)
            # resends it now instead of after the RTO. (RFC 6582 §3.2 step 5 draws
            # the same conclusion without SACK, for the next segment.) Not while
            # that retransmission is still to go (rtx_now: ACKs fed in a batch), nor
            # sooner than min_RTT after it left (RFC 8985 §6.2's test of a sample):
            # then the ACK is the original's, which proves nothing.
            self.lost_edge = self.recover
            self.new_loss = True

    def _unmirror(self) -> None:
        """Something is in doubt from now on: give `tsorted` and `originals` the records
        they would hold (all of `sent`, which has only originals so far)."""
        self.mirrored = False
        sent = self.sent
        self.tsorted = deque(sent)
        if self.rack and self.seq_sorted:
            self.originals = deque(seg for seg in sent if seg.end > seg.start)

    def _rtx_answered(self, now: float) -> bool:
        """Whether an ACK now can be the answer to the recovery's first retransmission."""
        min_rtt = self.rtt.min_rtt
        return self.rtx_at >= 0 and (min_rtt is None or now - self.rtx_at >= min_rtt)

    def prr_on_ack(self, ssthresh: int, acked: int, una: int, snd_max: int) -> None:
        """RFC 9937 §6.2, on each ACK of a fast recovery: how much may be sent, as the
        window `prr_cwnd` = pipe + SndCnt that `retransmissions` and `send_room` use."""
        if self.prr_entry:
            # §6.1: "RecoverFS += (bytes newly cumulatively acknowledged)" by the ACK that
            # began the recovery (RACK may start one on an ACK that moves SND.UNA).
            self.prr_entry = False
            self.recover_fs += acked
        # "DeliveredData = (bytes newly cumulatively acknowledged)", plus "(bytes newly
        # selectively acknowledged)" with SACK, or without it the segment each duplicate
        # ACK stands for (counted in reno_sacked, at most the flight: the RFC's "if
        # prr_delivered < RecoverFS" guard against ACK splitting).
        sacked = self.sacked.total if self.sack_ok else self.reno_sacked
        delivered = acked + sacked - self.prr_sacked
        self.prr_sacked = sacked
        further_loss = self.new_loss
        self.new_loss = False
        if delivered <= 0:
            return  # "If (DeliveredData is 0) Return"
        self.prr_delivered += delivered
        pipe = self.pipe(una, snd_max)
        mss = self.mss
        if pipe > ssthresh:
            # "SndCnt = CEIL(prr_delivered * ssthresh / RecoverFS) - prr_out", counted in
            # whole segments, as the RFC's examples count and Linux's tcp_cwnd_reduction
            # does: in bytes the ceiling allows a fraction of a segment, which a bulk
            # sender does not send, and every transmission would come one ACK late.
            out = -(-self.prr_delivered * ssthresh // (self.recover_fs * mss)) * mss
            sndcnt = out - self.prr_out
        else:
            # "PRR-CRB by default": "SndCnt = MAX(prr_delivered - prr_out, DeliveredData)";
            # "if (safeACK) { // PRR-SSRB when recovery is in good progress: SndCnt +=
            # SMSS }", a safe ACK being one where "SND.UNA advances" and "no further loss
            # indicated"; "SndCnt = MIN(ssthresh - pipe, SndCnt)".
            sndcnt = max(self.prr_delivered - self.prr_out, delivered)
            if acked > 0 and not further_loss:
                sndcnt += mss
            sndcnt = min(ssthresh - pipe, sndcnt)
        if sndcnt < 0:
            sndcnt = 0
        if self.prr_out == 0 and sndcnt == 0:
            sndcnt = mss  # "Force a fast retransmit upon entering recovery"
        self.prr_cwnd = pipe + sndcnt

    # ------------------------------------------------------------------ RACK (RFC 8985 §6)

    def _rack_advance(self, seg: Sent, end: int, now: float) -> None:
        """RFC 8985 §6.2 Step 2 for the most recently sent segment this ACK delivered
        (`end`: where its delivered part ends): "update the RACK.rtt to be the RTT
        sample calculated using this ACK. Furthermore, record the most recent
        Segment.xmit_ts in RACK.xmit_ts if it is ahead of RACK.xmit_ts." """
        self.rack_rtt = now - seg.xmit_ts
        order = self.rack_order
        if seg.order > order or (seg.order == order and end > self.rack_end):
            self.rack_xmit_ts = seg.xmit_ts
            self.rack_order = seg.order
            self.rack_end = end
        if end > self.rack_fack:
            self.rack_fack = end

    def _valid_sample(self, seg: Sent, now: float, echo_ms: int) -> bool:
        """RFC 8985 §6.2: "ignore a segment as invalid if any of its sequence range has
        been retransmitted before and if either of two conditions is true: 1. The
        Timestamp Echo Reply field (TSecr) of the ACK's timestamp option [RFC7323], if
        available, indicates the ACK was not acknowledging the last retransmission of
        the segment. 2. The segment was last retransmitted less than RACK.min_rtt ago."
        (`echo_ms` -1: no echo, or one that cannot name this segment's copies.)"""
        if not seg.retransmitted:
            return True
        if 0 <= echo_ms < int(seg.xmit_ts * 1000):
            return False
        min_rtt = self.rtt.min_rtt
        # In whole microseconds, as Linux compares them (tcp_rack_advance): an answer in
        # exactly min_RTT is the copy's, however the float subtraction rounds (on the
        # fake network, 0.55 - 0.45 < 0.1 refused every copy SACKed one RTT after it).
        return min_rtt is None or round((now - seg.xmit_ts) * 1e6) >= round(min_rtt * 1e6)

    def _take_delivered(self, ack: int, now: float, echo_ms: int) -> Sent | None:
        """Remove every record the cumulative ACK covers; the most recently sent of them
        that is a valid RACK sample is returned (retransmissions go through the checks
        here, originals through the caller)."""
        newest: Sent | None = None
        keep: deque[Sent] = deque()
        for seg in self.sent:
            if seg.end > ack:
                keep.append(seg)
                continue
            if seg.retransmitted:
                self.rxt_records -= 1
                if not self.rxt_records:
                    self.rxt_latest.clear()
                    self.rxt_sent.clear()
                elif self.rxt_latest.get(seg.start) == seg.order:
                    del self.rxt_latest[seg.start]
                if not seg.lost and self._valid_sample(seg, now, echo_ms):
                    self._rack_advance(seg, seg.end, now)
            elif newest is None or seg.order > newest.order:
                newest = seg
        self.sent = keep
        return newest

    def _rack_update_sacked(self, una: int, now: float, pieces: list[tuple[int, int]]) -> None:
        """RFC 8985 §6.2 Steps 2 and 3 for the bytes a SACK newly covered (`pieces`, in
        sequence order): only the records they fall in are newly acknowledged.

        Step 2's first test of a retransmitted record, the TSecr, is not applied to them:
        the receiver echoes TS.Recent, which only a segment at its left edge sets (RFC
        7323 §4.3), so an ACK that SACKs data above a hole echoes an older segment,
        never the copy SACKed. Applied, the test refused every SACKed retransmission,
        and one lost again below it waited for the RTO. Linux (tcp_rack_advance) tests
        a SACKed retransmission by RACK.min_rtt alone, as here."""
        # Step 3: "If Segment.end_seq > RACK.fack: RACK.fack = Segment.end_seq; Else if
        # Segment.end_seq < RACK.fack AND Segment.retransmitted is FALSE:
        # RACK.reordering_seen = TRUE" (bytes below high_rxt were retransmitted in this
        # episode). A piece never straddles RACK.fack: the byte below it is SACKed.
        fack = self.rack_fack
        high_rxt = self.high_rxt
        for lo, hi in pieces:
            if hi > fack:
                fack = hi
            elif hi < fack and lo >= high_rxt:
                self.reordering_seen = True
        self.rack_fack = fack
        # Step 2: RACK advances to the most recently sent valid record among them: the
        # valid one with the highest (transmission number, end of its newly SACKed part).
        best: Sent | None = None
        best_end = 0
        if self.seq_sorted:
            originals = self.originals
            while originals and originals[0].end <= una:
                originals.popleft()
            # Originals are valid samples, sent in sequence order: the newest the new
            # bytes fall in is the last one below the end of the highest piece.
            for lo, hi in reversed(pieces):
                k = bisect_left(originals, hi, key=_start) - 1
                if k >= 0:
                    seg = originals[k]
                    end = seg.end
                    if end > lo:
                        best = seg
                        best_end = hi if hi < end else end
                        break
            rxt = self.rxt_sent
            n = 0
            while n < len(rxt) and rxt[n].end <= una:
                n += 1
            if n:
                del rxt[:n]
            if rxt:
                span = self.rxt_span
                for lo, hi in pieces:
                    # Retransmissions by start: those starting below `hi`, back to where
                    # none can reach above `lo` (none is longer than `span`).
                    k = bisect_left(rxt, hi, key=_start)
                    bottom = lo - span
                    while k:
                        k -= 1
                        seg = rxt[k]
                        if seg.start <= bottom:
                            break
                        end = seg.end
                        if end <= lo or seg.lost:
                            continue
                        top = hi if hi < end else end
                        if best is not None and (
                            seg.order < best.order or (seg.order == best.order and top <= best_end)
                        ):
                            continue
                        if self._valid_sample(seg, now, -1):
                            best = seg
                            best_end = top
        else:
            for seg in self.sent:
                end = seg.end
                if end <= una or seg.lost:
                    continue
                for lo, hi in pieces:
                    if lo < end and seg.start < hi:
                        top = hi if hi < end else end
                        if best is not None and (
                            seg.order < best.order or (seg.order == best.order and top <= best_end)
                        ):
                            continue
                        if self._valid_sample(seg, now, -1):
                            best = seg
                            best_end = top
        if best is not None:
            self._rack_advance(best, best_end, now)

    def reo_wnd(self) -> float:
        """RFC 8985 §6.2 Step 4, RACK_update_reo_wnd (the D-SACK part is in `on_dsack`):
        "If RACK.reordering_seen is FALSE: If in Fast or RTO recovery: Return 0 Else if
        RACK.segs_sacked >= DupThresh: Return 0 / Return min(RACK.reo_wnd_mult *
        RACK.min_RTT / 4, SRTT)"."""
        if not self.reordering_seen and (
            self.in_recovery or self.rto_recovery or self.sacked.total > (DUP_THRESH - 1) * self.mss
        ):
            return 0.0
        rtt = self.rtt
        min_rtt = rtt.min_rtt
        if min_rtt is None or rtt.srtt is None:
            return 0.0
        return min(self.reo_wnd_mult * min_rtt / 4, rtt.srtt)

    def rack_detect(self, cc: CongestionControl, una: int, snd_max: int, now: float) -> bool:
        """RFC 8985 §6.2 Step 5, RACK_detect_loss, then what RFC 8985 §6.2 asks of the
        sender: a fast recovery when a loss is found outside one, a reordering timer
        for the segments not lost yet. True if it began a fast recovery.

        A transmission record is lost once one sent after it was delivered and
        RACK.rtt + RACK.reo_wnd have passed since it was sent. New data is sent in
        sequence order, so the originals found lost are a prefix of the flight and
        raise the loss edge; a retransmission found lost is queued to go again."""
        self.reo_at = None
        if self.rack_xmit_ts < 0:
            return False
        if self.mirrored:
            self._unmirror()
        wait = self.rack_rtt + self.reo_wnd()
        sacked = self.sacked
        edge = self.lost_edge
        found = False
        timeout = 0.0
        rack_order = self.rack_order
        rack_end = self.rack_end
        queue = self.tsorted
        lost = self.lost_originals
        index_lost = self.seq_sorted
        if lost and not index_lost:
            # Sent out of sequence order since: back into the queue, judged one by one.
            queue.extendleft(reversed(lost))
            self.tsorted = queue = deque(sorted(queue, key=_order))
            lost.clear()
        starts = sacked.starts
        ends = sacked.ends
        kept: list[Sent] = []
        while queue:
            seg = queue[0]
            order = seg.order
            if order > rack_order:
                break  # the records are in the order sent: the rest came later still
            queue.popleft()
            end = seg.end
            if end <= una or seg.lost:
                continue  # acknowledged, or judged lost already: out for good
            lo = seg.start if seg.start > una else una
            # Wholly SACKed (the range holding `lo` reaches `end`): out for good (until
            # a reneging resets it).
            i = bisect_right(starts, lo) - 1
            if lo >= end or (i >= 0 and ends[i] >= end):
                continue
            kept.append(seg)
            if order == rack_order and end > rack_end:
                # RACK.segment's own burst, sent in sequence order: only the part below
                # RACK.end_seq was sent before it.
                end = rack_end
                if lo >= end or sacked.covered(lo, end) == end - lo:
                    continue  # delivered
            remaining = seg.xmit_ts + wait - now
            if remaining > 0:
                if remaining > timeout:
                    timeout = remaining
            elif seg.retransmitted:
                seg.lost = True  # "Segment.xmit_ts = INFINITE_TS": not judged again
                kept.pop()
                if self.rxt_latest.get(seg.start, order) > order:
                    continue  # sent again since (Linux's skb keeps only its latest send)
                self.rxt_again.append((lo, end))
                found = True
            else:
                if index_lost and order < rack_order:
                    kept.pop()
                    if lost and lost[-1].order > order:
                        insort(lost, seg, key=_order)  # it waited, newer ones did not
                    else:
                        lost.append(seg)
                if end > edge:
                    edge = end if end < snd_max else snd_max
                    found = True
        if lost:
            timeout, edge, found = self._rack_lost_originals(
                una, snd_max, now, wait, timeout, edge, found
            )
        queue.extendleft(reversed(kept))
        if timeout > 0:
            # "For timely loss detection, it is RECOMMENDED that the sender install a
            # reordering timer."
            self.reo_at = now + timeout
        if not found:
            return False
        self.new_loss = True
        if self.in_recovery or self.rto_recovery:
            if edge > self.lost_edge:
                self.lost_edge = edge
            return False
        if una < self.recover:
            return False  # as RFC 6675 §5.1 / RFC 6582: no new recovery below its point
        self.enter_recovery(cc, una, snd_max, now, edge)
        return True

    def _rack_lost_originals(
        self,
        una: int,
        snd_max: int,
        now: float,
        wait: float,
        timeout: float,
        edge: int,
        found: bool,
    ) -> tuple[float, int, bool]:
        """RACK_detect_loss for the originals found lost before (`lost_originals`), as
        if each were judged again: acknowledged or wholly SACKed ones leave; one still
        within RACK.rtt + RACK.reo_wnd of its sending counts toward the reordering
        timer; one past it moves the loss edge up to its end. Sent in sequence order,
        the newest undelivered one gives the longest wait and, of those past their
        time, the newest gives the highest end: the others change nothing, and are
        not looked at (a delivered one met on the way leaves)."""
        lost = self.lost_originals
        while lost and lost[0].end <= una:
            lost.popleft()
        starts = self.sacked.starts
        ends = self.sacked.ends
        newest = True  # no undelivered record seen yet: it would set the timeout
        k = len(lost) - 1
        while k >= 0:
            seg = lost[k]
            end = seg.end
            remaining = seg.xmit_ts + wait - now
            if remaining <= 0 and end <= edge:
                break  # past its time, and nothing older reaches higher
            if remaining > 0 and not newest:
                k -= 1
                continue  # an older record waits less than one already counted
            lo = seg.start if seg.start > una else una
            i = bisect_right(starts, lo) - 1
            if lo >= end or (i >= 0 and ends[i] >= end):
                del lost[k]  # delivered: out for good
                k -= 1
                continue
            if remaining > 0:
                newest = False
                if remaining > timeout:
                    timeout = remaining
                k -= 1
                continue
            edge = end if end < snd_max else snd_max
            found = True
            break
        return timeout, edge, found

    def resends(self, seq: int) -> bool:
        """Whether the byte at `seq` is deemed lost and waits to be sent again."""
        if self.high_rxt <= seq < self.lost_edge:
            return True
        return any(start <= seq < end for start, end in self.rxt_again)

    def on_reorder_timeout(self, cc: CongestionControl, una: int, snd_max: int, now: float) -> bool:
        """The reordering timer expired: RFC 8985 §6.2, "RACK_detect_loss_and_arm_timer()"
        once more. True if a fast recovery began."""
        self.reo_at = None
        self.newly_sacked = 0  # no ACK began this recovery: nothing was newly SACKed
        began = self.rack_detect(cc, una, snd_max, now)
        if began:
            self.prr_entry = False  # the next ACK's cumulative part is not RecoverFS's
        return began

    def _recovery_ended(self) -> None:
        """RFC 8985 §6.2 Step 4: "Else if exiting Fast or RTO recovery:
        RACK.reo_wnd_persist -= 1; If RACK.reo_wnd_persist <= 0: RACK.reo_wnd_mult = 1"."""
        self.reo_wnd_persist -= 1
        if self.reo_wnd_persist <= 0:
            self.reo_wnd_persist = 0
            self.reo_wnd_mult = 1

    # ------------------------------------------------------------------ timers

    def on_rto(
        self, cc: CongestionControl, una: int, snd_max: int, now: float, retries: int
    ) -> None:
        """The retransmission timer expired with data outstanding: reduce the window
        (`cc.on_rto`), resend SND.UNA at once and, in slow start, whatever is deemed
        lost (RFC 6675 §5.1, RFC 8985 §6.3), watching for the timeout to prove spurious
        (F-RTO, RFC 5682; Eifel detection, RFC 3522)."""
        if self.mirrored:
            self._unmirror()
        if not self.in_recovery and not self.rto_recovery:
            # A new loss episode: keep the state before the reduction for an undo, and
            # let F-RTO judge the timeout, as Linux does (tcp_enter_loss: "new_recovery"),
            # with SACK its SACK-enhanced variant (RFC 5682 §3). A timeout that ends a
            # fast recovery keeps that recovery's undo state and gets no F-RTO.
            self.undo_cc = cc.snapshot()
            self.frto = True
        elif self.rto_recovery:
            self.frto = False  # a second timeout: the first was not spurious
        if not self.rto_recovery:
            self.rto_xmit_ms = -1  # Linux's retrans_stamp: the episode's first, to come
        self.undo_rto = False
        self.frto_new = False
        cc.on_rto(now, snd_max - una)
        self.in_recovery = False
        self.reno_sacked = 0
        self.dupacks = 0
        self.rxt_log.clear()  # everything unSACKed is resent after a timeout anyway
        self.rxt_again.clear()
        self.pto_at = None
        # RFC 8985 §7.1: "Reset TLP.is_retrans and TLP.end_seq when initiating a
        # connection, fast recovery, or RTO recovery."
        self.tlp_end = -1
        self.undo_ranges.clear()
        self.undo_dsacked = 0
        self.recover = snd_max
        self.recover_by_rto = True
        self.rto_recovery = True
        self.rtx_now = True  # RFC 6298 §5.4: "Retransmit the earliest segment"
        if retries >= 2 and self.sacked:
            # A second timeout with SACKed data still unacknowledged: the receiver may
            # have discarded it (RFC 2018 §8, reneging). Forget the scoreboard.
            self.sacked.clear()
            # What was SACKed is in doubt again: RACK judges every record once more.
            self.tsorted = deque(seg for seg in self.sent if not seg.lost)
            self.lost_originals.clear()
        self.high_rxt = una
        self.lost_edge = self._rto_lost_edge(una, snd_max, now)

    def _rto_lost_edge(self, una: int, snd_max: int, now: float) -> int:
        """RFC 8985 §6.3, RACK_mark_losses_on_RTO: "For each segment, Segment, not
        acknowledged yet: If SEG.SEQ == SND.UNA OR Segment.xmit_ts + RACK.rtt +
        RACK.reo_wnd - Now() <= 0: Segment.lost = TRUE". Segments sent since are still
        in flight and stay in the pipe; RACK finds them lost later, if they are, as
        ACKs come. Originals go out in sequence order, so those lost are a prefix of
        the flight, up to the returned edge. Without RACK (or a RACK sample yet),
        everything goes again, as RFC 6675 §5.1 says."""
        if not (self.rack and self.sack_ok) or self.rack_xmit_ts < 0:
            for seg in self.sent:
                if seg.retransmitted:
                    seg.lost = True  # everything unSACKed goes again from SND.UNA
            return snd_max
        deadline = now - self.rack_rtt - self.reo_wnd()
        sacked = self.sacked
        first = una + self.mss
        nxt = sacked.next_gap(una)
        if nxt < snd_max:
            first = nxt + self.mss  # the segment at the first hole at or above SND.UNA
        edge = first if first < snd_max else snd_max
        for seg in self.sent:
            end = seg.end
            if end <= una or end <= edge or seg.xmit_ts > deadline:
                continue
            lo = seg.start if seg.start > una else una
            if sacked.covered(lo, end) == end - lo:
                continue  # delivered
            if seg.retransmitted:
                seg.lost = True  # "Segment.xmit_ts = INFINITE_TS": not judged again
            edge = end if end < snd_max else snd_max
        return edge

    def on_ack_after_rto(
        self, acked: int, ack: int, snd_max: int, echo_ms: int, new_data: bool, sacked: bool
    ) -> bool:
        """An ACK in a timeout's recovery that may still be undone, before SND.UNA moves
        (`acked` bytes, up to `ack`); `echo_ms`: when the segment whose TSval it echoes
        was sent (-1: none); `new_data`: unsent data waits and the peer's window has room
        for it; `sacked`: it SACKed something new. True if the timeout proved spurious
        (then `undo` restores the window and the caller resumes with new data).

        Three detections, each decisive where it applies. Eifel (RFC 3522), with
        timestamps: an ACK that moves SND.UNA echoes a TSval older than the timeout's
        retransmission, so the original arrived -- or the retransmission's own, so it
        filled the hole. RFC 3708, with D-SACK: every retransmission since the timeout
        was reported as a duplicate. Otherwise F-RTO (RFC 5682): new data, not
        retransmissions, after the first ACK that moves SND.UNA, and the verdict from
        the ACK that follows. Linux also lets F-RTO decide on the first ACK, and counts
        a new SACK of data sent before the timeout; both hold as well when the segment
        was lost and only the ACKs of later ones were (seeded runs at 10% loss undid
        such timeouts: tests/tcp/test_spurious_rto.py), so we do not."""
        if acked > 0 and echo_ms >= 0 and self.rto_xmit_ms >= 0:
            if echo_ms < self.rto_xmit_ms:
                self.undo_rto = True
                return True
            self.frto = False  # the retransmission drew this ACK: the loss was real
            return False
        if self.undo_dsacked and not self.undo_ranges:
            self.undo_rto = True  # RFC 3708: every retransmission arrived twice
            return True
        if not self.frto:
            return False
        self.frto_new = False
        if snd_max > self.recover:
            # Step 3, the ACK after new data went out: (b) it moves SND.UNA over data
            # sent before the timeout and never retransmitted (everything below
            # high_rxt was resent since; data SACKed before proves nothing): the
            # timeout was spurious; (a) a duplicate ACK or a SACK: "the loss was real",
            # conventional recovery goes on.
            top = ack if ack < self.recover else self.recover
            if acked > 0 and self._unsacked_between(self.high_rxt, top) > 0:
                self.undo_rto = True
                return True
            if acked <= 0 or sacked:
                self.frto = False
        elif acked > 0 and ack < self.recover and new_data:
            # Step 2b: the first ACK that advances the window without acknowledging all
            # sent before the timeout: "transmit up to two new (previously unsent)
            # segments" -- the window after one ACK in slow start -- not retransmissions.
            self.frto_new = True
        else:
            self.frto = False  # step 2a, or nothing new to send: conventional recovery
        return False

    def undo_timeout(self, cc: CongestionControl, una: int) -> CongestionControl:
        """RFC 4015's response to a spurious timeout, as Linux does it
        (tcp_try_undo_loss): the congestion state from before the timeout (cwnd and
        ssthresh never below their values now), the loss marks cleared so that nothing
        more is resent, and sending resumes with new data rather than going back N.
        `una` is SND.UNA before the ACK."""
        prior = self.undo_cc
        self.undo_cc = None
        self.undo_rto = self.frto = self.frto_new = False
        self.rto_recovery = False
        self.recover_by_rto = False
        self.recover = una
        self.rtx_now = False
        self.lost_edge = self.high_rxt  # "unmark loss": only what was resent went again
        self.rxt_again.clear()
        # The ACKs now coming are the originals' (that is what made the timeout
        # spurious): the retransmissions sent since must give RACK no sample, or every
        # segment sent before them, its ACK still on the way, would look lost.
        since = self.rto_xmit_ms
        for seg in self.sent:
            if seg.retransmitted and int(seg.xmit_ts * 1000) >= since:
                seg.lost = True
        self.spurious_rtos += 1
        self._recovery_ended()
        if prior is None or prior.mss != cc.mss:
            return cc
        return cc.undone_by(prior)

    def resend_from(self, start: int, snd_max: int) -> None:
        """Deem everything in [start, snd_max) lost (a FIN sent after an unacknowledged
        SYN-ACK goes again with it)."""
        self.high_rxt = start
        self.lost_edge = snd_max

    # ------------------------------------------------------------------ tail loss probe

    def arm_tlp(
        self,
        una: int,
        snd_max: int,
        handshaking: bool,
        srtt: float | None,
        rto_at: float | None,
        now: float,
    ) -> None:
        """RFC 8985 §7.2: (re)start the PTO, or stop it where no probe may be sent.

        "The sender SHOULD start or restart a loss probe PTO timer after transmitting
        new data (that was not itself a loss probe) or upon receiving an ACK that
        cumulatively acknowledges new data unless it is already in fast recovery, RTO
        recovery, or segments have been SACKed" (an RTO's recovery lasts until SND.UNA
        passes its recovery point). RACK-TLP needs SACK: without it, no probe."""
        flight = snd_max - una
        if (
            flight <= 0
            or not self.sack_ok
            or self.in_recovery
            or self.sacked
            or (self.recover_by_rto and una < self.recover)
            or handshaking  # our SYN is unacknowledged: the handshake's own timer
        ):
            self.pto_at = None
            return
        # TLP_calc_PTO(): "PTO = 2 * SRTT; If FlightSize is one segment: PTO +=
        # TLP.max_ack_delay" (with one segment out, a delayed ACK is what the peer
        # owes us); "Else: PTO = 1 sec" without an RTT sample. Linux takes max(2*SRTT,
        # 1.5*SRTT + 200 ms) for one segment, which differs only above a 400 ms SRTT; we
        # follow the RFC there. With more segments out, Config.probe_timeout_min is
        # added (Linux's 2 ms unless a driver says otherwise).
        if srtt is None:
            pto = 1.0
        else:
            pto = 2 * srtt
            pto += WCDELACKT if flight <= self.mss else self.pto_min
        # "If Now() + PTO > TCP_RTO_expiration(): PTO = TCP_RTO_expiration() - Now()"
        at = now + pto
        if rto_at is not None and at > rto_at:
            at = rto_at
        self.pto_at = at

    def probe_due(self) -> bool:
        """The PTO expired (RFC 8985 §7.3): may a probe go now? "1. First, there is no
        other previous loss probe still in flight" and "2. Second, the sender has
        obtained an RTT measurement since the last loss probe transmission" -- "If
        either one of these two conditions is not met, then the sender MUST skip
        sending a loss probe and MUST proceed to re-arm the RTO timer"."""
        self.pto_at = None
        return self.tlp_end < 0 and self.tlp_sampled

    def on_probe_sent(self, start: int, snd_max: int, retransmit: bool) -> None:
        self.tlp_retrans = retransmit
        self.tlp_start = start
        self.tlp_end = snd_max  # TLP.end_seq
        self.tlp_sampled = False
        self.loss_probes += 1

    def after_ack_advance_tlp(self, cc: CongestionControl, ack: int, now: float) -> None:
        """RFC 8985 §7.4.2: the cumulative ACK reached TLP.end_seq."""
        if self.tlp_end < 0 or ack < self.tlp_end:
            return
        if not self.tlp_retrans:
            self.tlp_end = -1  # "TLP of new data delivered"
        elif ack > self.tlp_end:
            # "Repaired the single loss": neither a DSACK nor a duplicate ACK said the
            # original arrived too, so the original (or its ACK) was lost: "Invoke
            # congestion control to react to the loss event the probe has repaired".
            # Linux does so with a CWR episode (ssthresh from cwnd, cwnd = ssthresh)
            # and waits, as the RFC's "ACK's ack. number > TLP.end_seq" does, for an
            # ACK beyond the probe: the ACK of exactly TLP.end_seq may be the
            # original's, the probe's DSACK still to come.
            self.tlp_end = -1
            self.loss_probe_recoveries += 1
            if not self.in_recovery:
                cc.on_congestion(now, cc.cwnd)
                cc.on_recovery_end(now)

    def on_plain_duplicate_ack(self, ack: int, una: int) -> None:
        """RFC 8985 §7.4.2: "Else If ACK is a DupAck without any SACK option: TLP.end_seq
        = None /* Case 2, above */" -- the original and the probe both arrived (a
        receiver without DSACK answers the second copy so): no loss, the episode is
        over."""
        if self.tlp_end >= 0 and self.tlp_retrans and ack == una >= self.tlp_end:
            self.tlp_end = -1

    def tlp_reveals_loss(self, cc: CongestionControl, una: int, snd_max: int, now: float) -> bool:
        """RFC 8985 §7.4.1: the probe (or data sent at or after it) is SACKed while data
        sent before it is not. RACK deems such data lost -- it was sent more than a PTO
        and a round trip ago, before a segment since delivered -- "Then the sender would
        trigger a fast recovery to recover those losses". Our DupThresh rule alone would
        not: one SACKed probe is below its threshold, and the RTO would follow. True if
        it started a recovery. (RACK draws the same conclusion by itself.)"""
        if self.tlp_end < 0 or self.in_recovery or self.rack:
            return False
        start = self.tlp_start
        if not self.sacked or self.sacked.ends[-1] <= start or una >= start:
            return False
        if not self._unsacked_between(una, start):
            return False
        if una < self.recover:
            return False  # as on_duplicate_ack: no new recovery below the recovery point
        self.enter_recovery(cc, una, snd_max, now)
        if self.lost_edge < start:
            self.lost_edge = start
        return True

    # ------------------------------------------------------------------ D-SACK and undo

    @staticmethod
    def dsack_of(
        blocks: tuple[tuple[int, int], ...], ack32: int, una: int
    ) -> tuple[int, int] | None:
        """The D-SACK block of an ACK, unwrapped, if its first block is one. RFC 2883 §4:
        a first block at or below the cumulative acknowledgement, or one that lies
        within the second block, reports a duplicate."""
        left32, right32 = blocks[0]
        if left32 == right32:
            return None
        # seq_lt(a, b) written out, (a - b) mod 2**32 >= 2**31: this runs on every ACK.
        if (ack32 - right32) & MASK >= _HALF:  # not below the cumulative ACK: within the second?
            if len(blocks) < 2:
                return None
            l2, r2 = blocks[1]
            if (left32 - l2) & MASK >= _HALF or (r2 - right32) & MASK >= _HALF:
                return None
        d = (left32 - una) & MASK
        left = una + (d - 0x100000000 if d >= 0x80000000 else d)
        return left, left + ((right32 - left32) & MASK)

    def on_dsack(self, left: int, right: int, una: int, snd_max: int) -> None:
        """A duplicate [left, right) arrived at the peer: which retransmission it was;
        and RFC 8985 §6.2 Step 4: "If RACK.dsack_round is None AND any DSACK option is
        present on latest received ACK: RACK.dsack_round = SND.NXT; RACK.reo_wnd_mult
        += 1; RACK.reo_wnd_persist = 16" (the round ends when SND.UNA reaches it)."""
        if self.dsack_round >= 0 and una >= self.dsack_round:
            self.dsack_round = -1
        if self.dsack_round < 0:
            self.dsack_round = snd_max
            self.reo_wnd_mult += 1
            self.reo_wnd_persist = REO_WND_PERSIST
        # RFC 8985 §7.4.2: "Else if ACK has a DSACK option matching TLP.end_seq:
        # TLP.end_seq = None /* Case 1, above */": the probe was a duplicate, no loss.
        if self.tlp_end >= 0 and self.tlp_retrans and right == self.tlp_end:
            self.tlp_end = -1
        # RFC 3708: a retransmission whose D-SACK comes back was unnecessary -- the
        # original arrived too. Each retransmission of the recovery counts once.
        ranges = self.undo_ranges
        for i, (start, end) in enumerate(ranges):
            if start < right and left < end:
                del ranges[i]
                self.undo_dsacked += 1
                break

    def rack_on_dsack(self, left: int, right: int, una: int, ack: int, now: float) -> None:
        """RFC 8985 §6.2 Step 2 for a retransmission that this ACK acknowledges
        cumulatively and reports by D-SACK (it arrived twice): the ACK left the receiver
        when the second copy of [left, right) arrived. Its TSecr cannot name the copy --
        a duplicate does not set TS.Recent (RFC 7323 §4.3), so the echo is older than
        the retransmission and Step 2's first test would refuse it -- and a spurious
        timeout's undo, which this ACK may make, takes the cumulative ACK's sample away.
        Refused, a segment lost beside the one an RTO resent waited for a second RTO.
        Linux (tcp_rack_advance) tests a cumulatively acknowledged retransmission by
        RACK.min_rtt alone, as here. Called before the rest of the ACK."""
        best: Sent | None = None
        for seg in self.rxt_sent:
            if (
                una < seg.end <= ack
                and seg.start < right
                and left < seg.end
                and not seg.lost
                and (best is None or seg.order > best.order)
            ):
                best = seg
        if best is not None and self._valid_sample(best, now, -1):
            self._rack_advance(best, best.end, now)

    def undo(self, cc: CongestionControl) -> CongestionControl:
        """The congestion controller to continue with: `cc`, or, when every
        retransmission of the last fast recovery has been reported by a D-SACK (RFC
        3708's detection: the recovery was spurious, reordering or delay mistaken for
        loss), the state from before its reduction, as Linux's D-SACK undo and the
        Eifel response (RFC 4015) restore it: cwnd never below what it has grown to
        since (RFC 9438 §4.9 restores CUBIC's state the same way)."""
        if not self.undo_dsacked or self.undo_ranges or self.in_recovery or self.rto_recovery:
            return cc
        prior = self.undo_cc
        self.undo_cc = None
        self.undo_dsacked = 0
        if prior is None or prior.mss != cc.mss:
            return cc
        self.dsack_undos += 1
        return cc.undone_by(prior)
