"""File transfer: a server for one directory tree, and a client, both usable as a library.

    server = FileServer(root, port=0, allow_upload=True)
    await server.start()
    async with await FileClient.connect(*server.address) as client:
        await client.get("report.pdf", "downloads/")
    await server.close()

The protocol is docs/PROTOCOL.md §4.
"""

from .client import FileClient, Transferred
from .protocol import Entry, ErrorCode, FilesError, Kind, RemoteError
from .server import FileServer

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
