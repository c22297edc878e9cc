"""Coding-agent presets end to end: a real `bzzz run` agent (bubblewrap, the task gateway)
with the real Claude Code and Aider CLIs against a scripted model, on devhub. An issue with
no block becomes a draft pull request holding the CLI's edit and none of its own files, and
a review round on it resumes the CLI's session; a task needing `agent:aider` goes to Aider; a model refusing the key fails the task and opens
no pull request, although the CLI ran."""

import json
import re
import shutil

import httpx
import pytest

from bzzz.devhub import DevHubThread
from bzzz.exec.agents.sessions import SessionStore
from bzzz.testing.agentclis import cli_bin, cli_path
from bzzz.testing.scriptedmodel import Edit, ScriptedModelThread
from bzzz.testing.wait import wait_for

from .conftest import require
from .test_gateway_agent import SEED, _agent_env, _comments, _running

EDIT = Edit("README.md", "# tasks", "# tasks, kept by agents",
            final="README.md now says who keeps the tasks.")


@pytest.fixture(autouse=True)
def _tools():
    require(shutil.which("bwrap") is not None, "bubblewrap is not installed")
    require(cli_path("claude") is not None and cli_path("aider") is not None,
            "the agent CLIs are not installed (bash .ci/agent-clis.sh)")


def _labels(owner, n):
    return {x["name"] for x in owner.get(f"/repos/owner/tasks/issues/{n}").json()["labels"]}


def _tree(owner, sha):
    tree = owner.get(f"/repos/owner/tasks/git/commits/{sha}").json()["tree"]["sha"]
    return owner.get(f"/repos/owner/tasks/git/trees/{tree}",
                     params={"recursive": "1"}).json()["tree"]


def _pull_for(owner, n):
    return [p for p in owner.get("/repos/owner/tasks/pulls", params={"state": "all"}).json()
            if f"Fixes #{n}" in (p["body"] or "")]


def _file(owner, title, labels=("bzzz",)):
    return owner.post("/repos/owner/tasks/issues", json={
        "title": title, "body": "Say in the README who keeps the tasks.",
        "labels": list(labels)}).json()["number"]


def test_presets_turn_issues_into_pull_requests_and_refusals_into_failures(tmp_path, workdir):
    with ScriptedModelThread(EDIT) as model, DevHubThread(seed=SEED) as hub:
        llm = json.dumps([
            {"url": model.url, "kind": "anthropic", "name": "claude", "models": ["scripted"]},
            {"url": model.url, "kind": "openai", "name": "local", "models": ["scripted"]}])
        env = _agent_env(tmp_path, workdir, hub, BZZZ_LLM=llm, BZZZ_DETECT_CAPABILITIES="off",
                         BZZZ_AGENT="claude-code,aider", BZZZ_AGENT_MODEL="scripted",
                         BZZZ_AGENT_PATH=str(cli_bin()), BZZZ_PROGRESS_INTERVAL="0")
        owner = httpx.Client(base_url=hub.url, headers={"Authorization": "token t-owner"},
                             timeout=30)
        with _running(tmp_path, env):
            status = env["BZZZ_API_LISTEN"]
            wait_for(lambda: "agent:aider" in httpx.get(
                f"http://{status}/api/v1/status").json()["capabilities"], 60,
                what="the presets announced")
            caps = httpx.get(f"http://{status}/api/v1/status").json()["capabilities"]
            assert {"agent", "agent:claude-code", "agent:aider"} <= set(caps)

            n = _file(owner, "Who keeps the tasks")
            wait_for(lambda: "bzzz:review" in _labels(owner, n), 120, what="claude's PR")
            (pr,) = _pull_for(owner, n)
            assert pr["draft"] and EDIT.final in pr["body"]
            paths = {e["path"] for e in _tree(owner, pr["head"]["sha"])}
            assert paths == {"README.md"}, paths  # none of the CLI's own files
            result = next(c["body"] for c in _comments(owner, n) if "bzzz:result:" in c["body"])
            print(result)
            assert "🔧 Edit" in result, result
            # a review comment: a second round, a second commit on the same pull request
            owner.post(f"/repos/owner/tasks/issues/{pr['number']}/comments",
                       json={"body": "/bzzz say it once more"})
            wait_for(lambda: owner.get(f"/repos/owner/tasks/pulls/{pr['number']}").json()
                     ["head"]["sha"] != pr["head"]["sha"], 120, what="a second commit")
            wait_for(lambda: "bzzz:review" in _labels(owner, n), 120, what="round two done")
            head = owner.get(f"/repos/owner/tasks/pulls/{pr['number']}").json()["head"]["sha"]
            assert {e["path"] for e in _tree(owner, head)} == {"README.md"}
            asked = [json.dumps(r["body"]) for r in model.model.model_requests("/v1/messages")
                     if r["body"].get("tools")]
            assert "say it once more" in asked[-1]
            # the second round resumed the first's session: its first request to the model
            # holds the first round's conversation (its tool calls), not only the feedback
            second = next(i for i, body in enumerate(asked) if "say it once more" in body)
            before = set(re.findall(r"toolu_[0-9a-f]{20}", "".join(asked[:second])))
            assert before and before <= set(re.findall(r"toolu_[0-9a-f]{20}", asked[second]))
            results = [c["body"] for c in _comments(owner, n) if "bzzz:result:" in c["body"]]
            assert len(results) == 2 and "↩ resumed session" in results[-1], results[-1]
            print(results[-1])
            assert "; it resumed session `" in results[-1]  # on its usage line
            # kept on the node for a next round, until the pull request closes
            kept = SessionStore(tmp_path / "gw" / "agent-sessions").task_dir("owner/tasks", n)
            assert (kept / "claude-code" / "session.json").is_file()
            assert owner.patch(f"/repos/owner/tasks/pulls/{pr['number']}",
                               json={"state": "closed"}).status_code == 200

            m = _file(owner, "Who keeps the tasks, by Aider", ("bzzz", "needs:agent:aider"))
            wait_for(lambda: "bzzz:review" in _labels(owner, m), 120, what="aider's PR")
            (pr2,) = _pull_for(owner, m)
            assert {e["path"] for e in _tree(owner, pr2["head"]["sha"])} == {"README.md"}
            result = next(c["body"] for c in _comments(owner, m) if "bzzz:result:" in c["body"])
            assert "Applied edit to README.md" in result, result

            model.model.refuse = True
            k = _file(owner, "Who keeps the tasks, refused")
            wait_for(lambda: "bzzz:failed" in _labels(owner, k), 120, what="the failure")
            assert _pull_for(owner, k) == []
            result = next(c["body"] for c in _comments(owner, k) if "bzzz:result:" in c["body"])
            assert "refused its key (401)" in result, result
            wait_for(lambda: not kept.exists(), 30, what="the closed task's session forgotten")


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
