"""The one way tests wait: on a condition, with a deadline (bzzz.testing.wait)."""

import itertools

import pytest

from bzzz.testing.wait import WaitTimeout, wait_for, wait_until, wait_until_async


def test_wait_for_returns_the_truthy_value_and_retries_errors():
    calls = itertools.count()

    def ready():
        n = next(calls)
        if n < 2:
            raise ConnectionError("not listening yet")
        return n >= 3 and {"n": n}

    assert wait_for(ready, 5, 0.001) == {"n": 3}


def test_wait_for_times_out_as_a_failed_assertion_naming_the_last_error():
    def refused():
        raise ConnectionError("refused")

    with pytest.raises(WaitTimeout, match="0.05 s waiting for the server.*refused") as info:
        wait_for(refused, 0.05, 0.01, "the server")
    assert isinstance(info.value, AssertionError) and isinstance(info.value, TimeoutError)


async def test_wait_until_returns_the_value_and_times_out(autojump_clock):
    values = iter([0, None, "", 7])
    assert await wait_until(lambda: next(values), 1) == 7
    with pytest.raises(WaitTimeout, match="2 s waiting for never"):
        await wait_until(lambda: False, 2, "never")


async def test_wait_until_lets_errors_out_unless_told_to_retry(autojump_clock):
    def broken():
        raise KeyError("bug")

    with pytest.raises(KeyError):
        await wait_until(broken, 1)
    with pytest.raises(WaitTimeout, match="KeyError"):
        await wait_until(broken, 1, retry=(KeyError,))


async def test_wait_until_async_awaits_its_condition(autojump_clock):
    n = itertools.count()

    async def check():
        return next(n) >= 3 and "ready"

    assert await wait_until_async(check, 5) == "ready"

    async def never():
        return None

    with pytest.raises(WaitTimeout, match="waiting for the answer"):
        await wait_until_async(never, 1, what="the answer")
