"""synack's TCP, as a sans-IO core (RFC 9293 and companions).

Nothing in this package performs I/O, starts a thread or reads a clock. A
`Connection` or `Listener` is fed segment bytes, application calls and the
current time (``now``, seconds on any monotonic clock), and gives back segments
to send, events, and the time of its next deadline. Drivers (sockets, asyncio,
a TUN device, or the fake network in `synack.testing`) do the I/O; a `Host` is
what they drive (`Endpoint` and `Datagram` are the shapes they exchange; the host
module's docstring states the contract).
"""

from synack.tcp.config import Config
from synack.tcp.connection import Connection
from synack.tcp.endpoint import Datagram, Endpoint
from synack.tcp.errors import (
    ConnectionClosing,
    ConnectionDoesNotExist,
    ConnectionRefused,
    ConnectionReset,
    ConnectionTimedOut,
    TCPError,
)
from synack.tcp.events import (
    Closed,
    Connected,
    ConnectionAvailable,
    DataAvailable,
    EndOfStream,
    Event,
    Reset,
    SendSpace,
    StateChanged,
    TimedOut,
)
from synack.tcp.host import Host, PortInUse
from synack.tcp.listener import Listener
from synack.tcp.state import State

__all__ = [
    "Closed",
    "Config",
    "Connected",
    "Connection",
    "ConnectionAvailable",
    "ConnectionClosing",
    "ConnectionDoesNotExist",
    "ConnectionRefused",
    "ConnectionReset",
    "ConnectionTimedOut",
    "DataAvailable",
    "Datagram",
    "EndOfStream",
    "Endpoint",
    "Event",
    "Host",
    "Listener",
    "PortInUse",
    "Reset",
    "SendSpace",
    "State",
    "StateChanged",
    "TCPError",
    "TimedOut",
]
