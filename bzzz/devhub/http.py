"""devhub's request object and the helpers every handler shares (pagination, ``since``)."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any, TypeVar, overload
from urllib.parse import quote, urlencode

from .state import HubError

DOCS = "https://docs.github.com/rest"
T = TypeVar("T")


class Request:
    def __init__(self, method: str, path: str, query: dict[str, list[str]],
                 headers: dict[str, str], body: bytes, login: str | None, base: str,
                 now: float | None = None) -> None:
        self.method, self.path, self.query, self.headers = method, path, query, headers
        self.body, self.login, self.base = body, login, base
        self.now = int(time.time() if now is None else now)
        self._json: Any = None

    @overload
    def arg(self, name: str) -> str | None: ...

    @overload
    def arg(self, name: str, default: str) -> str: ...

    def arg(self, name: str, default: str | None = None) -> str | None:
        """The query parameter ``name`` (its last value), or ``default`` without one."""
        values = self.query.get(name)
        return values[-1] if values else default

    def json(self) -> Any:
        if self._json is None:
            if not self.body:
                self._json = {}
            else:
                try:
                    self._json = json.loads(self.body)
                except (ValueError, UnicodeDecodeError):
                    raise HubError(400, "Problems parsing JSON") from None
        return self._json

    def obj(self) -> dict[str, Any]:
        doc = self.json()
        if not isinstance(doc, dict):
            raise HubError(400, "Problems parsing JSON")
        return doc

    def actor(self) -> str:
        if self.login is None:
            raise HubError(401, "Requires authentication")
        return self.login



Response = tuple[int, Any, dict[str, str]]
Handler = Callable[..., Response | Awaitable[Response]]
"""A route's handler: ``(request, **path parameters)``, answering at once or awaited."""


def _since(req: Request) -> int | None:
    """``since`` (ISO 8601, e.g. ``2024-05-01T12:00:00Z``) as a Unix time, or None."""
    since = req.arg("since")
    if not since:
        return None
    try:
        when = datetime.fromisoformat(since.strip().replace("z", "Z"))
    except ValueError:
        raise HubError(422, "Validation Failed",
                       [{"resource": "Search", "field": "since", "code": "invalid"}]) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return int(when.timestamp())


def _page(req: Request, items: list[T]) -> tuple[list[T], dict[str, str]]:
    """GitHub pagination: ``per_page`` (default 30, max 100), ``page``, and a Link header."""
    try:
        per_page = max(1, min(100, int(req.arg("per_page", "30"))))
        page = max(1, int(req.arg("page", "1")))
    except ValueError:
        raise HubError(422, "Validation Failed: per_page and page must be integers") from None
    last = max(1, -(-len(items) // per_page))
    chunk = items[(page - 1) * per_page: page * per_page]
    links = []

    def url(p: int) -> str:
        q = {k: v[-1] for k, v in req.query.items()}
        q.update(per_page=str(per_page), page=str(p))
        return f"{req.base}{quote(req.path)}?{urlencode(q)}"

    if page < last:
        links += [f'<{url(page + 1)}>; rel="next"', f'<{url(last)}>; rel="last"']
    if page > 1:
        links += [f'<{url(1)}>; rel="first"', f'<{url(page - 1)}>; rel="prev"']
    return chunk, ({"link": ", ".join(links)} if links else {})
