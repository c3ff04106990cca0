"""Initial sequence numbers as RFC 6528 describes them.

    ISN = M + F(localip, localport, remoteip, remoteport, secretkey)

"M is the 4 microsecond timer" and F a keyed hash: each four-tuple gets its
own sequence space, which keeps advancing with the clock (so a new
incarnation of a connection starts above the old one), while an off-path
attacker who cannot see the hash cannot predict it.
"""

from __future__ import annotations

import hashlib
import secrets
import struct

_PORTS = struct.Struct("!HH")


def new_secret() -> bytes:
    """A fresh random key for `isn` and for SYN cookies."""
    return secrets.token_bytes(32)


def isn(
    secret: bytes, local: bytes, local_port: int, remote: bytes, remote_port: int, now: float
) -> int:
    """RFC 6528 §3: the 4 µs clock plus a keyed hash of the four-tuple, modulo 2**32."""
    h = hashlib.blake2s(
        local + remote + _PORTS.pack(local_port, remote_port), key=secret[:32], digest_size=4
    )
    m = int(now * 250_000)  # "M is the 4 microsecond timer"
    return (m + int.from_bytes(h.digest(), "big")) & 0xFFFFFFFF


def ts_offset(secret: bytes, local: bytes, local_port: int, remote: bytes, remote_port: int) -> int:
    """A per-connection offset for the timestamps clock (RFC 7323 §5.4 recommends one,
    so that TSval does not reveal the host's uptime or link its connections)."""
    h = hashlib.blake2s(
        b"ts" + local + remote + _PORTS.pack(local_port, remote_port),
        key=secret[:32],
        digest_size=4,
    )
    return int.from_bytes(h.digest(), "big")
