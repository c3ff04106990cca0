"""What the lessons on the virtual network share: addresses, configuration, verdicts."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from synack.apps.lessons.model import Check, End, LessonRun, Param, Verdict
from synack.apps.lessons.scene import Scene
from synack.tcp import Config, Connection
from synack.tcp.host import Host

# Addresses from the benchmarking range (RFC 2544), which no real network routes.
CLIENT = "198.18.0.1"
SERVER = "198.18.0.2"
PORT = 80
# A fixed key: initial sequence numbers and ports come out the same on every run.
SECRET = b"synack lessons: same every run!!"

_BASE = Config(secret=SECRET)


def lesson_config(**changes: Any) -> Config:
    """The lessons' TCP configuration: the defaults, a fixed secret, and `changes`."""
    return replace(_BASE, **changes)


def client_server_ends(client: str = CLIENT, server: str = f"{SERVER}:{PORT}") -> tuple[End, End]:
    return End("client", "end.client", client), End("server", "end.server", server)


def check(key: str, passed: bool, **params: Param) -> Check:
    return Check(key, dict(params), bool(passed))


def verdict(claim: str, checks: list[Check], **evidence: Any) -> Verdict:
    return Verdict(claim, tuple(checks), evidence)


@dataclass(slots=True)
class Pair:
    """A scene with one connection open between the client and the server."""

    scene: Scene
    client_host: Host
    server_host: Host
    client: Connection
    server: Connection


def open_pair(
    name: str,
    config: Config | None = None,
    *,
    client_config: Config | None = None,
    seed: int = 1,
    run: LessonRun | None = None,
    section: str | None = None,
) -> Pair:
    """Open a connection, drawn as the handshake with one line of narration.

    With `run`, the scene is a later part of that run, headed by `section`."""
    cfg = config or lesson_config()
    scene = Scene(name, client_server_ends(), seed=seed, run=run)
    if section is not None:
        scene.section(section)
    accepted: list[Connection] = []

    def server_app(now: float) -> None:
        if not accepted:
            conn = server_host.accept(PORT)
            if conn is not None:
                accepted.append(conn)

    client_host = scene.host("client", CLIENT, client_config or cfg)
    server_host = scene.host("server", SERVER, cfg, app=server_app)
    server_host.listen(PORT, 5)
    scene.mark("client", "CLOSED")
    scene.mark("server", "LISTEN")
    client = client_host.connect((SERVER, PORT), scene.net.now)
    scene.watch(client, "client")
    scene.run_until(lambda: bool(accepted), 5.0, "the connection to be accepted")
    scene.note("recap.handshake")
    scene.net.set_app(SERVER, None)
    return Pair(scene, client_host, server_host, client, accepted[0])
