"""`asyncio` streams on synack's own TCP, carried in UDP: change one import.

    from synack import asyncio as synack_asyncio
    reader, writer = await synack_asyncio.open_connection("127.0.0.1", 7007)

`open_connection` and `start_server` give the standard `StreamReader` and
`StreamWriter` (``drain``, ``write_eof``, ``wait_closed``); `create_connection`
and `create_server` take any protocol factory, as the event loop's methods do.
The TCP runs on the event loop's own thread: the loop watches one UDP socket per
port and keeps one timer for it, and no helper thread is started.
"""

from synack.drivers.aio import (
    SynackServer,
    SynackTransport,
    create_connection,
    create_server,
    open_connection,
    start_server,
)
from synack.drivers.udp import LOOPBACK_MTU, CarrierConfig

__all__ = [
    "LOOPBACK_MTU",
    "CarrierConfig",
    "SynackServer",
    "SynackTransport",
    "create_connection",
    "create_server",
    "open_connection",
    "start_server",
]
