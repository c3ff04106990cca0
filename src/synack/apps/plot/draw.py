"""The graphs of a connection's `Series`, drawn with matplotlib (PNG or SVG).

Each series is one matplotlib artist whose ``gid`` names it, so an SVG file carries
``<g id="segments">``, ``id="ack"`` and so on: tools and tests find a series by name.
Figures are made without pyplot (no global state, no display needed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib  # an ImportError here is the CLI's "needs matplotlib" line

from synack.apps.plot.analysis import Series

# tcptrace's colours, near enough: what readers of time-sequence graphs know.
COLOURS = {
    "segments": "black",
    "retransmissions": "red",
    "ack": "green",
    "rwnd": "goldenrod",
    "sack": "purple",
    "goodput": "tab:blue",
    "sent": "tab:gray",
    "rtt": "tab:blue",
}
SIZE = (10, 6)  # inches
DPI = 120


def _figure() -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=SIZE, dpi=DPI, layout="constrained")
    return fig, fig.add_subplot()


def _bars(ax: Any, rows: list[tuple[float, int, int]], gid: str, label: str, width: float) -> None:
    """Vertical bars (time, low, high), one per row, as one artist."""
    artist = ax.vlines(
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        colors=COLOURS[gid],
        linewidth=width,
        label=f"{label} ({len(rows)})",
    )
    artist.set_gid(gid)


def _steps(ax: Any, rows: list[tuple[float, int]], gid: str, label: str) -> None:
    (line,) = ax.step(
        [r[0] for r in rows],
        [r[1] for r in rows],
        where="post",
        color=COLOURS[gid],
        linewidth=1.0,
        label=label,
    )
    line.set_gid(gid)


def time_sequence(series: Series) -> Any:
    """The Stevens/tcptrace time-sequence graph."""
    fig, ax = _figure()
    # The window's edge is often far above the data (a large buffer): showing it whole
    # would flatten everything else, so the view stops a little above the data.
    top = max([end for _t, _a, end in series.segments] + [a for _t, a in series.acks] + [1])
    top = int(top * 1.08) + 1
    rwnd_label = "receive window (ACK + window)"
    if series.rwnd and min(edge for _t, edge in series.rwnd[1:] or series.rwnd) > top:
        rwnd_label += ": above the view, never the limit"
    _steps(ax, series.rwnd, "rwnd", rwnd_label)
    _steps(ax, series.acks, "ack", "ACK")
    _bars(ax, series.sack, "sack", "SACK blocks", 2.5)
    _bars(ax, series.segments, "segments", "data segments", 1.2)
    _bars(ax, series.retransmissions, "retransmissions", "retransmissions", 1.6)
    scale = "unknown (no SYN)" if series.window_scale is None else str(series.window_scale)
    ax.set_title(f"time-sequence: {series.title} (window scale {scale})")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("relative sequence number (bytes)")
    ax.ticklabel_format(axis="y", style="plain", useOffset=False)
    ax.set_ylim(0, top)
    ax.legend(loc="upper left")
    ax.grid(True, alpha=0.3)
    return fig


def throughput(series: Series) -> Any:
    fig, ax = _figure()
    for gid, rows, label in (
        ("sent", series.sent_rate, "sent (retransmissions included)"),
        ("goodput", series.goodput, "acknowledged (goodput)"),
    ):
        (line,) = ax.plot(
            [r[0] for r in rows],
            [r[1] * 8 / 1e6 for r in rows],
            color=COLOURS[gid],
            drawstyle="steps-mid",
            label=label,
        )
        line.set_gid(gid)
    ax.set_title(f"throughput: {series.title} (per {series.interval * 1000:.0f} ms)")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("Mbit/s")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper right")
    ax.grid(True, alpha=0.3)
    return fig


def rtt(series: Series) -> Any:
    fig, ax = _figure()
    (line,) = ax.plot(
        [r[0] for r in series.rtt],
        [r[1] * 1000 for r in series.rtt],
        linestyle="none",
        marker=".",
        color=COLOURS["rtt"],
        label=f"RTT samples from {series.rtt_source} ({len(series.rtt)})",
    )
    line.set_gid("rtt")
    ax.set_title(f"RTT: {series.title}, as seen where captured")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("ms")
    ax.set_ylim(bottom=0)
    ax.legend(loc="best")
    ax.grid(True, alpha=0.3)
    return fig


GRAPHS = {"tsg": time_sequence, "throughput": throughput, "rtt": rtt}


def save_all(series: Series, out: Path, stem: str, fmt: str) -> list[Path]:
    """Draw every graph of `series` into `out` as STEM-NAME.FMT; returns the paths."""
    matplotlib.rcParams["svg.hashsalt"] = "synack"  # the same capture, the same SVG bytes
    paths = []
    for name, draw in GRAPHS.items():
        path = out / f"{stem}-{name}.{fmt}"
        fig = draw(series)
        metadata = {"Date": None} if fmt == "svg" else {}
        fig.savefig(path, format=fmt, metadata=metadata)
        paths.append(path)
    return paths
