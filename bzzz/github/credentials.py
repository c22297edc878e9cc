"""GitHub credentials that change while the agent runs.

One interface, three kinds. Each provider hands out the token to use now (``current()``, cheap:
it is asked once per request), gets a new one on demand (``refresh(reason)``, after GitHub
answered 401) and says when the token expires (``expires_at``, unix seconds, or None when
nobody knows):

- :class:`TokenFile`: a file holding a token (``github.token_file``), re-read when its mtime,
  size or inode changes, so a rotated file (a Swarm secret, a Vault agent template) takes
  effect without a restart;
- :class:`TokenCommand`: a command that prints a token (``github.token_command``: ``vault kv
  get -field=token secret/bzzz``, ``gh auth token``), run with a timeout, again on a schedule
  (``github.token_refresh``) and when GitHub answers 401;
- :class:`GitHubApp`: a GitHub App's id and private key (``github.app_id``,
  ``github.app_key_file``) make a JWT (RS256, ``iat`` 60 s in the past, ``exp`` 9 minutes
  ahead: GitHub refuses more than 10), which buys an installation token
  (``POST /app/installations/{id}/access_tokens``) that expires after an hour; it is replaced
  at 80 % of its lifetime (by :meth:`run`, or by the first request after that point), and on
  a 401. The key file is re-read when it changes.

Every token is registered with the redactor the moment it is read, so it never reaches a log,
an error, a comment or the API. Errors (:class:`CredentialError`) name the source and what went
wrong, never the secret; they are :class:`~bzzz.github.client.Unavailable`, so the claim
service treats a credential outage like a GitHub outage: it retries, it does not give up on
tasks.
"""

from __future__ import annotations

import logging
import math
import os
import shlex
import time
from collections import deque
from calendar import timegm
from pathlib import Path
from typing import Any, Callable, Sequence

import httpx
import trio

from ..redact import redact, register as register_secret, unregister as unregister_secret
from .errors import Unavailable

USER_AGENT = "bzzz-agent"

log = logging.getLogger("bzzz.credentials")

REFRESH_AT = 0.8  # of an installation token's lifetime
JWT_BACKDATE = 60  # seconds: GitHub's advice against clock drift
JWT_LIFETIME = 540  # seconds ahead; GitHub refuses exp more than 10 minutes ahead
RETRY_MIN, RETRY_MAX = 1.0, 60.0  # backoff of a failing background refresh
MAX_TOKEN = 4096  # bytes of a token we accept from a file or a command
# earlier tokens of a provider that stay registered with the redactor: an App's token is
# replaced every 48 minutes and lives an hour, so only the last one or two can still work;
# the rest are dropped, keeping the redactor's pattern bounded in a daemon that runs for months
KEEP_REDACTING = 16
RERUN_AFTER = 1.0  # seconds: a 401 reruns token_command at most this often for the same token


class CredentialError(Unavailable):
    """No usable credential (a missing file, a failing command, a refused app key).

    Phrased as one line naming the source; never contains the secret."""

    def __init__(self, message: str) -> None:
        super().__init__(401, redact(message))

    def __str__(self) -> str:
        return self.message


def _check_token(text: str, source: str, single: bool = True) -> str:
    """A token as read (stripped), registered with the redactor; ``single``: one word, as a
    token for an ``Authorization`` header must be."""
    token = text.strip()
    if not token:
        raise CredentialError(f"{source}: empty")
    if single and (len(token) > MAX_TOKEN or any(c.isspace() for c in token)
                   or not token.isprintable()):
        register_secret(token)
        raise CredentialError(f"{source}: not a single token (one line, no spaces, at most "
                              f"{MAX_TOKEN} characters)")
    register_secret(token)
    return token


class CredentialProvider:
    """The interface (and what the kinds share: counters, the lock, the status)."""

    kind = "static"

    def __init__(self) -> None:
        self.token: str | None = None  # the last token obtained (sync, for git's header)
        self.expires_at: float | None = None
        self.obtained = 0  # tokens obtained (the first included)
        self.refreshes = 0  # tokens obtained after the first
        self.failures = 0  # attempts to get a token that failed
        self.last_error: str | None = None
        self._lock = trio.Lock()
        self._past: deque[str] = deque()  # earlier tokens, still redacted

    async def current(self) -> str:
        """The token to send now."""
        raise NotImplementedError

    async def refresh(self, reason: str, stale: str | None = None) -> str:
        """A fresh token. ``stale``: the token that failed; when another task already replaced
        it, that replacement is returned without asking again."""
        raise NotImplementedError

    async def login(self) -> str | None:
        """The GitHub login this credential acts as, when the provider knows it without
        asking ``GET /user`` (an App's installation token acts as ``<slug>[bot]`` and may not
        read ``/user``). None: ask ``/user``."""
        return None

    async def run(self) -> None:
        """Background upkeep (refresh on schedule); returns at once when there is none."""
        return None

    async def aclose(self) -> None:
        return None

    def _got(self, token: str, expires_at: float | None = None) -> None:
        if self.token is not None and token != self.token:
            self.refreshes += 1
            self._past.append(self.token)
            if len(self._past) > KEEP_REDACTING:  # long replaced: expired or revoked by now
                unregister_secret(self._past.popleft())
        self.obtained += 1
        self.token, self.expires_at, self.last_error = token, expires_at, None

    def _failed(self, exc: CredentialError) -> None:
        self.failures += 1
        self.last_error = str(exc)

    def status(self) -> dict[str, Any]:
        return {"kind": self.kind, "expires_at": self.expires_at, "obtained": self.obtained,
                "refreshes": self.refreshes, "failures": self.failures,
                "last_error": self.last_error}


class StaticToken(CredentialProvider):
    """A token given as a value (tests, tools); or none at all (anonymous)."""

    def __init__(self, token: str | None) -> None:
        super().__init__()
        if token:
            register_secret(token)
        self.token = token or None

    async def current(self) -> str:
        return self.token or ""

    async def refresh(self, reason: str, stale: str | None = None) -> str:
        return self.token or ""


class TokenFile(CredentialProvider):
    """A token in a file, re-read whenever the file changes (checked on every request: one
    ``stat``)."""

    kind = "token_file"

    def __init__(self, path: str | os.PathLike[str], field: str = "github.token_file", *,
                 single: bool = True) -> None:
        super().__init__()
        self.path = Path(path)
        self.field = field
        self.single = single
        self._stamp: tuple[int, int, int] | None = None

    def read(self, force: bool = False) -> str:
        """The token, re-read if the file changed (sync: a stat, and a small read)."""
        try:
            st = self.path.stat()
        except OSError as exc:
            if self.token is not None:  # mid-rotation (removed, then renamed in): keep it
                return self.token
            err = CredentialError(f"{self.field} {self.path}: {exc.strerror}")
            self._failed(err)
            raise err from None
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp == self._stamp and self.token is not None and not force:
            return self.token
        try:
            text = self.path.read_text(errors="replace")
            token = _check_token(text, f"{self.field} {self.path}", self.single)
        except OSError as exc:
            err = CredentialError(f"{self.field} {self.path}: {exc.strerror}")
            self._failed(err)
            raise err from None
        except CredentialError as err:
            self._failed(err)
            if self.token is not None and not text.strip():
                return self.token  # a rotation caught half-written: keep the old one
            raise
        self._stamp = stamp
        if token != self.token:
            if self.token is not None:
                log.info("credential rotated", extra={"source": self.field})
            self._got(token)
        return token

    async def current(self) -> str:
        return self.read()

    async def refresh(self, reason: str, stale: str | None = None) -> str:
        return self.read(force=True)


class TokenCommand(CredentialProvider):
    """A command that prints a token on stdout, re-run on a schedule and on a 401."""

    kind = "token_command"

    def __init__(self, command: str | Sequence[str], *, refresh_every: float = 2700.0,
                 timeout: float = 30.0, field: str = "github.token_command",
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        argv = shlex.split(command) if isinstance(command, str) else list(command)
        if not argv or not all(isinstance(a, str) and a for a in argv):
            raise ValueError(f"{field}: needs a program (an argv list or a command line)")
        self.argv = argv
        self.refresh_every = refresh_every
        self.timeout = timeout
        self.field = field
        self.clock = clock
        self._due: float = 0.0  # when the schedule wants a new token
        self._ran: float = -math.inf  # when a 401 last reran the command

    def _name(self) -> str:
        return f"{self.field} ({os.path.basename(self.argv[0])})"

    async def _run_command(self) -> str:
        try:
            with trio.fail_after(self.timeout):
                done = await trio.run_process(self.argv, stdin=b"", capture_stdout=True,
                                              capture_stderr=True, check=False)
        except trio.TooSlowError:
            raise CredentialError(f"{self._name()}: no token within {self.timeout:g} s") from None
        except FileNotFoundError:
            raise CredentialError(f"{self._name()}: program not found") from None
        except PermissionError:
            raise CredentialError(f"{self._name()}: program not executable") from None
        except OSError as exc:
            raise CredentialError(f"{self._name()}: cannot start ({exc.strerror})") from None
        out = done.stdout.decode("utf-8", errors="replace")
        if out.strip():
            register_secret(out.strip())  # before anything (stderr, the error) is formatted
        if done.returncode != 0:
            lines = [x.strip() for x in done.stderr.decode("utf-8", errors="replace").splitlines()
                     if x.strip()]
            why = redact(lines[-1])[:300] if lines else "no message on stderr"
            raise CredentialError(f"{self._name()}: exit status {done.returncode}: {why}")
        return _check_token(out, f"{self._name()} output")

    async def refresh(self, reason: str, stale: str | None = None) -> str:
        async with self._lock:
            if stale is not None and self.token is not None and self.token != stale:
                return self.token  # another request refreshed meanwhile
            if (reason == "401" and stale is not None and stale == self.token
                    and self.clock() - self._ran < RERUN_AFTER):
                return self.token  # a 401 just reran it for this token: not again per request
            try:
                token = await self._run_command()
            except CredentialError as err:
                self._failed(err)
                raise
            finally:
                if reason == "401":
                    self._ran = self.clock()
            changed = token != self.token and self.token is not None
            self._got(token)
            self._due = self.clock() + self.refresh_every
            if changed:
                log.info("credential refreshed", extra={"source": self.field, "reason": reason})
            return token

    async def current(self) -> str:
        if self.token is None or self.clock() >= self._due:
            if self.token is not None and self._lock.locked():
                return self.token  # a refresh is under way; the old one is still good
            if self.token is None:
                return await self.refresh("start")
            try:
                return await self.refresh("schedule", stale=self.token)
            except CredentialError as exc:  # keep the token we have; GitHub says if it is dead
                self._due = self.clock() + min(RETRY_MAX, self.refresh_every)
                log.error("cannot refresh the GitHub credential; keeping the current one",
                          extra={"error": str(exc)})
        return self.token

    async def run(self) -> None:
        delay = RETRY_MIN
        while True:
            if self.token is not None:
                await trio.sleep(max(0.0, self._due - self.clock()))
            try:
                if self.token is None:
                    await self.current()
                else:
                    await self.refresh("schedule", stale=self.token)
                delay = RETRY_MIN
            except CredentialError as exc:
                log.error("cannot refresh the GitHub credential; retrying",
                          extra={"error": str(exc), "retry_in": delay})
                await trio.sleep(delay)
                delay = min(RETRY_MAX, delay * 2)


def _b64url(data: bytes) -> str:
    import base64
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(app_id: int | str, key: Any, now: float) -> str:
    """An app's JWT: RS256 over ``{"iat", "exp", "iss"}`` (cryptography only)."""
    import json

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    header = _b64url(json.dumps({"alg": "RS256", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = {"iat": int(now) - JWT_BACKDATE, "exp": int(now) + JWT_LIFETIME, "iss": str(app_id)}
    body = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing = f"{header}.{body}".encode()
    return f"{header}.{body}.{_b64url(key.sign(signing, padding.PKCS1v15(), hashes.SHA256()))}"


def parse_time(text: Any) -> float | None:
    """GitHub's ``2016-07-11T22:14:10Z`` as unix seconds."""
    if not isinstance(text, str):
        return None
    try:
        return float(timegm(time.strptime(text.replace(".000", ""), "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return None


class GitHubApp(CredentialProvider):
    """Installation tokens of a GitHub App, bought with a JWT signed by the app's key."""

    kind = "app"

    def __init__(self, base_url: str, app_id: int, key_file: str | os.PathLike[str], *,
                 installation_id: int | None = None, owner: str | None = None,
                 http: httpx.AsyncClient | None = None, timeout: float = 15.0,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/")
        self.app_id = app_id
        self.key_file = Path(key_file)
        self.installation_id = installation_id
        self.owner = owner
        self.clock = clock
        self._http = http or httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout,
            headers={"Accept": "application/vnd.github+json", "User-Agent": USER_AGENT,
                     "X-GitHub-Api-Version": "2022-11-28"})
        self._own_http = http is None
        self._key: Any = None
        self._key_stamp: tuple[int, int, int] | None = None
        self._refresh_at = 0.0
        self._retry_at = 0.0
        self.slug: str | None = None
        self.jwt_requests = 0

    # ------------------------------------------------------------ the key and the JWT

    def _private_key(self) -> Any:
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        where = f"github.app_key_file {self.key_file}"
        try:
            st = self.key_file.stat()
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
            if stamp == self._key_stamp and self._key is not None:
                return self._key
            pem = self.key_file.read_bytes()
        except OSError as exc:
            if self._key is not None:
                return self._key  # mid-rotation: keep the key we have
            raise CredentialError(f"{where}: {exc.strerror}") from None
        register_secret(pem.decode("ascii", errors="ignore").strip())
        try:
            key = load_pem_private_key(pem, password=None)
        except (ValueError, TypeError):
            raise CredentialError(f"{where}: not an unencrypted PEM private key") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise CredentialError(f"{where}: not an RSA key (GitHub Apps sign with RS256)")
        if self._key is not None:
            log.info("app key file changed; signing with the new key")
        self._key, self._key_stamp = key, stamp
        return key

    def jwt(self) -> str:
        # not registered one by one (a new one per request to /app would grow the redactor
        # without bound): a JWT has the shape the redactor always removes (eyJ….eyJ….…)
        return make_jwt(self.app_id, self._private_key(), self.clock())

    async def _as_app(self, method: str, path: str, json: Any = None) -> Any:
        """A request authenticated as the app (the JWT); its answer's JSON."""
        self.jwt_requests += 1
        what = f"GitHub App {self.app_id}: {method} {path}"
        try:
            resp = await self._http.request(method, path, json=json,
                                            headers={"Authorization": f"Bearer {self.jwt()}"})
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            raise CredentialError(f"{what}: {type(exc).__name__}") from None
        try:
            data = resp.json() if resp.content else None
        except ValueError:
            data = None
        if resp.status_code >= 400:
            message = data.get("message", "") if isinstance(data, dict) else resp.reason_phrase
            hint = ""
            if resp.status_code == 401:
                hint = (" (is github.app_key_file a current private key of this app, and the "
                        "clock right?)")
            elif resp.status_code == 404:
                hint = " (is github.installation_id an installation of this app?)"
            raise CredentialError(f"{what}: {resp.status_code} {message}{hint}")
        return data

    # ------------------------------------------------------------ the installation

    async def _installation(self) -> int:
        if self.installation_id is not None:
            return self.installation_id
        if not self.owner:
            raise CredentialError(f"GitHub App {self.app_id}: github.installation_id is not "
                                  "set and there is no repository owner to look it up by")
        seen: list[str] = []
        for page in range(1, 11):
            batch = await self._as_app("GET", f"/app/installations?per_page=100&page={page}")
            if not isinstance(batch, list):
                raise CredentialError(f"GitHub App {self.app_id}: /app/installations is not "
                                      "a list")
            for inst in batch:
                login = (inst.get("account") or {}).get("login", "") if isinstance(inst, dict) else ""
                seen.append(login)
                if login.lower() == self.owner.lower() and isinstance(inst.get("id"), int):
                    found: int = inst["id"]
                    self.installation_id = found
                    log.info("app installation found", extra={"installation": found,
                                                              "owner": login})
                    return found
            if len(batch) < 100:
                break
        raise CredentialError(f"GitHub App {self.app_id} is not installed on {self.owner} "
                              f"(installed on: {', '.join(seen) or 'nothing'})")

    async def login(self) -> str | None:
        if self.slug is None:
            doc = await self._as_app("GET", "/app")
            slug = doc.get("slug") if isinstance(doc, dict) else None
            if not isinstance(slug, str) or not slug:
                raise CredentialError(f"GitHub App {self.app_id}: GET /app gave no slug")
            self.slug = slug
        return f"{self.slug}[bot]"

    # ------------------------------------------------------------ tokens

    async def refresh(self, reason: str, stale: str | None = None) -> str:
        async with self._lock:
            if stale is not None and self.token is not None and self.token != stale:
                return self.token
            try:
                inst = await self._installation()
                doc = await self._as_app("POST", f"/app/installations/{inst}/access_tokens")
                token = doc.get("token") if isinstance(doc, dict) else None
                if not isinstance(token, str):
                    raise CredentialError(f"GitHub App {self.app_id}: no token in the answer")
                token = _check_token(token, f"GitHub App {self.app_id} token")
            except CredentialError as err:
                self._failed(err)
                raise
            now = self.clock()
            expires = parse_time(doc.get("expires_at")) or now + 3600.0
            life = max(1.0, expires - now)  # our clock against GitHub's; short if skewed
            self._refresh_at = now + REFRESH_AT * life
            first = self.token is None
            self._got(token, expires)
            log.info("app installation token obtained", extra={
                "installation": inst, "reason": reason, "expires_at": doc.get("expires_at"),
                "refresh_in": round(REFRESH_AT * life, 1), "first": first})
            return token

    async def current(self) -> str:
        now = self.clock()
        if self.token is None or now >= self._refresh_at:
            valid = self.token is not None and now < (self.expires_at or 0)
            if valid and (self._lock.locked() or now < self._retry_at):
                assert self.token is not None  # valid: a token is held
                return self.token  # a refresh is under way (or failed just now); it holds
            try:
                return await self.refresh("start" if self.token is None else "expiry",
                                          stale=self.token)
            except CredentialError:
                if not valid:
                    raise
                self._retry_at = now + RETRY_MIN * 5  # the background loop retries meanwhile
        assert self.token is not None  # held, or valid when the refresh failed (never dropped)
        return self.token

    async def run(self) -> None:
        """Replace the token at 80 % of its life, so requests (and git, which reads the token
        without asking) never carry an expired one."""
        delay = RETRY_MIN
        while True:
            if self.token is not None:
                await trio.sleep(max(0.0, self._refresh_at - self.clock()))
            try:
                if self.token is None:
                    await self.current()
                else:
                    await self.refresh("expiry", stale=self.token)
                delay = RETRY_MIN
            except CredentialError as exc:
                log.error("cannot get a GitHub App installation token; retrying",
                          extra={"error": str(exc), "retry_in": delay})
                await trio.sleep(delay)
                delay = min(RETRY_MAX, delay * 2)

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    def status(self) -> dict[str, Any]:
        return {**super().status(), "app_id": self.app_id,
                "installation_id": self.installation_id, "jwt_requests": self.jwt_requests}


def from_config(github: Any, *, clock: Callable[[], float] = time.time) -> CredentialProvider | None:
    """The provider a :class:`bzzz.config.GitHubConfig` asks for (None when it names none)."""
    if github.app_id is not None:
        owner = github.repos[0].partition("/")[0] if github.repos else None
        return GitHubApp(github.url, github.app_id, github.app_key_file,
                         installation_id=github.installation_id, owner=owner, clock=clock)
    if github.token_command:
        return TokenCommand(github.token_command, refresh_every=github.token_refresh,
                            timeout=github.token_command_timeout, clock=clock)
    if github.token_file is not None:
        return TokenFile(github.token_file)
    return None


class SecretFile:
    """A secret in a file, re-read when the file changes (mtime, size, inode): the agent's
    other secrets (the API token, the webhook secret) rotate without a restart. ``get()`` is
    synchronous and cheap (one ``stat``); a file that vanished mid-rotation keeps the last
    value."""

    def __init__(self, path: str | os.PathLike[str], field: str) -> None:
        self._file = TokenFile(path, field, single=False)

    def get(self) -> str:
        return self._file.read()

    __call__ = get

    @property
    def rotations(self) -> int:
        return self._file.refreshes
