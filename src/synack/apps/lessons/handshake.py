"""`handshake`: the three-way handshake, segment by segment, on synack's own TCP.

Claim: a connection opens with exactly three segments -- SYN, SYN+ACK, ACK -- each
acknowledging the other side's initial sequence number plus one, while the client
goes CLOSED, SYN_SENT, ESTABLISHED and the server LISTEN, SYN_RCVD, ESTABLISHED.
"""

from __future__ import annotations

from synack.apps.lessons.common import (
    CLIENT,
    PORT,
    SERVER,
    check,
    client_server_ends,
    lesson_config,
    verdict,
)
from synack.apps.lessons.model import LessonRun
from synack.apps.lessons.scene import Scene
from synack.tcp import Connection
from synack.wire.tcp import parse_segment


def run() -> LessonRun:
    scene = Scene("handshake", client_server_ends(), seed=1)
    cfg = lesson_config()
    accepted: list[Connection] = []

    def server_app(now: float) -> None:
        conn = server.accept(PORT)
        if conn is not None:
            accepted.append(conn)

    client = scene.host("client", CLIENT, cfg)
    server = scene.host("server", SERVER, cfg, app=server_app)
    server.listen(PORT, 5)
    scene.mark("client", "CLOSED")
    scene.mark("server", "LISTEN")
    scene.note("hs.listen")

    conn = client.connect((SERVER, PORT), scene.net.now)
    scene.watch(conn, "client")
    syn = scene.until_sent("client", "S")
    opts = parse_segment(syn.data).options
    scene.note("hs.syn", isn=conn.iss, port=conn.local_port)
    scene.note("hs.options", mss=opts.mss or 0)

    synack = scene.until_sent("server", "S.")
    scene.note("hs.synack")
    ack = scene.until_sent("client", ".")
    scene.note("hs.ack")
    scene.run_until(lambda: bool(accepted), 5.0, "accept() to return the connection")
    scene.note("hs.established")
    scene.note("hs.accept")

    run = scene.run
    flags = [r.flags for r in run.segments("sent")]
    client_states = run.states("client")
    server_states = run.states("server")
    server_isn = accepted[0].iss
    synack_seg = parse_segment(synack.data)
    ack_seg = parse_segment(ack.data)
    run.verdict = verdict(
        "hs.claim",
        [
            check("hs.check.flags", flags == ["S", "S.", "."], flags=", ".join(flags)),
            check(
                "check.client",
                client_states == ["CLOSED", "SYN_SENT", "ESTABLISHED"],
                states=" → ".join(client_states),
            ),
            check(
                "check.server",
                server_states == ["LISTEN", "SYN_RCVD", "ESTABLISHED"],
                states=" → ".join(server_states),
            ),
            check(
                "hs.check.acks",
                synack_seg.ack == (conn.iss + 1) & 0xFFFFFFFF
                and ack_seg.ack == (server_isn + 1) & 0xFFFFFFFF,
                x=conn.iss,
                y=server_isn,
            ),
        ],
        flags=flags,
        client_states=client_states,
        server_states=server_states,
        client_isn=conn.iss,
        server_isn=server_isn,
        synack_ack=synack_seg.ack,
        ack_ack=ack_seg.ack,
    )
    return run
