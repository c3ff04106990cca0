"""A host's TCP: every connection and listener on one address, and the demultiplexing
between them (RFC 9293 §3.10.7: a segment goes to the connection of its four-tuple,
else to a listener on its port, else it is answered as CLOSED answers).

Still sans-IO: the host takes segments with their source and destination addresses
and returns segments with theirs. Drivers and the fake network in `synack.testing`
carry them.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from synack.tcp.config import Config
from synack.tcp.connection import ACK, FIN, RST, SYN, Connection
from synack.tcp.isn import new_secret
from synack.tcp.listener import Listener
from synack.tcp.state import State
from synack.wire.checksum import address_bytes
from synack.wire.seq import seq_gt
from synack.wire.tcp import HEADER, HEADER_SIZE, Flags, Segment, build_segment, checksum_ok

_TIME_WAIT = State.TIME_WAIT
_CLOSED = State.CLOSED

# Linux's default net.ipv4.ip_local_port_range.
EPHEMERAL_PORTS = range(32768, 61000)

ConnKey = tuple[int, bytes, int]  # local port, remote address, remote port
Datagram = tuple[bytearray | bytes, bytes, bytes]  # segment, source address, destination address


class PortInUse(OSError):
    """The port (or four-tuple) is already taken on this host."""


class Host:
    """TCP on one IP address: listeners, connections, and the routing between them."""

    def __init__(self, address: str | bytes, config: Config | None = None) -> None:
        cfg = config if config is not None else Config()
        if cfg.secret is None:
            cfg = replace(cfg, secret=new_secret())
        self.config = cfg
        self.address = address_bytes(address)
        self.listeners: dict[int, Listener] = {}
        self.connections: dict[ConnKey, Connection] = {}
        self._out: list[Datagram] = []
        seed = hashlib.blake2s(self.address, key=(cfg.secret or b"")[:32]).digest()
        self._next_port = EPHEMERAL_PORTS.start + int.from_bytes(seed[:4], "big") % len(
            EPHEMERAL_PORTS
        )
        self.stats: dict[str, int] = {"resets_sent": 0, "no_port": 0, "bad_segment": 0}

    # ------------------------------------------------------------------ opening

    def listen(
        self,
        port: int,
        backlog: int = 128,
        *,
        syn_cookies: bool = True,
        config: Config | None = None,
    ) -> Listener:
        if port in self.listeners:
            raise PortInUse(f"port {port} is already listening")
        listener = Listener(
            (self.address, port), config or self.config, backlog, syn_cookies=syn_cookies
        )
        self.listeners[port] = listener
        return listener

    def unlisten(self, port: int) -> None:
        listener = self.listeners.pop(port, None)
        if listener is not None:
            listener.close()
            for seg, remote in listener.segments_to_send(0.0):
                self._out.append((seg, self.address, remote[0]))

    def connect(
        self,
        remote: tuple[str | bytes, int],
        now: float,
        *,
        local_port: int | None = None,
        config: Config | None = None,
    ) -> Connection:
        rip = address_bytes(remote[0])
        port = local_port if local_port is not None else self._ephemeral_port(rip, remote[1])
        key = (port, rip, remote[1])
        if key in self.connections:
            raise PortInUse(f"connection {port} -> {remote[1]} already exists")
        conn = Connection((self.address, port), (rip, remote[1]), config or self.config)
        conn.connect(now)
        self.connections[key] = conn
        return conn

    def accept(self, port: int) -> Connection | None:
        """An established connection from the listener on `port`, now routed by the host."""
        listener = self.listeners.get(port)
        if listener is None:
            return None
        conn = listener.accept()
        if conn is not None:
            self.connections[(port, conn.remote_ip, conn.remote_port)] = conn
        return conn

    def _ephemeral_port(self, rip: bytes, rport: int) -> int:
        span = len(EPHEMERAL_PORTS)
        for _ in range(span):
            port = self._next_port
            self._next_port = EPHEMERAL_PORTS.start + (port + 1 - EPHEMERAL_PORTS.start) % span
            if port not in self.listeners and (port, rip, rport) not in self.connections:
                return port
        raise PortInUse("no ephemeral port is free")

    # ------------------------------------------------------------------ segments

    def handle_segment(
        self, data: bytes | bytearray | memoryview, src: str | bytes, now: float
    ) -> None:
        """A segment from `src` addressed to this host."""
        if len(data) < HEADER_SIZE:
            self.stats["bad_segment"] += 1
            return
        sport, dport, seq, _ack, off, flags, _w, _c, _u = HEADER.unpack_from(data)
        rip = src if src.__class__ is bytes and len(src) in (4, 16) else address_bytes(src)
        conn = self.connections.get((dport, rip, sport))
        if conn is not None and conn.state is not _TIME_WAIT:
            conn.handle_segment(data, now)
            return
        if not HEADER_SIZE <= (off >> 4) * 4 <= len(data):
            # RFC 9293 §3.1: a header that runs past its segment is not a segment; Linux
            # drops it as a bad packet rather than answering it.
            self.stats["bad_segment"] += 1
            return
        listener = self.listeners.get(dport)
        isn_floor: int | None = None
        if conn is not None:
            if (
                flags & SYN
                and not flags & (ACK | RST)
                and listener is not None
                and seq_gt(seq, conn.rcv_nxt & 0xFFFFFFFF)
                and (not self.config.checksum or checksum_ok(rip, self.address, data))
            ):
                # A new incarnation may take over a TIME-WAIT four-tuple when its ISN is
                # above the old connection's last sequence number, provided ours is also
                # "larger than the largest sequence number it used on the previous
                # connection incarnation" (RFC 9293 §3.6.1); Linux uses snd_nxt + 65537.
                isn_floor = (conn.snd_max + 65537) & 0xFFFFFFFF
                conn.abort()
                del self.connections[(dport, rip, sport)]
            else:
                conn.handle_segment(data, now)
                return
        if listener is not None:
            listener.handle_segment(data, rip, now, isn_floor=isn_floor)
            return
        self._closed_reset(data, rip, sport, dport, flags)

    def _closed_reset(
        self, data: bytes | bytearray | memoryview, rip: bytes, sport: int, dport: int, flags: int
    ) -> None:
        """RFC 9293 §3.10.7.1: no connection, so answer anything but a RST with a RST."""
        self.stats["no_port"] += 1
        if flags & RST:
            return
        if self.config.checksum and not checksum_ok(rip, self.address, data):
            self.stats["bad_segment"] += 1
            return
        _sp, _dp, seq, ack, off, _f, _w, _c, _u = HEADER.unpack_from(data)
        if flags & ACK:
            seg = Segment(dport, sport, seq=ack, flags=Flags.RST)
        else:
            seg_len = (
                len(data) - (off >> 4) * 4 + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
            )
            seg = Segment(
                dport, sport, seq=0, ack=(seq + seg_len) & 0xFFFFFFFF, flags=Flags.RST | Flags.ACK
            )
        out = (
            build_segment(seg, src=self.address, dst=rip)
            if self.config.checksum
            else build_segment(seg)
        )
        self._out.append((out, self.address, rip))
        self.stats["resets_sent"] += 1

    def segments_to_send(self, now: float) -> list[Datagram]:
        out = self._out
        if out:
            self._out = []
        else:
            out = []
        me = self.address
        for listener in self.listeners.values():
            if listener.has_output:
                for seg, remote in listener.segments_to_send(now):
                    out.append((seg, me, remote[0]))
        closed: list[ConnKey] | None = None
        for key, conn in self.connections.items():
            segs = conn.segments_to_send(now)
            if segs:
                rip = conn.remote_ip
                for seg in segs:
                    out.append((seg, me, rip))
            if conn.state is _CLOSED:
                if closed is None:
                    closed = []
                closed.append(key)
        if closed:
            for key in closed:
                del self.connections[key]
        return out

    # ------------------------------------------------------------------ timers

    def get_timer(self) -> float | None:
        best: float | None = None
        for listener in self.listeners.values():
            t = listener.get_timer()
            if t is not None and (best is None or t < best):
                best = t
        for conn in self.connections.values():
            t = conn.get_timer()
            if t is not None and (best is None or t < best):
                best = t
        return best

    def handle_timer(self, now: float) -> None:
        for listener in self.listeners.values():
            t = listener.get_timer()
            if t is not None and t <= now:
                listener.handle_timer(now)
        for conn in list(self.connections.values()):
            t = conn.get_timer()
            if t is not None and t <= now:
                conn.handle_timer(now)
