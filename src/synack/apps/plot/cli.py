"""``synack plot FILE.pcap``: the graphs people use to read a TCP connection."""

from __future__ import annotations

import argparse
from pathlib import Path

from synack.errors import UsageError, UserError

HELP = "draw a TCP connection from a pcap file: time-sequence, throughput, RTT"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    plot = sub.add_parser(
        "plot",
        help=HELP,
        description="Draw the time-sequence graph (segments, ACKs, receive window, SACK "
        "blocks, retransmissions), throughput and RTT samples of a TCP connection in a pcap "
        "file: synack's own (--pcap, SYNACK_PCAP) or tcpdump's. Writes "
        "STEM-tsg, STEM-throughput and STEM-rtt files.",
    )
    plot.add_argument("file", metavar="FILE.pcap", help="the capture (pcap, not pcapng)")
    plot.add_argument(
        "--out", metavar="DIR", default=".", help="directory for the graphs (default: here)"
    )
    plot.add_argument(
        "--format", choices=("png", "svg"), default="png", help="image format (default: png)"
    )
    plot.add_argument(
        "--flow",
        type=int,
        default=1,
        metavar="N",
        help="which connection: N-th by bytes carried, as --list numbers them (default: 1)",
    )
    plot.add_argument("--list", action="store_true", help="list the connections and stop")
    plot.set_defaults(func=cmd_plot)


def cmd_plot(args: argparse.Namespace) -> int:
    from synack.apps.plot.analysis import analyze, flows, parse_capture
    from synack.wire.pcap import PcapError

    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {(exc.strerror or str(exc)).lower()}") from None
    try:
        found = flows(parse_capture(data))
    except PcapError as exc:
        raise UserError(f"{path}: {exc}") from None
    if not found:
        raise UserError(f"{path}: no TCP over IPv4 in this capture")
    if args.list:
        for i, flow in enumerate(found, 1):
            print(f"{i:3}  {flow.describe()}")
        return 0
    if not 1 <= args.flow <= len(found):
        raise UsageError(f"--flow {args.flow}: the capture has {len(found)} connection(s)")
    try:
        from synack.apps.plot import draw
    except ImportError:
        raise UserError("synack plot needs matplotlib: pip install 'synack[plot]'") from None
    series = analyze(found[args.flow - 1])
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        paths = draw.save_all(series, out, path.stem, args.format)
    except OSError as exc:
        raise UserError(f"cannot write to {out}: {(exc.strerror or str(exc)).lower()}") from None
    print(
        f"{series.title}: {len(series.segments)} segments, "
        f"{len(series.retransmissions)} retransmissions, {len(series.rtt)} RTT samples"
    )
    for p in paths:
        print(p)
    return 0
