"""Closing: FIN-WAIT-1, FIN-WAIT-2, CLOSING, TIME-WAIT, CLOSE-WAIT, LAST-ACK (RFC 9293
§3.6, §3.10.4, §3.10.7.4 "eighth, check the FIN bit"), half-close, and close with unread data."""

from __future__ import annotations

import pytest

from synack.tcp import (
    Connection,
    ConnectionClosing,
    ConnectionDoesNotExist,
    ConnectionReset,
    State,
)

from .conftest import (
    LOCAL,
    LOCAL_ISS,
    RECV,
    REMOTE,
    REMOTE_ISS,
    SEND,
    WINDOW,
    A,
    F,
    P,
    R,
    close_wait,
    closing,
    config,
    established,
    events,
    fin_wait_1,
    fin_wait_2,
    fire,
    last_ack,
    recv,
    recv_nothing,
    seg,
    send,
    state,
    time_wait,
)

# Our ACK of the peer's FIN (which takes one sequence number, and one of the window).
ACK_OF_FIN = seg(RECV, ack=REMOTE_ISS + 2, window=WINDOW - 1)
PEER_FIN = seg(SEND, flags=F | A)


# ---------------------------------------------------------------------------- active close


def test_shutdown_sends_fin() -> None:
    s = established()
    s.conn.shutdown()
    assert recv(s) == [seg(RECV, flags=F | A)]
    assert state(s) is State.FIN_WAIT_1
    assert s.conn.snd_nxt == LOCAL_ISS + 2  # the FIN takes a sequence number
    s.conn.shutdown()  # a second CLOSE changes nothing
    recv_nothing(s)


def test_fin_follows_the_queued_data_in_one_segment() -> None:
    s = established()
    s.conn.send(b"bye")
    s.conn.shutdown()
    assert recv(s) == [seg(RECV, flags=F | P | A, payload=b"bye")]
    assert state(s) is State.FIN_WAIT_1


def test_fin_wait_1_ack_of_fin() -> None:
    s = fin_wait_1()
    send(s, seg(SEND, ack=LOCAL_ISS + 2))
    recv_nothing(s)
    assert state(s) is State.FIN_WAIT_2


def test_fin_wait_1_ack_of_data_only() -> None:
    s = established()
    s.conn.send(b"bye")
    s.conn.shutdown()
    recv(s)
    send(s, seg(SEND, ack=LOCAL_ISS + 4))  # the data, not the FIN
    assert state(s) is State.FIN_WAIT_1
    send(s, seg(SEND, ack=LOCAL_ISS + 5))
    assert state(s) is State.FIN_WAIT_2


def test_fin_wait_1_fin_with_ack_of_our_fin_goes_to_time_wait() -> None:
    # "If our FIN has been ACKed (perhaps in this segment), then enter TIME-WAIT"
    s = fin_wait_1()
    send(s, seg(PEER_FIN, ack=LOCAL_ISS + 2))
    assert recv(s) == [seg(ACK_OF_FIN, seq=LOCAL_ISS + 2)]
    assert state(s) is State.TIME_WAIT
    assert s.states[-2:] == [State.FIN_WAIT_2, State.TIME_WAIT]


def test_fin_wait_1_retransmits_the_fin() -> None:
    s = fin_wait_1()
    rto = s.conn.rto
    assert s.conn.get_timer() == pytest.approx(rto)
    assert fire(s) == [seg(RECV, flags=F | A)]
    assert s.conn.get_timer() == pytest.approx(rto + 2 * rto)  # backed off (RFC 6298 §5.5)


def test_fin_wait_1_still_receives() -> None:
    s = fin_wait_1()
    send(s, seg(SEND, ack=LOCAL_ISS + 1, flags=A | P, payload=b"abc"))
    assert recv(s) == [seg(RECV, seq=LOCAL_ISS + 2, ack=REMOTE_ISS + 4, window=WINDOW - 3)]
    assert s.conn.receive() == b"abc"


def test_simultaneous_close() -> None:
    s = closing()
    assert s.states[-2:] == [State.FIN_WAIT_1, State.CLOSING]
    send(s, seg(SEND, seq=REMOTE_ISS + 2, ack=LOCAL_ISS + 2))
    recv_nothing(s)
    assert state(s) is State.TIME_WAIT


def test_closing_retransmits_fin_and_ignores_data() -> None:
    s = closing()
    assert fire(s) == [seg(RECV, flags=F | A, ack=REMOTE_ISS + 2, window=WINDOW - 1)]
    assert state(s) is State.CLOSING


def test_half_close_data_still_received_in_fin_wait_2() -> None:
    s = fin_wait_2()
    offset = 0
    for chunk in (b"one ", b"two ", b"three"):
        send(
            s, seg(SEND, seq=REMOTE_ISS + 1 + offset, ack=LOCAL_ISS + 2, flags=A | P, payload=chunk)
        )
        offset += len(chunk)
        assert [x.ack for x in recv(s)] == [REMOTE_ISS + 1 + offset]
    assert s.conn.receive() == b"one two three"
    assert state(s) is State.FIN_WAIT_2
    assert s.conn.get_timer() is None  # only shutdown(): wait for the peer as long as it likes
    send(s, seg(SEND, seq=REMOTE_ISS + 14, ack=LOCAL_ISS + 2, flags=F | A))
    # The data was read, but the right edge moves only by a full segment (receiver SWS
    # avoidance), so the window still counts the 13 bytes and the FIN.
    assert recv(s) == [seg(RECV, seq=LOCAL_ISS + 2, ack=REMOTE_ISS + 15, window=WINDOW - 14)]
    assert state(s) is State.TIME_WAIT
    assert events(s) == ["DataAvailable", "EndOfStream"]
    assert s.conn.at_eof


def test_fin_wait_2_of_a_closed_socket_times_out() -> None:
    s = established(fin_wait_2_timeout=5.0)
    s.conn.close()
    recv(s)
    send(s, seg(SEND, ack=LOCAL_ISS + 2))
    assert state(s) is State.FIN_WAIT_2
    assert s.conn.get_timer() == pytest.approx(5.0)
    sent = fire(s)
    assert all(x.flags & R for x in sent)  # at most a RST: nobody will read any more
    assert state(s) is State.CLOSED


# ---------------------------------------------------------------------------- TIME-WAIT


def test_time_wait_lasts_two_msl() -> None:
    s = time_wait(msl=1.5)
    assert s.conn.get_timer() == pytest.approx(3.0)
    s.at(2.9)
    s.conn.handle_timer(s.now)
    assert state(s) is State.TIME_WAIT
    assert fire(s) == []
    assert s.now == pytest.approx(3.0)
    assert state(s) is State.CLOSED
    assert events(s)[-1] == "Closed"


def test_time_wait_reacks_a_retransmitted_fin_and_restarts_the_timer() -> None:
    # "The only thing that can arrive in this state is a retransmission of the remote FIN.
    # Acknowledge it, and restart the 2 MSL timeout."
    s = time_wait(msl=1.0)
    s.at(1.5)
    send(s, seg(PEER_FIN, ack=LOCAL_ISS + 2))
    assert recv(s) == [seg(ACK_OF_FIN, seq=LOCAL_ISS + 2)]
    assert s.conn.get_timer() == pytest.approx(3.5)
    assert state(s) is State.TIME_WAIT
    assert fire(s) == []
    assert state(s) is State.CLOSED


def test_time_wait_acknowledges_an_acceptable_segment_without_fin() -> None:
    """RFC 9293 §3.10.7.4, fifth, TIME-WAIT STATE: "The only thing that can arrive in this
    state is a retransmission of the remote FIN. Acknowledge it, and restart the 2 MSL
    timeout." Anything else that passes the sequence check is unexpected too, and Linux
    (tcp_timewait_state_process) and FreeBSD (tcp_twcheck) both acknowledge it, so that
    the peer learns where we are. The one exception, as in both: a bare ACK exactly at
    RCV.NXT, which needs no answer (answering it could start an ACK war)."""
    s = time_wait(msl=1.0)
    s.at(0.5)
    # Data in sequence after the peer's FIN (RFC 9293: "Ignore the segment text").
    send(s, seg(SEND, seq=REMOTE_ISS + 2, ack=LOCAL_ISS + 2, flags=A | P, payload=b"late"))
    assert recv(s) == [seg(ACK_OF_FIN, seq=LOCAL_ISS + 2)]
    # An empty segment inside the window but not at RCV.NXT.
    send(s, seg(SEND, seq=REMOTE_ISS + 10, ack=LOCAL_ISS + 2))
    assert recv(s) == [seg(ACK_OF_FIN, seq=LOCAL_ISS + 2)]
    # The bare ACK at RCV.NXT.
    send(s, seg(SEND, seq=REMOTE_ISS + 2, ack=LOCAL_ISS + 2))
    recv_nothing(s)
    # Only the FIN restarts the 2 MSL timeout; none of these did.
    assert s.conn.get_timer() == pytest.approx(2.0)
    assert state(s) is State.TIME_WAIT


def test_time_wait_stops_the_other_timers() -> None:
    s = time_wait(msl=10.0, keepalive=True)
    assert s.conn.get_timer() == pytest.approx(20.0)


# ---------------------------------------------------------------------------- passive close


def test_close_wait_can_still_send() -> None:
    s = close_wait()
    assert events(s) == []
    s.conn.send(b"reply")
    assert recv(s) == [seg(ACK_OF_FIN, flags=A | P, payload=b"reply")]
    send(s, seg(SEND, seq=REMOTE_ISS + 2, ack=LOCAL_ISS + 6))
    assert state(s) is State.CLOSE_WAIT


def test_close_wait_receive_reports_the_end() -> None:
    s = established()
    send(s, seg(SEND, flags=F | P | A, payload=b"last"))
    assert recv(s) == [seg(RECV, ack=REMOTE_ISS + 6, window=WINDOW - 5)]
    assert state(s) is State.CLOSE_WAIT
    assert not s.conn.at_eof  # four bytes are still unread
    assert s.conn.receive() == b"last"
    assert s.conn.at_eof
    assert s.conn.receive() == b""


def test_close_wait_reacks_a_retransmitted_fin() -> None:
    s = close_wait()
    send(s, PEER_FIN)
    assert recv(s) == [ACK_OF_FIN]
    assert state(s) is State.CLOSE_WAIT


def test_close_wait_ignores_new_data() -> None:
    # §3.10.7.4 seventh, CLOSE-WAIT: "This should not occur, since a FIN has been received
    # from the remote side. Ignore the segment text."
    s = close_wait()
    send(s, seg(SEND, seq=REMOTE_ISS + 2, flags=A | P, payload=b"zombie"))
    assert s.conn.receive() == b""
    assert state(s) is State.CLOSE_WAIT


def test_last_ack() -> None:
    s = last_ack()
    send(s, seg(SEND, seq=REMOTE_ISS + 2, ack=LOCAL_ISS + 2))
    recv_nothing(s)
    assert state(s) is State.CLOSED
    assert events(s) == ["Closed"]
    assert s.conn.get_timer() is None


def test_last_ack_reacks_a_retransmitted_fin() -> None:
    s = last_ack()
    send(s, PEER_FIN)
    assert recv(s) == [seg(ACK_OF_FIN, seq=LOCAL_ISS + 2)]
    assert state(s) is State.LAST_ACK


def test_last_ack_retransmits_the_fin() -> None:
    s = last_ack()
    assert fire(s) == [seg(ACK_OF_FIN, flags=F | A)]
    assert state(s) is State.LAST_ACK


def test_shutdown_in_close_wait_sends_the_rest_then_fin() -> None:
    s = close_wait()
    s.conn.send(b"tail")
    s.conn.shutdown()
    assert recv(s) == [seg(ACK_OF_FIN, flags=F | P | A, payload=b"tail")]
    assert state(s) is State.LAST_ACK
    with pytest.raises(ConnectionClosing):
        s.conn.send(b"x")


# ---------------------------------------------------------------------------- close and abort


def test_close_with_unread_data_sends_rst() -> None:
    # RFC 2525 §2.17 / RFC 9293 §3.6.1: closing with unread data aborts the connection.
    s = established()
    send(s, seg(SEND, flags=A | P, payload=b"unread"))
    recv(s)
    s.conn.close()
    [rst] = recv(s)
    assert rst.flags & R and not rst.flags & F
    assert rst.seq == LOCAL_ISS + 1 and rst.payload == b""
    assert state(s) is State.CLOSED


def test_data_after_close_is_answered_with_rst() -> None:
    s = established()
    s.conn.close()
    assert recv(s) == [seg(RECV, flags=F | A)]
    send(s, seg(SEND, flags=A | P, payload=b"too late"))
    [rst] = recv(s)
    # Our FIN is unacknowledged (the segment acknowledges LOCAL_ISS + 1): the RST goes
    # at the FIN's number, which the peer expects (see the abort tests below).
    assert rst.flags & R and rst.seq == LOCAL_ISS + 1
    assert state(s) is State.CLOSED
    assert "Reset(ConnectionReset)" in events(s)


def test_close_without_unread_data_sends_fin() -> None:
    s = established()
    send(s, seg(SEND, flags=A | P, payload=b"read"))
    recv(s)
    assert s.conn.receive() == b"read"
    s.conn.close()
    [fin] = recv(s)
    assert fin.flags == F | A
    assert state(s) is State.FIN_WAIT_1


def test_abort_sends_rst_and_forgets() -> None:
    # §3.10.5 ABORT in ESTABLISHED: "Send a reset segment: <SEQ=SND.NXT><CTL=RST>"
    s = established()
    s.conn.send(b"queued but never sent" * 1000)
    s.conn.abort()
    [rst] = recv(s)
    assert rst.flags & R and rst.seq == LOCAL_ISS + 1 and rst.payload == b""
    assert state(s) is State.CLOSED
    assert s.conn.get_timer() is None
    with pytest.raises(ConnectionDoesNotExist):
        s.conn.send(b"x")


@pytest.mark.parametrize("builder", [fin_wait_2, time_wait, last_ack, closing])
def test_abort_sends_nothing_once_our_fin_is_out(builder: object) -> None:
    # §3.10.5: in CLOSING, LAST-ACK and TIME-WAIT, "respond with 'ok' and delete the TCB";
    # FIN-WAIT-2 still sends the reset.
    s = builder()  # type: ignore[operator]
    s.conn.abort()
    sent = recv(s)
    if s.states[-2] is State.FIN_WAIT_2:
        assert [bool(x.flags & R) for x in sent] == [True]
    else:
        assert sent == []
    assert state(s) is State.CLOSED


def test_abort_with_our_fin_unacknowledged_resets_at_the_number_the_peer_expects() -> None:
    """RFC 5961 §3.2: "If the RST bit is set and the sequence number exactly matches the
    next expected sequence number (RCV.NXT), then TCP MUST reset the connection."
    Otherwise, in the window, "TCP MUST send an acknowledgment (challenge ACK)".

    RFC 9293 §3.10.5 sends the abort's RST at SND.NXT, which counts our FIN once it is
    out. While the FIN is unacknowledged the peer has not taken it in as far as we know
    (lost, or refused by a zero window), and expects the FIN's own number; SND.NXT, one
    past it, would draw a challenge ACK instead of a reset. Once the FIN is
    acknowledged, SND.NXT is the number expected."""
    # FIN-WAIT-1, the FIN alone unacknowledged.
    s = fin_wait_1()
    s.conn.abort()
    [rst] = recv(s)
    assert rst.flags & R and rst.seq == LOCAL_ISS + 1
    assert state(s) is State.CLOSED
    # Data and FIN sent together; the peer acknowledges the data only.
    s = established()
    s.conn.send(b"abc")
    s.conn.shutdown()
    assert [x.flags for x in recv(s)] == [F | P | A]
    send(s, seg(SEND, ack=LOCAL_ISS + 4))
    s.conn.abort()
    [rst] = recv(s)
    assert rst.flags & R and rst.seq == LOCAL_ISS + 4
    # close() with unread data after a shutdown() whose FIN is unacknowledged.
    s = fin_wait_1()
    send(s, seg(SEND, flags=A | P, payload=b"unread"))
    recv(s)
    s.conn.close()
    [rst] = recv(s)
    assert rst.flags & R and rst.seq == LOCAL_ISS + 1
    # The FIN acknowledged (FIN-WAIT-2): SND.NXT, past the FIN.
    s = fin_wait_2()
    s.conn.abort()
    [rst] = recv(s)
    assert rst.flags & R and rst.seq == LOCAL_ISS + 2


@pytest.mark.parametrize("fin_arrives", [True, False], ids=["fin-arrived", "fin-lost"])
def test_abort_after_close_resets_a_peer_that_got_the_fin_or_not(fin_arrives: bool) -> None:
    """The two ends of the rule above, between two of our connections: the RST at the FIN's
    number resets a peer that never got the FIN (its RCV.NXT, RFC 5961 §3.2), and one
    that did (CLOSE-WAIT: RCV.NXT - 1, accepted after a FIN as Linux accepts it), each
    at once, without a challenge ACK."""
    a = Connection(LOCAL, REMOTE, config())
    b = Connection(REMOTE, LOCAL, config())
    b.listen()
    a.connect(0.0)

    def deliver(src: Connection, dst: Connection) -> list[bytes]:
        out = src.segments_to_send(0.0)
        for data in out:
            dst.handle_segment(data, 0.0)
        return out

    for _ in range(3):
        deliver(a, b)
        deliver(b, a)
    assert (a.state, b.state) == (State.ESTABLISHED, State.ESTABLISHED)
    a.close()
    [fin] = a.segments_to_send(0.0)
    if fin_arrives:
        b.handle_segment(fin, 0.0)
        assert b.state is State.CLOSE_WAIT
        b.segments_to_send(0.0)  # its ACK of the FIN is lost
    a.abort()
    [rst] = deliver(a, b)
    assert rst[13] & R  # the flags byte
    assert b.state is State.CLOSED
    assert b.segments_to_send(0.0) == []  # no challenge ACK
    assert isinstance(b.error, ConnectionReset)
