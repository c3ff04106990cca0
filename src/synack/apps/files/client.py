"""The file client, as a small async library (the CLI is a thin layer over it).

    async with await FileClient.connect("127.0.0.1", 8041) as client:
        entries = await client.list("", recursive=True)
        await client.get("reports/2024.pdf", "downloads/")
        await client.put("notes/", "backup/notes", force=True)

Paths follow scp and cp: ``get REMOTE [LOCAL]`` puts REMOTE under LOCAL if
LOCAL is a directory, else at LOCAL, else in the current directory under its
own name; directories are copied recursively. Every file is checked with
SHA-256 end to end before it takes its real name. Nothing is overwritten
without ``force``; with ``resume``, an interrupted transfer continues where it
stopped and a destination that is already identical is left alone.
"""

from __future__ import annotations

import asyncio
import os
import stat
from dataclasses import dataclass, field, replace
from typing import Any

from synack import transport as seam
from synack.apps.common import connect_error
from synack.errors import UserError, os_reason
from synack.wire.frame import MAGIC, PROTOCOL_VERSION, Message

from .channel import Channel, remote_error
from .progress import NoProgress, ProgressSink
from .protocol import (
    APP,
    ConnectionClosed,
    Entry,
    ErrorCode,
    FilesError,
    Kind,
    Op,
    ProtocolError,
    RemoteError,
    basename,
    count_field,
    digest_field,
    join,
    normalize,
    printable,
    split_path,
    trailer_timeout,
)
from .receiver import Receiver, partial_message, partial_path
from .source import FileShrank, Source

DEFAULT_TIMEOUT = 60.0

# (local path, remote path, size) for each file to upload.
UploadPlan = list[tuple[str, str, int]]
# Remote directories to make, parents first (named here: `list` is a method below).
RemoteDirs = list[str]


@dataclass
class Transferred:
    """What one `get` or `put` did."""

    files: int = 0  # files received or sent and verified
    bytes: int = 0  # body bytes that crossed the network
    identical: int = 0  # files left alone: --resume found them already identical
    dirs: int = 0  # directories created
    skipped: list[str] = field(default_factory=list)  # entries not transferable, with why


class FileClient:
    """One connection to a file server; requests run one at a time."""

    def __init__(self, channel: Channel, welcome: dict[str, Any]) -> None:
        self._channel = channel
        self.server: str = str(welcome.get("server", "?"))
        self.upload_allowed: bool = bool(welcome.get("upload", False))
        self._broken = False
        # (partial file, bytes) left by downloads that failed or were interrupted on the
        # way; ``resume=True`` continues them. The CLI names them in its error.
        self.kept_partials: list[tuple[str, int]] = []
        # The remote path of an upload whose body had begun when it failed: the server
        # keeps the part it stored for ``put --resume``. The CLI names it.
        self.cut_upload: str | None = None

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        *,
        transport: str = seam.DEFAULT_TRANSPORT,
        tls: seam.ClientTLS | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> FileClient:
        """Connect and shake hands; a refused, unreachable or silent server is a `UserError`,
        and so is a failed TLS handshake or check (`synack.transport.TLSError`)."""
        where = seam.format_address(host, port)
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await seam.open_connection(
                    host, port, transport=transport, tls=tls
                )
        except TimeoutError:
            raise UserError(f"cannot connect to {where}: timed out") from None
        except OSError as exc:
            raise connect_error(exc, host, port) from None
        seam.set_nodelay(writer, transport=transport)
        channel = Channel(reader, writer, timeout=timeout, peer=where, transport=transport)
        try:
            writer.write(MAGIC)
            await channel.send({"op": Op.HELLO, "app": APP, "version": PROTOCOL_VERSION})
            welcome = await channel.expect(Op.WELCOME)
        except ConnectionClosed as exc:
            await channel.close()
            if tls is not None or "sent nothing" in str(exc):
                raise
            # A TLS-only server cuts off a clear-text hello at once: say what may be wrong.
            raise ConnectionClosed(
                f"{exc} (a TLS-only server does this to clear text: try --tls)"
            ) from None
        except BaseException:
            await channel.close()
            raise
        return cls(channel, welcome)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> FileClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- looking ----------------------------------------------------------

    async def stat(self, path: str) -> Entry:
        """What `path` on the server is (a file, a directory, or something not served)."""
        ch = self._ready()
        await ch.send({"op": Op.STAT, "path": normalize(path)})
        reply = await ch.expect(Op.STAT)
        return Entry.from_wire(reply.get("entry"))

    async def list(self, path: str = "", *, recursive: bool = False) -> list[Entry]:
        """The entries of directory `path` (all below it if `recursive`), or the file `path` itself."""
        ch = self._ready()
        wire = normalize(path)
        await ch.send({"op": Op.LIST, "path": wire, "recursive": recursive})
        entries: list[Entry] = []
        while True:
            event = await ch.receive()
            if event is None:
                raise ConnectionClosed(f"{ch.peer} closed the connection during a listing")
            if not isinstance(event, Message):
                raise ProtocolError(f"{ch.peer} sent a file body inside a listing")
            body = event.body
            op = body.get("op")
            if op == Op.ENTRIES and isinstance(body.get("entries"), list):
                entries.extend(Entry.from_wire(raw) for raw in body["entries"])
            elif op == Op.END:
                return entries
            elif op == Op.ERROR:
                raise remote_error(body)
            else:
                raise ProtocolError(f"{ch.peer} sent {op!r} inside a listing")

    # -- downloading --------------------------------------------------------

    async def get(
        self,
        remote: str,
        local: str | os.PathLike[str] | None = None,
        *,
        resume: bool = False,
        force: bool = False,
        fsync: bool = False,
        progress: ProgressSink | None = None,
    ) -> Transferred:
        """Download the file or directory `remote`; see the module docstring for where it lands."""
        progress = progress or NoProgress()
        wire = normalize(remote)
        local_arg = os.fspath(local) if local is not None else None
        top = await self.stat(wire)
        done = Transferred()
        if top.kind is Kind.FILE:
            # The user's own words name the file, never the server's echo of them.
            plan = [(replace(top, path=wire), _file_target(basename(wire), local_arg))]
            dirs: list[str] = []
        elif top.kind is Kind.DIR:
            base = _dir_target(basename(wire), local_arg)
            plan, dirs = [], [base]
            for entry in await self.list(wire, recursive=True):
                target = os.path.join(base, *_below(wire, entry.path))
                if entry.kind is Kind.DIR:
                    dirs.append(target)
                elif entry.kind is Kind.FILE:
                    plan.append((entry, target))
                else:
                    done.skipped.append(f"{entry.path}: not a regular file or directory")
        else:
            raise FilesError(
                ErrorCode.NOT_REGULAR, f"{wire or '.'}: not a regular file or directory"
            )
        _check_local_conflicts(plan, dirs, force=force, resume=resume)
        for path in dirs:
            try:
                os.mkdir(path)
                done.dirs += 1
            except FileExistsError:
                pass
            except OSError as exc:
                raise UserError(f"cannot create {path}: {os_reason(exc)}") from None
        progress.start(sum(e.size for e, _ in plan), len(plan))
        try:
            for entry, target in plan:
                progress.file(entry.path)
                await self._get_file(
                    entry,
                    target,
                    resume=resume,
                    force=force,
                    fsync=fsync,
                    progress=progress,
                    done=done,
                )
        finally:
            progress.stop()
        return done

    async def _get_file(
        self,
        entry: Entry,
        target: str,
        *,
        resume: bool,
        force: bool,
        fsync: bool,
        progress: ProgressSink,
        done: Transferred,
    ) -> None:
        ch = self._ready()
        receiver = Receiver(
            target, entry.size, shown=target, force=force, resume=resume, fsync=fsync
        )
        try:
            offset = receiver.open()
            progress.advance(offset)
            await ch.send({"op": Op.GET, "path": entry.path, "offset": offset})
            reply = await ch.expect(Op.FILE)
            size = _reply_count(reply, "size", ch.peer)
            if _reply_count(reply, "offset", ch.peer) != offset:
                raise ProtocolError(f"{ch.peer} answered for another offset than {offset}")
            if size != entry.size:
                raise FilesError(
                    ErrorCode.CHANGED,
                    f"{printable(entry.path)}: changed on the server since it was listed; try again",
                )
            await ch.expect_blob(size - offset)
            self._broken = True  # until the body and its trailer are through
            await receiver.receive(
                ch.reader,
                transport=ch.transport,
                timeout=ch.timeout,
                progress=progress,
                peer=ch.peer,
            )
            try:
                trailer = await ch.expect(Op.SENT, trailer_timeout(ch.timeout, size))
            except RemoteError:  # e.g. `changed`: the body was complete, the stream is in step
                self._broken = False
                raise
            self._broken = False
            published = await receiver.finish(_reply_digest(trailer, ch.peer))
        finally:
            await receiver.aclose()
            if kept := receiver.kept:
                self.kept_partials.append((receiver.partial, kept))
        done.bytes += size - offset
        if published:
            done.files += 1
        else:
            done.identical += 1

    # -- uploading ----------------------------------------------------------

    async def put(
        self,
        local: str | os.PathLike[str],
        remote: str | None = None,
        *,
        resume: bool = False,
        force: bool = False,
        progress: ProgressSink | None = None,
    ) -> Transferred:
        """Upload the file or directory `local`; REMOTE semantics mirror `get`."""
        progress = progress or NoProgress()
        local_path = os.fspath(local)
        try:
            st = os.stat(local_path)
        except OSError as exc:
            raise UserError(f"{local_path}: {os_reason(exc)}") from None
        wire = remote or ""
        name = os.path.basename(os.path.abspath(local_path))
        done = Transferred()
        if stat.S_ISREG(st.st_mode):
            target, dirs = await self._remote_target(wire, name, is_dir=False)
            plan = [(local_path, target, st.st_size)]
        elif stat.S_ISDIR(st.st_mode):
            base, dirs = await self._remote_target(wire, name, is_dir=True)
            plan = []
            dirs.append(base)
            for rel, kind, size in _walk_local(local_path, done.skipped):
                target = join(base, "/".join(rel))
                if kind is Kind.DIR:
                    dirs.append(target)
                else:
                    plan.append((os.path.join(local_path, *rel), target, size))
            await self._check_remote_conflicts(base, plan, force=force, resume=resume)
        else:
            raise UserError(f"{local_path}: not a regular file or directory")
        for path in dirs:
            ch = self._ready()
            await ch.send({"op": Op.MKDIR, "path": path})
            made = await ch.expect(Op.MADE)
            done.dirs += bool(made.get("new"))
        progress.start(sum(size for _, _, size in plan), len(plan))
        try:
            for path, target, _ in plan:
                progress.file(path)
                await self._put_file(
                    path, target, resume=resume, force=force, progress=progress, done=done
                )
        finally:
            progress.stop()
        return done

    async def _remote_target(
        self, remote: str, name: str, *, is_dir: bool
    ) -> tuple[str, RemoteDirs]:
        """Where a local file or directory called `name` goes when the user said `remote`,
        and the directories to make first (parents first).

        A `remote` ending in ``/`` names a directory: if it is missing, it is made,
        with any missing parents, as ``mkdir -p`` would (the server keeps each one
        inside the served root, as it does any upload).
        """
        wire = normalize(remote)
        if not wire:
            return name, []
        try:
            entry = await self.stat(wire)
        except RemoteError as exc:
            if exc.code is ErrorCode.NOT_FOUND:
                if remote.endswith("/"):
                    parts = wire.split("/")
                    return join(wire, name), ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
                return wire, []
            raise
        if entry.kind is Kind.DIR:
            return join(wire, name), []
        if is_dir or remote.endswith("/"):
            raise FilesError(
                ErrorCode.NOT_DIR, f"{wire}: exists on the server and is not a directory"
            )
        return wire, []

    async def _check_remote_conflicts(
        self, base: str, plan: UploadPlan, *, force: bool, resume: bool
    ) -> None:
        if force:
            return
        try:
            existing = {e.path: e for e in await self.list(base, recursive=True)}
        except RemoteError as exc:
            if exc.code is ErrorCode.NOT_FOUND:
                return
            raise
        clashes = [
            target
            for _, target, size in plan
            if target in existing
            and not (
                resume and existing[target].kind is Kind.FILE and existing[target].size == size
            )
        ]
        if clashes:
            raise FilesError(ErrorCode.EXISTS, _clash_message(clashes, "on the server"))

    async def _put_file(
        self,
        path: str,
        target: str,
        *,
        resume: bool,
        force: bool,
        progress: ProgressSink,
        done: Transferred,
    ) -> None:
        ch = self._ready()
        source = Source.open(path, path)
        digest: asyncio.Future[str] | None = None
        try:
            await ch.send(
                {
                    "op": Op.PUT,
                    "path": target,
                    "size": source.size,
                    "force": force,
                    "resume": resume,
                }
            )
            ready = await ch.expect(Op.READY)
            offset = _reply_count(ready, "offset", ch.peer)
            if offset > source.size:
                raise ProtocolError(f"{ch.peer} asked to resume past the end of {path}")
            progress.advance(offset)
            digest = source.digest()
            self._broken = True  # until the body and its trailer are through
            self.cut_upload = target  # until the server has stored it
            try:
                await source.send(ch, offset, progress=progress)
            except FileShrank as exc:
                ch.abort()  # a BLOB cannot be taken back: hanging up tells the server
                self.cut_upload = None  # nothing to continue from
                raise UserError(f"{exc}; nothing was stored") from None
            sha256 = await digest
            if source.changed():
                ch.abort()
                self.cut_upload = None
                raise UserError(f"{path}: changed while being sent; nothing was stored")
            await ch.send({"op": Op.SENT, "sha256": sha256})
            self._broken = False
            try:
                stored = await ch.expect(Op.STORED, trailer_timeout(ch.timeout, source.size))
            except RemoteError:
                self.cut_upload = None  # the server answered: refused, not cut off
                raise
            self.cut_upload = None
        finally:
            if digest is not None and not digest.done():
                digest.cancel()
            source.close()
        done.bytes += source.size - offset
        if stored.get("new", True):
            done.files += 1
        else:
            done.identical += 1

    def _ready(self) -> Channel:
        if self._broken:
            # A body was cut off half-way: the stream position is lost for good.
            raise ConnectionClosed("the connection was broken by an earlier failed transfer")
        return self._channel


def _reply_count(reply: dict[str, Any], name: str, peer: str) -> int:
    try:
        return count_field(reply, name)
    except FilesError:
        raise ProtocolError(f"{peer} sent a malformed {reply.get('op')!r} reply") from None


def _reply_digest(reply: dict[str, Any], peer: str) -> str:
    try:
        return digest_field(reply)
    except FilesError:
        raise ProtocolError(f"{peer} sent a malformed SHA-256") from None


def _below(top: str, path: str) -> tuple[str, ...]:
    """The components of a listed `path` below `top`, refusing anything a hostile server
    could use to write outside the destination (``..``, absolute, not under `top`)."""
    prefix = f"{top}/" if top else ""
    if not path.startswith(prefix) or path == top:
        raise ProtocolError(f"the server listed {path!r}, which is not inside {top or '.'!r}")
    try:
        return split_path(path[len(prefix) :])
    except FilesError:
        raise ProtocolError(f"the server listed an unsafe path {path!r}") from None


def _file_target(name: str, local: str | None) -> str:
    if local is None:
        return name
    if os.path.isdir(local):
        return os.path.join(local, name)
    if local.endswith(os.sep):
        raise UserError(f"{local}: no such directory")
    parent = os.path.dirname(local) or "."
    if not os.path.isdir(parent):
        raise UserError(f"{parent}: no such directory")
    return local


def _dir_target(name: str, local: str | None) -> str:
    if local is None:
        if not name:
            raise UserError("name a local directory to download the whole served directory into")
        return name
    if os.path.isdir(local):
        return os.path.join(local, name) if name else local
    if os.path.lexists(local):
        raise UserError(f"{local}: exists and is not a directory")
    parent = os.path.dirname(local.rstrip(os.sep)) or "."
    if not os.path.isdir(parent):
        raise UserError(f"{parent}: no such directory")
    return local


def _check_local_conflicts(
    plan: list[tuple[Entry, str]], dirs: list[str], *, force: bool, resume: bool
) -> None:
    """Refuse before moving a byte if any destination is in the way."""
    for path in dirs:
        if os.path.lexists(path) and not os.path.isdir(path):
            raise UserError(f"{path}: exists and is not a directory")
    if force:
        return
    clashes = []
    for entry, target in plan:
        if not resume:
            try:
                left = os.stat(partial_path(target)).st_size
            except OSError:
                left = 0
            if left:
                raise FilesError(ErrorCode.EXISTS, partial_message(target, left))
        try:
            st = os.lstat(target)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise UserError(f"{target}: {os_reason(exc)}") from None
        if not (resume and stat.S_ISREG(st.st_mode) and st.st_size == entry.size):
            clashes.append(target)
    if clashes:
        raise FilesError(ErrorCode.EXISTS, _clash_message(clashes, "here"))


def _clash_message(clashes: list[str], where: str) -> str:
    more = f" (and {len(clashes) - 1} more)" if len(clashes) > 1 else ""
    return f"{clashes[0]}{more}: already exists {where} (use --force to overwrite)"


def _walk_local(top: str, skipped: list[str]) -> list[tuple[tuple[str, ...], Kind, int]]:
    """Directories and regular files below `top`, parents first, sorted; symlinked files are
    followed (as scp does), symlinked directories and special files are skipped (reported)."""
    out: list[tuple[tuple[str, ...], Kind, int]] = []
    errors: list[OSError] = []
    for here, dirnames, filenames in os.walk(top, onerror=errors.append):
        rel = tuple(os.path.relpath(here, top).split(os.sep)) if here != top else ()
        dirnames.sort()
        for name in list(dirnames):
            path = os.path.join(here, name)
            if os.path.islink(path):
                dirnames.remove(name)
                skipped.append(f"{path}: symbolic link to a directory, not followed")
            else:
                out.append(((*rel, name), Kind.DIR, 0))
        for name in sorted(filenames):
            path = os.path.join(here, name)
            try:
                st = os.stat(path)
            except OSError as exc:
                skipped.append(f"{path}: {os_reason(exc)}")
                continue
            if stat.S_ISREG(st.st_mode):
                out.append(((*rel, name), Kind.FILE, st.st_size))
            else:
                skipped.append(f"{path}: not a regular file")
    if errors:
        first = errors[0]
        raise UserError(f"{first.filename}: {os_reason(first)}")
    return out
