"""`synack chat serve` and `synack chat join`."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from synack.apps.chat.protocol import ChatError, check_nick, check_room
from synack.apps.common import (
    add_listen_arguments,
    add_tls_client_arguments,
    add_tls_server_arguments,
    add_transport_argument,
    check_host,
    check_listen_host,
    check_unix,
    client_tls,
    connect_error,
    listen_error,
    parse_endpoint,
    port_option,
    run,
    server_tls,
    tls_banner,
    wants_tls,
)
from synack.errors import UsageError
from synack.transport import format_address, is_unix

# Servers and clients are imported by the command that runs them, so that `join`
# does not load the servers (nor `serve` the clients) before doing anything.
if TYPE_CHECKING:
    from synack.apps.chat.client import BaseChatClient
    from synack.apps.chat.server import ChatServer
    from synack.apps.chat.udp_server import UdpChatServer

DEFAULT_PORT = 7007


def _positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be positive")
        return value

    parse.__name__ = kind.__name__
    return parse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    chat = sub.add_parser(
        "chat",
        help="chat rooms over TCP or UDP (server and client)",
        description="Chat rooms over TCP or UDP: synack clients and nc/telnet users meet there.",
    )
    verbs = chat.add_subparsers(dest="verb", metavar="COMMAND", required=True)

    serve = verbs.add_parser(
        "serve",
        help="run a chat server",
        description="Run a chat server. synack clients and plain nc/telnet users share its rooms.",
    )
    add_listen_arguments(serve, DEFAULT_PORT)
    serve.add_argument(
        "--backlog",
        type=_positive(int),
        default=128,
        metavar="N",
        help="listen backlog (default: %(default)s)",
    )
    serve.add_argument(
        "--max-clients",
        type=_positive(int),
        default=1000,
        metavar="N",
        help="connections held at most (default: %(default)s)",
    )
    serve.add_argument(
        "--idle-timeout",
        type=_positive(float),
        default=600.0,
        metavar="SECONDS",
        help="drop a TCP client silent this long (default: %(default)g)",
    )
    serve.add_argument(
        "--max-queue",
        type=_positive(int),
        default=1 << 20,
        metavar="BYTES",
        help="bytes a slow reader may have pending before it is dropped (default: %(default)s)",
    )
    serve.add_argument("--udp", action="store_true", help="serve UDP datagrams instead of TCP")
    serve.add_argument(
        "--peer-timeout",
        type=_positive(float),
        default=30.0,
        metavar="SECONDS",
        help="UDP: forget a peer silent this long (default: %(default)g)",
    )
    serve.add_argument("--quiet", action="store_true", help="no line per connection")
    add_tls_server_arguments(serve)
    serve.add_argument(
        "--tls-port",
        type=port_option,
        metavar="PORT",
        help="with --tls-cert: TLS on this port, clear text (for nc) on --port, "
        "one set of rooms (default: --port speaks TLS only)",
    )
    serve.add_argument(
        "--web",
        type=_web_endpoint,
        metavar="[HOST:]PORT",
        help="also serve the chat page and its WebSocket, for browsers, on PORT (of --host, "
        "or of HOST); https with --tls-cert; always the OS's TCP (needs aiohttp)",
    )
    serve.add_argument(
        "--web-origin",
        type=_origin,
        action="append",
        metavar="ORIGIN",
        help="with --web: also let pages of ORIGIN (e.g. https://chat.example.org, a proxy's) "
        "open the WebSocket, not only the chat page's own origin; repeatable",
    )
    _add_cluster_arguments(serve)
    add_transport_argument(serve)
    serve.set_defaults(func=cmd_serve)

    join = verbs.add_parser(
        "join",
        help="join a chat server",
        description="Join a chat. On a terminal: a prompt (/help lists commands). Otherwise "
        "each stdin line is sent and each event printed; at end of input it quits cleanly.",
    )
    join.add_argument(
        "address", metavar="HOST:PORT", help="the chat server (or unix:PATH, its Unix socket)"
    )
    join.add_argument("--nick", required=True, metavar="NICK", help="your nickname")
    join.add_argument(
        "--room", default=None, metavar="ROOM", help="room to join first (default: lobby)"
    )
    join.add_argument("--udp", action="store_true", help="talk to a `serve --udp` server")
    add_tls_client_arguments(join)
    add_transport_argument(join)
    join.set_defaults(func=cmd_join)


def _add_cluster_arguments(serve: argparse.ArgumentParser) -> None:
    serve.add_argument(
        "--redis",
        metavar="URL",
        help="join the chat servers that share this Redis (redis://HOST:PORT/DB): one set of "
        "rooms and nicknames (needs redis-py). Redis must answer at start; an outage later "
        "keeps local rooms going and refuses joins and nickname changes until it is back",
    )
    serve.add_argument(
        "--redis-prefix",
        default=None,
        metavar="PREFIX",
        help="with --redis: the prefix of its keys and channel, one per cluster "
        "(default: synack:chat)",
    )
    serve.add_argument(
        "--heartbeat",
        type=_positive(float),
        default=None,
        metavar="SECONDS",
        help="with --redis: how often this server says it is alive and looks for dead ones "
        "(default: 2)",
    )
    serve.add_argument(
        "--dead-after",
        type=_positive(float),
        default=None,
        metavar="SECONDS",
        help="with --redis: a server silent this long is dead and its users shown as gone "
        "(default: 6; they are gone everywhere within this plus --heartbeat)",
    )


def _check_cluster(args: argparse.Namespace) -> None:
    """--redis's one-line refusals; its settings into args.cluster."""
    args.cluster = None
    options = {
        "--redis-prefix": args.redis_prefix,
        "--heartbeat": args.heartbeat,
        "--dead-after": args.dead_after,
    }
    if args.redis is None:
        for name, value in options.items():
            if value is not None:
                raise UsageError(f"{name} needs --redis")
        return
    if args.udp:
        raise UsageError("the UDP chat cannot join a cluster: leave out --udp to use --redis")
    try:
        from synack.apps.chat.cluster import Settings
    except ImportError:
        raise UsageError(
            "--redis needs redis-py, which is not installed: pip install 'synack[cluster]'"
        ) from None
    given = {
        "prefix": args.redis_prefix,
        "heartbeat": args.heartbeat,
        "dead_after": args.dead_after,
    }
    try:
        args.cluster = Settings(**{k: v for k, v in given.items() if v is not None})
    except ValueError as exc:
        raise UsageError(f"--heartbeat/--dead-after: {exc}") from None
    from redis.connection import parse_url

    try:
        parse_url(args.redis)  # type: ignore[no-untyped-call]
    except ValueError as exc:
        raise UsageError(f"--redis {args.redis!r}: {exc}") from None


def _web_endpoint(text: str) -> tuple[str | None, int]:
    """``PORT``, ``HOST:PORT`` or ``[V6]:PORT``; no HOST: the chat's own --host."""
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise argparse.ArgumentTypeError(f"invalid address {text!r}: write IPv6 as [ADDR]:PORT")
    if sep and not host:
        raise argparse.ArgumentTypeError(f"invalid address {text!r}: the host is missing")
    return host or None, port_option(port)


def _origin(text: str) -> str:
    """A web origin as browsers send it: scheme://host[:port], nothing after."""
    scheme, sep, rest = text.rstrip("/").partition("://")
    if scheme not in ("http", "https") or not sep or not rest or "/" in rest:
        raise argparse.ArgumentTypeError(
            f"invalid origin {text!r}: expected http(s)://HOST[:PORT], as a browser sends it"
        )
    return f"{scheme}://{rest}".lower()


def _log(line: str) -> None:
    print(line, flush=True)


_UDP_NO_TLS = "the UDP chat has no TLS: its datagrams are clear text (leave out --udp or TLS)"
_UDP_NO_UNIX = "the UDP chat needs HOST:PORT, not a unix: address"


def cmd_serve(args: argparse.Namespace) -> int:
    check_host(args.host)
    if args.udp:
        if args.tls_cert or args.tls_key or args.tls_port is not None:
            raise UsageError(_UDP_NO_TLS)
        if is_unix(args.host):
            raise UsageError(_UDP_NO_UNIX)
    else:
        check_listen_host(args.host, args.transport)
    if args.tls_port is not None:
        if args.tls_cert is None:
            raise UsageError("--tls-port needs --tls-cert")
        if is_unix(args.host):
            raise UsageError("--tls-port needs a TCP --host, not a unix: address")
    _check_web(args)
    _check_cluster(args)
    args.server_tls = server_tls(args)
    return run(_serve(args))


def _check_web(args: argparse.Namespace) -> None:
    """--web's one-line refusals, and its address: --host's, or 127.0.0.1 for a unix: one."""
    if args.web is None:
        if args.web_origin:
            raise UsageError("--web-origin needs --web")
        return
    if args.udp:
        raise UsageError("the web chat shares the TCP chat's rooms: leave out --udp to use --web")
    try:
        import aiohttp  # noqa: F401
    except ImportError as exc:
        raise UsageError(
            f"--web needs aiohttp ({exc.name} is missing): pip install 'synack[web]'"
        ) from None
    host, port = args.web
    if host is None:
        host = "127.0.0.1" if is_unix(args.host) else args.host
    args.web = (check_host(host), port)


async def _serve(args: argparse.Namespace) -> int:
    from synack.apps.chat.server import ChatServer
    from synack.apps.chat.udp_server import UdpChatServer

    log = None if args.quiet else _log
    server: ChatServer | UdpChatServer
    if args.udp:
        server = UdpChatServer(
            args.host,
            args.port,
            peer_timeout=args.peer_timeout,
            max_peers=args.max_clients,
            log=log,
        )
    else:
        server = ChatServer(
            args.host,
            args.port,
            backlog=args.backlog,
            max_clients=args.max_clients,
            idle_timeout=args.idle_timeout,
            max_queue=args.max_queue,
            transport=args.transport,
            tls=args.server_tls,
            tls_port=args.tls_port,
            unix_mode=args.socket_mode,
            web=args.web,
            web_origins=args.web_origin or (),
            redis=args.redis,
            cluster=args.cluster,
            log=log,
        )
    try:
        host, port = await server.start()
    except OSError as exc:
        raise listen_error(exc, args.host, args.port) from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    kind = "udp" if args.udp else "unix" if is_unix(host) else "tcp"
    if args.server_tls is not None and args.tls_port is None:
        kind += ", TLS only"
    where = format_address(host, port)
    print(f"synack chat: listening on {where} ({kind}); Ctrl-C stops", flush=True)
    if isinstance(server, ChatServer) and args.tls_port is not None:
        tls_where = format_address(*server.addresses[1])
        print(f"synack chat: listening on {tls_where} (tcp, TLS only)", flush=True)
    if isinstance(server, ChatServer) and server.cluster is not None:
        print(f"synack chat: {server.cluster.summary}", flush=True)
    if isinstance(server, ChatServer) and server.web_url is not None:
        print(f"synack chat: web chat on {server.web_url} (page and WebSocket)", flush=True)
    if args.server_tls is not None:
        print(f"synack chat: {tls_banner(args.server_tls)}", flush=True)
    await stop.wait()
    print("synack chat: shutting down, telling every client", flush=True)
    await server.close()
    print("synack chat: stopped", flush=True)
    return 0


def cmd_join(args: argparse.Namespace) -> int:
    host, port = parse_endpoint(args.address)
    check_host(host)
    if args.udp:
        if wants_tls(args):
            raise UsageError(_UDP_NO_TLS)
        if is_unix(host):
            raise UsageError(_UDP_NO_UNIX)
    check_unix(host, args.transport)
    args.client_tls = client_tls(args, host)
    try:
        check_nick(args.nick)
        if args.room is not None:
            check_room(args.room)
    except ChatError as exc:
        raise UsageError(exc.message) from None
    return run(_join(args, host, port))


async def _join(args: argparse.Namespace, host: str, port: int) -> int:
    from synack.apps.chat import console
    from synack.apps.chat.client import ChatClient
    from synack.apps.chat.render import render
    from synack.apps.chat.udp_client import UdpChatClient

    client: BaseChatClient
    if args.udp:
        client = udp = UdpChatClient(host, port, args.nick, room=args.room)
        connect = udp.connect
    else:
        client = tcp = ChatClient(
            host, port, args.nick, room=args.room, transport=args.transport, tls=args.client_tls
        )
        connect = tcp.connect
    try:
        welcome = await connect()
    except OSError as exc:
        raise connect_error(exc, host, port) from None
    print(render(welcome), flush=True)
    if sys.stdin.isatty() and sys.stdout.isatty():
        return await console.run_interactive(client)
    return await console.run_scripted(client)
