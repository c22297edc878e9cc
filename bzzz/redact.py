"""One redactor for everything that leaves the agent: GitHub texts, log lines, log entries, the API.

Two kinds of secret are replaced by ``[redacted]``:

- the values the agent holds, registered when they are read (the GitHub token, the swarm
  key in every spelling it has on disk, the webhook secret, the API token);
- well-known secret shapes, whoever's they are: GitHub tokens (``ghp_``, ``gho_``, ``ghu_``,
  ``ghs_``, ``ghr_``, ``github_pat_``), PEM private-key blocks, a libp2p swarm-key file, JSON
  web tokens, and ``Authorization``-style bearer values.

A task cannot read the agent's secrets (the sandbox sees to that); this is the second wall,
for what a task prints and for secrets of other people that a task happens to find.
"""

from __future__ import annotations

import re
import threading
from typing import Any

REDACTED = "[redacted]"
MIN_SECRET = 6

_SHAPES = re.compile("|".join([
    r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{30,255}\b",
    r"\bgithub_pat_[A-Za-z0-9_]{40,255}\b",
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)",
    r"/key/swarm/psk/1\.0\.0/\s*/base16/\s*[0-9a-fA-F]{64}",
    r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
    r"(?i:(?<=\bbearer )[A-Za-z0-9._~+/-]{16,}=*)",
    r"(?i:(?<=\btoken )[A-Za-z0-9._~+/-]{30,}=*)",
]))


class Redactor:
    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def register(self, value: str | bytes | None) -> None:
        """Remember a secret (and, for bytes, its hex spellings). Short values are ignored:
        redacting them would mangle ordinary text."""
        if not value:
            return
        forms = []
        if isinstance(value, bytes):
            forms += [value.hex(), value.hex().upper()]
            value = value.decode("utf-8", errors="ignore")
        forms.append(value.strip())
        with self._lock:
            added = {f for f in forms if len(f) >= MIN_SECRET} - self._secrets
            if added:
                self._secrets |= added
                # longest first, so a secret containing another is replaced whole
                alts = sorted(self._secrets, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(s) for s in alts))


    def unregister(self, value: str | None) -> None:
        """Forget a secret that can no longer do harm (an installation token long replaced),
        so a daemon that rotates credentials for months keeps a bounded pattern."""
        if not value:
            return
        with self._lock:
            if value.strip() in self._secrets:
                self._secrets.discard(value.strip())
                alts = sorted(self._secrets, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(s) for s in alts)) if alts else None

    def text(self, text: str) -> str:
        if not text:
            return text
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(REDACTED, text)
        return _SHAPES.sub(REDACTED, text)

    __call__ = text

    def value(self, obj: Any) -> Any:
        """The same structure with every string redacted (dicts, lists, tuples; keys too)."""
        # recursive: what is redacted is our own (log entries, API documents, request
        # bodies), a few levels deep
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {self.value(k): self.value(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            out = [self.value(v) for v in obj]
            return out if isinstance(obj, list) else tuple(out)
        return obj


REDACTOR = Redactor()
register = REDACTOR.register
unregister = REDACTOR.unregister
redact = REDACTOR.text
redact_value = REDACTOR.value
