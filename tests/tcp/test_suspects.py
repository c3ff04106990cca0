"""Three behaviours suspected in issue 12's review, each put to a test that shows whether
it is real: retransmissions sent twice within a round trip between or inside recoveries;
an ACK war in FIN-WAIT-1 against a zero window; TS.Recent left behind by a segment taken
at a zero window."""

from __future__ import annotations

import random
from itertools import pairwise

import pytest

from synack.tcp import Config, State
from synack.testing.fakenet import FakeNetwork, Link, PacketEvent, connected_pair
from synack.wire.tcp import unpack_header

from .conftest import (
    LOCAL_ISS,
    PEER_MSS,
    REMOTE_ISS,
    SEND,
    A,
    P,
    S,
    recv,
    seg,
    send,
    syn_sent,
    tsval,
)

CLIENT, SERVER = "198.18.0.1", "198.18.0.2"

# ---------------------------------------------------------------------------- (a)


def needless_retransmissions(seed: int, cfg: Config, rtt: float = 0.02) -> list[str]:
    """2 MB at 5% loss each way: every transmission of a sequence number that follows an
    earlier one of it by less than a round trip, where that earlier one was delivered.
    Nothing the sender could have learnt in that time says it was lost; a second copy
    then is a duplicate the recovery made by itself."""
    net = FakeNetwork(seed=seed, link=Link(delay=rtt / 2))
    client, server = connected_pair(net, cfg)
    net.set_default_link(Link(delay=rtt / 2, loss=0.05))
    sender = client.local_ip
    sends: dict[int, list[list[float | bool]]] = {}  # seq -> [[time, delivered], ...]
    by_packet: dict[int, list[float | bool]] = {}
    held: list[bytes | bytearray] = []  # keeps each packet alive, so ids stay unique

    def tap(now: float, event: str, data: bytes | bytearray, src: bytes, dst: bytes) -> None:
        if src != sender:
            return
        if event == PacketEvent.SENT and len(data) > (data[12] >> 4) * 4:
            record: list[float | bool] = [now, False]
            sends.setdefault(unpack_header(data)[2], []).append(record)
            by_packet[id(data)] = record
            held.append(data)
        elif event == PacketEvent.DELIVERED and id(data) in by_packet:
            by_packet[id(data)][1] = True

    net.tap = tap
    size = 2 << 20
    payload = random.Random(seed).randbytes(size)
    got = bytearray()
    queued = client.send(payload)

    def feed(now: float) -> None:
        nonlocal queued
        if queued < size:
            queued += client.send(payload[queued:])

    net.set_app(CLIENT, feed)
    net.set_app(SERVER, lambda now: got.extend(server.receive()))
    net.run_until(lambda: len(got) == size, 600.0, what="2 MB at 5% loss")
    assert got == payload
    return [
        f"seed {seed}: seq {seq} sent at {a[0]:.4f} (delivered) and again at {b[0]:.4f}"
        for seq, copies in sends.items()
        for a, b in pairwise(copies)
        if a[1] and float(b[0]) - float(a[0]) < rtt
    ]


@pytest.mark.parametrize(
    "cfg",
    [
        Config(secret=b"suspects" * 4),
        Config(secret=b"suspects" * 4, rack=False, prr=False, tail_loss_probe=False),
    ],
    ids=["rack", "classic"],
)
def test_no_segment_is_retransmitted_twice_within_a_round_trip(cfg: Config) -> None:
    """It was real, three ways (seeds 0-3, 20 ms; each fix alone leaves a failure):
    a new recovery started retransmitting over from SND.UNA (HighRxt reset), resending
    what the previous one had sent a moment before; with RACK, two records of the same
    bytes (two retransmissions, both later found lost) each queued a resend, so the
    segment went twice at one instant (seed 2); with the classic recovery, a partial ACK
    that came at the very instant of the recovery's first retransmission -- the
    original's ACK, not its answer -- was taken to show every byte below the recovery
    point lost (seed 0: 12 segments twice, and one RTO more). Linux keeps one send time
    and one retransmitted mark per segment; RACK (RFC 8985 §6.2) takes no ACK sooner
    than min_RTT after a retransmission as its answer."""
    found = [line for seed in range(4) for line in needless_retransmissions(seed, cfg)]
    assert found == []


# ---------------------------------------------------------------------------- (b)


def test_fin_wait_1_against_a_zero_window_exchanges_a_bounded_number_of_segments() -> None:
    """The reader stops reading; its window closes with our data and FIN still queued,
    and we close (FIN-WAIT-1). Each side must stay quiet but for the persist timer's
    probes and their answers (RFC 9293 §3.8.6.1), which back off: over a virtual minute
    a few dozen segments, not an ACK war. When the reader reads again, everything --
    the FIN too -- arrives and the connection closes."""
    net = FakeNetwork(seed=5, link=Link(delay=0.01))
    cfg = Config(secret=b"suspects" * 4, receive_buffer=16 * 1024, send_buffer=64 * 1024)
    client, server = connected_pair(net, cfg)
    data = bytes(range(256)) * 128  # 32 KB: twice the peer's buffer
    assert client.send(data) == len(data)
    client.close()
    net.run_for(1.0)
    assert client.state is State.FIN_WAIT_1
    assert server.receive_available == 16 * 1024
    counts: dict[bytes, int] = {}

    def tap(now: float, event: str, packet: bytes | bytearray, src: bytes, dst: bytes) -> None:
        if event == PacketEvent.SENT:
            counts[src] = counts.get(src, 0) + 1

    net.tap = tap
    net.run_for(60.0)
    assert 0 < counts.get(client.local_ip, 0) <= 20, counts
    assert counts.get(server.local_ip, 0) <= 20, counts
    assert client.state is State.FIN_WAIT_1
    got = bytearray()
    net.set_app(SERVER, lambda now: got.extend(server.receive()))
    got.extend(server.receive())
    net.run_until(lambda: server.at_eof and client.state is State.FIN_WAIT_2, 130.0)
    assert got == data


# ---------------------------------------------------------------------------- (c)


def test_a_probe_taken_at_a_zero_window_updates_ts_recent() -> None:
    """RFC 7323 §4.3 (2): "If: SEG.TSval >= TS.Recent and SEG.SEQ <= Last.ACK.sent then
    SEG.TSval is copied to TS.Recent". A window probe at RCV.NXT = Last.ACK.sent while
    our window is zero is not acceptable as data, but its ACK is taken (RFC 9293
    §3.10.7.4's "special allowance ... to accept valid ACKs"), and Linux's
    tcp_sequence() passes it, so its TSval becomes TS.Recent: our answer echoes it, and
    the prober's RTT sample from that echo is true. It was real: the answer echoed the
    TSval of the segment that filled the window, 1.5 s older."""
    s = syn_sent(timestamps=True, receive_buffer=4000)
    send(s, seg(SEND, seq=REMOTE_ISS, flags=S | A, mss=PEER_MSS, ts=(1000, tsval(0))))
    recv(s)
    send(s, seg(SEND, flags=A | P, payload=bytes(4000), ts=(2000, tsval(0))))
    [closed] = recv(s)
    assert closed.window == 0 and closed.options.timestamps == (tsval(0), 2000)
    s.at(1.5)
    send(s, seg(SEND, seq=REMOTE_ISS + 4001, flags=A, payload=b"?", ts=(3500, tsval(0))))
    [answer] = recv(s)
    assert (answer.ack, answer.window) == ((REMOTE_ISS + 4001) & 0xFFFFFFFF, 0)
    assert answer.options.timestamps == (tsval(1.5), 3500)
    assert answer.seq == (LOCAL_ISS + 1) & 0xFFFFFFFF
