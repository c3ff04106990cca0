"""BBR beside CUBIC through a one-BDP drop-tail buffer (issue 12 point 10): the CUBIC
flow keeps at least a quarter of the bottleneck. bench/bbr.py --only share runs the
whole matrix (1-10 MB/s, 10-100 ms); these are its cheaper rows, seed 1."""

from __future__ import annotations

import pytest

from synack.testing.bottleneck import bottleneck_run, buffer_packets

# At 5-10 MB/s and 100 ms, BBR leaves Startup on its first loss with a queue, with the
# flight bounded at about one BDP, and then, paced, it is hardly ever again in a recovery
# that meets a standing queue: the bound grows a segment a round, CUBIC's bursts take the
# drops and keep 16-20% (docs/benchmarks.md).
_NO_LOSS_AFTER_STARTUP = pytest.mark.xfail(
    strict=True, reason="BBR is rarely in recovery after Startup at 100 ms (0.20 here)"
)


@pytest.mark.parametrize(
    ("rate", "rtt"),
    [
        (1e6, 0.01),
        (1e6, 0.04),
        (1e6, 0.1),
        (2e6, 0.01),
        (2e6, 0.04),
        (2e6, 0.1),
        pytest.param(5e6, 0.1, marks=(_NO_LOSS_AFTER_STARTUP, pytest.mark.slow)),
    ],
)
def test_cubic_keeps_a_quarter_of_a_one_bdp_buffer_beside_bbr(rate: float, rtt: float) -> None:
    run = bottleneck_run(
        ["bbr", "cubic"],
        rate,
        rtt,
        buffer=buffer_packets(rate, rtt, 1.0),
        warmup=2.0 + 20 * rtt,
        measure=10.0,
    )
    cubic = run.flows[1]
    assert cubic.goodput >= 0.25 * rate, run
    assert run.utilisation >= 0.90, run  # shared, not wasted
