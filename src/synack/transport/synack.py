"""The ``synack`` transport: our own TCP, carried in UDP (`synack.drivers.aio`).

The driver is imported on first use, so naming the transport costs nothing at
start-up for commands that run on the OS's TCP.
"""

from __future__ import annotations

import asyncio

from .base import STREAM_LIMIT, BulkReader, ClientHandler, Server, Transport


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

        return await aio.open_connection(host, port, limit=limit)

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
        return await aio.start_server(handler, host, port, limit=limit, backlog=backlog)

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
