"""`synack files`: serve a directory; ls, get and put against a server.

Shapes follow scp and curl: ``get HOST:PORT REMOTE [LOCAL]``,
``put HOST:PORT LOCAL [REMOTE]``; ``--resume`` continues an interrupted
transfer, ``--force`` allows replacing existing files.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import re
import shlex
import signal
import sys
import time
from collections.abc import Callable

from synack.apps.common import (
    add_listen_arguments,
    add_tls_client_arguments,
    add_tls_server_arguments,
    add_transport_argument,
    check_host,
    check_listen_host,
    check_unix,
    client_tls,
    parse_endpoint,
    run,
    server_tls,
    tls_arguments,
    tls_banner,
)
from synack.errors import UserError, os_reason
from synack.transport import DEFAULT_TRANSPORT, ClientTLS, format_address

from .client import DEFAULT_TIMEOUT, FileClient, Transferred
from .progress import for_stream
from .protocol import DEFAULT_IDLE_TIMEOUT, DEFAULT_PORT, Entry, Kind, printable

_RATE = re.compile(r"^(\d+)\s*([kmg]i?)?b?$", re.IGNORECASE)
_RATE_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "ki": 2**10, "mi": 2**20, "gi": 2**30}


def parse_rate(text: str) -> int:
    """``500000``, ``500k``, ``2M``, ``1MiB``: bytes per second, positive."""
    match = _RATE.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(
            f"invalid rate {text!r}: expected bytes per second, e.g. 500k or 2M"
        )
    value = int(match.group(1)) * _RATE_UNITS[(match.group(2) or "").lower()]
    if value <= 0:
        raise argparse.ArgumentTypeError(f"invalid rate {text!r}: must be positive")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    files = sub.add_parser(
        "files",
        help="serve a directory; list, download and upload files (SHA-256 verified)",
        description="File transfer over TCP: every file is verified with SHA-256 end to end.",
    )
    cmds = files.add_subparsers(dest="files_command", metavar="COMMAND", required=True)

    serve = cmds.add_parser(
        "serve",
        help="serve DIR to many clients at once",
        description="Serve DIR, read-only unless --allow-upload, to many clients at once.",
    )
    serve.add_argument("dir", metavar="DIR", help="directory to serve")
    add_listen_arguments(serve, DEFAULT_PORT)
    serve.add_argument(
        "--allow-upload", action="store_true", help="accept put and mkdir (off by default)"
    )
    serve.add_argument(
        "--max-rate", type=parse_rate, metavar="BYTES_PER_S", help="cap each transfer, e.g. 10M"
    )
    serve.add_argument(
        "--fsync", action="store_true", help="flush each upload to disk before naming it"
    )
    serve.add_argument(
        "--idle-timeout",
        type=_seconds,
        default=DEFAULT_IDLE_TIMEOUT,
        metavar="SECONDS",
        help="drop a client silent this long (default: %(default)g)",
    )
    add_tls_server_arguments(serve)
    add_transport_argument(serve)
    serve.set_defaults(func=_cmd_serve)

    ls = cmds.add_parser(
        "ls",
        help="list a remote directory",
        description="List a directory (or a file) on the server, like ls -l.",
    )
    ls.add_argument("address", metavar="HOST:PORT", help=_ADDRESS_HELP)
    ls.add_argument(
        "remote",
        metavar="REMOTE",
        nargs="?",
        default="",
        help="path on the server (default: its root)",
    )
    ls.add_argument("-R", "--recursive", action="store_true", help="list everything below REMOTE")
    _client_flags(ls)
    ls.set_defaults(func=_cmd_ls)

    get = cmds.add_parser(
        "get",
        help="download a file or a directory tree",
        description="Download REMOTE to LOCAL, as scp does; every file is verified with SHA-256.",
    )
    get.add_argument("address", metavar="HOST:PORT", help=_ADDRESS_HELP)
    get.add_argument("remote", metavar="REMOTE", help="file or directory on the server")
    get.add_argument(
        "local", metavar="LOCAL", nargs="?", help="destination (default: its name, here)"
    )
    _transfer_flags(get)
    get.add_argument(
        "--fsync", action="store_true", help="flush each file to disk before naming it"
    )
    get.set_defaults(func=_cmd_get)

    put = cmds.add_parser(
        "put",
        help="upload a file or a directory tree",
        description="Upload LOCAL to REMOTE, as scp does; every file is verified with SHA-256.",
    )
    put.add_argument("address", metavar="HOST:PORT", help=_ADDRESS_HELP)
    put.add_argument("local", metavar="LOCAL", help="file or directory to upload")
    put.add_argument(
        "remote",
        metavar="REMOTE",
        nargs="?",
        help="destination on the server (default: its name, at the root)",
    )
    _transfer_flags(put)
    put.set_defaults(func=_cmd_put)


def _transfer_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--resume", action="store_true", help="continue an interrupted transfer")
    parser.add_argument("--force", action="store_true", help="replace existing files")
    _client_flags(parser)


def _client_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="give up on a server silent this long (default: %(default)g)",
    )
    add_tls_client_arguments(parser)
    add_transport_argument(parser)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: must be positive")
    return value


_ADDRESS_HELP = "the file server (or unix:PATH, its Unix socket)"


def _endpoint(args: argparse.Namespace) -> tuple[str, int, ClientTLS | None]:
    """The server's address and how to speak TLS to it, checked before any connection."""
    host, port = parse_endpoint(args.address)
    check_unix(check_host(host), args.transport)
    return host, port, client_tls(args, host)


# -- serve --------------------------------------------------------------------


def _cmd_serve(args: argparse.Namespace) -> int:
    check_listen_host(check_host(args.host), args.transport)
    args.server_tls = server_tls(args)
    return run(_serve(args))


async def _serve(args: argparse.Namespace) -> int:
    from .server import FileServer  # only `serve` needs it: the client commands start faster

    server = FileServer(
        args.dir,
        host=args.host,
        port=args.port,
        allow_upload=args.allow_upload,
        max_rate=args.max_rate,
        fsync=args.fsync,
        idle_timeout=args.idle_timeout,
        transport=args.transport,
        tls=args.server_tls,
        unix_mode=args.socket_mode,
        log=_log,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (
        signal.SIGINT,
        signal.SIGTERM,
    ):  # before the banner: anyone may signal once it is out
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    host, port = server.address
    mode = "uploads allowed" if args.allow_upload else "read-only"
    if args.server_tls is not None:
        mode += ", TLS only"
    where = format_address(host, port)
    print(f"serving {server.root} on {where} ({mode}); Ctrl-C stops", flush=True)
    if args.server_tls is not None:
        print(tls_banner(args.server_tls), flush=True)
    try:
        await stop.wait()
    finally:
        await server.close()
    _log("stopped")
    return 0


def _log(line: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {line}", file=sys.stderr, flush=True)


# -- client commands ------------------------------------------------------------


def _cmd_ls(args: argparse.Namespace) -> int:
    host, port, tls = _endpoint(args)
    return run(_ls(host, port, tls, args))


async def _ls(host: str, port: int, tls: ClientTLS | None, args: argparse.Namespace) -> int:
    async with await FileClient.connect(
        host, port, transport=args.transport, tls=tls, timeout=args.timeout
    ) as client:
        entries = await client.list(args.remote, recursive=args.recursive)
    for line in format_listing(entries):
        print(line)
    return 0


_KIND_MARK = {Kind.FILE: "-", Kind.DIR: "d", Kind.OTHER: "?"}


def format_listing(entries: list[Entry]) -> list[str]:
    """``ls -l`` style: type, size, modification time, path (directories end in /)."""
    width = max((len(str(e.size)) for e in entries), default=1)
    lines = []
    for e in entries:
        size = str(e.size) if e.kind is Kind.FILE else "-"
        when = datetime.datetime.fromtimestamp(e.mtime_ns / 1e9).strftime("%Y-%m-%d %H:%M")
        name = printable(e.path) + ("/" if e.kind is Kind.DIR else "")
        lines.append(f"{_KIND_MARK[e.kind]} {size:>{width}}  {when}  {name}")
    return lines


def _cmd_get(args: argparse.Namespace) -> int:
    host, port, tls = _endpoint(args)
    kept: list[tuple[str, int]] = []

    def hint() -> str | None:
        """Where the bytes already received are, and the command line that continues."""
        if not kept:
            return None
        path, size = kept[-1]
        more = f" (and {len(kept) - 1} more)" if len(kept) > 1 else ""
        local = [] if args.local is None else [args.local]
        command = _resume_command(args, "get", [args.remote, *local])
        return f"{size} bytes kept in {path}{more}; to continue: {command}"

    return _with_resume_hint(lambda: run(_get(host, port, tls, args, kept)), hint)


def _with_resume_hint(transfer: Callable[[], int], hint: Callable[[], str | None]) -> int:
    """Run `transfer`; if it fails or is interrupted after leaving something to continue
    from (`hint` says what and how), the error, or Ctrl-C's line, says so."""
    try:
        return transfer()
    except KeyboardInterrupt:
        said = hint()
        if said is None:
            raise
        print(f"synack: interrupted; {said}", file=sys.stderr)
        return 130
    except UserError as exc:
        said = hint()
        if said is None:
            raise
        error = UserError(f"{exc}; {said}")
        error.exit_code = exc.exit_code
        raise error from None


def _resume_command(args: argparse.Namespace, verb: str, operands: list[str]) -> str:
    """The command line that continues this transfer: the same, with ``--resume``."""
    command = ["synack", "files", verb, args.address, *operands, *tls_arguments(args)]
    if args.transport != DEFAULT_TRANSPORT:
        command += ["--transport", args.transport]
    return shlex.join([*command, "--resume"])


async def _get(
    host: str,
    port: int,
    tls: ClientTLS | None,
    args: argparse.Namespace,
    kept: list[tuple[str, int]],
) -> int:
    started = time.monotonic()
    async with await FileClient.connect(
        host, port, transport=args.transport, tls=tls, timeout=args.timeout
    ) as client:
        try:
            done = await client.get(
                args.remote,
                args.local,
                resume=args.resume,
                force=args.force,
                fsync=args.fsync,
                progress=for_stream(sys.stderr),
            )
        finally:
            kept += client.kept_partials
    _report(done, time.monotonic() - started)
    return 0


def _cmd_put(args: argparse.Namespace) -> int:
    host, port, tls = _endpoint(args)
    try:
        os.stat(args.local)  # a typo is reported before any connection is made
    except OSError as exc:
        raise UserError(f"{args.local}: {os_reason(exc)}") from None
    cut: list[str] = []

    def hint() -> str | None:
        """Where the bytes already sent are kept, and the command line that continues."""
        if not cut:
            return None
        remote = [] if args.remote is None else [args.remote]
        command = _resume_command(args, "put", [args.local, *remote])
        return f"the server keeps the part of {printable(cut[0])} it stored; to continue: {command}"

    return _with_resume_hint(lambda: run(_put(host, port, tls, args, cut)), hint)


async def _put(
    host: str, port: int, tls: ClientTLS | None, args: argparse.Namespace, cut: list[str]
) -> int:
    started = time.monotonic()
    async with await FileClient.connect(
        host, port, transport=args.transport, tls=tls, timeout=args.timeout
    ) as client:
        try:
            done = await client.put(
                args.local,
                args.remote,
                resume=args.resume,
                force=args.force,
                progress=for_stream(sys.stderr),
            )
        finally:
            if client.cut_upload is not None:
                cut.append(client.cut_upload)
    _report(done, time.monotonic() - started)
    return 0


def _report(done: Transferred, seconds: float) -> None:
    """Warnings always; the summary only on a terminal (scripts get silence on success)."""
    for line in done.skipped:
        print(f"synack: skipped {printable(line)}", file=sys.stderr)
    if not sys.stderr.isatty():
        return
    rate = done.bytes / seconds / 1e6 if seconds > 0 else 0.0
    parts = [
        f"{done.files} file{'s' * (done.files != 1)}",
        f"{done.bytes / 1e6:.1f} MB in {seconds:.1f} s ({rate:.0f} MB/s)",
    ]
    if done.identical:
        parts.append(f"{done.identical} already identical")
    print(f"{', '.join(parts)}; SHA-256 verified", file=sys.stderr)
