"""Commit statuses, check runs and check suites as GitHub keeps them (a core: no I/O, time
passed in; the HTTP handlers are bzzz/devhub/checks_api.py).

GitHub's rules (docs.github.com REST "Commit statuses", "Check runs", "Check suites"):

- a commit status is ``state`` error|failure|pending|success with a ``context`` ("default"
  unless given), ``description`` and ``target_url``, posted by anyone with push access (or an
  installation token with ``statuses: write``); statuses accumulate (a commit has at most
  1000 per context) and the latest per context counts;
- the combined state is ``failure`` when a context's latest status is error or failure,
  ``pending`` when there are none or one is pending, else ``success``;
- check runs are written only by GitHub Apps (``checks: write``); a run is ``queued``,
  ``in_progress`` or ``completed`` (with a ``conclusion``: giving a conclusion completes it);
  its output has a title, a summary (required with an output), a text and annotations, at
  most 50 per request, appended by each update;
- an app's first check run on a commit creates that app's check suite for it; the suite is
  completed when all its runs are, its conclusion the worst of theirs.
"""

from __future__ import annotations

from typing import Any

from .errors import HubError

STATES = ("error", "failure", "pending", "success")
RUN_STATUSES = ("queued", "in_progress", "completed")
CONCLUSIONS = ("action_required", "cancelled", "failure", "neutral", "success", "skipped",
               "stale", "timed_out")
# a suite's conclusion is the first of these among its runs' (then success, then skipped)
WORST_FIRST = ("action_required", "cancelled", "timed_out", "failure", "stale", "neutral")
PASSING = ("success", "neutral", "skipped")  # what a required check may conclude
LEVELS = ("notice", "warning", "failure")
MAX_STATUSES = 1000  # per commit and context
MAX_ANNOTATIONS = 50  # per request
MAX_CONTEXT = 255


def _invalid(resource: str, field_name: str, code: str = "invalid") -> HubError:
    return HubError(422, "Validation Failed",
                    [{"resource": resource, "field": field_name, "code": code}])


def _optional_str(doc: dict[str, Any], name: str, resource: str) -> str | None:
    value = doc.get(name)
    if value is not None and not isinstance(value, str):
        raise _invalid(resource, name)
    return value


def new_status(ident: int, sha: str, creator: str, now: int, doc: Any,
               existing: list[dict[str, Any]]) -> dict[str, Any]:
    """A commit status from ``POST /statuses/{sha}``'s body (422 when invalid)."""
    if not isinstance(doc, dict):
        raise HubError(400, "Problems parsing JSON")
    state = doc.get("state")
    if state not in STATES:
        raise _invalid("Status", "state")
    context = doc.get("context", "default")
    if not isinstance(context, str) or not context or len(context) > MAX_CONTEXT:
        raise _invalid("Status", "context")
    target = _optional_str(doc, "target_url", "Status")
    if target and not target.startswith(("http://", "https://")):
        raise _invalid("Status", "target_url")
    description = _optional_str(doc, "description", "Status")
    if sum(1 for s in existing if s["sha"] == sha and s["context"] == context) >= MAX_STATUSES:
        raise HubError(422, "Validation Failed", [{
            "resource": "Status", "code": "custom",
            "message": "This SHA and context has reached the maximum number of statuses."}])
    return {"id": ident, "sha": sha, "state": state, "context": context,
            "description": description, "target_url": target, "creator": creator,
            "created_at": now, "updated_at": now}


def statuses_of(statuses: list[dict[str, Any]], sha: str) -> list[dict[str, Any]]:
    """Every status of a commit, newest first (GitHub's order)."""
    return sorted((s for s in statuses if s["sha"] == sha), key=lambda s: -s["id"])


def latest_statuses(statuses: list[dict[str, Any]], sha: str) -> list[dict[str, Any]]:
    """The latest status of each context of a commit (oldest context first)."""
    latest: dict[str, dict[str, Any]] = {}
    for s in sorted((s for s in statuses if s["sha"] == sha), key=lambda s: s["id"]):
        latest[s["context"]] = s
    return sorted(latest.values(), key=lambda s: s["id"])


def combined_state(latest: list[dict[str, Any]]) -> str:
    if any(s["state"] in ("error", "failure") for s in latest):
        return "failure"
    if not latest or any(s["state"] == "pending" for s in latest):
        return "pending"
    return "success"


def _output(doc: Any, run: dict[str, Any] | None) -> dict[str, Any]:
    """A run's output after a request's ``output`` (annotations appended, at most 50)."""
    out = dict(run["output"]) if run else {"title": None, "summary": None, "text": None}
    if doc is None:
        return out
    if not isinstance(doc, dict):
        raise _invalid("CheckRun", "output")
    for key in ("title", "summary", "text"):
        if key in doc:
            out[key] = _optional_str(doc, key, "CheckRun")
    if not out.get("summary") or not out.get("title"):
        raise HubError(422, "Invalid request.\n\n\"title\" and \"summary\" are required "
                            "in an output.")
    return out


def _annotations(doc: Any) -> list[dict[str, Any]]:
    items = (doc or {}).get("annotations") if isinstance(doc, dict) else None
    if items is None:
        return []
    if not isinstance(items, list) or len(items) > MAX_ANNOTATIONS:
        raise HubError(422, f"Invalid request.\n\nAt most {MAX_ANNOTATIONS} annotations "
                            "per request.")
    out = []
    for a in items:
        if not isinstance(a, dict) or not isinstance(a.get("path"), str) \
                or not isinstance(a.get("message"), str) \
                or a.get("annotation_level") not in LEVELS \
                or not all(isinstance(a.get(k), int) and not isinstance(a.get(k), bool)
                           for k in ("start_line", "end_line")):
            raise _invalid("CheckRun", "annotations")
        out.append({"path": a["path"], "start_line": a["start_line"],
                    "end_line": a["end_line"],
                    "start_column": a.get("start_column") if isinstance(
                        a.get("start_column"), int) else None,
                    "end_column": a.get("end_column") if isinstance(
                        a.get("end_column"), int) else None,
                    "annotation_level": a["annotation_level"], "message": a["message"],
                    "title": a.get("title") if isinstance(a.get("title"), str) else None,
                    "raw_details": a.get("raw_details") if isinstance(
                        a.get("raw_details"), str) else None})
    return out


def _progress(doc: dict[str, Any], run: dict[str, Any], now: int) -> None:
    """``status``, ``conclusion`` and their times: a conclusion completes the run."""
    status = doc.get("status", run["status"])
    if status not in RUN_STATUSES:
        raise _invalid("CheckRun", "status")
    conclusion = doc.get("conclusion", run["conclusion"])
    if conclusion is not None and conclusion not in CONCLUSIONS:
        raise _invalid("CheckRun", "conclusion")
    if conclusion is not None:
        status = "completed"
    if status == "completed" and conclusion is None:
        raise HubError(422, "Validation Failed", [{
            "resource": "CheckRun", "code": "custom", "field": "conclusion",
            "message": "conclusion can't be blank when status is completed"}])
    run["status"], run["conclusion"] = status, conclusion
    if status != "queued" and run["started_at"] is None:
        run["started_at"] = now
    if status == "completed" and run["completed_at"] is None:
        run["completed_at"] = now


def new_run(ident: int, suite_id: int, app_id: int, now: int, doc: Any) -> dict[str, Any]:
    """A check run from ``POST /check-runs``'s body (422 when invalid)."""
    if not isinstance(doc, dict):
        raise HubError(400, "Problems parsing JSON")
    name, sha = doc.get("name"), doc.get("head_sha")
    if not isinstance(name, str) or not name:
        raise _invalid("CheckRun", "name", "missing_field")
    if not isinstance(sha, str) or not sha:
        raise _invalid("CheckRun", "head_sha", "missing_field")
    run: dict[str, Any] = {
        "id": ident, "name": name, "head_sha": sha, "suite_id": suite_id, "app_id": app_id,
        "status": "queued", "conclusion": None, "started_at": None, "completed_at": None,
        "details_url": _optional_str(doc, "details_url", "CheckRun"),
        "external_id": _optional_str(doc, "external_id", "CheckRun") or "",
        "output": _output(doc.get("output"), None), "annotations": [],
        "created_at": now, "updated_at": now}
    update_run(run, doc, now)
    return run


def update_run(run: dict[str, Any], doc: Any, now: int) -> None:
    """``PATCH /check-runs/{id}``: the fields given change; annotations are appended."""
    if not isinstance(doc, dict):
        raise HubError(400, "Problems parsing JSON")
    for key in ("name", "details_url", "external_id"):
        if key in doc:
            value = _optional_str(doc, key, "CheckRun")
            if key == "name" and not value:
                raise _invalid("CheckRun", "name")
            run[key] = value if key != "external_id" else value or ""
    if "started_at" in doc and run["started_at"] is None and doc["started_at"] is not None:
        run["started_at"] = now
    if "output" in doc:
        run["output"] = _output(doc["output"], run)
    _progress(doc, run, now)
    run["annotations"] = run["annotations"] + _annotations(doc.get("output"))
    run["updated_at"] = now


def latest_runs(runs: list[dict[str, Any]], sha: str) -> list[dict[str, Any]]:
    """The latest run of each name (and app) on a commit: GitHub's ``filter=latest``."""
    latest: dict[tuple[str, int], dict[str, Any]] = {}
    for run in sorted((r for r in runs if r["head_sha"] == sha), key=lambda r: r["id"]):
        latest[(run["name"], run["app_id"])] = run
    return sorted(latest.values(), key=lambda r: -r["id"])


def suite_progress(runs: list[dict[str, Any]]) -> tuple[str, str | None]:
    """A suite's (status, conclusion) from its runs' latest per name."""
    if not runs:
        return "queued", None
    if any(r["status"] != "completed" for r in runs):
        started = any(r["status"] != "queued" for r in runs)
        return ("in_progress" if started else "queued"), None
    found = {r["conclusion"] for r in runs}
    for conclusion in WORST_FIRST:
        if conclusion in found:
            return "completed", conclusion
    return "completed", "success" if "success" in found else "skipped"


def required_states(statuses: list[dict[str, Any]], runs: list[dict[str, Any]], sha: str,
                    contexts: list[str], apps: dict[str, int] | None = None) -> dict[str, str]:
    """Each required context's state on a commit: ``success``, ``failure``, ``pending`` or
    ``expected`` (nothing reported). A check run of that name counts as a status: passing
    when it completed success, neutral or skipped. A context bound to an app (``apps``:
    context -> app id) counts only that app's check runs."""
    apps = apps or {}
    states: dict[str, str] = {c: "expected" for c in contexts}
    for s in latest_statuses(statuses, sha):
        if s["context"] in states and s["context"] not in apps:
            states[s["context"]] = "failure" if s["state"] == "error" else s["state"]
    for run in reversed(latest_runs(runs, sha)):  # oldest first: the newest run decides
        if run["name"] in states and apps.get(run["name"], run["app_id"]) == run["app_id"]:
            if run["status"] != "completed":
                states[run["name"]] = "pending"
            else:
                states[run["name"]] = "success" if run["conclusion"] in PASSING else "failure"
    return states
