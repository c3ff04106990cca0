"""Timeouts after a retransmission timer fires: RACK's marking on an RTO (RFC 8985 §6.3),
and undoing a spurious one -- detected by F-RTO (RFC 5682 §3, the SACK-enhanced
variant) or by the timestamp echo (Eifel detection, RFC 3522), answered as RFC 4015 and
Linux do (the window from before the timeout, no go-back-N, new data next).

The spurious timeout is a delay spike on the fake network: for 30 ms the ACK path holds
its packets 450 ms longer (in order, as a queue that fills and drains), nothing is lost,
and the sender's RTO (about 240 ms on this 40 ms path) fires once before the ACKs come.
"""

from __future__ import annotations

import random

import pytest

from synack.tcp import Config
from synack.tcp.congestion import CongestionControl, NewReno
from synack.tcp.connection import Connection
from synack.tcp.recovery import Recovery
from synack.tcp.rtt import RttEstimator
from synack.testing.fakenet import FakeNetwork, Link, PacketEvent, connected_pair
from synack.wire.tcp import unpack_header

from .conftest import MSS, established, fire
from .test_retransmit import SACK_PEER, ack, flight, offsets

CLIENT, SERVER = "198.18.0.1", "198.18.0.2"
DELAY = 0.02  # one way: a 40 ms path
IN_ORDER = 1e-9  # a jitter this small takes the impaired path, which keeps packets in order
SPSS = 1460


class Run:
    """A bulk transfer from client to server, under way when `impair` is called; counts
    of the sender's state taken when its retransmission timer fires."""

    def __init__(self, timestamps: bool) -> None:
        self.net = FakeNetwork(seed=1, link=Link(delay=DELAY))
        cfg = Config(secret=b"spurious" * 4, timestamps=timestamps)
        self.client, self.server = connected_pair(self.net, cfg)
        self.payload = bytes(range(256)) * 1024 * 32  # 8 MiB
        self.sent = self.client.send(self.payload)
        self.got = bytearray()
        self.at_rto: list[dict[str, int]] = []
        self.net.set_app(CLIENT, self._feed)
        self.net.set_app(SERVER, lambda now: self.got.extend(self.server.receive()))
        timeout = self.client._retransmit_timeout

        def watched(now: float) -> None:
            self.at_rto.append({k: self.client.info()[k] for k in ("cwnd", "ssthresh")})
            timeout(now)

        self.client._retransmit_timeout = watched  # type: ignore[method-assign]
        self.net.run_for(0.2)  # slow start has grown cwnd well past the initial window
        assert self.client.info()["timeouts"] == 0
        self.before = {k: self.client.info()[k] for k in ("cwnd", "ssthresh")}

    def _feed(self, now: float) -> None:
        if self.sent < len(self.payload):
            self.sent += self.client.send(self.payload[self.sent :])

    def impair(self, src: str, dst: str, link: Link, seconds: float) -> None:
        t = self.net.now
        self.net.set_link(src, dst, link)
        # Back to the plain delay, still in order: what the spike held back goes first.
        after = Link(delay=DELAY, jitter=IN_ORDER)
        self.net.call_at(t + seconds, lambda: self.net.set_link(src, dst, after))

    def finish(self) -> Connection:
        self.net.run_until(lambda: len(self.got) == len(self.payload), 30.0, what="8 MiB")
        assert self.got == self.payload
        return self.client


@pytest.mark.parametrize("timestamps", [True, False], ids=["timestamps", "no-timestamps"])
def test_a_delay_spike_rto_is_undone_without_go_back_n(timestamps: bool) -> None:
    """The timer fires once; its retransmission of SND.UNA is the only one. The first
    ACK after it acknowledges data never retransmitted (F-RTO step 3b: "never-
    retransmitted data are (s)acked") and, with timestamps, echoes a TSval older than
    the retransmission (Eifel): the timeout was spurious. RFC 4015's response: cwnd and
    ssthresh as they were before it (the window has grown since, so no lower), and
    sending goes on with new data instead of resending the flight."""
    run = Run(timestamps)
    run.impair(SERVER, CLIENT, Link(delay=DELAY + 0.45, jitter=IN_ORDER), 0.03)
    run.net.run_for(1.0)
    info = run.client.info()
    assert info["timeouts"] == 1 and len(run.at_rto) == 1
    assert info["spurious_rtos"] == 1
    assert info["retransmits"] == 1
    assert info["fast_retransmits"] == 0
    assert info["cwnd"] >= run.at_rto[0]["cwnd"] >= run.before["cwnd"]
    assert info["ssthresh"] == run.before["ssthresh"]
    assert run.finish().info()["retransmits"] == 1


@pytest.mark.parametrize("timestamps", [True, False], ids=["eifel-alone", "nothing"])
def test_the_same_spike_without_f_rto(timestamps: bool) -> None:
    """F-RTO switched off at the timeout (the test clears it). With timestamps, Eifel
    detection alone still sees the spike: the first ACK that moves SND.UNA echoes a
    TSval older than the retransmission (RFC 3522). Without them nothing can tell that
    the originals arrived: the window stays reduced and go-back-N resends the flight
    the spike delayed -- what the undo saves."""
    run = Run(timestamps)
    rec: Recovery = run.client._rec
    timeout = run.client._retransmit_timeout

    def without_frto(now: float) -> None:
        timeout(now)
        rec.frto = False

    run.client._retransmit_timeout = without_frto  # type: ignore[method-assign]
    run.impair(SERVER, CLIENT, Link(delay=DELAY + 0.45, jitter=IN_ORDER), 0.03)
    run.net.run_for(1.0)
    info = run.client.info()
    assert info["timeouts"] == 1
    if timestamps:
        assert info["spurious_rtos"] == 1
        assert info["retransmits"] == 1
        assert info["ssthresh"] == run.before["ssthresh"]
    else:
        assert info["spurious_rtos"] == 0
        assert info["retransmits"] > 100
        assert info["ssthresh"] < run.before["cwnd"]


@pytest.mark.parametrize("timestamps", [True, False], ids=["timestamps", "no-timestamps"])
def test_a_genuine_loss_rto_is_not_undone(timestamps: bool) -> None:
    """The data path drops everything for 200 ms (the tail loss probe too); the RTO's
    retransmission gets through. Its ACK covers only what was retransmitted, and echoes
    the retransmission's own TSval: neither F-RTO nor Eifel calls it spurious, and the
    window stays reduced."""
    run = Run(timestamps)
    run.impair(CLIENT, SERVER, Link(delay=DELAY, loss=1.0), 0.2)
    run.net.run_for(1.0)
    info = run.client.info()
    assert info["timeouts"] == 1
    assert info["spurious_rtos"] == 0
    assert info["ssthresh"] < run.at_rto[0]["cwnd"]
    assert info["retransmits"] > 100  # the lost window, resent
    run.finish()


def test_rack_on_rto_marks_only_the_head_and_what_rack_rtt_says_is_lost() -> None:
    """RFC 8985 §6.3: on an RTO, "If SEG.SEQ == SND.UNA OR Segment.xmit_ts + RACK.rtt +
    RACK.reo_wnd - Now() <= 0: Segment.lost = TRUE". Four segments at t = 0.1, the first
    acknowledged at 0.2 (RACK.rtt = 0.1), two more sent at 0.45; the timer fires at 0.5.
    Segments 1-3 are lost; 4 and 5, sent 50 ms ago, are still in flight -- in the pipe,
    not resent. Without RACK the whole flight is deemed lost (RFC 6675 §5.1)."""
    for rack in (True, False):
        rtt = RttEstimator(1.0, 0.2, 120.0)
        rtt.sample(0.1)
        rec = Recovery(rtt, SPSS, rack=rack)
        rec.sack_ok = True
        rec.reset(0)
        cc = NewReno(SPSS)
        rec.on_transmit(0, 4 * SPSS, False, 0.1, 4 * SPSS, retransmit=False)
        rec.on_ack_advance(cc, SPSS, SPSS, 4 * SPSS, 0.2, 4 * SPSS, -1)
        rec.on_transmit(4 * SPSS, 6 * SPSS, False, 0.45, 6 * SPSS, retransmit=False)
        rec.on_rto(cc, SPSS, 6 * SPSS, 0.5, 1)
        if rack:
            assert rec.lost_edge == 4 * SPSS
            assert rec.pipe(SPSS, 6 * SPSS) == 2 * SPSS
        else:
            assert rec.lost_edge == 6 * SPSS
            assert rec.pipe(SPSS, 6 * SPSS) == 0
        # Either way the segment at SND.UNA goes at once, whatever the pipe says.
        assert rec.retransmissions(SPSS, 6 * SPSS, SPSS, cc.cwnd) == [(SPSS, 2 * SPSS)]


def test_an_ack_of_the_whole_flight_with_a_dsack_shows_the_timeout_spurious() -> None:
    """The ACK of a four-segment flight is lost; the RTO resends the first segment, which
    the peer already had. The answer acknowledges the whole flight, with a D-SACK of the
    duplicate (RFC 2883 §4.1.1): segments never retransmitted are acknowledged -- F-RTO's
    "never-retransmitted data are (s)acked" (RFC 5682 §3, as Linux applies it) -- so the
    timeout was spurious and its reduction is undone (RFC 4015): cwnd is the initial
    window again and four queued segments leave at once, not slow start from one."""
    s = established(rtt=0.1, sack=True, peer=SACK_PEER, tail_loss_probe=False)
    flight(s, 4)
    assert offsets(fire(s)) == [0]
    assert s.conn.cwnd == MSS
    s.conn.send(bytes(4 * MSS))
    s.at(0.55)
    out = ack(s, 4 * MSS, ((0, MSS),))
    assert s.conn.info()["spurious_rtos"] == 1
    assert s.conn.cwnd == 10 * MSS
    assert offsets(out) == [4 * MSS, 5 * MSS, 6 * MSS, 7 * MSS]


def unjustified_undos(
    seed: int, timestamps: bool, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, list[str]]:
    """1 MB over 20 ms with 10% loss each way: how many timeouts were undone, and those
    undone although no copy of SND.UNA's segment sent before the timeout ever arrived
    (the retransmission was needed: the loss was real)."""
    net = FakeNetwork(seed=seed, link=Link(delay=0.01))
    cfg = Config(secret=b"spurious" * 4, timestamps=timestamps)
    client, server = connected_pair(net, cfg)
    net.set_default_link(Link(delay=0.01, loss=0.1))
    sent_at: dict[int, float] = {}
    delivered: dict[int, list[float]] = {}  # seq -> send times of the copies delivered
    held: list[bytes | bytearray] = []

    def tap(now: float, event: str, data: bytes | bytearray, src: bytes, dst: bytes) -> None:
        if src != client.local_ip or len(data) <= (data[12] >> 4) * 4:
            return
        if event == PacketEvent.SENT:
            sent_at[id(data)] = now
            held.append(data)
        elif event == PacketEvent.DELIVERED:
            delivered.setdefault(unpack_header(data)[2], []).append(sent_at[id(data)])

    net.tap = tap
    rtos: list[tuple[float, int]] = []
    timeout = client._retransmit_timeout

    def watched(now: float) -> None:
        rtos.append((now, client.snd_una & 0xFFFFFFFF))
        timeout(now)

    client._retransmit_timeout = watched  # type: ignore[method-assign]
    undo = Recovery.undo_timeout
    wrong: list[str] = []
    count = 0

    def checked(self: Recovery, cc: CongestionControl, una: int) -> CongestionControl:
        nonlocal count
        count += 1
        at, seq = rtos[-1]
        if not any(t < at for t in delivered.get(seq, [])):
            wrong.append(f"seed {seed}: the RTO at {at:.3f} was undone, its loss was real")
        return undo(self, cc, una)

    size = 1 << 20
    payload = random.Random(seed).randbytes(size)
    got = bytearray()
    queued = client.send(payload)

    def feed(now: float) -> None:
        nonlocal queued
        if queued < size:
            queued += client.send(payload[queued:])

    net.set_app(CLIENT, feed)
    net.set_app(SERVER, lambda now: got.extend(server.receive()))
    with monkeypatch.context() as patch:
        patch.setattr(Recovery, "undo_timeout", checked)
        net.run_until(lambda: len(got) == size, 600.0, what="1 MB at 10% loss")
    assert got == payload
    return count, wrong


@pytest.mark.parametrize("timestamps", [True, False], ids=["timestamps", "no-timestamps"])
def test_under_random_loss_only_spurious_timeouts_are_undone(
    timestamps: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Random loss of 10% each way times out now and then; some timeouts are spurious
    (the segment arrived, its ACKs were lost). Each one undone must be: a copy of the
    segment at SND.UNA sent before the timer fired reached the receiver. Linux's F-RTO
    (a new SACK, or a cumulative ACK on the first ACK, of data sent before the timeout)
    also undid timeouts whose segment was lost while only the later segments' ACKs
    were (without timestamps, seeds 0-7, the cumulative rule on the first ACK alone
    undid two: seeds 0 and 3); with timestamps the echo decides (Eifel), without them
    D-SACKs (RFC 3708) and RFC 5682's two-ACK F-RTO."""
    found = [unjustified_undos(seed, timestamps, monkeypatch) for seed in (2, 3)]
    assert sum(count for count, _ in found) > 0  # timeouts were undone
    assert [line for _, wrong in found for line in wrong] == []
