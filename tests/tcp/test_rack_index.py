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
from typing import Any

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
    monkeypatch: pytest.MonkeyPatch, sack_compression: str, kind: str, seed: int
) -> None:
    indexed = digest_of(monkeypatch, kind, seed, Recovery)
    assert indexed == digest_of(monkeypatch, kind, seed, WalkAll)
    pinned = PINNED if sack_compression == "uncompressed" else PINNED_COMPRESSED
    assert indexed == pinned[(kind, seed)]


# Larger flights, one flow each, 40 ms: what bench/rack_cost.py measures. The digests
# cover both directions, so the receiver's ACKs (its SACK blocks) are pinned as well as
# the sender's segments. Recorded at 5e7da33, before the per-ACK cost work on the
# scoreboard and RACK's queue, which must leave every one unchanged; four (here and
# below) recorded again after the merge with RACK's avoidable-RTO fixes (SACKed
# retransmissions judged by min_RTT alone, whole microseconds, samples from D-SACKed
# copies), which change what those runs send: that code alone gives the same four. The
# CUBIC ones recorded again once more for its slow start counting up to eight segments
# per ACK (HyStart++'s L): with L patched back to two they give the digests before.
PATHS: dict[tuple[str, float, float, int, float], str] = {
    ("bbr", 20e6, 0.01, 2, 0.3): "19c3eb5a000e53de682ed7c850c8ebdb09d78cea3db54795759fd2840f320ee6",
    ("bbr", 20e6, 0.05, 3, 0.3): "850fe3bdc8c2a48f4384ad2bc642c95e3db35ebed5cf4bf2aa9ef88b71300b99",
    ("bbr", 50e6, 0.01, 6, 0.3): "e225f4b1faa229d46c7fcc34fc574328aaddc09444161f3580111e8bb028a0b4",
    (
        "cubic",
        20e6,
        0.01,
        4,
        1.0,
    ): "f08484080833841f22581e08cd3220d3b9103ac812608eb0ebd504ae9be959da",
    (
        "cubic",
        20e6,
        0.05,
        5,
        1.0,
    ): "344b66ab2eb3f57491c8cdeac1f5ec01b617ab7501efcebc5bb2734392e769c7",
    (
        "cubic",
        50e6,
        0.002,
        8,
        0.7,
    ): "c6b594700713373e6bb7072c8ebf33ab675e5a32ff2883f7bf7730c60b60ba6b",
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
    pinned = PATHS if sack_compression == "uncompressed" else PATHS_COMPRESSED
    assert digest.hexdigest() == pinned[path]


# Impaired paths: duplicates and reordering (D-SACK blocks, RACK's reordering window),
# and heavy loss (timeouts, lost retransmissions). Recorded at 5e7da33 as above (three
# again after the avoidable-RTO fixes).
DUPLICATE = (("duplicate", 0.02), ("reorder", 0.01), ("jitter", 0.002))
IMPAIRED: dict[tuple[str, float, float, tuple[tuple[str, float], ...], int], str] = {
    (
        "bbr",
        20e6,
        0.05,
        DUPLICATE,
        1,
    ): "c29d730d865a3ee8ed1fad197b5cd0c491eb9dc94c28ed287d34fe2f0c72ce1a",
    (
        "cubic",
        5e6,
        0.05,
        DUPLICATE,
        2,
    ): "6e08aecfea880abfc4849db6ec64c034e5f6cf4850aad692f793b8c8ffa61379",
    (
        "bbr",
        5e6,
        0.35,
        DUPLICATE,
        2,
    ): "0d4c9bd0f6f610bfedd78b9b52aacff26996b2b212c27c8aff172ade5fbfadff",
    (
        "cubic",
        1e6,
        0.35,
        (("reorder", 0.03),),
        1,
    ): "58f19fe32213ec72dc8d72abf10bf108f5b9eade019e4b7e308f7c54ee68fedf",
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
    pinned = IMPAIRED if sack_compression == "uncompressed" else IMPAIRED_COMPRESSED
    assert digest.hexdigest() == pinned[path]


# The same runs with the receiver's SACK compression on (the default): its ACKs change
# while it holds data out of order (fewer, each with the blocks of everything since the
# last), so every run here sends other segments; the runs above, without it, still give
# the digests recorded before it.
PINNED_COMPRESSED = {
    ("bbr", 1): "288607da478384ed2e17d688077ba558111edcd9df7b7b8467bc0dc0b0af67a9",
    ("cubic", 3): "113c1cd036ac14626130c055a5d3b508359a8e228ece573a3ecf109d5766916f",
    ("bbr+cubic", 5): "33a84744c919236fd43568d1df8c4a6115d4dcc9bf7e9fb6c0cba019a41e4067",
}
PATHS_COMPRESSED = {
    ("bbr", 20e6, 0.01, 2, 0.3): "27c01f720a113e43632b2efe2e8752fb92d97435104c1caab8caf5438b776a77",
    ("bbr", 20e6, 0.05, 3, 0.3): "d530d463363b438b4988cddfe4a82575c962e4cd95011aa64b3f63d0ece5ff6f",
    ("bbr", 50e6, 0.01, 6, 0.3): "ef2f4c5fb18f9daa4e6239a8a1980b94a50757687a2aedce4cd429f979dadb80",
    (
        "cubic",
        20e6,
        0.01,
        4,
        1.0,
    ): "d3e272d74db8105ac887b8ea4135eb2fce13dedad870a9024cffd2d15dad87cd",
    (
        "cubic",
        20e6,
        0.05,
        5,
        1.0,
    ): "5abc95ca9a534e01d1863b3edec274cdb0f7e5b5f91f85eea304a36b6b39003a",
    (
        "cubic",
        50e6,
        0.002,
        8,
        0.7,
    ): "e45bac0f29337dee45552d36154cc6591fade8e5a51c84b00a10542565586fb7",
}
IMPAIRED_COMPRESSED = {
    (
        "bbr",
        20e6,
        0.05,
        DUPLICATE,
        1,
    ): "f7061a0615952c33af3762b257b52b8ecf80b6eee570bc56684a5ae9a07c2b27",
    (
        "cubic",
        5e6,
        0.05,
        DUPLICATE,
        2,
    ): "4fd0ba2a307a056dab59e8d26615e33a2cab3ac273baca3b6cd9ae5ea6d733b0",
    (
        "bbr",
        5e6,
        0.35,
        DUPLICATE,
        2,
    ): "df552b1d5bc7a7abcc57ee11daa368d3494d6cd9c602e773cd7fcc84fdf341ae",
    (
        "cubic",
        1e6,
        0.35,
        (("reorder", 0.03),),
        1,
    ): "fc4db435519a37e37ba6b2108d129f102a363de8e8499885e38b5d04f1cb25b2",
}
