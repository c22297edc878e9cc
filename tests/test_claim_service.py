"""Claim, run and report end to end against devhub, with several nodes competing."""

import pytest
import trio

from bzzz.github.client import GitHubClient
from bzzz.claim.service import ClaimService, ClaimSettings
from bzzz.decisions import MemoryDecisionLog
from bzzz.devhub import DevHubThread
from bzzz.testing.wait import wait_until, wait_until_async

SEED = {"users": [{"login": "owner", "token": "t-owner"}, {"login": "bot", "token": "t-bot"}],
        "repos": [{"full_name": "owner/tasks", "push": ["bot"]}]}

TASKS = [
    ("echo one", ["priority:low"]),
    ("echo two", ["priority:critical"]),
    ("echo three && exit 0", []),
    ("echo four; exit 4", []),          # fails
    ("sudo rm -rf /", []),              # the Guardian refuses
    ("nvidia-smi || echo no-gpu-here", ["needs:gpu"]),
    ("python3 -c 'print(6*7)'", ["needs:python"]),
    ("echo eight", ["priority:high"]),
    (None, []),                         # no command
]


def body(cmd):
    return "Task\n\n```bzzz\n" + cmd + "\n```\n" if cmd else "Please do something."


@pytest.fixture
def hub():  # its owner client: tests/conftest.py ``owner``
    with DevHubThread(seed=SEED) as the_hub:
        yield the_hub




async def test_every_task_is_run_once_and_reported_once(tmp_path, hub, owner):
    numbers = [(await owner.post("/repos/owner/tasks/issues", json={
        "title": f"task {i}", "body": body(cmd), "labels": ["bzzz", *labels]})
                ).json()["number"] for i, (cmd, labels) in enumerate(TASKS)]
    caps = {"n1": ["shell", "python"], "n2": ["shell"], "n3": ["shell", "gpu"]}
    logs = {n: MemoryDecisionLog() for n in caps}
    async with GitHubClient(hub.url, "t-bot") as gh, trio.open_nursery() as nursery:
        services = []
        for node, c in caps.items():
            s = ClaimService(gh, ClaimSettings(
                ["owner/tasks"], node, f"12D3KooW{node}", "bot", max_tasks=2,
                poll_interval=0.2, workroot=tmp_path / node), logs[node],
                capabilities=lambda c=c: c)
            services.append(s)
            await nursery.start(s.run)

        async def finished():
            issues = (await owner.get("/repos/owner/tasks/issues",
                                      params={"state": "all", "per_page": 100})).json()
            done = [i for i in issues if {l["name"] for l in i["labels"]} &
                    {"bzzz:done", "bzzz:failed", "bzzz:needs-input"}]
            return len(done) == len(TASKS) and not any(s.running for s in services)

        await wait_until_async(finished, 30, "every task finished and released", interval=0.1)
        nursery.cancel_scope.cancel()

    claimed_by = {}
    for n, (cmd, labels) in zip(numbers, TASKS, strict=True):
        comments = (await owner.get(f"/repos/owner/tasks/issues/{n}/comments")).json()
        claims = [c for c in comments if "bzzz:claim:" in c["body"]]
        finals = [c for c in comments if any(k in c["body"] for k in
                                             ("bzzz:result:", "bzzz:refused:",
                                              "bzzz:needs-input:"))]
        assert len(claims) == 1 and len(finals) == 1, (n, [c["body"] for c in comments])
        issue = (await owner.get(f"/repos/owner/tasks/issues/{n}")).json()
        names = {l["name"] for l in issue["labels"]}
        assert "bzzz:claimed" not in names
        claimed_by[n] = claims[0]["body"].split("**")[1]
        if cmd == "echo four; exit 4" or cmd == "sudo rm -rf /":
            assert "bzzz:failed" in names
        elif cmd is None:
            assert "bzzz:needs-input" in names
        else:
            assert "bzzz:done" in names and "succeeded" in finals[0]["body"]
        if "needs:gpu" in labels:
            assert claimed_by[n] == "n3"
        if "needs:python" in labels:
            assert claimed_by[n] == "n1"
        assert [a["login"] for a in issue["assignees"]] == ["bot"]
    refused = numbers[4]
    body_text = (await owner.get(f"/repos/owner/tasks/issues/{refused}/comments")
                 ).json()[-1]["body"]
    assert "privilege escalation" in body_text
    # every claim ref was released
    refs = (await owner.get("/repos/owner/tasks/git/matching-refs/bzzz/claims/")).json()
    assert refs == []
    # decisions: one claim or take-over per task across the mesh, contention recorded
    claims_logged = [e for lg in logs.values() for e in lg.entries if e["type"] == "claimed"]
    assert sorted(e["issue"] for e in claims_logged) == sorted(numbers)
    results = [e for lg in logs.values() for e in lg.entries
               if e["type"] in ("result", "guardian_refused", "needs_input")]
    assert len(results) == len(TASKS)


def _service(gh, node, tmp_path, log, **kw):
    settings = ClaimSettings(["owner/tasks"], node, f"12D3KooW{node}", "bot",
                             poll_interval=0.2, workroot=tmp_path / node, **kw)
    return ClaimService(gh, settings, log, capabilities=lambda: ["shell"])


async def test_closing_the_issue_stops_the_task_and_says_so(tmp_path, hub, owner):
    pidfile = tmp_path / "n1" / "pid"
    cmd = f"mkdir -p {tmp_path / 'n1'} && echo $$ > {pidfile} && sleep 300"
    n = (await owner.post("/repos/owner/tasks/issues", json={
        "title": "long", "body": body(cmd), "labels": ["bzzz"]})).json()["number"]
    log = MemoryDecisionLog()
    async with GitHubClient(hub.url, "t-bot") as gh, trio.open_nursery() as nursery:
        svc = _service(gh, "n1", tmp_path, log)
        await nursery.start(svc.run)
        await wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), 15,
                         "task runs")
        pid = int(pidfile.read_text())
        await owner.patch(f"/repos/owner/tasks/issues/{n}", json={"state": "closed"})
        start = trio.current_time()
        await wait_until(lambda: any(e["type"] == "cancelled" for e in log.entries), 10,
                         "cancellation")
        assert trio.current_time() - start < 10
        await wait_until(lambda: not svc.running, 10, "the attempt reported and released")
        nursery.cancel_scope.cancel()
    import os
    try:
        os.kill(pid, 0)
        stat = await trio.Path(f"/proc/{pid}/stat").read_text()
        assert stat.split(")")[-1].split()[0] == "Z"
    except ProcessLookupError:
        pass
    comments = (await owner.get(f"/repos/owner/tasks/issues/{n}/comments")).json()
    assert any("stopped this task" in c["body"] and "closed" in c["body"] for c in comments)
    assert (await owner.get("/repos/owner/tasks/git/matching-refs/bzzz/claims/")).json() == []


async def test_a_crashed_holder_is_taken_over_after_its_lease(tmp_path, hub, owner):
    marker = tmp_path / "ran-by"
    cmd = f"echo $BZZZ_WORKSPACE >> {marker}; sleep 300"
    n = (await owner.post("/repos/owner/tasks/issues", json={
        "title": "t", "body": body(cmd), "labels": ["bzzz"]})).json()["number"]
    log_a, log_b = MemoryDecisionLog(), MemoryDecisionLog()
    async with GitHubClient(hub.url, "t-bot") as gh:
        # node a claims and "crashes": its service is cancelled without any cleanup
        # that could release the claim (as with kill -9, the ref stays)
        async with trio.open_nursery() as nursery:
            a = _service(gh, "a", tmp_path, log_a, lease=2.0, grace=0.5)
            await nursery.start(a.run)
            await wait_until(lambda: marker.exists(), 15, "a runs the task")
            a.locks["owner/tasks"].release = _never  # a crash releases nothing
            nursery.cancel_scope.cancel()
        # the command must be re-runnable: now let it finish quickly
        await owner.patch(f"/repos/owner/tasks/issues/{n}",
                          json={"body": body(f"echo $BZZZ_WORKSPACE >> {marker}")})
        async with trio.open_nursery() as nursery:
            b = _service(gh, "b", tmp_path, log_b, lease=2.0, grace=0.5)
            await nursery.start(b.run)
            await wait_until(lambda: any(e["type"] == "result" for e in log_b.entries)
                             and not b.running, 20, "b takes over, completes and reports")
            nursery.cancel_scope.cancel()
    kinds = [e["type"] for e in log_b.entries]
    assert "contention_lost" in kinds or "taken_over" in kinds
    assert "taken_over" in kinds
    issue = (await owner.get(f"/repos/owner/tasks/issues/{n}")).json()
    assert "bzzz:done" in {l["name"] for l in issue["labels"]}
    assert len(marker.read_text().splitlines()) == 2


async def _never(*args, **kwargs):
    return False


async def test_a_stale_view_of_a_finished_task_never_runs_it_again(tmp_path, hub, owner):
    from bzzz.claim.task import parse_issue
    marker = tmp_path / "runs"
    doc = (await owner.post("/repos/owner/tasks/issues", json={
        "title": "once", "body": body(f"echo run >> {marker}"), "labels": ["bzzz"]})).json()
    stale = parse_issue("owner/tasks", doc)  # the view before anyone ran it
    log_a, log_b = MemoryDecisionLog(), MemoryDecisionLog()
    async with GitHubClient(hub.url, "t-bot") as gh, trio.open_nursery() as nursery:
        a = _service(gh, "a", tmp_path, log_a)
        await nursery.start(a.run)
        await wait_until(lambda: any(e["type"] == "result" for e in log_a.entries)
                         and not a.running, 15, "a done, reported and released")
        nursery.cancel_scope.cancel()
    async with GitHubClient(hub.url, "t-bot") as gh:
        b = _service(gh, "b", tmp_path, log_b)
        from bzzz.claim.service import Running
        b.running[stale.key] = Running(stale, 0.0)
        await b._claim_and_run(stale)  # the lock is free again: only the fresh read stops it
    assert marker.read_text().splitlines() == ["run"]
    assert [e["type"] for e in log_b.entries] == ["claim_abandoned"]
    assert log_b.entries[0]["reason"] == "already finished"
    assert (await owner.get("/repos/owner/tasks/git/matching-refs/bzzz/claims/")).json() == []


async def test_a_github_outage_delays_the_report_and_never_loses_or_doubles_it(tmp_path, hub,
                                                                                owner):
    go = tmp_path / "go"
    cmd = f"while [ ! -e {go} ]; do sleep 0.05; done; echo finished-in-the-outage"
    n = (await owner.post("/repos/owner/tasks/issues", json={
        "title": "t", "body": body(cmd), "labels": ["bzzz"]})).json()["number"]
    log = MemoryDecisionLog()
    async with GitHubClient(hub.url, "t-bot", backoff=0.05, max_backoff=0.2) as gh, \
            trio.open_nursery() as nursery:
        # a lease long enough to outlast the outage: nobody may take the task meanwhile
        svc = _service(gh, "a", tmp_path, log, lease=30.0, report_retry_max=0.3)
        await nursery.start(svc.run)
        await wait_until(lambda: svc.status() and svc.status()[0]["state"] == "running", 15,
                         "the task runs")
        await owner.post("/_devhub/faults", json={
            "pattern": "^(GET|POST|PATCH|PUT|DELETE) /repos/", "error_rate": 1.0,
            "error_status": 502})
        go.touch()  # the task ends while GitHub is down
        await wait_until(lambda: svc.report_retries >= 3, 20, "reporting waits for GitHub")
        assert svc.running and not svc.completed  # still held, nothing dropped
        await owner.delete("/_devhub/faults")
        await wait_until(lambda: not svc.running, 20, "reported and released after the outage")
        nursery.cancel_scope.cancel()
    comments = (await owner.get(f"/repos/owner/tasks/issues/{n}/comments")).json()
    results = [c for c in comments if "<!-- bzzz:result:" in c["body"]]
    assert len(results) == 1 and "finished-in-the-outage" in results[0]["body"]
    assert len([c for c in comments if "<!-- bzzz:claim:" in c["body"]]) == 1
    issue = (await owner.get(f"/repos/owner/tasks/issues/{n}")).json()
    assert "bzzz:done" in {l["name"] for l in issue["labels"]}
    assert (await owner.get("/repos/owner/tasks/git/matching-refs/bzzz/claims/")).json() == []
    assert [e["type"] for e in log.entries].count("reported") == 1


async def test_uncertain_comment_posts_are_checked_before_posting_again(tmp_path, hub, owner):
    """A POST that landed but whose answer was lost (a 502 after the write) is found by its
    marker on the retry: one comment, however many times GitHub failed to answer."""
    from bzzz.claim import report
    from bzzz.github.client import Unavailable
    from bzzz.github.issues import IssueOps
    n = (await owner.post("/repos/owner/tasks/issues", json={"title": "t"})).json()["number"]
    async with GitHubClient(hub.url, "t-bot", backoff=0.01, max_backoff=0.02) as gh:
        ops = IssueOps(gh, "owner/tasks")
        real = gh.request
        lost = {"left": 4}

        async def lossy(method, path, **kw):
            reply = await real(method, path, **kw)
            if lost["left"] > 0:  # the write happened, the answer is lost
                lost["left"] -= 1
                raise Unavailable(502, "Bad Gateway", method, path)
            return reply

        gh.request = lossy
        c = report.result_comment("a:1", "a", "succeeded", 1.0, 0, "out", False)
        try:
            await ops.comment_once(n, c, attempts=2)
        except Unavailable:
            pass  # the caller retries later (the service's _durably)
        await ops.comment_once(n, c)
    comments = (await owner.get(f"/repos/owner/tasks/issues/{n}/comments")).json()
    bodies = [x["body"] for x in comments]
    assert len(bodies) == 1 and "<!-- bzzz:result:a:1 -->" in bodies[0]


async def test_a_stopping_agent_claims_nothing_more(tmp_path, hub, owner):
    """Between SIGTERM and the end of the service (the goodbye takes a moment) nothing new
    is claimed: such a claim would be cancelled at once and abandoned unlogged."""
    first = (await owner.post("/repos/owner/tasks/issues", json={
        "title": "first", "body": body("echo first"), "labels": ["bzzz"]})).json()["number"]
    log = MemoryDecisionLog()
    async with GitHubClient(hub.url, "t-bot") as gh, trio.open_nursery() as nursery:
        svc = _service(gh, "n1", tmp_path, log)
        await nursery.start(svc.run)
        await wait_until(lambda: any(e["type"] == "reported" and e.get("issue") == first
                                     for e in log.entries), 20, "the first task reported")
        svc.stop_taking()
        second = (await owner.post("/repos/owner/tasks/issues", json={
            "title": "second", "body": body("echo second"), "labels": ["bzzz"]}
        )).json()["number"]
        before = gh.requests
        # the service keeps polling (every 0.2 s) and sees the new task, and claims nothing
        await wait_until(lambda: gh.requests >= before + 5, 10, "a few polls")
        assert not any(e.get("issue") == second for e in log.entries), log.entries[-3:]
        assert not svc.running
        nursery.cancel_scope.cancel()
