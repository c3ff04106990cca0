"""CLOSED, LISTEN, SYN-SENT and SYN-RECEIVED (RFC 9293 §3.5, §3.10.1, §3.10.7.1-3),
simultaneous open, and RFC 6528 initial sequence numbers."""

from __future__ import annotations

from itertools import pairwise

import pytest

from synack.tcp import (
    Config,
    Connection,
    ConnectionClosing,
    ConnectionDoesNotExist,
    ConnectionRefused,
    State,
)
from synack.wire.seq import MASK

from .conftest import (
    BUILDERS,
    LOCAL,
    LOCAL_ISS,
    PEER_MSS,
    RECV,
    REMOTE,
    REMOTE_ISS,
    SECRET,
    SEND,
    WINDOW,
    A,
    F,
    P,
    R,
    S,
    Sock,
    closed,
    events,
    listen,
    recv,
    recv_nothing,
    seg,
    send,
    state,
    syn_received,
    syn_sent,
    tsval,
)

SYN = seg(SEND, seq=REMOTE_ISS, ack=0, flags=S, mss=PEER_MSS)
SYN_ACK = seg(SEND, seq=REMOTE_ISS, flags=S | A, mss=PEER_MSS)
OUR_SYN = seg(RECV, seq=LOCAL_ISS, ack=0, flags=S, mss=1460)
OUR_SYN_ACK = seg(RECV, seq=LOCAL_ISS, flags=S | A, mss=1460)


def test_every_state_can_be_built_with_real_segments(any_state: Sock) -> None:
    current = any_state.conn.state
    assert any_state.conn.info()["state"] == current.value
    assert BUILDERS[current]().conn.state is current


def test_our_iss_is_the_rfc6528_isn() -> None:
    s = syn_sent()
    assert s.conn.iss == LOCAL_ISS


# ---------------------------------------------------------------------------- CLOSED


def test_closed_answers_a_segment_without_ack_with_rst_ack() -> None:
    # §3.10.7.1: "<SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>"; SYN and FIN count in SEG.LEN.
    s = closed()
    send(s, seg(SYN, payload=b"abc", flags=S | F))
    assert recv(s) == [seg(RECV, seq=0, ack=REMOTE_ISS + 5, flags=R | A, window=0)]


def test_closed_answers_a_segment_with_ack_with_rst() -> None:
    # "<SEQ=SEG.ACK><CTL=RST>"
    s = closed()
    send(s, seg(SEND, ack=12345, payload=b"data"))
    assert recv(s) == [seg(RECV, seq=12345, ack=0, flags=R, window=0)]


def test_closed_ignores_rst() -> None:
    s = closed()
    send(s, seg(SEND, flags=R))
    send(s, seg(SEND, flags=R | A))
    recv_nothing(s)
    assert state(s) is State.CLOSED


def test_closed_calls() -> None:
    s = closed()
    with pytest.raises(ConnectionDoesNotExist):
        s.conn.send(b"x")
    with pytest.raises(ConnectionDoesNotExist):
        s.conn.shutdown()
    assert s.conn.receive() == b""
    assert s.conn.get_timer() is None


def test_open_twice_is_an_error() -> None:
    s = syn_sent()
    with pytest.raises(ConnectionClosing):
        s.conn.connect(s.now)
    with pytest.raises(ConnectionClosing):
        s.conn.listen()


# ---------------------------------------------------------------------------- LISTEN


def test_listen_syn() -> None:
    s = listen()
    send(s, SYN)
    assert recv(s) == [OUR_SYN_ACK]
    assert state(s) is State.SYN_RECEIVED
    assert (s.conn.irs, s.conn.rcv_nxt) == (REMOTE_ISS, REMOTE_ISS + 1)
    assert s.states == [State.LISTEN, State.SYN_RECEIVED]


def test_listen_echoes_only_the_options_the_peer_offered() -> None:
    full = {"timestamps": True, "sack": True, "window_scaling": True}
    s = listen(**full)
    send(s, SYN)
    assert recv(s) == [OUR_SYN_ACK]  # MSS only: the peer offered nothing else

    s = listen(**full)
    send(s, seg(SYN, wscale=7, sack_permitted=True, ts=(777, 0)))
    assert recv(s) == [seg(OUR_SYN_ACK, wscale=6, sack_permitted=True, ts=(tsval(0), 777))]


def test_listen_ignores_rst() -> None:
    s = listen()
    send(s, seg(SEND, flags=R))
    recv_nothing(s)
    assert state(s) is State.LISTEN


def test_listen_answers_an_ack_with_rst() -> None:
    # §3.10.7.2: "Any acknowledgment is bad ... <SEQ=SEG.ACK><CTL=RST>"
    s = listen()
    send(s, seg(SEND, ack=999))
    assert recv(s) == [seg(RECV, seq=999, ack=0, flags=R, window=0)]
    send(s, seg(SYN, flags=S | A, ack=4242))
    assert recv(s) == [seg(RECV, seq=4242, ack=0, flags=R, window=0)]
    assert state(s) is State.LISTEN


def test_listen_drops_other_segments() -> None:
    s = listen()
    send(s, seg(SEND, flags=P, ack=0, payload=b"hello"))
    send(s, seg(SEND, flags=F, ack=0))
    recv_nothing(s)
    assert state(s) is State.LISTEN


def test_listen_data_in_a_syn_is_delivered_only_if_acknowledged() -> None:
    # §3.10.7.2 says text in a SYN "should be queued for processing later"; Linux drops it
    # (without TCP Fast Open) and the peer resends it. Either way the ACK must tell the
    # truth: what it covers is delivered, and nothing else.
    s = listen()
    send(s, seg(SYN, payload=b"early"))
    [synack] = recv(s)
    taken = synack.ack - (REMOTE_ISS + 1)
    assert taken in (0, 5)
    send(s, seg(SEND, seq=REMOTE_ISS + 1 + taken))
    assert state(s) is State.ESTABLISHED
    assert s.conn.receive() == b"early"[:taken]


def test_listen_close() -> None:
    s = listen()
    s.conn.close()
    recv_nothing(s)
    assert state(s) is State.CLOSED
    assert events(s) == ["Closed"]


# ---------------------------------------------------------------------------- SYN-SENT


def test_connect_sends_syn_with_the_default_options() -> None:
    s = Sock(Connection(LOCAL, REMOTE, Config(secret=SECRET)))
    s.conn.connect(0.0)
    # 2 MiB of receive buffer needs a shift of 6 to fit in 16 bits (RFC 7323 §2.3);
    # the SYN's own window is never scaled.
    assert recv(s) == [seg(OUR_SYN, window=65535, wscale=6, sack_permitted=True, ts=(tsval(0), 0))]
    assert state(s) is State.SYN_SENT
    assert s.conn.get_timer() == pytest.approx(1.0)  # RFC 6298 §2.1: initial RTO 1 s


def test_connect_sends_a_plain_syn() -> None:
    s = closed()
    s.conn.connect(0.0)
    assert recv(s) == [OUR_SYN]
    recv_nothing(s)


def test_syn_sent_syn_ack() -> None:
    s = syn_sent()
    send(s, SYN_ACK)
    assert recv(s) == [RECV]
    assert state(s) is State.ESTABLISHED
    assert events(s) == ["Connected"]
    assert (s.conn.snd_una, s.conn.snd_nxt, s.conn.rcv_nxt) == (
        LOCAL_ISS + 1,
        LOCAL_ISS + 1,
        REMOTE_ISS + 1,
    )
    assert s.conn.get_timer() is None  # nothing outstanding: no retransmission timer


def test_syn_sent_syn_ack_with_data() -> None:
    # §3.10.7.3: after entering ESTABLISHED, "If there are other controls or text in the
    # segment, then continue processing at the sixth step" -- the text is received.
    s = syn_sent()
    send(s, seg(SYN_ACK, payload=b"hi"))
    assert recv(s) == [seg(RECV, ack=REMOTE_ISS + 3, window=WINDOW - 2)]
    assert state(s) is State.ESTABLISHED
    assert s.conn.receive() == b"hi"


def test_syn_sent_rst_with_acceptable_ack_refuses() -> None:
    s = syn_sent()
    send(s, seg(SEND, seq=0, flags=R | A))
    recv_nothing(s)
    assert state(s) is State.CLOSED
    assert events(s) == ["Reset(ConnectionRefused)", "Closed"]
    with pytest.raises(ConnectionRefused):  # later calls report why the connection ended
        s.conn.send(b"x")


def test_syn_sent_rst_without_ack_is_dropped() -> None:
    # RFC 5961 §3.2 / RFC 9293: a RST in SYN-SENT is acceptable only if it ACKs the SYN.
    s = syn_sent()
    send(s, seg(SEND, seq=0, ack=0, flags=R))
    recv_nothing(s)
    assert state(s) is State.SYN_SENT
    assert events(s) == []


@pytest.mark.parametrize("ack", [LOCAL_ISS, LOCAL_ISS + 2, LOCAL_ISS - 100])
def test_syn_sent_rst_with_bad_ack_is_dropped(ack: int) -> None:
    s = syn_sent()
    send(s, seg(SEND, seq=0, ack=ack, flags=R | A))
    recv_nothing(s)
    assert state(s) is State.SYN_SENT


@pytest.mark.parametrize("ack", [LOCAL_ISS, LOCAL_ISS + 2, LOCAL_ISS - 100])
def test_syn_sent_bad_ack_draws_rst(ack: int) -> None:
    # "If SEG.ACK =< ISS or SEG.ACK > SND.NXT, send a reset <SEQ=SEG.ACK><CTL=RST>"
    s = syn_sent()
    send(s, seg(SYN_ACK, ack=ack))
    assert recv(s) == [seg(RECV, seq=ack, ack=0, flags=R, window=0)]
    assert state(s) is State.SYN_SENT


def test_syn_sent_ack_without_syn_is_dropped() -> None:
    s = syn_sent()
    send(s, seg(SEND, seq=REMOTE_ISS))
    recv_nothing(s)
    assert state(s) is State.SYN_SENT


def test_syn_sent_close_and_shutdown() -> None:
    s = syn_sent()
    s.conn.close()
    recv_nothing(s)
    assert state(s) is State.CLOSED
    assert s.conn.get_timer() is None
    s = syn_sent()
    s.conn.shutdown()  # "delete the TCB"
    assert state(s) is State.CLOSED


def test_syn_sent_abort_sends_nothing() -> None:
    # §3.10.5 ABORT in SYN-SENT: "delete the TCB" -- there is nothing to reset yet.
    s = syn_sent()
    s.conn.abort()
    recv_nothing(s)
    assert state(s) is State.CLOSED


def test_peer_without_mss_option_gets_536() -> None:
    # RFC 9293 §3.7.1: without an MSS option the send MSS is 536 (IPv4).
    s = syn_sent()
    send(s, seg(SEND, seq=REMOTE_ISS, flags=S | A))
    recv(s)
    s.conn.send(bytes(1000))
    assert [len(x.payload) for x in recv(s)] == [536, 464]


def test_syn_sent_send_is_queued_until_established() -> None:
    s = syn_sent()
    assert s.conn.send(b"early") == 5  # RFC 9293 §3.10.2: queued in SYN-SENT
    recv_nothing(s)
    send(s, SYN_ACK)
    assert recv(s) == [seg(RECV, flags=A | P, payload=b"early")]


# ---------------------------------------------------------------------------- simultaneous open


def test_simultaneous_open_with_crossing_syn_acks() -> None:
    # RFC 9293 Figure 7: both SYNs cross, each side answers SYN-ACK, both become ESTABLISHED.
    s = syn_sent()
    send(s, SYN)
    # "enter SYN-RECEIVED, form a SYN,ACK segment <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>"
    assert recv(s) == [OUR_SYN_ACK]
    assert state(s) is State.SYN_RECEIVED
    send(s, SYN_ACK)
    recv_nothing(s)
    assert state(s) is State.ESTABLISHED
    assert events(s) == ["Connected"]
    assert s.states == [State.SYN_SENT, State.SYN_RECEIVED, State.ESTABLISHED]


def test_simultaneous_open_syn_ack_echoes_only_the_options_the_peer_offered() -> None:
    """RFC 7323 §2.2 (Window Scale): "This option MAY be sent in an initial <SYN> segment
    (i.e., a segment with the SYN bit on and the ACK bit off). It MAY also be sent in a
    <SYN,ACK> segment, but only if a Window Scale option was received in the initial
    <SYN> segment." §3.2 (Timestamps): "A TCP MAY send the TSopt in an initial <SYN>
    segment (i.e., segment containing a SYN bit and no ACK bit), and MAY send a TSopt in
    <SYN,ACK> only if it received a TSopt in the initial <SYN> segment for the
    connection." Our SYN offered both; the SYN-ACK of a simultaneous open answers the
    peer's SYN, which offered neither (nor SACK-permitted, RFC 2018 §2)."""
    full = {"timestamps": True, "sack": True, "window_scaling": True}
    s = syn_sent(**full)
    send(s, SYN)  # MSS only
    assert recv(s) == [OUR_SYN_ACK]
    assert state(s) is State.SYN_RECEIVED
    # Its retransmission too.
    s.at(s.conn.get_timer() or 0.0)
    s.conn.handle_timer(s.now)
    assert recv(s) == [OUR_SYN_ACK]
    # A peer SYN that offers them all is answered with them all.
    s = syn_sent(**full)
    send(s, seg(SYN, wscale=7, sack_permitted=True, ts=(777, 0)))
    assert recv(s) == [seg(OUR_SYN_ACK, wscale=6, sack_permitted=True, ts=(tsval(0), 777))]


def test_simultaneous_open_completed_by_an_ack() -> None:
    s = syn_sent()
    send(s, SYN)
    assert recv(s) == [OUR_SYN_ACK]
    send(s, SEND)
    recv_nothing(s)
    assert state(s) is State.ESTABLISHED


def test_simultaneous_open_rst_means_refused() -> None:
    # §3.10.7.4 in SYN-RECEIVED: "If this connection was initiated with an active OPEN ...
    # the connection was refused; signal the user 'connection refused'."
    s = syn_sent()
    send(s, SYN)
    recv(s)
    send(s, seg(SEND, flags=R))
    recv_nothing(s)
    assert state(s) is State.CLOSED
    assert events(s) == ["Reset(ConnectionRefused)", "Closed"]


def test_simultaneous_open_resends_syn_ack_on_timeout() -> None:
    s = syn_sent()
    send(s, SYN)
    assert recv(s) == [OUR_SYN_ACK]
    deadline = s.conn.get_timer()
    assert deadline is not None and deadline == pytest.approx(1.0)
    s.at(deadline)
    s.conn.handle_timer(s.now)
    assert recv(s) == [OUR_SYN_ACK]


# ---------------------------------------------------------------------------- SYN-RECEIVED


def test_syn_received_ack() -> None:
    s = syn_received()
    send(s, SEND)
    recv_nothing(s)
    assert state(s) is State.ESTABLISHED
    assert events(s) == ["Connected"]
    assert s.conn.get_timer() is None


def test_syn_received_ack_with_data() -> None:
    s = syn_received()
    send(s, seg(SEND, flags=A | P, payload=b"abcdef"))
    assert recv(s) == [seg(RECV, ack=REMOTE_ISS + 7, window=WINDOW - 6)]
    assert state(s) is State.ESTABLISHED
    assert s.conn.receive() == b"abcdef"


def test_syn_received_fin() -> None:
    s = syn_received()
    send(s, seg(SEND, flags=F | A, payload=b"abcdef"))
    assert recv(s) == [seg(RECV, ack=REMOTE_ISS + 8, window=WINDOW - 7)]
    assert state(s) is State.CLOSE_WAIT
    assert events(s) == ["Connected", "DataAvailable", "EndOfStream"]
    assert s.conn.receive() == b"abcdef" and s.conn.at_eof


@pytest.mark.parametrize("ack", [LOCAL_ISS, LOCAL_ISS + 2, LOCAL_ISS + 1000])
def test_syn_received_unacceptable_ack_draws_rst(ack: int) -> None:
    # "If the segment acknowledgment is not acceptable, form a reset segment <SEQ=SEG.ACK>"
    s = syn_received()
    send(s, seg(SEND, ack=ack))
    assert recv(s) == [seg(RECV, seq=ack, ack=0, flags=R, window=0)]
    assert state(s) is State.SYN_RECEIVED


def test_syn_received_segment_without_ack_is_dropped() -> None:
    s = syn_received()
    send(s, seg(SEND, flags=P, ack=0, payload=b"x"))
    recv_nothing(s)
    assert state(s) is State.SYN_RECEIVED


def test_syn_received_retransmitted_syn_gets_the_syn_ack_again() -> None:
    s = syn_received()
    send(s, SYN)
    assert recv(s) == [OUR_SYN_ACK]
    assert state(s) is State.SYN_RECEIVED


def test_syn_received_rst_returns_to_listen() -> None:
    # §3.10.7.4, second (RST), SYN-RECEIVED: "If this connection was initiated with a
    # passive OPEN (i.e., came from the LISTEN state), then return this connection to
    # LISTEN state and return. The user need not be informed."
    s = syn_received()
    send(s, seg(SEND, flags=R))
    recv_nothing(s)
    assert state(s) is State.LISTEN
    assert events(s) == []


def test_syn_received_rst_out_of_window_is_ignored() -> None:
    s = syn_received()
    send(s, seg(SEND, seq=REMOTE_ISS + 100_000, flags=R))
    recv_nothing(s)
    assert state(s) is State.SYN_RECEIVED


def test_syn_received_close_sends_fin() -> None:
    # §3.10.4 CLOSE, SYN-RECEIVED: "If no SENDs have been issued and there is no pending
    # data to send, then form a FIN segment and send it, and enter FIN-WAIT-1 state."
    s = syn_received()
    s.conn.close()
    assert recv(s) == [seg(RECV, flags=F | A)]
    assert state(s) is State.FIN_WAIT_1


def test_syn_received_close_with_queued_data_waits_for_established() -> None:
    # "... otherwise, queue for processing after entering ESTABLISHED state."
    s = syn_received()
    assert s.conn.send(b"queued") == 6
    s.conn.close()
    recv_nothing(s)
    send(s, SEND)
    assert recv(s) == [seg(RECV, flags=F | P | A, payload=b"queued")]
    assert state(s) is State.FIN_WAIT_1


def test_syn_received_abort_sends_rst() -> None:
    s = syn_received()
    s.conn.abort()
    [rst] = recv(s)
    assert rst.flags & R and rst.seq == (LOCAL_ISS + 1) & MASK
    assert state(s) is State.CLOSED


# ---------------------------------------------------------------------------- RFC 6528 ISNs


def _iss(
    local_port: int, remote: tuple[str, int], now: float, secret: bytes | None = SECRET
) -> int:
    conn = Connection(("192.0.2.1", local_port), remote, Config(secret=secret))
    conn.connect(now)
    return conn.iss


def test_isn_differs_unpredictably_between_four_tuples() -> None:
    isns = {
        _iss(8080, ("192.0.2.2", 40000), 5.0),
        _iss(8080, ("192.0.2.2", 40001), 5.0),
        _iss(8081, ("192.0.2.2", 40000), 5.0),
        _iss(8080, ("192.0.2.3", 40000), 5.0),
    }
    assert len(isns) == 4
    ordered = sorted(isns)
    # Unrelated: no two are close, as they would be if F() were a counter or a plain sum.
    assert all(b - a > 1 << 16 for a, b in pairwise(ordered))


def test_isn_of_the_same_four_tuple_grows_with_the_4us_clock() -> None:
    first = _iss(8080, ("192.0.2.2", 40000), 1.0)
    later = _iss(8080, ("192.0.2.2", 40000), 3.0)
    assert (later - first) & MASK == 2 * 250_000  # "M is the 4 microsecond timer"


def test_isn_depends_on_the_secret() -> None:
    assert _iss(8080, ("192.0.2.2", 40000), 0.0) != _iss(
        8080, ("192.0.2.2", 40000), 0.0, b"another secret".ljust(32, b".")
    )
    # Without a configured secret each connection draws a random key.
    assert _iss(8080, ("192.0.2.2", 40000), 0.0, None) != _iss(
        8080, ("192.0.2.2", 40000), 0.0, None
    )
