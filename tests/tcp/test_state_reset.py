"""RST generation and acceptance (RFC 9293 §3.10.7) and the blind-attack defences of
RFC 5961: challenge ACKs for in-window RSTs and for SYNs, ACK validation, rate limiting."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from synack.tcp import ConnectionReset, State
from synack.wire.seq import MASK

from .conftest import (
    LOCAL_ISS,
    RECV,
    REMOTE_ISS,
    SEND,
    A,
    F,
    P,
    R,
    S,
    Sock,
    close_wait,
    closed,
    closing,
    established,
    events,
    fin_wait_1,
    fin_wait_2,
    last_ack,
    listen,
    recv,
    recv_nothing,
    seg,
    send,
    shape,
    state,
    syn_received,
    syn_sent,
    time_wait,
)

SYNCHRONIZED: dict[str, Callable[..., Sock]] = {
    "ESTABLISHED": established,
    "FIN-WAIT-1": fin_wait_1,
    "FIN-WAIT-2": fin_wait_2,
    "CLOSE-WAIT": close_wait,
    "CLOSING": closing,
    "LAST-ACK": last_ack,
    "TIME-WAIT": time_wait,
}
# States where a reset reaches the user as "connection reset" (§3.10.7.4 second).
RESET_REPORTED = ("ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "CLOSE-WAIT")
# States entered by receiving the peer's FIN, whose number is RCV.NXT - 1 there.
AFTER_PEER_FIN = ("CLOSE-WAIT", "CLOSING", "LAST-ACK")


def challenge_ack(s: Sock) -> tuple[int, int, int, int]:
    """The shape of <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> (RFC 5961 §3.2)."""
    return shape(seg(RECV, seq=s.conn.snd_nxt, ack=s.conn.rcv_nxt))


def peer(s: Sock, **changes: object) -> None:
    """A segment from the peer at its current SND.NXT (our RCV.NXT), acknowledging all."""
    fields: dict[str, object] = {"seq": s.conn.rcv_nxt, "ack": s.conn.snd_nxt}
    fields.update(changes)
    send(s, seg(SEND, **fields))


# ---------------------------------------------------------------------------- acceptance


@pytest.mark.parametrize("name", SYNCHRONIZED)
def test_rst_at_rcv_nxt_resets(name: str) -> None:
    s = SYNCHRONIZED[name]()
    events(s)
    peer(s, flags=R, ack=0)
    recv_nothing(s)
    assert state(s) is State.CLOSED
    if name in RESET_REPORTED:
        assert events(s) == ["Reset(ConnectionReset)", "Closed"]
    else:
        # CLOSING, LAST-ACK, TIME-WAIT: "enter the CLOSED state, delete the TCB, and return"
        assert events(s) == ["Closed"]


def test_rst_with_ack_bit_resets_too() -> None:
    s = established()
    peer(s, flags=R | A)
    assert state(s) is State.CLOSED


@pytest.mark.parametrize("name", SYNCHRONIZED)
def test_rst_in_window_but_not_exact_draws_a_challenge_ack(name: str) -> None:
    # RFC 5961 §3.2: "If the RST bit is set and the sequence number exactly matches the next
    # expected sequence number (RCV.NXT), then TCP MUST reset the connection ... Otherwise
    # (the sequence number is within the window) TCP MUST send an acknowledgment"
    s = SYNCHRONIZED[name]()
    before = state(s)
    peer(s, seq=s.conn.rcv_nxt + 1, flags=R, ack=0)
    assert [shape(x) for x in recv(s)] == [challenge_ack(s)]
    assert state(s) is before


@pytest.mark.parametrize(
    ("name", "where"),
    [
        (name, where)
        for where in (-1, 70_000, 1 << 31)
        for name in SYNCHRONIZED
        # RCV.NXT - 1 after the peer's FIN is its FIN's number: see the next test.
        if not (where == -1 and name in AFTER_PEER_FIN)
    ],
)
def test_rst_outside_the_window_is_dropped_silently(name: str, where: int) -> None:
    s = SYNCHRONIZED[name]()
    before = state(s)
    peer(s, seq=(s.conn.rcv_nxt + where) & MASK, flags=R, ack=0)
    recv_nothing(s)
    assert state(s) is before


@pytest.mark.parametrize("name", AFTER_PEER_FIN)
def test_rst_at_the_peer_fin_number_resets_after_its_fin(name: str) -> None:
    """RFC 5961 §3.2: "If the RST bit is set and the sequence number is outside the
    current receive window, silently drop the segment" -- with one exception, Linux's
    (tcp_reset_check): after the peer's FIN, a RST at RCV.NXT - 1, the FIN's own number.

    A peer that aborts while its FIN is unacknowledged sends the RST at the FIN's number
    (BSD stacks do, and so do we: see test_state_close); when the FIN did arrive, that
    number is just left of our window. Taking it costs a blind attacker nothing: it is
    one exact number, as RCV.NXT is."""
    s = SYNCHRONIZED[name]()
    events(s)
    peer(s, seq=s.conn.rcv_nxt - 1, flags=R, ack=0)
    recv_nothing(s)
    assert state(s) is State.CLOSED
    if name in RESET_REPORTED:
        assert events(s) == ["Reset(ConnectionReset)", "Closed"]
    else:
        assert events(s) == ["Closed"]


def test_rst_in_syn_received_needs_the_exact_number() -> None:
    s = syn_received()
    send(s, seg(SEND, seq=REMOTE_ISS + 10, flags=R, ack=0))
    assert [shape(x) for x in recv(s)] == [challenge_ack(s)]
    assert state(s) is State.SYN_RECEIVED


def test_after_a_reset_calls_report_it() -> None:
    s = established()
    peer(s, flags=R, ack=0)
    with pytest.raises(ConnectionReset):
        s.conn.receive()
    with pytest.raises(ConnectionReset):
        s.conn.send(b"x")
    assert s.conn.get_timer() is None


def test_reset_drops_queued_data_and_timers() -> None:
    s = established()
    s.conn.send(bytes(100_000))
    assert recv(s)
    peer(s, seq=REMOTE_ISS + 1, ack=LOCAL_ISS + 1, flags=R)
    assert state(s) is State.CLOSED
    assert s.conn.get_timer() is None
    recv_nothing(s)


# ---------------------------------------------------------------------------- generation


def test_rst_generation_when_no_connection_is_synchronized() -> None:
    """§3.10.7.1-3 in one table: what each non-synchronized state answers."""
    cases: list[tuple[Callable[..., Sock], dict[str, object], list[tuple[int, int, int, int]]]] = [
        # CLOSED: no ACK bit -> <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
        (closed, {"flags": P, "ack": 0, "payload": b"abc"}, [(R | A, 0, REMOTE_ISS + 4, 0)]),
        # CLOSED: ACK bit -> <SEQ=SEG.ACK><CTL=RST>
        (closed, {"ack": 777}, [(R, 777, 0, 0)]),
        # CLOSED: a RST is never answered
        (closed, {"flags": R, "ack": 0}, []),
        # LISTEN: an ACK is bad -> <SEQ=SEG.ACK><CTL=RST>
        (listen, {"ack": 555}, [(R, 555, 0, 0)]),
        # LISTEN: a FIN alone is dropped
        (listen, {"flags": F, "ack": 0}, []),
        # SYN-SENT: an unacceptable ACK -> <SEQ=SEG.ACK><CTL=RST>
        (syn_sent, {"ack": LOCAL_ISS + 9}, [(R, LOCAL_ISS + 9, 0, 0)]),
        # SYN-SENT: ... "unless the RST bit is set, if so drop the segment"
        (syn_sent, {"flags": R | A, "ack": LOCAL_ISS + 9}, []),
        # SYN-RECEIVED: an unacceptable ACK -> <SEQ=SEG.ACK><CTL=RST>
        (syn_received, {"ack": LOCAL_ISS + 9}, [(R, LOCAL_ISS + 9, 0, 0)]),
    ]
    for build, fields, expected in cases:
        s = build()
        send(s, seg(SEND, **fields))
        got = recv(s)
        assert [shape(x) for x in got] == [
            (flags, seq & MASK, ack & MASK, n) for flags, seq, ack, n in expected
        ], (build.__name__, fields)
        assert all(x.window == 0 and not x.options.timestamps for x in got)


# ---------------------------------------------------------------------------- SYN (RFC 5961 §4)


@pytest.mark.parametrize("name", SYNCHRONIZED)
@pytest.mark.parametrize("where", [0, 5, -1])
def test_syn_in_a_synchronized_state_draws_a_challenge_ack(name: str, where: int) -> None:
    # RFC 5961 §4.2 / RFC 9293 §3.10.7.4 fourth: "If the SYN bit is set, irrespective of the
    # sequence number, TCP endpoints MUST send a 'challenge ACK' to the remote peer"
    s = SYNCHRONIZED[name]()
    before = state(s)
    events(s)
    peer(s, seq=s.conn.rcv_nxt + where, flags=S, ack=0)
    assert [shape(x) for x in recv(s)] == [challenge_ack(s)]
    assert state(s) is before
    assert events(s) == []


def test_syn_ack_in_established_draws_a_challenge_ack() -> None:
    s = established()
    send(s, seg(SEND, seq=REMOTE_ISS + 50, flags=S | A))
    assert [shape(x) for x in recv(s)] == [challenge_ack(s)]
    assert state(s) is State.ESTABLISHED


# ---------------------------------------------------------------------------- ACK validation


def test_ack_of_unsent_data_is_challenged_and_dropped() -> None:
    # RFC 5961 §5.2: acceptable only if SND.UNA - MAX.SND.WND =< SEG.ACK =< SND.NXT.
    # "If the ACK acknowledges something not yet sent (SEG.ACK > SND.NXT) then send an ACK,
    # drop the segment, and return."
    s = established()
    s.conn.send(b"abc")
    recv(s)
    send(s, seg(SEND, ack=LOCAL_ISS + 100, flags=A | P, payload=b"injected"))
    assert recv(s) == [seg(RECV, seq=LOCAL_ISS + 4)]
    assert s.conn.snd_una == LOCAL_ISS + 1
    assert s.conn.receive() == b""  # the payload was dropped with it


def test_ack_too_old_is_challenged_and_dropped() -> None:
    # "(SND.UNA - MAX.SND.WND) > SEG.ACK": discard the segment and send an ACK back.
    s = established()
    max_wnd = s.conn.max_snd_wnd
    assert max_wnd == 65535
    too_old = LOCAL_ISS + 1 - max_wnd - 1
    send(s, seg(SEND, ack=too_old, flags=A | P, payload=b"injected"))
    assert recv(s) == [RECV]
    assert s.conn.receive() == b""


def test_old_ack_inside_the_allowance_is_accepted() -> None:
    # The ACK is a duplicate but within MAX.SND.WND: the segment's data is taken.
    s = established()
    send(s, seg(SEND, ack=LOCAL_ISS + 1 - 1000, flags=A | P, payload=b"fine"))
    assert s.conn.receive() == b"fine"


def test_challenge_acks_are_rate_limited() -> None:
    # RFC 5961 §7: "limit the number of challenge ACKs ... sent per time interval"
    s = established(challenge_ack_limit=3)
    sent = 0
    for i in range(10):
        peer(s, seq=s.conn.rcv_nxt + 1 + i, flags=R, ack=0)
        sent += len(recv(s))
    assert sent == 3
    assert state(s) is State.ESTABLISHED
    s.at(1.0)  # a second later, the allowance is back
    for i in range(10):
        peer(s, seq=s.conn.rcv_nxt + 1 + i, flags=S, ack=0)
        sent += len(recv(s))
    assert sent == 6
    assert s.conn.info()["challenge_acks"] == 6


def test_rate_limit_does_not_hold_back_ordinary_acks() -> None:
    s = established(challenge_ack_limit=1)
    for i in range(3):
        peer(s, seq=s.conn.rcv_nxt + 1 + i, flags=R, ack=0)
        recv(s)
    send(s, seg(SEND, flags=A | P, payload=b"data"))
    assert [x.ack for x in recv(s)] == [REMOTE_ISS + 5]
