"""claim_mode = "assign": the weaker lock for issues-only tokens (one login per agent)."""

import pytest
import trio

from bzzz.claim.assignlock import (LeaseRecord, current_assignments, lease_body, live,
                                   parse_lease, winner)
from bzzz.github.client import GitHubClient
from bzzz.claim.lease import Claim
from bzzz.claim.service import ClaimService, ClaimSettings
from bzzz.decisions import MemoryDecisionLog
from bzzz.devhub import DevHubThread
from bzzz.testing.wait import wait_until, wait_until_async

BOTS = [f"bot{i}" for i in range(4)]
SEED = {"users": [{"login": "owner", "token": "t-owner"},
                  *({"login": b, "token": f"t-{b}"} for b in BOTS)],
        "repos": [{"full_name": "owner/tasks", "push": BOTS}]}


def ev(i, login, at, kind="assigned"):
    return {"id": i, "event": kind, "assignee": {"login": login},
            "created_at": f"2026-11-23T10:00:{at:02d}Z"}


def test_the_earliest_current_assignment_wins():
    events = [ev(1, "a", 1), ev(2, "b", 1), ev(3, "a", 2, "unassigned"), ev(4, "a", 3),
              ev(5, "c", 0)]
    # a was reassigned (its current assignment is event 4); c is no longer assigned
    got = current_assignments(["a", "b"], events)
    assert set(got) == {"a", "b"} and got["a"][1] == 4
    assert winner(got) == "b"
    # same second: the event id decides
    assert winner(current_assignments(["x", "y"], [ev(9, "y", 5), ev(8, "x", 5)])) == "x"
    assert winner({}) is None
    # hostile events are ignored, never a crash
    assert current_assignments(["a"], [{"event": "assigned"}, {"id": "1"}, ev(7, "a", 1)]) \
        == {"a": current_assignments(["a"], [ev(7, "a", 1)])["a"]}


def test_liveness_of_an_assignee():
    claim = Claim("o/r#1", "n", "p", "a", lease_expires=1000.0)
    held = {"a": LeaseRecord(1, claim, released=False)}
    assert live("a", 0.0, held, 1004.0, settle=2, grace=5)       # lease (with grace)
    assert not live("a", 0.0, held, 1006.0, settle=2, grace=5)   # expired
    released = {"a": LeaseRecord(1, claim, released=True)}
    assert not live("a", 0.0, released, 10.0, settle=2, grace=5)
    assert live("a", 100.0, {}, 106.0, settle=2, grace=5)         # still settling
    assert not live("a", 100.0, {}, 108.0, settle=2, grace=5)


def test_lease_records_round_trip_and_garbage_is_ignored():
    claim = Claim("o/r#1", "n1", "12D3KooWx", "a", 1234.0, 3)
    body = lease_body(claim, "n1:3")
    rec = parse_lease({"id": 7, "body": body})
    assert rec == LeaseRecord(7, claim, False)
    assert "<!-- bzzz:claim:n1:3 -->" in body and "Claimed by **n1**" in body
    assert parse_lease({"id": 7, "body": lease_body(claim, "n1:3", released=True)}).released
    for bad in ({"id": 1, "body": "<!-- bzzz-lease\nnonsense\n-->"}, {"id": "x", "body": body},
                {"id": 1, "body": None}, {"id": 1}):
        assert parse_lease(bad) is None


@pytest.fixture
def hub():  # its owner client: tests/conftest.py ``owner``
    with DevHubThread(seed=SEED) as the_hub:
        yield the_hub




def _service(gh, login, tmp_path, log, **kw):
    settings = ClaimSettings(["owner/tasks"], f"n-{login}", f"12D3KooW{login}", login,
                             poll_interval=0.2, workroot=tmp_path / login, claim_mode="assign",
                             settle=0.5, **kw)
    return ClaimService(gh, settings, log, capabilities=lambda: ["shell"])


async def test_four_agents_with_their_own_logins_run_each_task_once(tmp_path, hub, owner):
    runs = tmp_path / "runs"
    numbers = [(await owner.post("/repos/owner/tasks/issues", json={
        "title": f"t{i}", "body": f"```bzzz\necho {i} >> {runs}\n```",
        "labels": ["bzzz"]})).json()["number"] for i in range(12)]
    logs = {b: MemoryDecisionLog() for b in BOTS}
    async with trio.open_nursery() as nursery:
        clients = []
        for b in BOTS:
            gh = GitHubClient(hub.url, f"t-{b}")
            clients.append(gh)
            await nursery.start(_service(gh, b, tmp_path, logs[b], max_tasks=2).run)

        async def done():
            issues = (await owner.get("/repos/owner/tasks/issues", params={
                "state": "all", "labels": "bzzz:done", "per_page": 100})).json()
            return len(issues) == len(numbers)

        await wait_until_async(done, 60, "every task done", interval=0.1)
        nursery.cancel_scope.cancel()
    for gh in clients:
        await gh.aclose()
    assert sorted(runs.read_text().split(), key=int) == [str(i) for i in range(12)]
    for n in numbers:
        comments = (await owner.get(f"/repos/owner/tasks/issues/{n}/comments")).json()
        claims = [c for c in comments if "<!-- bzzz:claim:" in c["body"]]
        results = [c for c in comments if "<!-- bzzz:result:" in c["body"]]
        assert len(claims) == 1 and len(results) == 1
        assert "state: released" in claims[0]["body"]
        issue = (await owner.get(f"/repos/owner/tasks/issues/{n}")).json()
        # the winner stays assigned (the visible marker), the losers took themselves off
        assert [a["login"] for a in issue["assignees"]] == [claims[0]["user"]["login"]]
    lost = sum(1 for b in BOTS for e in logs[b].entries if e["type"] == "contention_lost")
    assert lost > 0  # they did compete


async def test_a_dead_holder_is_unassigned_and_taken_over_after_its_lease(tmp_path, hub, owner):
    marker = tmp_path / "ran"
    n = (await owner.post("/repos/owner/tasks/issues", json={
        "title": "t", "body": f"```bzzz\necho x >> {marker}; sleep 300\n```",
        "labels": ["bzzz"]})).json()["number"]
    log_a, log_b = MemoryDecisionLog(), MemoryDecisionLog()
    async with GitHubClient(hub.url, "t-bot0") as gh_a, GitHubClient(hub.url, "t-bot1") as gh_b:
        async with trio.open_nursery() as nursery:
            a = _service(gh_a, "bot0", tmp_path, log_a, lease=2.0, grace=0.5)
            await nursery.start(a.run)
            await wait_until(marker.exists, 15, "a runs the task", interval=0.05)

            async def crash(*args, **kwargs):
                return False
            a.locks["owner/tasks"].release = crash
            nursery.cancel_scope.cancel()
        await owner.patch(f"/repos/owner/tasks/issues/{n}",
                          json={"body": f"```bzzz\necho x >> {marker}\n```"})
        async with trio.open_nursery() as nursery:
            b = _service(gh_b, "bot1", tmp_path, log_b, lease=2.0, grace=0.5)
            await nursery.start(b.run)
            await wait_until(lambda: any(e["type"] == "reported" for e in log_b.entries)
                             and not b.running, 30, "b takes over and reports",
                             interval=0.05)
            nursery.cancel_scope.cancel()
    assert "taken_over" in [e["type"] for e in log_b.entries]
    issue = (await owner.get(f"/repos/owner/tasks/issues/{n}")).json()
    assert [a["login"] for a in issue["assignees"]] == ["bot1"]
    assert "bzzz:done" in {l["name"] for l in issue["labels"]}


async def test_a_forged_lease_comment_from_another_login_holds_nothing(tmp_path, hub, owner):
    n = (await owner.post("/repos/owner/tasks/issues", json={
        "title": "t", "body": "```bzzz\necho hi\n```", "labels": ["bzzz"],
        "assignees": ["bot2"]})).json()["number"]
    # bot2 is assigned (long ago, as far as anyone can tell) and the owner posts a
    # lease record in bot2's name that would hold the task for a day
    forged = Claim(f"owner/tasks#{n}", "evil", "p", "bot2", 4_000_000_000.0)
    await owner.post(f"/repos/owner/tasks/issues/{n}/comments",
                     json={"body": lease_body(forged, "evil:1")})
    async with GitHubClient(hub.url, "t-bot0") as gh:
        from bzzz.claim.assignlock import AssignLock
        lock = AssignLock(gh, "owner/tasks", "n0", "p0", "bot0", settle=0.2,
                          clock=lambda: 4_000_000_000.0 - 10)
        got = await lock.acquire(n)
    assert got.__class__.__name__ == "Held" and got.taken_over, got
