"""Testing helpers that are part of synack, for testing synack and your own protocols.

`FakeNetwork` runs sans-IO endpoints (a `synack.tcp.host.Host`, or anything shaped
like `Endpoint`) on virtual time over links that can delay, lose, duplicate,
reorder, corrupt and rate-limit packets, deterministically from one seed.
"""

from synack.testing.fakenet import (
    Datagram,
    DropCause,
    Endpoint,
    FakeNetwork,
    Link,
    Livelock,
    NetStats,
    NetworkTimeout,
    PacketEvent,
    RawEndpoint,
    Tap,
    connected_pair,
    format_packet,
)

__all__ = [
    "Datagram",
    "DropCause",
    "Endpoint",
    "FakeNetwork",
    "Link",
    "Livelock",
    "NetStats",
    "NetworkTimeout",
    "PacketEvent",
    "RawEndpoint",
    "Tap",
    "connected_pair",
    "format_packet",
]
