"""What Bzzz's HTTP apps (the agent API, the webhook intake, the monitor, devhub and the test
servers) share: the opening of every ASGI call (:func:`http_request`: lifespan answered, the
request's method, path, headers, query and body), sending a whole response (:func:`respond`),
and serving an app with hypercorn on trio, reporting the bound URLs.

An app starts::

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (request := await http_request(scope, receive, send)) is None:
            return  # a lifespan scope (answered) or one that is not HTTP
        ...
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

if TYPE_CHECKING:
    from trio_typing import TaskStatus

Scope = Mapping[str, Any]
"""An ASGI connection scope (hypercorn's are TypedDicts, which are Mappings)."""
Message = Mapping[str, Any]
"""An ASGI event as an app receives it."""
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Any], Awaitable[None]]
"""Takes an ASGI event: a dict (hypercorn's own ``send`` is typed for its TypedDicts only, so
the argument stays open here for apps that build plain dicts)."""
App = Callable[[Scope, Receive, Send], Awaitable[None]]


async def lifespan(receive: Receive, send: Send) -> None:
    """Answer the ASGI lifespan protocol (nothing to set up or tear down)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


MAX_BODY = 25 * 1024 * 1024  # GitHub's own limit for webhook payloads


def content_length(scope: Scope) -> int | None:
    """The request's declared ``Content-Length``; None when it has none (a chunked body).
    (The HTTP server has already refused a malformed one.)"""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            return int(value) if value.strip().isdigit() else None
    return None


async def read_body(receive: Receive, limit: int = MAX_BODY,
                    length: int | None = None) -> bytes | None:
    """The whole request body, or None once it would grow past ``limit`` bytes.

    With ``length`` (the declared Content-Length, see :func:`content_length`) nothing is read
    when it is above ``limit``, the body goes into one buffer of that size, and a body longer
    than declared is refused too; without it (chunked) the buffer grows, bounded by ``limit``.
    Either way each byte is copied once or twice, never once per chunk received.
    """
    if length is not None:
        if length > limit:
            return None
        limit = length
    buf = bytearray(length or 0)
    n = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        end = n + len(chunk)
        if end > limit:
            return None
        if end > len(buf):
            buf += chunk  # no declared length: grows geometrically, amortised linear
        else:
            buf[n:end] = chunk  # same length: copied in place
        n = end
        if not message.get("more_body"):
            if n < len(buf):  # the client went away before sending all it declared
                del buf[n:]
            return bytes(buf)


def headers(scope: Scope) -> dict[str, str]:
    """Request headers with lower-case names."""
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


class HttpRequest:
    """One HTTP request as an app sees it first: method, path, headers, query, body."""

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope = scope
        self.receive = receive
        self.method: str = scope["method"]
        self.path: str = scope["path"]

    @property
    def query_string(self) -> bytes:
        """The raw (percent-encoded) query string."""
        raw: bytes = self.scope.get("query_string", b"")
        return raw

    @cached_property
    def query(self) -> dict[str, str]:
        """Query parameters, the last value of each."""
        return {k: v[-1] for k, v in parse_qs(self.query_string.decode("latin-1")).items()}

    @cached_property
    def headers(self) -> dict[str, str]:
        """Request headers with lower-case names (the last of a repeated one)."""
        return headers(self.scope)

    async def body(self, limit: int = MAX_BODY) -> bytes | None:
        """The whole body, or None past ``limit`` bytes (see :func:`read_body`)."""
        return await read_body(self.receive, limit, content_length(self.scope))


async def http_request(scope: Scope, receive: Receive, send: Send) -> HttpRequest | None:
    """The opening of every app: answer a lifespan scope, ignore any other that is not HTTP
    (both None), and give an HTTP request its :class:`HttpRequest`."""
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return None
    if scope["type"] != "http":
        return None
    return HttpRequest(scope, receive)


async def respond(send: Send, status: int, body: bytes, content_type: str,
                  extra: Iterable[tuple[bytes, bytes]] = ()) -> None:
    """Send a whole response: its content type and length, ``extra`` headers, the body."""
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type.encode()),
                            (b"content-length", str(len(body)).encode()), *extra]})
    await send({"type": "http.response.body", "body": body})


async def serve_app(app: App, host: str, port: int, *, keep_alive: float = 5.0,
                    errorlog: logging.Logger | None = None,
                    task_status: TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve ``app`` until cancelled; ``task_status.started`` gets the bound URLs."""
    config = HypercornConfig()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = errorlog
    config.graceful_timeout = 1.0
    config.keep_alive_timeout = keep_alive

    class _Started:
        """hypercorn reports the bound addresses through task_status: pass them on."""

        def started(self, value: Iterable[str] | None = None) -> None:
            task_status.started(list(value or []))

    await serve(app, config, task_status=_Started(), mode="asgi")
