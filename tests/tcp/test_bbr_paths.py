"""BBR through the connection on the fake network (issue 12 point 10): the rate kept
under random loss each way, the standing queue alone on a bottleneck, pacing through
the core's timer. Small paths so that each run takes about a second; bench/bbr.py runs
the fuller matrix (1-100 MB/s, 10-100 ms)."""

from __future__ import annotations

import pytest

from synack.tcp.config import Config
from synack.testing import FakeNetwork, Link, connected_pair
from synack.testing.bottleneck import bottleneck_run


@pytest.mark.parametrize(
    ("rate", "rtt", "loss"),
    [
        (2e6, 0.04, 0.01),
        (2e6, 0.04, 0.05),
        (1e6, 0.1, 0.01),
        # Once 0.61-0.96 over seeds 1-5: RTOs at a 200 ms floor, 2 round trips here;
        # with Linux's SRTT + 200 ms, 0.84-1.02.
        (1e6, 0.1, 0.05),
    ],
)
def test_bbr_keeps_80_percent_of_the_bottleneck_under_random_loss(
    rate: float, rtt: float, loss: float
) -> None:
    run = bottleneck_run(["bbr"], rate, rtt, loss=loss, measure=3.0)
    assert run.utilisation >= 0.80, run
    # CUBIC on the same path, for contrast: loss-based control collapses there.
    cubic = bottleneck_run(["cubic"], rate, rtt, loss=loss, measure=3.0)
    assert cubic.utilisation < run.utilisation / 2


@pytest.mark.parametrize(("rate", "rtt"), [(2e6, 0.04), (5e6, 0.01)])
def test_bbr_alone_keeps_its_standing_queue_under_one_bdp(rate: float, rtt: float) -> None:
    """A deep buffer (4 BDPs) that BBR could fill but does not: after Startup and Drain
    the queue stays well under one bandwidth-delay product, at full rate."""
    run = bottleneck_run(["bbr"], rate, rtt, measure=3.0)
    assert run.utilisation >= 0.95
    assert run.queue_max < run.bdp
    assert run.queue_median < 0.5 * run.bdp
    # CUBIC fills whatever buffer there is.
    cubic = bottleneck_run(["cubic"], rate, rtt, measure=3.0)
    assert cubic.queue_median > run.bdp


def test_bbr_paces_new_data_through_its_timer() -> None:
    """With no bottleneck to space them, segments still leave spread out: in bursts of
    at most one send quantum, each burst at its pacing time, which get_timer reports."""
    net = FakeNetwork(seed=3)
    net.set_default_link(Link(delay=0.02))
    cfg = Config(congestion_control="bbr", send_buffer=1 << 22, receive_buffer=1 << 22)
    client, server = connected_pair(net, cfg)
    client.send(bytes(range(256)) * 4096)  # 1 MiB
    bursts: dict[float, int] = {}
    timers: list[float] = []

    def tap(now: float, event: object, data: bytes | bytearray, src: bytes, dst: bytes) -> None:
        if event == "sent" and src == client.local_ip and len(data) > 32:
            bursts[now] = bursts.get(now, 0) + len(data) - 32

    net.tap = tap
    for _ in range(400):  # bounded: a few hundred events
        if not net.step():
            break
        t = client.get_timer()
        if t is not None and client._pace_at is not None:
            timers.append(client._pace_at)
        if server.receive_available:
            server.receive()
    cc = client._cc
    assert cc.pacing_rate > 0
    assert timers, "the pacing time was never reported through get_timer"
    late = sorted(bursts)[20:]  # after the initial window, which leaves unpaced
    assert late and max(bursts[t] for t in late) <= max(cc.send_quantum, 2 * 1448)
    assert len(set(bursts)) > 20  # many distinct departure times, not one window-sized burst


def test_cubic_is_not_paced() -> None:
    net = FakeNetwork(seed=3)
    net.set_default_link(Link(delay=0.02))
    client, server = connected_pair(net, Config(congestion_control="cubic"))
    client.send(bytes(100_000))
    for _ in range(200):
        if not net.step():
            break
        assert client._pace_at is None
        server.receive()
    assert client._cc.pacing_rate == 0.0
