"""Waiting on a condition with a deadline: the one way tests (and test tools) wait.

:func:`wait_for` blocks (for tests that drive other processes and threads);
:func:`wait_until` is its trio twin (for tests inside an event loop). Both poll
``predicate`` until it returns something truthy and return that value; at the deadline they
raise :class:`WaitTimeout`, which is an ``AssertionError`` (a test fails, it does not error)
and a ``TimeoutError`` (what callers that explain a timeout catch).

Exceptions of the types in ``retry`` count as "not yet" and the last one is named in the
timeout's message. The blocking helper retries every ``Exception`` by default (the process
it polls may not be listening yet); the trio helper retries none (an error in in-process
state is a bug to see at once).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio

T = TypeVar("T")


class WaitTimeout(AssertionError, TimeoutError):
    """A condition was not met by its deadline."""


def _timeout(timeout: float, what: str, last_exc: BaseException | None) -> WaitTimeout:
    return WaitTimeout(f"timed out after {timeout} s waiting for {what}"
                       + (f" (last error: {last_exc!r})" if last_exc else ""))


def wait_for(predicate: Callable[[], T], timeout: float, interval: float = 0.05,
             what: str = "condition", *,
             retry: tuple[type[BaseException], ...] = (Exception,)) -> T:
    """Poll ``predicate`` (blocking) until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except retry as exc:
            last_exc = exc
        if time.monotonic() >= deadline:
            raise _timeout(timeout, what, last_exc)
        time.sleep(interval)


async def wait_until(predicate: Callable[[], T],
                     timeout: float = 10.0,  # noqa: ASYNC109 -- WaitTimeout names the wait
                     what: str = "condition", *, interval: float = 0.02,
                     retry: tuple[type[BaseException], ...] = ()) -> T:
    """Poll ``predicate`` (in trio) until it returns something truthy; return that."""
    async def read() -> T:
        return predicate()
    return await wait_until_async(read, timeout, what, interval=interval, retry=retry)


async def wait_until_async(check: Callable[[], Awaitable[T]],
                           timeout: float = 10.0,  # noqa: ASYNC109 -- as wait_until's
                           what: str = "condition", *, interval: float = 0.02,
                           retry: tuple[type[BaseException], ...] = ()) -> T:
    """``wait_until`` for a condition read by awaiting (a server's HTTP answer): await
    ``check()`` until it returns something truthy and return that."""
    last_exc: BaseException | None = None
    with trio.move_on_after(timeout):
        while True:
            try:
                value = await check()
                if value:
                    return value
            except retry as exc:
                last_exc = exc
            await trio.sleep(interval)
    raise _timeout(timeout, what, last_exc)
