import trio

from bzzz import heap


async def test_the_heap_is_trimmed_every_interval(monkeypatch, autojump_clock):
    calls = []
    monkeypatch.setattr(heap, "malloc_trim", lambda: calls.append)
    with trio.move_on_after(95):
        await heap.trim_every(30)
    assert calls == [0, 0, 0]


async def test_without_glibc_it_returns_at_once(monkeypatch):
    monkeypatch.setattr(heap, "malloc_trim", lambda: None)
    with trio.fail_after(1):
        await heap.trim_every(30)


def test_glibc_trim_is_found_here():
    trim = heap.malloc_trim()
    assert trim is not None and trim(0) in (0, 1)


def test_the_mmap_threshold_can_be_fixed_here():
    assert heap.fix_mmap_threshold()
