"""What carries segments between a host's TCP and the world: datagrams and endpoints.

A *driver* (a UDP socket, a TUN device, or the fake network of `synack.testing`)
moves `Datagram`s -- a TCP segment with its source and destination IP addresses
-- to and from an `Endpoint`, the sans-IO side: a `synack.tcp.Host`, or anything
else with its four methods. Both sides import these definitions from here, so the
core does not depend on any driver and every driver speaks the same shape.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from synack.wire.tcp import Gathered

# A segment, its source address and its destination address (4 or 16 bytes each).
Datagram = tuple[bytes | bytearray, bytes, bytes]
# The same with a large segment perhaps `Gathered` (Config.gather_from), for a driver
# that sends with gathered writes (Host.segments_to_send_gathered).
GatheredDatagram = tuple[bytes | bytearray | Gathered, bytes, bytes]


class Endpoint(Protocol):
    """The sans-IO contract a driver relies on (a `synack.tcp.Host` fits it).

    Per input the driver calls ``handle_segment`` (or ``handle_timer`` once the
    deadline has passed), then ``segments_to_send`` once and ``get_timer`` once,
    and re-arms its single timer only if the deadline moved.
    """

    def handle_segment(self, data: bytes | bytearray, src: bytes, now: float) -> None:
        """One segment from the IP address `src`, addressed to this endpoint."""
        ...

    def segments_to_send(self, now: float) -> Iterable[Datagram]:
        """Everything due for transmission now."""
        ...

    def get_timer(self) -> float | None:
        """When ``handle_timer`` must next be called, or None if nothing is pending."""
        ...

    def handle_timer(self, now: float) -> None:
        """Run whatever is due at `now`."""
        ...
