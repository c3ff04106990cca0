"""`retransmit`: reliability by feedback -- keep a copy, resend on a timer, give up.

Claim: a lost segment is not lost data. The sender keeps a copy until it is
acknowledged and resends it when the retransmission timer (RTO) fires; each
timeout doubles the RTO; after `max_retransmits` tries without an answer the
connection is abandoned and the application is told (TimedOut).
"""

from __future__ import annotations

import itertools

from synack.apps.lessons.common import check, lesson_config, open_pair, verdict
from synack.apps.lessons.model import LessonRun, SegmentRecord, TimerRecord
from synack.tcp import State, TimedOut

TRIES = 5  # max_retransmits for the lesson (Linux's tcp_retries2 is 15: about 15 minutes)


def run() -> LessonRun:
    # The seeds' claim is the classic timer, so the lesson turns off tail loss probes
    # (RFC 8985 §7), which would otherwise repair the lone lost segment before the RTO.
    cfg = lesson_config(max_retransmits=TRIES, tail_loss_probe=False)
    pair = open_pair("retransmit", cfg)
    scene, client, server = pair.scene, pair.client, pair.server
    scene.run_for(0.1)

    # Part 1: one segment lost, and recovered from the copy.
    first = b"hello"
    scene.drop(lambda s: s.src == "client" and s.length > 0)
    client.send(first)
    lost = scene.until_segment(lambda r: r.event == "lost", 5.0, "the loss")
    kept = client.unacked
    scene.note("rt.lost", n=len(first), kept=kept)
    timer = scene.until(lambda r: isinstance(r, TimerRecord), 5.0, "the timer")
    assert isinstance(timer, TimerRecord)
    again = scene.until_sent("client", "P.")
    scene.note("rt.resent", rto=f"{again.t - lost.t:g}")
    scene.run_until(lambda: client.unacked == 0, 5.0, "the ACK")
    scene.note("rt.acked")
    received = server.receive()
    scene.run_for(0.2)

    # Part 2: the server vanishes; every segment to it is lost.
    scene.section("rt.section.vanish", tries=TRIES)
    scene.drop(lambda s: s.src == "client", count=None)
    client.send(b"anyone there?")
    start = len(scene.run.records)
    original = scene.until_sent("client", "P.")
    scene.note("rt.cut")
    scene.run_until(lambda: client.state is State.CLOSED, 600.0, "the client to give up")
    scene.note("rt.gave_up", tries=TRIES)

    run = scene.run
    later = run.records[start:]
    sends = [
        r.t
        for r in later
        if isinstance(r, SegmentRecord) and r.event == "sent" and r.src == "client" and r.length
    ]
    timers = [r for r in later if isinstance(r, TimerRecord) and r.end == "client"]
    gave_up_at = next(t for t, e in scene.events(client) if isinstance(e, TimedOut))
    retransmissions = len(sends) - 1
    intervals = [round(b - a, 6) for a, b in zip(sends, [*sends[1:], gave_up_at], strict=True)]
    doubling = all(abs(b - 2 * a) < 1e-6 for a, b in itertools.pairwise(intervals))
    timed_out = any(isinstance(e, TimedOut) for _t, e in scene.events(client))
    run.verdict = verdict(
        "rt.claim",
        [
            check(
                "rt.check.copy",
                kept == len(first) and again.seq == lost.seq and again.length == lost.length,
                kept=kept,
                seq=again.seq,
            ),
            check("rt.check.delivered", received == first, data=repr(received)),
            check(
                "rt.check.backoff",
                doubling and len(intervals) == TRIES + 1,
                intervals=", ".join(f"{i:g}" for i in intervals),
            ),
            check(
                "rt.check.gave_up",
                retransmissions == TRIES and timed_out and client.state is State.CLOSED,
                tries=retransmissions,
                limit=TRIES,
            ),
        ],
        kept_bytes=kept,
        first_rto=round(again.t - lost.t, 6),
        received=received.decode(),
        original_sent_at=original.t,
        intervals=intervals,
        timeouts=len(timers),
        retransmissions=retransmissions,
        max_retransmits=TRIES,
        timed_out=timed_out,
        final_state=str(client.state),
    )
    return run
