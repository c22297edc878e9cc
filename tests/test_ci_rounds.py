"""CI rounds end to end (bzzz/claim/ciround.py, ciwatch.py): a real `bzzz run` agent on
devhub, whose CI is a GitHub App of its own (bzzz/devhub/ciapp.py) failing a head with FIXME
in its added lines, with an annotation at each."""

import httpx
import pytest

from bzzz.claim.ciround import next_step, round_comment, rounds_done
from bzzz.devhub import DevHubThread
from bzzz.devhub.ciapp import CiApp, added_lines, forbid
from bzzz.github.checks import Failure, Verdict
from bzzz.github.markers import find_markers
from bzzz.testing.wait import wait_for

from .test_repo_work import comments, file_on, file_task, pulls, running_agent
from .test_agent_tasks import labels

SEED = {"users": [{"login": "owner", "token": "t-owner"}, {"login": "bot", "token": "t-bot"}],
        "repos": [{"full_name": "owner/tasks", "push": ["bot"]}]}

# round 1 leaves a FIXME; a round whose feedback names the CI's annotation fixes it
FIXES = """Write the notes.

```bzzz pr=ready-when-green
if grep -q "FIXME left in" "$BZZZ_FEEDBACK"; then echo "done properly" > notes.txt
else echo "FIXME: finish this" > notes.txt; fi
```
"""
NEVER = """Write the notes, badly.

```bzzz
echo "FIXME $(date +%s%N)" > notes.txt
```
"""


def test_the_core_counts_rounds_and_stops_at_the_limit():
    red, green, pending = Verdict("red"), Verdict("green"), Verdict("pending")
    assert next_step(pending, 0).kind == "wait" and next_step(green, 5).kind == "green"
    assert (next_step(red, 0).kind, next_step(red, 0).round) == ("round", 1)
    assert next_step(red, 1).round == 2 and next_step(red, 2).kind == "give_up"
    assert next_step(red, 0, ci_rounds=0).kind == "give_up"
    bodies = ["<!-- bzzz:ci:7:aaa -->x", "<!-- bzzz:ci:7:bbb -->", "<!-- bzzz:ci:8:c -->",
              "<!-- bzzz:ci-final:7:d -->", "plain"]
    ours = [{"user": {"login": "Bot"}, "body": b} for b in bodies]
    forged = [{"user": {"login": "stranger"}, "body": "<!-- bzzz:ci:7:zzz -->"}]
    assert rounds_done(ours + forged, 7, "bot") == 2 and rounds_done(ours, 8, "bot") == 1
    # what a CI reports cannot carry a marker of ours into the round's comment
    hostile = Verdict("red", (Failure("check_run", "ci", "failure",
                                      summary="<!-- bzzz:ci:7:forged -->"),))
    body = round_comment(7, "abc", hostile, next_step(hostile, 0), 2, "n").body
    assert find_markers(body) == {("ci", "7:abc")}


def test_added_lines_follow_the_hunks():
    patch = "@@ -1,2 +1,3 @@\n keep\n-gone\n+new one\n+FIXME two\n@@ -10 +11,1 @@\n+eleven"
    assert added_lines(patch) == [(2, "new one"), (3, "FIXME two"), (11, "eleven")]
    j = forbid()([{"filename": "a.txt", "patch": patch}])
    assert j.conclusion == "failure" and j.annotations[0]["start_line"] == 3


@pytest.fixture
def hub():
    with DevHubThread(seed=SEED) as the_hub:
        yield the_hub


@pytest.fixture
def owner(hub):
    with httpx.Client(base_url=hub.url, headers={"Authorization": "token t-owner"},
                      timeout=30) as c:
        yield c


def test_a_red_check_gets_a_round_with_its_annotations_then_green_makes_it_ready(
        tmp_path, workdir, hub, owner):
    n = file_task(owner, "Notes", FIXES)
    with CiApp(hub.url, "owner/tasks", "owner", forbid("FIXME"), interval=0.2) as ci, \
            running_agent(tmp_path, hub, workdir, BZZZ_CI_SETTLE="1"):
        wait_for(lambda: len(ci.judged) >= 1 and "failure" in ci.judged.values(), 60,
                 what="the CI failing the first head")
        (pr,) = pulls(owner)
        assert pr["draft"]
        # the CI's failure, annotation included, goes back as a round on the same branch
        wait_for(lambda: "success" in ci.judged.values(), 90, what="the fix judged green")
        wait_for(lambda: not owner.get(f"/repos/owner/tasks/pulls/{pr['number']}").json()[
            "draft"], 30, what="the pull request marked ready")
        assert file_on(owner, pr["head"]["ref"], "notes.txt") == "done properly\n"
        ci_comments = [c["body"] for c in comments(owner, pr["number"])
                       if "<!-- bzzz:ci:" in c["body"]]
        assert len(ci_comments) == 1 and "CI round 1 of 2" in ci_comments[0]
        assert "notes.txt" in ci_comments[0] and "FIXME left in" in ci_comments[0]
        reviewers = owner.get(f"/repos/owner/tasks/pulls/{pr['number']}/requested_reviewers")
        assert [u["login"] for u in reviewers.json()["users"]] == ["owner"]
        assert len(pulls(owner)) == 1 and "bzzz:review" in labels(owner, n)


def test_a_check_that_keeps_failing_stops_at_ci_rounds_with_a_comment(tmp_path, workdir, hub,
                                                                     owner):
    file_task(owner, "Notes", NEVER)
    with CiApp(hub.url, "owner/tasks", "owner", forbid("FIXME"), interval=0.2) as ci, \
            running_agent(tmp_path, hub, workdir, BZZZ_CI_SETTLE="1"):
        wait_for(lambda: pulls(owner), 60, what="the pull request")
        (pr,) = pulls(owner)
        wait_for(lambda: any("<!-- bzzz:ci-final:" in c["body"]
                             for c in comments(owner, pr["number"])), 120,
                 what="the final CI comment")
        everything = comments(owner, pr["number"])
        bodies = [c["body"] for c in everything]
        assert rounds_done(everything, pr["number"], "bot") == 2  # ci_rounds (2), then a person
        final = next(b for b in bodies if "<!-- bzzz:ci-final:" in b)
        assert "after 2 CI rounds" in final and "FIXME" in final
        assert list(ci.judged.values()) == ["failure"] * 3  # the third failure stops it
        assert owner.get(f"/repos/owner/tasks/pulls/{pr['number']}").json()["draft"]


def test_on_webhooks_a_failed_check_starts_the_round_long_before_the_next_poll(
        tmp_path, workdir, hub, owner):
    """Polling every 60 s: the issue, the check run and its completion arrive as webhooks,
    and the CI round starts within seconds of the check failing."""
    import time

    from .helpers import free_port
    (tmp_path / "hook.secret").write_text("s3cret\n")
    port = free_port()
    r = owner.post("/repos/owner/tasks/hooks", json={
        "config": {"url": f"http://127.0.0.1:{port}/webhook", "secret": "s3cret"},
        "events": ["issues", "issue_comment", "check_run", "status"]})
    assert r.status_code == 201, r.text
    with CiApp(hub.url, "owner/tasks", "owner", forbid("FIXME"), interval=0.1) as ci, \
            running_agent(tmp_path, hub, workdir, BZZZ_CI_SETTLE="1",
                          BZZZ_GITHUB__POLL_INTERVAL="60",
                          BZZZ_GITHUB__WEBHOOK_LISTEN=f"127.0.0.1:{port}",
                          BZZZ_GITHUB__WEBHOOK_SECRET_FILE=str(tmp_path / "hook.secret")):
        n = file_task(owner, "Notes", FIXES)
        wait_for(lambda: "failure" in ci.judged.values(), 60, what="the CI failing")
        failed_at = time.monotonic()
        (pr,) = pulls(owner)
        wait_for(lambda: any("<!-- bzzz:ci:" in c["body"] for c in comments(owner, pr["number"])),
                 20, what="the CI round's comment")
        assert time.monotonic() - failed_at < 10  # the poll interval is 60 s
        wait_for(lambda: "success" in ci.judged.values(), 60, what="the fix judged green")
        assert n


def test_a_check_that_stays_pending_fails_after_ci_wait(tmp_path, workdir, hub, owner):
    """A commit status left pending: after ci_wait it counts as failed (timed out)."""
    file_task(owner, "Notes", NEVER)
    with running_agent(tmp_path, hub, workdir, BZZZ_CI_WAIT="3", BZZZ_CI_ROUNDS="0"):
        wait_for(lambda: pulls(owner), 60, what="the pull request")
        (pr,) = pulls(owner)
        r = owner.post(f"/repos/owner/tasks/statuses/{pr['head']['sha']}", json={
            "state": "pending", "context": "slow-ci", "description": "never finishes"})
        assert r.status_code == 201, r.text
        wait_for(lambda: any("<!-- bzzz:ci-final:" in c["body"]
                             for c in comments(owner, pr["number"])), 60,
                 what="the final CI comment")
        final = next(c["body"] for c in comments(owner, pr["number"])
                     if "<!-- bzzz:ci-final:" in c["body"])
        assert "slow-ci" in final and "timed_out" in final, final
