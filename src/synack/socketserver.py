"""The standard `socketserver` with synack's own TCP underneath: change one import.

    from synack import socketserver

    class Echo(socketserver.StreamRequestHandler):
        def handle(self):
            for line in self.rfile:
                self.wfile.write(line)

    with socketserver.ThreadingTCPServer(("127.0.0.1", 9999), Echo) as server:
        server.serve_forever()

`TCPServer` and `ThreadingTCPServer` are the standard classes with a listening
`synack.socket` in place of the kernel's; ``serve_forever`` waits on its readiness
descriptor with ``selectors`` as it always does. The request handlers, the mix-ins
and the UDP and Unix servers are the standard ones (UDP and Unix sockets are the
operating system's). `ForkingTCPServer` is refused: a forked child cannot carry a
connection of a TCP that lives in its parent's memory (docs/SOCKET.md).
"""

from __future__ import annotations

import socketserver as _std
from socketserver import (
    BaseRequestHandler,
    BaseServer,
    DatagramRequestHandler,
    ForkingMixIn,
    ForkingUDPServer,
    StreamRequestHandler,
    ThreadingMixIn,
    ThreadingUDPServer,
    ThreadingUnixDatagramServer,
    ThreadingUnixStreamServer,
    UDPServer,
    UnixDatagramServer,
    UnixStreamServer,
)
from typing import Any

from synack import socket as _socket

__all__ = [
    "BaseRequestHandler",
    "BaseServer",
    "DatagramRequestHandler",
    "ForkingMixIn",
    "ForkingTCPServer",
    "ForkingUDPServer",
    "StreamRequestHandler",
    "TCPServer",
    "ThreadingMixIn",
    "ThreadingTCPServer",
    "ThreadingUDPServer",
    "ThreadingUnixDatagramServer",
    "ThreadingUnixStreamServer",
    "UDPServer",
    "UnixDatagramServer",
    "UnixStreamServer",
]

_FORK_REFUSED = (
    "synack's TCP lives in the memory of the process that opened the connection, so a "
    "forked child cannot carry it: use ThreadingTCPServer (threads share the process), "
    "or the operating system's TCP with the standard socketserver"
)


class TCPServer(_std.TCPServer):
    """The standard `socketserver.TCPServer`, listening on a `synack.socket` socket."""

    def __init__(
        self,
        server_address: tuple[str, int],
        RequestHandlerClass: Any,  # the standard module's name for it
        bind_and_activate: bool = True,
    ) -> None:
        if isinstance(self, ForkingMixIn):
            raise NotImplementedError(_FORK_REFUSED)
        BaseServer.__init__(self, server_address, RequestHandlerClass)
        self.socket = _socket.socket(self.address_family, self.socket_type)
        if bind_and_activate:
            try:
                self.server_bind()
                self.server_activate()
            except BaseException:
                self.server_close()
                raise


class ThreadingTCPServer(ThreadingMixIn, TCPServer):
    """A thread per connection; every thread blocked in a call drives our TCP itself."""


class ForkingTCPServer(ForkingMixIn, TCPServer):
    """Refused when constructed: see `_FORK_REFUSED`."""
