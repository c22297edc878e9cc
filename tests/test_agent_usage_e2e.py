"""An agent's usage, progress and presets end to end (#22 items 5, 6, 8): a real `bzzz run`
agent (bubblewrap, the task gateway) running the real Claude Code CLI against the scripted
model on devhub. The result comment and the ``result`` decision give the preset, model,
turns and exactly the tokens the model server counted; the progress comment ends as a
checklist of what the CLI did; the log holds bounded ``progress`` decisions; the status API
names the preset with its CLI's version, model and route."""

import re
import shutil

import httpx
import pytest

from bzzz.devhub import DevHubThread
from bzzz.hyperlog.store import read_entries
from bzzz.testing.agentclis import cli_bin, cli_path
from bzzz.testing.scriptedmodel import Edit, ScriptedModelThread
from bzzz.testing.wait import wait_for

from .conftest import require
from .test_agent_presets_e2e import _file, _labels
from .test_gateway_agent import SEED, _agent_env, _comments, _running

EDIT = Edit("README.md", "# tasks", "# tasks, kept by agents",
            final="README.md now says who keeps the tasks.")


@pytest.fixture(autouse=True)
def _tools():
    require(shutil.which("bwrap") is not None, "bubblewrap is not installed")
    require(cli_path("claude") is not None, "Claude Code is not installed (bash .ci/agent-clis.sh)")


def test_usage_progress_and_presets_of_a_claude_code_task(tmp_path, workdir):
    with ScriptedModelThread(EDIT) as model, DevHubThread(seed=SEED) as hub:
        llm = ('[{"url": "%s", "kind": "anthropic", "name": "claude", "models": ["scripted"]}]'
               % model.url)
        env = _agent_env(tmp_path, workdir, hub, BZZZ_LLM=llm, BZZZ_DETECT_CAPABILITIES="off",
                         BZZZ_AGENT="claude-code,codex", BZZZ_AGENT_MODEL="scripted",
                         BZZZ_AGENT_PATH=str(cli_bin()), BZZZ_PROGRESS_INTERVAL="0.2")
        owner = httpx.Client(base_url=hub.url, headers={"Authorization": "token t-owner"},
                             timeout=30)
        with _running(tmp_path, env):
            status_url = f"http://{env['BZZZ_API_LISTEN']}/api/v1/status"
            presets = wait_for(lambda: [p for p in httpx.get(status_url).json().get(
                "agent_presets", []) if p.get("version")], 90, what="the CLI's version")
            (claude,) = presets
            assert (claude["preset"], claude["model"], claude["route"]) == (
                "claude-code", "scripted", "claude")
            assert re.search(r"\d+\.\d+", claude["version"]), claude
            others = [p for p in httpx.get(status_url).json()["agent_presets"]
                      if p["preset"] == "codex"]
            assert others and "error" in others[0]  # configured, but no route of its dialect

            n = _file(owner, "Who keeps the tasks")
            wait_for(lambda: "bzzz:review" in _labels(owner, n), 120, what="claude's PR")
            comments = _comments(owner, n)
            result = next(c["body"] for c in comments if "bzzz:result:" in c["body"])
            progress = [c["body"] for c in comments if "bzzz:progress:" in c["body"]]
        print(progress, result, sep="\n")
        served_in, served_out = model.model.served_in, model.model.served_out
        assert served_in > 0 and served_out > 0
        m = re.search(r"🧑‍💻 claude-code \(`scripted`\): (\d+) turns?, ([\d,]+) tokens in, "
                      r"([\d,]+) out", result)
        assert m, result
        assert int(m.group(1)) >= 1
        # exactly what the model server counted
        assert (int(m.group(2).replace(",", "")), int(m.group(3).replace(",", ""))) == (
            served_in, served_out), result
        # one progress comment, at its final state: a checklist of what the CLI did
        assert len(progress) == 1, progress
        assert "🏁 Ran on **gw**" in progress[0], progress[0]
        assert "- [x] Edited `README.md`" in progress[0], progress[0]
        assert "- [x] Done" in progress[0], progress[0]
        entries = [e for e in read_entries(tmp_path / "gw" / "log") if e.get("issue") == n]
        (res,) = [e for e in entries if e["type"] == "result"]
        assert res["usage"]["tokens_in"] == served_in and res["usage"]["tokens_out"] == served_out
        assert res["usage"]["agent"] == "claude-code" and res["usage"]["turns"] >= 1
        steps = [e for e in entries if e["type"] == "progress"]
        assert steps and all(len(e["lines"]) <= 20 and all(len(x) <= 160 for x in e["lines"])
                             for e in steps)  # bounded: the log replicates to every peer
        assert any("🔧 Edit README.md" in e["lines"] for e in steps), steps
