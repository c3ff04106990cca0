"""The ``synack`` transport: our own TCP, carried in UDP (`synack.drivers.aio`).

The driver is imported on first use, so naming the transport costs nothing at
start-up for commands that run on the OS's TCP.

Every connection it makes or accepts sends keepalive probes after `KEEPALIVE_IDLE`
seconds without a segment from the peer. A kernel's TCP closes the connections of
a process that is killed (FIN, or RST); ours dies with its process and sends
nothing, and the peer learns only when it next sends, from the ICMP
port-unreachable the dead port draws (docs/PROTOCOL.md §5.4). A side that only
receives (a download, a chat client waiting for messages, a server waiting for
a request) would otherwise send nothing and hang until its own app timeout, or
for ever. A probe draws that ICMP error, so a killed peer is found within about
`KEEPALIVE_IDLE` seconds and an RTO, as ``ConnectionResetError``. A live peer's
TCP answers the probe whatever its app is doing, so an idle but healthy
connection is never ended by it; a peer that answers nothing at all is given up
after Linux's default count and interval (9 probes, 75 s apart).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import TYPE_CHECKING

from .base import STREAM_LIMIT, BulkReader, ClientHandler, Server, Transport

if TYPE_CHECKING:
    from synack.tcp import Config

# Seconds without a segment from the peer before a keepalive probe asks it for one.
KEEPALIVE_IDLE = 5.0


def _config() -> Config:
    """The driver's own defaults (no delay, buffers sized for the carrier) with keepalive on."""
    from synack.drivers.engine import config_for
    from synack.drivers.udp import CarrierConfig

    return replace(
        config_for(CarrierConfig(), None),
        no_delay=True,  # as the driver's default: asyncio sets TCP_NODELAY on its sockets
        keepalive=True,
        keepalive_idle=KEEPALIVE_IDLE,
    )


class SynackTcpTransport(Transport):
    """synack's TCP on the event loop's own thread; its port is a UDP port."""

    name = "synack"
    no_unix_sockets = (
        "carries TCP in UDP datagrams and has no Unix-socket form (unix: addresses need the "
        "os transport)"
    )

    async def open_connection(
        self, host: str, port: int, *, limit: int = STREAM_LIMIT
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        from synack.drivers import aio

        return await aio.open_connection(host, port, limit=limit, config=_config())

    async def start_server(
        self,
        handler: ClientHandler,
        host: str,
        port: int,
        *,
        backlog: int = 128,
        limit: int = STREAM_LIMIT,
    ) -> Server:
        from synack.drivers import aio

        # A restart binds again at once: a new process finds the UDP port free (the old
        # one took its connections with it); in the same process the new listener shares
        # the socket that still carries the old server's connections (drivers.aio).
        return await aio.start_server(
            handler, host, port, limit=limit, backlog=backlog, config=_config()
        )

    def bulk_reader(self, reader: asyncio.StreamReader) -> BulkReader:
        """TLS streams are decrypted straight into the caller's buffer (asyncio's TLS layer
        does that on any transport); plain ones are read through the StreamReader."""
        from .os import FillingBulkReader

        return FillingBulkReader(reader)

    def set_nodelay(self, writer: asyncio.StreamWriter) -> None:
        from synack.drivers.aio import SynackTransport

        transport = writer.transport
        if isinstance(transport, SynackTransport):
            transport.set_no_delay(True)
