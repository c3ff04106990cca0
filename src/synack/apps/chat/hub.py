"""Rooms, nicknames and who hears what: the chat's state, with no I/O of its own.

The TCP server (framed and line-mode peers) and the UDP server both keep their
users here, so the rules live in one place. A `Member` stands for one user; how
bytes reach them is the member's business (`send`), how an event becomes bytes is
its `encoder`'s. A broadcast encodes each event once per kind of encoder, not once
per member: with a hundred members that is the difference between a hundred JSON
encodings and one.

A hub made with ``batching=True`` (the TCP server's) goes further: a broadcast costs
the same however many members hear it. The broadcasts to a room in one turn of the
server's loop collect in that room's `Batch`; each member queues a `Segment` (a
range of the batch) once per turn instead of bytes once per message, and when the
server writes, members that heard the same range share one joined, encoded copy.
Profiling the fan-out bench found the per-member loop of every broadcast (a call,
a dict look-up and a list append for each of 100 members, for each message) to be
more than half of the server's time.

A hub in a cluster (``chat serve --redis``) has `peers` (cluster.py's `Cluster`):
it tells them each change its own members make, and they mirror the other servers'
users into it as members with ``remote`` set, which hear nothing of the rooms (their
own server tells them) but take private messages. So nicknames, /who, /rooms and
private messages work here the same for a local and a remote user.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from synack import __version__
from synack.apps.chat.protocol import (
    DEFAULT_ROOM,
    ChatError,
    ErrorCode,
    check_nick,
    check_room,
    check_text,
    field,
    nick_key,
    nick_keys,
)
from synack.wire.frame import PROTOCOL_VERSION

Event = dict[str, Any]
Encoder = Callable[[Event], bytes]


class Batch:
    """The events broadcast to one room during one turn of the server's loop."""

    __slots__ = ("_encoded", "_whole", "events", "open")

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.open = True  # False once the turn ended: no more events come
        self._encoded: dict[Encoder, list[bytes]] = {}
        self._whole: dict[tuple[Encoder, int], bytes] = {}

    def data(self, encoder: Encoder, start: int, end: int | None) -> bytes:
        """Events [start:end] encoded by `encoder` (each once), joined."""
        events = self.events
        stop = len(events) if end is None else end
        encoded = self._encoded.setdefault(encoder, [])
        if len(encoded) < stop:
            encoded.extend(map(encoder, events[len(encoded) :]))
        if start or stop != len(events):
            return b"".join(encoded[start:stop])  # a sender's, a latecomer's: its own
        # All of it, as most members hear: joined once, the same bytes for each of them.
        key = (encoder, stop)
        data = self._whole.get(key)
        if data is None:
            data = self._whole[key] = b"".join(encoded)
        return data


class Segment:
    """The range of a `Batch` one member hears; `end` None: to the end of the batch."""

    __slots__ = ("batch", "end", "start")

    def __init__(self, batch: Batch, start: int) -> None:
        self.batch = batch
        self.start = start
        self.end: int | None = None

    def data(self, encoder: Encoder) -> bytes:
        return self.batch.data(encoder, self.start, self.end)


class Member:
    """One user in the hub. Subclasses deliver bytes; the hub never blocks on them.

    Members of a hub with ``batching=True`` also implement `join_batch`,
    `skip_batch` and `leave_batch`.
    """

    __slots__ = ("encoder", "key", "nick", "room")

    remote = False  # True for a user of another server in the cluster

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self.nick = ""
        self.key = ""  # nick_key(nick); "" until admitted
        self.room = ""

    def send(self, data: bytes) -> None:
        """Queue `data` (already encoded by `encoder`) for this user; must not block."""
        raise NotImplementedError

    def send_event(self, event: Event) -> None:
        self.send(self.encoder(event))

    def join_batch(self, batch: Batch) -> None:
        """Hear the events added to `batch` from now on (until `leave_batch`)."""
        raise NotImplementedError

    def skip_batch(self, batch: Batch) -> None:
        """Do not hear the next event added to `batch` (this member sent it)."""
        raise NotImplementedError

    def leave_batch(self) -> None:
        """Hear no more of the current batch: this member left its room."""
        raise NotImplementedError


class Peers(Protocol):
    """The rest of the cluster, as the hub sees it: told of every change a local member
    makes (never of a remote one's, which came from the cluster). None must block."""

    def entered(self, member: Member) -> None: ...
    def moved(self, member: Member) -> None: ...
    def renamed(self, member: Member, old: str) -> None: ...
    def left(self, member: Member, reason: str) -> None: ...
    def said(self, event: Event) -> None: ...

    def rename(self, member: Member, nick: object) -> Awaitable[None]:
        """Claim `nick` across the cluster, then rename `member` (errors go to it)."""
        ...


Handler = Callable[["Member", Event], Awaitable[None] | None]


class Hub:
    """Nicknames (unique regardless of case and of lookalike letters), rooms, and the
    requests members make.

    With `batching`, broadcasts collect in a `Batch` per room until `end_turn`;
    `on_batch` is called when one opens, so the owner knows a turn must end.
    """

    def __init__(
        self, *, batching: bool = False, on_batch: Callable[[], None] | None = None
    ) -> None:
        self.batching = batching
        self._on_batch = on_batch
        self._batches: dict[str, Batch] = {}  # room -> this turn's broadcasts
        self.members: dict[str, Member] = {}  # nick_key -> member
        self._names: dict[str, Member] = {}  # each of nick_keys(nick) -> member
        self.rooms: dict[str, dict[str, Member]] = {}  # room -> nick_key -> member
        self.peers: Peers | None = None  # the cluster, if this server is in one
        self._handlers: dict[str, Handler] = {
            "say": self._say,
            "private": self._private,
            "join": self._join,
            "who": self._who,
            "rooms": self._rooms,
            "nick": self._nick,
            "ping": self._ping,
        }

    # --- membership ---------------------------------------------------------------

    def admit(self, member: Member, nick: object, room: object = DEFAULT_ROOM) -> Event:
        """Give `member` a name and a room; returns the welcome event (not yet sent).

        Raises ChatError (BAD_NICK, NICK_TAKEN, BAD_ROOM) without changing anything.
        """
        name = check_nick(nick)
        place = check_room(DEFAULT_ROOM if room is None else room)
        self.check_free(name)
        key = nick_key(name)
        member.nick, member.key, member.room = name, key, place
        self.members[key] = member
        self._claim(member)
        others = sorted(m.nick for m in self.rooms.get(place, {}).values())
        self._enter(member, place)
        if self.peers is not None and not member.remote:
            self.peers.entered(member)
        return {
            "op": "welcome",
            "version": PROTOCOL_VERSION,
            "server": f"synack {__version__}",
            "nick": name,
            "room": place,
            "members": others,
        }

    def remove(self, member: Member, reason: str) -> None:
        """Forget `member` (gone, kicked or quit) and tell its room. Idempotent."""
        if not member.key or self.members.get(member.key) is not member:
            return
        del self.members[member.key]
        self._release(member)
        self._leave(member, reason)
        if self.peers is not None and not member.remote:
            self.peers.left(member, reason)
        member.key = ""

    def move(self, member: Member, room: str) -> None:
        """`member` leaves its room for `room`, and both rooms hear of it."""
        self._leave(member, f"moved to #{room}")
        self._enter(member, room)
        if self.peers is not None and not member.remote:
            self.peers.moved(member)

    def rename(self, member: Member, new: str) -> str:
        """Give `member` the nickname `new` (already checked and free); returns the old one."""
        old = member.nick
        key = nick_key(new)
        del self.members[member.key]
        del self.rooms[member.room][member.key]
        self._release(member)
        member.nick, member.key = new, key
        self.members[key] = member
        self.rooms[member.room][key] = member
        self._claim(member)
        self.broadcast(member.room, {"op": "renamed", "room": member.room, "old": old, "new": new})
        if self.peers is not None and not member.remote:
            self.peers.renamed(member, old)
        return old

    def holder(self, nick: str) -> Member | None:
        """The member whose nickname is `nick` or looks like it, if any."""
        for key in nick_keys(nick):
            member = self._names.get(key)
            if member is not None:
                return member
        return None

    def _claim(self, member: Member) -> None:
        for key in nick_keys(member.nick):
            self._names[key] = member

    def _release(self, member: Member) -> None:
        for key in nick_keys(member.nick):
            if self._names.get(key) is member:
                del self._names[key]

    def _enter(self, member: Member, room: str) -> None:
        self.rooms.setdefault(room, {})[member.key] = member
        member.room = room
        batch = self._batches.get(room)
        if batch is not None:
            member.join_batch(batch)  # hears what comes after it entered, not before
        self.broadcast(room, {"op": "joined", "room": room, "nick": member.nick}, exclude=member)

    def _leave(self, member: Member, reason: str) -> None:
        room = member.room
        people = self.rooms.get(room)
        if people is None or people.pop(member.key, None) is None:
            return
        if self.batching:
            member.leave_batch()
        if not people:
            del self.rooms[room]
        event = {"op": "left", "room": room, "nick": member.nick, "reason": reason}
        self.broadcast(room, event)

    # --- delivery -------------------------------------------------------------------

    def broadcast(self, room: str, event: Event, exclude: Member | None = None) -> None:
        """Send `event` to everyone in `room`, encoding it once per kind of member."""
        people = self.rooms.get(room)
        if not people:
            return
        if self.batching:
            batch = self._batches.get(room)
            if batch is None:
                batch = self._batches[room] = Batch()
                for member in people.values():  # once per room per turn, not per message
                    member.join_batch(batch)
                if self._on_batch is not None:
                    self._on_batch()
            if exclude is not None:
                exclude.skip_batch(batch)
            batch.events.append(event)
            return
        cache: dict[Encoder, bytes] = {}
        for member in list(people.values()):  # a send may remove a slow member
            if member is exclude:
                continue
            encoder = member.encoder
            data = cache.get(encoder)
            if data is None:
                data = cache[encoder] = encoder(event)
            member.send(data)

    def end_turn(self) -> None:
        """Close this turn's batches: later broadcasts start new ones."""
        for batch in self._batches.values():
            batch.open = False
        self._batches.clear()

    def announce(self, event: Event) -> None:
        """Send `event` to every member (server shutdown)."""
        for room in list(self.rooms):
            self.broadcast(room, event)

    # --- requests ---------------------------------------------------------------------

    def handle(self, member: Member, request: Event) -> Awaitable[None] | None:
        """Carry out one request from an admitted member; errors go back to it alone.

        A request that must wait for the cluster (a nickname change) returns what to
        await; the caller awaits it before that member's next request, to keep order.
        """
        op = request.get("op")
        handler = self._handlers.get(op) if isinstance(op, str) else None
        try:
            if handler is None:
                raise ChatError(ErrorCode.BAD_REQUEST, f"unknown op {request.get('op')!r}")
            return handler(member, request)
        except ChatError as exc:
            member.send_event(exc.event())
            return None

    def _say(self, member: Member, request: Event) -> None:
        text = check_text(field(request, "text"))
        event = {"op": "msg", "room": member.room, "from": member.nick, "text": text}
        self.broadcast(member.room, event, exclude=member)
        if self.peers is not None:
            self.peers.said(event)

    def _private(self, member: Member, request: Event) -> None:
        to = field(request, "to")
        text = check_text(field(request, "text"))
        target = self.holder(to) if isinstance(to, str) else None
        if target is None:
            raise ChatError(ErrorCode.NO_SUCH_USER, f"no user named {to!r}")
        target.send_event({"op": "private", "from": member.nick, "to": target.nick, "text": text})
        # The sender hears that it went, and to whom: `to` may have matched a lookalike.
        member.send_event({"op": "sent", "to": target.nick, "text": text})

    def _join(self, member: Member, request: Event) -> None:
        room = check_room(field(request, "room"))
        if room == member.room:
            raise ChatError(ErrorCode.BAD_ROOM, f"you are already in #{room}")
        self.move(member, room)
        member.send_event({"op": "joined", "room": room, "nick": member.nick})

    def _who(self, member: Member, request: Event) -> None:
        room = check_room(request.get("room") or member.room)
        nicks = sorted(m.nick for m in self.rooms.get(room, {}).values())
        member.send_event({"op": "users", "room": room, "nicks": nicks})

    def _rooms(self, member: Member, request: Event) -> None:
        listing = [{"room": r, "count": len(p)} for r, p in sorted(self.rooms.items())]
        member.send_event({"op": "rooms", "rooms": listing})

    def _nick(self, member: Member, request: Event) -> Awaitable[None] | None:
        if self.peers is not None:
            return self.peers.rename(member, field(request, "nick"))
        new = check_nick(field(request, "nick"))
        self.check_free(new, member)
        self.rename(member, new)
        return None

    def check_free(self, nick: str, member: Member | None = None) -> None:
        """Raise NICK_TAKEN unless `nick` is free here (or already `member`'s)."""
        holder = self.holder(nick)
        if holder is not None and holder is not member:
            raise taken(nick, holder.nick)

    def _ping(self, member: Member, request: Event) -> None:
        member.send_event({"op": "pong"})


def taken(wanted: str, holder: str) -> ChatError:
    """NICK_TAKEN, saying whether the name is in use or only looks like one that is."""
    if wanted.casefold() == holder.casefold():
        return ChatError(ErrorCode.NICK_TAKEN, f"nickname {wanted!r} is taken")
    return ChatError(
        ErrorCode.NICK_TAKEN,
        f"nickname {wanted!r} is too similar to {holder!r}, who is here already "
        "(letters that look alike count as the same)",
    )
