"""ESTABLISHED (RFC 9293 §3.10.7.4): data both ways, acceptability, reassembly, windows,
and keepalive (§3.8.4)."""

from __future__ import annotations

import pytest

from synack.tcp import ConnectionClosing, State

from .conftest import (
    LOCAL_ISS,
    MSS,
    RECV,
    REMOTE_ISS,
    SEND,
    WINDOW,
    A,
    F,
    P,
    R,
    S,
    Sock,
    established,
    established_passive,
    events,
    fire,
    recv,
    recv_nothing,
    seg,
    send,
    state,
    syn_sent,
)

U = 0x20  # URG


def data_from_peer(s: Sock, offset: int, payload: bytes, **changes: object) -> None:
    """`payload` at byte `offset` of the peer's stream."""
    fields: dict[str, object] = {"flags": A | P}
    fields.update(changes)
    send(s, seg(SEND, seq=REMOTE_ISS + 1 + offset, payload=payload, **fields))


def ack_from_peer(s: Sock, acked: int, **changes: object) -> None:
    """An ACK of the first `acked` bytes we sent."""
    send(s, seg(SEND, ack=LOCAL_ISS + 1 + acked, **changes))


def our_ack(received: int, **changes: object) -> object:
    """Our ACK once `received` bytes have arrived (and none has been read)."""
    defaults: dict[str, object] = {"ack": REMOTE_ISS + 1 + received, "window": WINDOW - received}
    defaults.update(changes)
    return seg(RECV, **defaults)


# ---------------------------------------------------------------------------- receiving


def test_established_recv() -> None:
    s = established()
    data_from_peer(s, 0, b"abcdef")
    # The first segments of a connection are acknowledged at once (no delayed ACK yet).
    assert recv(s) == [our_ack(6)]
    assert events(s) == ["DataAvailable"]
    assert s.conn.receive() == b"abcdef"
    assert s.conn.receive() == b""


def test_data_available_is_edge_triggered() -> None:
    s = established()
    data_from_peer(s, 0, b"abc")
    data_from_peer(s, 3, b"def")
    assert events(s) == ["DataAvailable"]
    assert s.conn.receive(2) == b"ab"
    data_from_peer(s, 6, b"ghi")
    assert events(s) == []  # unread bytes remained
    assert s.conn.receive() == b"cdefghi"
    data_from_peer(s, 9, b"j")
    assert events(s) == ["DataAvailable"]


def test_receive_into() -> None:
    s = established()
    data_from_peer(s, 0, b"abcdef")
    buf = bytearray(4)
    assert s.conn.receive_into(buf) == 4 and buf == b"abcd"
    assert s.conn.receive_into(buf) == 2 and buf[:2] == b"ef"
    assert s.conn.receive_into(buf) == 0


def test_reads_of_any_size_between_arrivals_return_the_stream_in_order() -> None:
    """Partial reads, reads that empty the buffer, and arrivals in between (which
    reuse the buffer's memory, moving unread bytes to its front when most of it is
    read) give the peer's bytes exactly, and the window follows what is unread."""
    s = established()
    stream = bytes(range(256)) * 40
    sent = got = 0
    reads = [1, 700, 3000, 5, 10_000, 2, 4096]
    for i in range(60):
        if sent < len(stream):
            n = min(MSS, len(stream) - sent, s.conn.info()["rcv_wnd"])
            data_from_peer(s, sent, stream[sent : sent + n])
            sent += n
        part = s.conn.receive(reads[i % len(reads)])
        assert part == stream[got : got + len(part)]
        got += len(part)
        assert s.conn.receive_available == sent - got
        assert s.conn.info()["rcv_wnd"] <= WINDOW - (sent - got)
    assert got + s.conn.receive_available == sent == len(stream)


def test_an_emptied_receive_queue_holds_no_memory() -> None:
    """What was read is let go at once: an idle connection keeps no buffer of its
    largest burst (a thousand chat clients each holding one would add up)."""
    s = established()
    data_from_peer(s, 0, b"x" * MSS)
    data_from_peer(s, MSS, b"y" * MSS)
    assert s.conn.receive(MSS + 1) == b"x" * MSS + b"y"
    assert s.conn._rcv_chunks[s.conn._rcv_first :] == [b"y" * MSS]  # the first went
    assert s.conn.receive() == b"y" * (MSS - 1)
    assert not s.conn._rcv_chunks and s.conn.receive_available == 0
    data_from_peer(s, 2 * MSS, b"z" * 100)
    assert s.conn.receive() == b"z" * 100


def test_passive_side_receives_too() -> None:
    s = established_passive()
    data_from_peer(s, 0, b"abc")
    assert recv(s) == [our_ack(3)]


def test_duplicate_segment_is_acknowledged_and_dropped() -> None:
    s = established()
    data_from_peer(s, 0, b"abcdef")
    recv(s)
    data_from_peer(s, 0, b"abcdef")
    assert recv(s) == [our_ack(6)]  # "send an acknowledgment ... and drop"
    assert s.conn.receive() == b"abcdef"


def test_overlapping_segment_is_trimmed() -> None:
    s = established()
    data_from_peer(s, 0, b"abc")
    recv(s)
    data_from_peer(s, 0, b"abcdef")  # starts before RCV.NXT, ends inside the window
    assert recv(s) == [our_ack(6)]
    assert s.conn.receive() == b"abcdef"


def test_out_of_order_segment_is_held_and_dup_acked() -> None:
    s = established()
    data_from_peer(s, 6, b"ghi")
    # RFC 5681 §4.2: an out-of-order segment draws an immediate duplicate ACK.
    assert recv(s) == [our_ack(0)]
    assert s.conn.receive() == b""
    data_from_peer(s, 0, b"abcdef")  # fills the hole: acknowledged at once
    assert recv(s) == [our_ack(9)]
    assert s.conn.receive() == b"abcdefghi"


def test_reassembly_of_many_holes_and_overlaps() -> None:
    s = established()
    stream = bytes(range(200))
    pieces = [(150, 50), (20, 30), (0, 10), (40, 70), (5, 40), (110, 45), (10, 10)]
    for offset, n in pieces:
        data_from_peer(s, offset, stream[offset : offset + n])
        recv(s)
    assert s.conn.rcv_nxt == REMOTE_ISS + 1 + 200
    assert s.conn.receive() == stream


def test_out_of_order_fin_is_held_until_the_hole_fills() -> None:
    # §3.10.7.4: "segments with higher beginning sequence numbers SHOULD be held for later
    # processing" -- the FIN included.
    s = established()
    send(s, seg(SEND, seq=REMOTE_ISS + 4, flags=F | A | P, payload=b"def"))
    assert recv(s) == [our_ack(0)]
    assert state(s) is State.ESTABLISHED
    data_from_peer(s, 0, b"abc")
    assert recv(s) == [our_ack(7, window=WINDOW - 7)]
    assert state(s) is State.CLOSE_WAIT
    assert s.conn.receive() == b"abcdef"


def test_bare_fin_out_of_order_is_held_until_the_hole_fills() -> None:
    s = established()
    send(s, seg(SEND, seq=REMOTE_ISS + 4, flags=F | A))
    assert recv(s) == [our_ack(0)]
    data_from_peer(s, 0, b"abc")
    assert recv(s) == [our_ack(4, window=WINDOW - 4)]
    assert state(s) is State.CLOSE_WAIT
    assert events(s) == ["DataAvailable", "EndOfStream"]


def test_segment_beyond_the_window_is_acked_and_dropped() -> None:
    s = established()
    data_from_peer(s, WINDOW, b"x")  # the first number past RCV.NXT + RCV.WND
    assert recv(s) == [our_ack(0)]
    assert s.conn.receive_available == 0


def test_segment_is_trimmed_to_the_window() -> None:
    s = established(receive_buffer=4000)
    data = bytes(5000)
    data_from_peer(s, 0, data)
    assert recv(s) == [our_ack(4000, window=0)]
    assert s.conn.receive_available == 4000
    # A zero window accepts nothing: "If RCV.WND is zero, no segments will be acceptable".
    data_from_peer(s, 4000, b"more")
    assert recv(s) == [our_ack(4000, window=0)]


def test_segment_without_ack_bit_is_dropped() -> None:
    # §3.10.7.4 fifth: "if the ACK bit is off, drop the segment and return"
    s = established()
    send(s, seg(SEND, flags=P, ack=0, payload=b"sneaky"))
    recv_nothing(s)
    assert s.conn.receive_available == 0


def test_urgent_data_is_delivered_inline() -> None:
    # RFC 6093 §4: urgent data goes inline, in sequence.
    s = established()
    data_from_peer(s, 0, b"!abc", flags=A | P | U, urgent=1)
    assert recv(s) == [our_ack(4)]
    assert s.conn.receive() == b"!abc"


def test_retransmitted_syn_ack_is_acknowledged_again() -> None:
    # Our ACK of the SYN-ACK was lost and the peer resends it: an old segment (and a SYN)
    # in a synchronized state is answered with <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>.
    s = established()
    send(s, seg(SEND, seq=REMOTE_ISS, flags=S | A, mss=1460))
    assert recv(s) == [RECV]
    assert state(s) is State.ESTABLISHED


def test_peer_keepalive_is_answered() -> None:
    # RFC 9293 §3.8.4: a probe carries SEG.SEQ = RCV.NXT - 1 and must be acknowledged.
    s = established()
    send(s, seg(SEND, seq=REMOTE_ISS))
    assert recv(s) == [RECV]
    assert state(s) is State.ESTABLISHED


# ---------------------------------------------------------------------------- sending


def test_established_send() -> None:
    s = established()
    assert s.conn.send(b"abcdef") == 6
    assert recv(s) == [seg(RECV, flags=A | P, payload=b"abcdef")]
    assert s.conn.unacked == 6
    assert s.conn.get_timer() == pytest.approx(s.conn.rto)  # RFC 6298 §5.1
    ack_from_peer(s, 6)
    recv_nothing(s)
    assert s.conn.snd_una == LOCAL_ISS + 7 and s.conn.unacked == 0
    assert s.conn.get_timer() is None  # §5.2: all acknowledged, timer off


def test_send_is_cut_into_segments_of_the_peers_mss() -> None:
    s = established()
    data = bytes(range(256)) * 12
    s.conn.send(data)
    sent = recv(s)
    assert [len(x.payload) for x in sent] == [MSS, MSS, len(data) - 2 * MSS]
    assert [x.flags for x in sent] == [A, A, A | P]  # PSH marks the end of the queued data
    assert [x.seq for x in sent] == [LOCAL_ISS + 1 + i * MSS for i in range(3)]
    assert b"".join(x.payload for x in sent) == data


def test_peer_mss_is_honoured() -> None:
    s = syn_sent()
    send(s, seg(SEND, seq=REMOTE_ISS, flags=S | A, mss=500))
    recv(s)
    s.conn.send(bytes(1200))
    assert [len(x.payload) for x in recv(s)] == [500, 500, 200]


def test_send_respects_the_peers_window() -> None:
    s = established()
    ack_from_peer(s, 0, window=2 * MSS)
    s.conn.send(bytes(5 * MSS))
    assert [len(x.payload) for x in recv(s)] == [MSS, MSS]
    ack_from_peer(s, 2 * MSS, window=2 * MSS)  # the window slides
    assert [len(x.payload) for x in recv(s)] == [MSS, MSS]


def test_ack_of_new_data_restarts_the_retransmission_timer() -> None:
    # RFC 6298 §5.3: "When an ACK is received that acknowledges new data, restart the
    # retransmission timer so that it will expire after RTO seconds".
    s = established(rtt=0.1)
    s.conn.send(bytes(2 * MSS))
    recv(s)
    assert s.conn.get_timer() == pytest.approx(0.4)
    s.at(0.3)
    ack_from_peer(s, MSS)
    assert s.conn.get_timer() == pytest.approx(0.3 + s.conn.rto)


def test_window_update_is_not_a_duplicate_ack() -> None:
    # RFC 5681 §2: a duplicate ACK leaves the advertised window unchanged.
    s = established(rtt=0.1)
    s.conn.send(bytes(6 * MSS))
    sent = recv(s)
    for window in (60_000, 50_000, 40_000, 30_000):
        ack_from_peer(s, 0, window=window)
    assert recv(s) == []
    assert s.conn.info()["fast_retransmits"] == 0
    assert len(sent) == 6


def test_window_update_follows_wl1_wl2() -> None:
    # "If (SND.WL1 < SEG.SEQ or (SND.WL1 = SEG.SEQ and SND.WL2 =< SEG.ACK)), set SND.WND"
    s = established()
    s.conn.send(b"abcdef")
    recv(s)
    ack_from_peer(s, 6, window=1000)
    assert s.conn.snd_wnd == 1000
    ack_from_peer(s, 3, window=50_000)  # an old ACK (SEG.ACK < SND.WL2): no update
    assert s.conn.snd_wnd == 1000
    data_from_peer(s, 0, b"x", ack=LOCAL_ISS + 7, window=2000)  # a newer SEG.SEQ: update
    assert s.conn.snd_wnd == 2000


def test_send_buffer_limit_and_send_space() -> None:
    s = established(send_buffer=2 * MSS)
    assert s.conn.send(bytes(5000)) == 2 * MSS  # what fits
    assert s.conn.send(b"more") == 0
    assert s.conn.send_space == 0
    recv(s)
    ack_from_peer(s, 2 * MSS)
    assert events(s) == ["SendSpace"]
    assert s.conn.send_space == 2 * MSS


def test_send_space_once_a_quarter_of_the_buffer_is_free() -> None:
    # A writer blocked on a full buffer is woken when a quarter of it is free, not half:
    # under loss a hole holds SND.UNA and most of the buffer stays in flight, and waiting
    # for half left the sender with nothing new to send (docs/benchmarks.md).
    s = established(send_buffer=8 * MSS)
    assert s.conn.send(bytes(10 * MSS)) == 8 * MSS
    recv(s)
    ack_from_peer(s, MSS)  # an eighth free: the writer sleeps on
    assert events(s) == []
    assert s.conn.send_space == MSS
    ack_from_peer(s, 2 * MSS)  # a quarter free
    assert events(s) == ["SendSpace"]
    ack_from_peer(s, 3 * MSS)  # once per fill: it was not blocked again
    assert events(s) == []


def test_piggybacked_ack_on_data() -> None:
    s = established()
    data_from_peer(s, 0, b"ping")
    s.conn.send(b"pong")
    # One segment carries both the data and the acknowledgement.
    assert recv(s) == [
        seg(RECV, flags=A | P, ack=REMOTE_ISS + 5, window=WINDOW - 4, payload=b"pong")
    ]


def test_send_after_shutdown_is_an_error() -> None:
    s = established()
    s.conn.shutdown()
    with pytest.raises(ConnectionClosing):
        s.conn.send(b"late")


# ---------------------------------------------------------------------------- keepalive


def test_keepalive_probes_and_gives_up() -> None:
    s = established(keepalive=True, keepalive_idle=10.0, keepalive_interval=1.0, keepalive_count=3)
    assert s.conn.get_timer() == pytest.approx(10.0)
    probe = seg(RECV, seq=LOCAL_ISS)  # SEG.SEQ = SND.NXT - 1, no data
    assert fire(s) == [probe]
    s.at(10.5)
    send(s, SEND)  # answered: the peer is alive
    assert fire(s) == []  # at 11: idle for only 0.5 s, so wait until 20.5
    assert s.conn.get_timer() == pytest.approx(20.5)
    assert fire(s) == [probe]
    assert fire(s) == [probe]
    assert fire(s) == [probe]
    assert s.now == pytest.approx(22.5)
    assert fire(s) == []
    assert state(s) is State.CLOSED
    assert events(s) == ["TimedOut(ConnectionTimedOut)", "Closed"]


def test_keepalive_is_off_by_default() -> None:
    s = established()
    assert s.conn.get_timer() is None


def test_reset_while_data_is_unread() -> None:
    s = established()
    data_from_peer(s, 0, b"abc")
    send(s, seg(SEND, seq=REMOTE_ISS + 4, flags=R))
    assert state(s) is State.CLOSED
    assert events(s) == ["DataAvailable", "Reset(ConnectionReset)", "Closed"]
