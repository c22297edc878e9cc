"""ASGI's callables as the test servers here take them (the stubs, the fakes, and the
in-process transport): a scope, ``receive``, ``send``, and an app of the three."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

Scope = Mapping[str, Any]
"""An ASGI connection scope (hypercorn's are TypedDicts, httpx's a dict)."""
Receive = Callable[[], Awaitable[Mapping[str, Any]]]
Send = Callable[[Any], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]
