"""`close` and `time-wait`: the four-way close, and why the side that closes first waits 2MSL.

close -- claim: closing takes four segments, FIN, ACK, FIN, ACK, because the middle two
cannot be merged: after the first FIN the other side may still send (a half-close).
The closer goes FIN_WAIT_1, FIN_WAIT_2, TIME_WAIT and, 2MSL later, CLOSED; the other
side CLOSE_WAIT, LAST_ACK, CLOSED.

time-wait -- claim: TIME_WAIT keeps the connection's memory for 2MSL so that a lost
last ACK can be sent again: the server's re-sent FIN is answered with an ACK, and the
2MSL timer starts over. Without TIME_WAIT the same FIN meets a RST.
"""

from __future__ import annotations

from dataclasses import dataclass

from synack.apps.lessons.common import (
    check,
    lesson_config,
    open_pair,
    verdict,
)
from synack.apps.lessons.model import LessonRun, SegmentRecord, StateRecord
from synack.apps.lessons.scene import Scene
from synack.tcp import Reset, State

MASK = 0xFFFFFFFF


def _acks(ack: SegmentRecord, fin: SegmentRecord) -> bool:
    """Whether `ack` acknowledges everything up to and including `fin`'s FIN."""
    return ack.ack == (fin.seq + fin.length + 1) & MASK


def run_close() -> LessonRun:
    cfg = lesson_config()
    pair = open_pair("close", cfg)
    scene, client, server = pair.scene, pair.client, pair.server
    scene.run_for(0.1)

    client.shutdown()
    fin1 = scene.until_sent("client", "F.")
    scene.note("close.fin1")
    ack1 = scene.until_sent("server", ".")
    scene.note("close.ack1")
    scene.until_state("client", "FIN_WAIT_2")
    scene.note("close.fw2")

    scene.run_for(0.03)
    last_words = b"bye, one more thing"
    server.send(last_words)
    scene.until_sent("server", "P.")
    scene.note("close.halfclose")
    scene.run_until(lambda: client.receive_available >= len(last_words), 5.0, "the last words")
    client_state_when_read = client.state
    got = client.receive()
    scene.note("close.read", data=repr(got), state="FIN_WAIT_2")
    client.close()  # nothing more to read either: no segment, the FIN is already out

    scene.run_for(0.1)
    server.close()
    fin2 = scene.until_sent("server", "F.")
    scene.note("close.fin2")
    ack2 = scene.until_sent("client", ".")
    scene.note("close.ack2")
    scene.until_state("server", "CLOSED")
    scene.note("close.server_closed")
    tw_start = _state_time(scene, "client", "TIME_WAIT")
    closed = scene.until_state("client", "CLOSED", timeout=2 * cfg.msl + 10)
    waited = round(closed.t - tw_start, 6)
    scene.note("close.two_msl", seconds=f"{waited:g}", msl=f"{cfg.msl:g}")

    run = scene.run
    close_start = fin1.t
    sequence = [f"{r.src} {r.flags}" for r in run.segments("sent") if r.t >= close_start]
    client_states = run.states("client")
    server_states = run.states("server")
    order_ok = (
        fin1.t <= ack1.t <= fin2.t <= ack2.t
        and "F" not in ack1.flags
        and _acks(ack1, fin1)
        and _acks(ack2, fin2)
    )
    run.verdict = verdict(
        "close.claim",
        [
            check(
                "close.check.order",
                order_ok,
                fin1=fin1.seq,
                ack1=ack1.ack if ack1.ack is not None else -1,
                fin2=fin2.seq,
                ack2=ack2.ack if ack2.ack is not None else -1,
            ),
            check(
                "check.client",
                client_states[-4:] == ["FIN_WAIT_1", "FIN_WAIT_2", "TIME_WAIT", "CLOSED"],
                states=" → ".join(client_states),
            ),
            check(
                "check.server",
                server_states[-3:] == ["CLOSE_WAIT", "LAST_ACK", "CLOSED"],
                states=" → ".join(server_states),
            ),
            check(
                "close.check.halfclose",
                got == last_words and client_state_when_read is State.FIN_WAIT_2,
                data=repr(got),
            ),
            check(
                "close.check.two_msl",
                waited == 2 * cfg.msl,
                seconds=f"{waited:g}",
                msl=f"{cfg.msl:g}",
            ),
        ],
        close_segments=sequence,
        client_states=client_states,
        server_states=server_states,
        half_close_data=got.decode(),
        time_wait_seconds=waited,
        msl=cfg.msl,
    )
    return run


def _state_time(scene: Scene, end: str, state: str) -> float:
    """When `end` last entered `state`."""
    times = [
        r.t
        for r in scene.run.records
        if isinstance(r, StateRecord) and r.end == end and r.state == state
    ]
    return times[-1]


@dataclass(frozen=True, slots=True)
class _LostAck:
    """What happened when the client's last ACK was lost."""

    scene: Scene
    fin: SegmentRecord  # the server's FIN
    again: SegmentRecord  # the server's FIN, sent again
    server_state_when_resent: State
    answer: SegmentRecord  # what the client sent in reply
    client_state_when_answered: State
    server_reset: bool  # the server's connection ended in a reset


def _lose_last_ack(msl: float, section: str, run: LessonRun | None) -> _LostAck:
    """Close with the client's last ACK lost (the client's 2MSL given by `msl`)."""
    client_cfg = lesson_config(msl=msl)
    pair = open_pair(
        "time-wait", lesson_config(), client_config=client_cfg, run=run, section=section
    )
    scene, client, server = pair.scene, pair.client, pair.server
    client.close()
    scene.until_state("server", "CLOSE_WAIT")
    scene.run_for(0.05)
    server.close()
    fin = scene.until_sent("server", "F.")
    scene.drop(lambda s: s.src == "client" and s.flags == ".")
    scene.until_segment(
        lambda r: r.event == "lost" and r.src == "client", 5.0, "the last ACK to be lost"
    )
    scene.note("tw.lost" if msl else "tw.lost_no_wait")
    again = scene.until_segment(
        lambda r: r.event == "sent" and r.src == "server" and r.retransmission,
        10.0,
        "the server to send its FIN again",
    )
    server_state = server.state
    scene.note("tw.fin_again")
    answer = scene.until_segment(
        lambda r: r.event == "sent" and r.src == "client", 5.0, "the client to answer the FIN"
    )
    client_state = client.state
    scene.note("tw.reack" if msl else "tw.rst")
    scene.until_state("server", "CLOSED")
    if msl:
        scene.note("tw.server_closed")
    reset = any(isinstance(e, Reset) for _t, e in scene.events(server))
    return _LostAck(scene, fin, again, server_state, answer, client_state, reset)


def run_time_wait() -> LessonRun:
    msl = lesson_config().msl
    with_wait = _lose_last_ack(msl, "tw.section.with", None)
    scene, answer = with_wait.scene, with_wait.answer
    closed = scene.until_state("client", "CLOSED", timeout=2 * msl + 10)
    waited = round(closed.t - answer.t, 6)
    scene.note("tw.closed", seconds=f"{waited:g}")

    without = _lose_last_ack(0.0, "tw.section.without", scene.run)
    without.scene.note("tw.why")

    run = scene.run
    again = with_wait.again
    run.verdict = verdict(
        "tw.claim",
        [
            check(
                "tw.check.resent",
                again.seq == with_wait.fin.seq
                and "F" in again.flags
                and with_wait.server_state_when_resent is State.LAST_ACK,
            ),
            check(
                "tw.check.reack",
                answer.flags == "." and with_wait.client_state_when_answered is State.TIME_WAIT,
                flags=answer.flags,
            ),
            check("tw.check.clean", not with_wait.server_reset),
            check(
                "tw.check.restart",
                waited == 2 * msl,
                seconds=f"{waited:g}",
                msl=f"{msl:g}",
            ),
            check("tw.check.rst", without.answer.flags == "R", flags=without.answer.flags),
        ],
        resent_fin_seq=again.seq,
        reack_flags=answer.flags,
        reack_state=str(with_wait.client_state_when_answered),
        time_wait_after_reack=waited,
        msl=msl,
        without_wait_answer=without.answer.flags,
    )
    return run
