"""``--trace``, ``--trace-json FILE`` and ``--pcap FILE``, shared by every chat and files command.

They show synack's own TCP, so they need ``--transport synack``; on the operating
system's TCP (or the chat's UDP) there is nothing of ours to see, and the command
says so in one line and exits 2: tcpdump is the tool there. `prepare` runs after
the command line is parsed and before the command does anything (`synack.cli`).
"""

from __future__ import annotations

import argparse

from synack.errors import UsageError, UserError, describe_os_error

TRACED_TRANSPORT = "synack"


def add_trace_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("seeing synack's TCP (--transport synack)")
    group.add_argument(
        "--trace",
        action="store_true",
        help="print a tcpdump-style line per segment and per state change to stderr",
    )
    group.add_argument(
        "--trace-json",
        metavar="FILE",
        help="write the same as JSON lines, with cwnd, SRTT, RTO and bytes in flight "
        "(- for stderr; {pid} in FILE becomes the process ID)",
    )
    group.add_argument(
        "--pcap",
        metavar="FILE",
        help="write every segment to FILE as TCP/IPv4 for Wireshark or tshark "
        "({pid} in FILE becomes the process ID)",
    )
    parser.set_defaults(prepare=prepare)


def prepare(args: argparse.Namespace) -> None:
    """Refuse trace flags where our TCP is not used; else turn tracing on."""
    asked = [
        flag
        for flag, value in (
            ("--trace", getattr(args, "trace", False)),
            ("--trace-json", getattr(args, "trace_json", None)),
            ("--pcap", getattr(args, "pcap", None)),
        )
        if value
    ]
    transport = getattr(args, "transport", None)
    if getattr(args, "udp", False):
        if asked:
            raise UsageError("nothing of synack's TCP to trace with --udp (use tcpdump)")
        return
    if transport != TRACED_TRANSPORT:
        if asked:
            raise UsageError(
                f"nothing of synack's TCP to trace on --transport {transport} (use tcpdump)"
            )
        return
    from synack.transport import tracing

    try:
        # Also reads SYNACK_TRACE, SYNACK_TRACE_JSON and SYNACK_PCAP now, so that a file
        # that cannot be written is one line before anything starts.
        tracing.enable(
            text=True if args.trace else None,
            json_path=args.trace_json,
            pcap=args.pcap,
        )
    except OSError as exc:
        raise UserError(describe_os_error(exc)) from None
