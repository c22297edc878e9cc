"""A small async GitHub REST client for the agent (httpx on trio).

Why not PyGithub here: the agent polls with ``If-None-Match`` (a 304 costs no budget; PyGithub's
lists never send it), must never re-send a POST blindly (PyGithub's default retry does), and
must not sleep silently for an hour on a rate limit (PyGithub's does). This client:

- retries 5xx, timeouts and connection errors with jittered exponential backoff, for
  requests that are safe to repeat (``retry=True``; callers decide for POSTs);
- honours secondary limits (403/429 with ``retry-after``: the request was not processed, so
  it is repeated after the wait, POSTs included);
- raises :class:`RateLimited` when the hourly budget is exhausted, with the reset time, so the
  caller pauses its polling instead of hanging;
- paces content-creating requests per token (``write_interval``);
- never puts the token in an exception message.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

import httpx
import trio

from ..redact import redact_value

USER_AGENT = "bzzz-agent"
WRITE_METHODS = {"POST", "PATCH", "PUT", "DELETE"}


class GitHubError(Exception):
    def __init__(self, status: int, message: str, method: str = "", path: str = "") -> None:
        super().__init__(f"{method} {path}: {status} {message}".strip())
        self.status = status
        self.message = message


class RateLimited(GitHubError):
    def __init__(self, reset: float, method: str = "", path: str = "") -> None:
        super().__init__(403, f"rate limit exhausted until {int(reset)}", method, path)
        self.reset = reset


class Unavailable(GitHubError):
    """GitHub did not answer usefully after the retries (an outage, for the caller)."""


@dataclass
class Reply:
    status: int
    data: Any
    etag: str | None
    headers: httpx.Headers


class GitHubClient:
    def __init__(self, base_url: str, token: str | None, *, attempts: int = 4,
                 backoff: float = 0.25, max_backoff: float = 8.0, write_interval: float = 0.0,
                 timeout: float = 15.0, rng: random.Random | None = None) -> None:
        headers = {"Accept": "application/vnd.github+json", "User-Agent": USER_AGENT,
                   "X-GitHub-Api-Version": "2022-11-28"}
        if token:
            headers["Authorization"] = f"token {token}"
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), headers=headers,
                                       timeout=timeout)
        self.token = token  # git over smart HTTP needs it too (bzzz.repo.git keeps it hidden)
        self.writes = 0  # content-creating requests sent (POST, PATCH, PUT, DELETE)
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.write_interval = write_interval
        self._rng = rng or random.Random()
        self._next_write = 0.0
        self._write_lock = trio.Lock()
        self.requests = 0  # sent, including retries
        self.not_modified = 0

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> "GitHubClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _pace(self) -> None:
        if self.write_interval <= 0:
            return
        async with self._write_lock:
            wait = self._next_write - trio.current_time()
            if wait > 0:
                await trio.sleep(wait)
            self._next_write = trio.current_time() + self.write_interval

    def _delay(self, attempt: int) -> float:
        base = min(self.max_backoff, self.backoff * 2 ** attempt)
        return base * (0.5 + self._rng.random())

    async def request(self, method: str, path: str, *, json: Any = None,
                      etag: str | None = None, params: dict | None = None,
                      retry: bool | None = None) -> Reply:
        """One logical request. ``retry`` defaults to True except for POST."""
        retry = (method != "POST") if retry is None else retry
        if json is not None:
            json = redact_value(json)  # every text we send to GitHub passes the redactor
        headers = {"If-None-Match": etag} if etag else {}
        last: Exception | None = None
        for attempt in range(self.attempts):
            if method in WRITE_METHODS:
                await self._pace()
            self.requests += 1
            if method in WRITE_METHODS:
                self.writes += 1
            try:
                resp = await self._http.request(method, path, json=json, params=params,
                                                headers=headers)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                last = exc
                if not retry or attempt == self.attempts - 1:
                    raise Unavailable(0, type(exc).__name__, method, path) from None
                await trio.sleep(self._delay(attempt))
                continue
            if resp.status_code in (403, 429):
                if resp.headers.get("retry-after"):  # secondary limit: not processed
                    await trio.sleep(min(float(resp.headers["retry-after"]), 120.0))
                    continue
                if resp.headers.get("x-ratelimit-remaining") == "0":
                    raise RateLimited(float(resp.headers.get("x-ratelimit-reset", time.time())),
                                      method, path)
            if resp.status_code >= 500 and retry and attempt < self.attempts - 1:
                last = GitHubError(resp.status_code, resp.reason_phrase, method, path)
                await trio.sleep(self._delay(attempt))
                continue
            if resp.status_code == 304:
                self.not_modified += 1
                return Reply(304, None, etag, resp.headers)
            data = None
            if resp.content:
                try:
                    data = resp.json()
                except ValueError:
                    data = None
            if resp.status_code >= 400:
                message = data.get("message", "") if isinstance(data, dict) else ""
                cls = Unavailable if resp.status_code >= 500 else GitHubError
                raise cls(resp.status_code, message, method, path)
            return Reply(resp.status_code, data, resp.headers.get("etag"), resp.headers)
        raise Unavailable(0, f"gave up after {self.attempts} attempts ({last})", method, path)
