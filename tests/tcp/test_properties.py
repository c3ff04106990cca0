"""Whatever the network does, a byte stream arrives complete, in order and exactly once,
or the connection reports an error: never silent corruption.

Two hosts on a `FakeNetwork` whose links lose, duplicate, reorder, corrupt, delay and
rate-limit packets, each direction on its own settings; applications that write in
chunks of any size, read at random virtual times in random amounts, half-close when
done, and send both ways at once; connections configured every way the core allows
(cubic/newreno, SACK, timestamps and window scaling on or off, small MSS, receive
buffers small enough to close the window). After every run:

* a receiver that saw EOF holds exactly the bytes its peer wrote;
* otherwise the connection ended with an error *event* (TimedOut or Reset) and what
  arrived is a prefix of what was written;
* once both sides close, both connections reach CLOSED.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import cycle

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from synack.tcp import (
    Config,
    Connected,
    Connection,
    ConnectionReset,
    Reset,
    State,
    TCPError,
    TimedOut,
)
from synack.testing import DropCause, FakeNetwork, Link, RawEndpoint, connected_pair, fakenet
from synack.wire.tcp import Flags, Options, build_segment, parse_segment
from synack.wire.tcp import Segment as WireSegment

CLIENT, SERVER, PORT = "198.18.1.1", "198.18.1.2", 443
SECRET = b"property-tests".ljust(32, b"-")
# A connection that neither moves a byte nor changes state for this long has hung: with
# rto_max lowered to 10 s (below), a live one retransmits at least every 10 s and gives
# up after 15 unanswered tries, so progress or failure always comes well inside it.
STALL_LIMIT = 400.0
# Virtual seconds a whole run may take: a backstop. Heavy loss with lost ACKs can slow a
# transfer to tens of bytes per second (RFC 7323 timestamp echoes of old segments inflate
# the RTO), which is slow but still progress.
RUN_LIMIT = 20_000.0
CLOSE_LIMIT = 2000.0

EXAMPLES = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,  # the same examples every run: the suite stays deterministic
    # A failure is reported as found, not shrunk: shrinking whole TCP runs takes minutes.
    # The hand-built regression tests at the end are the minimal reproductions.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# ---------------------------------------------------------------------- the application


@dataclass
class Side:
    """One application: writes `outgoing`, reads whatever arrives, then closes."""

    name: str
    outgoing: bytes
    conn: Connection | None = None
    connected: bool = False  # the program starts once its connect/accept has returned
    written: int = 0
    shut: bool = False
    closed: bool = False
    received: bytearray = field(default_factory=bytearray)
    eof: bool = False
    failure: TCPError | None = None  # raised by a call
    error_events: list[TimedOut | Reset] = field(default_factory=list)
    aborted: bool = False  # the program gave up on purpose (abort: RST)

    @property
    def failed(self) -> bool:
        """The connection ended without a complete exchange, and this side knows it."""
        return (
            self.aborted
            or bool(self.error_events)
            or self.failure is not None
            or (self.conn is not None and self.conn.error is not None)
        )

    def progress(self) -> tuple[object, ...]:
        conn = self.conn
        if conn is None:
            return ()
        return (conn.state, conn.snd_una, conn.snd_max, conn.rcv_nxt, len(self.received))

    def describe(self) -> str:
        if self.conn is None:
            return "not connected"
        info = self.conn.info()
        keys = ("state", "snd_una", "snd_nxt", "snd_wnd", "rcv_nxt", "rcv_wnd", "cwnd", "rto")
        return (
            ", ".join(f"{k}={info[k]}" for k in keys)
            + f", unsent={self.conn.unsent}, timer={self.conn.get_timer()}"
        )

    def abort(self) -> None:
        if self.conn is not None and not self.aborted:
            self.conn.abort()
            self.aborted = True

    def drain_events(self) -> None:
        assert self.conn is not None
        while (ev := self.conn.next_event()) is not None:
            if isinstance(ev, Connected):
                self.connected = True
            elif isinstance(ev, TimedOut | Reset):
                self.error_events.append(ev)

    def act(self, read_size: int) -> None:
        """What the program does when it runs: write, half-close, read, close at the end."""
        conn = self.conn
        if conn is None or self.aborted:
            return
        self.drain_events()
        if not self.connected:
            return
        try:
            if self.written < len(self.outgoing):
                self.written += conn.send(memoryview(self.outgoing)[self.written :])
            if self.written == len(self.outgoing) and not self.shut:
                conn.shutdown()
                self.shut = True
            if not self.eof:
                self.received += conn.receive(read_size)
                self.eof = conn.at_eof
            if self.eof and self.shut and not self.closed:
                conn.close()
                self.closed = True
        except TCPError as exc:
            self.failure = exc
        self.drain_events()


@dataclass
class Outcome:
    client: Side
    server: Side
    net: FakeNetwork


def run_transfer(
    net: FakeNetwork,
    client_cfg: Config,
    server_cfg: Config,
    c2s: bytes,
    s2c: bytes,
    ticks: list[float],
    reads: list[int],
    disrupt: Callable[[FakeNetwork, Side, Side], None] | None = None,
) -> Outcome:
    """Connect, let both applications run at the tick times until each direction has
    ended (EOF, or an error on either side), then let both connections close.

    `disrupt(net, client, server)` may schedule trouble: a link dying, an abort."""
    client = Side("client", c2s)
    server = Side("server", s2c)
    if disrupt is not None:
        disrupt(net, client, server)
    server_host = net.add_host(SERVER, server_cfg)
    client_host = net.add_host(CLIENT, client_cfg)
    server_host.listen(PORT, backlog=8)

    def accept(_now: float) -> None:
        if server.conn is None:
            server.conn = server_host.accept(PORT)

    net.set_app(SERVER, accept)
    client.conn = client_host.connect((SERVER, PORT), net.now)
    intervals = cycle(ticks)
    sizes = cycle(reads)

    def finished() -> bool:
        for side, peer in ((client, server), (server, client)):
            if side.aborted and not (
                peer.failed or peer.conn is None or peer.conn.state is State.CLOSED
            ):
                return False  # the peer has yet to hear the RST
        if client.failed or server.failed:
            return True
        return client.eof and server.eof

    last_signature: list[object] = [None]
    last_change = [0.0]

    def tick() -> None:
        client.act(next(sizes))
        server.act(next(sizes))
        signature = (client.progress(), server.progress())
        if signature != last_signature[0]:
            last_signature[0] = signature
            last_change[0] = net.now
        elif net.now - last_change[0] > STALL_LIMIT:
            raise AssertionError(
                f"stalled: nothing moved for {STALL_LIMIT:g} s at t={net.now:.3f}; "
                f"client {client.describe()}; server {server.describe()}"
            )
        if not finished():
            net.call_later(next(intervals), tick)

    net.call_later(next(intervals), tick)
    net.run_until(finished, RUN_LIMIT, what="both directions to end (EOF) or fail")

    # Close whatever is still open and wait for both control blocks to go away.
    for side in (client, server):
        if side.conn is not None and not side.closed and not side.aborted:
            with contextlib.suppress(TCPError):
                side.conn.close()
    net.run_until(
        lambda: all(s.conn is None or s.conn.state is State.CLOSED for s in (client, server)),
        CLOSE_LIMIT,
        what="both connections to reach CLOSED after close()",
    )
    for side in (client, server):
        if side.conn is not None:
            side.drain_events()
    return Outcome(client, server, net)


def check(outcome: Outcome) -> None:
    """The acceptance property, for both directions."""
    for sender, receiver in ((outcome.client, outcome.server), (outcome.server, outcome.client)):
        got = bytes(receiver.received)
        if receiver.eof:
            assert got == sender.outgoing, (
                f"{receiver.name} saw EOF after {len(got)} bytes that differ from the "
                f"{len(sender.outgoing)} bytes {sender.name} wrote"
            )
        else:
            # Not delivered: only allowed when a connection failed, and said so.
            assert outcome.client.failed or outcome.server.failed, (
                f"{receiver.name} got {len(got)} of {len(sender.outgoing)} bytes, no EOF, no error"
            )
            assert sender.outgoing.startswith(got), (
                f"{receiver.name} received bytes that {sender.name} never wrote at that offset"
            )
    for side in (outcome.client, outcome.server):
        conn = side.conn
        if conn is not None and conn.error is not None:
            # An error is always reported as an event, not only as a stored exception.
            assert any(ev.error is conn.error for ev in side.error_events), (
                f"{side.name} failed with {conn.error!r} but no TimedOut/Reset event said so"
            )


# ---------------------------------------------------------------------- strategies


@st.composite
def configs(draw: st.DrawFn) -> Config:
    mss = draw(st.sampled_from([88, 200, 536, 1460]))
    small = st.integers(2 * mss, 8 * mss)
    large = st.integers(8 * mss, 256 * 1024)
    return Config(
        secret=SECRET,
        mss=mss,
        congestion_control=draw(st.sampled_from(["cubic", "newreno"])),
        sack=draw(st.booleans()),
        timestamps=draw(st.booleans()),
        window_scaling=draw(st.booleans()),
        receive_buffer=draw(st.one_of(small, large)),
        send_buffer=draw(st.one_of(small, large)),
        no_delay=draw(st.booleans()),
        delayed_ack=draw(st.booleans()),
        initial_window=draw(st.sampled_from([1, 2, 4, 10])),
        rto_max=10.0,  # give up within minutes of virtual time, not hours
        # Keepalive, when on, with short timers so that it acts within a run.
        keepalive=draw(st.booleans()),
        keepalive_idle=5.0,
        keepalive_interval=1.0,
        keepalive_count=3,
    )


@st.composite
def links(draw: st.DrawFn) -> Link:
    delay = draw(st.floats(0.0005, 0.1))
    rate = draw(st.one_of(st.none(), st.floats(20_000, 2_000_000)))
    return Link(
        delay=delay,
        jitter=draw(st.floats(0.0, delay)),
        loss=draw(st.one_of(st.just(0.0), st.floats(0.0, 0.3))),
        duplicate=draw(st.one_of(st.just(0.0), st.floats(0.0, 0.1))),
        reorder=draw(st.one_of(st.just(0.0), st.floats(0.0, 0.2))),
        reorder_delay=draw(st.floats(0.001, 0.2)),
        corrupt=draw(st.one_of(st.just(0.0), st.floats(0.0, 0.1))),
        rate=rate,
        queue_limit=draw(st.integers(2, 100)),
    )


def payload(seed: int, size: int) -> bytes:
    """Bytes that never repeat in a pattern, so a misplaced segment cannot match."""
    return random.Random(seed).randbytes(size)


scenario = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 2**32 - 1),
        "forward": links(),
        "backward": links(),
        "client_cfg": configs(),
        "server_cfg": configs(),
        "c2s": st.integers(0, 60_000),
        "s2c": st.one_of(st.just(0), st.integers(0, 20_000)),
        "ticks": st.lists(st.floats(0.002, 0.5), min_size=1, max_size=8),
        "reads": st.lists(st.integers(64, 70_000), min_size=1, max_size=8),
    }
)


def run_scenario(s: dict[str, object]) -> Outcome:
    seed = s["seed"]
    assert isinstance(seed, int)
    net = FakeNetwork(seed=seed)
    net.set_path(CLIENT, SERVER, s["forward"], reverse=s["backward"])  # type: ignore[arg-type]
    return run_transfer(
        net,
        s["client_cfg"],  # type: ignore[arg-type]
        s["server_cfg"],  # type: ignore[arg-type]
        payload(seed, s["c2s"]),  # type: ignore[arg-type]
        payload(seed + 1, s["s2c"]),  # type: ignore[arg-type]
        s["ticks"],  # type: ignore[arg-type]
        s["reads"],  # type: ignore[arg-type]
    )


# ---------------------------------------------------------------------- properties


@EXAMPLES
@given(scenario)
def test_stream_is_exact_or_the_connection_fails(s: dict[str, object]) -> None:
    check(run_scenario(s))


@settings(EXAMPLES, max_examples=40)
@given(
    seed=st.integers(0, 2**32 - 1),
    loss=st.floats(0.0, 0.3),
    config=configs(),
    size=st.integers(1, 30_000),
)
def test_symmetric_loss_only(seed: int, loss: float, config: Config, size: int) -> None:
    """Loss alone in both directions (ACKs too), the same configuration at both ends."""
    net = FakeNetwork(seed=seed, link=Link(delay=0.02, loss=loss))
    outcome = run_transfer(
        net, config, config, payload(seed, size), payload(~seed, size // 3), [0.05], [4096]
    )
    check(outcome)


@settings(EXAMPLES, max_examples=40)
@given(
    seed=st.integers(0, 2**32 - 1),
    link=links(),
    config=configs(),
    size=st.integers(1, 60_000),
    when=st.floats(0.0, 3.0),
    which=st.sampled_from(["forward", "backward", "both"]),
)
def test_link_dies_midway(
    seed: int, link: Link, config: Config, size: int, when: float, which: str
) -> None:
    """A path that stops carrying anything at a random moment: each direction either
    completed before, or its connection times out and says so."""
    dead = Link(loss=1.0)

    def cut(net: FakeNetwork, _client: Side, _server: Side) -> None:
        def down() -> None:
            if which in ("forward", "both"):
                net.set_link(CLIENT, SERVER, dead)
            if which in ("backward", "both"):
                net.set_link(SERVER, CLIENT, dead)

        net.call_at(when, down)

    net = FakeNetwork(seed=seed, link=link)
    outcome = run_transfer(
        net,
        config,
        config,
        payload(seed, size),
        payload(seed ^ 1, size // 2),
        [0.01, 0.2],
        [8192],
        disrupt=cut,
    )
    check(outcome)
    complete = outcome.client.eof and outcome.server.eof
    timed_out = any(
        isinstance(ev, TimedOut)
        for side in (outcome.client, outcome.server)
        for ev in side.error_events
    )
    assert complete or timed_out


@settings(EXAMPLES, max_examples=40)
@given(
    seed=st.integers(0, 2**32 - 1),
    config=configs(),
    size=st.integers(1, 60_000),
    when=st.floats(0.0, 2.0),
    aborter=st.sampled_from(["client", "server"]),
)
def test_abort_midway_resets_the_peer(
    seed: int, config: Config, size: int, when: float, aborter: str
) -> None:
    """One program aborts (RST) at a random moment; what arrived is a prefix, and a peer
    still open hears "connection reset" -- never a clean EOF."""
    link = Link(delay=0.01, jitter=0.005, duplicate=0.05, reorder=0.1)
    peer_open_at_abort: list[bool] = []

    def schedule(net: FakeNetwork, client: Side, server: Side) -> None:
        side, peer = (client, server) if aborter == "client" else (server, client)

        def go() -> None:
            if side.conn is None or side.conn.state not in SYNCHRONIZED_SENDING_RST:
                return
            if peer.conn is None or peer.conn.state not in PEER_HEARS_RESET:
                return
            peer_open_at_abort.append(True)
            side.abort()

        net.call_at(when, go)

    net = FakeNetwork(seed=seed, link=link)
    outcome = run_transfer(
        net,
        config,
        config,
        payload(seed, size),
        payload(seed ^ 1, size),
        [0.01, 0.05],
        [4096],
        disrupt=schedule,
    )
    check(outcome)
    if peer_open_at_abort:
        peer, aborting = (
            (outcome.server, outcome.client)
            if aborter == "client"
            else (outcome.client, outcome.server)
        )
        assert peer.conn is not None
        with contextlib.suppress(TCPError):
            peer.received += peer.conn.receive()
        heard_reset = any(
            isinstance(ev, Reset) and isinstance(ev.error, ConnectionReset)
            for ev in peer.error_events
        )
        # A peer that already had the aborting side's FIN (so all its data) may be in
        # CLOSING, LAST-ACK or TIME-WAIT when the RST lands, where RFC 9293 §3.10.7.4
        # closes silently. Otherwise it must be told.
        assert heard_reset or peer.conn.at_eof, f"{peer.name} never heard the reset"
        if peer.conn.at_eof:
            assert bytes(peer.received) == aborting.outgoing


# States in which ABORT sends a RST (RFC 9293 §3.10.5), and peer states in which a RST
# is reported as "connection reset" (§3.10.7.4, second, check the RST bit).
SYNCHRONIZED_SENDING_RST = frozenset(
    {State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2, State.CLOSE_WAIT}
)
PEER_HEARS_RESET = frozenset(
    {State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2, State.CLOSE_WAIT}
)


# ---------------------------------------------------------------------- fixed heavy runs


def heavy(
    seed: int,
    forward: Link,
    backward: Link,
    cfg: Config,
    c2s: int,
    s2c: int = 0,
    ticks: tuple[float, ...] = (0.01,),
    reads: tuple[int, ...] = (1 << 20,),
) -> Outcome:
    net = FakeNetwork(seed=seed)
    net.set_path(CLIENT, SERVER, forward, reverse=backward)
    outcome = run_transfer(
        net, cfg, cfg, payload(seed, c2s), payload(seed + 1, s2c), list(ticks), list(reads)
    )
    check(outcome)
    return outcome


def test_one_megabyte_at_five_percent_loss_with_reordering() -> None:
    lossy = Link(delay=0.02, jitter=0.005, loss=0.05, reorder=0.05, reorder_delay=0.03)
    out = heavy(1, lossy, lossy, Config(secret=SECRET), c2s=1 << 20)
    assert out.server.eof and not out.client.failed and not out.server.failed
    info = out.client.conn.info()  # type: ignore[union-attr]
    assert info["retransmits"] > 0 and info["sack"]


def test_one_megabyte_newreno_without_sack_with_loss_and_duplication() -> None:
    link = Link(delay=0.015, loss=0.03, duplicate=0.05)
    cfg = Config(secret=SECRET, congestion_control="newreno", sack=False)
    out = heavy(2, link, link, cfg, c2s=1 << 20)
    assert out.server.eof and not out.client.failed


def test_zero_windows_with_a_slow_small_reader_and_corruption() -> None:
    link = Link(delay=0.01, corrupt=0.03, loss=0.02)
    cfg = Config(secret=SECRET, mss=536, receive_buffer=2 * 536, send_buffer=4096)
    out = heavy(
        3, link, link, cfg, c2s=200_000, s2c=50_000, ticks=(0.05, 0.2, 0.01), reads=(100, 700, 3)
    )
    assert out.server.eof and out.client.eof
    assert out.net.stats.corrupted > 0


def test_thirty_percent_loss_both_ways_bidirectional() -> None:
    link = Link(delay=0.03, loss=0.3)
    cfg = Config(secret=SECRET, rto_max=10.0)
    out = heavy(4, link, link, cfg, c2s=100_000, s2c=100_000)
    # Heavy loss happened (a share of what was sent: a count would depend on how few
    # segments the recovery needs).
    assert out.net.stats.dropped_total > 0.2 * out.net.stats.sent


def test_bottleneck_queue_losses_only() -> None:
    """No random loss: every drop is a full bottleneck queue, as on a real path."""
    fwd = Link(delay=0.02, rate=1_000_000, queue_limit=20)
    out = heavy(5, fwd, Link(delay=0.02), Config(secret=SECRET), c2s=1 << 20)
    assert out.server.eof
    assert out.net.stats.dropped_total == out.net.stats.dropped[DropCause.QUEUE] > 0


# ---------------------------------------------------------------------- regressions
#
# Minimal, hand-built reproductions of failures the properties above found, each
# against a scripted peer (a `RawEndpoint` answering with crafted segments).

SERVER_IP, CLIENT_IP = bytes([198, 18, 1, 2]), bytes([198, 18, 1, 1])
PEER_ISS = 7_000_000


class ScriptedPeer:
    """The far end of one connection, played by hand: it sees the client's segments
    and sends exactly the segments a test builds."""

    def __init__(self, net: FakeNetwork) -> None:
        self.net = net
        self.raw = RawEndpoint(SERVER)
        net.attach(SERVER, self.raw)
        self.seen = 0

    def segments(self) -> list[WireSegment]:
        """Segments from the client not looked at yet."""
        new = self.raw.received[self.seen :]
        self.seen = len(self.raw.received)
        return [parse_segment(p, src=CLIENT_IP, dst=SERVER_IP) for _t, p, _s in new]

    def send(
        self,
        port: int,
        seq: int,
        ack: int,
        flags: Flags,
        window: int,
        options: Options | None = None,
        payload: bytes = b"",
    ) -> None:
        seg = WireSegment(
            PORT,
            port,
            seq=seq,
            ack=ack,
            flags=flags,
            window=window,
            options=options or Options(),
            payload=payload,
        )
        self.raw.send(build_segment(seg, src=SERVER_IP, dst=CLIENT_IP), CLIENT)


def scripted_connection(
    cfg: Config, window: int, options: Options
) -> tuple[FakeNetwork, Connection, ScriptedPeer, int]:
    """A client connection, ESTABLISHED with a scripted peer; returns its ISS too."""
    net = FakeNetwork(link=Link(delay=0.01))
    host = net.add_host(CLIENT, cfg)
    peer = ScriptedPeer(net)
    conn = host.connect((SERVER, PORT), net.now)
    net.run_for(0.02)
    (syn,) = peer.segments()
    assert syn.flags == Flags.SYN
    peer.send(syn.src_port, PEER_ISS, syn.seq + 1, Flags.SYN | Flags.ACK, window, options)
    net.run_until(lambda: conn.state is State.ESTABLISHED, 1.0)
    net.run_for(0.02)
    peer.segments()  # the handshake's ACK
    return net, conn, peer, syn.seq


def test_fast_retransmit_of_a_short_tail_carries_no_fin() -> None:
    """Found as "client saw EOF after 1140 bytes ... 3741 bytes server wrote": with SACK,
    fast retransmit of less than one MSS of outstanding data went out with FIN set (the
    retransmission's end ran past the data, which the sender took for its FIN), so the
    receiver saw a clean EOF in the middle of the stream -- silent truncation.

    Since RFC 6675 §2 counts an ACK as a duplicate on a SACK connection only when it
    SACKs new data (which cannot happen with one short segment outstanding), the plain
    duplicate ACKs that reach this path are those of a connection without SACK."""
    cfg = Config(secret=SECRET, sack=False, timestamps=False, window_scaling=False)
    net, conn, peer, iss = scripted_connection(cfg, 65535, Options(mss=1460))
    assert conn.send(b"x" * 100) == 100
    net.run_for(0.02)
    (first,) = peer.segments()
    assert first.payload == b"x" * 100 and not first.flags & Flags.FIN
    for _ in range(3):  # three duplicate ACKs: the segment is lost (RFC 5681 §3.2)
        peer.send(first.src_port, PEER_ISS + 1, iss + 1, Flags.ACK, 65535)
    net.run_for(0.02)
    resent = peer.segments()
    assert resent, "three duplicate ACKs drew no fast retransmission"
    for seg in resent:
        assert seg.seq == iss + 1 and seg.payload == b"x" * 100
        assert not seg.flags & Flags.FIN, "a retransmission carried a FIN the user never sent"
    # The stream goes on: the next bytes follow the first hundred, not a FIN.
    peer.send(first.src_port, PEER_ISS + 1, iss + 101, Flags.ACK, 65535)
    conn.send(b"more")
    net.run_for(0.02)
    (nxt,) = peer.segments()
    assert (nxt.seq, nxt.payload) == (iss + 101, b"more")
    assert conn.state is State.ESTABLISHED


def test_persist_timer_probes_when_the_usable_window_is_closed() -> None:
    """Found as "stalled: nothing moved for 400 s": SND.WND was non-zero but the usable
    window (the right edge minus SND.NXT) was zero, so the persist timer neither sent
    data nor probed, for ever. Here the peer's ACK with SEQ one past its lost FIN moves
    SND.WL1 ahead; the retransmitted FIN then acknowledges everything with a larger
    window that the WL1 rule of RFC 9293 §3.10.7.4 does not take. RFC 9293 §3.8.6.1:
    the sender must keep probing while it has data and the window is closed."""
    cfg = Config(
        secret=SECRET, mss=536, sack=False, timestamps=False, window_scaling=False, no_delay=True
    )
    net, conn, peer, iss = scripted_connection(cfg, 1072, Options(mss=536))
    data = payload(9, 2000)
    assert conn.send(data) == 2000
    net.run_for(0.02)
    sent = peer.segments()
    assert sum(len(s.payload) for s in sent) == 1072  # what the window allows
    port = sent[0].src_port
    c1 = iss + 1
    # An ACK sent after a FIN that is lost on the way: SEQ is one past the FIN.
    peer.send(port, PEER_ISS + 2, c1 + 536, Flags.ACK, 536)
    # The FIN, retransmitted: it acknowledges all data and opens the window wide.
    peer.send(port, PEER_ISS + 1, c1 + 1072, Flags.FIN | Flags.ACK, 4000)
    net.run_for(0.02)
    assert conn.state is State.CLOSE_WAIT
    received = bytearray(b"".join(s.payload for s in sent))

    def answer(_now: float) -> None:
        # From now on the peer acknowledges whatever arrives, with its real window.
        for seg in peer.segments():
            if seg.seq == c1 + len(received):
                received.extend(seg.payload)
            peer.send(port, PEER_ISS + 2, c1 + len(received), Flags.ACK, 4000)

    net.set_app(SERVER, answer)
    net.run_until(
        lambda: len(received) == 2000,
        120.0,
        what="the remaining 928 bytes to be probed for and sent",
    )
    assert bytes(received) == data


@pytest.mark.parametrize("shutdown_first", [False, True])
def test_close_in_fin_wait_2_expires_when_the_peer_is_gone(shutdown_first: bool) -> None:
    """Found as "network idle ... waiting for both connections to reach CLOSED": after
    shutdown() had already brought the connection to FIN-WAIT-2, close() armed no
    FIN-WAIT-2 timeout, so with the peer gone it stayed there for ever (and held its
    port). Linux's tcp_close() arms tcp_fin_timeout for an orphan in FIN-WAIT-2, as
    the core already does when close() comes first."""
    net = FakeNetwork(link=Link(delay=0.01))
    cfg = Config(secret=SECRET)
    client, _server = connected_pair(
        net, cfg, client_address=CLIENT, server_address=SERVER, port=PORT
    )
    if shutdown_first:
        client.shutdown()
    else:
        client.close()
    net.run_until(lambda: client.state is State.FIN_WAIT_2, 5.0)
    net.detach(SERVER)  # the peer vanishes without a word
    if shutdown_first:
        client.close()
    net.run_for(cfg.fin_wait_2_timeout + 5.0)
    assert client.state is State.CLOSED, f"still {client.state} with timer {client.get_timer()}"


def test_keepalive_timer_does_not_refire_at_the_same_instant(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found by the fake network's livelock guard ("1000001 events at t=33.485476 without
    time advancing"): the keepalive timer fired at LAST_RECV + keepalive_idle, computed
    the idle time as now - LAST_RECV, which floating point rounded to just under
    keepalive_idle, and re-armed itself for the same instant, for ever."""
    last = 4.281083
    assert (last + 5.0) - last < 5.0  # the rounding that sets it off
    monkeypatch.setattr(fakenet, "LIVELOCK_EVENTS", 10_000)  # fail fast, not after 10**6
    net = FakeNetwork(link=Link())  # no delay: a segment arrives exactly when it is sent
    cfg = Config(
        secret=SECRET, keepalive=True, keepalive_idle=5.0, keepalive_interval=1.0, keepalive_count=3
    )
    client, server = connected_pair(
        net, cfg, client_address=CLIENT, server_address=SERVER, port=PORT
    )
    net.call_at(last, lambda: server.send(b"x"))
    net.run_for(30.0)
    assert client.receive() == b"x"
    assert client.state is server.state is State.ESTABLISHED  # probes were answered
