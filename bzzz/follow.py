"""Following one task issue to its end (``bzzz task create --wait``) and finding a job's
issue again by its marker (``--job-id``).

:func:`phase_of` is the core (no I/O): an issue and its comments in, the task's phase out,
read from the state labels the agents set (bzzz/claim/task.py ``STATE_LABELS``) and the
markers of their comments (bzzz/claim/report.py). :class:`Follower` is the thin poller
around it (synchronous httpx: the command line has no event loop).

Whose comments count: anyone may comment on an issue, so a marker comment counts only from an
agent (a login assigned to the issue: a claiming agent assigns its own, and only people with
triage or push access can assign; ``--agent-login`` names more), and a ``/bzzz`` command only
from a writer (push permission, per GitHub's collaborator permission API), as the agents
themselves decide (bzzz/claim/trust.py). A job's issue is one filed by this command's own
login or by a writer (the monitor's bridge), never anyone else's issue with the marker.
"""

from __future__ import annotations

import enum
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from .github.markers import find_markers, marker
from .claim.task import STATE_LABELS

JOB_KIND = "job"
_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")
_CLAIMED_BY = re.compile(r"Claimed by \*\*(?P<node>[^*]+)\*\*")
# comments the agents write that say how a task ended (the last one wins)
_ENDINGS = {"result", "cancelled", "pr-closed", "refused", "review", "needs-input",
            "input-timeout", "question"}


class Phase(enum.Enum):
    QUEUED = "queued"
    APPROVAL = "waiting for approval"
    RUNNING = "running"
    REVIEW = "pull request waits for review"
    NEEDS_INPUT = "needs input"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    CLOSED = "closed without finishing"


# exit status of ``--wait`` per final phase
EXIT = {Phase.DONE: 0, Phase.FAILED: 1, Phase.CANCELLED: 2, Phase.CLOSED: 2,
        Phase.NEEDS_INPUT: 3}
TIMEOUT_EXIT = 124  # as timeout(1)


def check_job_id(job_id: str) -> str:
    if not _JOB_ID.match(job_id or ""):
        raise ValueError("--job-id takes 1-128 letters, digits and . _ : / - "
                         "(starting with a letter or digit)")
    return job_id


def job_marker(job_id: str) -> str:
    return marker(JOB_KIND, job_id)


@dataclass(frozen=True)
class View:
    phase: Phase
    detail: str = ""  # who runs it, the question asked, the pull request

    @property
    def final(self) -> bool:
        return self.phase in (Phase.DONE, Phase.FAILED, Phase.CANCELLED, Phase.CLOSED)


def _question(body: str) -> str:
    lines = [ln[2:] if ln.startswith("> ") else ln[1:] if ln.startswith(">") else None
             for ln in body.splitlines()]
    quoted = [ln for ln in lines if ln is not None]
    return "\n".join(quoted).strip()


def _author(c: Mapping[str, Any]) -> str:
    user = c.get("user")
    return str(user.get("login") or "").lower() if isinstance(user, dict) else ""


def _is_command(body: str) -> bool:
    return body.strip().lower().startswith("/bzzz")


def trusted(comments: Iterable[Mapping[str, Any]], agents: set[str],
            writers: set[str]) -> list[Mapping[str, Any]]:
    """The comments that may speak for the task: agents' marker comments, writers' commands
    (logins compared in lower case)."""
    out = []
    for c in comments:
        body, who = c.get("body") or "", _author(c)
        if _is_command(body):
            if who in writers:
                out.append(c)
        elif find_markers(body) and who in agents:
            out.append(c)
    return out


def _last_ending(comments: Iterable[Mapping[str, Any]]) -> tuple[str, str] | None:
    last = None
    for c in comments:
        body = c.get("body") or ""
        kinds = {k for k, _ in find_markers(body)} & _ENDINGS
        if kinds:
            last = (sorted(kinds)[0], body)
        elif body.strip().lower().startswith("/bzzz cancel"):
            last = ("cancel-command", body)
    return last


def phase_of(issue: Mapping[str, Any], comments: Iterable[Mapping[str, Any]] = ()) -> View:
    """The task's phase from its issue (labels, state) and comments (oldest first)."""
    comments = list(comments)
    labels = {x.get("name") for x in issue.get("labels") or [] if isinstance(x, dict)}
    if STATE_LABELS["done"] in labels:
        return View(Phase.DONE)
    ending = _last_ending(comments)
    if STATE_LABELS["failed"] in labels:
        if ending is not None and ending[0] in ("cancelled", "cancel-command", "pr-closed"):
            return View(Phase.CANCELLED, "the pull request was closed unmerged"
                        if ending[0] == "pr-closed" else "cancelled")
        return View(Phase.FAILED)
    if issue.get("state") == "closed":
        return View(Phase.CLOSED)
    if STATE_LABELS["needs-input"] in labels:
        asked = [c.get("body") or "" for c in comments
                 if any(k == "question" for k, _ in find_markers(c.get("body") or ""))]
        return View(Phase.NEEDS_INPUT, _question(asked[-1]) if asked else "")
    if STATE_LABELS["needs-approval"] in labels:
        return View(Phase.APPROVAL)
    if STATE_LABELS["review"] in labels:
        return View(Phase.REVIEW)
    if STATE_LABELS["claimed"] in labels:
        claims = [m["node"] for c in comments for m in _CLAIMED_BY.finditer(c.get("body") or "")]
        return View(Phase.RUNNING, f"on {claims[-1]}" if claims else "")
    return View(Phase.QUEUED)


class Follower:
    """Polls one issue until its task ends, ``timeout`` passes, or (``wait_input`` off) it
    asks a question. ``say`` gets one line per change."""

    def __init__(self, client: httpx.Client, repo: str, number: int, *, interval: float = 2.0,
                 timeout: float | None = None, wait_input: bool = False,
                 say: Callable[[str], None] = print, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 agents: Iterable[str] = ()) -> None:
        self.http, self.repo, self.number = client, repo, number
        self.interval, self.timeout, self.wait_input = interval, timeout, wait_input
        self.say, self.clock, self.sleep = say, clock, sleep
        self.agents = {a.lower() for a in agents}
        self.writers = Writers(client, repo)

    def _get(self, path: str, **params: Any) -> Any:
        resp = self.http.get(path, params=params or None)
        if resp.status_code != 200:
            raise httpx.HTTPStatusError(f"{resp.status_code}", request=resp.request,
                                        response=resp)
        return resp.json()

    def _comments(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for page in range(1, 51):
            resp = self.http.get(f"/repos/{self.repo}/issues/{self.number}/comments",
                                 params={"per_page": 100, "page": page})
            if resp.status_code != 200:
                break
            out += [c for c in resp.json() if isinstance(c, dict)]
            if 'rel="next"' not in resp.headers.get("link", ""):
                break
        return out

    def _trusted(self, issue: Mapping[str, Any], comments: list[dict[str, Any]]
                 ) -> list[Mapping[str, Any]]:
        agents = self.agents | {str(a.get("login") or "").lower()
                                for a in issue.get("assignees") or [] if isinstance(a, dict)}
        commanders = {_author(c) for c in comments if _is_command(c.get("body") or "")}
        return trusted(comments, agents, {w for w in commanders if self.writers(w)})

    def run(self) -> tuple[View | None, int]:
        """The last view and the exit status."""
        deadline = None if self.timeout is None else self.clock() + self.timeout
        shown: View | None = None
        seen_labels: tuple[tuple[str, ...], str | None] | None = None
        view: View | None = None
        while True:
            issue = self._get(f"/repos/{self.repo}/issues/{self.number}")
            labels = (tuple(sorted(x.get("name", "") for x in issue.get("labels") or [])),
                      issue.get("state"))
            if labels != seen_labels:  # comments only matter when the labels move
                seen_labels = labels
                view = phase_of(issue, self._trusted(issue, self._comments()))
            assert view is not None
            if view != shown:
                shown = view
                line = f"{self.repo}#{self.number} {view.phase.value}"
                if view.detail and view.phase is not Phase.NEEDS_INPUT:
                    line += f" ({view.detail})"
                self.say(line)
                if view.phase is Phase.NEEDS_INPUT and view.detail:
                    self.say("question:\n" + view.detail)
            if view.final:
                return view, EXIT[view.phase]
            if view.phase is Phase.NEEDS_INPUT and not self.wait_input:
                return view, EXIT[Phase.NEEDS_INPUT]
            if deadline is not None and self.clock() >= deadline:
                return view, TIMEOUT_EXIT
            wait = self.interval if deadline is None else min(self.interval,
                                                              max(0.0, deadline - self.clock()))
            self.sleep(wait)


class Writers:
    """Whether a login may push to the repository (GitHub's collaborator permission API),
    asked once per login."""

    def __init__(self, client: httpx.Client, repo: str) -> None:
        self.http, self.repo = client, repo
        self._known: dict[str, bool] = {}

    def __call__(self, login: str) -> bool:
        from .claim.trust import is_writer
        login = login.lower()
        if not login:
            return False
        if login not in self._known:
            resp = self.http.get(f"/repos/{self.repo}/collaborators/{login}/permission")
            if resp.status_code in (403, 404):  # unknown, or we may not ask: not trusted
                self._known[login] = False
            elif resp.status_code != 200:
                raise httpx.HTTPStatusError(f"{resp.status_code}", request=resp.request,
                                            response=resp)
            else:
                data = resp.json() if isinstance(resp.json(), dict) else {}
                self._known[login] = is_writer(data.get("permission"), data.get("role_name"))
        return self._known[login]


def own_login(client: httpx.Client) -> str:
    """The login of the token this command uses ("" when GitHub does not say)."""
    resp = client.get("/user")
    data = resp.json() if resp.status_code == 200 else {}
    return str(data.get("login") or "").lower() if isinstance(data, dict) else ""


def find_job(client: httpx.Client, repo: str, job_id: str,
             max_pages: int = 100) -> dict[str, Any] | None:
    """The open or closed ``bzzz`` issue carrying the job's marker, if any, filed by this
    command's own login or by a writer (anyone else's issue with the marker is ignored)."""
    want = (JOB_KIND, job_id)
    me, writers = own_login(client), Writers(client, repo)
    for page in range(1, max_pages + 1):
        resp = client.get(f"/repos/{repo}/issues", params={
            "state": "all", "labels": "bzzz", "per_page": 100, "page": page})
        if resp.status_code != 200:
            raise httpx.HTTPStatusError(f"{resp.status_code}", request=resp.request,
                                        response=resp)
        items = [i for i in resp.json() if isinstance(i, dict)]
        for issue in items:
            if "pull_request" not in issue and want in find_markers(issue.get("body") or "") \
                    and (_author(issue) == me or writers(_author(issue))):
                return issue
        if not items or 'rel="next"' not in resp.headers.get("link", ""):
            return None
    return None
