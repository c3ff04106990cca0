"""TLS on every transport: the whole stream, upgraded in place with ``loop.start_tls``.

A transport hands out clear streams; this module turns one into a TLS stream,
on either side, so TLS works on any transport whose asyncio transport
``loop.start_tls`` accepts (the kernel's TCP, and ours over UDP). There is no
negotiation: a TLS listener speaks TLS from the first byte, with no STARTTLS and
no fallback, and a peer that sends anything else is cut off.

The client verifies the server in one of three ways: the system's trusted CAs
and the host name (the default); a given CA file and the host name; or a pinned
SHA-256 fingerprint of the server's certificate (``SHA256:`` and 64 hex
digits, as `fingerprint` writes it), checked after the handshake and before the
caller can send a byte. A failed check is a `TLSVerificationError`, one line.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import ssl
import string
from collections.abc import Callable
from pathlib import Path

from synack.errors import UserError, os_reason

from .address import peer_name
from .base import STREAM_LIMIT, ClientHandler

PIN_PREFIX = "SHA256:"
# Seconds a server gives a client to finish its handshake (a silent or clear-text
# peer holds nothing longer than this).
HANDSHAKE_TIMEOUT = 10.0

_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
# OpenSSL's reasons when the first bytes are not a TLS record at all.
_NOT_TLS = {"WRONG_VERSION_NUMBER", "HTTP_REQUEST", "HTTPS_PROXY_REQUEST", "UNKNOWN_PROTOCOL"}

TLSFailure = Callable[[str, str], None]


class TLSError(UserError):
    """A TLS certificate that cannot be used, or a handshake that failed."""


class TLSVerificationError(TLSError):
    """The server's certificate failed the check the client asked for."""


def fingerprint(der: bytes) -> str:
    """``SHA256:<hex>`` of a DER certificate: what servers print and ``--tls-pin`` takes."""
    return PIN_PREFIX + hashlib.sha256(der).hexdigest()


def parse_pin(text: str) -> bytes:
    """The SHA-256 in a pin. Takes `fingerprint`'s form, and also OpenSSL's
    (``openssl x509 -noout -fingerprint -sha256``: upper case, colons); a ValueError says why not."""
    digits = text.strip()
    if digits.upper().startswith(PIN_PREFIX):
        digits = digits[len(PIN_PREFIX) :]
    digits = digits.replace(":", "")
    if len(digits) != 64 or not all(c in string.hexdigits for c in digits):
        raise ValueError(
            f"invalid certificate pin {text!r}: expected {PIN_PREFIX} and 64 hex digits, "
            "as the server prints at start"
        )
    return bytes.fromhex(digits)


def _no_password() -> bytes:
    # Without this, OpenSSL would prompt on the terminal for an encrypted key's passphrase.
    raise TLSError(
        "the private key is encrypted: give an unencrypted key (a server starts unattended)"
    )


def _first_certificate(path: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TLSError(f"cannot read the TLS certificate {path}: {os_reason(exc)}") from None
    match = _PEM_CERT.search(data)
    if match is None:
        raise TLSError(f"{path} holds no PEM certificate")
    return ssl.PEM_cert_to_DER_cert(match.group().decode("ascii", "replace"))


class ServerTLS:
    """A listener's TLS: its context, its certificate's fingerprint, the handshake deadline.

    (Plain classes, not dataclasses: building one costs every command 3 ms at start.)
    """

    __slots__ = ("context", "fingerprint", "handshake_timeout")

    def __init__(
        self,
        context: ssl.SSLContext,
        fingerprint: str,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
    ) -> None:
        self.context = context
        self.fingerprint = fingerprint
        self.handshake_timeout = handshake_timeout

    @classmethod
    def from_files(
        cls,
        certfile: str,
        keyfile: str | None = None,
        *,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
    ) -> ServerTLS:
        """Load a PEM certificate (chain) and its key; `keyfile` may be left out when the
        certificate file holds the key too. Raises `TLSError`."""
        der = _first_certificate(certfile)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(certfile, keyfile, password=_no_password)
        except OSError as exc:
            if isinstance(exc, ssl.SSLError):
                if exc.reason == "KEY_VALUES_MISMATCH":
                    reason = "the key does not match the certificate"
                else:
                    reason = f"no usable private key in {keyfile or certfile}"
            else:
                reason = f"{exc.filename or keyfile}: {os_reason(exc)}"
            raise TLSError(f"cannot use the TLS certificate {certfile}: {reason}") from None
        return cls(context, fingerprint(der), handshake_timeout)


class ClientTLS:
    """How a client verifies the server.

    `pin` (a SHA-256, see `parse_pin`) is checked after the handshake; `server_hostname`
    is the name to find in the certificate (default: the host connected to).
    """

    __slots__ = ("context", "handshake_timeout", "pin", "server_hostname")

    def __init__(
        self,
        context: ssl.SSLContext,
        pin: bytes | None = None,
        server_hostname: str | None = None,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
    ) -> None:
        self.context = context
        self.pin = pin
        self.server_hostname = server_hostname
        self.handshake_timeout = handshake_timeout

    @classmethod
    def create(
        cls, *, cafile: str | None = None, pin: bytes | None = None, check_hostname: bool = True
    ) -> ClientTLS:
        """The system's CAs, or only `cafile`'s; with a `pin` and no `cafile`, no CA is
        consulted: the pin is the whole check. Raises `TLSError` for an unreadable CA file."""
        if pin is not None and cafile is None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return cls(context, pin)
        try:
            context = ssl.create_default_context(cafile=cafile)
        except ssl.SSLError:
            raise TLSError(f"{cafile} holds no PEM certificate") from None
        except OSError as exc:
            raise TLSError(f"cannot read the CA file {cafile}: {os_reason(exc)}") from None
        context.check_hostname = check_hostname
        return cls(context, pin)


def _reason(exc: BaseException) -> str:
    """A handshake failure in a few words."""
    if isinstance(exc, ssl.SSLError):
        code = exc.reason or ""
        if code in _NOT_TLS:
            return f"the peer does not speak TLS ({code.lower().replace('_', ' ')})"
        if code:
            return code.lower().replace("_", " ")
        return str(exc.args[1] if len(exc.args) > 1 else exc)
    if isinstance(exc, ConnectionAbortedError) and "longer than" in str(exc):
        return "no handshake within the time allowed"
    if isinstance(exc, TimeoutError):
        return "no handshake within the time allowed"
    if isinstance(exc, ConnectionError | EOFError):
        return "the peer closed the connection during the handshake"
    if isinstance(exc, OSError):
        return os_reason(exc)
    return str(exc) or type(exc).__name__


# -- the upgrade ---------------------------------------------------------------------------


class TLSStreamWriter(asyncio.StreamWriter):
    """A StreamWriter over TLS that keeps the clear writer alive: a clear StreamWriter
    collected as garbage closes its transport, which now carries the TLS stream."""

    def __init__(
        self,
        transport: asyncio.WriteTransport,
        protocol: asyncio.StreamReaderProtocol,
        reader: asyncio.StreamReader,
        loop: asyncio.AbstractEventLoop,
        clear: asyncio.StreamWriter,
    ) -> None:
        super().__init__(transport, protocol, reader, loop)
        self.clear = clear


class _TLSStreamProtocol(asyncio.StreamReaderProtocol):
    """The TLS stream's protocol, which also holds the clear protocol it replaced.

    asyncio's StreamReaderProtocol holds its reader only weakly: what keeps a
    server's handler alive while it waits is the protocol the server made for the
    connection, which holds the handler's task, and which the transport holds.
    ``start_tls`` takes that protocol off the transport; held from here instead,
    it stays reachable for as long as the connection is, as without TLS. Else a
    handler waiting on a read is reachable from nothing, and a garbage collection
    destroys it mid-read ("Task was destroyed but it is pending!"), the
    connection's end unheard.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        clear: asyncio.BaseProtocol,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        super().__init__(reader, loop=loop)
        self.clear: asyncio.BaseProtocol | None = clear

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.clear = None  # as asyncio's lets go of the task: the handler has been woken


def _take_buffered(reader: asyncio.StreamReader) -> bytes:
    """What the clear StreamReader already holds (the peer's first TLS bytes, when they
    came before the upgrade), taken out. A private attribute, but one every CPython
    since 3.4 has (the os transport's bulk reader reads it too)."""
    buffer = getattr(reader, "_buffer", None)
    if not isinstance(buffer, bytearray) or not buffer:
        return b""
    data = bytes(buffer)
    buffer.clear()
    return data


def _feed(transport: asyncio.BaseTransport, before: asyncio.BaseProtocol, data: bytes) -> None:
    """Give the TLS protocol ``start_tls`` just put on `transport` the bytes read before it,
    ahead of everything the transport will deliver once it resumes reading."""
    protocol = transport.get_protocol()
    if protocol is before or not isinstance(protocol, asyncio.BufferedProtocol):
        return  # start_tls failed at once: awaiting it reports why
    view = memoryview(data)
    while view:
        buffer = memoryview(protocol.get_buffer(len(view)))
        n = min(len(buffer), len(view))
        buffer[:n] = view[:n]
        protocol.buffer_updated(n)
        view = view[n:]


async def upgrade(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    context: ssl.SSLContext,
    *,
    server_side: bool,
    server_hostname: str | None = None,
    handshake_timeout: float = HANDSHAKE_TIMEOUT,
    limit: int = STREAM_LIMIT,
    already_read: bytes = b"",
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Run the TLS handshake over a clear stream and return the TLS streams over it.

    `already_read`: bytes of the peer's handshake a caller read from the clear
    stream (sniffing it); they, then what the StreamReader holds, go first.
    Raises `ssl.SSLError` (a failed check included) or `OSError`; the clear
    stream is not to be used afterwards either way.
    """
    loop = asyncio.get_running_loop()
    transport = writer.transport
    assert isinstance(transport, asyncio.Transport), "a stream's transport reads and writes"
    if transport.is_closing() or reader.exception() is not None:
        # Lost already (a client that reset at once): asyncio's start_tls on a closed
        # transport would wait for ever, its handshake timeout closing nothing.
        raise ConnectionResetError("the connection closed before the TLS handshake")
    transport.pause_reading()
    early = already_read + _take_buffered(reader)
    if not early and reader.at_eof():
        raise ConnectionResetError("the connection closed before the TLS handshake")
    tls_reader = asyncio.StreamReader(limit=limit, loop=loop)
    before = transport.get_protocol()
    protocol = _TLSStreamProtocol(tls_reader, before, loop)
    starting = asyncio.ensure_future(
        loop.start_tls(
            transport,
            protocol,
            context,
            server_side=server_side,
            server_hostname=server_hostname,
            ssl_handshake_timeout=handshake_timeout,
        )
    )
    try:
        if early:
            # One turn of the loop runs start_tls up to its handshake: its TLS protocol is
            # on the transport, its connection_made (which reads the first record) still
            # queued, and reading paused, so bytes fed now come first.
            await asyncio.sleep(0)
            _feed(transport, before, early)
        # A bound of our own besides asyncio's handshake timeout, which cannot end a
        # handshake whose transport was lost as start_tls took it over.
        async with asyncio.timeout(handshake_timeout + 1.0):
            tls_transport = await starting
    except BaseException:
        starting.cancel()
        transport.abort()
        raise
    if tls_transport is None:  # only if the transport were not a stream
        raise ConnectionResetError("the connection closed during the TLS handshake")
    protocol.connection_made(tls_transport)
    return tls_reader, TLSStreamWriter(tls_transport, protocol, tls_reader, loop, writer)


def peer_certificate(writer: asyncio.StreamWriter) -> bytes | None:
    """The DER certificate the peer of a TLS stream presented."""
    ssl_object = writer.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der: bytes | None = ssl_object.getpeercert(binary_form=True)
    return der


async def connect(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    tls: ClientTLS,
    *,
    peer: str,
    hostname: str | None,
    limit: int = STREAM_LIMIT,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """The client's side: handshake, verification, the pin; `TLSError` if any fails.

    `peer` names the server in errors; `hostname` is the name its certificate must
    carry (None for a Unix socket: there the CA chain or the pin is the check).
    """
    name = tls.server_hostname or hostname
    if name is None and tls.context.check_hostname:
        writer.transport.abort()
        raise TLSError(
            f"TLS to {peer}: there is no host name to check the certificate against "
            "(pin the certificate, or verify only the CA chain)"
        )
    try:
        tls_reader, tls_writer = await upgrade(
            reader,
            writer,
            tls.context,
            server_side=False,
            server_hostname=name,
            handshake_timeout=tls.handshake_timeout,
            limit=limit,
        )
    except ssl.SSLCertVerificationError as exc:
        raise TLSVerificationError(
            f"TLS verification failed for {peer}: {exc.verify_message}"
        ) from None
    except (ssl.SSLError, OSError, EOFError) as exc:
        raise TLSError(f"TLS handshake with {peer} failed: {_reason(exc)}") from None
    if tls.pin is not None:
        der = peer_certificate(tls_writer)
        if der is None or hashlib.sha256(der).digest() != tls.pin:
            tls_writer.transport.abort()
            got = fingerprint(der) if der is not None else "none"
            raise TLSVerificationError(
                f"TLS verification failed for {peer}: certificate fingerprint {got} "
                f"does not match the pinned {PIN_PREFIX}{tls.pin.hex()}"
            )
    return tls_reader, tls_writer


def serving(
    handler: ClientHandler,
    tls: ServerTLS,
    *,
    limit: int = STREAM_LIMIT,
    on_failure: TLSFailure | None = None,
) -> ClientHandler:
    """`handler` behind a TLS handshake: it sees only connections whose handshake succeeded.
    A failed or late handshake closes the connection and is reported to `on_failure`
    as (peer, reason)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            tls_reader, tls_writer = await upgrade(
                reader,
                writer,
                tls.context,
                server_side=True,
                handshake_timeout=tls.handshake_timeout,
                limit=limit,
            )
        except (ssl.SSLError, OSError, EOFError) as exc:
            if on_failure is not None:
                on_failure(peer_name(writer), _reason(exc))
            return
        await handler(tls_reader, tls_writer)

    return handle
