"""TCP sequence numbers: 32-bit values compared modulo 2**32 (RFC 9293 §3.4).

"It is essential to remember that the actual sequence number space is finite,
though very large ... all arithmetic dealing with sequence numbers must be
performed modulo 2**32." Comparison is defined by the signed distance: `a` is
before `b` when ``(b - a) mod 2**32`` lies in ``(0, 2**31)``.

`Seq` is the small value type for code that wants readable comparisons. The
TCP core itself keeps *unwrapped* sequence numbers (plain ints that grow past
2**32) so its hot paths compare with ordinary ``<``; `unwrap` converts a 32-bit
wire value to the unwrapped value nearest a reference, and ``& MASK`` goes back.
"""

from __future__ import annotations

MOD = 1 << 32
MASK = MOD - 1
HALF = 1 << 31


def seq_diff(a: int, b: int) -> int:
    """The signed distance ``a - b`` in sequence space, in [-2**31, 2**31)."""
    d = (a - b) & MASK
    return d - MOD if d >= HALF else d


def seq_lt(a: int, b: int) -> bool:
    return seq_diff(a, b) < 0


def seq_le(a: int, b: int) -> bool:
    return seq_diff(a, b) <= 0


def seq_gt(a: int, b: int) -> bool:
    return seq_diff(a, b) > 0


def seq_ge(a: int, b: int) -> bool:
    return seq_diff(a, b) >= 0


def unwrap(value: int, near: int) -> int:
    """The unwrapped number congruent to 32-bit `value` that lies closest to `near`."""
    d = (value - near) & MASK
    return near + (d - MOD if d >= HALF else d)


class Seq:
    """A 32-bit sequence number; ``+``/``-`` with ints wrap, comparisons are modulo 2**32.

    Ordering is only meaningful between numbers less than 2**31 apart, as in TCP
    itself; two numbers exactly 2**31 apart compare neither less nor greater
    in the direction that would be ambiguous (``a < b`` is False both ways).
    """

    __slots__ = ("value",)

    def __init__(self, value: int) -> None:
        self.value = value & MASK

    def __add__(self, n: int) -> Seq:
        return Seq(self.value + n)

    def __sub__(self, other: Seq | int) -> Seq | int:
        """``Seq - int`` is a Seq; ``Seq - Seq`` is their signed distance."""
        if isinstance(other, Seq):
            return seq_diff(self.value, other.value)
        return Seq(self.value - other)

    def __lt__(self, other: Seq) -> bool:
        return 0 < (other.value - self.value) & MASK < HALF

    def __le__(self, other: Seq) -> bool:
        return self.value == other.value or self < other

    def __gt__(self, other: Seq) -> bool:
        return other < self

    def __ge__(self, other: Seq) -> bool:
        return other <= self

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Seq):
            return self.value == other.value
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.value)

    def __int__(self) -> int:
        return self.value

    def __index__(self) -> int:
        return self.value

    def __repr__(self) -> str:
        return f"Seq({self.value})"

    def in_window(self, start: Seq, size: int) -> bool:
        """``start <= self < start + size`` in sequence space (RFC 9293 §3.4's acceptability tests)."""
        return (self.value - start.value) & MASK < size
