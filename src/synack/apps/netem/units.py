"""Strict parsing of netem-style values: ``5%``, ``20ms``, ``10mbit``, ``1MB/s``.

Each parser raises `UsageError` naming the option and the value, so a typo ends
the command with one line and exit status 2 instead of a guessed meaning. Delays
need a unit because tc reads a bare number as microseconds and most people read
it as milliseconds; a rate without a unit is refused for the same reason.
"""

from __future__ import annotations

import math
import re

from synack.errors import UsageError

_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)"
_PERCENT = re.compile(_NUMBER + r"%")
_TIME = re.compile(_NUMBER + r"(us|µs|ms|s|min)?")
_RATE = re.compile(_NUMBER + r"([kKmMgG]?)(bit|bps|B/s)?")
_TIME_UNITS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0}
_PREFIX = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9}

# The longest delay or duration accepted: a day, so a typo cannot hold packets for ever.
MAX_SECONDS = 86400.0


def parse_percent(option: str, text: str) -> float:
    """``5%`` -> 0.05; a probability written as a percentage, as netem writes it."""
    m = _PERCENT.fullmatch(text.strip())
    if m is None:
        raise UsageError(f"invalid {option} {text!r}: a percentage, e.g. 5% or 0.1%")
    value = float(m.group(1)) / 100.0
    if value > 1.0:
        raise UsageError(f"invalid {option} {text!r}: at most 100%")
    return value


def parse_time(option: str, text: str, *, bare_seconds: bool = False) -> float:
    """``20ms`` -> 0.02 seconds. A bare number is refused unless `bare_seconds`."""
    m = _TIME.fullmatch(text.strip())
    if m is None:
        raise UsageError(f"invalid {option} {text!r}: a time, e.g. 20ms, 1.5s or 500us")
    unit = m.group(2)
    if unit is None:
        if not bare_seconds:
            raise UsageError(f"invalid {option} {text!r}: give a unit, e.g. {text.strip()}ms")
        unit = "s"
    value = float(m.group(1)) * _TIME_UNITS[unit]
    if not (math.isfinite(value) and value <= MAX_SECONDS):
        raise UsageError(f"invalid {option} {text!r}: at most a day")
    return value


def parse_rate(option: str, text: str) -> float:
    """A rate in bytes per second.

    Bits unless the unit says bytes: ``10M``, ``10mbit``, ``10Mbps`` are 10 megabits
    per second (1,250,000 bytes/s), ``1MB/s`` is a million bytes per second; prefixes
    are powers of 1000, as in tc and iperf. (tc alone reads ``mbps`` as megabytes; here
    ``bps`` means bits, as everyone else writes it.)
    """
    m = _RATE.fullmatch(text.strip())
    if m is None or (not m.group(2) and not m.group(3)):
        raise UsageError(
            f"invalid {option} {text!r}: a rate with a unit, e.g. 10mbit, 500kbit or 2MB/s"
        )
    value = float(m.group(1)) * _PREFIX[m.group(2).lower()]
    per_second = value if m.group(3) == "B/s" else value / 8.0
    if not (math.isfinite(per_second) and per_second >= 1.0):
        raise UsageError(f"invalid {option} {text!r}: at least 8bit (one byte per second)")
    return per_second


def parse_count(option: str, text: str, *, minimum: int = 1) -> int:
    try:
        value = int(text.strip(), 10)
    except ValueError:
        raise UsageError(f"invalid {option} {text!r}: a whole number") from None
    if value < minimum:
        raise UsageError(f"invalid {option} {text!r}: at least {minimum}")
    return value


def split_directions(option: str, text: str) -> tuple[str, str]:
    """``5%`` -> both directions alike; ``5%/1%`` -> (up, down)."""
    parts = text.split("/")
    # "B/s" contains a slash of its own: rejoin a trailing "s" split off a rate unit.
    joined: list[str] = []
    for part in parts:
        if part == "s" and joined and joined[-1].endswith("B"):
            joined[-1] += "/s"
        else:
            joined.append(part)
    if len(joined) == 1:
        return joined[0], joined[0]
    if len(joined) == 2 and all(p.strip() for p in joined):
        return joined[0], joined[1]
    raise UsageError(f"invalid {option} {text!r}: one value, or UP/DOWN (e.g. 5%/1%)")


def format_rate(per_second: float) -> str:
    """Bytes per second in tc's bit units: 1250000 -> ``10mbit``."""
    bits = per_second * 8.0
    for unit, scale in (("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3)):
        if bits >= scale:
            return f"{bits / scale:g}{unit}"
    return f"{bits:g}bit"


def format_time(seconds: float) -> str:
    if seconds == 0:
        return "0ms"
    if seconds < 1e-3:
        return f"{seconds * 1e6:g}us"
    if seconds < 1.0:
        return f"{seconds * 1e3:g}ms"
    return f"{seconds:g}s"


def format_percent(p: float) -> str:
    return f"{p * 100:g}%"
