"""The agent's HTTP API: ``/healthz``, ``/metrics``, ``/api/v1/status`` (ASGI on hypercorn/trio).

The status document is built by a callable the agent passes in; nothing here reads secrets,
and what is served passes the redactor. Endpoints that act (``POST /api/v1/help/probe`` and
later ones) need ``Authorization: Bearer <api token>`` whenever a token is configured, and
are refused outright when the API listens beyond loopback without one: reading is open,
acting is not.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import trio
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .asgi import HttpRequest, http_request, respond, serve_app
from .redact import redact_value

if TYPE_CHECKING:
    from trio_typing import TaskStatus

log = logging.getLogger("bzzz.api")

# ASGI's connection scope, receive and send, as bzzz/asgi.py takes them
Scope = Mapping[str, Any]
Receive = Callable[[], Awaitable[Mapping[str, Any]]]
Send = Callable[[Any], Awaitable[None]]


class Api:
    def __init__(self, status: Callable[[], dict[str, Any]], metrics: Callable[[], bytes],
                 healthy: Callable[[], bool] = lambda: True,
                 probe: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]] | None = None,
                 token: str | Callable[[], str] | None = None, loopback: bool = True) -> None:
        self._status = status
        self._token = token
        self._loopback = loopback
        self._probe = probe
        self._metrics = metrics
        self._healthy = healthy
        self.bound: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (request := await http_request(scope, receive, send)) is None:
            return
        path, method = request.path, request.method
        if method == "POST" and path == "/api/v1/help/probe" and self._probe is not None:
            denied = self._denied(scope)
            if denied is not None:
                await self._reply(send, denied[0], denied[1], "application/json",
                                  [(b"www-authenticate", b'Bearer realm="bzzz"')])
                return
            await self._post_probe(request, send)
            return
        if method not in ("GET", "HEAD"):
            await self._reply(send, 405, b'{"error": "method not allowed"}\n', "application/json")
            return
        try:
            if path == "/healthz":
                ok = self._healthy()
                await self._reply(send, 200 if ok else 503, b"ok\n" if ok else b"starting\n",
                                  "text/plain")
            elif path == "/metrics":
                await self._reply(send, 200, self._metrics(), CONTENT_TYPE_LATEST)
            elif path in ("/api/v1/status", "/api/v1/status/"):
                body = json.dumps(redact_value(self._status()), indent=1,
                                  sort_keys=True).encode() + b"\n"
                await self._reply(send, 200, body, "application/json")
            else:
                await self._reply(send, 404, b'{"error": "not found"}\n', "application/json")
        except Exception:  # a request handler: a bug answers 500, the server goes on
            log.exception("api error on %s", path)
            await self._reply(send, 500, b'{"error": "internal error"}\n', "application/json")

    def require_token(self) -> None:
        """Treat loopback as open to others (tasks that share the host's network)."""
        self._loopback = False

    def _denied(self, scope: Scope) -> tuple[int, bytes] | None:
        """Why a request to an acting endpoint is refused (None: it may act)."""
        token = self._token() if callable(self._token) else self._token  # rotates
        if token is None:
            if self._loopback:
                return None
            return 403, (b'{"error": "this endpoint needs api_token_file when the API listens '
                         b'beyond loopback or tasks share this host\'s network"}\n')
        sent = b""
        for name, value in scope.get("headers") or ():
            if name.lower() == b"authorization":
                sent = value
        scheme, _, given = sent.partition(b" ")
        if scheme.lower() != b"bearer" or not hmac.compare_digest(given.strip(),
                                                                  token.encode()):
            return 401, b'{"error": "a valid bearer token is needed"}\n'
        return None

    async def _post_probe(self, request: HttpRequest, send: Send) -> None:
        """Ask the mesh who could take a task needing some capabilities (a real help
        request, with no task behind it: offers are collected, nothing is handed over)."""
        body = await request.body(64 * 1024)
        try:
            doc = json.loads(body or b"{}")
            needs = doc.get("needs", [])
            wait = float(doc.get("wait", 2.0))
            if not isinstance(needs, list) or not all(isinstance(n, str) for n in needs) \
                    or not 0 < wait <= 10:
                raise ValueError
        except (ValueError, AttributeError, TypeError):
            await self._reply(send, 400, b'{"error": "expected needs (a list of strings) and '
                              b'wait (0 to 10 seconds)"}\n', "application/json")
            return
        assert self._probe is not None
        result = await self._probe({"needs": needs, "wait": wait})
        await self._reply(send, 200, json.dumps(result, sort_keys=True).encode() + b"\n",
                          "application/json")

    @staticmethod
    async def _reply(send: Send, status: int, body: bytes, content_type: str,
                     extra: Sequence[tuple[bytes, bytes]] = ()) -> None:
        await respond(send, status, body, content_type, [(b"cache-control", b"no-store"), *extra])

    async def run(self, host: str, port: int,
                  task_status: TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
        async def serving(task_status: TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED
                          ) -> None:
            await serve_app(self, host, port, errorlog=logging.getLogger("bzzz.api.server"),
                            task_status=task_status)

        async with trio.open_nursery() as nursery:
            self.bound = await nursery.start(serving)
            task_status.started(self.bound)


def is_loopback(host: str) -> bool:
    """Whether an API listen host is reachable only from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
