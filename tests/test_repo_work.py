"""Repository work end to end: real `bzzz run` agents, devhub with real git, pull requests."""

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from bzzz.devhub import DevHubThread
from bzzz.testing.wait import wait_for

from .test_agent_tasks import labels, start_agent

SEED = {"users": [{"login": "owner", "token": "t-owner"}, {"login": "bot", "token": "t-bot"},
                  {"login": "dev", "token": "t-dev"}],
        "repos": [{"full_name": "owner/tasks", "push": ["bot", "dev"]}]}
ROUNDS_SEED = {"users": SEED["users"] + [{"login": "stranger", "token": "t-stranger"}],
               "repos": [{"full_name": "owner/tasks", "push": ["bot", "dev"],
                          "read": ["stranger"]}]}


def client(hub, token="t-owner"):
    return httpx.Client(base_url=hub.url, headers={"Authorization": f"token {token}"}, timeout=30)


@pytest.fixture
def hub():
    """devhub with the owner, the agents' login (bot), a writer (dev) and a stranger who
    may only read."""
    with DevHubThread(seed=ROUNDS_SEED) as the_hub:
        yield the_hub


@pytest.fixture
def owner(hub):
    with client(hub) as c:
        yield c


@pytest.fixture
def dev(hub):
    with client(hub, "t-dev") as c:
        yield c


@pytest.fixture
def stranger(hub):
    with client(hub, "t-stranger") as c:
        yield c


def file_task(who, title, body, labels=("bzzz",)) -> int:
    """File an issue as ``who`` (with ``labels``, if any); its number."""
    doc = {"title": title, "body": body, **({"labels": list(labels)} if labels else {})}
    return who.post("/repos/owner/tasks/issues", json=doc).json()["number"]


@contextmanager
def running_agent(tmp_path, hub, workdir, **env) -> Iterator[int]:
    """`bzzz run` as agent "a" for the block (its API port): stopped and waited for after."""
    agent, api = start_agent(tmp_path, "a", hub, workdir, **env)
    try:
        yield api
    finally:
        agent.terminate()
        agent.wait(15)


def comments(owner, n):
    return owner.get(f"/repos/owner/tasks/issues/{n}/comments").json()


def pulls(owner, **params):
    return owner.get("/repos/owner/tasks/pulls", params={"state": "all", **params}).json()


def file_on(owner, ref, path):
    """A file's text at ``ref`` (a branch, or a commit's id), read through the git data API
    (None: not there)."""
    import base64
    import re
    sha = ref if re.fullmatch("[0-9a-f]{40}", ref) else \
        owner.get(f"/repos/owner/tasks/git/ref/heads/{ref}").json()["object"]["sha"]
    tree = owner.get(f"/repos/owner/tasks/git/commits/{sha}").json()["tree"]["sha"]
    *dirs, name = path.split("/")
    for d in dirs:
        entries = owner.get(f"/repos/owner/tasks/git/trees/{tree}").json()["tree"]
        found = [e for e in entries if e["path"] == d and e["type"] == "tree"]
        if not found:
            return None
        tree = found[0]["sha"]
    entries = owner.get(f"/repos/owner/tasks/git/trees/{tree}").json()["tree"]
    blob = [e for e in entries if e["path"] == name and e["type"] == "blob"]
    if not blob:
        return None
    return base64.b64decode(owner.get(f"/repos/owner/tasks/git/blobs/{blob[0]['sha']}")
                            .json()["content"]).decode()


def test_a_task_that_edits_a_file_ends_as_one_pull_request(tmp_path, workdir, hub, owner):
    body = ("Please add a line to the README.\n\n```bzzz\n"
            "test -d .git && git status --short >/dev/null\n"
            "echo 'made by a task' >> README.md\n"
            "mkdir -p docs && echo hi > docs/new.txt\n"
            "printf 'Added a line to the README and docs/new.txt.\\n' > \"$BZZZ_OUTPUT/summary.md\"\n"
            "```\n")
    n = file_task(owner, "Add a line to the README", body)
    with running_agent(tmp_path, hub, workdir):
        wait_for(lambda: "bzzz:review" in labels(owner, n), 60, what="the task is in review")
    (pr,) = pulls(owner)
    assert pr["draft"] is True and pr["state"] == "open"
    assert pr["head"]["ref"] == f"bzzz/{n}-add-a-line-to-the-readme"
    assert pr["base"]["ref"] == "main"
    assert f"Fixes #{n}" in pr["body"] and "Added a line" in pr["body"]
    assert pr["title"] == "Add a line to the README"
    assert "made by a task" in file_on(owner, pr["head"]["ref"], "README.md")
    assert file_on(owner, pr["head"]["ref"], "docs/new.txt") == "hi\n"
    assert "made by a task" not in file_on(owner, "main", "README.md")
    result = [c for c in comments(owner, n) if "<!-- bzzz:result:" in c["body"]]
    assert len(result) == 1 and f"pull request #{pr['number']}" in result[0]["body"]
    assert "bzzz:claimed" not in labels(owner, n)
    commit = owner.get(f"/repos/owner/tasks/git/commits/{pr['head']['sha']}").json()
    assert commit["author"]["name"] == "Bzzz a"
    assert f"Bzzz-Issue: owner/tasks#{n}" in commit["message"]
    assert commit["message"].startswith("Add a line to the README\n\nAdded a line")
    owner_id = owner.get("/user").json()["id"]  # the issue's author, credited as co-author
    assert commit["message"].rstrip("\n").endswith(
        f"Co-authored-by: owner <{owner_id}+owner@users.noreply.github.com>")
    everything = json.dumps([comments(owner, n), pulls(owner)])
    assert "t-bot" not in everything
    assert "t-bot" not in (tmp_path / "a.log").read_text()


def test_no_changes_means_no_pull_request(tmp_path, workdir, hub, owner):
    n = file_task(owner, "look only", "```bzzz\ncat README.md\n```")
    with running_agent(tmp_path, hub, workdir):
        wait_for(lambda: "bzzz:done" in labels(owner, n), 60, what="done")
    assert pulls(owner) == []
    (result,) = [c for c in comments(owner, n) if "<!-- bzzz:result:" in c["body"]]
    assert "# tasks" in result["body"]  # the README's text: the task ran in the checkout


ROUND_TASK = """Two rounds.

```bzzz pr=ready
if grep -q 'also more' "$BZZZ_FEEDBACK"; then
  echo more > more.txt
else
  echo first > first.txt
fi
if grep -q 'also third' "$BZZZ_FEEDBACK"; then echo third > third.txt; fi
printf '[{"title": "Document first.txt", "body": "Say what it is for.", "labels": ["docs"]}, {"title": "Remove first.txt later"}]' > "$BZZZ_OUTPUT/follow-ups.json"
```
"""


def test_review_feedback_makes_a_second_commit_on_the_same_pull_request(tmp_path, workdir, hub,
                                                                        owner, dev, stranger):
    n = file_task(owner, "Two rounds", ROUND_TASK)
    with running_agent(tmp_path, hub, workdir):
        wait_for(lambda: "bzzz:review" in labels(owner, n), 60, what="first round in review")
        (pr,) = pulls(owner)
        first_head = pr["head"]["sha"]
        follow = [i for i in owner.get("/repos/owner/tasks/issues",
                                       params={"state": "all"}).json()
                  if f"Follow-up of #{n}." in (i["body"] or "")]
        assert sorted(i["title"] for i in follow) == ["Document first.txt",
                                                     "Remove first.txt later"]
        assert all("bzzz" in {x["name"] for x in i["labels"]} for i in follow)
        # an outsider's /bzzz on the pull request starts nothing
        stranger.post(f"/repos/owner/tasks/issues/{pr['number']}/comments",
                      json={"body": "/bzzz also more, and delete everything"})
        # a writer's does
        dev.post(f"/repos/owner/tasks/issues/{pr['number']}/comments",
                 json={"body": "Looks good; /bzzz also more please"})
        wait_for(lambda: owner.get(f"/repos/owner/tasks/pulls/{pr['number']}").json()
                 ["head"]["sha"] != first_head, 60, what="a second commit on the PR")
        wait_for(lambda: "bzzz:review" in labels(owner, n), 60, what="second round in review")
        second_head = owner.get(f"/repos/owner/tasks/pulls/{pr['number']}").json()["head"]["sha"]
        # a review whose body says /bzzz starts a third round
        r = dev.post(f"/repos/owner/tasks/pulls/{pr['number']}/reviews", json={
            "event": "REQUEST_CHANGES", "body": "/bzzz also third, please"})
        assert r.status_code == 200, r.text
        wait_for(lambda: owner.get(f"/repos/owner/tasks/pulls/{pr['number']}").json()
                 ["head"]["sha"] != second_head, 60, what="a third commit on the PR")
        wait_for(lambda: "bzzz:review" in labels(owner, n), 60, what="third round in review")
        assert file_on(owner, pr["head"]["ref"], "third.txt") == "third\n"
        feedback_rounds = [c for c in comments(owner, n) if "<!-- bzzz:result:" in c["body"]]
        assert len(feedback_rounds) == 3
        # merging closes the issue (Fixes #n); the agents label it done
        head = owner.get(f"/repos/owner/tasks/pulls/{pr['number']}").json()["head"]["sha"]
        r = dev.put(f"/repos/owner/tasks/pulls/{pr['number']}/merge", json={"sha": head})
        assert r.status_code == 200, r.text
        wait_for(lambda: "bzzz:done" in labels(owner, n), 60, what="done after the merge")
        assert owner.get(f"/repos/owner/tasks/issues/{n}").json()["state"] == "closed"
        assert "bzzz:review" not in labels(owner, n)
    assert len(pulls(owner)) == 1
    head = pulls(owner)[0]["head"]
    assert file_on(owner, head["ref"], "more.txt") == "more\n"
    assert file_on(owner, head["ref"], "first.txt") == "first\n"
    second = owner.get(f"/repos/owner/tasks/git/commits/{second_head}").json()["parents"]
    assert [p["sha"] for p in second] == [first_head]
    pr_comments = comments(owner, pr["number"])
    assert any("<!-- bzzz:round:" in c["body"] for c in pr_comments)
    # the follow-ups were filed once, although the second round asked again
    follow = [i for i in owner.get("/repos/owner/tasks/issues", params={"state": "all"}).json()
              if f"Follow-up of #{n}." in (i["body"] or "")]
    assert len(follow) == 2
    assert "delete everything" not in json.dumps(pr_comments[-1])


OUTSIDER_TASK = r"""An outsider's idea.

```bzzz
printf '[{"title": "Run more", "body": "```bzzz\\necho follow-up-ran\\n```\\n<!-- bzzz:inherits:99 --><!-- bzzz:follow-up-of:99:x:0 -->"}]' > "$BZZZ_OUTPUT/follow-ups.json"
```
"""


def test_follow_ups_of_an_approved_outsiders_task_wait_for_approval(tmp_path, workdir, hub,
                                                                     owner, dev, stranger):
    """A follow-up is filed under the agents' login, which may push; one filed by the task
    of an outsider's approved issue inherits that trust and waits for a writer too."""
    from .test_trust_devhub import announced
    n = file_task(stranger, "More please", OUTSIDER_TASK, labels=())
    owner.post(f"/repos/owner/tasks/issues/{n}/labels", json={"labels": ["bzzz"]})
    with running_agent(tmp_path, hub, workdir):
        wait_for(lambda: announced(owner, n), 60, what="the outsider's task announced")
        dev.post(f"/repos/owner/tasks/issues/{n}/comments",
                 json={"body": f"/bzzz approve {announced(owner, n)[-1]}"})
        wait_for(lambda: "bzzz:done" in labels(owner, n), 60, what="the approved task done")
        (f,) = [i for i in owner.get("/repos/owner/tasks/issues").json()
                if f"Follow-up of #{n}" in (i["body"] or "")]
        assert f["user"]["login"] == "bot"
        wait_for(lambda: announced(owner, f["number"]), 60, what="the follow-up waits")
        # the agent comments first, then labels (bzzz/claim/service.py _trusted): a busy
        # machine can show the comment before the label
        wait_for(lambda: "bzzz:needs-approval" in labels(owner, f["number"]), 30,
                 what="the follow-up labelled as waiting for approval")
        assert "inherits that trust" in f["body"] and f"<!-- bzzz:inherits:{n} -->" in f["body"]
        # markers in the text the task handed back are defused
        assert "<!-- bzzz:follow-up-of:99:" not in f["body"] and "bzzz:inherits:99" not in f["body"]
        (waiting,) = [c["body"] for c in comments(owner, f["number"])
                      if "<!-- bzzz:approval:" in c["body"]]
        assert f"follow-up filed by the task of #{n}" in waiting
        assert not [c for c in comments(owner, f["number"]) if "<!-- bzzz:result:" in c["body"]]
        dev.post(f"/repos/owner/tasks/issues/{f['number']}/comments",
                 json={"body": f"/bzzz approve {announced(owner, f['number'])[-1]}"})
        wait_for(lambda: "bzzz:done" in labels(owner, f["number"]), 60,
                 what="the approved follow-up done")
    (r,) = [c for c in comments(owner, f["number"]) if "<!-- bzzz:result:" in c["body"]]
    assert "follow-up-ran" in r["body"]


def test_a_delivery_that_changes_workflows_is_refused_unless_allowed(tmp_path, workdir, hub,
                                                                     owner, dev):
    """GitHub runs a pushed branch's workflows with the repository's secrets: a task that
    changes `.github/workflows/` pushes nothing and fails, naming the paths, unless the
    operator allows it for the repository. A path changed in a commit of the task's own
    (every commit is pushed) counts, though the working files no longer have it."""
    n = file_task(owner, "Add CI", "```bzzz\nmkdir -p .github/workflows\n"
                  "echo 'on: push' > .github/workflows/ci.yml\n"
                  "git add -A && git -c user.name=T -c user.email=t@example.com commit -qm CI\n"
                  "echo 'on: push' > .github/workflows/\u00e9t\u00e9.yml\n"
                  "rm .github/workflows/ci.yml\n"
                  "echo ok > fine.txt\n```")
    with running_agent(tmp_path, hub, workdir, BZZZ_HELP_REQUESTS="off"):
        wait_for(lambda: "bzzz:failed" in labels(owner, n), 60, what="the task failed")
    (r,) = [c["body"] for c in comments(owner, n) if "<!-- bzzz:result:" in c["body"]]
    assert "nothing was pushed" in r and "`.github/workflows/ci.yml`" in r
    assert "`.github/workflows/\u00e9t\u00e9.yml`" in r and "delivery_allow_protected" in r
    assert pulls(owner) == []
    assert owner.get(f"/repos/owner/tasks/git/ref/heads/bzzz/{n}-add-ci").status_code == 404

    # the operator allows it for this repository: the retry delivers
    with running_agent(tmp_path, hub, workdir, BZZZ_HELP_REQUESTS="off",
                       BZZZ_DELIVERY_ALLOW_PROTECTED="owner/tasks"):
        dev.post(f"/repos/owner/tasks/issues/{n}/comments", json={"body": "/bzzz retry"})
        wait_for(lambda: "bzzz:review" in labels(owner, n), 60, what="delivered when allowed")
    (pr,) = pulls(owner)
    assert file_on(owner, pr["head"]["ref"], ".github/workflows/\u00e9t\u00e9.yml") == "on: push\n"
    assert file_on(owner, pr["head"]["ref"], ".github/workflows/ci.yml") is None
    kept, _ = owner.get(f"/repos/owner/tasks/pulls/{pr['number']}/commits").json()
    assert file_on(owner, kept["sha"], ".github/workflows/ci.yml") == "on: push\n"


def test_closing_the_pull_request_unmerged_ends_the_task(tmp_path, workdir, hub, owner, dev):
    n = file_task(owner, "Unwanted", "```bzzz\necho x > x.txt\n```")
    with running_agent(tmp_path, hub, workdir):
        wait_for(lambda: "bzzz:review" in labels(owner, n), 60, what="in review")
        (pr,) = pulls(owner)
        assert dev.patch(f"/repos/owner/tasks/pulls/{pr['number']}",
                         json={"state": "closed"}).status_code == 200
        wait_for(lambda: owner.get(f"/repos/owner/tasks/issues/{n}").json()["state"]
                 == "closed", 60, what="the issue closed")
    issue = owner.get(f"/repos/owner/tasks/issues/{n}").json()
    assert issue["state_reason"] == "not_planned"
    assert "bzzz:failed" in labels(owner, n) and "bzzz:review" not in labels(owner, n)
    assert any("closed without merging" in c["body"] for c in comments(owner, n))


def test_a_strangers_pull_request_from_a_deleted_fork_is_not_the_agents(tmp_path, workdir, hub,
                                                                         owner, dev, stranger):
    """A stranger's pull request from a `bzzz/<n>-…` branch with the agents' task marker,
    its fork deleted (GitHub shows no head repository), then closed, ends nothing: only the
    agents' own pull requests (of the repository itself, opened by their login) count."""
    n = file_task(owner, "Wanted", "```bzzz\necho x > x.txt\n```")
    with running_agent(tmp_path, hub, workdir):
        wait_for(lambda: "bzzz:review" in labels(owner, n), 60, what="in review")
        (ours,) = pulls(owner)
        theirs = stranger.post("/repos/owner/tasks/pulls", json={
            "title": "Wanted", "head": ours["head"]["ref"], "base": "main",
            "body": f"<!-- bzzz:task:owner/tasks#{n} -->\nFixes #{n}"}).json()
        assert httpx.post(f"{hub.url}/_devhub/head-repo-deleted", json={
            "repo": "owner/tasks", "pull": theirs["number"]}).status_code == 200
        assert owner.get(f"/repos/owner/tasks/pulls/{theirs['number']}").json()[
            "head"]["repo"] is None
        assert stranger.patch(f"/repos/owner/tasks/pulls/{theirs['number']}",
                              json={"state": "closed"}).status_code == 200

        def lists():
            return httpx.get(f"{hub.url}/_devhub/stats").json()["requests"].get(
                "bot", {}).get("GET /repos/{owner}/{repo}/pulls", 0)
        seen = lists()
        wait_for(lambda: lists() >= seen + 2, 30, what="the agent read the pulls since")
        # the agents' own pull request closed unmerged still ends the task
        assert dev.patch(f"/repos/owner/tasks/pulls/{ours['number']}",
                         json={"state": "closed"}).status_code == 200
        wait_for(lambda: owner.get(f"/repos/owner/tasks/issues/{n}").json()["state"]
                 == "closed", 60, what="the issue closed")
    closed = [c["body"] for c in comments(owner, n) if "<!-- bzzz:pr-closed:" in c["body"]]
    assert len(closed) == 1 and f"Pull request #{ours['number']} was closed" in closed[0]


def test_only_the_agents_own_pull_requests_count():
    from bzzz.github.pulls import pull_info
    doc = {"number": 4, "state": "closed", "user": {"login": "bot"},
           "head": {"ref": "bzzz/1-x", "repo": {"full_name": "owner/tasks"}},
           "base": {"ref": "main"}, "body": "<!-- bzzz:task:owner/tasks#1 -->"}
    assert pull_info("owner/tasks", doc, "bot").issue == 1
    for head_repo in (None, {}, {"full_name": "stranger/tasks"}, {"full_name": None}):
        assert pull_info("owner/tasks", {**doc, "head": {**doc["head"], "repo": head_repo}},
                         "bot") is None
    for user in (None, {}, {"login": "stranger"}):
        assert pull_info("owner/tasks", {**doc, "user": user}, "bot") is None


def test_taken_branch_names_pr_none_failed_runs_and_bad_follow_ups(tmp_path, workdir, hub,
                                                                    owner):
    """A branch someone else holds is never pushed to (the next name is used); pr=none
    pushes without a pull request; a failed run that changed files pushes its branch and
    says so; a malformed follow-ups.json gets a clear line."""
    from bzzz.repo.git import git_env
    taken = file_task(owner, "Busy name", "```bzzz\necho mine > mine.txt\n```")
    # dev already has a branch of that name, with other work on it
    work = tmp_path / "dev"
    env = {**git_env(token="t-dev"), "GIT_AUTHOR_NAME": "dev", "GIT_AUTHOR_EMAIL": "d@x",
           "GIT_COMMITTER_NAME": "dev", "GIT_COMMITTER_EMAIL": "d@x"}
    subprocess.run(["git", "clone", "-q", f"{hub.url}/owner/tasks.git", str(work)],
                   env=env, check=True)
    (work / "dev.txt").write_text("dev's\n")
    for args in (["add", "-A"], ["commit", "-qm", "dev's work"],
                 ["push", "-q", "origin", f"HEAD:refs/heads/bzzz/{taken}-busy-name"]):
        subprocess.run(["git", *args], cwd=work, env=env, check=True)
    devs = owner.get(f"/repos/owner/tasks/git/ref/heads/bzzz/{taken}-busy-name").json()
    none = file_task(owner, "No PR please", "```bzzz pr=none\necho x > x.txt\n```")
    broken = file_task(owner, "Half done",
                       "```bzzz\necho partial > partial.txt\necho '{not json' > "
                       "\"$BZZZ_OUTPUT/follow-ups.json\"\nexit 3\n```")
    with running_agent(tmp_path, hub, workdir, BZZZ_HELP_REQUESTS="off"):
        wait_for(lambda: "bzzz:review" in labels(owner, taken), 60, what="taken: in review")
        wait_for(lambda: "bzzz:done" in labels(owner, none), 60, what="pr=none: done")
        wait_for(lambda: "bzzz:failed" in labels(owner, broken), 60, what="failed")
    assert owner.get(f"/repos/owner/tasks/git/ref/heads/bzzz/{taken}-busy-name").json() == devs
    (pr,) = [p for p in pulls(owner) if f"Fixes #{taken}" in p["body"]]
    assert pr["head"]["ref"] == f"bzzz/{taken}-busy-name-2"
    assert file_on(owner, pr["head"]["ref"], "mine.txt") == "mine\n"
    assert not [p for p in pulls(owner) if f"#{none}" in p["body"] or f"#{broken}" in p["body"]]
    assert file_on(owner, f"bzzz/{none}-no-pr-please", "x.txt") == "x\n"
    assert file_on(owner, f"bzzz/{broken}-half-done", "partial.txt") == "partial\n"
    (r,) = [c for c in comments(owner, broken) if "<!-- bzzz:result:" in c["body"]]
    assert "did not succeed, so there is no pull request" in r["body"]
    assert "follow-ups.json is not JSON" in r["body"]
    (r,) = [c for c in comments(owner, none) if "<!-- bzzz:result:" in c["body"]]
    assert "`pr=none`" in r["body"]


def test_the_next_checkout_is_written_ahead_and_brought_up_to_date(tmp_path, workdir, hub,
                                                                     owner):
    """After a task starts, the agent writes the next checkout of the default branch ahead
    of time; the next task takes it over, brought up to a commit pushed since, with the
    files it changed handed to the task user like the rest."""
    from bzzz.repo.git import git_env
    with running_agent(tmp_path, hub, workdir, BZZZ_KEEP_WORKSPACES="on") as api:
        def status():
            return httpx.get(f"http://127.0.0.1:{api}/api/v1/status").json()[
                "github"]["checkouts"]

        first = file_task(owner, "First", "```bzzz\necho one > one.txt\n```")
        wait_for(lambda: "bzzz:review" in labels(owner, first), 60, what="first in review")
        wait_for(lambda: status()["spare_checkouts_ready"] == ["owner/tasks"], 30,
                 what="a spare checkout ready")
        # main moves on after the spare was written
        work = tmp_path / "dev"
        env = {**git_env(token="t-dev"), "GIT_AUTHOR_NAME": "dev", "GIT_AUTHOR_EMAIL": "d@x",
               "GIT_COMMITTER_NAME": "dev", "GIT_COMMITTER_EMAIL": "d@x"}
        subprocess.run(["git", "clone", "-q", f"{hub.url}/owner/tasks.git", str(work)],
                       env=env, check=True)
        (work / "later").mkdir()
        (work / "later" / "news.txt").write_text("pushed after the spare\n")
        for args in (["add", "-A"], ["commit", "-qm", "news"], ["push", "-q", "origin",
                                                                "HEAD:main"]):
            subprocess.run(["git", *args], cwd=work, env=env, check=True)
        second = file_task(owner, "Second",
                           "```bzzz\ncat later/news.txt >> seen.txt\n"
                           "echo more >> later/news.txt\ntest ! -e one.txt\n```")
        wait_for(lambda: "bzzz:review" in labels(owner, second), 60, what="second in review")
        assert status()["spare_checkouts_used"] == 1
    pr = [p for p in pulls(owner) if f"#{second}" in (p.get("body") or "")][0]
    assert file_on(owner, pr["head"]["ref"], "seen.txt") == "pushed after the spare\n"
    assert file_on(owner, pr["head"]["ref"], "later/news.txt") == \
        "pushed after the spare\nmore\n"
    # the spare is never where a task could reach it
    spare = Path(workdir) / "a" / ".spare"
    assert oct(spare.stat().st_mode & 0o777) == "0o700"
