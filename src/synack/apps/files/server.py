"""The file server: serves one directory tree to many clients at once.

Every path a client names is checked before anything is opened: it must be a
relative wire path (`protocol.split_path`), and once every symlink in it is
resolved it must still lie inside the served root. Only regular files are
sent; devices, FIFOs and sockets are refused (reading one could block or
have side effects). Uploads are off unless the server was started with them.

Threat model: remote clients are untrusted. Local users who can create
symlinks inside the served root while it is being served can race the check
between resolving a path and opening it; the final component is opened with
``O_NOFOLLOW`` and re-checked by ``fstat``, which narrows but does not close
that window for intermediate directories.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from synack import __version__
from synack import transport as seam
from synack.apps.common import listen_error
from synack.errors import UserError, os_reason
from synack.wire.frame import MAGIC, PROTOCOL_VERSION

from .channel import Channel
from .hashing import DigestCache
from .pacing import Pacer
from .protocol import (
    APP,
    CHUNK,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_PORT,
    LISTING_BATCH_BYTES,
    PART_SUFFIX,
    ConnectionClosed,
    Entry,
    ErrorCode,
    FilesError,
    Kind,
    Op,
    ProtocolError,
    count_field,
    digest_field,
    flag_field,
    from_os_error,
    printable,
    split_path,
    trailer_timeout,
)
from .receiver import Receiver
from .source import FileShrank, Source

Log = Callable[[str], None]


class _Abort(Exception):
    """The connection can no longer be framed correctly; drop it."""


class ServedRoot:
    """The served directory, and the only way a wire path becomes a local one."""

    def __init__(self, root: str) -> None:
        self.path = os.path.realpath(root)

    def locate(self, wire: object) -> tuple[str, str]:
        """(local path with every symlink resolved, checked wire path) for `wire`, or `FilesError`."""
        parts = split_path(wire)
        checked = "/".join(parts)
        joined = os.path.join(self.path, *parts)
        try:
            real = os.path.realpath(joined, strict=False)
        except OSError as exc:
            raise from_os_error(exc, checked or ".") from None
        if not self.contains(real):
            raise FilesError(
                ErrorCode.OUTSIDE_ROOT, f"{checked}: leads outside the served directory"
            )
        return real, checked

    def contains(self, real: str) -> bool:
        return real == self.path or real.startswith(self.path.rstrip(os.sep) + os.sep)

    def entry(self, local: str, wire: str) -> Entry:
        """Describe `local` (a path inside the root, symlinks not yet resolved) as `wire`."""
        try:
            st = os.stat(local)
        except OSError:  # a broken symlink, or gone meanwhile
            try:
                return Entry(wire, Kind.OTHER, 0, os.lstat(local).st_mtime_ns)
            except OSError:
                return Entry(wire, Kind.OTHER, 0, 0)
        if os.path.islink(local) and not self.contains(os.path.realpath(local)):
            return Entry(wire, Kind.OTHER, 0, os.lstat(local).st_mtime_ns)  # nothing of the target
        return Entry(wire, _kind(st.st_mode), st.st_size, st.st_mtime_ns)


def _kind(mode: int) -> Kind:
    if stat.S_ISREG(mode):
        return Kind.FILE
    if stat.S_ISDIR(mode):
        return Kind.DIR
    return Kind.OTHER


def _stat(local: str, shown: str) -> os.stat_result:
    try:
        return os.stat(local)
    except OSError as exc:
        raise from_os_error(exc, shown) from None


def _is_partial(name: str) -> bool:
    return name.startswith(".") and name.endswith(PART_SUFFIX)


def _scan(root: ServedRoot, local: str, wire: str) -> list[tuple[Entry, str]]:
    """One directory's entries (and their local paths), sorted by name; runs in a thread."""
    try:
        with os.scandir(local) as it:
            names = sorted(e.name for e in it if not _is_partial(e.name))
    except OSError as exc:
        raise from_os_error(exc, wire or ".") from None
    out = []
    for name in names:
        child_local = os.path.join(local, name)
        child_wire = f"{wire}/{name}" if wire else name
        out.append((root.entry(child_local, child_wire), child_local))
    return out


class FileServer:
    """Serves the directory `root` over the files protocol.

    >>> server = FileServer("/srv/share", port=0)
    >>> await server.start()          # raises UserError: bad directory, port in use...
    >>> host, port = server.address
    >>> await server.close()

    `allow_upload` enables ``put`` and ``mkdir``; `max_rate` caps each
    transfer's bytes per second; `log` receives one line per event. `host` may be
    ``unix:PATH`` (a Unix socket made with `unix_mode`, removed by `close`); with
    `tls` the listener speaks only TLS (`synack.transport.ServerTLS`).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        allow_upload: bool = False,
        max_rate: int | None = None,
        fsync: bool = False,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        transport: str = seam.DEFAULT_TRANSPORT,
        tls: seam.ServerTLS | None = None,
        unix_mode: int = seam.UNIX_MODE,
        log: Log | None = None,
    ) -> None:
        self.root_arg = os.fspath(root)
        self.host = host
        self.port = port
        self.allow_upload = allow_upload
        self.max_rate = max_rate
        self.fsync = fsync
        self.idle_timeout = idle_timeout
        self.transport = transport
        self.tls = tls
        self.unix_mode = unix_mode
        self.digests = DigestCache()
        self._sink = log
        self._root: ServedRoot | None = None
        self._server: seam.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._handlers: dict[str, Callable[[Channel, dict[str, Any]], Awaitable[str]]] = {
            Op.STAT: self._on_stat,
            Op.LIST: self._on_list,
            Op.GET: self._on_get,
            Op.PUT: self._on_put,
            Op.MKDIR: self._on_mkdir,
        }

    def _log(self, line: str) -> None:
        if self._sink is not None:
            self._sink(printable(line))  # paths and ops come from clients: no raw escapes

    @property
    def root(self) -> str:
        """The served directory, symlinks resolved."""
        assert self._root is not None, "start() first"
        return self._root.path

    @property
    def address(self) -> tuple[str, int]:
        assert self._server is not None, "start() first"
        return self._server.addresses[0]

    async def start(self) -> None:
        self._root = _check_root(self.root_arg)
        try:
            self._server = await seam.start_server(
                self._serve,
                self.host,
                self.port,
                transport=self.transport,
                tls=self.tls,
                on_tls_failure=self._tls_failed,
                unix_mode=self.unix_mode,
            )
        except OSError as exc:
            raise listen_error(exc, self.host, self.port) from None

    def _tls_failed(self, peer: str, reason: str) -> None:
        self._log(f"{peer} TLS handshake failed: {reason}")

    async def serve_forever(self) -> None:
        """Run until cancelled."""
        await asyncio.Event().wait()

    async def close(self) -> None:
        """Stop listening and drop every connection (partial uploads stay resumable)."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)

    async def __aenter__(self) -> FileServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- one connection -------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        peer = seam.peer_name(writer)
        channel = Channel(
            reader, writer, timeout=self.idle_timeout, peer=peer, transport=self.transport
        )
        seam.set_nodelay(writer, transport=self.transport)
        self._log(f"{peer} connected")
        reason = "disconnected"
        try:
            if await self._handshake(channel):
                await self._requests(channel)
        except ProtocolError as exc:
            reason = f"dropped: {exc}"
            with contextlib.suppress(ConnectionClosed, OSError):  # best effort, as §1.2 says
                await channel.send_error(FilesError(ErrorCode.BAD_REQUEST, str(exc)))
        except ConnectionClosed as exc:
            reason = f"dropped: {exc}"
        except _Abort as exc:
            reason = f"dropped: {exc}"
            channel.abort()
        except asyncio.CancelledError:
            reason = "dropped: server shutting down"
            channel.abort()
        finally:
            self._connections.discard(task)
            await channel.close()
            self._log(f"{peer} {reason}")

    async def _handshake(self, channel: Channel) -> bool:
        try:
            async with asyncio.timeout(self.idle_timeout):
                magic = await channel.reader.readexactly(len(MAGIC))
        except (asyncio.IncompleteReadError, TimeoutError, OSError):
            return False
        if magic != MAGIC:
            raise ProtocolError("not a synack client (no preamble)")
        try:
            hello = await channel.request()
        except FilesError as exc:
            await channel.send_error(exc)
            return False
        if hello is None:
            return False
        if (
            hello.get("op") != Op.HELLO
            or hello.get("app") != APP
            or hello.get("version") != PROTOCOL_VERSION
        ):
            await channel.send_error(
                FilesError(
                    ErrorCode.VERSION,
                    f"this server speaks {APP!r} version {PROTOCOL_VERSION}; "
                    f"got app {hello.get('app')!r} version {hello.get('version')!r}",
                )
            )
            return False
        await channel.send(
            {
                "op": Op.WELCOME,
                "version": PROTOCOL_VERSION,
                "server": f"synack {__version__}",
                "upload": self.allow_upload,
            }
        )
        return True

    async def _requests(self, channel: Channel) -> None:
        while True:
            try:
                request = await channel.request()
            except FilesError as exc:  # a BLOB where a request belongs: framing is lost
                # Said, then hung up with a FIN: an abort could reset the connection before
                # the reply is read (it does on synack's TCP; the kernel's happens to send it).
                raise ProtocolError(exc.message) from None
            if request is None:
                return
            op = request.get("op")
            handler = self._handlers.get(op) if isinstance(op, str) else None
            try:
                if handler is None:
                    raise FilesError(ErrorCode.BAD_REQUEST, f"unknown operation {op!r}")
                done = await handler(channel, request)
                self._log(f"{channel.peer} {done}")
            except FilesError as exc:
                self._log(f"{channel.peer} {op} refused: {exc.message}")
                await channel.send_error(exc)

    # -- requests -------------------------------------------------------

    @property
    def _served(self) -> ServedRoot:
        assert self._root is not None
        return self._root

    async def _on_stat(self, channel: Channel, request: dict[str, Any]) -> str:
        local, wire = self._served.locate(request.get("path"))
        shown = wire or "."
        _stat(local, shown)
        entry = self._served.entry(local, wire)
        await channel.send({"op": Op.STAT, "entry": entry.to_wire()})
        return f"stat {shown}"

    async def _on_list(self, channel: Channel, request: dict[str, Any]) -> str:
        recursive = flag_field(request, "recursive")
        local, wire = self._served.locate(request.get("path"))
        shown = wire or "."
        st = _stat(local, shown)
        if not stat.S_ISDIR(st.st_mode):
            entries = [self._served.entry(local, wire)]
            await channel.send({"op": Op.ENTRIES, "entries": [e.to_wire() for e in entries]})
            await channel.send({"op": Op.END, "count": 1})
            return f"list {shown}"
        count = 0
        batch: list[dict[str, Any]] = []
        size = 0
        async for entry in self._walk(local, wire, st, recursive):
            item = entry.to_wire()
            batch.append(item)
            size += len(entry.path.encode()) + 64
            count += 1
            if size >= LISTING_BATCH_BYTES:
                await channel.send({"op": Op.ENTRIES, "entries": batch})
                batch, size = [], 0
        if batch:
            await channel.send({"op": Op.ENTRIES, "entries": batch})
        await channel.send({"op": Op.END, "count": count})
        return f"list {shown} ({count} entries)"

    async def _walk(
        self, local: str, wire: str, st: os.stat_result, recursive: bool
    ) -> AsyncIterator[Entry]:
        """Entries under a directory, parents before children; each directory once (no symlink loops)."""
        loop = asyncio.get_running_loop()
        seen = {(st.st_dev, st.st_ino)}
        stack = [(local, wire)]
        while stack:
            here_local, here_wire = stack.pop()
            scanned = await loop.run_in_executor(None, _scan, self._served, here_local, here_wire)
            below = []
            for entry, child_local in scanned:
                yield entry
                if recursive and entry.kind is Kind.DIR:
                    try:
                        child = os.stat(child_local)
                    except OSError:
                        continue
                    if (child.st_dev, child.st_ino) not in seen:
                        seen.add((child.st_dev, child.st_ino))
                        below.append((child_local, entry.path))
            stack.extend(reversed(below))

    async def _on_get(self, channel: Channel, request: dict[str, Any]) -> str:
        local, wire = self._served.locate(request.get("path"))
        shown = wire or "."
        offset = count_field(request, "offset") if "offset" in request else 0
        st = _stat(local, shown)
        if stat.S_ISDIR(st.st_mode):
            raise FilesError(
                ErrorCode.IS_DIR, f"{shown}: is a directory (list it, then get each file)"
            )
        if not stat.S_ISREG(st.st_mode):
            raise FilesError(ErrorCode.NOT_REGULAR, f"{shown}: not a regular file")
        source = Source.open(local, shown, expect=st)
        try:
            if offset > source.size:
                raise FilesError(
                    ErrorCode.BAD_OFFSET,
                    f"{shown}: offset {offset} is beyond the end of the file ({source.size} bytes)",
                )
            await channel.send(
                {
                    "op": Op.FILE,
                    "path": wire,
                    "size": source.size,
                    "mtime_ns": source.st.st_mtime_ns,
                    "offset": offset,
                }
            )
            cached = self.digests.known(source.st)
            digest = source.digest(self.digests)
            try:
                await source.send(channel, offset, pacer=Pacer(self.max_rate))
            except FileShrank as exc:
                raise _Abort(str(exc)) from None
            except BaseException:
                digest.cancel()
                raise
            try:
                sha256 = await digest
            except EOFError:
                raise FilesError(ErrorCode.CHANGED, f"{shown}: changed while being sent") from None
            except OSError as exc:
                raise from_os_error(exc, shown) from None
            if source.changed():
                raise FilesError(ErrorCode.CHANGED, f"{shown}: changed while being sent; try again")
            await channel.send({"op": Op.SENT, "sha256": sha256})
        finally:
            source.close()
        how = "hash cached" if cached else "hashed"
        return f"get {shown} ({source.size - offset} bytes from {offset}, {how})"

    def _upload_target(self, request: dict[str, Any]) -> tuple[str, str]:
        """(local destination path, wire path) for put/mkdir; the parent must be a directory."""
        if not self.allow_upload:
            raise FilesError(ErrorCode.READ_ONLY, "uploads are not allowed on this server")
        parts = split_path(request.get("path"))
        if not parts:
            raise FilesError(ErrorCode.BAD_PATH, "the served directory itself cannot be replaced")
        if _is_partial(parts[-1]):
            raise FilesError(
                ErrorCode.BAD_PATH, f"{parts[-1]}: names ending in {PART_SUFFIX} are reserved"
            )
        parent_local, parent_wire = self._served.locate("/".join(parts[:-1]))
        parent_shown = parent_wire or "."
        st = _stat(parent_local, parent_shown)
        if not stat.S_ISDIR(st.st_mode):
            raise FilesError(ErrorCode.NOT_DIR, f"{parent_shown}: not a directory")
        return os.path.join(parent_local, parts[-1]), "/".join(parts)

    async def _on_put(self, channel: Channel, request: dict[str, Any]) -> str:
        final, shown = self._upload_target(request)
        size = count_field(request, "size")
        receiver = Receiver(
            final,
            size,
            shown=shown,
            force=flag_field(request, "force"),
            resume=flag_field(request, "resume"),
            fsync=self.fsync,
        )
        try:
            offset = receiver.open()
            await channel.send({"op": Op.READY, "offset": offset})
            await channel.expect_blob(size - offset)
            try:
                await receiver.receive(
                    channel.reader,
                    transport=channel.transport,
                    timeout=self.idle_timeout,
                    pacer=Pacer(self.max_rate),
                    peer=channel.peer,
                )
            except FilesError:  # the disk failed us mid-body: skip the rest, then say why
                await _skip_body(channel, receiver.remaining)
                await channel.expect(Op.SENT)
                raise
            sent = await channel.expect(Op.SENT, trailer_timeout(channel.timeout, size))
            stored = await receiver.finish(digest_field(sent))
        finally:
            await receiver.aclose()
        await channel.send({"op": Op.STORED, "path": shown, "size": size, "new": stored})
        what = "stored" if stored else "already identical"
        return f"put {shown} ({size - offset} bytes from {offset}, {what})"

    async def _on_mkdir(self, channel: Channel, request: dict[str, Any]) -> str:
        target, shown = self._upload_target(request)
        try:
            os.mkdir(target)
            made = True
        except FileExistsError:
            local, _ = self._served.locate(shown)
            if not os.path.isdir(local):
                raise FilesError(
                    ErrorCode.NOT_DIR, f"{shown}: exists and is not a directory"
                ) from None
            made = False
        except OSError as exc:
            raise from_os_error(exc, shown) from None
        await channel.send({"op": Op.MADE, "path": shown, "new": made})
        return f"mkdir {shown}"


async def _skip_body(channel: Channel, count: int) -> None:
    """Read and drop the `count` body bytes still to come. A read may return fewer bytes
    than asked for (whatever has arrived, as ``recv_into``); only 0 is the end."""
    buf = memoryview(bytearray(min(count, CHUNK) or 1))
    with seam.bulk_reader(channel.reader, transport=channel.transport) as bulk:
        while count:
            want = min(count, len(buf))
            try:
                async with asyncio.timeout(channel.timeout):
                    n = await bulk.readinto(buf[:want])
            except (TimeoutError, OSError):
                raise ConnectionClosed(f"{channel.peer} stopped sending") from None
            if n == 0:
                raise ConnectionClosed(f"{channel.peer} closed the connection")
            count -= n


def _check_root(root: str) -> ServedRoot:
    """The served directory must exist, be a directory and be readable: one clear line if not."""
    try:
        st = os.stat(root)
    except FileNotFoundError:
        raise UserError(f"cannot serve {root}: no such directory") from None
    except OSError as exc:
        raise UserError(f"cannot serve {root}: {os_reason(exc)}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise UserError(f"cannot serve {root}: not a directory")
    try:
        with os.scandir(root):
            pass
    except OSError as exc:
        raise UserError(f"cannot serve {root}: {os_reason(exc)}") from None
    return ServedRoot(root)
