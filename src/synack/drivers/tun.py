"""TUN devices: the kernel hands us IP packets through a file descriptor, and takes them back.

A TUN device (``/dev/net/tun`` with ``IFF_TUN``) is a network interface whose
"wire" is this process: every IP packet the kernel routes out of it is read here
whole, one packet per `read`, and every packet written here is received by the
kernel as if it had arrived on that interface. ``IFF_NO_PI`` drops the 4-byte
packet-information prefix, so reads and writes are bare IPv4 or IPv6 packets.

The device is not persistent: it exists while the descriptor is open and
disappears when it is closed (or the process dies), so nothing is left behind.
It may be moved into another network namespace (``ip link set NAME netns NS``)
and keeps working through the same descriptor. The descriptor is non-blocking,
for a loop's ``add_reader``.
"""

from __future__ import annotations

import fcntl
import os
import struct

TUN_PATH = "/dev/net/tun"
TUNSETIFF = 0x400454CA  # _IOW('T', 202, int)
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFNAMSIZ = 16
_IFREQ = struct.Struct(f"{IFNAMSIZ}sH")
MAX_PACKET = 65535  # the largest IP packet; a read never returns a partial one


class TunDevice:
    """One TUN interface, named `name` (up to 15 bytes; empty: the kernel picks tunN)."""

    def __init__(self, name: str = "") -> None:
        raw = name.encode()
        if len(raw) >= IFNAMSIZ:
            raise ValueError(f"interface name {name!r} is longer than {IFNAMSIZ - 1} bytes")
        fd = os.open(TUN_PATH, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            answer = fcntl.ioctl(fd, TUNSETIFF, _IFREQ.pack(raw, IFF_TUN | IFF_NO_PI))
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        self.name = answer[:IFNAMSIZ].rstrip(b"\0").decode()

    def fileno(self) -> int:
        return self.fd

    def read_batch(self, max_packets: int = 64) -> list[bytes]:
        """The packets waiting now, at most `max_packets` (so one busy device cannot
        starve the other); empty if none."""
        out: list[bytes] = []
        read = os.read
        fd = self.fd
        for _ in range(max_packets):
            try:
                packet = read(fd, MAX_PACKET)
            except BlockingIOError:
                break
            if not packet:
                break
            out.append(packet)
        return out

    def write(self, packet: bytes | bytearray) -> None:
        """Give the kernel one IP packet as if it had arrived on this interface.

        Raises `OSError` when the kernel refuses it (``EINVAL`` for a malformed packet,
        ``EIO`` when the interface is down)."""
        os.write(self.fd, packet)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> TunDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
