"""`synack netem` (a UDP relay) and `synack netem tun` (two namespaces): the command line."""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import sys
from collections.abc import Callable
from typing import Any

from synack.apps.common import check_host, parse_endpoint, run
from synack.apps.netem.impair import Impairment
from synack.apps.netem.summary import Summary
from synack.apps.netem.units import (
    parse_count,
    parse_percent,
    parse_rate,
    parse_time,
    split_directions,
)
from synack.errors import UsageError

# (option, Impairment field, parser, metavar, help)
_Parser = Callable[[str, str], Any]
KNOBS: list[tuple[str, str, _Parser, str, str]] = [
    ("loss", "loss", parse_percent, "P", "drop each datagram with probability P (e.g. 5%%)"),
    ("delay", "delay", parse_time, "T", "hold each datagram T before passing it on (e.g. 20ms)"),
    ("jitter", "jitter", parse_time, "T", "add a uniform -T..+T to the delay; never reorders"),
    ("reorder", "reorder", parse_percent, "P", "hold a datagram back so later ones pass it"),
    (
        "reorder-delay",
        "reorder_delay",
        parse_time,
        "T",
        "how long a reordered datagram is held back (default 10ms)",
    ),
    ("duplicate", "duplicate", parse_percent, "P", "send a datagram twice"),
    ("corrupt", "corrupt", parse_percent, "P", "flip one random bit of the payload"),
    ("rate", "rate", parse_rate, "R", "bottleneck rate: 10mbit, 500kbit, 2MB/s (10M = 10mbit)"),
    (
        "queue",
        "queue_limit",
        lambda o, t: parse_count(o, t),
        "N",
        "packets the bottleneck holds (default 1000)",
    ),
]

EPILOG = """\
Every impairment takes one value for both directions or UP/DOWN for each:
--loss 5% drops 5% each way, --loss 5%/1% drops 5% up and 1% down. Up is from
the clients to --target (in TUN mode: from namespace a to b), down is the way back.
Times need a unit (us, ms, s); rates are bits per second unless written in
bytes (B/s); probabilities are percentages. Each datagram meets, in order: loss,
duplicate, corrupt, the rate bottleneck (a full queue drops at the tail), delay
and jitter, reorder. Decisions come from --seed, one generator per direction, so
the same datagrams in the same order meet the same fate in every run.

On stop (Ctrl-C, SIGTERM, --duration) a summary per direction goes to stderr;
--json also writes it as one JSON object to stdout. SIGUSR1 (kill -USR1 PID)
prints the counts so far and carries on.
"""

UDP_EXAMPLE = """
example:
  synack netem --listen 127.0.0.1:9000 --target 127.0.0.1:7007 \\
      --loss 5% --delay 20ms --jitter 5ms --rate 10mbit --seed 1
  synack chat join 127.0.0.1:9000 --udp --nick ana     # the chat, over the impaired path
"""

TUN_EXAMPLE = """
example:
  sudo synack netem tun --loss 5% --delay 20ms --seed 1 \\
      --run-b 'python3 -m http.server -b $SYNACK_NETEM_B 8000' \\
      --run-a 'sleep 1; curl -so /dev/null -w "%{time_total}s\\n" http://$SYNACK_NETEM_B:8000/'
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    netem = sub.add_parser(
        "netem",
        help="impair UDP (relay) or any IP traffic (tun): loss, delay, reordering...",
        description="A two-way UDP relay from --listen to --target that loses, delays, "
        "jitters, reorders, duplicates, corrupts and rate-limits datagrams, like Linux's "
        "netem, for any UDP protocol. `synack netem tun --help`: the same for any IP "
        "traffic between two network namespaces.",
        epilog=EPILOG + UDP_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    netem.add_argument(
        "--listen",
        metavar="HOST:PORT",
        default=argparse.SUPPRESS,
        help="where clients send (port 0: any free port, printed at start)",
    )
    netem.add_argument(
        "--target",
        metavar="HOST:PORT",
        default=argparse.SUPPRESS,
        help="where their datagrams go on to",
    )
    netem.add_argument(
        "--idle-timeout",
        metavar="T",
        default=argparse.SUPPRESS,
        help="forget a client after T of silence both ways (60s)",
    )
    netem.add_argument(
        "--max-clients",
        metavar="N",
        default=argparse.SUPPRESS,
        help="clients relayed at once (1024)",
    )
    netem.add_argument(
        "--no-offload",
        action="store_true",
        default=argparse.SUPPRESS,
        help="one datagram per system call: no UDP GSO sends or GRO reads (used where the "
        "kernel offers them; the decisions are the same either way)",
    )
    _add_common(netem)
    modes = netem.add_subparsers(dest="mode", metavar="[tun]")
    tun = modes.add_parser(
        "tun",
        help="impair any IP traffic between two network namespaces (root)",
        description="Make two network namespaces, a (198.18.0.1) and b (198.18.1.1), joined "
        "through this process by TUN devices, and impair every IP packet between them, the "
        "kernel's TCP included. Everything made is removed when it stops. Commands run "
        "inside with `ip netns exec NAME ...` (printed at start), or with --run-a/--run-b; "
        "they find the addresses in $SYNACK_NETEM_A and $SYNACK_NETEM_B.",
        epilog=EPILOG + TUN_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tun.add_argument(
        "--run-a", metavar="CMD", default=argparse.SUPPRESS, help="run CMD (sh -c) in namespace a"
    )
    tun.add_argument(
        "--run-b",
        metavar="CMD",
        default=argparse.SUPPRESS,
        help="run CMD (sh -c) in namespace b (a server, say); it starts first. netem "
        "stops when the --run-a command ends (or --run-b's, if alone), stops the other, "
        "and exits with that command's status",
    )
    tun.add_argument(
        "--clean",
        action="store_true",
        default=argparse.SUPPRESS,
        help="only remove namespaces left by runs that were killed, then exit",
    )
    _add_common(tun)
    netem.set_defaults(func=cmd_netem)


def _add_common(parser: argparse.ArgumentParser) -> None:
    """The impairment options, on `netem` and on `netem tun` (given before or after
    the word tun). SUPPRESS defaults keep a value given before `tun` from being
    overwritten by the sub-command's default."""
    group = parser.add_argument_group("impairments (VALUE, or UP/DOWN)")
    for option, _field, _parse, metavar, text in KNOBS:
        group.add_argument(f"--{option}", metavar=metavar, default=argparse.SUPPRESS, help=text)
    run_group = parser.add_argument_group("run")
    run_group.add_argument(
        "--seed",
        metavar="N",
        default=argparse.SUPPRESS,
        help="seed of every random decision (default: random, printed)",
    )
    run_group.add_argument(
        "--duration",
        metavar="T",
        default=argparse.SUPPRESS,
        help="stop by itself after T (e.g. 30s; a bare number is seconds)",
    )
    run_group.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="also write the summary to stdout as JSON",
    )
    run_group.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="one line per datagram on stderr: what happened to it",
    )


def impairments(args: argparse.Namespace) -> tuple[Impairment, Impairment]:
    """The (up, down) settings from the options; bad values are one-line usage errors."""
    up: dict[str, Any] = {}
    down: dict[str, Any] = {}
    for option, name, parse, _metavar, _help in KNOBS:
        text = getattr(args, option.replace("-", "_"), None)
        if text is None:
            continue
        flag = f"--{option}"
        first, second = split_directions(flag, text)
        up[name] = parse(flag, first)
        down[name] = parse(flag, second)
    return Impairment(**up), Impairment(**down)


def parse_listen(text: str) -> tuple[str, int]:
    """Like `parse_endpoint`, but port 0 (any free port) is allowed."""
    host, sep, port = text.rpartition(":")
    if sep and port == "0":
        host, _ = parse_endpoint(f"{host}:1")
        return check_host(host), 0
    host, port_number = parse_endpoint(text)
    return check_host(host), port_number


class Options:
    """What both modes share, checked."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.up, self.down = impairments(args)
        seed_text = getattr(args, "seed", None)
        self.seed = (
            random.SystemRandom().randrange(1 << 31)
            if seed_text is None
            else parse_count("--seed", seed_text, minimum=0)
        )
        duration = getattr(args, "duration", None)
        self.duration = (
            None if duration is None else parse_time("--duration", duration, bare_seconds=True)
        )
        self.json = bool(getattr(args, "json", False))
        self.verbose = bool(getattr(args, "verbose", False))


def _err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def cmd_netem(args: argparse.Namespace) -> int:
    if getattr(args, "mode", None) == "tun":
        return cmd_tun(args)
    listen = getattr(args, "listen", None)
    target = getattr(args, "target", None)
    if listen is None or target is None:
        raise UsageError(
            "netem needs --listen HOST:PORT and --target HOST:PORT (or: synack netem tun)"
        )
    listen_at = parse_listen(listen)
    target_at = parse_endpoint(target)
    check_host(target_at[0])
    options = Options(args)
    idle = getattr(args, "idle_timeout", None)
    idle_timeout = 60.0 if idle is None else parse_time("--idle-timeout", idle, bare_seconds=True)
    if idle_timeout <= 0:
        raise UsageError(f"invalid --idle-timeout {idle!r}: must be more than 0")
    clients = getattr(args, "max_clients", None)
    max_clients = 1024 if clients is None else parse_count("--max-clients", clients)
    offload = not getattr(args, "no_offload", False)
    return run(_relay(options, listen_at, target_at, idle_timeout, max_clients, offload))


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)


def _report_on_sigusr1(summary: Callable[[], Summary]) -> None:
    """SIGUSR1 prints the counts so far and carries on, as it does for tcpdump and dd."""
    asyncio.get_running_loop().add_signal_handler(
        signal.SIGUSR1, lambda: _err(summary().text().replace("stopped after", "running for", 1))
    )


async def _relay(
    options: Options,
    listen: tuple[str, int],
    target: tuple[str, int],
    idle_timeout: float,
    max_clients: int,
    offload: bool = True,
) -> int:
    from synack.apps.netem.relay import UdpRelay, format_address

    relay = UdpRelay(
        listen,
        target,
        options.up,
        options.down,
        seed=options.seed,
        idle_timeout=idle_timeout,
        max_clients=max_clients,
        log=_err,
        verbose=options.verbose,
        gso=None if offload else False,
        gro=None if offload else False,
    )
    await relay.start()
    stop = asyncio.Event()
    _stop_on_signals(stop)
    _report_on_sigusr1(relay.summary)  # before the banner: a reader may signal at once
    here = format_address(relay.address)
    _err(
        f"synack netem: listening on {here}, relaying to {format_address(target)} "
        f"(seed {options.seed}); Ctrl-C stops"
    )
    _err(f"  up   (clients -> target): {options.up.describe()}")
    _err(f"  down (target -> clients): {options.down.describe()}")
    await _wait(stop, options.duration)
    summary = await relay.stop()
    _err(summary.text())
    if options.json:
        print(summary.json(), flush=True)
    return 0


async def _wait(
    stop: asyncio.Event, duration: float | None, main: asyncio.subprocess.Process | None = None
) -> bool:
    """Wait for a stop signal, the end of `duration`, or the end of `main`; True for
    the last."""
    waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait())]
    if main is not None:
        waits.append(asyncio.ensure_future(main.wait()))
    try:
        await asyncio.wait(waits, timeout=duration, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()
    return main is not None and main.returncode is not None


# ---------------------------------------------------------------------- tun


def cmd_tun(args: argparse.Namespace) -> int:
    from synack.apps.netem import tun

    options = Options(args)  # bad values are reported before privileges are checked
    tun.check_can_run()
    if getattr(args, "clean", False):
        removed = tun.remove_stale(_err)
        if not removed:
            _err("synack netem: no namespaces left by dead runs")
        return 0
    return run(_tun(options, getattr(args, "run_a", None), getattr(args, "run_b", None)))


async def _tun(options: Options, run_a: str | None, run_b: str | None) -> int:
    from synack.apps.netem import tun

    stop = asyncio.Event()
    _stop_on_signals(stop)
    tun.remove_stale(_err)
    topology = tun.Topology()
    relay: tun.TunRelay | None = None
    procs: list[tuple[str, asyncio.subprocess.Process]] = []
    status = 0
    summary = None
    try:
        topology.setup()
        assert topology.dev_a is not None and topology.dev_b is not None
        relay = tun.TunRelay(
            topology.dev_a,
            topology.dev_b,
            options.up,
            options.down,
            seed=options.seed,
            log=_err,
            verbose=options.verbose,
        )
        relay.start()
        _report_on_sigusr1(relay.summary)
        _err(
            f"synack netem tun: a = {topology.ns_a} ({tun.A_ADDRESS}), "
            f"b = {topology.ns_b} ({tun.B_ADDRESS}) (seed {options.seed}); Ctrl-C stops"
        )
        _err(f"  up   (a -> b): {options.up.describe()}")
        _err(f"  down (b -> a): {options.down.describe()}")
        _err(f"  ip netns exec {topology.ns_a} COMMAND    # reaches b at {tun.B_ADDRESS}")
        _err(f"  ip netns exec {topology.ns_b} COMMAND    # reaches a at {tun.A_ADDRESS}")
        _err(f"  ip netns exec {topology.ns_a} tcpdump -ni {topology.name_a}    # watch a's side")
        env = tun.command_env(topology)
        if run_b is not None:
            procs.append(("b", await tun.start_command(topology.ns_b, run_b, env)))
        if run_a is not None:
            procs.append(("a", await tun.start_command(topology.ns_a, run_a, env)))
        main = procs[-1][1] if procs else None  # a's command if given, else b's
        ended = await _wait(stop, options.duration, main)
        notes: dict[str, Any] = {}
        for label, proc in procs:
            finished = proc.returncode is not None
            await tun.stop_command(proc)
            notes[f"run_{label}"] = tun.run_note(proc, stopped=not finished)
        if ended and main is not None:
            status = tun.exit_status(main.returncode)
        summary = relay.stop()
        summary.notes.update(notes)
    finally:
        for _, proc in procs:
            if proc.returncode is None:
                await tun.stop_command(proc)
        if relay is not None and summary is None:
            relay.stop()
        for problem in topology.teardown():
            _err(f"synack netem: could not remove: {problem}")
    assert summary is not None
    _err(summary.text())
    if options.json:
        print(summary.json(), flush=True)
    return status
