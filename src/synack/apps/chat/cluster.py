"""Chat servers that share rooms and nicknames through Redis (``chat serve --redis``).

Each server keeps its own users in its own `Hub` and mirrors everyone else's into
it as `RemoteMember`s, so /who, /rooms, private messages and nickname checks are
answered locally. What crosses servers goes through one Redis pub/sub channel, in
envelopes ``{"s": SERVER, "ops": [...]}``; what must be true for the whole cluster
lives in Redis keys (docs/PROTOCOL.md §4 has the layout):

- a nickname belongs to the server whose claim got it first: every key of the name
  (`nick_keys`) is claimed in one Lua script, so two servers cannot both win;
- a server is alive while its heartbeat key (a TTL of `dead_after`) exists; any
  server that finds one gone removes the dead server's users in one script and says
  so on the channel, so they are gone everywhere within `dead_after` + `heartbeat`;
- while Redis cannot be reached, local rooms go on, but admissions and nickname
  changes are refused (UNAVAILABLE), since no claim can be checked; on reconnection
  the server re-registers all its members in one script (a name taken meanwhile by
  another server is given a suffix here) and reads the others' afresh.

Room messages are published once per loop turn per batch, not once per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from synack.apps.chat.hub import Batch, Event, Hub, Member, taken
from synack.apps.chat.protocol import (
    DEFAULT_ROOM,
    MAX_NICK,
    ChatError,
    ErrorCode,
    check_nick,
    check_room,
    nick_key,
    nick_keys,
)
from synack.errors import UserError

Log = Callable[[str], None]
Failure = (RedisError, OSError)


@dataclass(frozen=True)
class Settings:
    """How a server takes part in the cluster (all times in seconds).

    With the defaults a dead server's users are gone for the others within
    ``dead_after + heartbeat`` = 8 s, under the 10 s operators are promised.
    """

    prefix: str = "synack:chat"  # of every key and the channel: clusters can share a Redis
    heartbeat: float = 2.0  # between liveness writes, and between sweeps for dead servers
    dead_after: float = 6.0  # a server whose heartbeat is this old is dead
    timeout: float = 3.0  # on every Redis command; beyond it, Redis counts as unreachable
    backoff: float = 0.1  # first wait before reconnecting; doubles up to max_backoff
    max_backoff: float = 5.0

    def __post_init__(self) -> None:
        if not 0 < self.heartbeat < self.dead_after:
            raise ValueError("the heartbeat must be positive and shorter than dead_after")
        if self.timeout <= 0 or not 0 < self.backoff <= self.max_backoff:
            raise ValueError("timeout and backoff must be positive, backoff <= max_backoff")


class Unreachable(UserError):
    """Redis could not be reached when the server started (one line, exit status 1)."""


# --- Lua scripts: each runs atomically in Redis -------------------------------------------
# ARGV[1] is always the key prefix; the keys are built from it (one Redis, not Redis Cluster).

# Claim every key of one nickname for a server; returns the first key held by another.
_CLAIM = """
local names, me = ARGV[1] .. ':names', ARGV[2]
for i = 3, #ARGV do
  local owner = redis.call('HGET', names, ARGV[i])
  if owner and owner ~= me then return ARGV[i] end
end
for i = 3, #ARGV do redis.call('HSET', names, ARGV[i], me) end
return false
"""

# Give back the keys of a nickname this server holds (not any another server holds).
_RELEASE = """
local names, me = ARGV[1] .. ':names', ARGV[2]
for i = 3, #ARGV do
  if redis.call('HGET', names, ARGV[i]) == me then redis.call('HDEL', names, ARGV[i]) end
end
return 0
"""

# Heartbeat: 1 if this server had been given up for dead (and must re-register).
_BEAT = """
redis.call('SET', ARGV[1] .. ':alive:' .. ARGV[2], '1', 'PX', ARGV[3])
return redis.call('SADD', ARGV[1] .. ':servers', ARGV[2])
"""

# Forget all that a server held: its names, its users, its place in the set.
_FORGET = """
local function forget(p, s)
  local names = redis.call('HGETALL', p .. ':names')
  for i = 1, #names, 2 do
    if names[i + 1] == s then redis.call('HDEL', p .. ':names', names[i]) end
  end
  redis.call('DEL', p .. ':users:' .. s)
end
"""

# (Re-)register: replace whatever Redis holds for this server with its members now.
# ARGV: prefix, id, heartbeat TTL in ms, channel, members as JSON
# [[nick, room, [keys], [[other nick, [keys]], ...]], ...]. Each member keeps its name
# if no other server holds it, else takes the first free other nick, else none.
# Returns JSON {nick: new nick or false} for the members whose name changed.
_REGISTER = (
    _FORGET
    + """
local p, me, channel = ARGV[1], ARGV[2], ARGV[4]
local names = p .. ':names'
forget(p, me)
redis.call('SET', p .. ':alive:' .. me, '1', 'PX', ARGV[3])
redis.call('SADD', p .. ':servers', me)
local function free(keys)
  for _, k in ipairs(keys) do
    local owner = redis.call('HGET', names, k)
    if owner and owner ~= me then return false end
  end
  return true
end
local held, changed, any = {}, {}, false
for _, m in ipairs(cjson.decode(ARGV[5])) do
  local nick, keys = m[1], m[3]
  if not free(keys) then
    nick, keys = false, nil
    for _, other in ipairs(m[4]) do
      if free(other[2]) then nick, keys = other[1], other[2]; break end
    end
    changed[m[1]] = nick
    any = true
  end
  if nick then
    for _, k in ipairs(keys) do redis.call('HSET', names, k, me) end
    redis.call('HSET', p .. ':users:' .. me, nick, m[2])
    held[nick] = m[2]
  end
end
local op = {op = 'server', server = me, members = held, reason = 'their server rejoined'}
redis.call('PUBLISH', channel, cjson.encode({s = me, ops = {op}}))
if any then return cjson.encode(changed) end
return '{}'
"""
)

# Every live server's users: [server, [nick, room, ...], ...].
_SNAPSHOT = """
local p, out = ARGV[1], {}
for _, s in ipairs(redis.call('SMEMBERS', p .. ':servers')) do
  if redis.call('EXISTS', p .. ':alive:' .. s) == 1 then
    table.insert(out, s)
    table.insert(out, redis.call('HGETALL', p .. ':users:' .. s))
  end
end
return out
"""

# Remove the servers whose heartbeat has expired, and tell everyone; returns their ids.
# ARGV: prefix, channel, reason. The envelope names the dead server as its sender, so
# every live server applies it (each skips only its own envelopes).
_REAP = (
    _FORGET
    + """
local p, channel, dead = ARGV[1], ARGV[2], {}
for _, s in ipairs(redis.call('SMEMBERS', p .. ':servers')) do
  if redis.call('EXISTS', p .. ':alive:' .. s) == 0 then
    redis.call('SREM', p .. ':servers', s)
    forget(p, s)
    local op = {op = 'server', server = s, members = {}, reason = ARGV[3]}
    redis.call('PUBLISH', channel, cjson.encode({s = s, ops = {op}}))
    table.insert(dead, s)
  end
end
return dead
"""
)

# A clean shutdown: leave the cluster and tell everyone.
_LEAVE = (
    _FORGET
    + """
local p, me, channel = ARGV[1], ARGV[2], ARGV[3]
forget(p, me)
redis.call('SREM', p .. ':servers', me)
redis.call('DEL', p .. ':alive:' .. me)
local op = {op = 'server', server = me, members = {}, reason = ARGV[4]}
redis.call('PUBLISH', channel, cjson.encode({s = me, ops = {op}}))
return 0
"""
)

DEAD = "their server stopped responding"
LOST = "their server is out of reach (this server lost its link to the cluster)"
SHUT_DOWN = "their server shut down"


class RemoteMember(Member):
    """A user of another server: in the rooms and the names, deaf to room traffic
    (their own server delivers it), reached by private messages through Redis."""

    __slots__ = ("cluster", "server")

    remote = True

    def __init__(self, cluster: Cluster, server: str) -> None:
        super().__init__(_no_encoding)
        self.cluster = cluster
        self.server = server

    def send(self, data: bytes) -> None:
        pass

    def send_event(self, event: Event) -> None:
        if event.get("op") == "private":
            self.cluster.forward(self, event)

    def join_batch(self, batch: Batch) -> None:
        pass

    def skip_batch(self, batch: Batch) -> None:
        pass

    def leave_batch(self) -> None:
        pass


def _no_encoding(event: Event) -> bytes:
    return b""


@dataclass(slots=True)
class _Call:
    """A queued Redis command and the future waiting for its reply (None: no one)."""

    add: Callable[[Pipeline], Any]
    future: asyncio.Future[Any] | None


class Cluster:
    """One server's link to the others through Redis; the `Peers` of its hub."""

    def __init__(
        self, url: str, hub: Hub, settings: Settings | None = None, log: Log | None = None
    ) -> None:
        self.settings = settings = settings or Settings()
        self.id = secrets.token_hex(6)
        self.url = url
        self.hub = hub
        self.log = log
        self.channel = f"{settings.prefix}:events"
        # Raises ValueError for a URL that is not a Redis URL. No retries inside redis-py:
        # a failure here is an outage, handled (and retried) by this class.
        self._redis = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=settings.timeout,
            socket_connect_timeout=settings.timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self.up = False  # linked to Redis: claims can be checked
        self.summary = ""  # how the last (re)connection went, for the console
        self._servers: dict[str, dict[str, RemoteMember]] = {}  # server -> nick_key -> member
        self._claiming: set[str] = set()  # nick keys with a claim under way here
        self._queue: list[_Call | Event] = []  # commands and ops to publish, in order
        self._writer: asyncio.Task[None] | None = None
        self._broken: asyncio.Future[None] | None = None
        self._runner: asyncio.Task[None] | None = None
        self._forget_timer: asyncio.TimerHandle | None = None
        self._pubsub: Any = None
        hub.peers = self

    # --- lifetime ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Join the cluster, or raise `Unreachable`: a server that cannot reach Redis at
        start is misconfigured far more often than unlucky, so it says so at once."""
        try:
            await self._connect()
        except Failure as exc:
            await self._disconnect()
            await self._redis.aclose()
            raise Unreachable(f"cannot reach Redis at {self.url}: {_reason(exc)}") from None
        self._runner = asyncio.create_task(self._run())

    async def close(self) -> None:
        """Leave the cluster: the others hear this server's users are gone."""
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        if self._forget_timer is not None:
            self._forget_timer.cancel()
        if self._writer is not None:  # what is queued (members who left) goes out first
            with contextlib.suppress(*Failure):
                async with asyncio.timeout(self.settings.timeout):
                    await self._writer
        if self.up:
            self.up = False
            s = self.settings
            with contextlib.suppress(*Failure):
                async with asyncio.timeout(s.timeout):
                    await self._redis.eval(_LEAVE, 0, s.prefix, self.id, self.channel, SHUT_DOWN)
        if self._writer is not None:
            self._writer.cancel()
        await self._disconnect()
        await self._redis.aclose()

    async def _connect(self) -> None:
        """Subscribe, then (re-)register this server's members and read everyone else's."""
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        self._pubsub = pubsub
        await pubsub.subscribe(self.channel)
        s = self.settings
        members = [m for m in self.hub.members.values() if not m.remote]
        listing = [[m.nick, m.room, list(nick_keys(m.nick)), _others(m.nick)] for m in members]
        self._broken = asyncio.get_running_loop().create_future()
        self.up = True  # from here on, changes queue behind the registration
        register = self._call(
            lambda pipe: pipe.eval(
                _REGISTER,
                0,
                s.prefix,
                self.id,
                int(s.dead_after * 1000),
                self.channel,
                json.dumps(listing),
            )
        )
        snapshot = self._call(lambda pipe: pipe.eval(_SNAPSHOT, 0, s.prefix))
        try:
            changed = json.loads(await register)
            servers = await snapshot
        except BaseException:
            self.up = False
            if self._broken.done() and not self._broken.cancelled():
                self._broken.exception()  # retrieved: this failure is being handled
            raise
        if self._forget_timer is not None:
            self._forget_timer.cancel()
            self._forget_timer = None
        self._renamed_at_rejoin(members, changed)
        seen = set()
        for i in range(0, len(servers), 2):
            server, flat = servers[i], servers[i + 1]
            if server != self.id:
                seen.add(server)
                self._sync(server, dict(zip(flat[::2], flat[1::2], strict=True)), DEAD)
        for server in set(self._servers) - seen:
            self._sync(server, {}, DEAD)
        remote = sum(len(users) for users in self._servers.values())
        self.summary = (
            f"in the cluster on {self.url} as server {self.id} ({len(seen)} other servers, "
            f"{remote} users there; {len(members)} here registered)"
        )
        if self._runner is not None:  # a reconnection; the first is in the server's banner
            self._say(f"cluster: back {self.summary}")

    async def _disconnect(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(*Failure):
                async with asyncio.timeout(self.settings.timeout):
                    await pubsub.aclose()

    async def _run(self) -> None:
        """Serve the link; when it breaks, reconnect with backoff, for ever."""
        s = self.settings
        while True:
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._listen())
                    group.create_task(self._beat())
                    assert self._broken is not None
                    group.create_task(_raise_when(self._broken))
            except* Failure as failures:  # TimeoutError is an OSError too
                self._lost(failures.exceptions[0])
            await self._disconnect()
            delay = s.backoff
            while True:
                await asyncio.sleep(delay)
                try:
                    await self._connect()
                    break
                except Failure:
                    self.up = False
                    await self._disconnect()
                    delay = min(delay * 2, s.max_backoff)

    def _lost(self, exc: BaseException) -> None:
        if not self.up:
            return
        self.up = False
        self._fail_queue(exc)
        self._say(
            f"cluster: lost Redis ({_reason(exc)}); local rooms carry on, joins and "
            "nickname changes are refused until it is back"
        )
        # The other servers may be fine: show their users as gone only if the link
        # stays down as long as a dead server would take to be noticed.
        loop = asyncio.get_running_loop()
        self._forget_timer = loop.call_later(self.settings.dead_after, self._forget_all)

    def _forget_all(self) -> None:
        self._forget_timer = None
        for server in list(self._servers):
            self._sync(server, {}, LOST)

    async def _listen(self) -> None:
        async for message in self._pubsub.listen():
            if message.get("type") == "message":
                self._receive(message["data"])

    async def _beat(self) -> None:
        s = self.settings
        ttl = int(s.dead_after * 1000)
        while True:
            await asyncio.sleep(s.heartbeat)
            beat = self._call(lambda pipe: pipe.eval(_BEAT, 0, s.prefix, self.id, ttl))
            reap = self._call(lambda pipe: pipe.eval(_REAP, 0, s.prefix, self.channel, DEAD))
            async with asyncio.timeout(s.timeout * 2):
                given_up, dead = await beat, await reap
            if given_up:
                # Another server found our heartbeat expired (a stall, a long outage)
                # and removed our users: register them again, as after an outage.
                raise ConnectionError("this server had been given up for dead")
            for server in dead:
                if server in self._servers:
                    self._say(f"cluster: server {server} stopped responding")

    # --- what the hub tells us (local members' changes) ----------------------------------------

    def entered(self, member: Member) -> None:
        self._hset(member)

    def moved(self, member: Member) -> None:
        self._hset(member)

    def _hset(self, member: Member) -> None:
        if not self.up:
            return
        users, nick, room = self._users, member.nick, member.room
        self._command(lambda pipe: pipe.hset(users, nick, room))
        self._publish({"op": "member", "nick": nick, "room": room})

    def renamed(self, member: Member, old: str) -> None:
        if not self.up:
            return
        users, nick, room = self._users, member.nick, member.room
        stale = [k for k in nick_keys(old) if k not in nick_keys(nick)]
        self._command(lambda pipe: pipe.hdel(users, old))
        self._command(lambda pipe: pipe.hset(users, nick, room))
        if stale:
            self._command(lambda pipe: self._release(pipe, stale))
        self._publish({"op": "renamed", "old": old, "new": nick, "room": room})

    def left(self, member: Member, reason: str) -> None:
        if not self.up:
            return
        users, nick = self._users, member.nick
        keys = list(nick_keys(nick))
        self._command(lambda pipe: pipe.hdel(users, nick))
        self._command(lambda pipe: self._release(pipe, keys))
        self._publish({"op": "gone", "nick": nick, "reason": reason})

    def said(self, event: Event) -> None:
        if self.up:
            self._publish(event)

    def forward(self, member: RemoteMember, event: Event) -> None:
        """A private message for a remote user: to its server, through the channel."""
        if not self.up:
            raise ChatError(
                ErrorCode.UNAVAILABLE,
                f"cannot reach {member.nick}'s server now: the cluster link is down",
            )
        self._publish({**event, "server": member.server})

    # --- claims: admission and nickname changes -----------------------------------------------

    async def admit(self, member: Member, nick: object, room: object) -> Event:
        """Claim `nick` across the cluster, then admit `member` here (ChatError if not)."""
        name = check_nick(nick)
        place = check_room(DEFAULT_ROOM if room is None else room)
        await self._claim(member, name)
        try:
            return self.hub.admit(member, name, place)
        except ChatError:
            self._give_back(name)
            raise

    async def rename(self, member: Member, nick: object) -> None:
        try:
            new = check_nick(nick)
            if not set(nick_keys(new)) <= set(nick_keys(member.nick)):
                await self._claim(member, new)
            if not member.key:  # it left while we waited
                self._give_back(new)
                return
            self.hub.check_free(new, member)
            self.hub.rename(member, new)
        except ChatError as exc:
            member.send_event(exc.event())

    async def _claim(self, member: Member, name: str) -> None:
        self.hub.check_free(name, member)
        if not self.up:
            raise ChatError(
                ErrorCode.UNAVAILABLE,
                "the chat cluster cannot be reached right now, so nicknames cannot be "
                "checked: joining and changing nicknames wait until it is back",
            )
        keys = nick_keys(name)
        if self._claiming.intersection(keys):
            raise taken(name, name)
        s = self.settings
        self._claiming.update(keys)
        try:
            held_by_other = await self._call(
                lambda pipe: pipe.eval(_CLAIM, 0, s.prefix, self.id, *keys)
            )
        except Failure as exc:
            raise _unavailable(exc) from None
        finally:
            self._claiming.difference_update(keys)
        if held_by_other:
            holder = self.hub.holder(name)
            raise taken(name, holder.nick if holder is not None else name)
        # Redis says the name is ours: a remote holder still shown here is stale.
        holder = self.hub.holder(name)
        if holder is not None and holder.remote:
            self._drop(holder, "left")

    def _give_back(self, name: str) -> None:
        keys = list(nick_keys(name))
        if self.up:
            self._command(lambda pipe: self._release(pipe, keys))

    def _release(self, pipe: Pipeline, keys: list[str]) -> Any:
        s = self.settings
        return pipe.eval(_RELEASE, 0, s.prefix, self.id, *keys)

    def _renamed_at_rejoin(self, members: list[Member], changed: dict[str, Any]) -> None:
        """Members whose name another server took while this one was cut off."""
        for member in members:
            new = changed.get(member.nick)
            if member.nick not in changed or not member.key:
                continue
            old = member.nick
            if new:
                self.up = False  # registered already: no second claim or publish
                try:
                    self.hub.rename(member, new)
                finally:
                    self.up = True
                message = (
                    f"while this server was cut off from the cluster, {old!r} was taken "
                    f"on another server: you are now {new!r}"
                )
                member.send_event(ChatError(ErrorCode.NICK_TAKEN, message).event())
            else:
                message = f"while this server was cut off, {old!r} was taken elsewhere"
                kick = getattr(member, "kick", None)
                if kick is not None:
                    kick(message, ErrorCode.NICK_TAKEN)
                else:
                    self.hub.remove(member, message)
            self._say(f"cluster: {old!r} was taken elsewhere meanwhile; here now {new or 'gone'}")

    # --- what the others tell us -----------------------------------------------------------------

    def _receive(self, data: str) -> None:
        try:
            envelope = json.loads(data)
            server, ops = envelope["s"], envelope["ops"]
        except (ValueError, KeyError, TypeError):
            self._say("cluster: ignored a message that is not a synack envelope")
            return
        if server == self.id:
            return
        for op in ops:
            apply = self._apply.get(str(op.get("op"))) if isinstance(op, dict) else None
            try:
                if apply is None:
                    raise KeyError(op)
                apply(self, server, op)
            except (ChatError, KeyError, TypeError, ValueError) as exc:
                self._say(f"cluster: ignored {str(op)[:80]} from {server}: {exc}")

    def _on_msg(self, server: str, op: Event) -> None:
        self.hub.broadcast(op["room"], op)

    def _on_member(self, server: str, op: Event) -> None:
        self._member(server, check_nick(op["nick"]), check_room(op["room"]))

    def _on_gone(self, server: str, op: Event) -> None:
        member = self._servers.get(server, {}).get(nick_key(op["nick"]))
        if member is not None:
            self._drop(member, str(op.get("reason") or "left"))

    def _on_renamed(self, server: str, op: Event) -> None:
        new, room = check_nick(op["new"]), check_room(op["room"])
        users = self._servers.get(server, {})
        member = users.get(nick_key(op["old"]))
        if member is None:
            self._member(server, new, room)
            return
        holder = self.hub.holder(new)
        if holder is not None and holder is not member:
            if not holder.remote:
                raise ChatError(ErrorCode.NICK_TAKEN, f"{new!r} is held here")
            self._drop(holder, "left")
        del users[member.key]
        self.hub.rename(member, new)
        users[member.key] = member
        if member.room != room:
            self.hub.move(member, room)

    def _on_private(self, server: str, op: Event) -> None:
        if op["server"] != self.id:
            return
        target = self.hub.members.get(nick_key(op["to"]))
        if target is not None and not target.remote:
            text = str(op["text"])
            target.send_event(
                {"op": "private", "from": op["from"], "to": target.nick, "text": text}
            )

    def _on_server(self, server: str, op: Event) -> None:
        members = op["members"] or {}  # Lua's cjson writes an empty table as {}
        self._sync(op["server"], dict(members), str(op.get("reason") or DEAD))

    _apply: ClassVar[dict[str, Callable[[Cluster, str, Event], None]]] = {
        "msg": _on_msg,
        "member": _on_member,
        "gone": _on_gone,
        "renamed": _on_renamed,
        "private": _on_private,
        "server": _on_server,
    }

    def _member(self, server: str, nick: str, room: str) -> None:
        """`nick` of `server` is in `room` now: add or move its mirror."""
        users = self._servers.setdefault(server, {})
        member = users.get(nick_key(nick))
        if member is not None:
            if member.room != room:
                self.hub.move(member, room)
            return
        holder = self.hub.holder(nick)
        if holder is not None:
            if not holder.remote:
                # Only while a rejoin is settled: the registration renames ours.
                raise ChatError(ErrorCode.NICK_TAKEN, f"{nick!r} is held here")
            self._drop(holder, "left")
        member = RemoteMember(self, server)
        self.hub.admit(member, nick, room)
        users[member.key] = member

    def _sync(self, server: str, members: dict[str, str], reason: str) -> None:
        """Make the mirror of `server`'s users what `members` ({nick: room}) says."""
        users = self._servers.get(server, {})
        wanted = {nick_key(nick) for nick in members}
        gone = [m for key, m in users.items() if key not in wanted]
        for member in gone:
            self._drop(member, reason)
        if reason == DEAD and gone:
            self._say(f"cluster: {len(gone)} users of server {server} are gone ({reason})")
        for nick, room in members.items():
            try:
                self._member(server, check_nick(nick), check_room(room))
            except ChatError as exc:
                self._say(f"cluster: {nick!r} of {server} not shown: {exc.message}")
        if not self._servers.get(server):
            self._servers.pop(server, None)

    def _drop(self, member: Member, reason: str) -> None:
        assert isinstance(member, RemoteMember)
        users = self._servers.get(member.server, {})
        if users.get(member.key) is member:
            del users[member.key]
        self.hub.remove(member, reason)

    # --- the writer: every command and publication, in order, pipelined ------------------------

    @property
    def _users(self) -> str:
        return f"{self.settings.prefix}:users:{self.id}"

    def _publish(self, op: Event) -> None:
        self._queue.append(op)
        self._wake()

    def _command(self, add: Callable[[Pipeline], Any]) -> None:
        self._queue.append(_Call(add, None))
        self._wake()

    def _call(self, add: Callable[[Pipeline], Any]) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append(_Call(add, future))
        self._wake()
        return future

    def _wake(self) -> None:
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        # Let the rest of this loop turn queue its ops: one round trip carries them all.
        await asyncio.sleep(0)
        while self._queue:
            items, self._queue = self._queue, []
            pipe = self._redis.pipeline(transaction=False)
            waiting: list[asyncio.Future[Any] | None] = []
            ops: list[Event] = []
            for item in items:
                if not isinstance(item, _Call):
                    ops.append(item)
                    continue
                if ops:
                    pipe.publish(self.channel, self._envelope(ops))
                    waiting.append(None)
                    ops = []
                item.add(pipe)
                waiting.append(item.future)
            if ops:
                pipe.publish(self.channel, self._envelope(ops))
                waiting.append(None)
            try:
                results = await pipe.execute(raise_on_error=False)
            except Failure as exc:
                for future in waiting:
                    if future is not None and not future.done():
                        future.set_exception(exc)
                self._fail_queue(exc)
                if self._broken is not None and not self._broken.done():
                    self._broken.set_exception(exc)
                return
            for future, result in zip(waiting, results, strict=True):
                if future is None or future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    def _envelope(self, ops: list[Event]) -> str:
        return json.dumps({"s": self.id, "ops": ops}, separators=(",", ":"))

    def _fail_queue(self, exc: BaseException) -> None:
        """Drop what was queued for a link that broke: registration rewrites the state."""
        items, self._queue = self._queue, []
        for item in items:
            if isinstance(item, _Call) and item.future is not None and not item.future.done():
                item.future.set_exception(exc)

    def _say(self, line: str) -> None:
        if self.log is not None:
            self.log(line)


def _others(nick: str) -> list[list[Any]]:
    """Names to give a member whose nickname another server took while we were cut off."""
    out = []
    for n in range(2, 10):
        suffix = f"-{n}"
        other = nick[: MAX_NICK - len(suffix)] + suffix
        out.append([other, list(nick_keys(other))])
    return out


def _unavailable(exc: BaseException) -> ChatError:
    return ChatError(
        ErrorCode.UNAVAILABLE,
        f"the chat cluster cannot be reached right now ({_reason(exc)}); try again shortly",
    )


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0]


async def _raise_when(broken: asyncio.Future[None]) -> None:
    await broken
