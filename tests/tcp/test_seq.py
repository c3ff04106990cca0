"""Sequence numbers modulo 2**32 (RFC 9293 §3.4), and a connection whose stream crosses the wrap."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import synack.tcp.connection
from synack.tcp import State
from synack.wire.seq import MASK, MOD, Seq, seq_diff, seq_ge, seq_gt, seq_le, seq_lt, unwrap

from .conftest import (
    MSS,
    RECV,
    REMOTE_ISS,
    SEND,
    A,
    P,
    S,
    recv,
    recv_nothing,
    seg,
    send,
    state,
    syn_sent,
)

TOP = MOD - 1  # the last number before the wrap

u32 = st.integers(0, MASK)
distance = st.integers(-(1 << 31) + 1, (1 << 31) - 1)


def test_comparisons_across_the_wrap() -> None:
    assert seq_lt(TOP, 0) and seq_gt(0, TOP)
    assert seq_le(TOP - 5, 4) and seq_ge(4, TOP - 5)
    assert seq_diff(5, TOP - 4) == 10 and seq_diff(TOP - 4, 5) == -10
    assert not seq_lt(7, 7) and seq_le(7, 7) and seq_ge(7, 7)


@settings(max_examples=500, deadline=None, derandomize=True)
@given(u32, distance)
def test_functions_follow_the_signed_distance(a: int, d: int) -> None:
    b = (a + d) & MASK
    assert seq_diff(b, a) == d
    assert seq_lt(a, b) == (d > 0) == seq_gt(b, a)
    assert seq_le(a, b) == (d >= 0) == seq_ge(b, a)
    assert (Seq(a) < Seq(b)) == seq_lt(a, b)
    assert (Seq(a) <= Seq(b)) == seq_le(a, b)
    assert (Seq(a) > Seq(b)) == seq_gt(a, b)
    assert (Seq(a) >= Seq(b)) == seq_ge(a, b)
    assert Seq(b) - Seq(a) == d
    assert Seq(a) + d == Seq(b)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(u32, u32, st.integers(0, 1 << 33))
def test_unwrap_finds_the_nearest_congruent_number(value: int, low: int, high: int) -> None:
    near = (high << 32) | low if high else low
    got = unwrap(value, near)
    assert got & MASK == value
    assert -(1 << 31) <= got - near < 1 << 31


def test_unwrap_across_the_wrap() -> None:
    assert unwrap(5, MOD - 10) == MOD + 5
    assert unwrap(MOD - 5, MOD + 3) == MOD - 5
    assert unwrap(100, 90) == 100


def test_seq_type() -> None:
    top = Seq(TOP)
    assert top + 1 == Seq(0)
    assert Seq(0) - 1 == Seq(TOP)
    assert Seq(MOD + 7) == Seq(7) and hash(Seq(MOD + 7)) == hash(Seq(7))
    assert int(top) == TOP and [10, 20][Seq(1)] == 20
    assert Seq(3) != 3  # a Seq is not a plain int
    assert repr(Seq(9)) == "Seq(9)"
    assert sorted([Seq(3), Seq(TOP), Seq(1)]) == [Seq(TOP), Seq(1), Seq(3)]


def test_numbers_half_the_space_apart_are_unordered() -> None:
    a, b = Seq(0), Seq(1 << 31)
    assert not a < b and not b < a
    assert not a > b and not b > a


def test_in_window_across_the_wrap() -> None:
    start = Seq(TOP - 9)
    assert Seq(TOP - 9).in_window(start, 20)
    assert Seq(9).in_window(start, 20)
    assert not Seq(10).in_window(start, 20)
    assert not Seq(TOP - 10).in_window(start, 20)
    assert not start.in_window(start, 0)


# ---------------------------------------------------------------------------- a connection at the wrap


@pytest.fixture
def iss_near_the_top(monkeypatch: pytest.MonkeyPatch) -> int:
    iss = MOD - 2000
    monkeypatch.setattr(synack.tcp.connection, "make_isn", lambda *args: iss)
    return iss


def test_sending_across_the_wrap(iss_near_the_top: int) -> None:
    iss = iss_near_the_top
    s = syn_sent()
    assert s.conn.iss == iss
    send(s, seg(SEND, seq=REMOTE_ISS, ack=iss + 1, flags=S | A, mss=MSS))
    assert recv(s) == [seg(RECV, seq=iss + 1, ack=REMOTE_ISS + 1)]
    assert state(s) is State.ESTABLISHED

    data = bytes(range(256)) * 12  # 3072 bytes: the second segment straddles 2**32
    assert s.conn.send(data) == len(data)
    sent = recv(s)
    assert [x.seq for x in sent] == [(iss + 1 + i * MSS) & MASK for i in range(3)]
    assert sent[1].seq > MOD - MSS and sent[2].seq < MSS  # on the wire: wrapped
    assert b"".join(x.payload for x in sent) == data
    assert [x.flags for x in sent] == [A, A, A | P]

    # The peer acknowledges with wrapped numbers; SND.UNA keeps growing past 2**32.
    send(s, seg(SEND, ack=iss + 1 + 2 * MSS))
    assert s.conn.snd_una == iss + 1 + 2 * MSS > MOD
    send(s, seg(SEND, ack=iss + 1 + len(data)))
    assert s.conn.snd_una == iss + 1 + len(data)
    assert s.conn.unacked == 0 and s.conn.get_timer() is None
    recv_nothing(s)


def test_receiving_across_the_wrap() -> None:
    # The test plays the peer, so it picks an initial sequence number near the top.
    irs = MOD - 700
    s = syn_sent()
    send(s, seg(SEND, seq=irs, flags=S | A, mss=MSS))
    assert recv(s) == [seg(RECV, ack=irs + 1)]
    chunks = [bytes([i]) * 500 for i in range(4)]  # 2000 bytes: 2**32 falls in the 2nd
    for i, chunk in enumerate(chunks):
        send(s, seg(SEND, seq=irs + 1 + 500 * i, payload=chunk))
        # The first segments of a connection are acknowledged at once (quick ACKs).
        assert recv(s) == [seg(RECV, ack=irs + 1 + 500 * (i + 1), window=65535 - 500 * (i + 1))]
    assert s.conn.rcv_nxt == irs + 1 + 2000 > MOD
    assert s.conn.receive() == b"".join(chunks)

    # An old duplicate from before the wrap is still recognised as old, and answered
    # with the current ACK (the window has reopened: the data was read).
    send(s, seg(SEND, seq=irs + 1, payload=chunks[0]))
    assert recv(s) == [seg(RECV, ack=irs + 1 + 2000)]
    assert s.conn.receive() == b""
