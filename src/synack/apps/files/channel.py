"""Frames over one stream, with a deadline on every wait.

MESSAGE frames are read whole (they are small); a BLOB's header is read here
and its body is left in the stream for the caller to stream through
(`synack.transport.bulk_reader` on the way in, `sendfile` on the way out).
"""

from __future__ import annotations

import asyncio
import errno
from typing import IO, Any

from synack import transport as seam
from synack.wire.frame import (
    DEFAULT_MAX_MESSAGE,
    HEADER,
    HEADER_SIZE,
    BlobStart,
    FrameDecoder,
    FrameError,
    Message,
    encode_blob_header,
    encode_message,
)

from .protocol import (
    SLOWEST_LINK_RATE,
    ConnectionClosed,
    ErrorCode,
    FilesError,
    Op,
    ProtocolError,
    RemoteError,
)


class Channel:
    """One side of a files connection: send and receive frames, never more than asked."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        timeout: float | None,
        peer: str,
        transport: str = seam.DEFAULT_TRANSPORT,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.timeout = timeout
        self.peer = peer
        self.transport = transport  # the name the streams came from: its fast paths apply

    async def send(self, body: dict[str, Any]) -> None:
        self.writer.write(encode_message(body))
        await self._drain()

    async def send_error(self, exc: FilesError) -> None:
        await self.send({"op": Op.ERROR, "code": exc.code.value, "message": exc.message})

    def send_blob_header(self, count: int) -> None:
        """Start a `count`-byte BLOB; exactly `count` body bytes must follow (`send_body`)."""
        self.writer.write(encode_blob_header(count))

    async def send_body(self, file: IO[bytes], offset: int, count: int) -> int:
        """`count` bytes of `file` from `offset` by sendfile; fewer only if the file shrank.

        A slow link is not a dead one: the call may take the timeout plus the
        time to move `count` bytes at `SLOWEST_LINK_RATE`.
        """
        if count == 0:
            return 0
        allowed = None if self.timeout is None else self.timeout + count / SLOWEST_LINK_RATE
        try:
            async with asyncio.timeout(allowed):
                return await seam.sendfile(
                    self.writer, file, offset, count, transport=self.transport
                )
        except TimeoutError:
            raise ConnectionClosed(f"{self.peer} stopped reading for {allowed:g} s") from None
        except OSError as exc:
            if exc.errno is not None and exc.filename is None and _is_socket_errno(exc.errno):
                raise ConnectionClosed(f"connection to {self.peer} lost: {exc.strerror}") from None
            raise

    async def receive(self, timeout: float | None = None) -> Message | BlobStart | None:
        """The next frame's start: a whole MESSAGE, or a BLOB's size. None at a clean end of stream.

        `timeout` overrides the channel's for the wait before the first byte.
        """
        decoder = FrameDecoder(max_message=DEFAULT_MAX_MESSAGE)
        header = await self._read(HEADER_SIZE, at_boundary=True, timeout=timeout)
        if header is None:
            return None
        try:
            decoder.feed(header)
            event = decoder.next_event()
            if event is None:  # a MESSAGE whose length passed the limit check
                _, length = HEADER.unpack(header)
                body = await self._read(length, at_boundary=False)
                assert body is not None
                decoder.feed(body)
                event = decoder.next_event()
        except FrameError as exc:
            raise ProtocolError(f"{self.peer} broke the framing: {exc}") from None
        if not isinstance(event, Message | BlobStart):
            raise ProtocolError(f"{self.peer} broke the framing")  # pragma: no cover
        return event

    async def request(self) -> dict[str, Any] | None:
        """The next MESSAGE from a client, or None once it has closed the connection."""
        event = await self.receive()
        if event is None:
            return None
        if isinstance(event, BlobStart):
            raise FilesError(ErrorCode.BAD_REQUEST, "a file body was sent when none was expected")
        return event.body

    async def expect(self, op: Op, timeout: float | None = None) -> dict[str, Any]:
        """The next MESSAGE, which must be `op`; an ``error`` reply becomes `RemoteError`."""
        event = await self.receive(timeout)
        if event is None:
            raise ConnectionClosed(f"{self.peer} closed the connection")
        if isinstance(event, BlobStart):
            raise ProtocolError(f"{self.peer} sent a file body where {op.value!r} was expected")
        body = event.body
        if body.get("op") == Op.ERROR:
            raise remote_error(body)
        if body.get("op") != op:
            raise ProtocolError(
                f"{self.peer} answered {body.get('op')!r} where {op.value!r} was expected"
            )
        return body

    async def expect_blob(self, size: int) -> None:
        """The header of a BLOB that must be exactly `size` bytes long."""
        event = await self.receive()
        if event is None:
            raise ConnectionClosed(f"{self.peer} closed the connection")
        if isinstance(event, Message):
            if event.body.get("op") == Op.ERROR:
                raise remote_error(event.body)
            raise ProtocolError(
                f"{self.peer} sent {event.body.get('op')!r} where a file body was due"
            )
        if event.size != size:
            raise ProtocolError(f"{self.peer} announced {event.size} bytes where {size} were due")

    async def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()
        try:
            async with asyncio.timeout(2):
                await self.writer.wait_closed()
        except (OSError, TimeoutError):
            pass

    def abort(self) -> None:
        """Drop the connection at once (the stream position is lost, or the peer misbehaved)."""
        self.writer.transport.abort()

    async def _read(
        self, n: int, *, at_boundary: bool, timeout: float | None = None
    ) -> bytes | None:
        wait = timeout if timeout is not None else self.timeout
        try:
            async with asyncio.timeout(wait):
                return await self.reader.readexactly(n)
        except asyncio.IncompleteReadError as exc:
            if at_boundary and not exc.partial:
                return None
            raise ConnectionClosed(
                f"{self.peer} closed the connection in the middle of a frame"
            ) from None
        except TimeoutError:
            raise ConnectionClosed(f"{self.peer} sent nothing for {wait:g} s") from None
        except OSError as exc:
            raise ConnectionClosed(
                f"connection to {self.peer} lost: {exc.strerror or exc}"
            ) from None

    async def _drain(self) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                await self.writer.drain()
        except TimeoutError:
            raise ConnectionClosed(f"{self.peer} stopped reading for {self.timeout:g} s") from None
        except OSError as exc:
            raise ConnectionClosed(
                f"connection to {self.peer} lost: {exc.strerror or exc}"
            ) from None


def _is_socket_errno(number: int) -> bool:
    return number in _SOCKET_ERRNOS


_SOCKET_ERRNOS = frozenset(
    {errno.EPIPE, errno.ECONNRESET, errno.ECONNABORTED, errno.ENOTCONN, errno.ESHUTDOWN}
)


def remote_error(body: dict[str, Any]) -> RemoteError:
    code, message = body.get("code"), body.get("message")
    try:
        typed = ErrorCode(code) if isinstance(code, str) else ErrorCode.IO
    except ValueError:
        typed = ErrorCode.IO
    text = message if isinstance(message, str) and message else f"error {code!r}"
    return RemoteError(typed, text)
