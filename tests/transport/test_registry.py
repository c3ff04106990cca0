"""Transports by name: the registry, and the seam's functions handing calls to the named one."""

from __future__ import annotations

import asyncio
import io
from typing import IO, Any

import pytest

from bounded import run
from synack import transport as seam
from synack.transport import (
    STREAM_LIMIT,
    BulkReader,
    ClientHandler,
    OsTransport,
    Registry,
    Server,
    StreamBulkReader,
    Transport,
)


class Spy(Transport):
    """Records each call; opens nothing."""

    name = "spy"

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    async def open_connection(
        self, host: str, port: int, *, limit: int = STREAM_LIMIT
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        self.calls.append(("open_connection", (host, port), {"limit": limit}))
        raise ConnectionRefusedError("spy")

    async def start_server(
        self,
        handler: ClientHandler,
        host: str,
        port: int,
        *,
        backlog: int = 128,
        limit: int = STREAM_LIMIT,
    ) -> Server:
        self.calls.append(("start_server", (handler, host, port), {"backlog": backlog}))
        raise OSError("spy")

    def bulk_reader(self, reader: asyncio.StreamReader) -> BulkReader:
        self.calls.append(("bulk_reader", (reader,), {}))
        return super().bulk_reader(reader)

    async def sendfile(
        self, writer: asyncio.StreamWriter, file: IO[bytes], offset: int, count: int
    ) -> int:
        self.calls.append(("sendfile", (writer, file, offset, count), {}))
        return 0

    def set_nodelay(self, writer: asyncio.StreamWriter) -> None:
        self.calls.append(("set_nodelay", (writer,), {}))


def test_an_unknown_name_is_a_clear_error_listing_the_choices() -> None:
    with pytest.raises(ValueError, match=r"^unknown transport 'nope' \(choose from os"):
        seam.get("nope")


def test_a_name_is_taken_only_once() -> None:
    before = seam.names()
    with pytest.raises(ValueError, match="'os' is already registered"):
        seam.register(OsTransport())
    assert seam.names() == before
    assert isinstance(seam.get("os"), OsTransport)


def test_a_registry_keeps_transports_in_order_and_checks_them() -> None:
    registry = Registry()
    assert registry.names() == ()
    with pytest.raises(ValueError, match=r"\(choose from nothing\)"):
        registry.get("os")
    spy, os_ = Spy(), OsTransport()
    assert registry.register(spy) is spy
    registry.register(os_)
    assert registry.names() == ("spy", "os")
    assert registry.get("spy") is spy and registry.get("os") is os_
    with pytest.raises(TypeError):
        registry.register(object())  # type: ignore[arg-type]

    class Nameless(Spy):
        name = ""

    with pytest.raises(ValueError, match="has no name"):
        registry.register(Nameless())


def test_the_cli_offers_every_registered_name() -> None:
    import argparse

    from synack.apps.common import add_transport_argument

    parser = argparse.ArgumentParser()
    add_transport_argument(parser)
    assert parser.parse_args([]).transport == seam.DEFAULT_TRANSPORT
    for name in seam.names():
        assert parser.parse_args(["--transport", name]).transport == name


@run
async def test_the_seams_functions_go_to_the_named_transport(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry = Registry()
    spy = Spy()
    registry.register(spy)
    monkeypatch.setattr(seam, "get", registry.get)
    reader = asyncio.StreamReader()
    writer: Any = object()  # the spy never touches it
    file = io.BytesIO(b"x")

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        pass

    with pytest.raises(ConnectionRefusedError):
        await seam.open_connection("127.0.0.1", 9, transport="spy", limit=77)
    with pytest.raises(OSError, match="spy"):
        await seam.start_server(handler, "127.0.0.1", 0, transport="spy", backlog=5)
    bulk = seam.bulk_reader(reader, transport="spy")
    assert await seam.sendfile(writer, file, 3, 4, transport="spy") == 0
    seam.set_nodelay(writer, transport="spy")
    assert spy.calls == [
        ("open_connection", ("127.0.0.1", 9), {"limit": 77}),
        ("start_server", (handler, "127.0.0.1", 0), {"backlog": 5}),
        ("bulk_reader", (reader,), {}),
        ("sendfile", (writer, file, 3, 4), {}),
        ("set_nodelay", (writer,), {}),
    ]
    assert isinstance(bulk, StreamBulkReader)  # the default a transport inherits
    with pytest.raises(ValueError, match="unknown transport 'os'"):
        await seam.open_connection("127.0.0.1", 9)  # the default name, not in this registry
