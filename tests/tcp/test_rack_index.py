"""RACK's indexes change nothing but the cost.

`Recovery.rack_detect` walks only the records still in doubt (`tsorted`) and
`_rack_update_sacked` only the records a SACK concerns (`originals`, `rxt_sent`);
before, both walked every transmission record on every ACK. `WalkAll` below is that
former code, kept here as the reference: the same seeded lossy transfers, run once
with each, must put the very same segments on the wire at the very same times.
The digests in `PINNED` were recorded on HEAD (f862597) before this change; they pin
the whole core's behaviour on those runs, so a change elsewhere that is meant to alter
it must record them again.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import synack.tcp.connection as connection_module
from synack.tcp.congestion import CongestionControl
from synack.tcp.recovery import Recovery
from synack.testing.bottleneck import bottleneck_run
from synack.testing.fakenet import FakeNetwork


class WalkAll(Recovery):
    """The former RACK bookkeeping: every record walked on every ACK."""

    __slots__ = ()

    def _rack_update_sacked(
        self, una: int, now: float, echo_ms: int, pieces: list[tuple[int, int]]
    ) -> None:
        from bisect import bisect_left

        sacked = self.sacked
        starts = sacked.starts
        ends = sacked.ends
        fack = self.rack_fack
        best = None
        best_end = 0
        for seg in self.sent:
            end = seg.end
            if end <= una or seg.lost:
                continue
            i = bisect_left(starts, end) - 1
            if i < 0 or ends[i] <= seg.sacked_to:
                continue
            hi = ends[i] if ends[i] < end else end
            if hi <= seg.start:
                continue
            seg.sacked_to = hi
            if not seg.retransmitted and hi <= fack and seg.start >= self.high_rxt:
                self.reordering_seen = True
            if not self._valid_sample(seg, now, echo_ms):
                continue
            if best is None or seg.order > best.order:
                best = seg
                best_end = hi
        if best is not None:
            self._rack_advance(best, best_end, now)

    def rack_detect(self, cc: CongestionControl, una: int, snd_max: int, now: float) -> bool:
        self.reo_at = None
        if self.rack_xmit_ts < 0:
            return False
        wait = self.rack_rtt + self.reo_wnd()
        sacked = self.sacked
        edge = self.lost_edge
        found = False
        timeout = 0.0
        for seg in self.sent:
            order = seg.order
            if order > self.rack_order:
                break
            end = seg.end
            if order == self.rack_order and end > self.rack_end:
                end = self.rack_end
            if end <= una or seg.lost:
                continue
            lo = seg.start if seg.start > una else una
            if lo >= end or sacked.covered(lo, end) == end - lo:
                continue
            remaining = seg.xmit_ts + wait - now
            if remaining > 0:
                timeout = max(timeout, remaining)
            elif seg.retransmitted:
                seg.lost = True
                if self.rxt_latest.get(seg.start, order) > order:
                    continue
                self.rxt_again.append((lo, end))
                found = True
            elif end > edge:
                edge = min(end, snd_max)
                found = True
        if timeout > 0:
            self.reo_at = now + timeout
        if not found:
            return False
        self.new_loss = True
        if self.in_recovery or self.rto_recovery:
            self.lost_edge = max(self.lost_edge, edge)
            return False
        if una < self.recover:
            return False
        self.enter_recovery(cc, una, snd_max, now, edge)
        return True


@contextmanager
def wire_digest(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A SHA-256 over every segment any fake network sends, with its time."""
    digest = hashlib.sha256()
    original = FakeNetwork._transmit

    def transmit(self: FakeNetwork, out: Iterable[Any], now: float) -> None:
        out = list(out)
        for data, _src, _dst in out:
            digest.update(struct.pack("!dI", now, len(data)))
            digest.update(data)
        original(self, out, now)

    with monkeypatch.context() as patch:
        patch.setattr(FakeNetwork, "_transmit", transmit)
        yield digest


def bbr_large_window(seed: int) -> object:
    # 10 MB/s, 40 ms: a BDP of ~280 segments in flight, 1% loss each way.
    return bottleneck_run(["bbr"], 10e6, 0.04, loss=0.01, warmup=0.3, measure=0.3, seed=seed)


def cubic_heavy_loss(seed: int) -> object:
    return bottleneck_run(["cubic"], 5e6, 0.02, loss=0.05, warmup=0.3, measure=0.5, seed=seed)


def bbr_beside_cubic(seed: int) -> object:
    return bottleneck_run(
        ["bbr", "cubic"], 10e6, 0.04, loss=0.05, warmup=0.3, measure=0.3, seed=seed
    )


RUNS: dict[str, Callable[[int], object]] = {
    "bbr": bbr_large_window,
    "cubic": cubic_heavy_loss,
    "bbr+cubic": bbr_beside_cubic,
}
# Recorded on HEAD f862597, before the indexes, with the plain Recovery.
PINNED = {
    ("bbr", 1): "aaa1ddffac7e748365a9b17b5f88113afd5496d8700ffc79098d0ec45dfac8c8",
    ("cubic", 3): "4dbab294247e280db2d2519ec8c0db07ee94ae8235d63e2eb6d8cd881d97e9c5",
    ("bbr+cubic", 5): "45f0a9f85eef19786ff838f1a8a98d9ba33b426bc4730c5bd3717c235db45a1e",
}


def digest_of(monkeypatch: pytest.MonkeyPatch, kind: str, seed: int, recovery: type) -> str:
    with monkeypatch.context() as patch:
        patch.setattr(connection_module, "Recovery", recovery)
        with wire_digest(monkeypatch) as digest:
            RUNS[kind](seed)
        return digest.hexdigest()


@pytest.mark.parametrize(("kind", "seed"), sorted(PINNED))
def test_same_segments_as_the_full_walk(
    monkeypatch: pytest.MonkeyPatch, kind: str, seed: int
) -> None:
    indexed = digest_of(monkeypatch, kind, seed, Recovery)
    assert indexed == digest_of(monkeypatch, kind, seed, WalkAll)
    assert indexed == PINNED[(kind, seed)]
