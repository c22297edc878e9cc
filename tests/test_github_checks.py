"""The agents' reading of CI (bzzz/github/checks.py): the green/red/pending core against an
independent oracle, exhaustively on small cases and by hypothesis on larger ones; its
bounds; and the reader against devhub (conditional requests, required checks, annotations,
marking a draft ready through GraphQL)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bzzz.devhub import DevHubThread
from bzzz.github.checks import (MAX_ANNOTATIONS, MAX_FAILURES, MAX_FEEDBACK, MAX_TEXT,
                                Annotation, CheckRun, ChecksReader, Status, verdict)
from bzzz.github.client import GitHubClient

CONCLUSIONS = ("success", "neutral", "skipped", "failure", "cancelled", "timed_out",
               "action_required", "stale")
STATES = ("success", "pending", "failure", "error")
NAMES = ("test", "lint", "ci/build")


def oracle(runs: list[CheckRun], statuses: list[Status], required: list[str] | None,
           elapsed: float, ci_wait: float, ci_settle: float) -> str:
    """The rules of issue #23, written again as plainly as possible."""
    latest: dict[str, CheckRun] = {}
    for run in runs:
        if run.name not in latest or run.id > latest[run.name].id:
            latest[run.name] = run
    last_status = {s.context: s for s in statuses}
    names = set(required) if required else set(latest) | set(last_status)
    result = {}
    for name in names:
        outcomes = set()
        if name in latest:
            r = latest[name]
            outcomes.add("pending" if r.status != "completed" else
                         "pass" if r.conclusion in ("success", "neutral", "skipped") else "fail")
        if name in last_status:
            st_ = last_status[name].state
            outcomes.add("pass" if st_ == "success" else "pending" if st_ == "pending"
                         else "fail")
        result[name] = ("fail" if "fail" in outcomes else "pending" if "pending" in outcomes
                        else "pass" if outcomes else "missing")
    if "fail" in result.values():
        return "red"
    if any(v in ("pending", "missing") for v in result.values()):
        return "red" if elapsed >= ci_wait else "pending"
    if not required and elapsed < ci_settle:
        return "pending"
    return "green"


def run_(i: int, name: str, status: str, conclusion: str | None = None, **kw: Any) -> CheckRun:
    return CheckRun(i, name, status, conclusion, **kw)


RUN_CHOICES: list[tuple[str, str | None] | None] = [None, ("queued", None),
                                                    ("in_progress", None)] + [
    ("completed", c) for c in CONCLUSIONS]
STATUS_CHOICES: list[str | None] = [None, *STATES]


def test_every_case_of_one_check_agrees_with_the_oracle():
    """Every run state and conclusion × every status state × required or not × the times
    around ci_settle and ci_wait, for one name (and a second, unrelated one)."""
    times = (0.0, 29.9, 30.0, 599.9, 600.0, 5000.0)
    n = 0
    for run_choice, status_choice, required, elapsed in itertools.product(
            RUN_CHOICES, STATUS_CHOICES, (None, ["test"], ["lint"], ["test", "lint"]), times):
        runs = [run_(1, "test", *run_choice)] if run_choice else []
        statuses = [Status("test", status_choice)] if status_choice else []
        got = verdict(runs, statuses, required, elapsed, ci_wait=600.0)
        assert got.state == oracle(runs, statuses, required, elapsed, 600.0, 30.0), (
            run_choice, status_choice, required, elapsed, got)
        n += 1
    assert n == len(RUN_CHOICES) * len(STATUS_CHOICES) * 4 * len(times)


runs_st = st.lists(st.builds(
    lambda i, name, choice: run_(i, name, *choice),
    st.integers(1, 50), st.sampled_from(NAMES), st.sampled_from(RUN_CHOICES[1:])),
    max_size=8, unique_by=lambda r: r.id)
statuses_st = st.lists(st.builds(Status, st.sampled_from(NAMES), st.sampled_from(STATES)),
                       max_size=6)
required_st = st.one_of(st.none(), st.lists(st.sampled_from(NAMES), min_size=1, max_size=3))


@settings(max_examples=400, deadline=None)
@given(runs_st, statuses_st, required_st, st.floats(0, 4000), st.floats(1, 3000),
       st.floats(0, 100), st.randoms())
def test_the_verdict_agrees_with_the_oracle(runs, statuses, required, elapsed, ci_wait,
                                            ci_settle, rnd):
    got = verdict(runs, statuses, required, elapsed, ci_wait, ci_settle)
    assert got.state == oracle(runs, statuses, required, elapsed, ci_wait, ci_settle)
    shuffled = list(runs)
    rnd.shuffle(shuffled)  # the latest run is the highest id, whatever the order
    assert verdict(shuffled, statuses, required, elapsed, ci_wait, ci_settle) == got
    if got.state == "red":
        assert got.failures and got.feedback()
        if got.timed_out:  # (a run may also conclude timed_out by itself: a real failure)
            assert all(f.conclusion == "timed_out" for f in got.failures)
    else:
        assert not got.failures
    if required:
        assert set(got.counted) == set(required)
        extra = [run_(99, "unrelated", "completed", "failure")]  # not required: no matter
        assert verdict(runs + extra, statuses, required, elapsed, ci_wait, ci_settle) == got


def test_no_checks_at_all_is_green_after_settling():
    assert verdict([], [], None, 10.0, 600.0).state == "pending"
    assert verdict([], [], None, 30.0, 600.0).state == "green"
    passing = [run_(1, "test", "completed", "success")]
    assert verdict(passing, [], None, 10.0, 600.0).state == "pending"  # more may come
    assert verdict(passing, [], ["test"], 10.0, 600.0).state == "green"  # required: at once


def test_a_required_check_never_reported_times_out():
    v = verdict([], [], ["ci/build"], 700.0, 600.0)
    assert v.state == "red" and v.timed_out
    assert v.failures[0].kind == "missing" and v.failures[0].conclusion == "timed_out"
    assert verdict([], [], ["ci/build"], 599.0, 600.0).state == "pending"


def test_a_rerun_replaces_the_failed_run():
    runs = [run_(1, "test", "completed", "failure"), run_(2, "test", "completed", "success")]
    assert verdict(runs, [], None, 60.0, 600.0).state == "green"
    statuses = [Status("ci", "failure"), Status("ci", "success")]  # the latest is the last
    assert verdict([], statuses, None, 60.0, 600.0).state == "green"


def test_what_failed_is_said_and_bounded():
    note = Annotation("app.py", 3, 4, "failure", "x" * (MAX_TEXT * 2), "boom")
    runs = [run_(i, f"check-{i}", "completed", "failure", title="T", summary="s" * 10000,
                 text="t", details_url="http://ci/1", annotations=(note,) * 50)
            for i in range(1, 40)]
    statuses = [Status("ci/deploy", "error", "it broke", "http://ci/deploy")]
    v = verdict(runs, statuses, None, 60.0, 600.0)
    assert v.state == "red" and len(v.failures) == MAX_FAILURES
    assert v.omitted == 40 - MAX_FAILURES
    first = v.failures[0]
    assert len(first.summary or "") <= MAX_TEXT and len(first.annotations) == MAX_ANNOTATIONS
    assert all(len(a.message) <= MAX_TEXT for a in first.annotations)
    text = v.feedback()
    assert len(text) <= MAX_FEEDBACK
    assert text.startswith("check run check-1: failure\ntitle: T\nsummary: sss")
    assert "app.py:3-4: failure: boom: xxx" in text
    v = verdict([], statuses, None, 60.0, 600.0)
    assert v.feedback() == ("status ci/deploy: error\nsummary: it broke\n"
                            "url: http://ci/deploy")


# ---------------------------------------------------------------------------- the reader

R = "/repos/alice/shop"
SEED = {"users": [{"login": x, "token": f"t-{x}"} for x in ("alice", "bob")],
        "repos": [{"full_name": "alice/shop", "push": ["bob"]}]}


@pytest.fixture
def served():
    with DevHubThread(seed=SEED) as hub:
        yield hub


def _setup(hub: Any) -> dict[str, Any]:
    """A draft pull request whose head has a failing check run with an annotation and a
    pending status; main requires "test"."""
    from .test_devhub_checks import call, commit_on
    from .test_devhub_conformance import app_token

    h = hub  # a DevHubThread: the helpers need only its client()
    commit_on(h, "feature", "one")
    pr = call(h, "POST", f"{R}/pulls", expect=201,
              json={"title": "t", "head": "feature", "base": "main", "draft": True})
    call(h, "PUT", f"{R}/branches/main/protection", expect=200,
         json={"required_status_checks": {"strict": False, "contexts": ["test"]},
               "enforce_admins": False, "required_pull_request_reviews": None,
               "restrictions": None})
    ci = app_token(h, "ci", {"checks": "write"})
    call(h, "POST", f"{R}/check-runs", token=ci, expect=201, json={
        "name": "test", "head_sha": pr["head"]["sha"], "conclusion": "failure",
        "output": {"title": "Tests", "summary": "1 failed", "annotations": [
            {"path": "file.txt", "start_line": 1, "end_line": 1,
             "annotation_level": "failure", "message": "expected two"}]}})
    call(h, "POST", f"{R}/statuses/{pr['head']['sha']}", expect=201,
         json={"state": "pending", "context": "docs"})
    return pr


async def test_the_reader_against_devhub(served):
    pr = _setup(served)
    sha = pr["head"]["sha"]
    async with GitHubClient(served.url, "t-bob") as gh:
        reader = ChecksReader(gh)
        assert await reader.required_checks("alice/shop", "main") == ["test"]
        assert await reader.required_checks("alice/shop", "feature") is None
        runs, statuses = await reader.head("alice/shop", sha)
        assert [(r.name, r.conclusion, r.annotations_count) for r in runs] == [
            ("test", "failure", 1)]
        assert statuses == [Status("docs", "pending")]
        v = verdict(runs, statuses, ["test"], 5.0, 600.0)
        assert v.state == "red"
        runs = await reader.with_annotations("alice/shop", runs, v)
        text = verdict(runs, statuses, ["test"], 5.0, 600.0).feedback()
        assert "file.txt:1: failure: expected two" in text
        before = gh.not_modified
        await reader.head("alice/shop", sha)  # nothing changed: two free 304s
        assert gh.not_modified == before + 2
        assert await reader.mark_ready(pr["node_id"]) is True
    async with GitHubClient(served.url, "t-bob") as gh:
        doc = (await gh.request("GET", f"{R}/pulls/{pr['number']}")).data
        assert doc["draft"] is False


async def test_mark_ready_raises_graphqls_error(served):
    async with GitHubClient(served.url, "t-bob") as gh:
        with pytest.raises(Exception) as caught:
            await ChecksReader(gh).mark_ready("UHVsbFJlcXVlc3Q6OTk5")
        assert "Could not resolve" in str(caught.value)


def test_parsing_tolerates_githubs_nulls():
    from bzzz.github.checks import parse_run, parse_status, required_from_branch

    run = parse_run({"id": 5, "name": "x", "status": "completed", "conclusion": "success",
                     "output": None, "html_url": "http://h"})
    assert run.details_url == "http://h" and run.annotations_count == 0
    assert parse_status({"state": "error"}).context == "default"
    assert required_from_branch({"protected": False}) is None
    assert required_from_branch({"protected": True, "protection": {
        "required_status_checks": {"enforcement_level": "everyone", "contexts": ["a"],
                                   "checks": [{"context": "b", "app_id": 1}]}}}) == ["a", "b"]
