"""The UDP engine's gathered sends (Config.gather_from), driven segment by segment: the
test plays the peer on a plain carrier, so that it can choose what the engine's
connection has to send in one transmit."""

from __future__ import annotations

import os
import select
import time
import zlib
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from synack.drivers.engine import Engine, config_for
from synack.drivers.udp import LOOPBACK_MTU, CarrierConfig, UdpCarrier
from synack.tcp.host import Host
from synack.wire.checksum import address_bytes
from synack.wire.tcp import Flags, Options, Segment, build_segment, parse_segment

WAIT = 5.0
IP = "127.0.0.1"
IP_BYTES = address_bytes(IP)
PEER_ISS = 5000
S, A = Flags.SYN, Flags.ACK


class Rig:
    """An engine (the sender) and a plain carrier that plays its peer."""

    def __init__(self, carrier_cfg: CarrierConfig) -> None:
        self.crc = carrier_cfg.integrity == "crc32"
        self.tx = UdpCarrier.bound(IP, 0, carrier_cfg)
        self.rx = UdpCarrier.bound(IP, 0, replace(carrier_cfg, gro=False))
        self.host = Host(IP, replace(config_for(carrier_cfg, None), no_delay=True))
        self.engine = Engine(self.tx, self.host)
        self.tport = self.tx.sockname[1]
        self.pport = self.rx.sockname[1]
        self.now = 0.0
        self.conn = self.host.connect((IP, self.pport), self.now, local_port=self.tport)
        self.shapes: list[list[str]] = []  # what each transmit took: G(athered) or B(ytes)
        original = self.host.segments_to_send_gathered

        def recording(now: float) -> Any:
            out = original(now)
            self.shapes.append(["G" if s.__class__ is tuple else "B" for s, _a, _b in out])
            return out

        self.host.segments_to_send_gathered = recording  # type: ignore[method-assign]

    def close(self) -> None:
        self.engine.close()
        self.rx.close()

    def take(self, count: int) -> list[Segment]:
        """Exactly `count` segments from the engine, their TCP checksums verified."""
        got: list[Segment] = []
        deadline = time.monotonic() + WAIT
        while len(got) < count:
            left = deadline - time.monotonic()
            assert left > 0, f"only {len(got)} of {count} segments arrived"
            select.select([self.rx], [], [], left)
            for view, _addr in self.rx.recv_batch():
                data = bytes(view)
                if self.crc:  # the trailer: a CRC-32 of the whole segment before it
                    data, trailer = data[:-4], data[-4:]
                    assert zlib.crc32(data).to_bytes(4, "big") == trailer
                    got.append(parse_segment(data))
                else:
                    got.append(parse_segment(data, src=IP_BYTES, dst=IP_BYTES))
        assert len(got) == count
        return got

    def peer(self, **fields: Any) -> None:
        """A segment from the peer, handed to the engine's host as its socket would."""
        self.now += 0.001
        segment = Segment(src_port=self.pport, dst_port=self.tport, **fields)
        self.host.handle_segment(
            build_segment(segment, src=IP_BYTES, dst=IP_BYTES), IP_BYTES, self.now
        )

    def transmit(self) -> bool:
        return self.engine.transmit(self.now)

    def handshake(self) -> int:
        """Open the connection (window scale 7, SACK); returns our first data byte's
        sequence number."""
        self.transmit()
        [syn] = self.take(1)
        self.peer(
            seq=PEER_ISS,
            ack=syn.seq + 1,
            flags=S | A,
            window=65535,
            options=Options(mss=65000, wscale=7, sack_permitted=True),
        )
        self.transmit()
        self.take(1)  # the handshake's ACK
        return syn.seq + 1


@pytest.fixture
def rig() -> Iterator[Rig]:
    # The TCP checksum (no trailer: a whole segment is sent whole), and an MTU whose
    # segments are gathered (payload >= 8192) yet several fit one GSO send.
    made = Rig(CarrierConfig(mtu=16000, integrity="tcp", gro=False))
    yield made
    made.close()


def test_a_retransmission_new_data_and_a_short_tail_go_out_in_one_run(rig: Rig) -> None:
    """Fast recovery sends a retransmission (whole `bytes`), new full segments
    (gathered) and the short end of the data (whole) in one transmit: one GSO run,
    whole and gathered datagrams mixed. All of them must reach the peer, intact."""
    base = rig.handshake()
    window = 4000  # << 7
    conn = rig.conn
    mss = conn.snd_mss
    assert conn.config.gather_from and mss >= conn.config.gather_from
    stream = os.urandom(14 * mss)
    assert conn.send(stream) == len(stream)
    # Slow start to a window of 8 segments: 2, then 4, then 8 in flight.
    rig.transmit()
    arrived = rig.take(2)
    while len(arrived) < 14:
        rig.peer(seq=PEER_ISS + 1, ack=conn.snd_nxt, flags=A, window=window)
        rig.transmit()
        arrived += rig.take(len(rig.shapes[-1]))
    una = base + 6 * mss
    assert conn.snd_una == una and conn.snd_nxt == base + 14 * mss
    # More data, then an ACK that SACKs all of the flight but its first segment.
    more = os.urandom(2 * mss + 100)
    conn.send(more)
    rig.peer(
        seq=PEER_ISS + 1,
        ack=una,
        flags=A,
        window=window,
        options=Options(sack_blocks=((una + mss, una + 8 * mss),)),
    )
    rig.transmit()
    assert rig.shapes[-1] == ["B", "G", "G", "B"]
    retransmitted, *new = rig.take(4)
    assert retransmitted.seq == una and retransmitted.payload == stream[6 * mss : 7 * mss]
    assert [x.seq for x in new] == [base + 14 * mss + k * mss for k in range(3)]
    assert b"".join(x.payload for x in new) == more


def test_gathered_segments_the_socket_refused_go_out_later_intact() -> None:
    """When the socket is full, the engine keeps the rest of the run (header, payload
    view and trailer apart) in its backlog, and what falls due meanwhile queues behind
    it; with more written to the send buffer meanwhile, all of it goes out later, in
    order, each datagram whole and its CRC-32 trailer that of the joined segment."""
    rig = Rig(CarrierConfig(mtu=LOOPBACK_MTU, integrity="crc32", gro=False))
    try:
        base = rig.handshake()
        rig.peer(seq=PEER_ISS + 1, ack=base, flags=A, window=60000)  # scaled: 7.5 MB
        conn = rig.conn
        mss = conn.snd_mss
        first = os.urandom(2 * mss)  # the initial window: two full segments
        conn.send(first)
        real = rig.tx.send_batch

        def full_after_one(segments: Any, addr: Any) -> int:
            return real(segments[:1], addr)  # then the socket is full

        rig.tx.send_batch = full_after_one  # type: ignore[method-assign]
        assert not rig.transmit()  # the second waits
        assert rig.shapes[-1] == ["G", "G"]
        later = os.urandom(3 * mss + 5)
        conn.send(later)  # written into the send buffer behind the views held
        rig.peer(seq=PEER_ISS + 1, ack=base + mss, flags=A, window=60000)
        assert not rig.transmit()  # due now, queued behind the backlog
        assert rig.shapes[-1][:2] == ["G", "G"]
        rig.tx.send_batch = real  # type: ignore[method-assign]
        assert rig.engine.flush_backlog()
        segments = rig.take(2 + len(rig.shapes[-1]))
        offsets = [x.seq - base for x in segments]
        assert offsets == sorted(offsets) and offsets[:2] == [0, mss]
        payload = b"".join(x.payload for x in segments)
        assert len(payload) > len(first) and payload == (first + later)[: len(payload)]
    finally:
        rig.close()
