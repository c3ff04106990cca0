"""`asyncio` streams on synack's own TCP, carried in UDP: change one import.

    from synack import asyncio as synack_asyncio
    reader, writer = await synack_asyncio.open_connection("127.0.0.1", 7007)

`open_connection` and `start_server` give the standard `StreamReader` and
`StreamWriter` (``drain``, ``write_eof``, ``wait_closed``); `create_connection`
and `create_server` take any protocol factory, as the event loop's methods do.
The TCP runs on the event loop's own thread: the loop watches one UDP socket per
port and keeps one timer for it, and no helper thread is started.

Otherwise they behave as asyncio's own TCP on 127.0.0.1 does (the same values,
exceptions and errno, and event order: `tests/drivers/test_aio_compat.py` runs each
scenario on both): ``ssl=`` and ``server_hostname``, ``start_tls``, ``abort`` (the
peer reads what was sent, then the end of the stream), ``loop.sendfile``, the
`Server`'s ``sockets``, ``start_serving`` and ``serve_forever``. Where a connection
that lives in this process cannot be the same:

* ``get_extra_info("socket")`` is None: there is no kernel socket per connection
  (one UDP socket carries all of a port's), so no TCP socket option to set on one.
* ``server.sockets`` lists that UDP socket: its ``getsockname()`` is the server's
  address, and its type is SOCK_DGRAM.
* ``loop.sendfile`` writes the file through the transport (asyncio's fallback);
  with ``fallback=False`` it raises RuntimeError, having no kernel socket for
  ``os.sendfile``.
* A server listens on one IPv4 address: no host (or ``""``) is 127.0.0.1, the
  address getaddrinfo gives, not every interface; 0.0.0.0 is refused
  (EADDRNOTAVAIL). Arguments about the kernel socket (``family``, ``sock``,
  ``local_addr``, ``reuse_address``, ``reuse_port``) are not taken (TypeError).
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
