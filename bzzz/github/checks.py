"""What CI says about a pull request's head commit, for the agents' CI rounds.

Two halves:

**The core** (no I/O): :func:`verdict` reads a head commit's check runs and commit statuses
and says ``green``, ``red`` (with what failed) or ``pending``. The rules (issue #23):

- when the base branch's protection requires status checks (``required``: names of check
  runs or status contexts), only those count: each must be reported and passing (then the
  head is green at once, without ``ci_settle``);
- otherwise every check run and status reported on the head counts; a head with none at all
  after ``ci_settle`` seconds (30) is green (a repository without CI), and a head whose
  reported checks all pass is green once ``ci_settle`` has passed too (a CI that reports a
  little late is not missed);
- the latest run of each name and the latest status of each context count (a re-run
  replaces the earlier result); a run passes when it completed ``success``, ``neutral`` or
  ``skipped``, fails when it completed with any other conclusion; a status passes on
  ``success``, fails on ``failure`` or ``error``;
- one failure makes the head red at once (no need to wait for the rest);
- still pending after ``ci_wait`` seconds: red, each unfinished check reported with the
  conclusion ``timed_out`` and :attr:`Verdict.timed_out` set (the caller may word it so).

What failed is kept bounded for ``$BZZZ_FEEDBACK`` (:func:`Verdict.feedback`): for check
runs their name, conclusion, output title, summary and text, and annotations (path, lines,
level, message); for statuses their context, state, description and target URL; at most
:data:`MAX_FAILURES` entries, each text cut to :data:`MAX_TEXT` characters and
:data:`MAX_ANNOTATIONS` annotations, the whole to :data:`MAX_FEEDBACK`.

**The reader** (:class:`ChecksReader`, on bzzz/github/client.py's client): the head's check
runs (``GET /repos/{o}/{r}/commits/{sha}/check-runs``) and combined status
(``GET .../commits/{sha}/status``) with ``If-None-Match`` (a 304 is free against GitHub's
budget, so polling costs nothing while CI is quiet), the failing runs' annotations, the
base branch's required checks (``GET /repos/{o}/{r}/branches/{base}``, which any reader may
call, unlike the protection API that needs admin), and :meth:`ChecksReader.mark_ready`,
GitHub's GraphQL ``markPullRequestReadyForReview`` (the REST API cannot take a pull request
out of draft). Use::

    reader = ChecksReader(client)
    required = await reader.required_checks("o/r", "main")
    runs, statuses = await reader.head("o/r", head_sha)
    v = verdict(runs, statuses, required, elapsed=now - pushed_at, ci_wait=1800)
    if v.state == "red":
        runs = await reader.with_annotations("o/r", runs, v)  # annotations of failed runs
        feedback = verdict(runs, statuses, required, elapsed, 1800).feedback()
    elif v.state == "green" and ready_when_green:
        await reader.mark_ready(pull["node_id"])
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote

from .client import GitHubClient
from .errors import GitHubError

PASSING = frozenset({"success", "neutral", "skipped"})
CI_SETTLE = 30.0
MAX_FAILURES = 20
MAX_TEXT = 2000
MAX_ANNOTATIONS = 20
MAX_FEEDBACK = 12000
READY = ("mutation($id: ID!) { markPullRequestReadyForReview(input: {pullRequestId: $id}) "
         "{ pullRequest { id number isDraft } } }")


@dataclass(frozen=True)
class Annotation:
    path: str
    start_line: int
    end_line: int
    level: str
    message: str
    title: str | None = None


@dataclass(frozen=True)
class CheckRun:
    id: int
    name: str
    status: str  # queued | in_progress | completed (or GitHub Actions' waiting, requested...)
    conclusion: str | None
    title: str | None = None
    summary: str | None = None
    text: str | None = None
    details_url: str | None = None
    annotations_count: int = 0
    annotations: tuple[Annotation, ...] = ()


@dataclass(frozen=True)
class Status:
    context: str
    state: str  # error | failure | pending | success
    description: str | None = None
    target_url: str | None = None


@dataclass(frozen=True)
class Failure:
    """One check that failed (or never finished): what ``$BZZZ_FEEDBACK`` says about it."""
    kind: str  # "check_run" | "status" | "missing"
    name: str
    conclusion: str  # a run's conclusion, a status's state, or timed_out
    title: str | None = None
    summary: str | None = None
    text: str | None = None
    url: str | None = None
    annotations: tuple[Annotation, ...] = ()
    run_id: int | None = None


@dataclass(frozen=True)
class Verdict:
    state: str  # green | red | pending
    failures: tuple[Failure, ...] = ()
    pending: tuple[str, ...] = ()  # names still running or not reported yet
    counted: tuple[str, ...] = ()  # names that counted
    timed_out: bool = False
    omitted: int = 0  # failures past MAX_FAILURES

    def feedback(self) -> str:
        """What failed, as text for the executor (bounded by :data:`MAX_FEEDBACK`)."""
        parts = [_failure_text(f) for f in self.failures]
        if self.omitted:
            parts.append(f"... and {self.omitted} more failing checks")
        return _cut("\n\n".join(parts), MAX_FEEDBACK) or ""


def _cut(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[:limit - 1] + "…"


def _failure_text(f: Failure) -> str:
    what = {"check_run": "check run", "status": "status", "missing": "required check"}[f.kind]
    lines = [f"{what} {f.name}: {f.conclusion}"]
    for label, value in (("title", f.title), ("summary", f.summary), ("details", f.text),
                         ("url", f.url)):
        if value:
            lines.append(f"{label}: {value}")
    for a in f.annotations:
        where = f"{a.path}:{a.start_line}" + (f"-{a.end_line}" if a.end_line != a.start_line
                                              else "")
        lines.append(f"{where}: {a.level}: " + (f"{a.title}: " if a.title else "") + a.message)
    return "\n".join(lines)


def _latest_runs(runs: list[CheckRun]) -> dict[str, CheckRun]:
    """The latest run of each name (the highest id: GitHub's ids grow)."""
    latest: dict[str, CheckRun] = {}
    for run in sorted(runs, key=lambda r: r.id):
        latest[run.name] = run
    return latest


def _run_failure(run: CheckRun, conclusion: str | None = None) -> Failure:
    return Failure("check_run", run.name, conclusion or run.conclusion or "failure",
                   _cut(run.title, MAX_TEXT), _cut(run.summary, MAX_TEXT),
                   _cut(run.text, MAX_TEXT), run.details_url,
                   tuple(replace(a, message=_cut(a.message, MAX_TEXT) or "")
                         for a in run.annotations[:MAX_ANNOTATIONS]), run.id)


def _status_failure(s: Status, conclusion: str | None = None) -> Failure:
    return Failure("status", s.context, conclusion or s.state,
                   summary=_cut(s.description, MAX_TEXT), url=s.target_url)


def _judge(name: str, run: CheckRun | None, status: Status | None) -> tuple[str, Failure | None]:
    """One name's result: ("pass"|"fail"|"pending"|"missing", its failure)."""
    results: list[tuple[str, Failure | None]] = []
    if run is not None:
        if run.status != "completed":
            results.append(("pending", None))
        elif run.conclusion in PASSING:
            results.append(("pass", None))
        else:
            results.append(("fail", _run_failure(run)))
    if status is not None:
        if status.state == "success":
            results.append(("pass", None))
        elif status.state in ("failure", "error"):
            results.append(("fail", _status_failure(status)))
        else:
            results.append(("pending", None))
    if not results:
        return "missing", None
    for wanted in ("fail", "pending"):
        found = next((r for r in results if r[0] == wanted), None)
        if found is not None:
            return found
    return "pass", None


def _timeout_failure(name: str, run: CheckRun | None, status: Status | None) -> Failure:
    if run is not None and run.status != "completed":
        return _run_failure(run, "timed_out")
    if status is not None:
        return _status_failure(status, "timed_out")
    return Failure("missing", name, "timed_out",
                   summary="expected by the base branch's protection, never reported")


def verdict(runs: list[CheckRun], statuses: list[Status], required: list[str] | None,
            elapsed: float, ci_wait: float, ci_settle: float = CI_SETTLE) -> Verdict:
    """green, red or pending for a head commit (the rules: the module's docstring).

    ``statuses`` may hold several per context (the latest is the last given, as GitHub
    lists the combined status's); ``elapsed`` counts from the push of the head."""
    latest_runs = _latest_runs(runs)
    latest_statuses = {s.context: s for s in statuses}
    names = list(dict.fromkeys(required)) if required else list(
        dict.fromkeys([*latest_runs, *latest_statuses]))
    failures: list[Failure] = []
    waiting: list[str] = []
    for name in names:
        result, failure = _judge(name, latest_runs.get(name), latest_statuses.get(name))
        if failure is not None:
            failures.append(failure)
        elif result in ("pending", "missing"):
            waiting.append(name)
    counted = tuple(names)
    if failures:
        return _red(failures, waiting, counted, False)
    if waiting and elapsed >= ci_wait:
        timeouts = [_timeout_failure(n, latest_runs.get(n), latest_statuses.get(n))
                    for n in waiting]
        return _red(timeouts, [], counted, True)
    if waiting or (not required and elapsed < ci_settle):
        return Verdict("pending", pending=tuple(waiting), counted=counted)
    return Verdict("green", counted=counted)


def _red(failures: list[Failure], waiting: list[str], counted: tuple[str, ...],
         timed_out: bool) -> Verdict:
    return Verdict("red", tuple(failures[:MAX_FAILURES]), tuple(waiting), counted, timed_out,
                   max(0, len(failures) - MAX_FAILURES))


# ---------------------------------------------------------------------------- parsing

def parse_run(doc: dict[str, Any]) -> CheckRun:
    """A check run from GitHub's document (``output`` may be absent or partly null)."""
    out = doc.get("output") or {}
    return CheckRun(int(doc["id"]), str(doc["name"]), str(doc.get("status") or "queued"),
                    doc.get("conclusion"), out.get("title"), out.get("summary"),
                    out.get("text"), doc.get("details_url") or doc.get("html_url"),
                    int(out.get("annotations_count") or 0))


def parse_annotation(doc: dict[str, Any]) -> Annotation:
    return Annotation(str(doc.get("path") or ""), int(doc.get("start_line") or 0),
                      int(doc.get("end_line") or doc.get("start_line") or 0),
                      str(doc.get("annotation_level") or "failure"),
                      str(doc.get("message") or ""), doc.get("title"))


def parse_status(doc: dict[str, Any]) -> Status:
    return Status(str(doc.get("context") or "default"), str(doc.get("state") or "pending"),
                  doc.get("description"), doc.get("target_url"))


def required_from_branch(doc: dict[str, Any]) -> list[str] | None:
    """The required checks in ``GET /branches/{b}``'s document, or None for none."""
    protection = doc.get("protection") or {}
    checks = protection.get("required_status_checks") or {}
    if not doc.get("protected") or checks.get("enforcement_level") == "off":
        return None
    names = [c for c in checks.get("contexts") or [] if isinstance(c, str)]
    names += [c["context"] for c in checks.get("checks") or []
              if isinstance(c, dict) and isinstance(c.get("context"), str)]
    return list(dict.fromkeys(names)) or None


# ---------------------------------------------------------------------------- the reader

@dataclass
class _Cached:
    etag: str | None = None
    data: Any = None


@dataclass
class ChecksReader:
    """Reads CI results through a :class:`GitHubClient`, conditionally (see the module)."""

    client: GitHubClient
    graphql_path: str = "/graphql"  # GitHub Enterprise Server: its /api/graphql
    cache: dict[str, _Cached] = field(default_factory=dict)

    async def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        key = path + ("?" + "&".join(f"{k}={v}" for k, v in sorted(params.items()))
                      if params else "")
        cached = self.cache.setdefault(key, _Cached())
        reply = await self.client.request("GET", path, params=params, etag=cached.etag)
        if reply.status != 304:
            cached.etag, cached.data = reply.etag, reply.data
        if len(self.cache) > 256:  # old heads' answers: forget the oldest
            self.cache.pop(next(iter(self.cache)))
        return cached.data

    async def head(self, repo: str, sha: str) -> tuple[list[CheckRun], list[Status]]:
        """The head commit's check runs (every app's, latest per name) and its statuses
        (the latest of each context)."""
        runs_doc = await self._get(f"/repos/{repo}/commits/{sha}/check-runs",
                                   {"per_page": 100})
        status_doc = await self._get(f"/repos/{repo}/commits/{sha}/status", {"per_page": 100})
        runs = [parse_run(d) for d in (runs_doc or {}).get("check_runs") or []]
        statuses = [parse_status(d) for d in (status_doc or {}).get("statuses") or []]
        return runs, statuses

    async def with_annotations(self, repo: str, runs: list[CheckRun],
                               v: Verdict) -> list[CheckRun]:
        """The runs, the failed ones with their annotations (at most MAX_ANNOTATIONS)."""
        failed = {f.run_id for f in v.failures if f.run_id is not None}
        out = []
        for run in runs:
            if run.id in failed and run.annotations_count and not run.annotations:
                docs = await self._get(f"/repos/{repo}/check-runs/{run.id}/annotations",
                                       {"per_page": MAX_ANNOTATIONS})
                run = replace(run, annotations=tuple(parse_annotation(d)
                                                     for d in (docs or [])[:MAX_ANNOTATIONS]))
            out.append(run)
        return out

    async def required_checks(self, repo: str, branch: str) -> list[str] | None:
        """The checks the base branch's protection requires (None: not protected so)."""
        try:
            doc = await self._get(f"/repos/{repo}/branches/{quote(branch, safe='')}")
        except GitHubError as err:
            if err.status == 404:
                return None
            raise
        return required_from_branch(doc or {})

    async def mark_ready(self, node_id: str) -> bool:
        """A draft pull request becomes ready for review (GraphQL); its ``isDraft`` after."""
        reply = await self.client.request("POST", self.graphql_path, retry=True,
                                          json={"query": READY, "variables": {"id": node_id}})
        doc = reply.data if isinstance(reply.data, dict) else {}
        if doc.get("errors"):
            first = doc["errors"][0] if isinstance(doc["errors"][0], dict) else {}
            raise GitHubError(422, str(first.get("message") or "GraphQL error"), "POST",
                              self.graphql_path)
        pull = ((doc.get("data") or {}).get("markPullRequestReadyForReview") or {}).get(
            "pullRequest") or {}
        return not pull.get("isDraft", False)
