"""`backlog` and `syn-flood`: the two queues behind listen(backlog), and the attack on one.

backlog -- claim: listen(2) bounds two queues. The accept queue holds connections whose
handshake is finished but which the application has not accepted; when it is full the
next client's SYN is dropped, unanswered, and the client keeps retrying until accept()
makes room. The SYN queue (the notes' half-connection pool) holds half-open connections;
when it is full the next SYN is dropped the same way, until the half-open ones expire.

syn-flood -- claim: forged SYNs that never complete fill the SYN queue and lock every
legitimate client out; with SYN cookies the server keeps no state for a SYN, and the
same clients all get in.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from synack.apps.lessons.common import CLIENT, PORT, SERVER, check, lesson_config, verdict
from synack.apps.lessons.model import End, LessonRun
from synack.apps.lessons.scene import Scene
from synack.tcp import Connection, State
from synack.tcp.host import Host
from synack.testing import Datagram, RawEndpoint
from synack.wire.checksum import address_bytes
from synack.wire.tcp import Flags, Options, Segment, build_segment

BACKLOG = 2
HALF_OPEN = "198.18.0.9"  # clients that send a SYN and never answer the SYN+ACK


def _ends() -> tuple[End, End]:
    return End("client", "end.clients", CLIENT), End("server", "end.server", f"{SERVER}:{PORT}")


def _syn(src: str, sport: int, isn: int) -> bytes:
    seg = Segment(sport, PORT, seq=isn, flags=Flags.SYN, window=64240, options=Options(mss=1460))
    return build_segment(seg, src=address_bytes(src), dst=address_bytes(SERVER))


@dataclass
class _Clients:
    """The client host and its connections, numbered as the ladder tags them."""

    scene: Scene
    host: Host
    conns: dict[str, Connection] = field(default_factory=dict)

    def connect(self) -> tuple[str, Connection]:
        conn = self.host.connect((SERVER, PORT), self.scene.net.now)
        tag = self.scene.watch(conn, "client")
        self.conns[tag] = conn
        return tag, conn


def run_backlog() -> LessonRun:
    scene = Scene("backlog", _ends(), seed=3, tag_connections=True)
    cfg = lesson_config(synack_retries=2)
    accepting = [False]
    accepted: list[Connection] = []

    def server_app(now: float) -> None:
        while accepting[0] and (conn := server.accept(PORT)) is not None:
            accepted.append(conn)

    clients = _Clients(scene, scene.host("client", CLIENT, cfg))
    server = scene.host("server", SERVER, cfg, app=server_app)
    listener = server.listen(PORT, BACKLOG, syn_cookies=False)
    scene.mark("server", "LISTEN")
    scene.note("bl.listen", backlog=BACKLOG)

    # Part 1: the accept queue. The application is busy and calls accept() on nobody.
    scene.section("bl.section.accept")
    queued: list[int] = []
    for _ in range(BACKLOG + 1):
        tag, conn = clients.connect()
        scene.run_until(_established(conn), 5.0, f"{tag} to connect")
        scene.run_for(0.02)
        queued.append(listener.accept_queue_length)
    scene.note("bl.accept_full", n=listener.accept_queue_length, backlog=BACKLOG)
    overflows_before = listener.stats["listen_overflows"]
    tag4, fourth = clients.connect()
    scene.until_sent("client", "S")
    scene.note("bl.dropped", tag=tag4)
    scene.until_segment(
        lambda r: r.retransmission and r.tag == tag4, 5.0, f"{tag4} to send its SYN again"
    )
    scene.note("bl.retry", tag=tag4)
    syn_acks_before_accept = _syn_acks_to(scene, tag4)
    fourth_state_before = fourth.state
    scene.run_for(0.5)
    accepting[0] = True
    server_app(scene.net.now)
    scene.note("bl.accept_one")
    scene.run_until(lambda: fourth.state is State.ESTABLISHED, 10.0, f"{tag4} to get in")
    scene.note("bl.in", tag=tag4)
    overflows = listener.stats["listen_overflows"] - overflows_before
    scene.run_for(0.1)

    # Part 2: the SYN queue, filled by clients that never finish their handshake.
    scene.section("bl.section.syn")
    scene.alias(HALF_OPEN, "client")
    ghost = RawEndpoint(HALF_OPEN)
    scene.net.attach(HALF_OPEN, ghost)
    ghost_tags = []
    for i in range(BACKLOG):
        ghost.send(_syn(HALF_OPEN, 40000 + i, 1000 * (i + 1)), SERVER)
        ghost_tags.append(scene.until_sent("server", "S.").tag)
    syn_queue_full = listener.syn_queue_length
    scene.note("bl.syn_full", n=syn_queue_full, tags=", ".join(ghost_tags))
    drops_before = listener.stats["syns_dropped"]
    tag_n, late = clients.connect()
    scene.until_sent("client", "S")
    scene.note("bl.syn_dropped", tag=tag_n)
    scene.until_state("server", "CLOSED")
    scene.note("bl.expired", retries=cfg.synack_retries)
    scene.run_until(lambda: late.state is State.ESTABLISHED, 30.0, f"{tag_n} to get in")
    scene.note("bl.syn_in", tag=tag_n)
    syns_dropped = listener.stats["syns_dropped"] - drops_before
    scene.run_for(0.05)
    scene.note("bl.lesson", backlog=BACKLOG)

    run = scene.run
    run.verdict = verdict(
        "bl.claim",
        [
            check(
                "bl.check.accept_queue",
                queued[-1] == BACKLOG + 1,
                n=queued[-1],
                backlog=BACKLOG,
            ),
            check(
                "bl.check.dropped",
                syn_acks_before_accept == 0
                and fourth_state_before is State.SYN_SENT
                and overflows >= 2,
                tag=tag4,
                n=overflows,
            ),
            check("bl.check.in_after_accept", fourth.state is State.ESTABLISHED, tag=tag4),
            check(
                "bl.check.syn_queue",
                syn_queue_full == BACKLOG and syns_dropped >= 1,
                n=syn_queue_full,
                tag=tag_n,
            ),
            check("bl.check.in_after_expiry", late.state is State.ESTABLISHED, tag=tag_n),
        ],
        backlog=BACKLOG,
        accept_queue_lengths=queued,
        fourth_client=tag4,
        listen_overflows=overflows,
        syn_acks_to_fourth_before_accept=syn_acks_before_accept,
        syn_queue_length=syn_queue_full,
        syns_dropped=syns_dropped,
        late_client=tag_n,
    )
    return run


def _established(conn: Connection) -> Callable[[], bool]:
    return lambda: conn.state is State.ESTABLISHED


def _syn_acks_to(scene: Scene, tag: str) -> int:
    return sum(1 for r in scene.run.segments("sent") if r.tag == tag and r.flags == "S.")


# ---------------------------------------------------------------------- syn-flood

FLOOD_RATE = 50.0  # forged SYNs per second
FLOOD_SECONDS = 12.0
FLOOD_BACKLOG = 4
LEGIT_AT = (1.0, 5.0, 9.0)  # when the real clients connect
PATIENCE = 3.0  # seconds a client waits for the handshake before giving up
ATTACKER = "198.18.0.66"


class Flood:
    """An attacker: bare SYNs at a steady rate, each from a made-up address in
    198.19.0.0/16 where nothing lives, so every SYN+ACK goes nowhere."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self.next_at = 0.0
        self.sent = 0
        self._out: list[Datagram] = []

    def handle_timer(self, now: float) -> None:
        while self.next_at <= now and self.next_at < FLOOD_SECONDS:
            src = bytes((198, 19, self.random.randrange(256), self.random.randrange(1, 255)))
            seg = Segment(
                self.random.randrange(1024, 65536),
                PORT,
                seq=self.random.getrandbits(32),
                flags=Flags.SYN,
                window=64240,
                options=Options(mss=1460),
            )
            dst = address_bytes(SERVER)
            self._out.append((build_segment(seg, src=src, dst=dst), src, dst))
            self.sent += 1
            self.next_at += 1.0 / FLOOD_RATE

    def get_timer(self) -> float | None:
        return self.next_at if self.next_at < FLOOD_SECONDS else None

    def segments_to_send(self, now: float) -> list[Datagram]:
        out, self._out = self._out, []
        return out

    def handle_segment(self, data: bytes | bytearray, src: bytes, now: float) -> None:
        pass


@dataclass
class _FloodOutcome:
    connected: int
    syn_queue: list[int]
    cookies_sent: int
    flood_sent: int
    syns_dropped: int


def _flood(scene: Scene, cookies: bool) -> _FloodOutcome:
    cfg = lesson_config()
    accepted: list[Connection] = []

    def server_app(now: float) -> None:
        while (conn := server.accept(PORT)) is not None:
            accepted.append(conn)

    clients = _Clients(scene, scene.host("client", CLIENT, cfg))
    server = scene.host("server", SERVER, cfg, app=server_app)
    listener = server.listen(PORT, FLOOD_BACKLOG, syn_cookies=cookies)
    scene.mark("server", "LISTEN")
    flood = Flood(seed=7)
    scene.net.attach(ATTACKER, flood)
    scene.note("sf.flood", rate=f"{FLOOD_RATE:g}", backlog=FLOOD_BACKLOG, patience=f"{PATIENCE:g}")
    samples: list[int] = []
    connected = 0
    for at in LEGIT_AT:
        scene.run_for(max(0.0, at - scene.net.now))
        samples.append(listener.syn_queue_length)
        tag, conn = clients.connect()
        try:
            scene.run_until(_established(conn), PATIENCE, f"{tag} to connect")
        except TimeoutError:
            conn.abort()
            scene.note("sf.gave_up", tag=tag, seconds=f"{PATIENCE:g}")
        else:
            connected += 1
            scene.note("sf.in", tag=tag)
    scene.run_for(FLOOD_SECONDS + 1 - scene.net.now)
    return _FloodOutcome(
        connected,
        samples,
        listener.stats["cookies_sent"],
        flood.sent,
        listener.stats["syns_dropped"],
    )


def run_syn_flood() -> LessonRun:
    scene = Scene("syn-flood", _ends(), seed=5, tag_connections=True)
    scene.section("sf.section.without")
    without = _flood(scene, cookies=False)
    scene.note(
        "sf.locked_out", n=without.connected, total=len(LEGIT_AT), dropped=without.syns_dropped
    )
    scene2 = Scene("syn-flood", _ends(), seed=5, tag_connections=True, run=scene.run)
    scene2.section("sf.section.with")
    with_cookies = _flood(scene2, cookies=True)
    scene2.note(
        "sf.cookies",
        n=with_cookies.connected,
        total=len(LEGIT_AT),
        cookies=with_cookies.cookies_sent,
    )

    run = scene.run
    total = len(LEGIT_AT)
    run.verdict = verdict(
        "sf.claim",
        [
            check(
                "sf.check.full",
                all(n == FLOOD_BACKLOG for n in without.syn_queue + with_cookies.syn_queue),
                backlog=FLOOD_BACKLOG,
                samples=", ".join(str(n) for n in without.syn_queue + with_cookies.syn_queue),
            ),
            check("sf.check.without", without.connected == 0, n=without.connected, total=total),
            check(
                "sf.check.with",
                with_cookies.connected == total and with_cookies.cookies_sent > 0,
                n=with_cookies.connected,
                total=total,
                cookies=with_cookies.cookies_sent,
            ),
        ],
        clients=total,
        connected_without_cookies=without.connected,
        connected_with_cookies=with_cookies.connected,
        syn_queue_without=without.syn_queue,
        syn_queue_with=with_cookies.syn_queue,
        cookies_sent=with_cookies.cookies_sent,
        forged_syns=without.flood_sent + with_cookies.flood_sent,
        syns_dropped_without=without.syns_dropped,
    )
    return run
