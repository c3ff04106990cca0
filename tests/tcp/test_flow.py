"""Flow control and acknowledgement policy: window scaling (RFC 7323 §2), zero windows and
persist probes, silly window syndrome avoidance on both sides (RFC 9293 §3.8.6.2), Nagle
(§3.7.4), delayed ACKs (§3.8.6.3, RFC 5681 §4.2), and timestamps with PAWS (RFC 7323)."""

from __future__ import annotations

import random

import pytest

from synack.tcp import Connection, State
from synack.tcp.connection import (
    ACK_POINTS_MAX,
    PAWS_IDLE_LIMIT,
    QUICKACK_SEGMENTS,
    window_scale_for,
)
from synack.wire.tcp import Segment, build_segment

from .conftest import (
    LOCAL_IP,
    LOCAL_ISS,
    MSS,
    PEER_MSS,
    RECV,
    REMOTE_IP,
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
    events,
    fire,
    listen,
    recv,
    recv_nothing,
    seg,
    send,
    state,
    syn_sent,
    tsval,
)

# Payloads are random bytes (a zero-filled one would hide a checksum slip).
RANDOM = random.Random(5681).randbytes(64 * MSS)


def data_from_peer(s: Sock, offset: int, payload: bytes, **changes: object) -> None:
    fields: dict[str, object] = {"flags": A | P}
    fields.update(changes)
    send(s, seg(SEND, seq=REMOTE_ISS + 1 + offset, payload=payload, **fields))


def ack_from_peer(s: Sock, acked: int, **changes: object) -> None:
    send(s, seg(SEND, ack=LOCAL_ISS + 1 + acked, **changes))


def payload_sizes(s: Sock) -> list[int]:
    return [len(x.payload) for x in recv(s)]


# ---------------------------------------------------------------------------- window scaling


@pytest.mark.parametrize(
    ("buffer", "shift"),
    [
        (2920, 0),
        (65535, 0),
        (65536, 1),
        (131071, 1),
        (131072, 2),
        (1 << 20, 5),
        (2 << 20, 6),
        (1 << 30, 14),
        (1 << 40, 14),
    ],
)
def test_window_scale_for_a_buffer(buffer: int, shift: int) -> None:
    assert window_scale_for(buffer) == shift


def test_window_scaling_negotiated() -> None:
    s = established(window_scaling=True, peer={"wscale": 7})
    # "The Window field in a segment where the SYN bit is set MUST NOT be scaled."
    assert s.conn.snd_wnd == WINDOW
    ack_from_peer(s, 0, window=100)
    assert s.conn.snd_wnd == 100 << 7
    # Our window: 2 MiB of buffer in units of 2**6.
    data_from_peer(s, 0, b"x")
    assert recv(s) == [seg(RECV, ack=REMOTE_ISS + 2, window=(2 << 20) >> 6)]
    assert s.conn.info()["window_scaling"]


def test_window_scaling_needs_both_syns() -> None:
    s = established(window_scaling=True)  # the peer sent no wscale
    ack_from_peer(s, 0, window=100)
    assert s.conn.snd_wnd == 100
    data_from_peer(s, 0, b"x")
    assert recv(s) == [seg(RECV, ack=REMOTE_ISS + 2, window=WINDOW - 1)]
    assert not s.conn.info()["window_scaling"]


def test_window_scale_above_14_is_taken_as_14() -> None:
    # RFC 7323 §2.3: "... larger than 14, the TCP SHOULD log the error but MUST use 14"
    s = established(window_scaling=True, peer={"wscale": 20})
    ack_from_peer(s, 0, window=1)
    assert s.conn.snd_wnd == 1 << 14


def test_passive_open_answers_wscale() -> None:
    s = listen(window_scaling=True, receive_buffer=1 << 20)
    send(s, seg(SEND, seq=REMOTE_ISS, ack=0, flags=S, mss=PEER_MSS, wscale=3))
    assert recv(s) == [seg(RECV, seq=LOCAL_ISS, flags=S | A, mss=1460, wscale=5)]
    send(s, seg(SEND, window=1000))
    assert state(s) is State.ESTABLISHED
    assert s.conn.snd_wnd == 8000  # the ACK completing the handshake is scaled


def test_large_transfer_uses_the_scaled_window() -> None:
    s = established(window_scaling=True, peer={"wscale": 4}, initial_window=100)
    ack_from_peer(s, 0, window=20_000)  # 320 000 bytes
    s.conn.send(bytes(300_000))
    assert sum(payload_sizes(s)) > 65535  # more than an unscaled window allows


# ---------------------------------------------------------------------------- zero window


def zero_window(**cfg: object) -> Sock:
    s = established(rtt=0.1, **cfg)  # type: ignore[arg-type]
    ack_from_peer(s, 0, window=0)
    s.conn.send(b"hello")
    recv_nothing(s)
    return s


PROBE = seg(RECV, seq=LOCAL_ISS)  # SND.UNA - 1: the peer must answer with its window


def test_zero_window_probes_back_off() -> None:
    s = zero_window()
    # RFC 9293 §3.8.6.1: the first probe after an RTO, then exponentially further apart.
    assert s.conn.get_timer() == pytest.approx(0.4)
    times = []
    for _ in range(5):
        assert fire(s) == [PROBE]
        times.append(s.now)
    assert times == pytest.approx([0.4, 1.0, 2.2, 4.6, 9.4])


def test_window_opening_releases_the_data() -> None:
    s = zero_window()
    fire(s)
    s.at(0.5)
    ack_from_peer(s, 0, window=1000)
    assert recv(s) == [seg(RECV, flags=A | P, payload=b"hello")]
    assert s.conn.get_timer() == pytest.approx(0.5 + s.conn.rto)  # the RTO, not the persist timer


def test_answered_probes_never_give_up() -> None:
    # RFC 9293 §3.8.6.1: "the sender SHOULD NOT close the connection as long as the
    # receiver continues to respond": persist for as long as the peer answers.
    s = zero_window(max_retransmits=3, rto_max=2.0)
    for _ in range(30):
        assert fire(s) == [PROBE]
        ack_from_peer(s, 0, window=0)
        recv_nothing(s)
    assert state(s) is State.ESTABLISHED
    ack_from_peer(s, 0, window=100)
    assert payload_sizes(s) == [5]


def test_unanswered_probes_give_up() -> None:
    s = zero_window(max_retransmits=3)
    for _ in range(3):
        assert fire(s) == [PROBE]
    assert fire(s) == []
    assert state(s) is State.CLOSED
    assert events(s) == ["TimedOut(ConnectionTimedOut)", "Closed"]


def test_bytes_that_arrived_before_a_timeout_are_read_before_its_error() -> None:
    # receive and receive_into alike: what arrived is read first, then the error is
    # raised; an empty target reads nothing and raises nothing while bytes wait.
    s = zero_window(max_retransmits=3)
    data_from_peer(s, 0, b"last words", window=0)  # the window stays shut
    for _ in range(10):  # a delayed ACK, three probes, then the end
        if state(s) is State.CLOSED:
            break
        fire(s)
    assert state(s) is State.CLOSED and s.conn.error is not None
    assert s.conn.receive_into(bytearray()) == 0
    target = bytearray(4)
    assert s.conn.receive_into(target) == 4 and target == b"last"
    assert s.conn.receive() == b" words"
    with pytest.raises(type(s.conn.error)):
        s.conn.receive_into(bytearray(10))
    with pytest.raises(type(s.conn.error)):
        s.conn.receive_into(bytearray())


def test_reads_across_and_inside_segments_come_out_in_order() -> None:
    # The received bytes are queued one payload per segment; a read may end inside
    # one, span several, or take one whole (handed out as it is, without a copy).
    s = established()
    for k in range(6):
        data_from_peer(s, k * MSS, RANDOM[k * MSS : (k + 1) * MSS])
    recv(s)
    whole = s.conn._rcv_chunks[0]
    first = s.conn.receive(MSS)
    assert first is whole  # a whole payload: no copy
    parts = [first, s.conn.receive(100), s.conn.receive(MSS)]  # inside, then across
    view = bytearray(2 * MSS + 7)
    n = s.conn.receive_into(view)  # across three payloads, from inside one
    assert n == len(view)
    parts.append(bytes(view))
    for k in range(6, 8):
        data_from_peer(s, k * MSS, RANDOM[k * MSS : (k + 1) * MSS])
    parts.append(s.conn.receive())
    assert type(parts[-1]) is bytes
    assert b"".join(parts) == RANDOM[: 8 * MSS]
    assert s.conn.receive_available == 0


def test_payloads_read_one_by_one_are_let_go_and_the_front_cut_off() -> None:
    # A reader taking one payload at a time from a long queue: each payload read is
    # dropped at once, and the list's read-out front is cut off in bulk, not per read.
    s = established()
    count = 40  # inside the first window
    for k in range(count):
        data_from_peer(s, k * MSS, RANDOM[k * MSS : (k + 1) * MSS])
    got = []
    longest = 0
    for k in range(count):
        got.append(s.conn.receive(MSS))
        longest = max(longest, len(s.conn._rcv_chunks))
        assert not any(s.conn._rcv_chunks[: s.conn._rcv_first])  # nothing read is held
        if k + 1 < 32:
            assert s.conn._rcv_first == k + 1  # not cut off on each read
        elif k + 1 == 32:  # 32 read, and more than half: the read front is cut off
            assert s.conn._rcv_first == 0
            assert len(s.conn._rcv_chunks) == count - 32
    assert b"".join(got) == RANDOM[: count * MSS]
    assert s.conn._rcv_chunks == [] and s.conn._rcv_first == 0
    assert longest == count


def test_we_advertise_a_zero_window_and_reopen_it() -> None:
    s = established(receive_buffer=4000)
    data_from_peer(s, 0, bytes(4000))
    assert recv(s) == [seg(RECV, ack=REMOTE_ISS + 4001, window=0)]
    # A window probe (one byte past the window) is answered, still with window 0.
    data_from_peer(s, 4000, b"?")
    assert recv(s) == [seg(RECV, ack=REMOTE_ISS + 4001, window=0)]
    # Reading a segment's worth reopens the window at once (RFC 9293 §3.8.6.2.2).
    assert len(s.conn.receive(1500)) == 1500
    assert recv(s) == [seg(RECV, ack=REMOTE_ISS + 4001, window=1500)]


def test_zero_window_still_accepts_acks() -> None:
    # §3.10.7.4: "If the RCV.WND is zero, no segments will be acceptable, but special
    # allowance should be made to accept valid ACKs, URGs, and RSTs."
    s = established(receive_buffer=4000)
    s.conn.send(b"abc")
    recv(s)
    data_from_peer(s, 0, bytes(4000))
    assert recv(s) == [seg(RECV, seq=LOCAL_ISS + 4, ack=REMOTE_ISS + 4001, window=0)]
    data_from_peer(s, 4000, b"?", ack=LOCAL_ISS + 4)  # a probe that also ACKs our data
    assert s.conn.snd_una == LOCAL_ISS + 4
    assert recv(s) == [seg(RECV, seq=LOCAL_ISS + 4, ack=REMOTE_ISS + 4001, window=0)]


def test_right_edge_of_our_window_never_recedes() -> None:
    # RFC 9293 §3.8.6.2.2 / RFC 7323 §2.4: RCV.NXT + RCV.WND does not move left.
    s = established(receive_buffer=20_000)
    edges = []
    for i in range(5):
        data_from_peer(s, 1000 * i, bytes(1000))
        [ack] = recv(s)
        edges.append(ack.ack + ack.window)
        if i == 2:
            s.conn.receive(500)  # less than a segment: the edge does not move either
    assert edges == [REMOTE_ISS + 1 + 20_000] * 5


def test_fin_waits_behind_data_held_by_a_zero_window() -> None:
    s = established(rtt=0.1)
    ack_from_peer(s, 0, window=0)
    s.conn.send(b"abc")
    s.conn.shutdown()
    recv_nothing(s)  # RFC 9293 §3.10.4: the FIN goes after all preceding SENDs
    assert state(s) is State.FIN_WAIT_1
    ack_from_peer(s, 0, window=1000)
    assert recv(s) == [seg(RECV, flags=F | P | A, payload=b"abc")]


# ---------------------------------------------------------------------------- SWS avoidance


def test_receiver_sws_no_tiny_window_updates() -> None:
    # §3.8.6.2.2: the receiver keeps the right edge where it is until it can move by
    # min(half the buffer, one MSS).
    s = established(receive_buffer=4000)
    data_from_peer(s, 0, bytes(4000))
    recv(s)
    assert len(s.conn.receive(100)) == 100
    recv_nothing(s)  # no window update for 100 bytes
    data_from_peer(s, 4000, b"?")  # a probe: the answer still says 0
    assert recv(s) == [seg(RECV, ack=REMOTE_ISS + 4001, window=0)]
    assert len(s.conn.receive(1300)) == 1300
    recv_nothing(s)  # 1400 < MSS
    assert len(s.conn.receive(100)) == 100
    assert recv(s) == [seg(RECV, ack=REMOTE_ISS + 4001, window=1500)]


def test_sender_sws_holds_a_small_segment_until_the_override_timeout() -> None:
    # §3.8.6.2.1: with more queued than the window allows, send only a full segment, or
    # at least half the largest window the peer has offered (Fs = 1/2) ...
    s = established(rtt=0.1)
    ack_from_peer(s, 0, window=1000)
    s.conn.send(bytes(3000))
    recv_nothing(s)
    # ... or what fits once the override timeout (here the persist timer) expires.
    sent = fire(s)
    assert [len(x.payload) for x in sent] == [1000]
    assert s.now == pytest.approx(0.4)


def test_sender_sws_sends_half_the_max_window() -> None:
    # §3.8.6.2.1 (3): send "if at least a fraction Fs of the maximum window can be sent",
    # Fs = 1/2. The peer's largest window is 2000 (its SYN-ACK).
    s = syn_sent()
    send(s, seg(SEND, seq=REMOTE_ISS, flags=S | A, mss=PEER_MSS, window=2000))
    recv(s)
    ack_from_peer(s, 0, window=900)  # less than half: hold
    s.conn.send(bytes(5000))
    recv_nothing(s)
    ack_from_peer(s, 0, window=1200)  # at least half: worth a short segment
    assert payload_sizes(s) == [1200]


def test_all_queued_data_goes_even_if_small() -> None:
    s = established()
    ack_from_peer(s, 0, window=1000)
    s.conn.send(b"tiny")
    assert payload_sizes(s) == [4]


# ---------------------------------------------------------------------------- Nagle


def test_nagle_holds_small_segments_while_one_is_unacknowledged() -> None:
    s = established()
    s.conn.send(b"a")
    assert recv(s) == [seg(RECV, flags=A | P, payload=b"a")]
    s.conn.send(b"b")
    recv_nothing(s)
    s.conn.send(b"c")
    recv_nothing(s)
    ack_from_peer(s, 1)
    assert recv(s) == [seg(RECV, seq=LOCAL_ISS + 2, flags=A | P, payload=b"bc")]


def test_nagle_never_holds_a_full_segment() -> None:
    s = established()
    s.conn.send(b"a")
    recv(s)
    s.conn.send(bytes(MSS + 10))
    assert payload_sizes(s) == [MSS]
    ack_from_peer(s, 1 + MSS)
    assert payload_sizes(s) == [10]


def test_no_delay_sends_at_once() -> None:
    s = established(no_delay=True)
    for ch in b"abc":
        s.conn.send(bytes([ch]))
        assert payload_sizes(s) == [1]


# ---------------------------------------------------------------------------- delayed ACKs


def past_quickack(s: Sock) -> int:
    """The first segments of a connection are acknowledged at once (as Linux's quick-ACK
    mode does, so slow start is not slowed); send enough of them to leave that mode.
    Returns how many bytes the peer has sent."""
    for offset in range(20):
        data_from_peer(s, offset, b"q")
        if not recv(s):
            fire(s)  # that one was delayed: quick-ACK mode is over
            return offset + 1
    raise AssertionError("every segment was acknowledged at once")


def test_lone_segment_is_acked_after_the_delayed_ack_timeout() -> None:
    s = established(delayed_ack_timeout=0.04)
    offset = past_quickack(s)
    s.at(10.0)
    data_from_peer(s, offset, b"request")
    recv_nothing(s)
    assert s.conn.get_timer() == pytest.approx(10.04)
    [delayed] = fire(s)
    assert delayed.ack == REMOTE_ISS + 1 + offset + 7


def test_delayed_ack_timeout_is_bounded_by_500ms() -> None:
    # RFC 9293 §3.8.6.3: "the delay MUST be less than 0.5 seconds"; the default is 40 ms.
    s = established()
    offset = past_quickack(s)
    s.at(5.0)
    data_from_peer(s, offset, b"x")
    recv_nothing(s)
    deadline = s.conn.get_timer()
    assert deadline is not None and deadline - 5.0 < 0.5


def test_delayed_ack_timer_counts_from_the_first_unacknowledged_segment() -> None:
    # RFC 5681 §4.2: an ACK "MUST be generated within 500 ms of the arrival of the first
    # unacknowledged packet": later small segments do not push the timer back.
    s = established(delayed_ack_timeout=0.04)
    offset = past_quickack(s)
    s.at(10.0)
    data_from_peer(s, offset, b"a")
    s.at(10.03)
    data_from_peer(s, offset + 1, b"b")
    recv_nothing(s)
    assert s.conn.get_timer() == pytest.approx(10.04)
    assert [x.ack for x in fire(s)] == [REMOTE_ISS + 1 + offset + 2]


def test_every_second_full_segment_is_acked_at_once() -> None:
    # RFC 5681 §4.2: "an ACK SHOULD be generated for at least every second full-sized segment"
    s = established()
    offset = past_quickack(s)
    data_from_peer(s, offset, bytes(MSS))
    recv_nothing(s)
    data_from_peer(s, offset + MSS, bytes(MSS))
    assert [x.ack for x in recv(s)] == [REMOTE_ISS + 1 + offset + 2 * MSS]
    assert s.conn.get_timer() is None  # the delayed-ACK timer is cancelled


def test_delayed_ack_rides_on_data() -> None:
    s = established()
    offset = past_quickack(s)
    data_from_peer(s, offset, b"ping")
    recv_nothing(s)
    s.conn.send(b"pong")
    [reply] = recv(s)
    assert reply.payload == b"pong" and reply.ack == REMOTE_ISS + 1 + offset + 4
    send(s, seg(SEND, seq=REMOTE_ISS + 1 + offset + 4, ack=LOCAL_ISS + 5))
    # No separate ACK follows when the timer would have fired.
    s.at(s.now + 1.0)
    s.conn.handle_timer(s.now)
    recv_nothing(s)


def test_delayed_acks_off() -> None:
    s = established(delayed_ack=False)
    for i in range(20):
        data_from_peer(s, i, b"x")
        assert len(recv(s)) == 1


def handed_over(s: Sock, segments: list[Segment], *, batched: bool) -> None:
    """The peer's `segments` as a driver hands over one read: in one call, or one call
    each, with nothing sent in between either way."""
    if batched:
        data = [build_segment(x, src=REMOTE_IP, dst=LOCAL_IP) for x in segments]
        assert s.conn.handle_segments(data, 0, s.now) == len(data)
    else:
        for x in segments:
            send(s, x)


def ts_past_quickack(s: Sock) -> int:
    """`past_quickack` with timestamps: the bytes the peer has sent."""
    for k in range(QUICKACK_SEGMENTS):
        data_from_peer(s, k, b"q", ts=(1100 + k, tsval(0)))
        assert len(recv(s)) == 1
    return QUICKACK_SEGMENTS


def full_segment(s: Sock, offset: int, k: int, **changes: object) -> Segment:
    """The peer's k-th full segment after `offset` bytes, TSval 2000 + k."""
    full = s.conn.snd_mss
    fields: dict[str, object] = {"flags": A | P, "ts": (2000 + k, tsval(0))}
    fields.update(changes)
    return seg(
        SEND,
        seq=REMOTE_ISS + 1 + offset + k * full,
        payload=RANDOM[k * full : (k + 1) * full],
        **fields,
    )


@pytest.mark.parametrize("batched", [False, True], ids=["one by one", "one batch"])
def test_a_burst_read_at_once_is_acked_for_every_second_segment(batched: bool) -> None:
    # RFC 5681 §4.2: "an ACK SHOULD be generated for at least every second full-sized
    # segment", also when a whole burst (a GRO read) is taken in before anything is sent:
    # one ACK for all nine would be a stretch ACK. Each ACK echoes the TSval of the
    # segment that began what it acknowledges (RFC 7323 §4.3), and no ACK's right edge
    # falls below an earlier one's (RFC 7323 §2.4).
    s = ts_established(window_scaling=True)
    offset = ts_past_quickack(s)
    full = s.conn.snd_mss  # the peer's full segments carry the same options as ours
    handed_over(s, [full_segment(s, offset, k) for k in range(9)], batched=batched)
    acks = recv(s)
    start = REMOTE_ISS + 1 + offset
    assert [x.ack - start for x in acks] == [2 * full, 4 * full, 6 * full, 8 * full, 9 * full]
    assert [x.options.timestamps[1] for x in acks] == [2000, 2002, 2004, 2006, 2008]
    assert all(not x.payload and x.flags == A for x in acks)
    edges = [x.ack + (x.window << s.conn._rcv_wscale) for x in acks]
    assert edges == sorted(edges)
    assert s.conn.receive() == b"q" * offset + RANDOM[: 9 * full]


def test_acks_owed_within_one_pass_are_capped_and_spread_over_it() -> None:
    # A pass that reads 40 segments owes 20 ACKs; at most ACK_POINTS_MAX go before the
    # pass's last, spread evenly: a full list keeps every second point, and later ones
    # come twice as far apart (here, after three thinnings, 2 points 16 segments apart).
    # That is about Linux's one ACK per GRO packet, so that a large pass does not cost
    # the sender an ACK per two segments of it. Each still echoes the TSval of the
    # first segment it acknowledges (RFC 7323 §4.3).
    s = ts_established()
    offset = ts_past_quickack(s)
    full = s.conn.snd_mss
    n = 40  # within the window the handshake offered
    handed_over(s, [full_segment(s, offset, k) for k in range(n)], batched=True)
    acks = recv(s)
    start = REMOTE_ISS + 1 + offset
    assert ACK_POINTS_MAX == 4  # the figures below follow from it
    assert [(x.ack - start) // full for x in acks] == [16, 32, 40]
    assert [x.options.timestamps[1] - 2000 for x in acks] == [0, 16, 32]
    assert s.conn.receive() == b"q" * offset + RANDOM[: n * full]


@pytest.mark.parametrize("batched", [False, True], ids=["one by one", "one batch"])
def test_the_ack_that_stands_for_a_point_echoes_its_first_segment(batched: bool) -> None:
    # Two segments owe an ACK; a segment that brings no data follows in the same read.
    # The one ACK sent echoes the first segment's TSval, not the later one's (RFC 7323
    # §4.3: the echo measures from the earliest segment acknowledged).
    s = ts_established()
    offset = ts_past_quickack(s)
    full = s.conn.snd_mss
    no_data = seg(SEND, seq=REMOTE_ISS + 1 + offset + 2 * full, ts=(2050, tsval(0)))
    handed_over(
        s, [full_segment(s, offset, 0), full_segment(s, offset, 1), no_data], batched=batched
    )
    acks = recv(s)
    assert [(x.ack - REMOTE_ISS - 1 - offset, x.options.timestamps[1]) for x in acks] == [
        (2 * full, 2000)
    ]


@pytest.mark.parametrize("batched", [False, True], ids=["one by one", "one batch"])
def test_acks_owed_within_a_read_leave_in_the_order_they_fell_due(batched: bool) -> None:
    # The second segment arrives first: its duplicate ACK is queued at once. The
    # ACK owed after the third must follow it, not jump ahead of it.
    s = ts_established()
    offset = ts_past_quickack(s)
    full = s.conn.snd_mss
    burst = [full_segment(s, offset, k) for k in (1, 0, 2, 3)]
    handed_over(s, burst, batched=batched)
    acks = [x.ack - REMOTE_ISS - 1 - offset for x in recv(s)]
    assert acks == [0, 3 * full, 4 * full]


def test_a_large_pass_does_not_ask_for_a_point_at_every_segment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Once a pass's list of points is full, the rule "an ACK every second segment" holds
    # at every later segment; the receiver's loop must not call `_owe_ack` for each of
    # them to learn that none is due (that was 6.5% of a bulk receiver's profile). Here
    # the points fall at 2, 4, 6, 8, 12, 16, 24, 32 and thinnings at 10, 20, 40.
    s = established(receive_buffer=1 << 22, window_scaling=True)
    offset = past_quickack(s)
    calls = 0
    owe_ack = Connection._owe_ack

    def counting(self: Connection, rcv_nxt: int, ts_recent: int, last: int) -> int:
        nonlocal calls
        calls += 1
        return owe_ack(self, rcv_nxt, ts_recent, last)

    monkeypatch.setattr(Connection, "_owe_ack", counting)
    n = 40
    burst = [
        seg(
            SEND,
            seq=REMOTE_ISS + 1 + offset + k * MSS,
            flags=A | P,
            payload=RANDOM[k * MSS : (k + 1) * MSS],
        )
        for k in range(n)
    ]
    handed_over(s, burst, batched=True)
    assert [(x.ack - REMOTE_ISS - 1 - offset) // MSS for x in recv(s)] == [16, 32, 40]
    assert calls == 11


@pytest.mark.parametrize("batched", [False, True], ids=["one by one", "one batch"])
def test_the_ack_of_a_fin_stands_for_the_one_owed_for_its_data(batched: bool) -> None:
    s = established()
    offset = past_quickack(s)
    burst = [
        seg(SEND, seq=REMOTE_ISS + 1 + offset, flags=A | P, payload=RANDOM[:MSS]),
        seg(
            SEND, seq=REMOTE_ISS + 1 + offset + MSS, flags=A | P | F, payload=RANDOM[MSS : 2 * MSS]
        ),
    ]
    handed_over(s, burst, batched=batched)
    assert [x.ack for x in recv(s)] == [REMOTE_ISS + 1 + offset + 2 * MSS + 1]
    assert state(s) is State.CLOSE_WAIT


# ---------------------------------------------------------------------------- timestamps and PAWS


def ts_established(**cfg: object) -> Sock:
    """Timestamps negotiated; the peer's clock reads 1000 at our time 0."""
    s = syn_sent(timestamps=True, **cfg)
    send(s, seg(SEND, seq=REMOTE_ISS, flags=S | A, mss=PEER_MSS, ts=(1000, tsval(0))))
    assert recv(s) == [seg(RECV, ts=(tsval(0), 1000))]
    return s


def test_timestamps_on_every_segment() -> None:
    s = ts_established()
    s.at(2.0)
    data_from_peer(s, 0, b"abc", ts=(3000, tsval(0)))
    assert recv(s) == [seg(RECV, ack=REMOTE_ISS + 4, window=WINDOW - 3, ts=(tsval(2.0), 3000))]
    assert s.conn.snd_mss == MSS - 12  # the 12 option bytes come out of each segment


def test_rtt_is_measured_from_the_echo() -> None:
    s = ts_established()
    s.at(1.0)
    s.conn.send(b"abc")
    [sent] = recv(s)
    assert sent.options.timestamps == (tsval(1.0), 1000)
    s.at(1.25)
    ack_from_peer(s, 3, ts=(1250, tsval(1.0)))
    # The handshake (all at time 0) sampled 0 s; this echo samples 0.25 s, and with
    # alpha = 1/8 (RFC 6298 §2.3) SRTT moves an eighth of the way.
    assert s.conn.srtt == pytest.approx(0.25 / 8)


def test_paws_drops_an_old_segment() -> None:
    # RFC 7323 §5.3 R1: SEG.TSval < TS.Recent: not acceptable; send an ACK and drop it.
    s = ts_established()
    data_from_peer(s, 0, b"new", ts=(2000, tsval(0)))
    recv(s)
    data_from_peer(s, 3, b"old", ts=(1999, tsval(0)))
    assert recv(s) == [seg(RECV, ack=REMOTE_ISS + 4, window=WINDOW - 3, ts=(tsval(0), 2000))]
    assert s.conn.receive() == b"new"


def test_paws_across_the_timestamp_wrap() -> None:
    s = syn_sent(timestamps=True)
    send(s, seg(SEND, seq=REMOTE_ISS, flags=S | A, mss=PEER_MSS, ts=(0xFFFFFFF0, tsval(0))))
    recv(s)
    data_from_peer(s, 0, b"new", ts=(0x10, tsval(0)))  # newer, modulo 2**32
    assert s.conn.receive() == b"new"
    data_from_peer(s, 3, b"old", ts=(0xFFFFFFF8, tsval(0)))  # older, modulo 2**32
    recv(s)
    assert s.conn.receive() == b""


def test_paws_does_not_apply_to_rst() -> None:
    # R1 applies only when "the RST bit is off".
    s = ts_established()
    data_from_peer(s, 0, b"new", ts=(2000, tsval(0)))
    recv(s)
    send(s, seg(SEND, seq=REMOTE_ISS + 4, flags=R, ts=(5, 0)))
    assert state(s) is State.CLOSED


def test_paws_ignores_a_ts_recent_older_than_24_days() -> None:
    # RFC 7323 §5.5: after 24 days idle TS.Recent may have wrapped; accept and resync.
    s = ts_established()
    s.at(PAWS_IDLE_LIMIT + 1)
    data_from_peer(s, 0, b"late", ts=(500, tsval(0)))
    assert s.conn.receive() == b"late"


def test_ts_recent_is_not_taken_from_a_segment_beyond_last_ack_sent() -> None:
    # RFC 7323 §4.3: update TS.Recent only if SEG.SEQ =< Last.ACK.sent, so an out-of-order
    # segment does not move the echo forward.
    s = ts_established()
    data_from_peer(s, 100, b"ooo", ts=(5000, tsval(0)))
    assert [x.options.timestamps for x in recv(s)] == [(tsval(0), 1000)]


def test_ts_recent_is_not_taken_from_a_segment_with_an_unacceptable_ack() -> None:
    """RFC 5961 §5.2: "The ACK value is considered acceptable only if it is in the range
    of ((SND.UNA - MAX.SND.WND) <= SEG.ACK <= SND.NXT). All incoming segments whose ACK
    value doesn't satisfy the above condition MUST be discarded and an ACK sent back."

    RFC 7323 §4.3 (2), "If: SEG.TSval >= TS.Recent and SEG.SEQ <= Last.ACK.sent then
    SEG.TSval is copied to TS.Recent", concerns the segments TCP accepts; a discarded
    one must leave TS.Recent alone, or PAWS (§5.3 R1) then discards the next valid one."""
    s = ts_established()
    # In sequence, but acknowledging data we never sent, with a TSval from far ahead.
    data_from_peer(s, 0, b"bad", ack=LOCAL_ISS + 1 + 5000, ts=(1_000_000, tsval(0)))
    # The challenge ACK echoes the TS.Recent of the last acceptable segment.
    assert recv(s) == [seg(RECV, ts=(tsval(0), 1000))]
    assert s.conn.receive() == b""
    # The next valid segment carries the peer's real clock: PAWS accepts it.
    data_from_peer(s, 0, b"good", ts=(1001, tsval(0)))
    assert s.conn.receive() == b"good"
