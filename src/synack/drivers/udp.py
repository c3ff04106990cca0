"""The UDP carrier: one TCP segment is the payload of one UDP datagram.

TCP ports are the UDP ports, so one carrier (one UDP socket) serves one local TCP
port: a listener and all its connections, or one client. The carrier moves whole
segments and nothing else; it has no thread, timer or loop of its own. An engine
drives it, from asyncio (`loop.add_reader(carrier.fileno(), ...)`) or from a
blocking caller (`select` on `fileno()`), and calls `send_batch` / `recv_batch`.

**Batching.** Python pays a few microseconds per system call, more than the kernel
spends moving a 1.5 KB datagram, so the carrier moves many datagrams per call where
Linux allows it. With UDP GSO (`UDP_SEGMENT` in `sendmsg` ancillary data) one call
carries up to 64 KiB of equal-size segments and the kernel cuts them apart; every
datagram on the wire is still one whole segment, because each `gso_size` chunk is
one segment with its own TCP header. With UDP GRO (`UDP_GRO` set on the socket) one
`recvmsg` may return several datagrams of one sender coalesced, and the ancillary
data gives the size to cut them at. A setting forces one datagram per call instead.

**Sizes.** The MSS is the MTU less 20 bytes of IPv4, 8 of UDP and 20 of TCP header:
1452 for the default 1500 (1448 once the engine's CRC-32 trailer is counted:
`CarrierConfig.segment_mss`), which is safe on any path that carries 1500-byte IP
packets (tunnels such as PPPoE (1492) or WireGuard (1420) need a smaller `mtu`).
TCP options come off the MSS segment by segment (RFC 6691): timestamps take 12
bytes of every segment (1440 bytes of payload at MTU 1500), SACK blocks 8 bytes
each plus 2-4 of padding while the receiver reports holes. `LOOPBACK_MTU` gives
datagrams of up to 65507 bytes, the largest UDP payload IPv4 can carry.

**What the carrier can detect.** The socket has `IP_RECVERR` (`IPV6_RECVERR`) on,
so ICMP errors about datagrams we sent are queued on the socket with the
destination they were sent to, and `errors()` reports them as (errno, (host, port),
the start of the datagram the error quotes).
A port with nothing bound on a host that answers with ICMP port-unreachable gives
`ECONNREFUSED` for that exact address: an engine may fail a connection in SYN-SENT
on it (RFC 5461 allows acting on this "hard" error while connecting), which is how
connecting to a port where nobody listens fails at once, as with the kernel's TCP.
Host and network unreachable (`EHOSTUNREACH`, `ENETUNREACH`) come the same way
when a router says so. On loopback, Linux answers every such datagram.

**What it cannot detect.** Silence: a host that is switched off or unplugged, a
firewall that drops without answering, a NAT mapping that expired, a path that
eats the datagrams; none of these says anything, and only TCP's retransmission
timeout finds them. ICMP itself is unreliable: routers and hosts rate-limit it
(Linux answers a remote host with about one error per second after a short burst,
net.ipv4.icmp_ratelimit), firewalls filter it, and it carries no proof that it is
genuine, so after the handshake one error should never end a connection on its own
(RFC 5461, RFC 5927). When the peer's process exits on a remote host, the next
datagrams may draw a port-unreachable, or nothing if that host rate-limits or
filters ICMP; the kernel's TCP would answer with a RST. The core makes up for that
where it safely can: a port-unreachable quoting a sequence number in flight starts
a check, and a second one an RTO later with the peer silent resets the connection
(`Connection.port_unreachable`, docs/PROTOCOL.md §5.4). An ICMP error also reaches
us only while the socket exists and only for datagrams this socket sent; it quotes
the start of the datagram, which `errors()` keeps (a TCP header's worth).

With `IP_RECVERR` on, Linux makes a pending ICMP error fail the next `send` or
`recv` on the socket once (with `ECONNREFUSED`, say) without sending or receiving
anything. The carrier treats that as a signal: it drains the error queue and tries
the same call again, so a pending error never loses a datagram or raises to the
caller. A queued error also makes the socket poll readable (POLLERR), so an engine
waiting to read wakes up; `recv_batch` drains the queue when it finds no data, and
`errors()` hands over what was collected.
"""

from __future__ import annotations

import errno
import mmap
import socket
import struct
import sys
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = [
    "CRC_TRAILER",
    "DEFAULT_MTU",
    "INTEGRITY_CHECKS",
    "LOOPBACK_MTU",
    "MAX_UDP_PAYLOAD",
    "Address",
    "Buffer",
    "CarrierConfig",
    "CarrierError",
    "CarrierStats",
    "Datagram",
    "UdpCarrier",
    "gso_runs",
    "mss_for",
]

Address = tuple[str, int]
Buffer = bytes | bytearray | memoryview


class CarrierError(NamedTuple):
    """An error about datagrams sent to `dest`: an ICMP error quotes the start of the
    datagram that drew it (`quoted`: its payload, our TCP segment's header first) and
    names the host that sent it (`offender`: `dest`'s own, or a router's or a
    firewall's on the way; empty for an error raised locally)."""

    errno: int
    dest: Address
    quoted: bytes = b""
    offender: str = ""


# One datagram: a buffer, or several sent gathered (sendmsg's iovec), so that a
# segment's header, its payload and its trailer need not be joined by a copy.
Datagram = Buffer | tuple[Buffer, ...]

IPV4_HEADER = 20
IPV6_HEADER = 40
UDP_HEADER = 8
TCP_HEADER = 20

# The largest UDP payload in one IPv4 datagram: 65535 less the IPv4 and UDP headers.
MAX_UDP_PAYLOAD = 65535 - IPV4_HEADER - UDP_HEADER  # 65507
DEFAULT_MTU = 1500
# An MTU whose datagrams carry MAX_UDP_PAYLOAD bytes; loopback (MTU 65536) passes them whole.
LOOPBACK_MTU = MAX_UDP_PAYLOAD + IPV4_HEADER + UDP_HEADER  # 65535
# The smallest MTU whose MSS the TCP core accepts (88 bytes, its floor).
MIN_MTU = 88 + TCP_HEADER + UDP_HEADER + IPV4_HEADER  # 136

# Linux names Python's socket module lacks (linux/udp.h, linux/in.h, linux/in6.h).
SOL_UDP = 17
UDP_SEGMENT = 103
UDP_GRO = 104
IP_RECVERR = 11
IPV6_RECVERR = 25
SOL_IP = 0
SOL_IPV6 = 41
# Linux accepts at most this many segments in one GSO send (UDP_MAX_SEGMENTS; newer
# kernels raised it to 128, 64 works everywhere).
GSO_MAX_SEGMENTS = 64

# Each receive gets room for the largest datagram there is (IPv6 allows 65527 bytes),
# so no datagram is ever cut short; a GRO read is smaller than 64 KiB as well.
_SLOT = 65536
_GRO_CMSG_SPACE = socket.CMSG_SPACE(4)
_ERR_CMSG_SPACE = 512
_EXTENDED_ERR = struct.Struct("=IBBBBII")  # struct sock_extended_err, before the offender
_FAMILY = struct.Struct("=H")  # the offender's sockaddr family, after sock_extended_err
SO_EE_ORIGIN_LOCAL = 1  # ee_origin of an error the sending host raised itself
_BYTEORDER = sys.byteorder
_MSG_TRUNC = int(socket.MSG_TRUNC)  # a plain int: an IntFlag's & costs a Python call
# Errors that a send fails with when the kernel will not take the datagram now but
# may later: the caller waits for the socket to be writable and sends the rest.
_TRY_LATER = (errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS)
# Errors a GSO send fails with when the route's device cannot segment for us.
_GSO_REFUSED = (errno.EIO, errno.EINVAL)
# Errors a setsockopt fails with when the kernel does not know the option.
_NO_OPTION = (errno.ENOPROTOOPT, errno.EINVAL, errno.EOPNOTSUPP)
# How many times one call is retried after failing on a pending ICMP error.
_RETRIES = 2
# Receives in a row that may fail on pending ICMP errors before the failure is real.
_RECV_RETRIES = 8
# ICMP errors kept for errors() if nobody collects them; older ones are dropped.
_ERRORS_KEPT = 1024
# Bytes of the datagram an ICMP error quotes that are kept: a TCP header without options.
_QUOTED_KEPT = 20


# The integrity checks a carriage can use, and the bytes the CRC-32 trailer takes.
INTEGRITY_CHECKS = ("crc32", "tcp")
CRC_TRAILER = 4


def _offender(data: bytes) -> str:
    """The address in the sockaddr that follows a sock_extended_err ("" if none)."""
    at = _EXTENDED_ERR.size
    if len(data) < at + _FAMILY.size:
        return ""
    family = _FAMILY.unpack_from(data, at)[0]
    if family == socket.AF_INET and len(data) >= at + 8:
        return socket.inet_ntop(socket.AF_INET, data[at + 4 : at + 8])
    if family == socket.AF_INET6 and len(data) >= at + 24:
        return socket.inet_ntop(socket.AF_INET6, data[at + 8 : at + 24])
    return ""


def mss_for(mtu: int, *, ipv6: bool = False) -> int:
    """The MSS for TCP in UDP on a path with this MTU: MTU - IP - UDP - TCP headers.

    As RFC 9293 §3.7.1 defines it, the MSS counts the TCP payload behind a TCP header
    without options; options actually present come off each segment (RFC 6691).
    """
    if not MIN_MTU <= mtu <= LOOPBACK_MTU:
        raise ValueError(f"mtu {mtu} out of range {MIN_MTU}..{LOOPBACK_MTU}")
    return mtu - (IPV6_HEADER if ipv6 else IPV4_HEADER) - UDP_HEADER - TCP_HEADER


@dataclass(frozen=True, slots=True)
class CarrierConfig:
    """How a carrier sizes its datagrams and sockets, and whether it batches."""

    # The largest IP packet a datagram may make; the MSS follows from it (mss_for).
    mtu: int = DEFAULT_MTU
    # UDP GSO / GRO: None uses them if the kernel offers them, False forces one
    # datagram per system call, True requires them (OSError when the kernel refuses).
    gso: bool | None = None
    gro: bool | None = None
    # Requested socket buffers (SO_SNDBUF / SO_RCVBUF). Linux caps a request at
    # net.core.wmem_max / rmem_max and reports double what it grants (the doubling pays
    # for its bookkeeping); the carrier reports what getsockopt says it got. A large
    # receive buffer is what keeps a burst from being dropped before we read it.
    send_buffer: int = 4 * 1024 * 1024
    receive_buffer: int = 4 * 1024 * 1024
    # Bytes preallocated for received datagrams; recv_batch returns views into it.
    receive_area: int = 1024 * 1024
    # What catches a datagram altered on the way (docs/PROTOCOL.md §5.3): "crc32", a
    # CRC-32 of the segment after it in every datagram, with the TCP checksum left
    # unused; or "tcp", the TCP checksum alone, as on an IP path. Both ends must agree.
    integrity: str = "crc32"

    def __post_init__(self) -> None:
        mss_for(self.mtu)  # validates the range
        if self.integrity not in INTEGRITY_CHECKS:
            raise ValueError(
                f"integrity must be one of {', '.join(INTEGRITY_CHECKS)}, not {self.integrity!r}"
            )
        if self.send_buffer < 1 or self.receive_buffer < 1:
            raise ValueError("socket buffer sizes must be positive")
        if self.receive_area < _SLOT:
            raise ValueError(f"receive_area must hold one largest datagram ({_SLOT} bytes)")

    @property
    def mss(self) -> int:
        """The MSS for this MTU over IPv4."""
        return mss_for(self.mtu)

    @property
    def segment_mss(self) -> int:
        """The MSS a connection announces: the datagram's room less the integrity trailer."""
        return self.mss - (CRC_TRAILER if self.integrity == "crc32" else 0)


@dataclass(slots=True)
class CarrierStats:
    """Counts since the carrier opened. Calls against datagrams shows the batching."""

    datagrams_sent: int = 0
    bytes_sent: int = 0
    send_calls: int = 0  # successful sendto/sendmsg calls
    send_blocked: int = 0  # sends stopped by a full socket (EAGAIN/ENOBUFS)
    send_refused: int = 0  # datagrams the kernel refused outright (see errors())
    datagrams_received: int = 0
    bytes_received: int = 0
    recv_calls: int = 0  # successful recvfrom_into/recvmsg_into calls
    # Datagrams cut short (MSG_TRUNC), dropped: a check, as every read has room for the
    # largest datagram there is.
    truncated: int = 0
    errors: int = 0  # errors reported by errors(): ICMP, local, refused sends
    gso_fallbacks: int = 0  # GSO sends the route refused; GSO is off afterwards


def gso_runs(sizes: Sequence[int], max_payload: int = MAX_UDP_PAYLOAD) -> list[tuple[int, int]]:
    """Split segments of these sizes into GSO sends: a list of [start, end) ranges.

    A run is segments of one size, the last of which may be shorter (the kernel cuts a
    GSO buffer every gso_size bytes, so only the final piece may be short); a larger
    segment, the segment limit, or max_payload bytes start a new run.
    """
    runs: list[tuple[int, int]] = []
    n = len(sizes)
    i = 0
    while i < n:
        size = sizes[i]
        limit = max(1, min(GSO_MAX_SEGMENTS, max_payload // size)) if size else 1
        j = i + 1
        end = min(n, i + limit)
        while j < end:
            s = sizes[j]
            if s > size or s == 0:
                break
            j += 1
            if s < size:
                break
        runs.append((i, j))
        i = j
    return runs


class UdpCarrier:
    """One non-blocking UDP socket that sends and receives TCP segments in batches."""

    def __init__(
        self,
        config: CarrierConfig | None = None,
        *,
        family: socket.AddressFamily = socket.AF_INET,
        sock: socket.socket | None = None,
    ) -> None:
        """Open (or adopt) a UDP socket and set it up; `bind` gives it its port."""
        self.config = cfg = config if config is not None else CarrierConfig()
        if sock is None:
            sock = socket.socket(family, socket.SOCK_DGRAM)
        elif sock.type != socket.SOCK_DGRAM or sock.family not in (
            socket.AF_INET,
            socket.AF_INET6,
        ):
            raise ValueError("UdpCarrier needs an AF_INET or AF_INET6 datagram socket")
        self._sock = sock
        self.family = sock.family
        self._v6 = sock.family == socket.AF_INET6
        self.stats = CarrierStats()
        self._errors: deque[CarrierError] = deque(maxlen=_ERRORS_KEPT)
        self._gso_cmsg: dict[int, list[tuple[int, int, bytes]]] = {}
        self._errors_checked = False  # recv_batch has looked for errors since errors()
        try:
            sock.setblocking(False)
            if self._v6:
                sock.setsockopt(SOL_IPV6, IPV6_RECVERR, 1)
            else:
                sock.setsockopt(SOL_IP, IP_RECVERR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, cfg.send_buffer)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, cfg.receive_buffer)
            self.send_buffer: int = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
            self.receive_buffer: int = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            self._gso = cfg.gso is not False and self._probe_gso(required=cfg.gso is True)
            self._gro = cfg.gro is not False and self._enable_gro(required=cfg.gro is True)
        except BaseException:
            sock.close()
            raise
        # Anonymous memory, not a bytearray (which zeroes, and so makes resident, all of it):
        # a page costs RAM only once a datagram lands in it, so a connection that receives
        # little (one UDP socket per client connection) stays small.
        self._area = mmap.mmap(-1, cfg.receive_area)
        self._view = memoryview(self._area)
        # The UDP payload of a datagram as large as the MTU allows (recv_batch's until_short).
        self._full_datagram = cfg.mtu - (IPV6_HEADER if self._v6 else IPV4_HEADER) - UDP_HEADER

    # ------------------------------------------------------------------ setup

    def _probe_gso(self, *, required: bool) -> bool:
        """Whether the kernel takes UDP_SEGMENT; set as a socket default and cleared."""
        try:
            self._sock.setsockopt(SOL_UDP, UDP_SEGMENT, 1200)
            self._sock.setsockopt(SOL_UDP, UDP_SEGMENT, 0)
        except OSError as e:
            if e.errno not in _NO_OPTION or required:
                raise
            return False
        return True

    def _enable_gro(self, *, required: bool) -> bool:
        try:
            self._sock.setsockopt(SOL_UDP, UDP_GRO, 1)
        except OSError as e:
            if e.errno not in _NO_OPTION or required:
                raise
            return False
        return True

    def bind(self, host: str = "127.0.0.1", port: int = 0) -> Address:
        """Bind to (host, port); port 0 picks a free one. Returns the address bound."""
        self._sock.bind((host, port))
        return self.sockname

    @classmethod
    def bound(
        cls, host: str = "127.0.0.1", port: int = 0, config: CarrierConfig | None = None
    ) -> UdpCarrier:
        """A carrier bound to (host, port), IPv6 when the host is an IPv6 address."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        carrier = cls(config, family=family)
        try:
            carrier.bind(host, port)
        except BaseException:
            carrier.close()
            raise
        return carrier

    @classmethod
    def connected(cls, host: str, port: int, config: CarrierConfig | None = None) -> UdpCarrier:
        """A carrier on a new port connected to (host, port), an IP address: the kernel
        hands it datagrams from there only (a relay's socket towards its target)."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        carrier = cls(config, family=family)
        try:
            carrier._sock.connect((host, port))
        except BaseException:
            carrier.close()
            raise
        return carrier

    @property
    def sockname(self) -> Address:
        name = self._sock.getsockname()
        return (name[0], name[1])

    @property
    def gso(self) -> bool:
        """True while sends use UDP GSO (several datagrams per call)."""
        return self._gso

    @property
    def gro(self) -> bool:
        """True when receives use UDP GRO (several datagrams per call)."""
        return self._gro

    @property
    def mss(self) -> int:
        return mss_for(self.config.mtu, ipv6=self._v6)

    def fileno(self) -> int:
        return self._sock.fileno()

    @property
    def sock(self) -> socket.socket:
        """The UDP socket itself (an asyncio server lists it as its listening socket)."""
        return self._sock

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> UdpCarrier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ sending

    def send_batch(self, segments: Sequence[Datagram], addr: Address) -> int:
        """Send segments to one peer, in order; returns how many the kernel dealt with.

        Each is one datagram: a buffer, or a tuple of buffers that make it up together
        (sent gathered, not joined), the two kinds in any mix. A return short of
        len(segments) means the socket buffer is full (EAGAIN or ENOBUFS): nothing from
        segments[count:] went out; wait until the socket is writable and send those. A datagram the kernel refuses for
        good (too large, a bad address, no route) is dropped as the network would drop
        it, counted in stats.send_refused, and reported by errors().
        """
        n = len(segments)
        if n == 0:
            return 0
        if not self._gso or n == 1:
            return self._send_each(segments, 0, n, addr)
        sizes = [len(s) if s.__class__ is not tuple else sum(map(len, s)) for s in segments]
        for i, j in gso_runs(sizes):
            if j - i == 1:
                if self._send_each(segments, i, j, addr) < j:
                    return i
            else:
                reached = self._send_run(segments, i, j, sizes[i], addr)
                if reached < j:
                    return reached
        return n

    def _send_run(
        self, segments: Sequence[Datagram], i: int, j: int, size: int, addr: Address
    ) -> int:
        """segments[i:j] in one GSO sendmsg; returns the index reached (i when the
        socket is full)."""
        cmsg = self._gso_cmsg.get(size)
        if cmsg is None:
            cmsg = self._gso_cmsg[size] = [(SOL_UDP, UDP_SEGMENT, size.to_bytes(2, _BYTEORDER))]
        chunk: Sequence[Any] = segments[i:j]
        # Any datagram of the run may come in parts, whatever its place: with the TCP
        # checksum the engine sends a retransmission whole and new data gathered
        # (Config.gather_from), both full-sized, in one run, and its short end whole.
        # (The scan costs about 2 µs for 64 datagrams, against tens for their sendmsg.)
        if any(d.__class__ is tuple for d in chunk):
            chunk = [p for d in chunk for p in (d if d.__class__ is tuple else (d,))]
        attempt = 0
        while True:
            try:
                nbytes = self._sock.sendmsg(chunk, cmsg, 0, addr)
                break
            except OSError as e:
                if e.errno in _TRY_LATER:
                    self.stats.send_blocked += 1
                    return i
                if e.errno in _GSO_REFUSED:
                    return self._gso_refused(segments, i, j, addr)
                if self._give_up(e, attempt, addr, j - i):
                    return j
                attempt += 1
        st = self.stats
        st.send_calls += 1
        st.datagrams_sent += j - i
        st.bytes_sent += nbytes
        return j

    def _gso_refused(self, segments: Sequence[Datagram], i: int, j: int, addr: Address) -> int:
        """A GSO send failed with EIO/EINVAL: the route's device cannot segment for us
        (or the address is bad). Send the run one by one; if that works, GSO was the
        trouble, and it stays off from now on."""
        before = self.stats.datagrams_sent
        reached = self._send_each(segments, i, j, addr)
        if self.stats.datagrams_sent > before:
            self._gso = False
            self.stats.gso_fallbacks += 1
        return reached

    def _send_each(self, segments: Sequence[Datagram], i: int, j: int, addr: Address) -> int:
        """One sendto (sendmsg for a datagram in parts) per segment of segments[i:j];
        returns the index reached."""
        sendto = self._sock.sendto
        sendmsg = self._sock.sendmsg
        sent = 0
        nbytes = 0
        attempt = 0
        while i < j:
            datagram = segments[i]
            try:
                if datagram.__class__ is tuple:
                    nbytes += sendmsg(datagram, (), 0, addr)
                else:
                    nbytes += sendto(datagram, addr)  # type: ignore[arg-type]
                sent += 1
            except OSError as e:
                if e.errno in _TRY_LATER:
                    self.stats.send_blocked += 1
                    break
                if not self._give_up(e, attempt, addr, 1):
                    attempt += 1
                    continue
            attempt = 0
            i += 1
        st = self.stats
        st.send_calls += sent
        st.datagrams_sent += sent
        st.bytes_sent += nbytes
        return i

    def _give_up(self, e: OSError, attempt: int, addr: Address, count: int) -> bool:
        """After a send failed with e, drain the error queue; True: drop the datagrams.

        A pending ICMP error fails one call, which consumes it, so a retry goes through.
        An error the kernel queued locally for this very send (EMSGSIZE) is its own, as
        is one that fails every retry (no route, a bad address): then the datagrams are
        dropped and the error is reported once.
        """
        found = self._drain_errqueue(addr)
        if (e.errno, SO_EE_ORIGIN_LOCAL) in found:
            self.stats.send_refused += count
            return True
        if attempt < _RETRIES:
            return False
        self._errors.append(CarrierError(e.errno or 0, addr))
        self.stats.errors += 1
        self.stats.send_refused += count
        return True

    # ------------------------------------------------------------------ receiving

    def recv_batch(
        self, max_datagrams: int = 1024, max_bytes: int | None = None, *, until_short: bool = False
    ) -> list[tuple[memoryview, Address]]:
        """Every datagram waiting, up to a bound: a list of (segment, sender address).

        Reads until the socket has nothing more (EAGAIN), max_datagrams are in hand (a
        GRO read may carry it past by one read's worth), or the preallocated area, or
        max_bytes of it, cannot hold another largest datagram. The views point into that
        area and are valid until the next receive; copy what must outlive it.

        With `until_short`, a read that brought less than one full-sized datagram (the
        MTU's worth) also ends the batch: most likely the end of a burst, and asking
        again would cost a system call that fails with EAGAIN, about as much as the
        request/response traffic's whole receive. Anything still queued keeps the
        socket readable, so the next wake-up reads it.
        """
        return [
            (view[k : k + size], addr)
            for view, size, addr in self.recv_reads(
                max_datagrams, max_bytes, until_short=until_short
            )
            for k in range(0, len(view) or 1, size)  # an empty datagram is one too
        ]

    def recv_reads(
        self, max_datagrams: int = 1024, max_bytes: int | None = None, *, until_short: bool = False
    ) -> list[tuple[memoryview, int, Address]]:
        """`recv_batch` by read: (bytes of one read, size to cut them at, sender) each.

        One read is one datagram (size is its length), or with GRO several of one
        sender's, each `size` bytes but the last, which may be shorter. An engine cuts
        them itself, in the loop that checks them, instead of having a list of views
        made first.
        """
        limit = len(self._area) if max_bytes is None else min(max_bytes, len(self._area))
        self._errors_checked = max_datagrams > 0 and limit >= _SLOT  # a receive is made
        short = self._full_datagram if until_short else 0
        if self._gro:
            return self._recv_gro(limit - _SLOT, max_datagrams, short)
        return self._recv_each(limit - _SLOT, max_datagrams, short)

    def _recv_each(
        self, limit: int, max_datagrams: int, short: int
    ) -> list[tuple[memoryview, int, Address]]:
        """One datagram per recvfrom_into (cheaper than recvmsg_into, which only GRO
        needs); each read has room for the largest datagram, so none is cut short."""
        view = self._view
        recv = self._sock.recvfrom_into
        v6 = self._v6
        out: list[tuple[memoryview, int, Address]] = []
        append = out.append
        off = 0
        count = 0
        failed = 0
        while count < max_datagrams and off <= limit:
            try:
                n, addr = recv(view[off : off + _SLOT])
            except BlockingIOError:
                if not count:
                    self._drain_errqueue()  # woken by POLLERR, perhaps
                break
            except OSError:
                # A pending ICMP error fails one receive, which consumes it, and takes no
                # data; the same failure again and again is a real one (a closed socket).
                failed += 1
                if failed > _RECV_RETRIES:
                    raise
                self._drain_errqueue()
                continue
            failed = 0
            end = off + n
            append((view[off:end], n or 1, (addr[0], addr[1]) if v6 else addr))
            off = end
            count += 1
            if n < short:
                break
        st = self.stats
        st.recv_calls += count
        st.datagrams_received += count
        st.bytes_received += off
        return out

    def _recv_gro(
        self, limit: int, max_datagrams: int, short: int
    ) -> list[tuple[memoryview, int, Address]]:
        """recvmsg_into, each read perhaps several datagrams of one sender coalesced;
        the UDP_GRO control message gives the size to cut them at (the last may be
        shorter), and is absent when the read is one datagram."""
        view = self._view
        recv = self._sock.recvmsg_into
        v6 = self._v6
        out: list[tuple[memoryview, int, Address]] = []
        append = out.append
        off = 0
        calls = 0
        count = 0
        failed = 0
        while count < max_datagrams and off <= limit:
            try:
                n, anc, flags, addr = recv([view[off : off + _SLOT]], _GRO_CMSG_SPACE)
            except BlockingIOError:
                if not calls:
                    self._drain_errqueue()  # woken by POLLERR, perhaps
                break
            except OSError:
                failed += 1
                if failed > _RECV_RETRIES:
                    raise
                self._drain_errqueue()
                continue
            failed = 0
            calls += 1
            if flags & _MSG_TRUNC:
                self.stats.truncated += 1
                continue
            if v6:
                addr = (addr[0], addr[1])
            end = off + n
            size = 0
            for level, kind, data in anc:
                if level == SOL_UDP and kind == UDP_GRO:
                    size = int.from_bytes(data[:4], _BYTEORDER)
            if 0 < size < n:
                append((view[off:end], size, addr))
                count += (n + size - 1) // size
            else:
                append((view[off:end], n or 1, addr))
                count += 1
            off = end
            if n < short:
                break
        st = self.stats
        st.recv_calls += calls
        st.datagrams_received += count
        st.bytes_received += off
        return out

    # ------------------------------------------------------------------ errors

    def errors(self) -> list[CarrierError]:
        """ICMP (and local) errors since the last call: (errno, destination, quoted) each.

        ECONNREFUSED means the destination host said no process has that UDP port.
        Right after recv_batch this costs no system call: its first receive fails on
        any error then pending, and one that arrives later wakes the reader again.
        """
        if self._errors_checked:
            self._errors_checked = False
        else:
            self._drain_errqueue()
        out = list(self._errors)
        self._errors.clear()
        return out

    def _drain_errqueue(self, sending_to: Address | None = None) -> list[tuple[int, int]]:
        """Move every entry of the socket's error queue into the errors list; returns
        the (errno, origin) of each.

        An ICMP error names the destination of the datagram that drew it. An error the
        kernel raised locally during a send names the address without its port (Linux
        fills in the socket's, 0 when unconnected), so it is credited to `sending_to`.
        """
        recvmsg = self._sock.recvmsg
        found: list[tuple[int, int]] = []
        while True:
            try:
                quoted, anc, _flags, addr = recvmsg(
                    _QUOTED_KEPT, _ERR_CMSG_SPACE, socket.MSG_ERRQUEUE
                )
            except BlockingIOError:
                break
            for level, kind, data in anc:
                if (level, kind) in ((SOL_IP, IP_RECVERR), (SOL_IPV6, IPV6_RECVERR)):
                    err, origin = _EXTENDED_ERR.unpack_from(data)[:2]
                    if origin == SO_EE_ORIGIN_LOCAL and sending_to is not None:
                        dest = sending_to
                    else:
                        dest = (addr[0], addr[1]) if addr else ("", 0)
                    offender = "" if origin == SO_EE_ORIGIN_LOCAL else _offender(data)
                    self._errors.append(CarrierError(err, dest, quoted, offender))
                    found.append((err, origin))
        if found:
            self.stats.errors += len(found)
        return found
