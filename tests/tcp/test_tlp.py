"""Tail loss probes (RFC 8985 §7): a loss at the end of a flight is repaired by a probe
about two round trips later, instead of by the retransmission timeout.

The network tests drop chosen segments with `Dropper`, a wrapper around a host that
filters what it sends, so a test can lose exactly "the last segment of the burst".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest

from synack.tcp import Config, Connection, State
from synack.tcp.endpoint import Datagram, Endpoint
from synack.testing import FakeNetwork, Link, connected_pair
from synack.wire.seq import MASK
from synack.wire.tcp import unpack_header

from .conftest import MSS, Sock, advance, established, fire, recv
from .test_retransmit import SACK_PEER, ack, offsets

CLIENT = "198.18.0.1"
SERVER = "198.18.0.2"
ONE_WAY = 0.01  # 20 ms round trips
SECRET = b"tail-loss-probe!" * 2


class Dropper:
    """An endpoint that passes everything through but the data segments `drop` picks."""

    def __init__(self, inner: Endpoint, drop: Callable[[int, int], bool]) -> None:
        self.inner = inner
        self.drop = drop  # (seq, payload length) -> lose it?
        self.dropped: list[int] = []

    def handle_segment(self, data: bytes | bytearray, src: bytes, now: float) -> None:
        self.inner.handle_segment(data, src, now)

    def segments_to_send(self, now: float) -> Iterable[Datagram]:
        out = []
        for datagram in self.inner.segments_to_send(now):
            data = datagram[0]
            _sp, _dp, seq, _ack, hlen, _flags, _wnd, _c, _u = unpack_header(data)
            n = len(data) - hlen
            if n and self.drop(seq, n):
                self.dropped.append(seq)
                continue
            out.append(datagram)
        return out

    def get_timer(self) -> float | None:
        return self.inner.get_timer()

    def handle_timer(self, now: float) -> None:
        self.inner.handle_timer(now)


def pair(**cfg: object) -> tuple[FakeNetwork, Connection, Connection]:
    net = FakeNetwork(seed=7, link=Link(delay=ONE_WAY))
    client, server = connected_pair(net, Config(secret=SECRET, **cfg))  # type: ignore[arg-type]
    return net, client, server


def drop_on(net: FakeNetwork, address: str, drop: Callable[[int, int], bool]) -> Dropper:
    dropper = Dropper(net.detach(address), drop)
    net.attach(address, dropper)
    return dropper


def once(ends: set[int]) -> Callable[[int, int], bool]:
    """Lose the first transmission of each segment ending at one of `ends` (32-bit)."""

    def drop(seq: int, n: int) -> bool:
        end = (seq + n) & MASK
        if end in ends:
            ends.discard(end)
            return True
        return False

    return drop


def burst_with_lost_tail(lost: int, **cfg: object) -> tuple[Connection, float, float]:
    """Ten full segments from the client, the last `lost` of them dropped once: the
    client, when the burst went out, and when the server had all of it."""
    net, client, server = pair(**cfg)
    net.run_for(1.0)  # an RTT sample or two, and quiet
    size = 10 * client.snd_mss
    base = client.snd_max
    ends = {(base + size - i * client.snd_mss) & MASK for i in range(lost)}
    dropper = drop_on(net, CLIENT, once(ends))
    received = bytearray()
    net.set_app(SERVER, lambda now: received.extend(server.receive()))
    start = net.now
    client.send(bytes(size))
    done = net.run_until(lambda: len(received) == size, 10.0, what="the burst")
    assert len(dropper.dropped) == lost
    return client, start, done


# ---------------------------------------------------------------------------- probes


def test_a_lost_last_segment_is_repaired_by_the_probe_not_the_rto() -> None:
    """RFC 8985 §7: the ACKs of the first nine segments leave one segment in flight, so
    PTO = 2*SRTT + WCDelAckT, capped by the RTO's deadline (§7.2); the probe resends
    the last segment (§7.3: nothing new to send) and repairs the loss without an RTO."""
    client, start, done = burst_with_lost_tail(1)
    srtt = client.srtt
    assert srtt is not None
    rtt = 2 * ONE_WAY
    pto = min(2 * srtt + 0.2, client.rto)
    # The burst's ACKs come back after one RTT; the probe leaves a PTO later and takes
    # half an RTT to arrive: repaired within PTO + 1 RTT of the last ACK.
    assert done - start <= rtt + pto + rtt + 1e-6
    assert client.info()["timeouts"] == 0
    assert client.info()["loss_probes"] == 1
    assert client.state is State.ESTABLISHED


def test_two_lost_tail_segments_a_probe_then_recovery() -> None:
    """With two segments still in flight, PTO = 2*SRTT (§7.2) plus
    Config.probe_timeout_min, far below the 200 ms RTO.
    The probe resends the last segment; its SACK shows the one before it lost (§7.4.1,
    the probe's ACK reveals the hole), and recovery repairs it at once."""
    client, start, done = burst_with_lost_tail(2)
    rtt = 2 * ONE_WAY
    assert done - start < rtt + 2 * rtt + 2 * rtt + 0.01  # burst, PTO, probe, repair
    assert done - start < 0.2  # well before any RTO could fire
    assert client.info()["timeouts"] == 0
    assert client.info()["loss_probes"] == 1
    assert client.info()["fast_retransmits"] == 1


def test_a_lost_probe_still_ends_in_the_rto() -> None:
    """§7.3: "After attempting to send a loss probe, regardless of whether a loss probe
    was sent, the sender MUST re-arm the RTO timer, not the PTO timer" -- so when the
    probe is lost too, the RTO repairs the loss: no hang, and only one probe."""
    net, client, server = pair()
    net.run_for(1.0)
    size = 10 * client.snd_mss
    last_end = (client.snd_max + size) & MASK
    # Every transmission of the last segment is lost until a timeout has fired.
    dropper = drop_on(
        net, CLIENT, lambda seq, n: (seq + n) & MASK == last_end and not client.info()["timeouts"]
    )
    received = bytearray()
    net.set_app(SERVER, lambda now: received.extend(server.receive()))
    client.send(bytes(size))
    net.run_until(lambda: len(received) == size, 10.0, what="the burst")
    assert len(dropper.dropped) == 2  # the original and the probe
    assert client.info()["loss_probes"] == 1
    assert client.info()["timeouts"] == 1


def test_no_probe_when_switched_off() -> None:
    client, _start, _done = burst_with_lost_tail(1, tail_loss_probe=False)
    assert client.info()["loss_probes"] == 0
    assert client.info()["timeouts"] == 1


def test_no_probe_without_sack() -> None:
    """§7.2: a PTO is scheduled only if "the connection supports SACK"."""
    client, _start, _done = burst_with_lost_tail(1, sack=False)
    assert client.info()["loss_probes"] == 0
    assert client.info()["timeouts"] == 1


# ---------------------------------------------------------------------------- per state


def test_the_probe_sends_new_data_when_the_window_allows_none() -> None:
    """§7.3: "the sender SHOULD transmit a previously unsent data segment, if one exists
    and the receive window allows" -- beyond cwnd, one segment."""
    s: Sock = established(rtt=0.1, sack=True, peer=SACK_PEER, congestion_control="newreno")
    s.conn.send(bytes(12 * MSS))
    assert offsets(recv(s)) == [i * MSS for i in range(10)]  # cwnd: the initial window
    deadline = s.conn.get_timer()
    assert deadline is not None
    # PTO = 2*SRTT + Config.probe_timeout_min (Linux's 2 ms), below the RTO
    assert abs(deadline - (s.now + 2 * 0.1 + 0.002)) < 1e-9
    sent = advance(s, deadline)
    assert [offsets([x]) for _t, x in sent] == [[10 * MSS]]
    assert s.conn.info()["loss_probes"] == 1
    # Then the RTO, not another probe (§7.3).
    assert s.conn.get_timer() == deadline + s.conn.rto


def test_the_probe_resends_the_last_segment_and_its_ack_ends_the_episode() -> None:
    s: Sock = established(rtt=0.1, sack=True, peer=SACK_PEER, congestion_control="newreno")
    s.conn.send(bytes(4 * MSS))
    recv(s)
    assert advance(s, s.now + 0.2) == []  # 2*SRTT: probe_timeout_min still to run
    sent = advance(s, s.now + 0.002)
    assert [offsets([x]) for _t, x in sent] == [[3 * MSS]]
    cwnd = s.conn.cwnd
    # The ACK covers exactly the probe: it may be the original's (the probe's DSACK
    # still to come), so no reduction yet (RFC 8985 §7.4.2, as Linux).
    s.at(s.now + 0.1)
    assert ack(s, 4 * MSS) == []
    assert s.conn.cwnd >= cwnd
    assert s.conn.get_timer() is None


@pytest.mark.parametrize("segments", [1, 2])
def test_a_skipped_probe_leaves_the_rto_where_the_data_armed_it(segments: int) -> None:
    """§7.3: while an earlier probe is unresolved the sender "MUST skip sending a loss
    probe and MUST proceed to re-arm the RTO timer". Here a request's probe was answered
    by an ACK of exactly TLP.end_seq, which leaves the episode open (§7.4.2); the next
    request is lost, its PTO comes and no probe may go. The RTO then fires where RFC
    6298 §5.1 armed it when that request went out (with one segment, the PTO was capped
    at that very deadline), as Linux's tcp_rearm_rto does: not a full RTO after the
    PTO, which made a lost request wait two RTOs."""
    s: Sock = established(rtt=0.04, sack=True, peer=SACK_PEER, congestion_control="newreno")
    s.conn.send(bytes(MSS))
    recv(s)
    [probe] = fire(s)  # the first request's probe: the episode begins
    assert offsets([probe]) == [0]
    s.at(s.now + 0.04)
    assert ack(s, MSS) == []  # exactly TLP.end_seq: the episode stays open
    assert s.conn.get_timer() is None
    s.at(s.now + 0.01)
    sent_at = s.now
    s.conn.send(bytes(segments * MSS))
    assert offsets(recv(s)) == [MSS + i * MSS for i in range(segments)]
    rto = s.conn.rto
    pto = s.conn.get_timer()
    assert pto is not None
    if segments == 1:
        assert pto == pytest.approx(sent_at + rto)  # 2*SRTT + 200 ms, capped at the RTO
    else:
        assert pto < sent_at + rto - 0.05  # 2*SRTT: well before the RTO
    sent = advance(s, sent_at + 2 * rto)
    assert s.conn.info()["loss_probes"] == 1  # no second probe
    assert s.conn.info()["timeouts"] == 1
    when, first = sent[0]
    assert offsets([first]) == [MSS]
    assert when == pytest.approx(sent_at + rto)


# ---------------------------------------------------------------------------- request/response

REQUEST = 100
RESPONSE = 30 * 1448  # thirty full segments with timestamps


class Exchange:
    """The client sends a request; the server answers it once it has all of it."""

    def __init__(self, client: Connection, server: Connection) -> None:
        self.client = client
        self.server = server
        self.request = 0
        self.answered = True
        self.got = 0

    def start(self) -> None:
        self.request = 0
        self.answered = False
        self.got = 0
        self.client.send(b"q" * REQUEST)

    def on_server(self, now: float) -> None:
        self.request += len(self.server.receive())
        if not self.answered and self.request >= REQUEST:
            self.answered = True
            self.server.send(bytes(RESPONSE))

    def on_client(self, now: float) -> None:
        self.got += len(self.client.receive())


def completion_times(tail_loss_probe: bool, rounds: int = 50) -> tuple[list[float], Connection]:
    """`rounds` request/response exchanges over a jittery 20 ms path, the last segment
    of every response lost once; how long each took, and the server."""
    net = FakeNetwork(seed=12, link=Link(delay=ONE_WAY))
    config = Config(secret=SECRET, tail_loss_probe=tail_loss_probe)
    client, server = connected_pair(net, config)
    net.set_default_link(Link(delay=ONE_WAY, jitter=0.002))
    net.run_for(1.0)
    ends: set[int] = set()
    drop_on(net, SERVER, once(ends))
    ex = Exchange(client, server)
    net.set_app(SERVER, ex.on_server)
    net.set_app(CLIENT, ex.on_client)
    times = []
    for _ in range(rounds):
        ends.add((server.snd_max + RESPONSE) & MASK)
        start = net.now
        ex.start()
        times.append(net.run_until(lambda: ex.got == RESPONSE, 30.0, what="a response") - start)
        net.run_for(0.05)  # think time, well under the RTO: no idle restart
    return times, server


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def test_request_response_tail_losses_complete_sooner_with_probes() -> None:
    """Every response loses its last segment. One segment is then in flight, so the PTO,
    2*SRTT + WCDelAckT, meets the cap at the RTO's deadline (§7.2): the repair itself
    comes no sooner. What the probe saves is the rest of an RTO: cwnd collapsing to one
    segment (the next response slow-starts again) and the backed-off RTO that Karn's
    rule keeps until a fresh sample. With probes cwnd is only reduced (RFC 8985 §7.4.2),
    and the 99th percentile of completion times is lower (here 0.40 s against 0.48 s)."""
    with_tlp, server = completion_times(True)
    without, server_rto = completion_times(False)
    assert server.info()["timeouts"] == 0
    assert server.info()["loss_probes"] >= 50
    assert server_rto.info()["timeouts"] >= 50
    assert p99(with_tlp) < p99(without)
    assert sum(with_tlp) < sum(without)


# ---------------------------------------------------------------------------- §7.4.2


def probed_tail(s: Sock) -> None:
    """Four segments out, the first three acknowledged, then the probe resends the last."""
    s.conn.send(bytes(4 * MSS))
    recv(s)
    s.at(s.now + 0.1)
    assert ack(s, 3 * MSS) == []
    sent = advance(s, s.now + 0.5)
    assert [offsets([x]) for _t, x in sent][:1] == [[3 * MSS]]
    assert s.conn.info()["loss_probes"] == 1
    s.at(s.now + 0.1)


def more_data_acked(s: Sock) -> None:
    """Another segment sent and acknowledged: an ACK beyond TLP.end_seq."""
    s.conn.send(bytes(MSS))
    assert offsets(recv(s)) == [4 * MSS]
    s.at(s.now + 0.1)
    ack(s, 5 * MSS)


def test_an_ack_beyond_a_resent_probe_without_dsack_reduces_cwnd() -> None:
    """RFC 8985 §7.4.2: no DSACK and no duplicate ACK said the original arrived, so the
    probe repaired a loss: "Invoke congestion control to lower cwnd for the loss"."""
    s: Sock = established(rtt=0.1, sack=True, peer=SACK_PEER, congestion_control="newreno")
    probed_tail(s)
    cwnd = s.conn.cwnd
    assert ack(s, 4 * MSS) == []
    more_data_acked(s)
    assert s.conn.info()["loss_probe_recoveries"] == 1
    assert s.conn.cwnd < cwnd


def test_a_dsack_of_the_probe_means_no_loss() -> None:
    """§7.4.2: "If the TLP retransmission is spurious, a receiver that uses DSACK would
    return an ACK that covers TLP.end_seq with a DSACK option" -- the episode ends with
    no reduction."""
    s: Sock = established(rtt=0.1, sack=True, peer=SACK_PEER, congestion_control="newreno")
    probed_tail(s)
    cwnd = s.conn.cwnd
    assert ack(s, 4 * MSS, ((3 * MSS, 4 * MSS),)) == []
    more_data_acked(s)
    assert s.conn.info()["loss_probe_recoveries"] == 0
    assert s.conn.cwnd >= cwnd


def test_a_duplicate_ack_without_sack_after_the_probe_means_no_loss() -> None:
    """§7.4.2: "If the receiver does not support DSACK, it would return a DupAck without
    any SACK option" -- both copies arrived: no reduction."""
    s: Sock = established(rtt=0.1, sack=True, peer=SACK_PEER, congestion_control="newreno")
    probed_tail(s)
    cwnd = s.conn.cwnd
    assert ack(s, 4 * MSS) == []
    assert ack(s, 4 * MSS) == []  # the duplicate ACK the probe drew
    more_data_acked(s)
    assert s.conn.info()["loss_probe_recoveries"] == 0
    assert s.conn.cwnd >= cwnd


def test_our_receiver_dsacks_a_spurious_probe() -> None:
    """End to end: the ACKs of the last segment are lost, so the client probes although
    the server has everything; the server's D-SACK (RFC 2883) tells the client, which
    keeps its cwnd."""
    net, client, server = pair()
    net.run_for(1.0)
    size = 10 * client.snd_mss
    end = (client.snd_max + size) & MASK
    received = bytearray()
    net.set_app(SERVER, lambda now: received.extend(server.receive()))
    inner = net.detach(SERVER)

    class LoseAcksOfTheEnd(Dropper):
        def segments_to_send(self, now: float) -> Iterable[Datagram]:
            out = []
            for datagram in self.inner.segments_to_send(now):
                _sp, _dp, _seq, ack32, _hlen, _f, _w, _c, _u = unpack_header(datagram[0])
                if ack32 == end and client.info()["loss_probes"] == 0:
                    continue  # until the probe has gone out
                out.append(datagram)
            return out

    net.attach(SERVER, LoseAcksOfTheEnd(inner, lambda seq, n: False))
    net.set_app(SERVER, lambda now: received.extend(server.receive()))
    client.send(bytes(size))
    net.run_until(lambda: client.unacked == 0, 10.0, what="all acknowledged")
    cwnd = client.cwnd
    client.send(bytes(size))
    net.run_until(lambda: client.unacked == 0, 10.0, what="all acknowledged")
    assert client.info()["loss_probes"] == 1
    assert client.info()["loss_probe_recoveries"] == 0
    assert client.info()["timeouts"] == 0
    assert client.cwnd >= cwnd
