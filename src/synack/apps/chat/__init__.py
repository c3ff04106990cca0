"""Chat over TCP (framed or plain text lines) and UDP: servers, clients, and the CLI.

The library API, for code that runs a chat in-process (e.g. `synack demo`)::

    from synack.apps.chat import ChatClient, ChatServer

    server = ChatServer("127.0.0.1", 0)
    host, port = await server.start()
    alice = ChatClient(host, port, "alice")
    await alice.connect()
    await alice.say("hello")
    event = await bob.until("msg")       # {"op": "msg", "from": "alice", ...}
    await alice.close()
    await server.close()

`UdpChatServer` and `UdpChatClient` offer the same calls over datagrams.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from synack.apps.chat.client import ChatClient, ChatRefused, ConnectionLost
    from synack.apps.chat.protocol import ChatError, ErrorCode
    from synack.apps.chat.server import ChatServer
    from synack.apps.chat.udp_client import UdpChatClient
    from synack.apps.chat.udp_server import UdpChatServer

# Each name is imported on first use (PEP 562): `synack chat join` need not load the
# servers, nor anything in this package pay for the parts it does not use.
_WHERE = {
    "ChatClient": "client",
    "ChatError": "protocol",
    "ChatRefused": "client",
    "ChatServer": "server",
    "ConnectionLost": "client",
    "ErrorCode": "protocol",
    "UdpChatClient": "udp_client",
    "UdpChatServer": "udp_server",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "ChatClient",
    "ChatError",
    "ChatRefused",
    "ChatServer",
    "ConnectionLost",
    "ErrorCode",
    "UdpChatClient",
    "UdpChatServer",
]
