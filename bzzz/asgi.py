"""What Bzzz's two HTTP servers (the agent API and devhub) share: ASGI lifespan handling and
serving an app with hypercorn on trio, reporting the bound URLs."""

from __future__ import annotations

import logging

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve


async def lifespan(receive, send) -> None:
    """Answer the ASGI lifespan protocol (nothing to set up or tear down)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


MAX_BODY = 25 * 1024 * 1024  # GitHub's own limit for webhook payloads


def content_length(scope) -> int | None:
    """The request's declared ``Content-Length``; None when it has none (a chunked body).
    (The HTTP server has already refused a malformed one.)"""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            return int(value) if value.strip().isdigit() else None
    return None


async def read_body(receive, limit: int = MAX_BODY, length: int | None = None) -> bytes | None:
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


def headers(scope) -> dict[str, str]:
    """Request headers with lower-case names."""
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


async def serve_app(app, host: str, port: int, *, keep_alive: float = 5.0,
                    errorlog: logging.Logger | None = None,
                    task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Serve ``app`` until cancelled; ``task_status.started`` gets the bound URLs."""
    config = HypercornConfig()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = errorlog
    config.graceful_timeout = 1.0
    config.keep_alive_timeout = keep_alive

    class _Started:
        """hypercorn reports the bound addresses through task_status: pass them on."""

        def started(self, value=None) -> None:
            task_status.started(list(value or []))

    await serve(app, config, task_status=_Started(), mode="asgi")
