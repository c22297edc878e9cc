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


async def read_body(receive, limit: int = MAX_BODY) -> bytes | None:
    """The whole request body, or None once it grows past ``limit`` bytes."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if len(body) > limit:
            return None
        if not message.get("more_body"):
            return body


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
