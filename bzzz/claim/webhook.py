"""The agent's webhook intake: GitHub's ``issues`` and ``issue_comment`` deliveries.

A delivery is checked (``X-Hub-Signature-256``, HMAC-SHA256 of the raw body, compared in
constant time), de-duplicated on ``X-GitHub-Delivery`` (GitHub reuses the id when it
redelivers), answered at once (GitHub wants 2xx within 10 s), and turned into a wake-up of
the claim service, which then polls that repository right away. Polling stays the safety net:
a lost delivery only costs latency. Every refusal is counted.

The signature covers the body, so an unsigned request is refused from its headers alone: no
``X-Hub-Signature-256`` of the right form (401) or a Content-Length above the limit (413) is
answered before a byte of the body is read; the body, when read, goes into one buffer of its
declared size (bzzz.asgi.read_body).
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ..asgi import MAX_BODY, HttpRequest, http_request, respond
from ..github.webhooks import verify

log = logging.getLogger("bzzz.webhook")
SEEN_DELIVERIES = 10_000
# check_run, check_suite and status: a CI result on an agents' pull request (ciwatch.py)
EVENTS = {"issues", "issue_comment", "ping", "check_run", "check_suite", "status"}
_SIGNATURE = re.compile(r"sha256=[0-9a-fA-F]{64}")


def plausible_signature(header: str | None) -> bool:
    """Whether ``X-Hub-Signature-256`` has the form of one (checked before the body is read)."""
    return header is not None and _SIGNATURE.fullmatch(header) is not None


class WebhookIntake:
    def __init__(self, secret: str | Callable[[], str],
                 on_event: Callable[[str, str, dict[str, Any]], None],
                 *, max_body: int = MAX_BODY) -> None:
        self.secret = secret
        self.max_body = max_body
        self.on_event = on_event  # (event, repo full name, payload)
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.counts: Counter[str] = Counter()

    def _duplicate(self, delivery: str) -> bool:
        if delivery in self._seen:
            return True
        self._seen[delivery] = None
        if len(self._seen) > SEEN_DELIVERIES:
            self._seen.popitem(last=False)
        return False

    def handle(self, headers: dict[str, str], body: bytes) -> tuple[int, str]:
        """Decide on one delivery: (HTTP status, short reason)."""
        secret = self.secret() if callable(self.secret) else self.secret  # rotates
        if not verify(secret, body, headers.get("x-hub-signature-256")):
            self.counts["bad_signature"] += 1
            return 401, "bad signature"
        delivery = headers.get("x-github-delivery", "")
        event = headers.get("x-github-event", "")
        if not delivery:
            self.counts["malformed"] += 1
            return 400, "no delivery id"
        if self._duplicate(delivery):
            self.counts["duplicate"] += 1
            return 200, "duplicate delivery ignored"
        if event not in EVENTS:
            self.counts["ignored_event"] += 1
            return 202, f"event {event!r} ignored"
        try:
            payload = json.loads(body)
            repo = payload["repository"]["full_name"]
        except (ValueError, KeyError, TypeError):
            self.counts["malformed"] += 1
            return 400, "malformed payload"
        self.counts["accepted"] += 1
        if event != "ping":
            self.on_event(event, repo, payload)
        return 202, "queued"

    async def _post(self, request: HttpRequest) -> tuple[int, str]:
        headers = request.headers
        if not plausible_signature(headers.get("x-hub-signature-256")):
            self.counts["bad_signature"] += 1
            return 401, "bad signature"  # the body is never read
        body = await request.body(self.max_body)
        if body is None:  # declared (not read) or grown past the limit
            self.counts["oversized"] += 1
            return 413, "payload too large"
        return self.handle(headers, body)

    async def __call__(self, scope: Mapping[str, Any],
                       receive: Callable[[], Awaitable[Mapping[str, Any]]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        if (request := await http_request(scope, receive, send)) is None:
            return
        status, reason = 404, "not found"
        if request.method == "POST" and request.path in ("/", "/webhook"):
            status, reason = await self._post(request)
        data = (json.dumps({"status": reason}) + "\n").encode()
        await respond(send, status, data, "application/json")
