"""A port-unreachable after the handshake (`Connection.port_unreachable`): the UDP
carrier's sign that no process holds the peer's port any more.

RFC 5461 §4.1 and RFC 5927 §5.2: such an error is unauthenticated and must not end a
synchronized connection on its own. It counts only when it quotes a sequence number
in flight (RFC 5927 §4.1), starts a check (a probe one RTO later), and only a second
one at least that RTO after the first, with nothing heard from the peer between, ends
the connection as the peer's kernel's RST would have.
"""

from __future__ import annotations

from typing import Any

import pytest

import synack.tcp.connection as connection_module
from synack.tcp import State
from synack.tcp.connection import GONE_PROBES
from synack.wire.seq import MASK

from .conftest import (
    LOCAL_ISS,
    PEER_MSS,
    RECV,
    REMOTE_ISS,
    SEND,
    A,
    P,
    S,
    Sock,
    advance,
    close_wait,
    closed,
    closing,
    established,
    events,
    fire,
    last_ack,
    recv,
    recv_nothing,
    seg,
    send,
    shape,
    state,
    syn_sent,
    time_wait,
)

RTO = 0.2  # the handshake's sample was 0 s: SRTT + rto_min


def icmp(s: Sock, seq: int) -> None:
    """A port-unreachable quoting a segment of ours with sequence number `seq`."""
    s.conn.port_unreachable(seq & MASK, s.now)


def receiving() -> Sock:
    """Established, a request received and acknowledged: nothing of ours in flight."""
    s = established()
    send(s, seg(SEND, flags=A | P, payload=b"request"))
    [ack] = recv(s)
    assert shape(ack) == shape(seg(RECV, ack=REMOTE_ISS + 8))
    assert events(s) == ["DataAvailable"]
    return s


def probe() -> tuple[int, int, int, int]:
    """What the check sends: SEG.SEQ = SND.UNA - 1, as a keepalive probe."""
    return shape(seg(RECV, seq=LOCAL_ISS, ack=REMOTE_ISS + 8))


def test_a_second_error_an_rto_later_with_the_peer_silent_resets_the_connection() -> None:
    """Only receiving, the ACK we sent drew the error; the probe asks again."""
    s = receiving()
    icmp(s, LOCAL_ISS + 1)
    assert state(s) is State.ESTABLISHED and events(s) == []
    assert s.conn.counters["port_unreachable"] == 1
    assert s.conn.get_timer() == RTO
    assert [shape(x) for x in fire(s)] == [probe()]
    icmp(s, LOCAL_ISS)  # the probe drew it
    assert state(s) is State.CLOSED
    assert events(s) == ["Reset(ConnectionReset)", "Closed"]
    assert "peer's port" in str(s.conn.error)


def test_a_sender_finds_the_peer_gone_by_its_retransmission() -> None:
    s = established()
    s.conn.send(b"x" * 100)
    [data] = recv(s)
    icmp(s, data.seq)
    # The RTO and the check fall due together: the probe, then the retransmission.
    assert [shape(x) for x in fire(s)] == [
        shape(seg(RECV, seq=LOCAL_ISS)),
        shape(seg(RECV, flags=A | P, payload=b"x" * 100)),
    ]
    assert s.now == RTO
    icmp(s, data.seq)
    assert state(s) is State.CLOSED


def test_errors_sooner_than_an_rto_apart_do_not_end_it() -> None:
    """A burst draws a burst of errors: they are one sign, not a confirmation."""
    s = receiving()
    icmp(s, LOCAL_ISS + 1)
    s.at(RTO / 2)
    icmp(s, LOCAL_ISS + 1)
    assert state(s) is State.ESTABLISHED
    assert s.conn.counters["port_unreachable"] == 2


def test_the_peer_heard_between_two_errors_starts_the_check_again() -> None:
    s = receiving()
    icmp(s, LOCAL_ISS + 1)
    s.at(RTO / 2)
    send(s, seg(SEND, seq=REMOTE_ISS + 8, flags=A | P, payload=b"more"))  # alive after all
    recv(s)
    assert fire(s) == [] and s.conn.get_timer() is None  # the check stands down
    s.at(2 * RTO)
    icmp(s, LOCAL_ISS + 1)
    assert state(s) is State.ESTABLISHED
    assert s.conn.get_timer() == 3 * RTO  # a new check, one RTO from this error
    assert [shape(x) for x in fire(s)] == [shape(seg(RECV, seq=LOCAL_ISS, ack=REMOTE_ISS + 12))]


def test_the_peer_answering_the_probe_ends_the_check() -> None:
    s = receiving()
    icmp(s, LOCAL_ISS + 1)
    assert [shape(x) for x in fire(s)] == [probe()]
    send(s, seg(SEND, seq=REMOTE_ISS + 8))  # its ACK of the probe
    recv_nothing(s)
    assert fire(s) == [] and s.conn.get_timer() is None  # the check stands down
    icmp(s, LOCAL_ISS + 1)  # a stray error later is only a new first sign
    assert state(s) is State.ESTABLISHED


def test_without_a_second_error_the_check_stands_down_after_its_probes() -> None:
    """ICMP is rate-limited and filtered: silence after the first error proves nothing,
    and TCP's own timers (here the keepalive's) watch the peer again."""
    s = established(keepalive=True, keepalive_idle=100.0)
    send(s, seg(SEND, flags=A | P, payload=b"request"))
    recv(s)
    icmp(s, LOCAL_ISS + 1)
    sent = [[shape(x) for x in fire(s)] for _ in range(GONE_PROBES + 1)]
    assert sent == [[probe()]] * GONE_PROBES + [[]]
    assert s.now == (GONE_PROBES + 1) * RTO
    assert state(s) is State.ESTABLISHED
    assert s.conn.get_timer() == 100.0  # the keepalive's own deadline is back, unmoved


def test_an_error_quoting_a_sequence_number_not_in_flight_is_ignored() -> None:
    """RFC 5927 §4.1: a blind attacker must guess a number in flight."""
    s = established()
    s.conn.send(b"x" * 100)
    recv(s)
    for seq in (LOCAL_ISS - 1, LOCAL_ISS + 102, LOCAL_ISS + 1 + 2**31):
        icmp(s, seq)
    assert s.conn.counters["icmp_ignored"] == 3
    assert s.conn.counters["port_unreachable"] == 0
    assert s.conn.get_timer() == RTO  # only the retransmission timer
    assert [x.seq for x in fire(s)] == [LOCAL_ISS + 1]  # and only its retransmission


def test_syn_sent_and_time_wait_are_not_judged_here() -> None:
    """SYN-SENT: the engine refuses the connection at once (RFC 5461 §4.1). TIME-WAIT:
    the peer is done with the connection; its going changes nothing."""
    for s in (syn_sent(), time_wait()):
        before = s.conn.get_timer()
        icmp(s, s.conn.snd_una)
        assert s.conn.counters["port_unreachable"] == 0
        assert s.conn.get_timer() == before
        assert state(s) in (State.SYN_SENT, State.TIME_WAIT)


def test_in_close_wait_the_probe_asks_and_a_second_error_resets() -> None:
    """The peer sent FIN and its process went: we may still have data for it."""
    s = close_wait()
    icmp(s, LOCAL_ISS + 1)  # our ACK of its FIN drew it
    assert [shape(x) for x in fire(s)] == [shape(seg(RECV, seq=LOCAL_ISS, ack=REMOTE_ISS + 2))]
    icmp(s, LOCAL_ISS)
    assert state(s) is State.CLOSED
    assert events(s) == ["Reset(ConnectionReset)", "Closed"]


def test_a_burst_before_the_confirm_time_then_one_after_it_resets() -> None:
    s = receiving()
    icmp(s, LOCAL_ISS + 1)
    s.at(RTO / 2)
    icmp(s, LOCAL_ISS + 1)  # the same burst: not a confirmation, nor a new start
    assert s.conn.get_timer() == RTO
    assert [shape(x) for x in fire(s)] == [probe()]
    icmp(s, LOCAL_ISS)
    assert state(s) is State.CLOSED


def test_the_sequence_check_holds_across_the_wrap(monkeypatch: pytest.MonkeyPatch) -> None:
    """SND.UNA just below 2**32, data in flight past it: the 32-bit numbers on either
    side of the wrap are in flight, the ones beyond SND.MAX or below SND.UNA - 1 not."""
    iss = MASK - 49
    monkeypatch.setattr(connection_module, "make_isn", lambda *args: iss)
    s = closed()
    s.conn.connect(s.now)
    recv(s)
    send(s, seg(SEND, seq=REMOTE_ISS, ack=iss + 1, flags=S | A, mss=PEER_MSS))
    recv(s)
    assert state(s) is State.ESTABLISHED
    s.conn.send(b"x" * 100)  # iss + 1 .. iss + 101: crosses the wrap
    recv(s)
    for outside in (iss - 1, iss + 102, iss + 1 + 2**31):
        icmp(s, outside)
    assert s.conn.counters["icmp_ignored"] == 3
    icmp(s, iss + 80)  # 30 after the wrap: 30
    assert (iss + 80) & MASK == 30
    assert s.conn.counters["port_unreachable"] == 1


@pytest.mark.parametrize("builder", [closing, last_ack])
def test_closing_and_last_ack_end_quietly_as_a_reset_there_does(builder: Any) -> None:
    """RFC 9293 §3.10.7.4: a RST in CLOSING or LAST-ACK enters CLOSED without telling
    the user (who has closed already); the check ends the connection as that RST would,
    so it must not report a reset either (`_segment_synchronized` calls _terminate)."""
    s = builder()
    events(s)
    icmp(s, s.conn.snd_una)  # our FIN drew it
    fire(s)
    icmp(s, s.conn.snd_una)
    assert state(s) is State.CLOSED
    assert events(s) == ["Closed"]
    assert s.conn.error is None


def test_a_lone_error_does_not_put_back_the_keepalive_verdict() -> None:
    """Keepalive was probing a silent peer (one probe out) when a port-unreachable came,
    and no second one followed (ICMP rate-limited or filtered). After the check stands
    down keepalive goes on where it was: its next probe one keepalive_interval on, not
    a whole keepalive_idle (two hours by default) later."""
    s = established(keepalive=True, keepalive_idle=10.0, keepalive_interval=1.0, keepalive_count=3)
    [ka] = fire(s)
    assert s.now == 10.0 and shape(ka) == shape(seg(RECV, seq=LOCAL_ISS))
    icmp(s, LOCAL_ISS)  # the keepalive probe drew it; nothing follows
    advance(s, 20.0)
    # Without the error: probes at 10, 11, 12 and the verdict at 13; the check's probes
    # and its standing down take 4 RTOs (0.8 s), so at the latest by 14.
    assert state(s) is State.CLOSED
    assert events(s) == ["TimedOut(ConnectionTimedOut)", "Closed"]


def test_the_peer_heard_at_the_very_time_of_the_error_counts() -> None:
    """A sans-IO caller may hand over an error and then a segment with the same `now`
    (a clock's tick, virtual time): the segment still says the peer is there, so a
    later error only starts the check again."""
    s = receiving()
    s.at(1.0)
    send(s, seg(SEND, seq=REMOTE_ISS + 8, flags=A | P, payload=b"more"))
    recv(s)
    icmp(s, LOCAL_ISS + 1)  # the same instant
    send(s, seg(SEND, seq=REMOTE_ISS + 12, flags=A | P, payload=b"again"))  # and again
    recv(s)
    s.at(1.0 + RTO)
    icmp(s, LOCAL_ISS + 1)
    assert state(s) is State.ESTABLISHED
