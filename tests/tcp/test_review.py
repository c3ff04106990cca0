"""An RFC review of the TCP core: each test asserts what the RFC (or Linux, where the RFC
leaves room) does, names the clause, and failed against the core as reviewed (037b22a;
the one that passes now was fixed in 03af6cc and stays as its regression test).

They are written in the per-state harness's style (conftest.py): the test plays the peer,
builds states with real segments, and runs on virtual time.
"""

from __future__ import annotations

from synack.tcp import Config, Connection, ConnectionReset, State, TCPError
from synack.tcp.host import Host
from synack.tcp.listener import Listener
from synack.testing import FakeNetwork, connected_pair
from synack.wire.seq import MASK, seq_gt
from synack.wire.tcp import (
    HEADER,
    Flags,
    Options,
    Segment,
    build_segment,
    fill_checksum,
    parse_segment,
)

from .conftest import (
    LOCAL,
    LOCAL_IP,
    LOCAL_ISS,
    MSS,
    PEER_MSS,
    REMOTE,
    REMOTE_IP,
    REMOTE_ISS,
    SECRET,
    SEND,
    A,
    F,
    P,
    R,
    S,
    Sock,
    advance,
    closed,
    config,
    established,
    events,
    fin_wait_2,
    fire,
    recv,
    recv_nothing,
    seg,
    send,
    state,
    syn_sent,
    tsval,
)

SACK_PEER = {"sack_permitted": True}


def offsets(segments: list[Segment]) -> list[int]:
    """Where each segment's data starts in our stream."""
    return [(x.seq - LOCAL_ISS - 1) & MASK for x in segments]


def data_segments(segments: list[Segment]) -> list[Segment]:
    return [x for x in segments if x.payload]


def our(offset: int) -> int:
    """The sequence number of byte `offset` of our stream."""
    return LOCAL_ISS + 1 + offset


# ---------------------------------------------------------------------------- SYN cookies


def _cookie_handshake(client_wscale: int, window: int) -> Connection:
    """A handshake completed through a SYN cookie (backlog 0: every SYN gets one)."""
    listener = Listener(LOCAL, config(timestamps=True, window_scaling=True), backlog=0)
    syn = Segment(
        REMOTE[1],
        LOCAL[1],
        seq=REMOTE_ISS,
        flags=Flags.SYN,
        window=65535,
        options=Options(mss=1460, wscale=client_wscale, timestamps=(5000, 0)),
    )
    listener.handle_segment(build_segment(syn, src=REMOTE_IP, dst=LOCAL_IP), REMOTE_IP, 1.0)
    [(raw, _)] = listener.segments_to_send(1.0)
    synack = parse_segment(raw, src=LOCAL_IP, dst=REMOTE_IP)
    assert synack.flags == S | A and listener.syn_queue_length == 0  # a cookie, no state
    assert synack.options.timestamps is not None
    ack = Segment(
        REMOTE[1],
        LOCAL[1],
        seq=REMOTE_ISS + 1,
        ack=(synack.seq + 1) & MASK,
        flags=Flags.ACK,
        window=window,
        options=Options(timestamps=(5001, synack.options.timestamps[0])),
    )
    listener.handle_segment(build_segment(ack, src=REMOTE_IP, dst=LOCAL_IP), REMOTE_IP, 1.1)
    conn = listener.accept()
    assert conn is not None and conn.state is State.ESTABLISHED
    return conn


def test_syn_cookie_keeps_the_clients_window_scale() -> None:
    # RFC 7323 §2.3: the peer's windows are shifted by the scale *the peer* sent in its SYN
    # ("Snd.Wind.Shift"). RFC 4987 §3.6 / Linux cookie_init_timestamp(): what the cookie
    # cannot hold rides in the low TSval bits, and for window scale that is the *client's*
    # shift (ireq->snd_wscale). The listener encodes its own shift (window_scale_for of
    # its receive buffer, 6 for 2 MiB), so a client with shift 2 advertising 1000 is read
    # as offering 64000 bytes instead of 4000: we overrun its buffer.
    conn = _cookie_handshake(client_wscale=2, window=1000)
    assert conn.snd_wnd == 1000 << 2


def test_listener_ignores_a_segment_whose_data_offset_runs_past_it() -> None:
    # RFC 9293 §3.1 (Data Offset) and §3.10.7: a segment whose header runs past its end is
    # not a segment; drop it. While the SYN queue overflows, the listener parsed such a
    # SYN's options for a cookie and raised IndexError (found by test_fuzz.py; fixed in
    # 03af6cc, kept here as the regression).
    listener = Listener(LOCAL, config(), backlog=0)
    for offset in (6, 15):
        buf = bytearray(
            HEADER.pack(REMOTE[1], LOCAL[1], REMOTE_ISS, 0, offset << 4, S, 65535, 0, 0)
        )
        fill_checksum(buf, REMOTE_IP, LOCAL_IP)
        listener.handle_segment(bytes(buf), REMOTE_IP, 1.0)
    assert listener.segments_to_send(1.0) == []


# ---------------------------------------------------------------------------- OPEN again


def test_open_after_a_connection_ended_starts_a_fresh_tcb() -> None:
    # RFC 9293 §3.10.1 OPEN in CLOSED: "Create a new transmission control block (TCB)".
    # Connect again on a Connection whose first incarnation was reset with data unread:
    # the old receive buffer and the old error stay in the "new" TCB, so the dead
    # connection's bytes are delivered as the start of the new stream (test_fuzz.py found
    # the receive buffer then growing past its size), and the old ConnectionReset is
    # raised by a later receive(). Refusing to reopen (a TCPError) would do as well.
    s = established()
    send(s, seg(SEND, flags=A | P, payload=b"stale"))
    send(s, seg(SEND, seq=REMOTE_ISS + 6, flags=R))
    recv(s)
    assert state(s) is State.CLOSED and isinstance(s.conn.error, ConnectionReset)
    s.at(100.0)
    try:
        s.conn.connect(s.now)
    except TCPError:
        return
    [syn] = recv(s)
    peer_iss = 7_000_000
    send(s, seg(SEND, seq=peer_iss, ack=syn.seq + 1, flags=S | A, mss=PEER_MSS))
    recv(s)
    assert state(s) is State.ESTABLISHED
    send(s, seg(SEND, seq=peer_iss + 1, ack=syn.seq + 1, flags=A | P, payload=b"new"))
    assert s.conn.receive() == b"new"
    assert s.conn.error is None


def test_abort_discards_unread_data() -> None:
    # RFC 9293 §3.10.5 ABORT: "all pending SENDs and RECEIVEs [are] aborted ... and the TCB
    # deleted"; Linux's close() with SO_LINGER 0 frees the receive queue. abort() clears
    # the send buffer but leaves received bytes readable, and (above) they survive into
    # the next OPEN.
    s = established()
    send(s, seg(SEND, flags=A | P, payload=b"unread"))
    recv(s)
    s.conn.abort()
    assert s.conn.receive_available == 0


def test_close_with_unread_data_keeps_time_wait() -> None:
    # RFC 9293 §3.3.2/§3.6.1: "When a connection is closed actively, it MUST linger in the
    # TIME-WAIT state for a time 2xMSL" (MUST-13), so that old duplicates die before the
    # four-tuple is reused. A half-closed application whose peer answered with data and
    # FIN is in TIME-WAIT; if it then closes without reading, close() takes the
    # unread-data path, abort(), which forgets the connection at once (the Host frees the
    # four-tuple). Linux discards the data but the TIME-WAIT socket lives on.
    s = fin_wait_2()
    send(s, seg(SEND, flags=F | A | P, ack=LOCAL_ISS + 2, payload=b"reply"))
    recv(s)
    assert state(s) is State.TIME_WAIT
    s.conn.close()
    recv(s)
    assert state(s) is State.TIME_WAIT


def test_close_with_unread_data_in_last_ack_resets() -> None:
    # RFC 2525 §2.17 and Linux's tcp_close() ("Unread data was tossed, zap the
    # connection": tcp_send_active_reset in any state but CLOSE/LISTEN) -- what close()'s
    # own docstring promises. In LAST-ACK (and CLOSING) close() goes through abort(),
    # which sends nothing there, so the peer never learns its data was thrown away.
    s = established()
    send(s, seg(SEND, flags=F | A | P, payload=b"request"))
    recv(s)
    s.conn.shutdown()
    recv(s)
    assert state(s) is State.LAST_ACK
    s.conn.close()
    assert [x.flags & R for x in recv(s)] == [R]


# ---------------------------------------------------------------------------- SACK recovery


def flight(s: Sock, count: int) -> list[Segment]:
    s.conn.send(bytes(count * MSS))
    sent = recv(s)
    assert offsets(sent) == [i * MSS for i in range(count)]
    return sent


def sack_ack(
    s: Sock, acked: int, blocks: tuple[tuple[int, int], ...], **changes: object
) -> list[Segment]:
    """The peer ACKs `acked` bytes of ours and SACKs `blocks` (offsets into our stream)."""
    sack = tuple((our(lo), our(hi)) for lo, hi in blocks)
    send(s, seg(SEND, ack=our(acked), sack=sack, **changes))
    return recv(s)


def test_sack_carried_by_a_data_segment_starts_recovery() -> None:
    # RFC 6675 §2: a "duplicate acknowledgment" is a segment that "arrives carrying a SACK
    # block that identifies previously unacknowledged and un-SACKed octets", "even if it
    # carries new data, changes the advertised window, or moves the cumulative
    # acknowledgment point"; §5: IsLost(HighACK + 1) starts loss recovery. Linux counts
    # SACKed segments whatever the ACK carries. Here the peer is sending too, so its SACKs
    # ride on data: four segments above the hole are SACKed, yet the hole waits for the RTO.
    s = established(rtt=0.1, sack=True, peer=SACK_PEER)
    sent = flight(s, 5)
    out = sack_ack(s, 0, ((MSS, 5 * MSS),), flags=A | P, payload=b"request")
    assert (sent[0].seq, MSS) in [(x.seq, len(x.payload)) for x in out]


def test_ack_without_new_sack_information_is_not_a_duplicate_ack() -> None:
    # RFC 6675 §2 (and RFC 5681 §2's note on SACK): with SACK in use an ACK is a duplicate
    # only if it SACKs new data. Three copies of a plain ACK (a duplicating network, or
    # replies to keepalives) say nothing about loss; Linux ignores them for a SACK flow.
    # Counted as RFC 5681 dupACKs they trigger a spurious fast retransmit here.
    s = established(rtt=0.1, sack=True, peer=SACK_PEER)
    flight(s, 5)
    for _ in range(3):
        send(s, seg(SEND, ack=our(0)))
    assert data_segments(recv(s)) == []
    assert not s.conn.info()["in_recovery"]


def test_new_recovery_may_start_once_the_rto_recovery_point_is_acknowledged() -> None:
    # RFC 6675 §5.1: after an RTO "RecoveryPoint MUST be set to HighData ... a new recovery
    # phase ... MUST NOT be initiated until HighACK is greater than or equal to the new
    # value of RecoveryPoint" -- equal is enough. The core waits for SND.UNA to pass the
    # point (``snd_una <= _recover`` blocks), so a loss in the first flight after the
    # timeout's recovery is cumulatively acknowledged has to wait for a second RTO.
    # (Without tail loss probes: the first timer to fire must be the RTO. And on the
    # classic path: RACK, on a clock that stands still, waits for its reordering timer.)
    s = established(rtt=0.1, sack=True, peer=SACK_PEER, tail_loss_probe=False, rack=False)
    flight(s, 10)
    assert offsets(fire(s)) == [0]  # RTO: RecoveryPoint = HighData = 10 segments
    assert sack_ack(s, 10 * MSS, ()) == []  # all of it arrived: HighACK == RecoveryPoint
    s.conn.send(bytes(10 * MSS))
    sent = data_segments(recv(s))
    first = sent[0]
    assert offsets([first]) == [10 * MSS]
    # The first new segment is lost; the peer SACKs everything after it as it arrives,
    # and limited transmit (RFC 3042) keeps data flowing until DupThresh is reached.
    retransmitted: list[Segment] = []
    for _ in range(6):
        sent += data_segments(recv(s))
        high = max((x.seq - LOCAL_ISS - 1) & MASK for x in sent) + MSS
        out = sack_ack(s, 10 * MSS, ((11 * MSS, high),))
        retransmitted += [x for x in out if x.seq == first.seq]
        sent += [x for x in data_segments(out) if x.seq != first.seq]
        if retransmitted:
            break
    assert retransmitted, "the hole is retransmitted by fast recovery, not by a second RTO"


# ---------------------------------------------------------------------------- ACK generation


def test_delayed_ack_counts_full_segments_by_the_size_the_peer_sends() -> None:
    # RFC 5681 §4.2 and RFC 9293 §3.8.6.3: "an ACK SHOULD be generated for at least every
    # second full-sized segment". A peer that announced MSS 536 sends 536-byte segments;
    # the core counts "full-sized" by its own MSS (1460), so it ACKs only every sixth
    # segment, starving the peer's ACK clock. Linux measures the segments it receives
    # (tcp_measure_rcv_mss) and ACKs every second one.
    s = syn_sent()
    send(s, seg(SEND, seq=REMOTE_ISS, flags=S | A, mss=536))
    recv(s)
    assert s.conn.snd_mss == 536
    offset = 0
    for _ in range(20):  # past the quick-ACK start of the connection
        send(s, seg(SEND, seq=REMOTE_ISS + 1 + offset, flags=A, payload=bytes(536)))
        offset += 536
        s.conn.receive()
        recv(s)
        s.at(s.now + 0.001)
    advance(s, s.now + 1.0)  # any delayed ACK has gone
    send(s, seg(SEND, seq=REMOTE_ISS + 1 + offset, flags=A, payload=bytes(536)))
    recv_nothing(s)  # one segment: may be delayed
    send(s, seg(SEND, seq=REMOTE_ISS + 1 + offset + 536, flags=A, payload=bytes(536)))
    [ack] = recv(s)  # the second full-sized segment: acknowledged at once
    assert ack.ack == (REMOTE_ISS + 1 + offset + 2 * 536) & MASK


def test_sack_blocks_ride_on_data_segments_too() -> None:
    # RFC 2018 §4: "If sent at all, SACK options SHOULD be included in all ACKs which do
    # not ACK the highest sequence number in the data receiver's queue." A data segment
    # carries an ACK; Linux adds the SACK blocks to it. The core sends them only on pure
    # ACKs, so a peer that is receiving our data loses the SACK information.
    s = established(rtt=0.1, sack=True, peer=SACK_PEER)
    send(s, seg(SEND, seq=REMOTE_ISS + 1 + 1000, flags=A | P, payload=bytes(100)))
    recv(s)  # the immediate duplicate ACK, with its SACK block
    s.conn.send(b"data")
    [x] = recv(s)
    assert x.payload == b"data"
    assert x.options.sack_blocks == ((REMOTE_ISS + 1001, REMOTE_ISS + 1101),)


# ---------------------------------------------------------------------------- sending


def test_nagle_does_not_hold_the_last_segment_once_fin_is_queued() -> None:
    # Nagle (RFC 9293 §3.7.4) exists to coalesce small writes that more writes may join;
    # after shutdown no more can come. Linux's tcp_nagle_test() exempts the segment that
    # carries the FIN ("Don't use the nagle rule for urgent data (or for the final FIN)").
    # The core holds the tail and the FIN behind the first small segment's ACK -- a full
    # round trip plus the peer's delayed-ACK time for every request/response exchange that
    # ends with shutdown().
    s = established()
    s.conn.send(b"a")
    assert [x.payload for x in recv(s)] == [b"a"]
    s.conn.send(b"b")
    recv_nothing(s)  # Nagle: an earlier small segment is unacknowledged
    s.conn.shutdown()
    assert [(x.payload, bool(x.flags & F)) for x in recv(s)] == [(b"b", True)]


def test_tiny_mss_from_the_peer_is_clamped() -> None:
    # RFC 9293 §3.7.1 lets the peer's MSS option bound our segments, but an MSS of 1 makes
    # every byte a segment (and an ACK): the CPU cost of a transfer grows ~1000-fold, at
    # the peer's whim. Linux clamps the sending MSS to tcp_min_snd_mss (48; CVE-2019-11479).
    s = syn_sent()
    send(s, seg(SEND, seq=REMOTE_ISS, flags=S | A, mss=1))
    recv(s)
    assert s.conn.snd_mss >= 48


def test_keepalive_probes_only_an_idle_connection() -> None:
    # RFC 9293 §3.8.4: "Keep-alive packets MUST only be sent when no sent data is
    # outstanding, and no data or acknowledgment packets have been received for the
    # connection within an interval (MUST-26)." Linux's tcp_keepalive_timer() agrees ("It
    # is alive without keepalive": no probe while packets are out or queued). The core
    # probes with data in flight and gives up after keepalive_count probes, ending a
    # connection that the retransmission timer (R2: max_retransmits, 15) still holds.
    s = established(
        rtt=0.1, keepalive=True, keepalive_idle=10.0, keepalive_interval=1.0, keepalive_count=3
    )
    s.at(9.0)
    s.conn.send(b"x" * 100)
    recv(s)  # data in flight from now on; the peer is unreachable for a minute
    advance(s, 60.0)
    assert state(s) is State.ESTABLISHED, events(s)


# ---------------------------------------------------------------------------- handshake


def test_window_of_a_syn_ack_in_simultaneous_open_is_not_scaled() -> None:
    # RFC 7323 §2.2: "The window field in a segment where the SYN bit is set (i.e., a <SYN>
    # or <SYN,ACK>) MUST NOT be scaled." In a simultaneous open the peer's SYN-ACK reaches
    # us in SYN-RECEIVED, and the core shifts its window (1000 << 7 = 128000). (Linux's
    # SYN-RECV path has the same slip; the next ACK corrects it.)
    s = syn_sent(window_scaling=True)
    send(s, seg(SEND, seq=REMOTE_ISS, ack=0, flags=S, mss=PEER_MSS, wscale=7))
    recv(s)
    assert state(s) is State.SYN_RECEIVED
    send(s, seg(SEND, seq=REMOTE_ISS, flags=S | A, mss=PEER_MSS, wscale=7, window=1000))
    recv(s)
    assert state(s) is State.ESTABLISHED
    assert s.conn.snd_wnd == 1000


def test_syn_is_retransmitted_for_at_least_three_minutes() -> None:
    # RFC 9293 §3.8.3: "R2 for a SYN segment MUST be set large enough to provide
    # retransmission of the segment for at least 3 minutes (MUST-23)." The default
    # syn_retries = 6 with a 1 s initial RTO gives up after 1+2+...+64 = 127 s. (Linux's
    # tcp_syn_retries = 6 has the same 127 s; 7 retries would reach 255 s.)
    s = syn_sent()
    advance(s, 180.0)
    assert state(s) is State.SYN_SENT, events(s)


# ---------------------------------------------------------------------------- timestamps


def test_paws_is_armed_by_the_handshake_on_a_clock_past_24_days() -> None:
    # RFC 7323 §5.5: PAWS may skip a TS.Recent only when it is "more than 24 days old".
    # The time TS.Recent was set (_ts_recent_at) starts at 0.0 and the handshake does not
    # set it, so with a driver clock past 24 days (time.monotonic() on a host up a month)
    # the first check after the handshake treats TS.Recent as ancient, accepts a stale
    # duplicate, and moves TS.Recent backwards.
    day = 24 * 3600.0
    s = closed(timestamps=True)
    s.at(30 * day)
    s.conn.connect(s.now)
    [syn] = recv(s)
    send(
        s,
        seg(
            SEND,
            seq=REMOTE_ISS,
            ack=syn.seq + 1,
            flags=S | A,
            mss=PEER_MSS,
            ts=(50_000, tsval(s.now)),
        ),
    )
    recv(s)
    assert state(s) is State.ESTABLISHED
    # An old duplicate from an earlier incarnation: in window, TSval older than the SYN-ACK's.
    send(s, seg(SEND, ack=syn.seq + 1, flags=A | P, payload=b"old", ts=(40_000, 0)))
    [ack] = recv(s)  # R1: "Send an acknowledgment in reply ... and drop the segment"
    assert ack.ack == (REMOTE_ISS + 1) & MASK
    assert s.conn.receive() == b""


# ---------------------------------------------------------------------------- the host


def test_corrupt_syn_does_not_end_time_wait() -> None:
    # RFC 9293 §3.1: a segment that fails the checksum is discarded. Host.handle_segment
    # lets a SYN with a higher ISN take over a TIME-WAIT four-tuple (§3.6.1) and aborts
    # the TIME-WAIT connection *before* the listener checks the checksum, so a corrupted
    # SYN ends TIME-WAIT early, and the protection it gives (old duplicates) with it.
    cfg = Config(secret=SECRET, timestamps=False)
    net = FakeNetwork(seed=3)
    client, server = connected_pair(
        net, cfg, client_address="198.18.9.1", server_address="198.18.9.2"
    )
    server.close()  # the server closes first, so TIME-WAIT is on its side (port 80)
    net.run_until(lambda: client.at_eof, 10.0)
    client.close()
    net.run_until(lambda: server.state is State.TIME_WAIT, 10.0)
    host = net.endpoint("198.18.9.2")
    assert isinstance(host, Host)
    key = (80, client.local_ip, client.local_port)
    assert host.connections[key] is server
    syn = Segment(
        client.local_port,
        80,
        seq=(server.rcv_nxt + 100_000) & MASK,
        flags=Flags.SYN,
        window=65535,
        options=Options(mss=1460),
    )
    raw = bytearray(build_segment(syn, src=client.local_ip, dst=host.address))
    raw[-1] ^= 0x01  # corrupt the options' last byte: the checksum no longer matches
    host.handle_segment(bytes(raw), client.local_ip, net.now)
    assert host.connections.get(key) is server and server.state is State.TIME_WAIT


def test_closed_port_does_not_answer_a_segment_whose_data_offset_lies() -> None:
    # RFC 9293 §3.10.7.1 answers a *segment* to a closed port with RST; bytes whose Data
    # Offset runs past their end are not one (§3.1), and the RST built for them carries an
    # ACK number computed from a negative segment length. Linux drops them
    # (tcp_v4_rcv: "if (unlikely(th->doff < sizeof(struct tcphdr) / 4)) goto bad_packet",
    # and pskb_may_pull(skb, th->doff * 4)).
    host = Host(LOCAL[0], config())
    for offset in (2, 15):
        buf = bytearray(HEADER.pack(REMOTE[1], 4444, REMOTE_ISS, 0, offset << 4, S, 65535, 0, 0))
        fill_checksum(buf, REMOTE_IP, LOCAL_IP)
        host.handle_segment(bytes(buf), REMOTE_IP, 1.0)
    assert host.segments_to_send(1.0) == []


def test_syn_reopening_time_wait_gets_an_isn_above_the_old_incarnation() -> None:
    # RFC 9293 §3.6.1 (RFC 1122 §4.2.2.13): a TCP MAY accept a new SYN in TIME-WAIT only
    # if it "assigns its initial sequence number for the new connection to be larger than
    # the largest sequence number it used on the previous connection incarnation". The
    # Host lets the SYN take over but the listener picks the RFC 6528 ISN, which grows by
    # 250 000 per second: after sending 3 MB in a fraction of a second the new ISN lies
    # *below* the old SND.NXT, so without timestamps (PAWS) old duplicates of the first
    # incarnation fall into the second's window. Linux sets the new ISN to the old
    # snd_nxt + 65537 (tcp_timewait_state_process: tw_snd_nxt + 65535 + 2).
    cfg = Config(secret=SECRET, timestamps=False)
    net = FakeNetwork(seed=4)
    client, server = connected_pair(
        net, cfg, client_address="198.18.9.1", server_address="198.18.9.2"
    )
    total, sent, got = 3_000_000, 0, 0
    for _ in range(1000):
        if sent < total:
            sent += server.send(bytes(min(total - sent, 1_000_000)))
        net.run_for(0.01)
        got += len(client.receive())
        if got >= total:
            break
    assert got == total
    server.close()
    net.run_until(lambda: client.at_eof, 10.0)
    client.close()
    net.run_until(lambda: server.state is State.TIME_WAIT, 10.0)
    host = net.endpoint("198.18.9.2")
    assert isinstance(host, Host)
    old_snd_nxt = server.snd_max & MASK
    syn = Segment(
        client.local_port,
        80,
        seq=(client.snd_max + 100_000) & MASK,  # a new incarnation's SYN, above RCV.NXT
        flags=Flags.SYN,
        window=65535,
        options=Options(mss=1460),
    )
    host.handle_segment(
        build_segment(syn, src=client.local_ip, dst=host.address), client.local_ip, net.now
    )
    [synack] = [parse_segment(raw) for raw, _, _ in host.segments_to_send(net.now)]
    assert synack.flags == S | A  # the takeover happened
    assert seq_gt(synack.seq, old_snd_nxt)
