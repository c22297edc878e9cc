"""devhub's commit statuses, check runs and suites, their webhooks and GitHub's permission
rules, branch protection's required checks, and the GraphQL mutation that marks a pull
request ready for review. devhub runs in process (bzzz/testing/inprocess.py)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bzzz.devhub.checks import combined_state, required_states, suite_progress
from bzzz.devhub.protection import approvals_needed
from bzzz.testing.inprocess import InProcessDevHub

from .test_devhub_conformance import app_token

R = "/repos/alice/shop"
SEED = {"users": [{"login": x, "token": f"t-{x}"} for x in ("alice", "bob", "carol")],
        "repos": [{"full_name": "alice/shop", "push": ["bob"], "read": ["carol"]}]}
ALICE = {"Authorization": "token t-alice"}


def call(hub: InProcessDevHub, method: str, path: str, token: str = "t-alice",
         expect: int | None = None, **kw: Any) -> Any:
    with hub.client(headers={"Authorization": f"token {token}"}) as c:
        r = c.request(method, path, **kw)
    if expect is not None:
        assert r.status_code == expect, f"{method} {path}: {r.status_code} {r.text}"
    return r.json() if r.content else None


def commit_on(hub: InProcessDevHub, branch: str, text: str) -> str:
    """A new commit changing ``file.txt`` on ``branch`` (created from main when new)."""
    tip = call(hub, "GET", f"{R}/branches/main", expect=200)["commit"]["sha"]
    blob = call(hub, "POST", f"{R}/git/blobs", expect=201, json={
        "content": base64.b64encode(text.encode()).decode(), "encoding": "base64"})
    tree = call(hub, "POST", f"{R}/git/trees", expect=201, json={"tree": [
        {"path": "file.txt", "mode": "100644", "type": "blob", "sha": blob["sha"]}]})
    refs = {x["ref"]: x["object"]["sha"] for x in call(hub, "GET", f"{R}/git/refs", expect=200)}
    parent = refs.get(f"refs/heads/{branch}", tip)
    sha = call(hub, "POST", f"{R}/git/commits", expect=201, json={
        "message": text, "tree": tree["sha"], "parents": [parent]})["sha"]
    if f"refs/heads/{branch}" in refs:
        call(hub, "PATCH", f"{R}/git/refs/heads/{branch}", expect=200, json={"sha": sha})
    else:
        call(hub, "POST", f"{R}/git/refs", expect=201,
             json={"ref": f"refs/heads/{branch}", "sha": sha})
    return str(sha)


@pytest.fixture
def hub():
    with InProcessDevHub(seed=SEED) as h:
        call(h, "POST", f"{R}/hooks", expect=201, json={
            "events": ["status", "check_run", "check_suite", "pull_request"],
            "config": {"url": "http://127.0.0.1:9/hook"}})
        yield h


def deliveries(hub: InProcessDevHub, event: str) -> list[dict[str, Any]]:
    return [json.loads(d.body) for d in hub.app.deliveries.deliveries if d.event == event]


def test_statuses_combined_and_who_may_post(hub):
    sha = commit_on(hub, "feature", "one")
    call(hub, "POST", f"{R}/statuses/{sha}", token="t-carol", expect=403,  # reader
         json={"state": "success"})
    call(hub, "POST", f"{R}/statuses/{sha}", expect=422, json={"state": "green"})
    call(hub, "POST", f"{R}/statuses/{'0' * 40}", expect=422, json={"state": "success"})
    combined = call(hub, "GET", f"{R}/commits/feature/status", expect=200)
    assert combined["state"] == "pending" and combined["total_count"] == 0  # none yet
    s = call(hub, "POST", f"{R}/statuses/{sha}", token="t-bob", expect=201, json={
        "state": "pending", "context": "ci/test", "description": "running",
        "target_url": "http://ci.test/1"})
    assert s["creator"]["login"] == "bob" and s["context"] == "ci/test"
    call(hub, "POST", f"{R}/statuses/{sha}", expect=201, json={"state": "success",
                                                               "context": "ci/test"})
    call(hub, "POST", f"{R}/statuses/{sha}", expect=201, json={"state": "success"})
    listed = call(hub, "GET", f"{R}/commits/{sha}/statuses", expect=200)
    assert [x["state"] for x in listed] == ["success", "success", "pending"]  # newest first
    combined = call(hub, "GET", f"{R}/commits/feature/status", expect=200)
    assert combined["state"] == "success" and combined["sha"] == sha
    assert sorted(x["context"] for x in combined["statuses"]) == ["ci/test", "default"]
    call(hub, "POST", f"{R}/statuses/{sha}", expect=201, json={"state": "error",
                                                               "context": "ci/lint"})
    assert call(hub, "GET", f"{R}/commits/{sha}/status")["state"] == "failure"
    hooks = deliveries(hub, "status")
    assert [(h["context"], h["state"]) for h in hooks][:2] == [("ci/test", "pending"),
                                                               ("ci/test", "success")]
    assert hooks[0]["branches"][0]["name"] == "feature" and hooks[0]["sha"] == sha


def test_check_runs_only_by_an_app_with_checks_write(hub):
    sha = commit_on(hub, "feature", "one")
    body = {"name": "lint", "head_sha": sha}
    refused = call(hub, "POST", f"{R}/check-runs", expect=403, json=body)  # a user's token
    assert refused["message"] == "You must authenticate via a GitHub App."
    no_checks = app_token(hub, "nochecks", {"issues": "write"})
    call(hub, "POST", f"{R}/check-runs", token=no_checks, expect=403, json=body)
    ci = app_token(hub, "ci", {"checks": "write"})
    run = call(hub, "POST", f"{R}/check-runs", token=ci, expect=201, json=body)
    assert run["status"] == "queued" and run["app"]["slug"] == "ci"
    other = app_token(hub, "other-ci", {"checks": "write"})
    call(hub, "PATCH", f"{R}/check-runs/{run['id']}", token=other, expect=403,
         json={"conclusion": "success"})
    call(hub, "PATCH", f"{R}/check-runs/{run['id']}", token=ci, expect=422,
         json={"status": "completed"})  # a completed run needs its conclusion
    call(hub, "POST", f"{R}/check-runs", token=ci, expect=422,
         json={"name": "x", "head_sha": "f" * 40})
    # anyone who can read the repository reads the checks
    assert call(hub, "GET", f"{R}/check-runs/{run['id']}", token="t-carol",
                expect=200)["name"] == "lint"


def test_check_run_output_annotations_and_suite(hub):
    sha = commit_on(hub, "feature", "one")
    ci = app_token(hub, "ci", {"checks": "write"})
    run = call(hub, "POST", f"{R}/check-runs", token=ci, expect=201, json={
        "name": "test", "head_sha": sha, "status": "in_progress",
        "output": {"title": "Tests", "summary": "running"}})
    second = call(hub, "POST", f"{R}/check-runs", token=ci, expect=201, json={
        "name": "lint", "head_sha": sha, "conclusion": "success",
        "output": {"title": "Lint", "summary": "clean"}})
    suites = call(hub, "GET", f"{R}/commits/feature/check-suites", expect=200)
    assert suites["total_count"] == 1  # one suite per app and commit, made by the first run
    suite = suites["check_suites"][0]
    assert suite["status"] == "in_progress" and suite["conclusion"] is None
    assert suite["head_branch"] == "feature" and suite["latest_check_runs_count"] == 2
    note = {"path": "file.txt", "start_line": 1, "end_line": 1,
            "annotation_level": "failure", "message": "expected two"}
    call(hub, "PATCH", f"{R}/check-runs/{run['id']}", token=ci, expect=200, json={
        "output": {"title": "Tests", "summary": "1 failed", "annotations": [note]}})
    done = call(hub, "PATCH", f"{R}/check-runs/{run['id']}", token=ci, expect=200, json={
        "conclusion": "failure", "output": {"title": "Tests", "summary": "1 failed",
                                            "text": "file.txt:1", "annotations": [note]}})
    assert done["status"] == "completed" and done["completed_at"] is not None
    assert done["output"]["annotations_count"] == 2  # appended by each update
    assert done["output"]["text"] == "file.txt:1" and done["check_suite"]["id"] == suite["id"]
    notes = call(hub, "GET", f"{R}/check-runs/{run['id']}/annotations", expect=200)
    assert [a["message"] for a in notes] == ["expected two"] * 2
    suite = call(hub, "GET", f"{R}/check-suites/{suite['id']}", expect=200)
    assert (suite["status"], suite["conclusion"]) == ("completed", "failure")
    runs = call(hub, "GET", f"{R}/commits/{sha}/check-runs?check_name=lint", expect=200)
    assert [x["id"] for x in runs["check_runs"]] == [second["id"]]
    assert [(h["action"], h["check_run"]["name"]) for h in deliveries(hub, "check_run")] == [
        ("created", "test"), ("created", "lint"), ("completed", "test")]
    assert [h["check_suite"]["conclusion"] for h in deliveries(hub, "check_suite")] == [
        "failure"]


def test_latest_filter_keeps_the_newest_run_of_a_name(hub):
    sha = commit_on(hub, "feature", "one")
    ci = app_token(hub, "ci", {"checks": "write"})
    for conclusion in ("failure", "success"):
        call(hub, "POST", f"{R}/check-runs", token=ci, expect=201,
             json={"name": "test", "head_sha": sha, "conclusion": conclusion})
    latest = call(hub, "GET", f"{R}/commits/{sha}/check-runs", expect=200)
    assert [x["conclusion"] for x in latest["check_runs"]] == ["success"]
    every = call(hub, "GET", f"{R}/commits/{sha}/check-runs?filter=all", expect=200)
    assert [x["conclusion"] for x in every["check_runs"]] == ["success", "failure"]


def test_required_checks_hold_the_merge_until_they_pass(hub):
    commit_on(hub, "feature", "one")
    call(hub, "PUT", f"{R}/branches/main/protection", expect=200, json={
        "required_status_checks": {"strict": False, "checks": [{"context": "test"},
                                                               {"context": "ci/lint"}]},
        "enforce_admins": True, "required_pull_request_reviews": None, "restrictions": None})
    got = call(hub, "GET", f"{R}/branches/main/protection", expect=200)
    assert got["required_status_checks"]["contexts"] == ["test", "ci/lint"]
    assert got["required_status_checks"]["checks"] == [{"context": "test", "app_id": None},
                                                       {"context": "ci/lint", "app_id": None}]
    pr = call(hub, "POST", f"{R}/pulls", expect=201,
              json={"title": "t", "head": "feature", "base": "main"})
    sha = pr["head"]["sha"]
    merge = f"{R}/pulls/{pr['number']}/merge"
    assert call(hub, "PUT", merge, expect=405)["message"] == \
        'Required status check "test" is expected.'
    ci = app_token(hub, "ci", {"checks": "write"})
    run = call(hub, "POST", f"{R}/check-runs", token=ci, expect=201,
               json={"name": "test", "head_sha": sha, "status": "in_progress"})
    assert "in progress" in call(hub, "PUT", merge, expect=405)["message"]
    call(hub, "PATCH", f"{R}/check-runs/{run['id']}", token=ci, expect=200,
         json={"conclusion": "failure"})
    assert "failing" in call(hub, "PUT", merge, expect=405)["message"]
    call(hub, "PATCH", f"{R}/check-runs/{run['id']}", token=ci, expect=200,
         json={"conclusion": "success"})
    assert '"ci/lint" is expected' in call(hub, "PUT", merge, expect=405)["message"]
    assert call(hub, "GET", f"{R}/pulls/{pr['number']}")["mergeable_state"] == "blocked"
    call(hub, "POST", f"{R}/statuses/{sha}", expect=201,
         json={"state": "success", "context": "ci/lint"})
    assert call(hub, "GET", f"{R}/pulls/{pr['number']}")["mergeable_state"] == "clean"
    assert call(hub, "PUT", merge, expect=200)["merged"] is True


MARK = ("mutation Ready($id: ID!) { markPullRequestReadyForReview(input: "
        "{pullRequestId: $id, clientMutationId: \"c1\"}) { clientMutationId "
        "pullRequest { id isDraft number state __typename } } }")


def graphql(hub: InProcessDevHub, query: str, token: str = "t-alice",
            **variables: Any) -> Any:
    return call(hub, "POST", "/graphql", token=token, expect=200,
                json={"query": query, "variables": variables})


def test_a_required_check_bound_to_an_app(hub):
    commit_on(hub, "feature", "one")
    pr = call(hub, "POST", f"{R}/pulls", expect=201,
              json={"title": "t", "head": "feature", "base": "main"})
    impostor = app_token(hub, "impostor", {"checks": "write"})
    ci = app_token(hub, "ci", {"checks": "write"})
    apps = {a["slug"]: a["id"] for a in call(hub, "GET", "/_devhub/apps", expect=200)}
    call(hub, "PUT", f"{R}/branches/main/protection", expect=200, json={
        "required_status_checks": {"strict": False,
                                   "checks": [{"context": "test", "app_id": apps["ci"]}]},
        "enforce_admins": True, "required_pull_request_reviews": None, "restrictions": None})
    branch = call(hub, "GET", f"{R}/branches/main", expect=200)
    assert branch["protection"]["required_status_checks"]["checks"] == [
        {"context": "test", "app_id": apps["ci"]}]
    merge = f"{R}/pulls/{pr['number']}/merge"
    body = {"name": "test", "head_sha": pr["head"]["sha"], "conclusion": "success"}
    call(hub, "POST", f"{R}/check-runs", token=impostor, expect=201, json=body)
    call(hub, "POST", f"{R}/statuses/{pr['head']['sha']}", expect=201,
         json={"state": "success", "context": "test"})
    assert call(hub, "PUT", merge, expect=405)["message"].endswith("is expected.")
    call(hub, "POST", f"{R}/check-runs", token=ci, expect=201, json=body)
    assert call(hub, "PUT", merge, expect=200)["merged"] is True


def test_graphql_marks_a_draft_ready_for_review(hub):
    commit_on(hub, "feature", "one")
    pr = call(hub, "POST", f"{R}/pulls", token="t-bob", expect=201,
              json={"title": "t", "head": "feature", "base": "main", "draft": True})
    assert pr["draft"] is True and pr["node_id"]
    denied = graphql(hub, MARK, token="t-carol", id=pr["node_id"])  # a reader
    assert denied["errors"][0]["type"] == "FORBIDDEN"
    done = graphql(hub, MARK, id=pr["node_id"])
    assert done == {"data": {"markPullRequestReadyForReview": {
        "clientMutationId": "c1", "pullRequest": {
            "id": pr["node_id"], "isDraft": False, "number": pr["number"], "state": "OPEN",
            "__typename": "PullRequest"}}}}
    assert call(hub, "GET", f"{R}/pulls/{pr['number']}")["draft"] is False
    assert [h["action"] for h in deliveries(hub, "pull_request")] == ["opened",
                                                                      "ready_for_review"]
    events = call(hub, "GET", f"{R}/issues/{pr['number']}/events")
    assert events[-1]["event"] == "ready_for_review"


def test_graphql_answers_only_that_mutation_with_githubs_errors(hub):
    assert graphql(hub, "{ viewer { login } }")["errors"][0]["type"] == "NOT_SUPPORTED"
    assert "errors" in graphql(hub, "mutation { closePullRequest(input: {}) { x } }")
    missing = graphql(hub, MARK, id="UHVsbFJlcXVlc3Q6OTk5")
    assert missing["errors"][0]["type"] == "NOT_FOUND"
    assert missing["data"] == {"markPullRequestReadyForReview": None}
    commit_on(hub, "feature", "one")
    pr = call(hub, "POST", f"{R}/pulls", expect=201,
              json={"title": "t", "head": "feature", "base": "main", "draft": True})
    wrong = graphql(hub, "mutation { markPullRequestReadyForReview(input: {pullRequestId: "
                         f"\"{pr['node_id']}\"}}) {{ pullRequest {{ nope }} }} }}")
    assert wrong["errors"][0]["message"] == "Field 'nope' doesn't exist on type 'PullRequest'"
    assert "errors" in graphql(hub, "mutation { markPullRequestReadyForReview(input: ")
    with hub.client() as c:  # no token
        assert c.post("/graphql", json={"query": MARK}).status_code == 401


def test_checks_survive_a_restart(tmp_path):
    state = str(tmp_path / "devhub.json")
    with InProcessDevHub(seed=SEED, state_file=state) as hub:
        sha = commit_on(hub, "feature", "one")
        call(hub, "POST", f"{R}/statuses/{sha}", expect=201, json={"state": "failure"})
        ci = app_token(hub, "ci", {"checks": "write"})
        call(hub, "POST", f"{R}/check-runs", token=ci, expect=201,
             json={"name": "test", "head_sha": sha, "conclusion": "success"})
    with InProcessDevHub(state_file=state) as hub:
        assert call(hub, "GET", f"{R}/commits/{sha}/status")["state"] == "failure"
        assert call(hub, "GET", f"{R}/commits/{sha}/check-runs")["total_count"] == 1


def test_the_cores_rules():
    def status(i: int, context: str, state: str) -> dict[str, Any]:
        return {"id": i, "sha": "s", "context": context, "state": state}

    assert combined_state([]) == "pending"
    assert combined_state([status(1, "a", "success"), status(2, "b", "pending")]) == "pending"
    assert combined_state([status(1, "a", "error"), status(2, "b", "pending")]) == "failure"
    run = {"id": 1, "name": "t", "app_id": 1, "head_sha": "s", "status": "completed",
           "conclusion": "neutral"}
    assert suite_progress([run]) == ("completed", "neutral")
    assert suite_progress([run, {**run, "id": 2, "name": "u", "conclusion": "skipped"}]) == (
        "completed", "neutral")
    assert suite_progress([{**run, "conclusion": "skipped"}]) == ("completed", "skipped")
    states = required_states([status(1, "a", "success"), status(2, "a", "error")], [run],
                             "s", ["a", "t", "z"])
    assert states == {"a": "failure", "t": "success", "z": "expected"}
    other = {**run, "id": 3, "app_id": 2, "conclusion": "failure"}
    assert required_states([], [run, other], "s", ["t"]) == {"t": "failure"}  # the newest
    assert required_states([], [run, other], "s", ["t"], {"t": 1}) == {"t": "success"}
    assert required_states([status(1, "t", "success")], [], "s", ["t"], {"t": 1}) == {
        "t": "expected"}  # bound to an app: a status of that name does not count
    rule = {"enforce_admins": False, "required_pull_request_reviews": None,
            "required_status_checks": {"contexts": ["t"]}}
    assert approvals_needed(rule, "admin", {}, set(), {}) is None  # admins bypass
    assert approvals_needed(rule, "write", {}, set(), {"t": "success"}) is None


KEYS = ["state", "context", "description", "target_url", "name", "head_sha", "status",
        "conclusion", "output", "title", "summary", "text", "annotations", "path",
        "start_line", "end_line", "annotation_level", "message", "details_url",
        "external_id", "started_at", "query", "variables", "input", "pullRequestId", "x"]
hostile = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.text(max_size=20)
    | st.sampled_from(["success", "failure", "completed", "in_progress", "failure",
                       "mutation { markPullRequestReadyForReview(input: {}) { x } }"]),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.sampled_from(KEYS), c, max_size=6),
    max_leaves=16)


@pytest.fixture(scope="module")
def fuzzed():
    with InProcessDevHub(seed=SEED) as h:
        sha = commit_on(h, "feature", "one")
        ci = app_token(h, "ci", {"checks": "write", "statuses": "write"})
        run = call(h, "POST", f"{R}/check-runs", token=ci, expect=201,
                   json={"name": "t", "head_sha": sha})
        yield h, sha, ci, run["id"]


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=hostile, which=st.integers(0, 4))
def test_hostile_bodies_are_4xx_never_500(fuzzed, body, which):
    hub, sha, ci, run_id = fuzzed
    method, path, token = [("POST", f"{R}/statuses/{sha}", "t-alice"),
                           ("POST", f"{R}/statuses/{sha}", ci),
                           ("POST", f"{R}/check-runs", ci),
                           ("PATCH", f"{R}/check-runs/{run_id}", ci),
                           ("POST", "/graphql", "t-alice")][which]
    with hub.client(headers={"Authorization": f"token {token}"}) as c:
        r = c.request(method, path, content=json.dumps(body))
    assert r.status_code < 500, (method, path, body, r.text)
    if isinstance(body, dict) and isinstance(body.get("head_sha"), str) and r.status_code == 201:
        assert r.json()["head_sha"] == body["head_sha"]
