"""SYN cookies (RFC 4987 §3.6): a listener that keeps no state for a SYN.

When the SYN queue is full, the listener answers a SYN with a SYN-ACK whose
initial sequence number *is* the state it did not keep:

    bits 31..27  t mod 32, a counter that advances every 64 seconds
    bits 26..24  index of the MSS the client announced, rounded down to a table entry
    bits 23..0   a keyed hash of the four-tuple, t and the client's ISN

A legitimate client's final ACK acknowledges ISN+1, so the listener can check
the hash, see that t is recent, and rebuild the connection; a spoofed SYN costs
the listener nothing. Window scale and SACK, which the 32 bits cannot hold, ride
in the low six bits of our timestamp when the client uses timestamps (as Linux
does); without timestamps a cookie connection does without them.
"""

from __future__ import annotations

import hashlib
import struct

COUNTER_PERIOD = 64.0  # seconds per tick of t
VALID_TICKS = 2  # a cookie is accepted for the current and the previous tick
MSS_TABLE = (216, 536, 1220, 1300, 1440, 1460, 4312, 8960)

TS_OPTION_BITS = 6
TS_OPTION_MASK = (1 << TS_OPTION_BITS) - 1
_WSCALE_NONE = 0xF
_SACK_BIT = 0x10

_PACK = struct.Struct("!HHII")


def _counter(now: float) -> int:
    return int(now // COUNTER_PERIOD)


def _hash24(
    secret: bytes,
    local: bytes,
    local_port: int,
    remote: bytes,
    remote_port: int,
    t: int,
    client_isn: int,
) -> int:
    h = hashlib.blake2s(
        local
        + remote
        + _PACK.pack(local_port, remote_port, t & 0xFFFFFFFF, client_isn & 0xFFFFFFFF),
        key=secret[:32],
        digest_size=3,
        person=b"syncook",
    )
    return int.from_bytes(h.digest(), "big")


def mss_index(mss: int) -> int:
    """The largest table entry not above `mss` (the first entry if all are)."""
    best = 0
    for i, value in enumerate(MSS_TABLE):
        if value <= mss:
            best = i
    return best


def make_cookie(
    secret: bytes,
    local: bytes,
    local_port: int,
    remote: bytes,
    remote_port: int,
    client_isn: int,
    mss: int,
    now: float,
) -> int:
    """The ISN to put in a stateless SYN-ACK."""
    t = _counter(now)
    h = _hash24(secret, local, local_port, remote, remote_port, t, client_isn)
    return ((t & 0x1F) << 27) | (mss_index(mss) << 24) | h


def check_cookie(
    secret: bytes,
    local: bytes,
    local_port: int,
    remote: bytes,
    remote_port: int,
    client_isn: int,
    cookie: int,
    now: float,
) -> int | None:
    """The MSS encoded in a valid, recent `cookie`, or None if it is not one of ours."""
    t_now = _counter(now)
    t_bits = cookie >> 27
    for age in range(VALID_TICKS):
        t = t_now - age
        if (t & 0x1F) != t_bits:
            continue
        if _hash24(secret, local, local_port, remote, remote_port, t, client_isn) == (
            cookie & 0xFFFFFF
        ):
            return MSS_TABLE[(cookie >> 24) & 0x7]
    return None


def encode_ts_options(tsval: int, wscale: int | None, sack: bool) -> int:
    """Our SYN-ACK TSval with window scale and SACK folded into its low bits.

    The result is never later than `tsval` itself, so the peer's echo can never
    run ahead of our clock (which PAWS at the peer would punish).
    """
    bits = (_WSCALE_NONE if wscale is None else min(wscale, 14)) | (_SACK_BIT if sack else 0)
    out = (tsval & ~TS_OPTION_MASK & 0xFFFFFFFF) | bits
    if (out - tsval) & 0xFFFFFFFF < 0x80000000 and out != tsval:
        out = (out - (1 << TS_OPTION_BITS)) & 0xFFFFFFFF
    return out


def decode_ts_options(tsecr: int) -> tuple[int | None, bool]:
    """(window scale or None, SACK permitted) from the echo of `encode_ts_options`."""
    ws = tsecr & 0xF
    return (None if ws == _WSCALE_NONE else ws), bool(tsecr & _SACK_BIT)
