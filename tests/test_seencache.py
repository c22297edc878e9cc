import os

from hypothesis import given, settings
from hypothesis import strategies as st

from bzzz.p2p.seencache import SeenCache


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_remembers_for_at_least_ttl_and_forgets_after_two():
    clock = Clock()
    c = SeenCache(60, clock=clock)
    assert c.add(b"m1") is True
    assert c.add(b"m1") is False
    clock.t = 59
    assert c.has(b"m1")
    clock.t = 61  # rotated: m1 is in the previous generation, has() refreshes it
    assert c.has(b"m1")
    clock.t = 125  # rotated again; refreshed at 61, so still remembered
    assert c.has(b"m1")
    clock.t = 400  # idle for more than two spans
    assert not c.has(b"m1")
    assert c.add(b"m1") is True


def test_unrefreshed_entries_expire_between_ttl_and_2ttl():
    clock = Clock()
    c = SeenCache(10, clock=clock)
    c.add(b"a")
    clock.t = 15
    c.add(b"b")  # rotation: a moves to previous
    assert c.has(b"b")
    clock.t = 21  # no rotation due yet (last at 15): a is still remembered
    assert c.has(b"a") is True
    clock.t = 32  # next rotation: a (refreshed at 21 into the current gen) moves back
    c.add(b"c")
    assert c.has(b"a")  # (b is not touched here)
    clock.t = 43  # another rotation without touching b: b is forgotten, a was refreshed
    c.add(b"d")
    assert not c.has(b"b")
    assert c.has(b"c")


def test_grows_without_losing_entries():
    c = SeenCache(60, initial_capacity=8)
    keys = [os.urandom(38) for _ in range(5000)]
    assert all(c.add(k) for k in keys)
    assert all(c.has(k) for k in keys)
    assert not any(c.add(k) for k in keys)
    assert not c.has(b"never added")
    assert c.length() == 5000 and c.memory_bytes() <= 8 * 2 * 16384


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=50), max_size=300))
def test_matches_a_set_within_one_span(keys):
    c = SeenCache(60)
    seen = set()
    for k in keys:
        assert c.add(k) == (k not in seen)
        seen.add(k)
    for k in keys:
        assert c.has(k)
