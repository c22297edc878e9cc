"""Coding-agent presets end to end: a real `bzzz run` agent (bubblewrap, the task gateway)
with the four real CLIs (Claude Code, Codex, Aider, opencode) against a scripted model, on
devhub. An issue with no block becomes a draft pull request holding the CLI's edit and none
of its own files; a task needing `agent:<preset>` goes to that CLI, whose own lines the
result comment shows; a review comment makes a second commit on the same pull request from
the resumed session (Claude Code and Codex; kept until the pull request closes); a model
refusing the key fails the task and opens no pull request, although the CLI ran (each
CLI's refusal is also run through the executor in tests/test_agent_presets.py)."""

import base64
import json
import re
import shutil

import httpx
import pytest

from bzzz.devhub import DevHubThread
from bzzz.exec.agents import PRESETS
from bzzz.exec.agents.sessions import SessionStore
from bzzz.testing.agentclis import cli_bin, cli_path
from bzzz.testing.scriptedmodel import Edit, ScriptedModelThread
from bzzz.testing.wait import wait_for

from .conftest import require
from .test_gateway_agent import SEED, _agent_env, _comments, _running

# the heading stays a line of its own: Codex's patch (whole lines) applies again in a review
# round
EDIT = Edit("README.md", "# tasks", "# tasks\n\nKept by agents.",
            final="README.md now says who keeps the tasks.")
ONCE, TWICE = "# tasks\n\nKept by agents.\n", "# tasks\n\nKept by agents.\n\nKept by agents.\n"
# a line of each CLI's own, in the result comment's transcript (bzzz/exec/agents/)
OWN_LINE = {"claude-code": "🔧 Edit", "aider": "Applied edit to README.md",
            "codex": "✏️ README.md", "opencode": "🔧 edit"}
REVIEWED = ("claude-code", "codex", "aider", "opencode")
RESUMED = ("claude-code", "codex")  # the others start afresh with the feedback


@pytest.fixture(autouse=True)
def _tools():
    require(shutil.which("bwrap") is not None, "bubblewrap is not installed")
    require(all(cli_path(p.executable) is not None for p in PRESETS.values()),
            "the agent CLIs are not installed (bash .ci/agent-clis.sh)")


def _labels(owner, n):
    return {x["name"] for x in owner.get(f"/repos/owner/tasks/issues/{n}").json()["labels"]}


def _tree(owner, sha):
    tree = owner.get(f"/repos/owner/tasks/git/commits/{sha}").json()["tree"]["sha"]
    return owner.get(f"/repos/owner/tasks/git/trees/{tree}",
                     params={"recursive": "1"}).json()["tree"]


def _readme(owner, sha):
    (blob,) = [e["sha"] for e in _tree(owner, sha) if e["path"] == "README.md"]
    doc = owner.get(f"/repos/owner/tasks/git/blobs/{blob}").json()
    return base64.b64decode(doc["content"]).decode()


def _pull_for(owner, n):
    return [p for p in owner.get("/repos/owner/tasks/pulls", params={"state": "all"}).json()
            if f"Fixes #{n}" in (p["body"] or "")]


def _file(owner, title, labels=("bzzz",)):
    return owner.post("/repos/owner/tasks/issues", json={
        "title": title, "body": "Say in the README who keeps the tasks.",
        "labels": list(labels)}).json()["number"]


def _result(owner, n):
    return next(c["body"] for c in _comments(owner, n) if "bzzz:result:" in c["body"])


def _head(owner, pr):
    return owner.get(f"/repos/owner/tasks/pulls/{pr}").json()["head"]["sha"]


def _review(owner, n, pr):
    """A review comment on pull request ``pr`` (of issue ``n``); returns the condition of its
    round being done: a new head, and the issue back in review."""
    owner.post(f"/repos/owner/tasks/issues/{pr['number']}/comments",
               json={"body": "/bzzz say it once more"})
    return lambda: (_head(owner, pr["number"]) != pr["head"]["sha"]
                    and "bzzz:review" in _labels(owner, n))


def test_presets_turn_issues_into_pull_requests_and_refusals_into_failures(tmp_path, workdir):
    """All four presets on one agent: the four issues are filed together (four task slots),
    so the slowest CLI (opencode, a few seconds of its own start-up) runs while the others
    and their review rounds go by. Each gets a review round: a second commit on the same
    pull request (Claude Code and Codex from their resumed sessions)."""
    with ScriptedModelThread(EDIT) as model, DevHubThread(seed=SEED) as hub:
        llm = json.dumps([
            {"url": model.url, "kind": "anthropic", "name": "claude", "models": ["scripted"]},
            {"url": model.url, "kind": "openai", "name": "local", "models": ["scripted"]}])
        env = _agent_env(tmp_path, workdir, hub, BZZZ_LLM=llm, BZZZ_DETECT_CAPABILITIES="off",
                         BZZZ_AGENT=",".join(PRESETS), BZZZ_AGENT_MODEL="scripted",
                         BZZZ_AGENT_PATH=str(cli_bin()), BZZZ_PROGRESS_INTERVAL="0",
                         BZZZ_MAX_TASKS=str(len(PRESETS)),
                         # above 2g: opencode (bun) under RLIMIT_DATA = 2g runs 3-7x slower
                         # (docs/agents.md)
                         BZZZ_TASK_MEMORY="4g")
        owner = httpx.Client(base_url=hub.url, headers={"Authorization": "token t-owner"},
                             timeout=30)
        with _running(tmp_path, env):
            status = env["BZZZ_API_LISTEN"]
            wait_for(lambda: "agent:opencode" in httpx.get(
                f"http://{status}/api/v1/status").json()["capabilities"], 60,
                what="the presets announced")
            caps = httpx.get(f"http://{status}/api/v1/status").json()["capabilities"]
            assert {"agent", *(f"agent:{p}" for p in PRESETS)} <= set(caps)

            # no label: the first preset (Claude Code); each other one by its label
            issues = {"claude-code": _file(owner, "Who keeps the tasks")} | {
                p: _file(owner, f"Who keeps the tasks, by {p}", ("bzzz", f"needs:agent:{p}"))
                for p in PRESETS if p != "claude-code"}
            prs, rounds = {}, []
            for p in ("claude-code", "codex", "aider", "opencode"):  # the slowest last
                n = issues[p]
                wait_for(lambda n=n: "bzzz:review" in _labels(owner, n), 120, what=f"{p}'s PR")
                (prs[p],) = _pull_for(owner, n)
                pr = prs[p]
                assert pr["draft"] and EDIT.final in pr["body"], (p, pr["body"])
                paths = {e["path"] for e in _tree(owner, pr["head"]["sha"])}
                assert paths == {"README.md"}, (p, paths)  # none of the CLI's own files
                assert _readme(owner, pr["head"]["sha"]) == ONCE, p
                result = _result(owner, n)
                print(result)
                assert f"🧑‍💻 {p} (`scripted`)" in result, result
                assert OWN_LINE[p] in result, (p, result)
                if p in REVIEWED:  # a second round, a second commit on the same PR
                    rounds.append((p, _review(owner, n, pr)))
            sessions = SessionStore(tmp_path / "gw" / "agent-sessions")
            for p, reviewed in rounds:
                wait_for(reviewed, 120, what=f"{p}'s second round")
                head = _head(owner, prs[p]["number"])
                assert {e["path"] for e in _tree(owner, head)} == {"README.md"}
                assert _readme(owner, head) == TWICE, p
                results = [c["body"] for c in _comments(owner, issues[p])
                           if "bzzz:result:" in c["body"]]
                assert len(results) == 2, (p, results)
                if p not in RESUMED:
                    assert "↩ resumed session" not in results[-1], results[-1]
                    assert OWN_LINE[p] in results[-1], (p, results[-1])  # the CLI again
                    owner.patch(f"/repos/owner/tasks/pulls/{prs[p]['number']}",
                                json={"state": "closed"})
                    continue
                # the second round resumed the first's session, kept on the node for a
                # next round until the pull request closes
                assert "↩ resumed session" in results[-1], results[-1]
                assert "; it resumed session `" in results[-1]  # on its usage line
                kept = sessions.task_dir("owner/tasks", issues[p])
                assert (kept / p / "session.json").is_file(), p
                assert owner.patch(f"/repos/owner/tasks/pulls/{prs[p]['number']}",
                                   json={"state": "closed"}).status_code == 200
            asked = [json.dumps(r["body"]) for r in model.model.model_requests("/v1/messages")
                     if r["body"].get("tools")]
            assert "say it once more" in asked[-1]
            # Claude Code's second round: its first request to the model holds the first
            # round's conversation (its tool calls), not only the feedback
            second = next(i for i, body in enumerate(asked) if "say it once more" in body)
            before = set(re.findall(r"toolu_[0-9a-f]{20}", "".join(asked[:second])))
            assert before and before <= set(re.findall(r"toolu_[0-9a-f]{20}", asked[second]))
            asked = model.model.model_requests("/v1/responses")
            assert "say it once more" in json.dumps(asked[-1]["body"]["input"])

            # a model refusing the key: each CLI's task fails, with no pull request
            model.model.refuse = True
            refused = {p: _file(owner, f"Who keeps the tasks, refused to {p}",
                                ("bzzz", f"needs:agent:{p}")) for p in PRESETS}
            for p, k in refused.items():
                wait_for(lambda k=k: "bzzz:failed" in _labels(owner, k), 120,
                         what=f"{p}'s failure")
                assert _pull_for(owner, k) == [], p
                result = _result(owner, k)
                assert f"🧑‍💻 {p}" in result and "refused its key (401)" in result, result
            wait_for(lambda: not any(sessions.task_dir("owner/tasks", issues[p]).exists()
                                     for p in RESUMED), 30,
                     what="the closed tasks' sessions forgotten")


def test_an_agent_commands_known_cli_leaves_its_files_out_of_the_pull_request(tmp_path,
                                                                               workdir):
    """The issue's first complaint: Aider as a plain agent_command left its history files,
    and they were committed. A command running a CLI a preset knows leaves them out. The
    commit it makes itself (with its history files in it) is kept, as the agent's, under
    the delivery's commit of what it left uncommitted (bzzz/repo/taskcommits.py)."""
    command = ("/bin/sh -c 'echo \"kept by agents\" >> README.md; "
               "echo history > .aider.chat.history.md; git add -A; "
               "git -c user.name=Aider -c user.email=aider@example.com commit -qm \"Say who "
               "keeps the tasks\"; echo tested >> README.md; "
               "echo input > .aider.input.history' aider")
    with DevHubThread(seed=SEED) as hub:
        owner = httpx.Client(base_url=hub.url, headers={"Authorization": "token t-owner"},
                             timeout=30)
        env = _agent_env(tmp_path, workdir, hub, BZZZ_AGENT_COMMAND=command,
                         BZZZ_DETECT_CAPABILITIES="off", BZZZ_PROGRESS_INTERVAL="0")
        with _running(tmp_path, env):
            n = _file(owner, "Who keeps the tasks")
            wait_for(lambda: "bzzz:review" in _labels(owner, n), 120, what="the PR")
            (pr,) = _pull_for(owner, n)
            assert {e["path"] for e in _tree(owner, pr["head"]["sha"])} == {"README.md"}
            commits = owner.get(f"/repos/owner/tasks/pulls/{pr['number']}/commits").json()
            assert [c["commit"]["message"].split("\n")[0] for c in commits] == [
                "Say who keeps the tasks", "Who keeps the tasks"], commits
            kept, final = commits
            assert kept["commit"]["author"]["name"] == "Bzzz gw"
            assert "Co-authored-by: Aider <aider@example.com>" in kept["commit"]["message"]
            assert {e["path"] for e in _tree(owner, kept["sha"])} == {"README.md"}
            assert final["parents"][0]["sha"] == kept["sha"]
            work = httpx.get(f"http://{env['BZZZ_API_LISTEN']}/api/v1/status").json()
            assert work["github"]["checkouts"]["task_commits_kept"] == 1
