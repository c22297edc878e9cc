"""The monitor's HTTP server (ASGI on hypercorn/trio): the Mesh Visualizer and its API.

docs/monitor-api.md is the surface. Reading the API (``/api/v1/...``: titles, decisions,
outputs, agents' addresses) is open while the monitor listens on loopback; beyond it, it needs
the viewer token (``monitor.viewer_token_file``, read-only) or the acting one, as
``Authorization: Bearer`` or, for the page's event stream (EventSource sends no headers), the
``bzzz_viewer`` cookie the page sets. The page itself, its static files, ``/healthz`` and
``/metrics`` (no titles, no addresses) stay open. The one acting endpoint (the new-task
form's ``POST /api/v1/tasks``) needs the monitor's bearer token. Bridges (Hive's
``/enqueue``) are mounted here too: an ASGI app in ``bridges`` answers the paths it claims.
"""

from __future__ import annotations

import hmac
import json
import logging
import mimetypes
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote

import trio
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ..asgi import HttpRequest, Receive, Scope, Send, http_request, respond
from ..github.client import GitHubError
from ..claim.newtask import TaskRequestError
from .state import ALL_STATES

if TYPE_CHECKING:
    from .node import Monitor

log = logging.getLogger("bzzz.monitor.app")

STATIC = Path(__file__).parent / "static"
MAX_FORM = 128 * 1024
PING = 15.0
MESH_EVERY = 0.25  # at most four mesh documents a second per stream
VIEWER_COOKIE = "bzzz_viewer"  # the page's event stream carries the viewer token in it
JSON = "application/json"
_PLACEHOLDER = (b"<!doctype html><title>Bzzz monitor</title><p>The Mesh Visualizer's files "
                b"are missing from this installation; the API is at "
                b"<a href=/api/v1/mesh>/api/v1/mesh</a>.")


class Bridge(Protocol):
    """An ASGI app mounted on the monitor's server for the paths it claims."""

    def handles(self, path: str, method: str | None = None) -> bool: ...

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...


def _bearer(headers: Mapping[str, str], token: str | None) -> bool:
    if not token:
        return False
    scheme, _, value = headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(),
                                                               token.encode())


def _cookie(header: str, name: str) -> str:
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return unquote(value.strip())
    return ""


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False, default=str).encode()


class MonitorApp:
    def __init__(self, monitor: "Monitor") -> None:
        self.m = monitor
        self.bridges: list[Bridge] = []  # the Hive bridge
        self._mesh_cache: tuple[Any, bytes] | None = None
        self.streams = 0

    # ------------------------------------------------------------------ plumbing

    @staticmethod
    async def _reply(send: Send, status: int, body: bytes, content_type: str = JSON,
                     extra: list[tuple[bytes, bytes]] | None = None) -> None:
        await respond(send, status, body, content_type,
                      [(b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff"),
                       *(extra or [])])

    async def _error(self, send: Send, status: int, message: str, **fields: Any) -> None:
        await self._reply(send, status, _dumps({"error": message, **fields}) + b"\n")

    def mesh_bytes(self) -> bytes:
        """The mesh document, built once per change (or per second) for every reader."""
        key = (self.m.generation, int(self.m.clock()))
        if self._mesh_cache is None or self._mesh_cache[0] != key:
            self._mesh_cache = (key, _dumps(self.m.mesh_doc()))
        return self._mesh_cache[1]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (request := await http_request(scope, receive, send)) is None:
            return  # a lifespan scope (answered) or one that is not HTTP
        path, method = request.path, request.method
        for bridge in self.bridges:
            if bridge.handles(path):
                await bridge(scope, receive, send)
                return
        try:
            if method == "POST" and path == "/api/v1/tasks":
                await self._post_task(request, send)
                return
            if method not in ("GET", "HEAD"):
                await self._error(send, 405, "method not allowed")
                return
            if path.startswith("/api/") and not self._may_read(request):
                await self._reply(send, 401, _dumps({
                    "error": "reading this monitor needs its viewer token "
                             "(Authorization: Bearer)"}) + b"\n",
                    extra=[(b"www-authenticate", b'Bearer realm="bzzz"')])
                return
            await self._get(path, request.query, send, receive)
        except Exception:  # one bad request never stops the monitor
            log.exception("monitor request failed", extra={"path": path[:200]})
            try:
                await self._error(send, 500, "internal error")
            except Exception:  # the answer may have started, or the client gone
                log.debug("cannot answer 500", exc_info=True)

    async def _get(self, path: str, q: dict[str, str], send: Send, receive: Receive) -> None:
        m = self.m
        if path == "/healthz":
            await self._reply(send, 200, b"ok\n", "text/plain")
        elif path == "/metrics":
            await self._reply(send, 200, m.metrics.render(), CONTENT_TYPE_LATEST)
        elif path == "/api/v1/mesh":
            await self._reply(send, 200, self.mesh_bytes())
        elif path == "/api/v1/events":
            await self._events(send, receive)
        elif path == "/api/v1/tasks":
            state = q.get("state") or None
            if state is not None and state not in ALL_STATES:
                await self._error(send, 400, f"state must be one of {', '.join(ALL_STATES)}",
                                  field="state")
                return
            try:
                limit = max(1, min(int(q.get("limit", 100)), 1000))
                offset = max(0, int(q.get("offset", 0)))
            except ValueError:
                await self._error(send, 400, "limit and offset are numbers", field="limit")
                return
            await self._reply(send, 200, _dumps(m.index.task_list(
                q.get("repo") or None, state, q.get("agent") or None, limit, offset)))
        elif path.startswith("/api/v1/tasks/"):
            parts = [unquote(p) for p in path[len("/api/v1/tasks/"):].split("/")]
            if len(parts) != 3 or not parts[2].isdigit():
                await self._error(send, 404, "use /api/v1/tasks/<owner>/<name>/<issue>")
                return
            doc = m.index.task(f"{parts[0]}/{parts[1]}", int(parts[2]))
            if doc is None:
                await self._error(send, 404, "no such task")
                return
            await self._reply(send, 200, _dumps(doc))
        elif path.startswith("/api/v1/agents/") and path.endswith("/log"):
            await self._agent_log(unquote(path[len("/api/v1/agents/"):-len("/log")]), q, send)
        elif path == "/" or path == "/index.html":
            page = STATIC / "index.html"
            body = page.read_bytes() if page.is_file() else _PLACEHOLDER
            await self._reply(send, 200, body, "text/html; charset=utf-8")
        elif path.startswith("/static/"):
            await self._static(path[len("/static/"):], send)
        else:
            await self._error(send, 404, "not found")

    async def _static(self, rel: str, send: Send) -> None:
        root = STATIC.resolve()
        target = (root / unquote(rel)).resolve()
        if root not in target.parents or not target.is_file():
            await self._error(send, 404, "not found")
            return
        ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if target.suffix == ".js":
            ctype = "text/javascript"
        if ctype.startswith("text/"):
            ctype += "; charset=utf-8"
        await self._reply(send, 200, target.read_bytes(), ctype)

    async def _agent_log(self, peer: str, q: dict[str, str], send: Send) -> None:
        m = self.m
        agent = m.agents.get(peer)
        if agent is None:
            agent = next((a for a in m.agents.values() if a["node_id"] == peer), None)
        if agent is None or not agent.get("log_key"):
            await self._error(send, 404, "no such agent")
            return
        key = agent["log_key"]
        try:
            before = int(q["before"]) if q.get("before") else None
            limit = int(q.get("limit", 200))
        except ValueError:
            await self._error(send, 400, "before and limit are numbers", field="before")
            return
        state, error = m.log_state(key)
        replica = m.replicas.get(key)
        doc = {"peer_id": agent["peer_id"], "node_id": agent["node_id"], "key": key,
               "length": replica.length if replica else 0, "state": state, "error": error,
               "types": m.index.log_types(key),
               "entries": m.index.log_entries(key, q.get("q") or None, q.get("type") or None,
                                              before, limit)}
        await self._reply(send, 200, _dumps(doc))

    # ------------------------------------------------------------------ acting

    def _authorized(self, request: HttpRequest) -> bool:
        return _bearer(request.headers, self.m.token)

    def _may_read(self, request: HttpRequest) -> bool:
        """Reads are open on loopback; beyond it the viewer (or the acting) token is needed,
        in the Authorization header or the event stream's cookie."""
        m = self.m
        if m.reads_open:
            return True
        viewer = m.viewer_token
        if _bearer(request.headers, viewer) or _bearer(request.headers, m.token):
            return True
        cookie = _cookie(request.headers.get("cookie", ""), VIEWER_COOKIE)
        if not viewer or not cookie:
            return False
        return hmac.compare_digest(cookie.encode(), viewer.encode())

    async def _post_task(self, request: HttpRequest, send: Send) -> None:
        if not self.m.token:
            await self._error(send, 403, "filing tasks is off: the monitor has no token "
                              "(monitor.token_file)")
            return
        if not self._authorized(request):
            await self._reply(send, 401, _dumps({"error": "a bearer token is required"}) + b"\n",
                              extra=[(b"www-authenticate", b'Bearer realm="bzzz"')])
            return
        body = await request.body(MAX_FORM)
        if body is None:
            await self._error(send, 413, f"the body is over {MAX_FORM} bytes")
            return
        try:
            doc = json.loads(body or b"null")
        except ValueError as exc:  # JSONDecodeError, or UnicodeDecodeError: not text at all
            why = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
            await self._error(send, 400, f"the body is not JSON ({why})", field="body")
            return
        try:
            filed = await self.m.file_task(doc)
        except TaskRequestError as exc:
            await self._error(send, 400, str(exc), field=exc.field)
            return
        except GitHubError as exc:
            await self._error(send, 502, f"GitHub refused: {exc.status} {exc.message}")
            return
        await self._reply(send, 201, _dumps(filed))

    # ------------------------------------------------------------------ live

    async def _events(self, send: Send, receive: Receive) -> None:
        """Server-sent events: ``mesh`` on change (debounced), ``entry`` per decision."""
        m = self.m
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-store"), (b"x-accel-buffering", b"no")]})
        lock = trio.Lock()
        await send({"type": "http.response.body", "body": b"retry: 1000\n\n", "more_body": True})
        sub, entries = m.events.subscribe()
        self.streams += 1

        async def emit(chunk: bytes) -> None:
            async with lock:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})

        async def meshes() -> None:
            while True:
                changed = m.changed
                await emit(b"event: mesh\ndata: " + self.mesh_bytes() + b"\n\n")
                await changed.wait()
                await trio.sleep(MESH_EVERY)

        async def forward() -> None:
            async for kind, doc in entries:
                await emit(b"event: " + kind.encode() + b"\ndata: " + _dumps(doc) + b"\n\n")

        async def pings() -> None:
            while True:
                await trio.sleep(PING)
                await emit(b": ping\n\n")

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(meshes)
                nursery.start_soon(forward)
                nursery.start_soon(pings)
                while True:  # until the client goes away
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        break
                nursery.cancel_scope.cancel()
        except Exception:  # the connection went while we wrote (also in a task's group)
            log.debug("event stream ended", exc_info=True)
        finally:
            self.streams -= 1
            m.events.unsubscribe(sub)
            sub.close()
