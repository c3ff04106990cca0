"""File transfer: a server for one directory tree, and a client, both usable as a library.

    server = FileServer(root, port=0, allow_upload=True)
    await server.start()
    async with await FileClient.connect(*server.address) as client:
        await client.get("report.pdf", "downloads/")
    await server.close()

The protocol is docs/PROTOCOL.md §4.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import FileClient, Transferred
    from .protocol import Entry, ErrorCode, FilesError, Kind, RemoteError
    from .server import FileServer

# Each name is imported on first use (PEP 562), so `synack files get` never loads the
# server, nor `synack files serve` the client, just because they share this package.
_WHERE = {
    "Entry": "protocol",
    "ErrorCode": "protocol",
    "FileClient": "client",
    "FileServer": "server",
    "FilesError": "protocol",
    "Kind": "protocol",
    "RemoteError": "protocol",
    "Transferred": "client",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "Entry",
    "ErrorCode",
    "FileClient",
    "FileServer",
    "FilesError",
    "Kind",
    "RemoteError",
    "Transferred",
]
