"""Pieces every app's command line shares: endpoints, the transport flag, running a coroutine."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
from collections.abc import Coroutine
from typing import Any, TypeVar

from synack import transport as seam
from synack.errors import UsageError, UserError, describe_os_error

T = TypeVar("T")


def parse_port(text: str) -> int:
    try:
        port = int(text, 10)
    except ValueError:
        raise UsageError(f"invalid port {text!r}: not a number") from None
    if not 0 <= port <= 65535:
        raise UsageError(f"invalid port {port}: must be 0-65535")
    return port


def port_option(text: str) -> int:
    """`parse_port` as an argparse ``type=``: a bad ``--port`` is a usage error, not a traceback.

    argparse turns only ArgumentTypeError (and ValueError) into its one-line error.
    """
    try:
        return parse_port(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_listen_arguments(parser: argparse.ArgumentParser, default_port: int) -> None:
    """``--host`` and ``--port`` for a server, worded alike in every app."""
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--port",
        type=port_option,
        default=default_port,
        help="port; 0 picks a free one (default: %(default)s)",
    )


def parse_endpoint(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` to a (host, port) pair, with a clear error otherwise."""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise UsageError(f"invalid address {text!r}: expected [IPV6]:PORT")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or ":" in host:
            raise UsageError(f"invalid address {text!r}: expected HOST:PORT")
    if not host:
        raise UsageError(f"invalid address {text!r}: the host is missing")
    if not port_text:
        raise UsageError(f"invalid address {text!r}: the port is missing")
    port = parse_port(port_text)
    if port == 0:
        raise UsageError(f"invalid address {text!r}: port 0 cannot be connected to")
    return host, port


def check_host(host: str) -> str:
    """Reject obviously malformed literal addresses early; names are left to the resolver."""
    if host and all(c.isdigit() or c == "." for c in host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise UsageError(f"invalid IPv4 address {host!r}") from None
    return host


def check_listen_host(host: str, transport: str) -> str:
    """Refuse, as one line, an address the transport cannot listen on: synack's TCP
    listens on one address, not on all of them (0.0.0.0 needs IP_PKTINFO, not done yet)."""
    if transport == "synack" and host in ("0.0.0.0", ""):
        raise UsageError(
            f"--transport synack listens on one address, not {host or 'every one'}: "
            "give --host one (e.g. 127.0.0.1, or this machine's LAN address)"
        )
    return host


def add_transport_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--transport",
        choices=seam.names(),
        default=seam.DEFAULT_TRANSPORT,
        help=(
            "TCP underneath: 'os' is the operating system's, 'synack' is synack's own TCP "
            "carried in UDP, whose port is a UDP port (default: %(default)s)"
        ),
    )


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run an app's main coroutine; OS errors become one-line `UserError`s."""
    try:
        return asyncio.run(coro)
    except OSError as exc:
        raise UserError(describe_os_error(exc)) from None


def connect_error(exc: OSError, host: str, port: int) -> UserError:
    """The one line shown when a connection to host:port fails."""
    return UserError(describe_os_error(exc, f"cannot connect to {host}:{port}"))


def listen_error(exc: OSError, host: str, port: int) -> UserError:
    """The one line shown when listening on host:port fails (in use, not local...)."""
    return UserError(describe_os_error(exc, f"cannot listen on {host}:{port}"))
