"""RACK's indexes change nothing but the cost.

`Recovery.rack_detect` walks only the records still in doubt (`tsorted`; of the
originals found lost, `lost_originals`, only the newest that matters) and
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
from dataclasses import replace
from typing import Any, NamedTuple

import pytest

import synack.tcp.connection as connection_module
import synack.testing.bottleneck as bottleneck_module
from synack.tcp.config import Config
from synack.tcp.congestion import CongestionControl
from synack.tcp.recovery import Recovery
from synack.testing.bottleneck import bottleneck_run
from synack.testing.fakenet import FakeNetwork, Link


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


@pytest.fixture(params=["compressed", "uncompressed"])
def sack_compression(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each run with the receiver's SACK compression (Config.comp_sack_nr, the default)
    and without it: without, every digest is the one recorded before compression came,
    so the rest of the core is shown unchanged by it."""
    if request.param == "uncompressed":
        original = connection_module.Connection.__init__

        def init(self: Any, local: Any, remote: Any, config: Config | None = None) -> None:
            original(self, local, remote, replace(config or Config(), comp_sack_nr=0))

        monkeypatch.setattr(connection_module.Connection, "__init__", init)
    return str(request.param)


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


# Each run is pinned twice. With the receiver's SACK compression on (the default), its
# ACKs change while it holds data out of order (fewer, each with the blocks of everything
# since the last), so most runs send other segments; without it, the runs still give the
# digests recorded before it. Recorded again when no more ACKs were folded than segments
# arrive within the delay at the rate of the last two round trips
# (Connection._comp_limit): four CUBIC runs (("cubic", 3), 20e6 at 5%, both impaired
# ones) never reach two segments a delay, so they fold nothing and give the same digest
# both ways.
class Pinned(NamedTuple):
    """A run's digests without the receiver's SACK compression and with it (the
    `sack_compression` fixture's two values, which name the fields)."""

    uncompressed: str
    compressed: str


# Recorded with Recovery and WalkAll alike, once Steps 2-3 judged only new bytes (see above);
# ("cubic", 3) again when the PTO took Config.probe_timeout_min (its probes come later).
PINNED = {
    ("bbr", 1): Pinned(
        "63c07bf52c028fb47c5c47aa30b7184536e088001979f2ecc8ffd9a6a69d4b3b",
        "5779a8f5ad25703930a1bdfcb0710ff3eb4ce073d6b7d03290f937bfdde64e80",
    ),
    ("cubic", 3): Pinned(
        "cb686e8e44dd52698d81f401e2991627f913b273fd6aa1ed803dcf0c9cd8a22c",
        "cb686e8e44dd52698d81f401e2991627f913b273fd6aa1ed803dcf0c9cd8a22c",
    ),
    ("bbr+cubic", 5): Pinned(
        "a4ebd2f0e60fa56e7c84c00d36f0367275f7d7183509e93cecd69b3c7fe51f75",
        "45a76b09fb7f16445e272097b4247202cc7f9ff9b8f2c3b71f2a3ba8825eec32",
    ),
}


def digest_of(monkeypatch: pytest.MonkeyPatch, kind: str, seed: int, recovery: type) -> str:
    with monkeypatch.context() as patch:
        patch.setattr(connection_module, "Recovery", recovery)
        with wire_digest(monkeypatch) as digest:
            RUNS[kind](seed)
        return digest.hexdigest()


@pytest.mark.parametrize(("kind", "seed"), sorted(PINNED))
def test_same_segments_as_the_full_walk(
    monkeypatch: pytest.MonkeyPatch, sack_compression: str, kind: str, seed: int
) -> None:
    indexed = digest_of(monkeypatch, kind, seed, Recovery)
    assert indexed == digest_of(monkeypatch, kind, seed, WalkAll)
    assert indexed == getattr(PINNED[(kind, seed)], sack_compression)


# Larger flights, one flow each, 40 ms: what bench/rack_cost.py measures. The digests
# cover both directions, so the receiver's ACKs (its SACK blocks) are pinned as well as
# the sender's segments. Recorded at 5e7da33, before the per-ACK cost work on the
# scoreboard and RACK's queue, which must leave every one unchanged; four (here and
# below) recorded again after the merge with RACK's avoidable-RTO fixes (SACKed
# retransmissions judged by min_RTT alone, whole microseconds, samples from D-SACKed
# copies), which change what those runs send: that code alone gives the same four. The
# CUBIC ones recorded again once more for its slow start counting up to eight segments
# per ACK (HyStart++'s L): with L patched back to two they give the digests before.
# The CUBIC run at 35% loss with reordering recorded again when FlightSize became the
# flight before a batch of ACKs (Recovery.fs_flight): it reads such batches.
PATHS: dict[tuple[str, float, float, int, float], Pinned] = {
    ("bbr", 20e6, 0.01, 2, 0.3): Pinned(
        "19c3eb5a000e53de682ed7c850c8ebdb09d78cea3db54795759fd2840f320ee6",
        "efb56c6fbe8327f0a585066fc39f8a01726d8105797d24d93e081a37212a264d",
    ),
    ("bbr", 20e6, 0.05, 3, 0.3): Pinned(
        "850fe3bdc8c2a48f4384ad2bc642c95e3db35ebed5cf4bf2aa9ef88b71300b99",
        "688c4324d22de70a8e5d8eb0b7b1117a73149f205bb7cac8f64e0ae1572ecbcc",
    ),
    ("bbr", 50e6, 0.01, 6, 0.3): Pinned(
        "e225f4b1faa229d46c7fcc34fc574328aaddc09444161f3580111e8bb028a0b4",
        "3cf425d6e27e256477ca350b72f98685133a543c72d4f81bc67f9fb08c25b790",
    ),
    ("cubic", 20e6, 0.01, 4, 1.0): Pinned(
        "f08484080833841f22581e08cd3220d3b9103ac812608eb0ebd504ae9be959da",
        "2b2125ca1064281cca971bdfbf452f41e20cb98cb2a51a4962514ff2daa10755",
    ),
    ("cubic", 20e6, 0.05, 5, 1.0): Pinned(
        "344b66ab2eb3f57491c8cdeac1f5ec01b617ab7501efcebc5bb2734392e769c7",
        "344b66ab2eb3f57491c8cdeac1f5ec01b617ab7501efcebc5bb2734392e769c7",
    ),
    ("cubic", 50e6, 0.002, 8, 0.7): Pinned(
        "c6b594700713373e6bb7072c8ebf33ab675e5a32ff2883f7bf7730c60b60ba6b",
        "58907e5e3f1e0662a4be39748da8b914423119e1746fc3b19572d5094e5d84bd",
    ),
}


@pytest.mark.parametrize("path", sorted(PATHS))
def test_same_segments_on_large_flights(
    monkeypatch: pytest.MonkeyPatch,
    sack_compression: str,
    path: tuple[str, float, float, int, float],
) -> None:
    cc, rate, loss, seed, measure = path
    with wire_digest(monkeypatch) as digest:
        bottleneck_run([cc], rate, 0.04, loss=loss, warmup=0.3, measure=measure, seed=seed)
    assert digest.hexdigest() == getattr(PATHS[path], sack_compression)


# Impaired paths: duplicates and reordering (D-SACK blocks, RACK's reordering window),
# and heavy loss (timeouts, lost retransmissions). Recorded at 5e7da33 as above (three
# again after the avoidable-RTO fixes).
DUPLICATE = (("duplicate", 0.02), ("reorder", 0.01), ("jitter", 0.002))
IMPAIRED: dict[tuple[str, float, float, tuple[tuple[str, float], ...], int], Pinned] = {
    ("bbr", 20e6, 0.05, DUPLICATE, 1): Pinned(
        "c29d730d865a3ee8ed1fad197b5cd0c491eb9dc94c28ed287d34fe2f0c72ce1a",
        "d7ecb8f62c995ee5b93b9aa0951af7e6648116dd0bb4e54aace96e8014c635f6",
    ),
    ("cubic", 5e6, 0.05, DUPLICATE, 2): Pinned(
        "6e08aecfea880abfc4849db6ec64c034e5f6cf4850aad692f793b8c8ffa61379",
        "6e08aecfea880abfc4849db6ec64c034e5f6cf4850aad692f793b8c8ffa61379",
    ),
    ("bbr", 5e6, 0.35, DUPLICATE, 2): Pinned(
        "0d4c9bd0f6f610bfedd78b9b52aacff26996b2b212c27c8aff172ade5fbfadff",
        "1d14e3d24b143f195663fb7d4ad05a83fbe7661187ce15fff53cd2a5a8c7eb45",
    ),
    ("cubic", 1e6, 0.35, (("reorder", 0.03),), 1): Pinned(
        "ce7fe6078286a77b6f7355985e72ce54496c5653060bb573eba7c4934e833dd3",
        "ce7fe6078286a77b6f7355985e72ce54496c5653060bb573eba7c4934e833dd3",
    ),
}


@pytest.mark.parametrize("path", sorted(IMPAIRED))
def test_same_segments_on_impaired_paths(
    monkeypatch: pytest.MonkeyPatch,
    sack_compression: str,
    path: tuple[str, float, float, tuple[tuple[str, float], ...], int],
) -> None:
    cc, rate, loss, knobs, seed = path

    def link(**kw: Any) -> Link:
        if kw.get("loss"):  # the links of the measured part, after the handshakes
            kw.update(knobs)
        return Link(**kw)

    monkeypatch.setattr(bottleneck_module, "Link", link)
    with wire_digest(monkeypatch) as digest:
        bottleneck_run([cc], rate, 0.04, loss=loss, warmup=0.3, measure=0.4, seed=seed)
    assert digest.hexdigest() == getattr(IMPAIRED[path], sack_compression)
