"""Self time of a cProfile run, grouped by the layer that does the work.

Used by bench/transport_speed.py --profile; also runnable on any .prof file:

    python3 bench/profile_groups.py /tmp/prof/mtu1500-receiver.prof --segments 34500

Each function's own time (tottime, not including what it calls) goes to one group,
decided by its file, or for a built-in by its name; the table gives each group's
share and, given the number of segments, its µs per segment.
"""

from __future__ import annotations

import argparse
import pstats

# Time blocked in epoll is the process waiting for the other end, not work: left out
# of the shares.
WAIT = "waiting in epoll (idle)"

# (group, a substring of the function's file, the function or None for any), first
# match wins; built-ins (below) by a substring of their name.
_FILES = (
    ("core: receive fast path", "synack/tcp/connection.py", "_predicted"),
    ("core: receive fast path", "synack/tcp/connection.py", "_predicted_run"),
    ("core: ack processing", "synack/tcp/connection.py", "_ack_advance"),
    ("core: building segments", "synack/wire/tcp.py", None),
    ("core: connection, other", "synack/tcp/connection.py", None),
    ("core: host (routing, ready set, timers)", "synack/tcp/host.py", None),
    ("core: recovery, congestion, rtt, ranges", "synack/tcp/", None),
    ("driver: engine (CRC, demux loop, send runs)", "synack/drivers/engine.py", None),
    ("driver: UDP carrier (batching)", "synack/drivers/udp.py", None),
    ("driver: asyncio transport", "synack/drivers/aio.py", None),
    ("asyncio streams and event loop", "asyncio/", None),
    ("the bench itself", "bench/", None),
)
_BUILTINS = (
    ("syscalls: send (sendmsg/sendto)", ("sendmsg", "sendto", "'send'")),
    ("syscalls: receive (recvmsg_into/recvfrom_into)", ("recvmsg", "recvfrom", "'recv")),
    (WAIT, ("poll", "select")),
    ("CRC-32 (zlib.crc32)", ("crc32",)),
    ("int.from_bytes (the TCP checksum, the CRC trailer)", ("from_bytes",)),
    ("copies (bytes.join, bytearray +=, memoryview, bytes())", ("join", "bytearray", "memoryview")),
)


def group_of(filename: str, name: str) -> str:
    if filename == "~":
        for group, needles in _BUILTINS:
            if any(n in name for n in needles):
                return group
        return "other built-ins"
    for group, file, function in _FILES:
        if file in filename and function in (None, name):
            return group
    return "other Python"


def grouped(path: str) -> tuple[dict[str, float], float]:
    """{group: seconds of self time} and the total."""
    stats = pstats.Stats(path)
    groups: dict[str, float] = {}
    total = 0.0
    for (filename, _line, name), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        g = group_of(filename, name)
        groups[g] = groups.get(g, 0.0) + tottime
        total += tottime
    return groups, total


def table(path: str, segments: int | None, title: str) -> list[str]:
    groups, total = grouped(path)
    waited = groups.pop(WAIT, 0.0)
    busy = total - waited
    lines = [f"{title}: {busy:.3f} s of self time under cProfile, {waited:.3f} s {WAIT}"]
    lines.append("| group | share | µs per segment (profiled) |")
    lines.append("|---|---|---|")
    for g, t in sorted(groups.items(), key=lambda kv: -kv[1]):
        if t / busy < 0.005:
            continue
        per = f"{t / segments * 1e6:.2f}" if segments else ""
        lines.append(f"| {g} | {t / busy:5.1%} | {per} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prof")
    parser.add_argument("--segments", type=int, default=None)
    parser.add_argument("--top", type=int, default=0, help="also list the top N functions")
    args = parser.parse_args()
    print("\n".join(table(args.prof, args.segments, args.prof)))
    if args.top:
        pstats.Stats(args.prof).sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
