"""synack's TCP, as a sans-IO core (RFC 9293 and companions).

Nothing in this package performs I/O, starts a thread or reads a clock. A
`Connection` or `Listener` is fed segment bytes, application calls and the
current time (``now``, seconds on any monotonic clock), and gives back segments
to send, events, and the time of its next deadline. Drivers (sockets, asyncio,
a TUN device, or the fake network in `synack.testing`) do the I/O.
"""

from synack.tcp.config import Config
from synack.tcp.connection import Connection
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
    DataAvailable,
    EndOfStream,
    Event,
    Reset,
    SendSpace,
    StateChanged,
    TimedOut,
)
from synack.tcp.state import State

__all__ = [
    "Closed",
    "Config",
    "Connected",
    "Connection",
    "ConnectionClosing",
    "ConnectionDoesNotExist",
    "ConnectionRefused",
    "ConnectionReset",
    "ConnectionTimedOut",
    "DataAvailable",
    "EndOfStream",
    "Event",
    "Reset",
    "SendSpace",
    "State",
    "StateChanged",
    "TCPError",
    "TimedOut",
]
