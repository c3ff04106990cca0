"""SACK compression at the receiver (Config.comp_sack_nr, Linux's tcp_comp_sack_nr):
while data is held out of order, the first three duplicate ACKs for one RCV.NXT go at
once and later ones are folded into one ACK after min(comp_sack_delay, SRTT/20); a D-SACK,
a second run of arrivals, or as many held ACKs as segments arrive within that delay at
the rate of the last round trip (at most comp_sack_nr) send at once. Under random loss
a receiver nearly always holds a hole, so without it every segment draws its own ACK; a
window of a few segments is never folded, since one lost ACK would then stall it."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

import synack.tcp.connection as connection_module
from synack.tcp.config import Config
from synack.testing.bottleneck import CLIENT, SERVER, bottleneck_run
from synack.testing.fakenet import FakeNetwork
from synack.wire.checksum import address_bytes
from synack.wire.tcp import Segment, unpack_header

from .conftest import REMOTE_ISS, SEND, A, P, Sock, established, fire, recv, seg, send
from .test_retransmit import SACK_PEER

MSS = 100  # the receiver's MSS: the tests' 100-byte segments are full ones
PRIMED = 50_000  # bytes the receiver took in over the round trip before each test
BASE = REMOTE_ISS + 1 + PRIMED
RTT = 0.04  # SRTT/20 = 2 ms: the 1 ms default delay applies


def prime(s: Sock, rtt: float, nbytes: int = PRIMED) -> None:
    """`nbytes` arrive in full segments over one round trip: an out-of-order one first
    (where the rate measurement starts), the rest in order behind it, and the round
    trip passes. The application reads them all."""
    start = REMOTE_ISS + 1
    send(s, seg(SEND, seq=start + MSS, flags=A | P, payload=bytes(MSS)))
    for offset in [0, *range(2 * MSS, nbytes, MSS)]:
        send(s, seg(SEND, seq=start + offset, flags=A | P, payload=bytes(MSS)))
    recv(s)
    assert s.conn.receive() == bytes(nbytes)
    s.at(s.now + rtt)


def receiver(rtt: float = RTT, primed: int = PRIMED, **cfg: Any) -> Sock:
    """A receiver whose last round trip brought `primed` bytes: by default 500 segments
    in 40 ms, 12.5 a millisecond, so up to 11 ACKs may be folded into the twelfth."""
    s = established(peer=SACK_PEER, rtt=rtt, sack=True, mss=MSS, **cfg)
    prime(s, rtt, primed)
    return s


def arrive(s: Sock, offset: int, n: int = MSS) -> list[Segment]:
    """The peer's `n` bytes at `offset` arrive; what we send at once."""
    send(s, seg(SEND, seq=BASE + offset, flags=A | P, payload=bytes(n)))
    return recv(s)


def sack(segment: Segment) -> list[tuple[int, int]]:
    return [(lo - BASE, hi - BASE) for lo, hi in segment.options.sack_blocks]


def test_after_three_duplicate_acks_the_rest_wait_for_the_timer() -> None:
    s = receiver()
    held_from = s.now
    # A hole at 0-99; 100-999 arrive in order after it, one run.
    for i in range(3):
        [dup] = arrive(s, 100 + 100 * i)
        assert dup.ack == BASE and sack(dup) == [(100, 200 + 100 * i)]
    for i in range(3, 9):
        assert arrive(s, 100 + 100 * i) == []
    assert s.conn.get_timer() == pytest.approx(held_from + 0.001)
    [folded] = fire(s)
    assert folded.ack == BASE and sack(folded) == [(100, 1000)]
    assert s.conn.get_timer() is None  # nothing more is owed


def test_the_delay_is_a_twentieth_of_the_rtt_when_that_is_shorter() -> None:
    s = receiver(rtt=0.01, primed=20_000)  # 200 segments a round trip: 10 a delay
    for i in range(4):
        arrive(s, 100 + 100 * i)
    assert s.conn.get_timer() == pytest.approx(s.now + 0.0005)


def test_comp_sack_nr_held_acks_send_the_next_at_once() -> None:
    s = receiver(comp_sack_nr=2)
    for i in range(3):
        assert len(arrive(s, 100 + 100 * i)) == 1
    assert arrive(s, 400) == []
    assert arrive(s, 500) == []
    [ack] = arrive(s, 600)  # two were held: this one goes
    assert sack(ack) == [(100, 700)]
    assert arrive(s, 700) == []  # and holding starts again


def test_no_more_are_held_than_arrive_within_the_delay() -> None:
    # 160 segments in 40 ms: 4 a millisecond, so three held ACKs and the fourth goes.
    s = receiver(primed=16_000)
    for i in range(3):
        assert len(arrive(s, 100 + 100 * i)) == 1
    for i in range(3, 6):
        assert arrive(s, 100 + 100 * i) == []
    [ack] = arrive(s, 700)
    assert sack(ack) == [(100, 800)]


@pytest.mark.parametrize("primed", [0, 7_900])
def test_a_window_of_few_segments_is_never_folded(primed: int) -> None:
    # Under two segments a delay (79 in 40 ms; or nothing measured yet): even a burst
    # arriving at one instant draws one ACK a segment, as RFC 5681 §4.2 asks.
    s = established(peer=SACK_PEER, rtt=RTT, sack=True, mss=MSS)
    if primed:
        prime(s, RTT, primed)
    for i in range(10):
        [dup] = arrive(s, 100 + 100 * i)
        assert sack(dup) == [(100, 200 + 100 * i)]
    assert s.conn.get_timer() is None or s.conn.get_timer() > s.now + 0.01


def test_the_rate_is_that_of_the_faster_of_the_last_two_round_trips() -> None:
    s = receiver()
    for i in range(4):
        arrive(s, 100 + 100 * i)  # three sent, one held
    fire(s)
    # A round trip with next to nothing arrived: the one before still counts.
    s.at(s.now + RTT)
    assert arrive(s, 500) == []
    [folded] = fire(s)
    assert sack(folded) == [(100, 600)]
    # Two such round trips: the window is now a handful, and nothing is folded.
    s.at(s.now + RTT)
    for i in range(5, 9):
        [dup] = arrive(s, 100 + 100 * i)
        assert sack(dup) == [(100, 200 + 100 * i)]


def test_a_second_run_sends_both_blocks_at_once() -> None:
    s = receiver()
    for i in range(4):
        arrive(s, 100 + 100 * i)  # three sent, one held: 100-499
    [ack] = arrive(s, 600)  # another hole at 500-599: a second run
    assert sack(ack) == [(600, 700), (100, 500)]
    assert s.conn.get_timer() is None


def test_a_duplicate_is_reported_at_once() -> None:
    s = receiver()
    for i in range(4):
        arrive(s, 100 + 100 * i)
    [dsack] = arrive(s, 200)  # already held: RFC 2883's D-SACK
    assert sack(dsack)[0] == (200, 300)


def test_filling_the_hole_acknowledges_at_once_and_counts_again() -> None:
    s = receiver()
    for i in range(5):
        arrive(s, 100 + 100 * i)
    [ack] = arrive(s, 0)  # RFC 5681 §4.2: a segment that fills a gap, at once
    assert ack.ack == BASE + 600 and sack(ack) == []
    for i in range(3):  # a new hole at 600-699: three duplicate ACKs again
        assert len(arrive(s, 700 + 100 * i)) == 1
    assert arrive(s, 1000) == []


def test_zero_turns_it_off() -> None:
    s = receiver(comp_sack_nr=0)
    for i in range(10):
        [dup] = arrive(s, 100 + 100 * i)
        assert sack(dup) == [(100, 200 + 100 * i)]


def test_without_sack_every_duplicate_ack_goes_at_once() -> None:
    s = established(rtt=RTT, mss=MSS)
    prime(s, RTT)
    for i in range(10):
        [dup] = arrive(s, 100 + 100 * i)
        assert dup.ack == BASE


def bbr_run(
    comp_sack_nr: int, monkeypatch: pytest.MonkeyPatch, rate: float = 10e6, loss: float = 0.05
) -> tuple[int, int, int]:
    """A BBR bulk run at `loss` each way, `rate` bytes/s, 40 ms: the receiver's ACKs, the
    sender's data segments, and its retransmissions."""
    original = connection_module.Connection.__init__

    def init(self: Any, local: Any, remote: Any, config: Config | None = None) -> None:
        changed = dataclasses.replace(config or Config(), comp_sack_nr=comp_sack_nr)
        original(self, local, remote, changed)

    acks = [0]
    data = [0]
    receiver_ip = address_bytes(SERVER)
    sender_ip = address_bytes(CLIENT)
    transmit = FakeNetwork._transmit

    def tap(net: FakeNetwork, out: Any, now: float) -> None:
        out = list(out)
        for segment, src, _dst in out:
            pure = len(segment) == unpack_header(segment)[4]
            if src == receiver_ip and pure:
                acks[0] += 1
            elif src == sender_ip and not pure:
                data[0] += 1
        transmit(net, out, now)

    with monkeypatch.context() as patch:
        patch.setattr(connection_module.Connection, "__init__", init)
        patch.setattr(FakeNetwork, "_transmit", tap)
        run = bottleneck_run(["bbr"], rate, 0.04, loss=loss, warmup=0.3, measure=1.0)
    return acks[0], data[0], run.flows[0].retransmits


def test_under_random_loss_under_a_third_of_the_acks_and_no_more_retransmissions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    acks_off, _, rxt_off = bbr_run(0, monkeypatch)
    acks_on, _, rxt_on = bbr_run(44, monkeypatch)
    # 7 segments a millisecond, a new hole every 20: one ACK per 1 ms, per 7 segments
    # or per hole.
    assert acks_on < acks_off / 3, (acks_on, acks_off)
    # Each ACK still carries every block that changed since the one before it: what
    # the sender resends is what was lost, give or take what a lost ACK hid.
    assert rxt_on < rxt_off * 1.15, (rxt_on, rxt_off)


def test_a_large_window_draws_an_ack_per_eight_segments_or_fewer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 40 MB/s, 40 ms, 1% each way: ~1000 segments a round trip, ~25 within a delay.
    # Without compression nearly every segment draws its own ACK (0.96 a segment).
    acks, segments, _ = bbr_run(44, monkeypatch, rate=40e6, loss=0.01)
    assert acks * 8 < segments, (acks, segments)


def test_negative_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="comp_sack"):
        Config(comp_sack_nr=-1)
    with pytest.raises(ValueError, match="comp_sack"):
        Config(comp_sack_delay=-0.001)
