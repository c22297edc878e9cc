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
- paces content-creating requests per token (a bucket of ``write_burst``, refilled one per
  ``write_interval``);
- never puts the token in an exception message;
- asks its credential provider (bzzz/github/credentials.py) for the token on every request,
  and on a 401 has it refreshed once and repeats the request (a 401 was not processed, so a
  POST is safe to repeat too); a second 401, or the same token again, raises as before.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

import httpx
import trio

from ..redact import redact_value
from .credentials import USER_AGENT, CredentialProvider, StaticToken
from .errors import GitHubError, RateLimited, Unavailable

__all__ = ["USER_AGENT", "GitHubClient", "GitHubError", "RateLimited", "Reply", "Unavailable"]

WRITE_METHODS = {"POST", "PATCH", "PUT", "DELETE"}


class Bucket:
    """``burst`` at once, then one per ``interval`` seconds (trio time)."""

    def __init__(self, interval: float, burst: int) -> None:
        self.interval = interval
        self.cap = max(1.0, float(burst))
        self.tokens = self.cap
        self.at: float | None = None
        self.lock = trio.Lock()

    async def take(self) -> None:
        now = trio.current_time()
        if self.at is not None and self.interval > 0:
            self.tokens = min(self.cap, self.tokens + (now - self.at) / self.interval)
        self.at = now
        if self.tokens < 1.0:
            await trio.sleep((1.0 - self.tokens) * self.interval)
            self.tokens, self.at = 1.0, trio.current_time()
        self.tokens -= 1.0


@dataclass
class Reply:
    status: int
    data: Any
    etag: str | None
    headers: httpx.Headers


class GitHubClient:
    def __init__(self, base_url: str, token: "str | CredentialProvider | None", *,
                 attempts: int = 4,
                 backoff: float = 0.25, max_backoff: float = 8.0, write_interval: float = 0.0,
                 write_burst: int = 1,
                 timeout: float = 15.0, rng: random.Random | None = None) -> None:
        headers = {"Accept": "application/vnd.github+json", "User-Agent": USER_AGENT,
                   "X-GitHub-Api-Version": "2022-11-28"}
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), headers=headers,
                                       timeout=timeout)
        self.credentials: CredentialProvider = (
            token if isinstance(token, CredentialProvider) else StaticToken(token))
        self.unauthorized = 0  # 401 answers seen
        self.credential_retries = 0  # requests repeated with a refreshed credential
        self.expired_credential_failures = 0  # requests that failed with a 401 all the same
        self.writes = 0  # content-creating requests sent (POST, PATCH, PUT, DELETE)
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.write_interval = write_interval
        self.write_burst = write_burst
        self._posts = Bucket(write_interval, write_burst)
        self._edits = Bucket(write_interval / 2.25, write_burst)
        self._rng = rng or random.Random()
        self.requests = 0  # sent, including retries
        self.not_modified = 0

    @property
    def token(self) -> str | None:
        """The current token, for git over smart HTTP (bzzz.repo.git keeps it hidden):
        whatever the provider last obtained."""
        return self.credentials.token

    async def aclose(self) -> None:
        await self._http.aclose()
        await self.credentials.aclose()

    async def __aenter__(self) -> "GitHubClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _pace(self, method: str) -> None:
        """Token buckets per token. GitHub's secondary limits allow 80 content-creating
        requests a minute (POST: issues, comments, commits, refs) and 900 points a minute,
        5 per other write (PATCH, PUT, DELETE: 180 a minute): POSTs come in bursts of
        ``write_burst``, then one per ``write_interval``; other writes at 2.25 times that
        rate."""
        if self.write_interval <= 0:
            return
        bucket = self._posts if method == "POST" else self._edits
        async with bucket.lock:
            await bucket.take()

    def _delay(self, attempt: int) -> float:
        base = min(self.max_backoff, self.backoff * 2.0 ** attempt)
        return base * (0.5 + self._rng.random())

    async def request(self, method: str, path: str, *, json: Any = None,
                      etag: str | None = None, params: dict[str, Any] | None = None,
                      retry: bool | None = None) -> Reply:
        """One logical request. ``retry`` defaults to True except for POST."""
        retry = (method != "POST") if retry is None else retry
        if json is not None:
            json = redact_value(json)  # every text we send to GitHub passes the redactor
        headers = {"If-None-Match": etag} if etag else {}
        last: Exception | None = None
        token = await self.credentials.current()
        refreshed = False
        attempt = -1  # a repeat with a refreshed credential is not an attempt
        while attempt < self.attempts - 1:
            attempt += 1
            try:
                resp = await self._send(method, path, json, params, headers, token)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                last = exc
                if not retry or attempt == self.attempts - 1:
                    raise Unavailable(0, type(exc).__name__, method, path) from None
                await trio.sleep(self._delay(attempt))
                continue
            if resp.status_code == 401 and token:
                self.unauthorized += 1
                if not refreshed:  # not processed: refresh once and repeat, POSTs included
                    refreshed = True
                    fresh = await self._refreshed(token)
                    if fresh:
                        token = fresh
                        attempt -= 1
                        continue
                self.expired_credential_failures += 1
            if resp.status_code in (403, 429) and await self._limited(resp, method, path):
                continue
            if resp.status_code >= 500 and retry and attempt < self.attempts - 1:
                last = GitHubError(resp.status_code, resp.reason_phrase, method, path)
                await trio.sleep(self._delay(attempt))
                continue
            return self._reply(resp, method, path, etag)
        raise Unavailable(0, f"gave up after {self.attempts} attempts ({last})", method, path)

    async def _send(self, method: str, path: str, json: Any, params: dict[str, Any] | None,
                    headers: dict[str, str], token: str | None) -> httpx.Response:
        """One HTTP exchange: writes paced and counted, the credential in the headers."""
        if method in WRITE_METHODS:
            await self._pace(method)
        self.requests += 1
        if method in WRITE_METHODS:
            self.writes += 1
        if token:
            headers["Authorization"] = f"token {token}"
        return await self._http.request(method, path, json=json, params=params,
                                        headers=headers)

    async def _refreshed(self, token: str) -> str | None:
        """After a 401: a new credential to repeat the request with, or None."""
        try:
            fresh = await self.credentials.refresh("401", stale=token)
        except Unavailable:
            self.expired_credential_failures += 1
            raise
        if fresh and fresh != token:
            self.credential_retries += 1
            return fresh
        return None

    async def _limited(self, resp: httpx.Response, method: str, path: str) -> bool:
        """A 403 or 429: True once a secondary limit's retry-after is waited out (the
        request was not processed: repeat it); RateLimited when the primary budget is
        spent; False for an ordinary refusal."""
        if resp.headers.get("retry-after"):  # secondary limit: not processed
            await trio.sleep(min(float(resp.headers["retry-after"]), 120.0))
            return True
        if resp.headers.get("x-ratelimit-remaining") == "0":
            raise RateLimited(float(resp.headers.get("x-ratelimit-reset", time.time())),
                              method, path)
        return False

    def _reply(self, resp: httpx.Response, method: str, path: str,
               etag: str | None) -> Reply:
        """The final answer: 304 with the etag we sent, the decoded body, or the error."""
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
