"""GitHub's webhook signature, ``X-Hub-Signature-256``: ``sha256=`` and the hex HMAC-SHA256 of
the raw body keyed with the hook's secret, compared in constant time. The agents' intake
(bzzz/claim/webhook.py) verifies with it; devhub (bzzz/devhub/webhooks.py) signs with it."""

from __future__ import annotations

import hashlib
import hmac


def sign(secret: str | bytes, body: bytes) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify(secret: str | bytes, body: bytes, header: str | None) -> bool:
    """Constant-time check of an ``X-Hub-Signature-256`` header."""
    if not header or not header.startswith("sha256="):
        return False
    return hmac.compare_digest(sign(secret, body), header)
