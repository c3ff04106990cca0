"""Tunables of a connection, with defaults chosen as Linux chooses them where the RFCs leave room."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Config:
    # Maximum segment size we announce (RFC 9293 §3.7.1): the MTU minus 40 bytes of
    # IPv4 and TCP headers. With timestamps each segment carries 12 bytes of options,
    # so the payload per full segment is 12 bytes less (1448 for the default).
    mss: int = 1460
    # Socket buffer sizes in bytes. Buffers grow as data arrives, so a large limit
    # costs nothing on an idle connection.
    send_buffer: int = 2 * 1024 * 1024
    receive_buffer: int = 2 * 1024 * 1024

    # Options offered in our SYN (each is used only if the peer offers it too).
    window_scaling: bool = True  # RFC 7323 §2
    sack: bool = True  # RFC 2018
    timestamps: bool = True  # RFC 7323 §3

    # Fill in and verify the TCP checksum. A carrier that already protects every
    # segment end to end (a UDP checksum) may switch this off as NICs offload it.
    checksum: bool = True

    # The core's shortcuts: header prediction on receive (an in-order data segment or a
    # pure ACK of new data handled in one pass, RFC 7323 Appendix A), the burst and
    # pure-ACK packers with arithmetic checksums on send, and the cheap "nothing to
    # send" answer. Off, every segment takes the full path of RFC 9293 §3.10.7.4 and is
    # built one at a time by the general builder. Nothing observable may differ
    # (tests/tcp/test_fastpath.py proves it); turn it off to check that, or to debug
    # with one code path instead of two.
    header_prediction: bool = True
    # For a driver that sends with gathered writes (sendmsg of several buffers): a data
    # segment of the fast path whose payload is this many bytes or more comes out of
    # segments_to_send as (header, view of the send buffer) instead of one joined
    # `bytes`, sparing a copy of every byte sent (a sixth of a 64 KiB-segment sender's
    # CPU). 0, the default, gives every segment as `bytes`, as every other driver needs.
    gather_from: int = 0

    # Nagle's algorithm (RFC 9293 §3.7.4) unless no_delay, like TCP_NODELAY.
    no_delay: bool = False

    # "newreno" (RFC 5681, RFC 6582), "cubic" (RFC 9438) or "bbr" (BBR v1, paced; see
    # synack.tcp.bbr). CUBIC is the default, as in Linux: on a clean path it fills the
    # link as BBR does, and it is the known quantity beside the other loss-based flows
    # of the Internet; our BBR, with its queue-gated inflight_hi, leaves CUBIC 34-82% of
    # a one-BDP buffer in most rows on the fake network but 16-20% at 5-10 MB/s and
    # 100 ms (docs/benchmarks.md). Choose "bbr" for a lossy path (Wi-Fi, mobile):
    # it keeps >= 80% of the bottleneck at 1% and 5% random loss, where CUBIC falls to
    # a few percent to 40% (docs/benchmarks.md).
    congestion_control: str = "cubic"
    # Initial window in segments (RFC 6928).
    initial_window: int = 10

    # Tail loss probes (RFC 8985 §7): when the ACKs stop short of the end of a flight,
    # send one probe segment about two round trips later so that the loss of the last
    # segments is repaired by SACK recovery rather than by the RTO. Needs SACK. Off,
    # the classic RFC 6298/RFC 6675 behaviour, for comparison.
    tail_loss_probe: bool = True
    # RACK (RFC 8985 §6): a segment is deemed lost once a segment sent after it has been
    # delivered and a reordering window (a quarter of the minimum RTT, widened by D-SACKs)
    # has passed, instead of after three duplicate ACKs; it also finds lost
    # retransmissions and losses at the tail. Needs SACK. Off, RFC 6675's DupThresh.
    rack: bool = True
    # Proportional Rate Reduction (RFC 9937, which obsoletes RFC 6937): during fast
    # recovery, send in proportion to what is delivered so that the flight comes down to
    # ssthresh smoothly. Needs SACK. Off, RFC 6675's cwnd - pipe.
    prr: bool = True
    # Added to the loss probe's 2 SRTT (RFC 8985 §7.2) while more than one segment is in
    # flight. None: the driver's choice. The core takes Linux's 2 ms (TCP_TIMEOUT_MIN_US
    # in tcp_schedule_loss_probe), which suits a stack whose ACKs leave at once, as the
    # kernel's do and as they do on the fake network. The UDP carriage takes 10 ms
    # (drivers/engine.py): there the ACKs leave from a process, which its application and
    # the scheduler hold for milliseconds at a time.
    probe_timeout_min: float | None = None

    # Retransmission timeout bounds (RFC 6298). RFC 6298 §2.4 says the minimum
    # SHOULD be 1 s; like Linux we default to 200 ms, which the RFC permits and
    # which today's networks and loss recovery are tuned for, and like Linux's
    # tcp_rto_min it bounds the RTO's variance term: RTO >= SRTT + rto_min.
    rto_initial: float = 1.0
    rto_min: float = 0.2
    rto_max: float = 120.0
    # Retransmissions of one segment before the connection is abandoned
    # (RFC 9293 §3.8.3's R2; Linux's tcp_retries2).
    max_retransmits: int = 15
    # SYN retransmissions before giving up: 7 keeps trying for 255 s, as RFC 9293 §3.8.3
    # requires ("at least 3 minutes", MUST-23); Linux's default of 6 stops at 127 s.
    syn_retries: int = 7
    synack_retries: int = 5  # SYN-ACK retransmissions (Linux tcp_synack_retries)
    # Abort when data stays unacknowledged this long (RFC 5482's USER TIMEOUT); None: off.
    user_timeout: float | None = None

    # Maximum segment lifetime; TIME-WAIT lasts 2*MSL (RFC 9293 §3.4.2). Linux uses 60 s in all.
    msl: float = 30.0
    # How long a connection closed by its user may sit in FIN-WAIT-2 (Linux tcp_fin_timeout).
    fin_wait_2_timeout: float = 60.0

    # Delayed acknowledgements (RFC 9293 §3.8.6.3, RFC 5681 §4.2). See connection.py
    # for why 40 ms: short enough never to throttle a transfer, long enough to pair ACKs.
    delayed_ack: bool = True
    delayed_ack_timeout: float = 0.04
    # SACK compression (Linux's tcp_comp_sack_nr and tcp_comp_sack_delay_ns): while
    # out-of-order data is held, after the first three duplicate ACKs for one RCV.NXT,
    # up to this many further ACKs are folded into one sent after 5% of the RTT or
    # comp_sack_delay, whichever is less; never more than the segments that arrive
    # within that delay at the faster of the last two round trips' rates, so a window
    # of fewer than 2 * RTT/delay segments is never folded. Under random loss a
    # receiver has a hole
    # nearly always and would otherwise acknowledge every segment at once, each ACK
    # costing the sender a pass through recovery and rate sampling. 0: off, one
    # immediate duplicate ACK per out-of-order segment (RFC 5681 §4.2's SHOULD).
    comp_sack_nr: int = 44
    comp_sack_delay: float = 0.001

    # Keepalive (RFC 9293 §3.8.4, RFC 1122 §4.2.3.6): off by default, as the RFC requires.
    keepalive: bool = False
    keepalive_idle: float = 7200.0
    keepalive_interval: float = 75.0
    keepalive_count: int = 9

    # RFC 5961 §7: at most this many challenge ACKs per second per connection.
    challenge_ack_limit: int = 10

    # Key for RFC 6528 initial sequence numbers and SYN cookies; None draws a random one.
    secret: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not 88 <= self.mss <= 65495:
            raise ValueError(f"mss {self.mss} out of range 88..65495")
        if self.congestion_control not in ("newreno", "cubic", "bbr"):
            raise ValueError(f"unknown congestion control {self.congestion_control!r}")
        for name in ("send_buffer", "receive_buffer"):
            if getattr(self, name) < 2 * self.mss:
                raise ValueError(f"{name} must hold at least two segments")
        if not 0 < self.rto_min <= self.rto_initial <= self.rto_max:
            raise ValueError("need 0 < rto_min <= rto_initial <= rto_max")
        if self.probe_timeout_min is not None and self.probe_timeout_min < 0:
            raise ValueError("probe_timeout_min must not be negative")
        if self.comp_sack_nr < 0 or self.comp_sack_delay < 0:
            raise ValueError("comp_sack_nr and comp_sack_delay must not be negative")
        if self.initial_window < 1:
            raise ValueError("initial_window must be at least 1 segment")
