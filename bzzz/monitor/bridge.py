"""The Hive bridge: ``POST /enqueue`` files a ``bzzz`` issue (shared/CONTRACT.md, "Monitor and
bridges"). An ASGI app the monitor mounts on its HTTP server (:meth:`EnqueueBridge.handles`
says which requests are its own); it also runs on its own (``bzzz.asgi.serve_app``).

Routes: ``GET /health``; with ``Authorization: Bearer <token>``: ``POST /enqueue``,
``GET /jobs/<jobId>``, ``DELETE /jobs/<jobId>`` (cancel).

Exactly one issue per job id, across restarts and monitors. The compare-and-set is a git ref
(GitHub's only one): the monitor first records the job in its state directory, then writes a
reservation commit (job id, request digest, origin, this monitor's instance id, time) and
creates ``refs/bzzz/jobs/<sha256(jobId)[:40]>`` pointing at it, which succeeds for exactly one
caller. The winner files the issue with the job's markers. Everyone else reads the ref: a
different digest is 409; the same digest means waiting for the winner's issue (found by its
marker among the monitor identity's issues since the reservation), answering 503 with
Retry-After if it takes longer than ``peer_wait``. A reservation whose issue never appeared
(its monitor crashed between ref and issue) is taken over after ``takeover_after`` seconds
by fast-forwarding the ref to a child commit (one winner). A filer that was taken over (its
ref moved) or took over looks for the job's issues once more after filing and closes its own
if an older one exists, so a filer that was merely slow never leaves a second open issue.
On restart, :meth:`EnqueueBridge.resume` finishes every job recorded but not yet filed.

Costs per new job on GitHub: three content-creating requests (a commit, a ref, the issue)
and one read (the ref, to see that nobody took over); a replay to the same monitor costs
nothing on GitHub.

Cancel (``DELETE /jobs/<jobId>``) posts a ``/bzzz cancel`` comment as the monitor's identity
rather than closing the issue: the comment stops a run in progress on whichever agent holds
it and marks the task failed so it is not claimed again (closing only keeps it from being
claimed: a running task would finish and report as if nothing happened), and it shows on
the issue who asked, like any writer's command.
"""

from __future__ import annotations

from ..errors import PolicyError, SetupError
import hmac
import json
import logging
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import trio

from ..asgi import HttpRequest, Receive, Scope, Send, http_request, respond
from ..github.client import GitHubClient, GitHubError, RateLimited, Unavailable
from .egress import DEFAULT_DENY, Denied, Network, check_literal, parse_networks
from .jobs import (JOB_ID, TOKEN_NAME, JobError, JobRequest, Reservation, issue_body,
                   issue_labels, issue_title, job_of_issue, job_ref, parse_job,
                   parse_reservation, reservation_message)
from ..redact import register as register_secret
from .jobstore import JobRow, JobStore

if TYPE_CHECKING:
    from ..config import MonitorConfig

log = logging.getLogger("bzzz.monitor.bridge")
MAX_BODY = 256 * 1024
SEARCH_PAGES = 10
SKEW = 120.0  # seconds of clock difference tolerated between a monitor and GitHub
FINISHED = ("done", "failed", "cancelled")
Doc = dict[str, Any]  # a JSON answer


class TokenFileError(SetupError, ValueError):
    pass


def load_tokens(path: str | Path) -> dict[str, str]:
    """``name token`` per line (blank lines and ``#`` comments skipped) -> {name: token}.
    Errors name the line, never its text (it holds a token)."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise TokenFileError(f"{path}: cannot read the tokens file ({exc.strerror})") from None
    tokens: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2:
            raise TokenFileError(f"{path}:{number}: expected 'name token'")
        name, token = parts
        if not TOKEN_NAME.fullmatch(name):
            raise TokenFileError(f"{path}:{number}: a name is letters, digits and . _ -")
        if len(token) < 16:
            raise TokenFileError(f"{path}:{number}: the token is shorter than 16 characters")
        if name in tokens:
            raise TokenFileError(f"{path}:{number}: the name {name!r} is used twice")
        tokens[name] = token
        register_secret(token)  # never in a log line, even by mistake
    if not tokens:
        raise TokenFileError(f"{path}: no tokens")
    return tokens


class RateBucket:
    """``burst`` requests at once, refilled at ``rate`` per second (per token)."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self.rate, self.cap, self.clock = rate, float(burst), clock
        self.level, self.at = float(burst), clock()

    def take(self) -> float:
        """0 when allowed, else the seconds until a request would be."""
        now = self.clock()
        self.level = min(self.cap, self.level + (now - self.at) * self.rate)
        self.at = now
        if self.level >= 1.0:
            self.level -= 1.0
            return 0.0
        return (1.0 - self.level) / self.rate


class Refused(PolicyError):
    """An answer other than success: status, document, extra headers."""

    def __init__(self, status: int, doc: Doc, headers: dict[str, str] | None = None) -> None:
        super().__init__(doc.get("error", ""))
        self.status, self.doc, self.headers = status, doc, headers or {}


@dataclass(frozen=True)
class RefState:
    sha: str
    reservation: Reservation | None


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(max(0.0, ts)))


class EnqueueBridge:
    ROUTES = re.compile(r"^/(enqueue|health|jobs/.+)$")

    def __init__(self, gh: GitHubClient, tokens: dict[str, str] | str | Path,
                 state_dir: str | Path | JobStore, *, default_repo: str | None = None,
                 rate: float = 1.0, burst: int = 20, callbacks: bool = False,
                 max_body: int = MAX_BODY, peer_wait: float = 5.0,
                 takeover_after: float = 120.0, clock: Callable[[], float] = time.time,
                 deny: Sequence[Network] = parse_networks(DEFAULT_DENY),
                 allow: Sequence[Network] = ()) -> None:
        self.gh = gh
        self.deny = tuple(deny)  # networks a callbackUrl may not name (bzzz/monitor/egress.py)
        self.allow = tuple(allow)  # ... unless one of these holds it
        self._tokens = load_tokens(tokens) if isinstance(tokens, (str, Path)) else dict(tokens)
        if not self._tokens:
            raise TokenFileError("no enqueue tokens")
        self.store = state_dir if isinstance(state_dir, JobStore) else JobStore(state_dir)
        self.default_repo = default_repo
        self.rate, self.burst = rate, burst
        self.callbacks = callbacks  # whether callbackUrl is accepted (a secret is configured)
        self.max_body = max_body
        self.peer_wait = peer_wait
        self.takeover_after = takeover_after
        self.clock = clock
        self._buckets: dict[str, RateBucket] = {}
        self._locks: dict[str, trio.Lock] = {}
        self._login: str | None = None
        self._trees: dict[str, str] = {}
        self.counts = {"enqueued": 0, "replayed": 0, "conflicts": 0, "refused": 0,
                       "rate_limited": 0, "takeovers": 0, "duplicates_closed": 0}

    @classmethod
    def from_config(cls, monitor: MonitorConfig, gh: GitHubClient, state_dir: str | Path | JobStore,
                    **kw: Any) -> "EnqueueBridge | None":
        """The bridge a ``MonitorConfig`` asks for (None: ``enqueue_tokens_file`` is not set,
        the bridge is off). Callbacks are accepted when ``callback_secret_file`` is set."""
        if monitor.enqueue_tokens_file is None:
            return None
        return cls(gh, load_tokens(monitor.enqueue_tokens_file), state_dir,
                   default_repo=monitor.enqueue_repo, rate=monitor.enqueue_rate,
                   burst=monitor.enqueue_burst,
                   callbacks=monitor.callback_secret_file is not None,
                   deny=parse_networks(monitor.callback_deny),
                   allow=parse_networks(monitor.callback_allow), **kw)

    def __repr__(self) -> str:  # never the tokens
        return f"EnqueueBridge(tokens={sorted(self._tokens)}, store={self.store.dir})"

    def handles(self, path: str, method: str | None = None) -> bool:
        """Whether the monitor should pass this request to the bridge (bzzz/monitor/app.py
        asks with the path)."""
        return bool(self.ROUTES.match(path))

    # ------------------------------------------------------------------ ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (request := await http_request(scope, receive, send)) is None:
            return  # a lifespan scope (answered) or one that is not HTTP
        try:
            status, doc, extra = await self._route(request)
        except Refused as exc:
            status, doc, extra = exc.status, exc.doc, exc.headers
            self.counts["refused"] += 1
        except Exception:  # one bad request never stops the bridge: it is answered 500
            log.exception("bridge error", extra={"path": request.path})
            status, doc, extra = 500, {"error": "internal error"}, {}
        body = json.dumps(doc, sort_keys=True).encode() + b"\n"
        await respond(send, status, body, "application/json",
                      [(b"cache-control", b"no-store"),
                       *((k.encode(), v.encode()) for k, v in extra.items())])

    async def _route(self, request: HttpRequest) -> tuple[int, Doc, dict[str, str]]:
        method = request.method
        path = request.path.rstrip("/") or "/"
        if path == "/health":
            if method not in ("GET", "HEAD"):
                raise Refused(405, {"error": "method not allowed"}, {"allow": "GET"})
            return 200, {"status": "ok"}, {}
        if path == "/enqueue":
            if method != "POST":
                raise Refused(405, {"error": "method not allowed"}, {"allow": "POST"})
            origin = self._authorised(request)
            self._rate(origin)
            return await self._post_enqueue(request, origin)
        if path.startswith("/jobs/"):
            job_id = unquote(path[len("/jobs/"):])
            if method not in ("GET", "HEAD", "DELETE"):
                raise Refused(405, {"error": "method not allowed"}, {"allow": "GET, DELETE"})
            origin = self._authorised(request)
            if not JOB_ID.fullmatch(job_id):
                raise Refused(400, {"error": "jobId: not a job id", "field": "jobId"})
            if method == "DELETE":
                self._rate(origin)
                return await self._cancel(job_id, origin)
            return 200, await self._job_doc(job_id, origin), {}
        raise Refused(404, {"error": "not found"})

    def _authorised(self, request: HttpRequest) -> str:
        """The token's name; 401 otherwise. Every configured token is compared, each in
        constant time."""
        sent = request.headers.get("authorization", "")
        scheme, _, given = sent.partition(" ")
        given_b = given.strip().encode()
        found = None
        for name, token in self._tokens.items():
            if hmac.compare_digest(given_b, token.encode()) and scheme.lower() == "bearer":
                found = name
        if found is None:
            raise Refused(401, {"error": "a valid bearer token is needed"},
                          {"www-authenticate": 'Bearer realm="bzzz"'})
        return found

    def _rate(self, origin: str) -> None:
        bucket = self._buckets.get(origin)
        if bucket is None:
            bucket = self._buckets[origin] = RateBucket(self.rate, self.burst, self.clock)
        wait = bucket.take()
        if wait > 0:
            self.counts["rate_limited"] += 1
            raise Refused(429, {"error": f"rate limit: {self.rate:g} jobs per second per token "
                                f"(bursts of {self.burst})"},
                          {"retry-after": str(max(1, math.ceil(wait)))})

    async def _post_enqueue(self, request: HttpRequest, origin: str
                            ) -> tuple[int, Doc, dict[str, str]]:
        raw = await request.body(self.max_body)
        if raw is None:  # declared (then not read) or grown past the limit
            raise Refused(413, {"error": f"body larger than {self.max_body} bytes"})
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            where = f" (line {exc.lineno} column {exc.colno})" if isinstance(
                exc, json.JSONDecodeError) else ""
            raise Refused(400, {"error": f"body: not valid JSON{where}", "field": "body"}) from None
        try:
            job = parse_job(doc, self.default_repo, self.callbacks)
            if job.callback_url is not None:
                try:
                    check_literal(job.callback_url, self.deny, self.allow)
                except Denied as exc:
                    raise JobError("callbackUrl", str(exc)) from None
        except JobError as exc:
            raise Refused(400, exc.doc()) from None
        status, reply, replay = await self.enqueue(job, origin)
        return status, reply, ({"x-bzzz-replay": "true"} if replay else {})

    # ------------------------------------------------------------------ enqueue

    async def enqueue(self, job: JobRequest, origin: str) -> tuple[int, Doc, bool]:
        """File the job's issue once. (status, reply, replay)."""
        lock = self._locks.setdefault(job.job_id, trio.Lock())
        try:
            async with lock:
                row = self.store.job(job.job_id)
                if row is not None and row.digest != job.digest:
                    self.counts["conflicts"] += 1
                    raise Refused(409, {"error": "jobId was enqueued with a different body",
                                        "jobId": job.job_id, "issue": row.issue,
                                        "url": row.url})
                if row is not None and row.issue is not None:
                    self.counts["replayed"] += 1
                    return 202, self._reply(row), True
                try:
                    row, replay = await self._file(job, origin, row)
                except RateLimited as exc:
                    raise Refused(503, {"error": "GitHub's rate limit is exhausted"},
                                  {"retry-after": str(max(1, int(exc.reset - time.time())))}
                                  ) from None
                except Unavailable:
                    raise Refused(503, {"error": "GitHub is unavailable; try again"},
                                  {"retry-after": "5"}) from None
                except GitHubError as exc:
                    log.warning("GitHub refused a job", extra={"job": job.job_id,
                                                               "error": str(exc)})
                    if exc.status in (403, 404):
                        await self._forget_unwritten(job)
                        raise Refused(422, {
                            "error": f"repo: {job.repo} is not there or the monitor cannot "
                                     "write to it", "field": "repo"}) from None
                    raise Refused(502, {"error": f"GitHub refused: {exc}"}) from None
                self.counts["replayed" if replay else "enqueued"] += 1
                log.info("job filed", extra={"job": job.job_id, "origin": origin,
                                             "repo": job.repo, "issue": row.issue,
                                             "replay": replay})
                return 202, self._reply(row), replay
        finally:
            if not lock.locked() and lock.statistics().tasks_waiting == 0:
                self._locks.pop(job.job_id, None)

    async def _forget_unwritten(self, job: JobRequest) -> None:
        """A job GitHub refused before its reservation existed leaves nothing to finish."""
        try:
            if await self._ref_sha(job.repo, job_ref(job.job_id)) is not None:
                return
        except GitHubError:
            pass  # the repository itself is not readable: nothing of the job is there
        self.store.forget(job.job_id)

    @staticmethod
    def _reply(row: JobRow) -> Doc:
        return {"jobId": row.job_id, "issue": row.issue, "url": row.url, "status": "filed"}

    async def resume(self) -> int:
        """Finish jobs recorded here but not filed (a crash between the reservation and the
        issue). Returns how many were filed."""
        done = 0
        for row in self.store.unfiled():
            job = JobRequest.from_normalised(row.request)
            try:
                await self.enqueue(job, row.origin)
                done += 1
            except Refused as exc:
                log.warning("could not resume a job", extra={"job": row.job_id,
                                                             "error": exc.doc.get("error")})
        return done

    async def _file(self, job: JobRequest, origin: str, row: JobRow | None
                    ) -> tuple[JobRow, bool]:
        fresh = row is None
        if row is None:
            row = self.store.reserve(job.job_id, job.repo, job.digest, origin,
                                     job.normalised(), job.callback_url, self.clock())
        res = Reservation(job.job_id, job.digest, origin, self.store.instance, row.reserved_at)
        ref = job_ref(job.job_id)
        mine: str | None = None  # the sha of our reservation commit, once the ref is ours
        took_over = False
        current = None if fresh else await self._read_ref(job.repo, ref)
        if current is None:
            sha = await self._commit(job.repo, reservation_message(res), [])
            try:
                await self.gh.request("POST", f"/repos/{job.repo}/git/refs", retry=False,
                                      json={"ref": ref, "sha": sha})
                mine = sha
            except Unavailable:
                current = await self._read_ref(job.repo, ref)
                if current is not None and current.sha == sha:
                    mine = sha
            except GitHubError as exc:
                if exc.status != 422:
                    raise
            if mine is None:
                current = await self._read_ref(job.repo, ref)
                if current is None:
                    raise Unavailable(0, "the job's ref vanished", "GET", ref)
        if mine is None:
            assert current is not None
            theirs = current.reservation
            if theirs is None or theirs.job_id != job.job_id:
                raise GitHubError(409, f"{ref} is not a job reservation")
            if theirs.digest != job.digest:
                self.store.forget(job.job_id)
                self.counts["conflicts"] += 1
                raise Refused(409, {"error": "jobId was enqueued with a different body",
                                    "jobId": job.job_id})
            found = await self._find(job, theirs.at)
            if found is not None:
                return self._adopted(job, row, found), not fresh
            if theirs.filer == self.store.instance:
                mine = current.sha  # our own earlier reservation: we file
            else:
                waited = await self._wait_or_take_over(job, current)
                if isinstance(waited, tuple):
                    return self._adopted(job, row, waited), True
                mine, took_over = waited, True
        number, url = await self._post_issue(job, origin)
        after = await self._ref_sha(job.repo, ref)
        if took_over or after != mine:
            number, url = await self._settle(job, number, url)
        self.store.filed(job.job_id, number, url)
        return self.store.recorded(job.job_id), False

    def _adopted(self, job: JobRequest, row: JobRow, found: tuple[int, str, str | None]
                 ) -> JobRow:
        number, url, digest = found
        if digest is not None and digest != job.digest:
            self.store.forget(job.job_id)
            self.counts["conflicts"] += 1
            raise Refused(409, {"error": "jobId was enqueued with a different body",
                                "jobId": job.job_id, "issue": number, "url": url})
        self.store.filed(job.job_id, number, url)
        return self.store.recorded(job.job_id)

    async def _wait_or_take_over(self, job: JobRequest, current: RefState
                                 ) -> str | tuple[int, str, str | None]:
        """Another monitor reserved this job: wait for its issue (returned), or take the
        reservation over when it is older than ``takeover_after`` (our commit's sha)."""
        reservation = current.reservation
        assert reservation is not None
        deadline = trio.current_time() + self.peer_wait
        while True:
            age = self.clock() - reservation.at
            if age >= self.takeover_after:
                res = Reservation(job.job_id, job.digest, reservation.origin,
                                  self.store.instance, self.clock())
                sha = await self._commit(job.repo, reservation_message(res, takeover=True),
                                         [current.sha])
                try:
                    await self.gh.request(
                        "PATCH", f"/repos/{job.repo}/git/{job_ref(job.job_id)}",
                        json={"sha": sha, "force": False})
                    self.counts["takeovers"] += 1
                    log.warning("took over a job reservation with no issue",
                                extra={"job": job.job_id, "age": round(age, 1)})
                    found = await self._find(job, reservation.at)
                    return found if found is not None else sha
                except GitHubError as exc:
                    if exc.status != 422:
                        raise
                    moved = await self._read_ref(job.repo, job_ref(job.job_id))
                    if moved is None or moved.reservation is None:
                        raise Unavailable(0, "the job's ref moved", "PATCH", "") from None
                    current, reservation = moved, moved.reservation
            if trio.current_time() >= deadline:
                raise Refused(503, {"error": "another monitor is filing this job; try again",
                                    "jobId": job.job_id}, {"retry-after": "2"})
            await trio.sleep(0.25)
            found = await self._find(job, reservation.at)
            if found is not None:
                return found

    async def _post_issue(self, job: JobRequest, origin: str) -> tuple[int, str]:
        doc = {"title": issue_title(job), "body": issue_body(job, origin),
               "labels": issue_labels(job)}
        for attempt in range(3):
            try:
                data = (await self.gh.request("POST", f"/repos/{job.repo}/issues", retry=False,
                                              json=doc)).data
                return int(data["number"]), str(data.get("html_url") or "")
            except Unavailable:
                found = await self._find(job, self.clock() - SKEW)
                if found is not None:
                    return found[0], found[1]
                if attempt == 2:
                    raise
                await trio.sleep(0.5 * 2 ** attempt)
        raise AssertionError("unreachable")

    async def _settle(self, job: JobRequest, number: int, url: str) -> tuple[int, str]:
        """After a takeover: the oldest issue of the job wins; ours is closed if it is not."""
        row = self.store.job(job.job_id)
        since = (row.reserved_at if row else self.clock()) - 3600
        everything = await self._find_all(job, since)
        if not everything:
            return number, url
        first = min(everything)
        if first[0] == number:
            return number, url
        self.counts["duplicates_closed"] += 1
        log.warning("closing a duplicate job issue", extra={"job": job.job_id, "issue": number,
                                                            "kept": first[0]})
        await self.gh.request("POST", f"/repos/{job.repo}/issues/{number}/comments",
                              retry=False, json={"body": (
                                  f"<!-- bzzz:job-duplicate:{job.job_id} -->\n"
                                  f"Duplicate of #{first[0]} (job `{job.job_id}` was filed "
                                  "twice while a monitor was slow); closed.")})
        await self.gh.request("PATCH", f"/repos/{job.repo}/issues/{number}",
                              json={"state": "closed"})
        return first[0], first[1]

    # ------------------------------------------------------------------ GitHub reads

    async def login(self) -> str:
        if self._login is None:
            data = (await self.gh.request("GET", "/user")).data or {}
            self._login = str(data.get("login") or "")
        return self._login

    async def _tree(self, repo: str) -> str:
        """The empty tree, made once per repository (works on an empty repository too)."""
        if repo not in self._trees:
            data = (await self.gh.request("POST", f"/repos/{repo}/git/trees", retry=True,
                                          json={"tree": []})).data
            self._trees[repo] = data["sha"]
        return self._trees[repo]

    async def _commit(self, repo: str, message: str, parents: list[str]) -> str:
        tree = await self._tree(repo)
        data = (await self.gh.request("POST", f"/repos/{repo}/git/commits", retry=True,
                                      json={"message": message, "tree": tree,
                                            "parents": parents})).data
        sha: str = data["sha"]
        return sha

    async def _ref_sha(self, repo: str, ref: str) -> str | None:
        try:
            data = (await self.gh.request("GET", f"/repos/{repo}/git/ref/{ref[len('refs/'):]}")
                    ).data
        except GitHubError as exc:
            if exc.status == 404 and not isinstance(exc, Unavailable):
                return None
            raise
        sha: str = data["object"]["sha"]
        return sha

    async def _read_ref(self, repo: str, ref: str) -> RefState | None:
        sha = await self._ref_sha(repo, ref)
        if sha is None:
            return None
        commit = (await self.gh.request("GET", f"/repos/{repo}/git/commits/{sha}")).data or {}
        return RefState(sha, parse_reservation(commit.get("message", "")))

    async def _find_all(self, job: JobRequest, since: float) -> list[tuple[int, str, str | None]]:
        """The job's issues (number, url, digest) filed by this identity, updated since
        ``since`` (minus the clock skew we tolerate)."""
        login = await self.login()
        out = []
        for page in range(1, SEARCH_PAGES + 1):
            reply = await self.gh.request("GET", f"/repos/{job.repo}/issues", params={
                "creator": login, "state": "all", "sort": "created", "direction": "asc",
                "since": _iso(since - SKEW), "per_page": 100, "page": page})
            items = [i for i in reply.data or [] if isinstance(i, dict)]
            for issue in items:
                if "pull_request" in issue:
                    continue
                found = job_of_issue(issue.get("body"))
                if found is not None and found[0] == job.job_id:
                    out.append((int(issue["number"]), str(issue.get("html_url") or ""), found[1]))
            if 'rel="next"' not in reply.headers.get("link", "") or len(items) < 100:
                break
        return out

    async def _find(self, job: JobRequest, since: float) -> tuple[int, str, str | None] | None:
        found = await self._find_all(job, since)
        return min(found) if found else None

    # ------------------------------------------------------------------ jobs

    async def _known(self, job_id: str) -> JobRow:
        row = self.store.job(job_id)
        if row is None or row.issue is None:
            raise Refused(404, {"error": "no such job here", "jobId": job_id})
        return row

    async def _job_doc(self, job_id: str, origin: str) -> Doc:
        row = await self._known(job_id)
        if row.origin != origin:  # another token's job: its issue, agents and PR are not yours
            raise Refused(403, {"error": "only the token that enqueued a job reads it",
                                "jobId": job_id})
        events = [{"event": e.event, "ts": json.loads(e.body).get("ts"), "deliveryId":
                   e.delivery_id, "delivery": e.state, "tries": e.tries}
                  for e in self.store.events(job_id)]
        doc: dict[str, Any] = {
            "jobId": row.job_id, "repo": row.request.get("repo"), "issue": row.issue,
            "url": row.url, "status": row.status, "attempt": row.attempt, "pr": row.pr,
            "agent": row.agent, "node": row.node, "origin": row.origin,
            "task": row.request.get("task"), "filed": row.filed_at,
            "cancelRequested": row.cancel_requested is not None, "events": events}
        try:
            issue = (await self.gh.request(
                "GET", f"/repos/{row.request.get('repo')}/issues/{row.issue}")).data or {}
            doc["github"] = {"state": issue.get("state"), "labels": sorted(
                x.get("name", "") for x in issue.get("labels") or [] if isinstance(x, dict))}
        except GitHubError as exc:  # the local view still answers
            doc["github"] = {"error": str(exc)}
        return doc

    async def _cancel(self, job_id: str, origin: str) -> tuple[int, Doc, dict[str, str]]:
        row = await self._known(job_id)
        if row.origin != origin:
            raise Refused(403, {"error": "only the token that enqueued a job cancels it",
                                "jobId": job_id})
        reply = {"jobId": row.job_id, "issue": row.issue, "url": row.url,
                 "status": "cancelling"}
        if row.status in FINISHED:
            raise Refused(409, {"error": f"the job is already {row.status}", "jobId": job_id,
                                "status": row.status})
        if row.cancel_requested is not None:
            return 202, reply, {}
        repo = row.request.get("repo")
        try:
            await self.gh.request("POST", f"/repos/{repo}/issues/{row.issue}/comments",
                                  retry=False, json={"body": (
                                      f"/bzzz cancel\n\nRequested by **{origin}** through the "
                                      f"Hive bridge (job `{job_id}`).")})
        except Unavailable:
            raise Refused(503, {"error": "GitHub is unavailable; try again"},
                          {"retry-after": "5"}) from None
        except GitHubError as exc:
            raise Refused(502, {"error": f"GitHub refused: {exc}"}) from None
        self.store.cancel_requested(job_id)
        log.info("job cancel requested", extra={"job": job_id, "origin": origin})
        return 202, reply, {}
