"""RACK's indexes change nothing but the cost.

`Recovery.rack_detect` walks only the records still in doubt (`tsorted`) and
`_rack_update_sacked` only the records a SACK concerns (`originals`, `rxt_sent`);
before, both walked every transmission record on every ACK. `WalkAll` below walks
every record, kept here as the reference: the same seeded lossy transfers, run once
with each, must put the very same segments on the wire at the very same times.
The digests in `PINNED` pin the whole core's behaviour on those runs, so a change
elsewhere that is meant to alter it must record them again. They were first recorded
on f862597, before the indexes, and recorded again when RFC 8985 §6.2 Steps 2-3 came
to judge only the newly SACKed bytes (before, a record wholly SACKed earlier was
judged again on every SACK, so reordering was "seen" with none on the path, and
RACK.rtt could come from a segment SACKed by an earlier ACK) and BBR stopped cutting
inflight_hi twice for one queue: `WalkAll` follows the new Steps 2-3.
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

    def _rack_update_sacked(self, una: int, now: float, pieces: list[tuple[int, int]]) -> None:
        # Step 3 on the newly SACKed bytes, in sequence order, as RFC 8985 §6.2 words it.
        for lo, hi in pieces:
            if hi > self.rack_fack:
                self.rack_fack = hi
            elif hi < self.rack_fack and lo >= self.high_rxt:
                self.reordering_seen = True
        # Step 2: the most recently sent valid record the new bytes fall in.
        best = None
        best_end = 0
        for seg in self.sent:
            if seg.end <= una or seg.lost:
                continue
            for lo, hi in pieces:
                if hi <= seg.start or lo >= seg.end:
                    continue
                end = min(hi, seg.end)
                newer = best is None or (seg.order, end) > (best.order, best_end)
                if newer and self._valid_sample(seg, now, -1):
                    best = seg
                    best_end = end
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
# Recorded with Recovery and WalkAll alike, once Steps 2-3 judged only new bytes (see above).
PINNED = {
    ("bbr", 1): "63c07bf52c028fb47c5c47aa30b7184536e088001979f2ecc8ffd9a6a69d4b3b",
    ("cubic", 3): "95ada2746b5a91f16f91b39409c42c98ea77cd8fa628271807345b0c88c93963",
    ("bbr+cubic", 5): "a4ebd2f0e60fa56e7c84c00d36f0367275f7d7183509e93cecd69b3c7fe51f75",
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
