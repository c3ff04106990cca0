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

from synack.apps.chat.client import ChatClient, ChatRefused, ConnectionLost
from synack.apps.chat.protocol import ChatError, ErrorCode
from synack.apps.chat.server import ChatServer
from synack.apps.chat.udp_client import UdpChatClient
from synack.apps.chat.udp_server import UdpChatServer

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
