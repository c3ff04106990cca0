"""The receive queue against a model: random segments arriving in order, out of order,
duplicated and overlapping, one at a time and in batches (the header-prediction run),
interleaved with random reads of every shape (`receive(n)` inside, at the end of and
across payloads, `receive(0)`, `receive()`, `receive_into` of empty, tiny and large
targets, and of a view into a larger buffer).

After every step the bytes read must be the stream's next bytes, `receive_available`
what the model says arrived in order and was not read, the queue's own count the sum
of its unread bytes, DataAvailable told once per empty-to-non-empty, and every window
advertised must never recede and never offer more than the buffer has room for.
"""

from __future__ import annotations

import random
import sys
from typing import Any

import pytest

from synack.tcp import State
from synack.tcp.connection import Connection
from synack.wire.seq import MASK
from synack.wire.tcp import build_segment

from .conftest import (
    LOCAL_IP,
    MSS,
    REMOTE_IP,
    REMOTE_ISS,
    SEND,
    A,
    F,
    P,
    R,
    Sock,
    established,
    events,
    recv,
    seg,
    tsval,
)

FLAVOURS: dict[str, dict[str, Any]] = {
    "plain": {},
    "scaled-sack": {
        "peer": {"wscale": 7, "sack_permitted": True},
        "window_scaling": True,
        "sack": True,
        "receive_buffer": 200_000,
    },
    "timestamps-small-buffer": {
        "peer": {"ts": (1000, tsval(0))},
        "timestamps": True,
        "receive_buffer": 9000,
    },
}


def unread_payloads(conn: Connection) -> list[bytes]:
    """The payloads not yet read to their end (those before were let go, as b"")."""
    return conn._rcv_chunks[conn._rcv_first :]


def unread_in_queue(conn: Connection) -> int:
    """What the queue holds, counted from its payloads rather than its counter."""
    return sum(map(len, unread_payloads(conn))) - conn._rcv_off


class Peer:
    """The sender: cuts the stream into segments inside the window it was offered."""

    def __init__(self, s: Sock, rng: random.Random, stream: bytes, flavour: str) -> None:
        self.s = s
        self.rng = rng
        self.stream = stream
        self.ts = flavour.startswith("timestamps")
        self.tsval = 1000
        self.cut = 0  # the stream is cut into segments up to here
        self.undelivered: list[tuple[int, int]] = []  # cut, not yet sent
        self.edge = 0  # the right edge of the window offered, as an offset
        self.received = bytearray(len(stream))  # 1 where the connection has the byte
        self.delivered = 0  # the in-order prefix the connection holds
        self.read = 0
        self.signalled = False  # DataAvailable told, the queue not emptied since
        self.shift = s.conn._rcv_wscale
        self.limit = s.conn._rcv_limit

    def segment(self, start: int, end: int, flags: int = A | P) -> bytes:
        fields: dict[str, Any] = {
            "seq": (REMOTE_ISS + 1 + start) & MASK,
            "payload": self.stream[start:end],
            "flags": flags,
        }
        if self.ts:
            self.tsval += 1
            fields["ts"] = (self.tsval, tsval(0))
        return build_segment(seg(SEND, **fields), src=REMOTE_IP, dst=LOCAL_IP)

    def take_acks(self) -> None:
        """What the connection sends: each ACK's window must never recede nor offer
        room the buffer has not got."""
        for ack in recv(self.s):
            assert not ack.payload and ack.flags & A and not ack.flags & R
            acked = (ack.ack - REMOTE_ISS - 1) & MASK
            assert acked <= self.delivered
            edge = acked + (ack.window << self.shift)
            assert edge >= self.edge, "the window's right edge receded"
            # Unscaled, the edge is at most what the buffer has room for. Scaled, each
            # ACK's field is rounded up to the scale (`_window_field`), from an edge
            # already rounded, so while the true edge lies below the one advertised it
            # may creep by up to a unit per ACK (as Linux's ALIGN of the current window
            # does): bounded here loosely, the bytes held are what test_fuzz bounds.
            slack = 32 << self.shift if self.shift else 0
            assert edge <= self.read + self.limit + slack, (
                f"window offered beyond the free room: edge {edge}, read {self.read}"
            )
            self.edge = edge

    def arrive(self) -> None:
        """Cut new segments up to the window, then send some of what waits, in a random
        order, maybe with duplicates and overlaps; one at a time or as one batch."""
        rng = self.rng
        while self.cut < min(self.edge, len(self.stream)) and rng.random() < 0.8:
            end = min(self.cut + rng.randint(1, MSS), self.edge, len(self.stream))
            self.undelivered.append((self.cut, end))
            self.cut = end
        if not self.undelivered:
            return
        picked: list[tuple[int, int]] = []
        if rng.random() < 0.5:  # in order, the next few
            k = rng.randint(1, len(self.undelivered))
            picked, self.undelivered = self.undelivered[:k], self.undelivered[k:]
        else:  # any of them, any order (holes, then their filling)
            rng.shuffle(self.undelivered)
            k = rng.randint(1, len(self.undelivered))
            picked, self.undelivered = self.undelivered[:k], self.undelivered[k:]
            self.undelivered.sort()
        if rng.random() < 0.3:  # a duplicate or an overlap of what was sent before
            low = max(0, self.delivered - 2 * MSS)
            if self.cut > low:
                start = rng.randrange(low, self.cut)
                picked.append((start, min(self.cut, start + rng.randint(1, 2 * MSS))))
        batch = [self.segment(start, end) for start, end in picked]
        was_available = self.delivered - self.read
        for start, end in picked:
            self.received[start:end] = b"\x01" * (end - start)
        while self.delivered < len(self.stream) and self.received[self.delivered]:
            self.delivered += 1
        conn = self.s.conn
        if rng.random() < 0.5:
            i = 0
            while i < len(batch):
                i = conn.handle_segments(batch, i, self.s.now)
        else:
            for data in batch:
                conn.handle_segment(data, self.s.now)
        told = events(self.s).count("DataAvailable")
        if was_available == 0 and self.delivered > self.read and not self.signalled:
            assert told == 1
            self.signalled = True
        else:
            assert told == 0
        self.check()

    def read_some(self) -> None:
        rng = self.rng
        conn = self.s.conn
        available = self.delivered - self.read
        kind = rng.randrange(8)
        if kind == 0:
            got = conn.receive(0)
            assert got == b""
        elif kind == 1:
            got = conn.receive()
        elif kind == 2 and unread_payloads(conn):
            # Exactly to the end of the first payload (whole: handed out as it is).
            whole = conn._rcv_off == 0
            first = unread_payloads(conn)[0]
            got = conn.receive(len(first) - conn._rcv_off)
            assert type(got) is bytes
            if whole:
                assert got is first
        elif kind == 3 and unread_payloads(conn):
            # One byte more or less than the first payload's rest.
            rest = len(unread_payloads(conn)[0]) - conn._rcv_off
            got = conn.receive(max(0, rest + rng.choice((-1, 1))))
        elif kind == 4:
            size = rng.choice((0, 1, 2, rng.randint(1, 3 * MSS)))
            target = bytearray(size)
            n = conn.receive_into(target)
            got = bytes(target[:n])
            assert bytes(target[n:]) == bytes(size - n)
        elif kind == 5:
            # A view into the middle of a larger buffer: nothing outside it is written.
            size = rng.randint(0, 4 * MSS)
            area = bytearray(b"\xaa" * (size + 20))
            n = conn.receive_into(memoryview(area)[10 : 10 + size])
            got = bytes(area[10 : 10 + n])
            assert area[:10] == b"\xaa" * 10 and area[10 + n :] == b"\xaa" * (size + 10 - n)
        else:
            got = conn.receive(rng.randint(1, 4 * MSS))
        assert type(got) is bytes
        assert len(got) <= available
        assert got == self.stream[self.read : self.read + len(got)]
        self.read += len(got)
        if self.read == self.delivered:
            self.signalled = False
        assert events(self.s) == []
        self.check()

    def check(self) -> None:
        conn = self.s.conn
        assert conn.receive_available == self.delivered - self.read
        assert conn._rcv_queued == unread_in_queue(conn) == conn.receive_available
        unread = unread_payloads(conn)
        assert all(unread), "an empty payload in the queue"
        assert not unread or conn._rcv_off < len(unread[0])
        assert not any(conn._rcv_chunks[: conn._rcv_first]), "a payload read is still held"
        assert conn._rcv_first == 0 or unread, "an emptied queue keeps its list"
        assert conn.rcv_nxt - conn.irs - 1 == self.delivered
        # The other input of the window: what is held beyond a hole.
        assert conn._ooo_bytes == sum(self.received[self.delivered :])


@pytest.mark.parametrize("flavour", list(FLAVOURS))
@pytest.mark.parametrize("seed", range(12))
def test_random_arrivals_and_reads_match_the_stream(flavour: str, seed: int) -> None:
    rng = random.Random(seed * 7919 + len(flavour))
    cfg = dict(FLAVOURS[flavour])
    s = established(**cfg)
    stream = rng.randbytes(rng.randint(20, 60) * MSS)
    peer = Peer(s, rng, stream, flavour)
    # The window the SYN-ACK's ACK offered (the handshake's ACK was taken by established()).
    peer.edge = s.conn._rcv_adv - s.conn.irs - 1
    for _ in range(100_000):
        if peer.read == len(stream):
            break
        r = rng.random()
        if r < 0.45:
            peer.arrive()
        elif r < 0.85:
            peer.read_some()
        else:
            s.at(s.now + rng.choice((0.001, 0.05, 0.3)))
            s.conn.handle_timer(s.now)
        peer.take_acks()
        if peer.cut >= peer.edge and not peer.undelivered and peer.read == peer.delivered:
            # Everything offered arrived and was read: the window must have reopened.
            assert peer.edge > peer.cut or peer.cut == len(stream), "the window never reopened"
    else:
        raise AssertionError("the stream did not get through")
    assert s.conn.receive() == b""
    # The end of the stream, then reads after it.
    fin = build_segment(
        seg(
            SEND,
            seq=(REMOTE_ISS + 1 + len(stream)) & MASK,
            flags=F | A,
            **({"ts": (peer.tsval + 1, tsval(0))} if peer.ts else {}),
        ),
        src=REMOTE_IP,
        dst=LOCAL_IP,
    )
    s.conn.handle_segment(fin, s.now)
    assert s.conn.at_eof and s.conn.state is State.CLOSE_WAIT
    assert s.conn.receive() == b"" and s.conn.receive_into(bytearray(10)) == 0
    assert "EndOfStream" in events(s)


def data_segment(offset: int, payload: bytes) -> bytes:
    """The peer's data segment carrying `payload` at byte `offset` of its stream."""
    seq = (REMOTE_ISS + 1 + offset) & MASK
    return build_segment(
        seg(SEND, seq=seq, payload=payload, flags=A | P), src=REMOTE_IP, dst=LOCAL_IP
    )


def held_by_queue(conn: Connection) -> int:
    return sum(map(sys.getsizeof, conn._rcv_chunks)) + sys.getsizeof(conn._rcv_chunks)


@pytest.mark.parametrize("size", [1, 8, 100])
def test_small_segments_held_unread_take_memory_of_the_bytes_they_bring(size: int) -> None:
    """A reader that does not read while the peer sends small segments (a chatty peer
    with TCP_NODELAY, or one that dribbles on purpose) holds up to a window of them:
    the queue must hold about that many bytes, not a Python object per segment (about
    50 bytes of overhead each: 50 times the window for 1-byte segments)."""
    s = established()  # a 65,535-byte window
    stream = random.Random(size).randbytes(64_000 - 64_000 % size)
    batch = []
    for offset in range(0, len(stream), size):
        batch.append(data_segment(offset, stream[offset : offset + size]))
    half = len(batch) // 2
    for data in batch[:half]:  # one at a time (the full path) ...
        s.conn.handle_segment(data, s.now)
    i = half
    while i < len(batch):  # ... and as a batch (the header-prediction run)
        i = s.conn.handle_segments(batch, i, s.now)
    assert s.conn.receive_available == len(stream)
    assert held_by_queue(s.conn) < len(stream) * 1.2 + 4096
    assert s.conn._rcv_queued == unread_in_queue(s.conn)
    assert s.conn.receive(1) + s.conn.receive(len(stream) // 3) + s.conn.receive() == stream


@pytest.mark.parametrize("size", [1, 8, 100])
def test_small_segments_held_above_a_hole_take_memory_of_the_bytes_they_bring(size: int) -> None:
    """The same above a hole: a peer's small segments that follow one another, held
    out of order until the hole fills, join as the receive queue's do (a peer could
    otherwise make each byte of the window cost a Python object)."""
    s = established()
    stream = random.Random(size).randbytes(60_000 - 60_000 % size)
    first = 1448  # the hole: the first segment comes last
    for offset in range(first, len(stream), size):
        s.conn.handle_segment(data_segment(offset, stream[offset : offset + size]), s.now)
    held = sum(map(sys.getsizeof, s.conn._ooo_data)) + sys.getsizeof(s.conn._ooo_data)
    assert s.conn._ooo_bytes == len(stream) - first
    assert held < (len(stream) - first) * 1.2 + 4096
    assert s.conn.receive_available == 0
    s.conn.handle_segment(data_segment(0, stream[:first]), s.now)
    assert s.conn._ooo_bytes == 0 and not s.conn._ooo_data
    assert s.conn.receive() == stream
