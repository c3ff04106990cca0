"""Pieces every app's command line shares: endpoints, the transport flag, running a coroutine."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
from collections.abc import Coroutine
from typing import Any, TypeVar

from synack import transport as seam
from synack.apps.trace_options import add_trace_arguments
from synack.errors import UsageError, UserError, describe_os_error
from synack.transport import tls as seam_tls

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
        "--host",
        default="127.0.0.1",
        help="address to listen on, or unix:PATH for a Unix socket (default: %(default)s)",
    )
    parser.add_argument(
        "--port",
        type=port_option,
        default=default_port,
        help="port; 0 picks a free one; ignored for unix:PATH (default: %(default)s)",
    )
    parser.add_argument(
        "--socket-mode",
        type=_socket_mode,
        default=f"{seam.UNIX_MODE:o}",  # a string: argparse converts it, and shows it as given
        metavar="MODE",
        help="permissions of a unix:PATH socket: 600, only this user, or 660, also the "
        "file's group (default: %(default)s)",
    )


def _socket_mode(text: str) -> int:
    try:
        mode = int(text, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid mode {text!r}: expected octal, e.g. 660"
        ) from None
    if mode not in (0o600, 0o660):
        raise argparse.ArgumentTypeError(f"invalid mode {text!r}: choose 600 or 660")
    return mode


def add_tls_server_arguments(parser: argparse.ArgumentParser) -> None:
    """``--tls-cert``/``--tls-key``: a server that speaks only TLS."""
    parser.add_argument(
        "--tls-cert",
        metavar="FILE",
        help="serve TLS only, with this PEM certificate (chain); its SHA-256 is printed at start",
    )
    parser.add_argument(
        "--tls-key",
        metavar="FILE",
        help="the certificate's private key (default: in the --tls-cert file)",
    )


def add_tls_client_arguments(parser: argparse.ArgumentParser) -> None:
    """``--tls`` and how to verify the server: the system's CAs, a CA file, or a pin."""
    parser.add_argument(
        "--tls",
        action="store_true",
        help="connect with TLS, verifying the server against the system's CAs and its name",
    )
    parser.add_argument(
        "--tls-ca",
        metavar="FILE",
        help="TLS, verifying the server against this CA (PEM) instead of the system's",
    )
    parser.add_argument(
        "--tls-pin",
        type=_pin,
        metavar="SHA256:HEX",
        help="TLS, accepting only the certificate with this fingerprint (as the server prints)",
    )


def _pin(text: str) -> str:
    try:
        seam_tls.parse_pin(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def server_tls(args: argparse.Namespace) -> seam.ServerTLS | None:
    """The server's TLS from ``--tls-cert``/``--tls-key``; None for a clear-text server."""
    cert, key = getattr(args, "tls_cert", None), getattr(args, "tls_key", None)
    if cert is None:
        if key is not None:
            raise UsageError("--tls-key needs --tls-cert")
        return None
    return seam.ServerTLS.from_files(cert, key)


def wants_tls(args: argparse.Namespace) -> bool:
    return bool(
        getattr(args, "tls", False)
        or getattr(args, "tls_ca", None)
        or getattr(args, "tls_pin", None)
    )


def client_tls(args: argparse.Namespace, host: str) -> seam.ClientTLS | None:
    """The client's TLS from ``--tls``, ``--tls-ca``, ``--tls-pin`` (each implies TLS)."""
    if not wants_tls(args):
        return None
    cafile, pin_text = args.tls_ca, args.tls_pin
    pin = None if pin_text is None else seam_tls.parse_pin(pin_text)
    unix = seam.is_unix(host)
    if unix and cafile is None and pin is None:
        raise UsageError(
            "--tls over a Unix socket has no host name to check: give --tls-ca FILE or --tls-pin"
        )
    # Over a Unix socket a CA file checks the chain only: there is no name to match.
    return seam.ClientTLS.create(cafile=cafile, pin=pin, check_hostname=not unix)


def tls_arguments(args: argparse.Namespace) -> list[str]:
    """The TLS options of a client command line, to repeat them in a suggested command."""
    words: list[str] = []
    if getattr(args, "tls", False):
        words.append("--tls")
    if getattr(args, "tls_ca", None):
        words += ["--tls-ca", args.tls_ca]
    if getattr(args, "tls_pin", None):
        words += ["--tls-pin", args.tls_pin]
    return words


def tls_banner(tls: seam.ServerTLS) -> str:
    """The line a TLS server prints at start: what clients pin."""
    return f"TLS certificate {tls.fingerprint} (clients may pin it: --tls-pin {tls.fingerprint})"


def parse_endpoint(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT`` or ``unix:PATH`` to a (host, port) pair, with a clear
    error otherwise. A Unix socket stays ``("unix:PATH", 0)``: the seam knows the form."""
    if seam.is_unix(text):
        if not seam.unix_path(text):
            raise UsageError(f"invalid address {text!r}: the socket path is missing")
        return text, 0
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
    if seam.is_unix(host):
        if not seam.unix_path(host):
            raise UsageError(f"invalid address {host!r}: the socket path is missing")
        return host
    if host and all(c.isdigit() or c == "." for c in host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise UsageError(f"invalid IPv4 address {host!r}") from None
    return host


def check_listen_host(host: str, transport: str) -> str:
    """Refuse, as one line, an address the transport cannot listen on: synack's TCP
    listens on one address, not on all of them (0.0.0.0 needs IP_PKTINFO, not done yet)."""
    check_unix(host, transport)
    if transport == "synack" and host in ("0.0.0.0", ""):
        raise UsageError(
            f"--transport synack listens on one address, not {host or 'every one'}: "
            "give --host one (e.g. 127.0.0.1, or this machine's LAN address)"
        )
    return host


def check_unix(host: str, transport: str) -> str:
    """Refuse, as one line, a ``unix:PATH`` address on a transport without Unix sockets."""
    if seam.is_unix(host) and not seam.supports_unix(transport):
        raise UsageError(f"--transport {transport} {seam.get(transport).no_unix_sockets}")
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
    add_trace_arguments(parser)  # --trace, --trace-json, --pcap: synack's TCP made visible


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run an app's main coroutine; OS errors become one-line `UserError`s."""
    try:
        return asyncio.run(coro)
    except OSError as exc:
        raise UserError(describe_os_error(exc)) from None


def connect_error(exc: OSError, host: str, port: int) -> UserError:
    """The one line shown when a connection to host:port fails."""
    return UserError(describe_os_error(exc, f"cannot connect to {seam.format_address(host, port)}"))


def listen_error(exc: OSError, host: str, port: int) -> UserError:
    """The one line shown when listening on host:port fails (in use, not local...)."""
    return UserError(describe_os_error(exc, f"cannot listen on {seam.format_address(host, port)}"))
