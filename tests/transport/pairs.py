"""Helpers for the transport tests: both ends of one connection in the test's hands,
and a writer pushed until its peer's refusal to read holds it back."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

from synack.transport import STREAM_LIMIT, Server, Transport

HOST = "127.0.0.1"
T = 5.0  # the bound on every wait for something that must happen
PENDING = 0.25  # how long a wait must stay unfinished to count as blocked
CHUNK = 1 << 20


@dataclass
class End:
    """One side of a connection."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


@dataclass
class Pair:
    server: Server
    client: End
    accepted: End


@contextlib.asynccontextmanager
async def connected(transport: Transport, *, limit: int = STREAM_LIMIT) -> AsyncIterator[Pair]:
    """A listening server and one connection to it, with both ends handed to the test."""
    accepted: asyncio.Queue[End] = asyncio.Queue()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.put_nowait(End(reader, writer))

    async with await transport.start_server(handler, HOST, 0, limit=limit) as server:
        host, port = server.addresses[0]
        async with asyncio.timeout(T):
            reader, writer = await transport.open_connection(host, port, limit=limit)
            client = End(reader, writer)
            pair = Pair(server, client, await accepted.get())
        try:
            yield pair
        finally:
            for end in (pair.client, pair.accepted):
                if not end.writer.transport.is_closing():
                    end.writer.transport.abort()


def random_bytes(n: int) -> bytes:
    return os.urandom(n)


async def read_hashed(reader: asyncio.StreamReader, count: int) -> bytes:
    """SHA-256 of exactly `count` bytes read from `reader`."""
    sha = hashlib.sha256()
    while count:
        data = await reader.read(min(count, CHUNK))
        if not data:
            raise AssertionError(f"end of stream with {count} bytes still due")
        sha.update(data)
        count -= len(data)
    return sha.digest()


@dataclass
class Blocked:
    """A writer whose `drain` is held back: the pending drain, and what was written."""

    drain: asyncio.Future[None]
    written: int
    sha: hashlib._Hash


async def write_until_blocked(writer: asyncio.StreamWriter, cap: int = 256 << 20) -> Blocked:
    """Write random megabytes until `drain` stays unfinished (the peer does not read).

    Bounded by `cap` bytes: a peer that absorbs that much is not applying backpressure.
    """
    sha = hashlib.sha256()
    written = 0
    while written < cap:
        chunk = random_bytes(CHUNK)
        writer.write(chunk)
        sha.update(chunk)
        written += len(chunk)
        drain = asyncio.ensure_future(writer.drain())
        done, _ = await asyncio.wait({drain}, timeout=PENDING)
        if not done:
            return Blocked(drain, written, sha)
        drain.result()
    raise AssertionError(f"drain never blocked in {cap} bytes")
