"""devhub conformance: GitHub's behaviour (shared/FACTS.md) through PyGithub and raw httpx.

PyGithub needs a served devhub (``hub``); tests that only talk REST use ``inproc``, devhub
in process with no socket (bzzz/testing/inprocess.py)."""

import json
import subprocess
import sys
import time

import httpx
import pytest
from github import Auth, Github, GithubException

from bzzz.devhub import DevHubThread
from bzzz.testing.inprocess import InProcessDevHub

PUSHERS = [f"dev{i}" for i in range(12)]
SEED = {
    "users": [{"login": "alice", "token": "t-alice"}, {"login": "bob", "token": "t-bob"},
              {"login": "carol", "token": "t-carol"}, {"login": "mallory", "token": "t-mal"}]
    + [{"login": p, "token": f"t-{p}"} for p in PUSHERS],
    "repos": [{"full_name": "alice/widgets", "push": ["bob", *PUSHERS], "read": ["carol"]},
              {"full_name": "alice/secret", "private": True, "push": ["bob"]}],
}


@pytest.fixture(scope="module")
def hub():
    with DevHubThread(seed=SEED) as d:
        yield d


@pytest.fixture(scope="module")
def inproc():
    with InProcessDevHub(seed=SEED) as d:
        yield d


def gh(hub, token="t-alice") -> Github:
    return Github(base_url=hub.url, auth=Auth.Token(token), retry=None,
                  seconds_between_requests=0, seconds_between_writes=0)


def raw(hub, token="t-alice") -> httpx.Client:
    """A client of either devhub (served or in process)."""
    return hub.client(headers={"Authorization": f"token {token}"})


def new_issue(hub, title="task", **kw):
    return gh(hub).get_repo("alice/widgets").create_issue(title=title, **kw)


def test_user_and_repo(hub):
    g = gh(hub)
    assert g.get_user().login == "alice"
    repo = g.get_repo("alice/widgets")
    assert repo.full_name == "alice/widgets" and repo.permissions.push
    assert gh(hub, "t-carol").get_repo("alice/widgets").permissions.push is False
    with pytest.raises(GithubException) as err:
        gh(hub, "t-carol").get_repo("alice/secret")
    assert err.value.status == 404  # private repos hide behind 404


def test_bad_token_is_401_with_githubs_body(inproc):
    with inproc.client() as c:
        r = c.get("/user", headers={"Authorization": "token nope"})
        assert r.status_code == 401 and r.json()["message"] == "Bad credentials"
        r = c.get("/user", headers={"Authorization": "Bearer t-alice"})
        assert r.status_code == 200 and r.json()["login"] == "alice"


def test_create_issue_labels_and_assignees_only_for_pushers(hub):
    issue = new_issue(hub, body="hi", labels=["bzzz", "priority:high"], assignees=["bob"])
    assert [x.name for x in issue.labels] == ["bzzz", "priority:high"]
    assert [a.login for a in issue.assignees] == ["bob"]
    outsider = gh(hub, "t-carol").get_repo("alice/widgets").create_issue(
        title="from carol", labels=["bzzz"], assignees=["bob"])
    assert outsider.labels == [] and outsider.assignees == []  # silently dropped


def test_assignment_is_additive_silent_and_capped(hub):
    issue = new_issue(hub)
    issue.add_to_assignees("alice")
    issue.add_to_assignees("bob")
    assert {a.login for a in issue.assignees} == {"alice", "bob"}  # additive, never replaces
    with raw(hub) as c:
        r = c.post(f"/repos/alice/widgets/issues/{issue.number}/assignees",
                   json={"assignees": ["carol", "nobody-at-all"]})
    assert r.status_code == 201  # the whole issue, silently ignoring who cannot be assigned
    assert {a["login"] for a in r.json()["assignees"]} == {"alice", "bob"}
    issue.add_to_assignees(*PUSHERS)
    issue = gh(hub).get_repo("alice/widgets").get_issue(issue.number)
    assert len(issue.assignees) == 10  # silently capped at 10
    issue.edit(assignees=["bob"])  # PATCH replaces the set: last writer wins
    assert [a.login for a in issue.assignees] == ["bob"]
    with raw(hub) as c:
        r = c.request("DELETE", f"/repos/alice/widgets/issues/{issue.number}/assignees",
                      json={"assignees": ["bob", "carol"]})
    assert r.status_code == 200 and r.json()["assignees"] == []


def test_assignee_check(hub):
    repo = gh(hub).get_repo("alice/widgets")
    assert repo.has_in_assignees("bob") is True
    assert repo.has_in_assignees("carol") is False


def test_labels_comments_and_events(hub):
    issue = new_issue(hub)
    issue.add_to_labels("bzzz")
    issue.set_labels("bzzz:claimed", "priority:low")
    issue.remove_from_labels("priority:low")
    assert [x.name for x in issue.get_labels()] == ["bzzz:claimed"]
    comment = issue.create_comment("claimed by n1")
    comment.edit("claimed by n1 (peer 12D3)")
    assert [c.body for c in issue.get_comments()] == ["claimed by n1 (peer 12D3)"]
    issue.add_to_assignees("bob")
    issue.remove_from_assignees("bob")
    issue.edit(state="closed")
    issue.edit(state="open")
    events = list(issue.get_events())
    kinds = [e.event for e in events]
    assert kinds == ["labeled", "unlabeled", "labeled", "labeled", "unlabeled", "assigned",
                     "unassigned", "closed", "reopened"]
    ids = [e.id for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(e.created_at is not None and e.actor.login == "alice" for e in events)
    assigned = next(e for e in events if e.event == "assigned")
    assert assigned.assignee.login == "bob"


def test_issue_listing_filters_sorting_and_pagination(hub):
    g = gh(hub, "t-bob")
    repo = g.get_repo("alice/widgets")
    tag = f"list-{time.monotonic_ns()}"
    made = [repo.create_issue(title=f"{tag}-{i}", labels=[tag] + (["odd"] if i % 2 else []))
            for i in range(7)]
    made[0].add_to_assignees("bob")
    made[1].edit(state="closed")
    open_tagged = list(repo.get_issues(labels=[tag]))
    assert [i.number for i in open_tagged] == sorted((m.number for m in made if m.number !=
                                                      made[1].number), reverse=True)
    assert len(list(repo.get_issues(labels=[tag], state="all"))) == 7
    assert [i.number for i in repo.get_issues(labels=[tag], state="closed")] == [made[1].number]
    assert {i.number for i in repo.get_issues(labels=[tag, "odd"])} == \
        {made[3].number, made[5].number}
    assert [i.number for i in repo.get_issues(labels=[tag], assignee="bob")] == [made[0].number]
    assert made[0].number not in {i.number for i in repo.get_issues(labels=[tag],
                                                                     assignee="none")}
    assert [i.number for i in repo.get_issues(labels=[tag], assignee="*")] == [made[0].number]
    asc = [i.number for i in repo.get_issues(labels=[tag], direction="asc")]
    assert asc == sorted(asc)
    with raw(hub) as c:
        r = c.get("/repos/alice/widgets/issues", params={"labels": tag, "per_page": 2})
        assert len(r.json()) == 2 and 'rel="next"' in r.headers["link"]
        r3 = c.get("/repos/alice/widgets/issues", params={"labels": tag, "per_page": 2, "page": 3})
        assert len(r3.json()) == 2 and 'rel="prev"' in r3.headers["link"]
        everything = c.get("/repos/alice/widgets/issues",
                           params={"labels": tag, "creator": "bob", "state": "all"}).json()
        assert len(everything) == 7
    g.per_page = 2
    assert len(list(g.get_repo("alice/widgets").get_issues(labels=[tag]))) == 6  # follows Link


def test_conditional_get_is_free_and_etag_changes(hub):
    issue = new_issue(hub)
    path = f"/repos/alice/widgets/issues/{issue.number}"
    with raw(hub, "t-dev0") as c:
        first = c.get(path)
        etag = first.headers["etag"]
        assert etag.startswith('W/"')
        before = int(first.headers["x-ratelimit-remaining"])
        for _ in range(5):
            r = c.get(path, headers={"If-None-Match": etag})
            assert r.status_code == 304 and r.content == b""
        after = int(c.get("/rate_limit").json()["rate"]["remaining"])
        assert after == before  # 304s cost nothing; /rate_limit itself is free
        issue.edit(title="changed")
        changed = c.get(path, headers={"If-None-Match": etag})
        assert changed.status_code == 200 and changed.headers["etag"] != etag


def test_rate_limit_exhaustion_and_secondary_limit(inproc):
    with raw(inproc, "t-mal") as c:
        inproc.app.limits.exhaust("token:t-mal", True, time.time())
        r = c.get("/repos/alice/widgets")
        assert r.status_code == 403 and r.headers["x-ratelimit-remaining"] == "0"
        assert "rate limit exceeded" in r.json()["message"]
    with raw(inproc, "t-dev1") as c:
        c.post("/_devhub/limits", json={"secondary_burst": 2, "token": "t-dev1"})
        for _ in range(2):
            r = c.post("/repos/alice/widgets/issues", json={"title": "x"})
            assert r.status_code == 403 and int(r.headers["retry-after"]) > 0
            assert "secondary rate limit" in r.json()["message"]
        assert c.post("/repos/alice/widgets/issues", json={"title": "x"}).status_code == 201


def test_secondary_limit_per_minute_and_per_endpoint_bursts(inproc):
    with raw(inproc, "t-dev3") as c:
        c.post("/_devhub/limits", json={"secondary_per_minute": 3})
        try:
            codes = [c.post("/repos/alice/widgets/issues", json={"title": f"s{i}"}).status_code
                     for i in range(4)]
            assert codes == [201, 201, 201, 403]
            assert c.get("/repos/alice/widgets").status_code == 200  # reads are not limited
        finally:
            c.post("/_devhub/limits", json={"secondary_per_minute": None})
        c.post("/_devhub/faults", json={"pattern": r"^POST /repos/alice/widgets/issues/\d+/comments$",
                                        "secondary_burst": 1})
        number = c.post("/repos/alice/widgets/issues", json={"title": "burst"}).json()["number"]
        first = c.post(f"/repos/alice/widgets/issues/{number}/comments", json={"body": "a"})
        assert first.status_code == 403 and first.headers["retry-after"] == "60"
        again = c.post(f"/repos/alice/widgets/issues/{number}/comments", json={"body": "a"})
        assert again.status_code == 201
        c.delete("/_devhub/faults")


def test_fault_injection_and_request_stats(inproc):
    with raw(inproc, "t-dev2") as c:
        c.delete("/_devhub/faults")
        c.post("/_devhub/faults", json={"pattern": r"^GET /repos/alice/widgets/labels$",
                                        "error_rate": 1.0, "error_status": 503,
                                        "latency_ms": [20, 30]})
        start = time.monotonic()
        r = c.get("/repos/alice/widgets/labels")
        assert r.status_code == 503 and time.monotonic() - start >= 0.02
        assert c.get("/repos/alice/widgets").status_code == 200
        c.delete("/_devhub/faults")
        stats = c.get("/_devhub/stats").json()["requests"]["dev2"]
        assert stats["GET /repos/{owner}/{repo}/labels"] == 1


def test_validation_errors(inproc):
    with raw(inproc) as c:
        n = c.post("/repos/alice/widgets/issues", json={"title": "to comment on"}).json()["number"]
        assert c.post("/repos/alice/widgets/issues", json={"body": "no title"}).status_code == 422
        assert c.post("/repos/alice/widgets/issues", content=b"{nope").status_code == 400
        assert c.get("/repos/alice/widgets/issues/99999").status_code == 404
        assert c.post(f"/repos/alice/widgets/issues/{n}/comments", json={}).status_code == 422
        assert c.get("/repos/alice/nothing").status_code == 404
    with raw(inproc, "t-carol") as c:
        r = c.post(f"/repos/alice/widgets/issues/{n}/labels", json={"labels": ["x"]})
        assert r.status_code == 403


def test_state_survives_restart(tmp_path):
    state = tmp_path / "devhub.json"
    with DevHubThread(seed=SEED, state_file=str(state)) as d:
        issue = gh(d).get_repo("alice/widgets").create_issue(title="persist me", labels=["bzzz"])
        issue.create_comment("hello")
        issue.add_to_assignees("bob")
    with DevHubThread(state_file=str(state)) as d:
        again = gh(d).get_repo("alice/widgets").get_issue(issue.number)
        assert again.title == "persist me" and [x.name for x in again.labels] == ["bzzz"]
        assert [c.body for c in again.get_comments()] == ["hello"]
        assert [a.login for a in again.assignees] == ["bob"]
        created = gh(d).get_repo("alice/widgets").create_issue(title="next")
        assert created.number == issue.number + 1 and created.id > issue.id


def test_cli_prints_url_and_rejects_bad_seed(tmp_path):
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps(SEED))
    proc = subprocess.Popen([sys.executable, "-m", "bzzz", "devhub", "--seed", str(seed)],
                            stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(url + "/user", headers={"Authorization": "token t-bob"}).json()["login"] \
            == "bob"
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    r = subprocess.run([sys.executable, "-m", "bzzz", "devhub", "--seed", str(bad)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "not valid JSON" in r.stderr
    r = subprocess.run([sys.executable, "-m", "bzzz", "devhub", "--seed",
                        str(tmp_path / "missing.json")], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "missing.json" in r.stderr


def test_the_clock_moves_forward_on_request_and_timestamps_follow(inproc):
    """Tests advance devhub's clock instead of sleeping past its whole-second timestamps."""
    with raw(inproc) as c:
        first = c.post("/repos/alice/widgets/issues", json={"title": "t1"}).json()
        assert c.post("/_devhub/clock", json={"advance": 120}).status_code == 200
        second = c.post("/repos/alice/widgets/issues", json={"title": "t2"}).json()
        assert second["created_at"] > first["created_at"]
        gap = (time.mktime(time.strptime(second["created_at"], "%Y-%m-%dT%H:%M:%SZ"))
               - time.mktime(time.strptime(first["created_at"], "%Y-%m-%dT%H:%M:%SZ")))
        assert 120 <= gap < 180
        for bad in ({"advance": -1}, {"advance": "1"}, {}):
            assert c.post("/_devhub/clock", json=bad).status_code == 422, bad
    inproc.advance_clock(1)  # the same from the test's own thread
    with raw(inproc) as c:
        third = c.post("/repos/alice/widgets/issues", json={"title": "t3"}).json()
    assert third["created_at"] > second["created_at"]
