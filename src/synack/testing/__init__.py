"""Testing helpers that are part of synack, for testing synack and your own protocols.

`FakeNetwork` runs sans-IO endpoints (a `synack.tcp.Host`, or anything shaped like
`synack.tcp.Endpoint`, re-exported here with `Datagram`) on virtual time over links
that can delay, lose, duplicate, reorder, corrupt and rate-limit packets,
deterministically from one seed.
"""

from synack.tcp.endpoint import Datagram, Endpoint
from synack.testing.fakenet import (
    DropCause,
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
