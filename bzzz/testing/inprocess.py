"""An ASGI app reached in process, with no socket: httpx's transport seam.

An httpx client sends every request through its transport; a test that only talks HTTP to
one of our apps gives the client a transport that calls the app instead of the network:

- in a trio test, ``httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=...)``
  (httpx's own: the app runs in the test's loop);
- in a synchronous test, ``httpx.Client(transport=SyncASGITransport(app), base_url=...)``:
  each request runs the app on a trio loop of its own (``trio.run``), so not from inside a
  trio loop (trio refuses a run inside a run: use the async client there).

:class:`InProcessDevHub` is devhub so, for tests that only talk REST to it::

    with InProcessDevHub(seed=SEED) as hub, hub.client(headers=AUTH) as c:
        c.post("/repos/alice/widgets/issues", json={"title": "x"})

It has the surface of ``DevHubThread`` (``url``, ``app``, ``hub``, ``advance_clock``,
``client()``, ``async_client()``), so a test helper written against ``hub.client()`` works
with either. What needs ``DevHubThread`` (a socket) instead: PyGithub (it speaks through
``requests``), git over smart HTTP, webhooks delivered to a receiver (in process they are
recorded in ``app.deliveries`` and never sent: no nursery sends them), and anything another
process must reach by URL.
"""

from __future__ import annotations

from typing import Any

import httpx
import trio

from ..devhub.app import DevHubApp
from ..devhub.limits import RateLimits
from ..devhub.server import DevHub
from ..devhub.state import Hub
from ..asgi import App


class SyncASGITransport(httpx.BaseTransport):
    """httpx's ``ASGITransport`` for a synchronous client: each request is one ``trio.run``
    of the app (through ``ASGITransport``, so the ASGI scope is httpx's own)."""

    def __init__(self, app: App, client: tuple[str, int] = ("127.0.0.1", 123)) -> None:
        self._asgi = httpx.ASGITransport(app=app, client=client)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()  # a synchronous client's body may be a sync-only stream
        return trio.run(self._call, request, body)

    async def _call(self, request: httpx.Request, body: bytes) -> httpx.Response:
        inner = httpx.Request(request.method, request.url, headers=request.headers,
                              stream=httpx.ByteStream(body), extensions=request.extensions)
        answer = await self._asgi.handle_async_request(inner)
        raw = b"".join([chunk async for chunk in answer.aiter_raw()])  # decoded by the client
        return httpx.Response(answer.status_code, headers=answer.headers,
                              stream=httpx.ByteStream(raw), extensions=answer.extensions)


class InProcessDevHub:
    """devhub with no socket and no thread (see the module docstring). ``state_file`` is
    read at the start and written at ``close()``, as a served devhub does at shutdown."""

    url = "http://devhub.test"
    """The clients' base URL (only they answer it); devhub renders its links from it."""

    def __init__(self, seed: dict[str, Any] | None = None, state_file: str | None = None,
                 limits: RateLimits | None = None) -> None:
        self.devhub = DevHub(state_file=state_file, seed=seed, limits=limits)

    @property
    def app(self) -> DevHubApp:
        return self.devhub.app

    @property
    def hub(self) -> Hub:
        return self.devhub.hub

    def advance_clock(self, seconds: float = 1.0) -> None:
        """Move devhub's clock forward (clock.py), as ``DevHubThread.advance_clock``."""
        self.app.clock.advance(seconds)

    def client(self, **kwargs: Any) -> httpx.Client:
        """A synchronous client on this devhub (``httpx.Client``'s keywords)."""
        return httpx.Client(transport=SyncASGITransport(self.app), base_url=self.url, **kwargs)

    def async_client(self, **kwargs: Any) -> httpx.AsyncClient:
        """An async client on this devhub, for a trio test (``httpx.AsyncClient``'s
        keywords)."""
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app),
                                 base_url=self.url, **kwargs)

    def close(self) -> None:
        self.devhub.save()

    def __enter__(self) -> InProcessDevHub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
