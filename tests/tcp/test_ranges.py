"""RangeSet (the SACK scoreboard's storage) against a plain set of integers."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from synack.tcp.ranges import RangeSet

ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(0, 300), st.integers(0, 40)),
        st.tuples(st.just("trim"), st.integers(0, 300), st.just(0)),
        # At or just past the top: the next segment of a run, the newest SACK block.
        st.tuples(st.just("top"), st.integers(0, 3), st.integers(0, 40)),
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(ops, st.integers(0, 340), st.integers(0, 60))
def test_rangeset_matches_a_set_of_numbers(
    steps: list[tuple[str, int, int]], probe: int, span: int
) -> None:
    ranges = RangeSet()
    model: set[int] = set()
    for op, a, n in steps:
        if op == "top":
            op = "add"
            a += ranges.ends[-1] if ranges else 0
        if op == "add":
            fresh = set(range(a, a + n)) - model
            assert ranges.add(a, a + n) == len(fresh)
            model |= fresh
        else:
            ranges.trim_below(a)
            model = {x for x in model if x >= a}
        assert ranges.total == len(model)
        pairs = list(ranges)
        assert all(e1 < s2 for (_s1, e1), (s2, _e2) in pairwise(pairs))
        assert {x for s, e in pairs for x in range(s, e)} == model
    assert (ranges.find(probe) is not None) == (probe in model)
    gap = ranges.next_gap(probe)
    assert gap not in model and all(x in model for x in range(probe, gap))
    assert ranges.covered(probe, probe + span) == len(model & set(range(probe, probe + span)))
    nxt = ranges.next_start(probe)
    starts = [s for s, _e in ranges if s > probe]
    assert nxt == (starts[0] if starts else None)


def test_adjacent_ranges_merge_and_clear_empties() -> None:
    ranges = RangeSet()
    ranges.add(10, 20)
    ranges.add(30, 40)
    assert ranges.add(20, 30) == 10
    assert list(ranges) == [(10, 40)]
    ranges.clear()
    assert not ranges and ranges.total == 0
