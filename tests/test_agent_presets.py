"""The coding-agent presets (bzzz/exec/agents/): each real CLI (installed by
.ci/agent-clis.sh) run by the ``agent`` executor in a bubblewrap sandbox whose only way out
is its task gateway route, against a scripted model server speaking that CLI's API
(bzzz/testing/scriptedmodel.py) whose answers make the CLI edit README.md with its own
tools. A model answering 401 fails the run (whatever the CLI's exit status), and the CLI is
stopped at once rather than after its retries."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import trio

from bzzz.exec.agents import PRESETS, Route, resolve
from bzzz.exec.agents.checklist import checklist_markdown
from bzzz.exec.agents.runner import HOME, PresetExecutor, fingerprint, resumed_instructions
from bzzz.exec.agents.sessions import SessionError, SessionStore, Stored
from bzzz.exec.executor import Job
from bzzz.exec.sandbox import Limits, open_sandbox
from bzzz.exec.shell import task_identity
from bzzz.gateway.allow import Allowlist
from bzzz.gateway.models import ModelEndpoint
from bzzz.gateway.proxy import Gateway
from bzzz.testing.agentclis import cli_bin, cli_path
from bzzz.testing.scriptedmodel import Edit, ScriptedModelThread

from .conftest import require

OLD, NEW = "hello old world", "hello new world"
EDIT = Edit("README.md", OLD, NEW, final="Changed old to new in README.md.")
# preset -> (its executable, the [[llm]] kind of its route)
CLIS = {"claude-code": ("claude", "anthropic"), "aider": ("aider", "openai"),
        "codex": ("codex", "openai"), "opencode": ("opencode", "openai")}
RUN_LIMIT = 240.0  # seconds for one CLI run on a loaded machine


@pytest.fixture(autouse=True)
def _bwrap():
    require(shutil.which("bwrap") is not None, "bubblewrap is not installed")


def _cli(name: str) -> None:
    require(cli_path(CLIS[name][0]) is not None,
            f"{CLIS[name][0]} is not installed (bash .ci/agent-clis.sh)")


def _checkout(root: Path, owner: tuple[int, int] | None) -> tuple[Path, Path, Path]:
    """A workspace holding a one-commit repository, the output and the inputs directory."""
    ws, out, inp = root / "ws", root / "out", root / "in"
    for d in (ws, out, inp):
        d.mkdir(parents=True)
        os.chmod(d, 0o755)
    (ws / "README.md").write_text(OLD + "\n")
    git = ["git", "-C", str(ws), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(ws)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "start"], check=True)
    (inp / "feedback.md").write_text("")
    if owner is not None:
        for d in (ws, out):
            subprocess.run(["chown", "-R", f"{owner[0]}:{owner[1]}", str(d)], check=True)
    return ws, out, inp


async def _run(name: str, root: Path, *, refuse: bool = False, repo_instructions: str = "",
               dead_first: bool = False, idle: bool = False, edit: Edit = EDIT,
               sessions: SessionStore | None = None, feedback: str = ""):
    """Run preset ``name`` once as the agent would: (outcome, the model's record, the
    workspace, the seconds the executor took). ``dead_first``: the node's first endpoint of
    the CLI's kind answers nothing; the model is on the second. ``sessions``: the node's
    store of sessions, ``feedback`` the round's."""
    kind = CLIS[name][1]
    gw = Gateway(root / "gw")
    require(bool(gw.python), "no system python3 for the gateway's forwarder")
    with ScriptedModelThread(edit, refuse=refuse, idle=idle) as server:
        gw.models = [ModelEndpoint("local", server.url, kind)]
        routes = [Route("local", kind, ("scripted",))]
        if dead_first:
            gw.models.insert(0, ModelEndpoint("dead", "http://127.0.0.1:9", kind))
            routes.insert(0, Route("dead", kind, ("other",)))
        box = await open_sandbox("bwrap", node_id="t", hidden=[], state_dir=root / "state",
                                 docker_host=None, default_image="-", network="gateway",
                                 # above 2g: opencode (bun) under RLIMIT_DATA = 2g runs 3-7x
                                 # slower (docs/agents.md)
                                 limits=Limits(memory="4g", pids=512),
                                 user=task_identity(None), gateway=gw)
        found, why = resolve([name], {"": "scripted"}, routes, [cli_bin()])
        assert name in found, why
        ws, out, inp = _checkout(root, box.owner)
        job = Job(task_id="owner/tasks#1", repo="owner/tasks", issue=1,
                  title="Say new instead of old", body="In README.md, change old to new.",
                  executor="agent", options={}, code=None, workspace=ws, output_dir=out,
                  feedback=feedback, feedback_file=inp / "feedback.md", env={},
                  read_only=[inp], timeout=RUN_LIMIT, needs=frozenset({f"agent:{name}"}),
                  repo_instructions=repo_instructions)
        executor = PresetExecutor(found, box, max_turns=8, sessions=sessions)
        start = time.monotonic()
        async with gw.route(job.task_id, Allowlist.build([])) as route:
            outcome = await executor.run(job)
        took = time.monotonic() - start
        await gw.aclose()
        outcome.result.extra["egress"] = route.egress.doc()
        return outcome, server.model, ws, out, took


def _pr_files(ws: Path, leftovers) -> list[str]:
    """What a delivery would commit: the changed files, the preset's leftovers aside."""
    git = ["git", "-c", "safe.directory=*", "-C", str(ws)]
    subprocess.run([*git, "add", "-A", "--", ".",
                    *(f":(exclude,glob){p}" for p in leftovers),
                    *(f":(exclude,glob){p}/**" for p in leftovers)], check=True,
                   capture_output=True)
    return subprocess.run([*git, "diff", "--cached", "--name-only"],
                          check=True, capture_output=True, text=True).stdout.split()


@pytest.mark.parametrize("name", list(CLIS))
def test_each_cli_edits_the_file_through_the_gateway(name, workdir):
    _cli(name)
    outcome, model, ws, out, took = trio.run(_run, name, Path(workdir))
    result = outcome.result
    print(f"{name}: {took:.1f} s\n{result.output}")
    assert result.status == "succeeded", (outcome.reason, result.output)
    assert (ws / "README.md").read_text() == NEW + "\n"
    print("left in the checkout:", sorted(os.listdir(ws)), result.extra["egress"]["refused"])
    if name == "aider":  # its leftovers are there, and stay out of the commit
        assert any(p.startswith(".aider") for p in os.listdir(ws))
    assert _pr_files(ws, PRESETS[name].leftovers) == ["README.md"]
    assert result.extra["agent"] == name and result.extra["edits"] >= 1
    assert model.requests, "the CLI reached the model through the gateway"
    keys = {r["headers"].get("x-api-key") or r["headers"].get("Authorization") for r in
            model.requests if r["body"] is not None}
    assert not any(k and "bzzz-task-" in k for k in keys), "the gateway replaced the capability"
    # the CLI's own files stayed in its HOME, outside the checkout
    assert (out / HOME).is_dir()
    if name != "aider":  # it has no last message apart from its edits
        assert (out / "summary.md").read_text().strip() == EDIT.final


@pytest.mark.parametrize("name", list(CLIS))
def test_a_refused_key_fails_the_run_at_once(name, workdir):
    _cli(name)
    outcome, model, ws, _, took = trio.run(
        lambda: _run(name, Path(workdir), refuse=True))
    print(f"{name}: {took:.1f} s\n{outcome.result.output}")
    assert outcome.result.status == "failed"
    assert outcome.reason == "the model refused its key (401)", outcome.reason
    assert (ws / "README.md").read_text() == OLD + "\n"
    assert took < 60, "stopped at the first refusal, not after the CLI's retries"


@pytest.mark.parametrize("name", list(CLIS))
def test_an_edit_that_never_applies_fails_the_run(name, workdir):
    """The model's edit names text the file does not hold: the CLI's tool refuses it, the
    CLI may still call the run a success."""
    _cli(name)
    absent = Edit("README.md", "a line that is not there", "x", final="Done, I think.")
    outcome, _, ws, _, _ = trio.run(lambda: _run(name, Path(workdir), edit=absent))
    print(f"{name}: {outcome.reason}\n{outcome.result.output}")
    assert outcome.result.status == "failed"
    assert outcome.reason and (outcome.reason.startswith(("its edits", "it made no change"))), \
        outcome.reason
    assert (ws / "README.md").read_text() == OLD + "\n"


@pytest.mark.parametrize("name", ["claude-code", "aider", "codex"])
def test_a_run_that_changes_nothing_fails(name, workdir):
    _cli(name)
    outcome, _, _, _, _ = trio.run(lambda: _run(name, Path(workdir), idle=True))
    assert outcome.result.status == "failed"
    assert outcome.reason == "it made no change", (outcome.reason, outcome.result.output)


def test_the_repository_instructions_reach_the_model(workdir):
    _cli("claude-code")
    rule = "Always answer in haiku (a rule of AGENTS.md)."
    outcome, model, _, _, _ = trio.run(
        lambda: _run("claude-code", Path(workdir), repo_instructions=rule))
    assert outcome.result.status == "succeeded", outcome.result.output
    asked = [r for r in model.model_requests("/v1/messages") if r["body"].get("tools")]
    assert rule in str(asked[0]["body"].get("system"))


@pytest.mark.parametrize("name", ["claude-code", "codex"])
def test_a_cli_talks_to_the_endpoint_serving_its_model(name, workdir):
    """Not the node's first endpoint of that kind (which the task's variables name)."""
    _cli(name)
    outcome, model, ws, _, _ = trio.run(lambda: _run(name, Path(workdir), dead_first=True))
    assert outcome.result.status == "succeeded", outcome.result.output
    assert (ws / "README.md").read_text() == NEW + "\n"


CALL_ID = re.compile(r"\b(?:toolu|call)_[0-9a-f]{12,}")
SAID = "## 2026-01-01T00:00:00Z @owner on the pull request\n\nSay it once more.\n\n"


def _asked(model) -> list[dict]:
    """The bodies of the CLI's requests that offered tools (its turns, not a title's)."""
    return [r["body"] for r in model.requests if r["body"] and r["body"].get("tools")]


def _calls(model) -> set[str]:
    return set(CALL_ID.findall(json.dumps(_asked(model))))


@pytest.mark.parametrize("name", ["claude-code", "codex"])
def test_a_review_round_resumes_the_clis_session(name, workdir):
    """Rounds of one task on one node, each in a checkout of its own: the second resumes the
    first's session (its first request to the model holds the first round's conversation)
    and is given the feedback since; a session the CLI does not know runs the round afresh."""
    _cli(name)
    root = Path(workdir)
    store = SessionStore(root / "sessions")
    first, model1, *_ = trio.run(lambda: _run(name, root / "r1", sessions=store))
    assert first.result.status == "succeeded", first.result.output
    kept = store.load("owner/tasks", 1, name, "scripted")
    assert kept is not None and first.result.extra["session"] == {
        "resumed": None, "kept": True, "id": kept.session, "bytes": kept.bytes}
    assert 0 < kept.bytes <= store.max_entry
    assert store.load("owner/tasks", 1, "aider" if name == "codex" else "codex",
                      "scripted") is None, "kept for its preset only"
    assert store.load("owner/tasks", 1, name, "another-model") is None

    second, model2, *_ = trio.run(lambda: _run(name, root / "r2", sessions=store,
                                               feedback=SAID))
    print(second.result.output)
    assert second.result.status == "succeeded", second.result.output
    assert second.result.output.startswith(f"↩ resumed session {kept.session}")
    resumed = json.dumps(_asked(model2)[0])
    assert _calls(model1) and _calls(model1) <= set(CALL_ID.findall(resumed)), \
        "the second round's first request holds the first round's conversation"
    assert "Say it once more." in resumed
    assert second.result.extra["session"]["id"] == kept.session  # the same session, on

    # the CLI does not know the session it is asked to resume: afresh, in the same round
    entry = store.entry("owner/tasks", 1, name) / "session.json"
    unknown = str(uuid.uuid4())
    entry.write_text(json.dumps({**json.loads(entry.read_text()), "session": unknown}))
    again = SAID + "## 2026-01-02T00:00:00Z @owner on the pull request\n\nAnd again.\n\n"
    third, model3, *_ = trio.run(lambda: _run(name, root / "r3", sessions=store,
                                              feedback=again))
    print(third.result.output)
    assert third.result.status == "succeeded", third.result.output
    assert third.result.output.startswith(f"↩ session {unknown} is unknown to {name}")
    assert third.result.extra["session"]["unknown"] == unknown
    fresh = json.dumps(_asked(model3)[-1])
    assert not (_calls(model1) | _calls(model2)) & set(CALL_ID.findall(fresh))
    assert "In README.md, change old to new." in fresh  # the whole instructions again
    assert store.load("owner/tasks", 1, name, "scripted").session not in (unknown, None)


# -------------------------------------------------------------------- no CLI needed

def test_fingerprint_sees_changes_but_not_leftovers_or_git(tmp_path):
    (tmp_path / ".git").mkdir()
    (tmp_path / "a.txt").write_text("a")
    before = fingerprint(tmp_path, (".aider*", ".claude/projects"))
    (tmp_path / ".git" / "x").write_text("x")
    (tmp_path / ".aider.chat.history.md").write_text("x")
    (tmp_path / ".claude" / "projects").mkdir(parents=True)
    (tmp_path / ".claude" / "projects" / "s.jsonl").write_text("x")
    assert fingerprint(tmp_path, (".aider*", ".claude/projects")) == before
    (tmp_path / "b.txt").write_text("b")
    assert fingerprint(tmp_path, (".aider*",)) != before


def test_a_task_container_cannot_be_given_a_cli_outside_the_workspace_root(tmp_path):
    """An agent that is itself in a container names host paths only under its workspace
    root: a CLI installed elsewhere cannot be given to a task's container."""
    from bzzz.exec.sandbox import ContainerSandbox
    box = ContainerSandbox(None, node_id="t", hidden=[], default_image="-",
                           network="gateway", limits=Limits(), user=None, chown_to=None,
                           workspace_map=(tmp_path / "work", Path("/srv/work")))
    assert box.unmountable(tmp_path / "work" / "clis") is None
    assert "is not under workspace_root" in (box.unmountable(tmp_path / "clis") or "")


def test_resolve_says_why_a_preset_cannot_run(tmp_path):
    routes = [Route("claude", "anthropic", ("sonnet",)), Route("local", "openai", ())]
    found, why = resolve(["claude-code", "codex", "nope"], {"": "sonnet"}, routes,
                         [tmp_path])
    assert "nope" in why and "no such preset" in why["nope"]
    for name in ("claude-code", "codex"):
        assert name in found or "not installed" in why[name]
    found, why = resolve(["claude-code"], {"": "m"}, [Route("local", "openai", ())], [])
    assert "no [[llm]] endpoint of kind anthropic" in why["claude-code"]
    found, why = resolve(["aider"], {}, routes, [])
    assert why["aider"] == "no model: set agent_model"


def _feed(parser, lines):
    shown = [s for line in lines for s in parser.feed(line)]
    return shown, parser.finish()


def test_claude_codes_success_with_a_failed_edit_is_a_failure():
    """Claude Code's result says success after an Edit whose tool result is an error."""
    lines = [
        '{"type":"system","subtype":"init","model":"m"}',
        '{"type":"assistant","message":{"content":[{"type":"tool_use","id":"t1","name":"Edit",'
        '"input":{"file_path":"/w/a.py","old_string":"x","new_string":"y"}}]}}',
        '{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t1",'
        '"is_error":true,"content":"<tool_use_error>String to replace not found in file.'
        '</tool_use_error>"}]}}',
        '{"type":"result","subtype":"success","is_error":false,"num_turns":2,'
        '"result":"Done.","usage":{"input_tokens":10,"output_tokens":3}}']
    shown, verdict = _feed(PRESETS["claude-code"].parser(), lines)
    assert verdict.failure and verdict.failure.startswith("its edits failed (/w/a.py")
    assert verdict.turns == 2 and verdict.tokens_in == 10 and "🔧 Edit /w/a.py" in shown
    # the same file edited again, successfully: the run stands
    ok = lines[:3] + [lines[1].replace('"t1"', '"t2"'),
                      '{"type":"user","message":{"content":[{"type":"tool_result",'
                      '"tool_use_id":"t2","content":"updated"}]}}', lines[3]]
    assert _feed(PRESETS["claude-code"].parser(), ok)[1].failure is None


def test_claude_codes_turn_limit_and_usage_limit():
    turns = '{"type":"result","subtype":"error_max_turns","is_error":true,"num_turns":8}'
    assert "turn limit" in _feed(PRESETS["claude-code"].parser(), [turns])[1].failure
    limit = ('{"type":"result","subtype":"success","is_error":true,"api_error_status":429,'
             '"result":"Rate limited"}')
    assert "usage or rate limit" in _feed(PRESETS["claude-code"].parser(), [limit])[1].failure


def test_aider_exits_0_on_a_refused_key_and_its_edits_that_never_applied():
    _, verdict = _feed(PRESETS["aider"].parser(), [
        "litellm.AuthenticationError: AuthenticationError: OpenAIException - Incorrect"])
    assert verdict.failure == "the model refused its key (401)" and verdict.fatal
    _, verdict = _feed(PRESETS["aider"].parser(), [
        "The LLM did not conform to the edit format.",
        "## SearchReplaceNoExactMatch: This SEARCH block failed to exactly match lines in",
        "Only 3 reflections allowed, stopping."])
    assert verdict.failure == "its edits never applied (three tries)"
    _, verdict = _feed(PRESETS["aider"].parser(), [
        "litellm.RateLimitError: You exceeded your current quota"])
    assert verdict.failure == "the model's usage or rate limit was reached"


def test_codex_and_opencode_failures():
    _, verdict = _feed(PRESETS["codex"].parser(), [
        '{"type":"turn.started"}',
        '{"type":"item.completed","item":{"type":"file_change","status":"failed",'
        '"changes":[{"path":"/w/a.py","kind":"update"}]}}',
        '{"type":"turn.completed","usage":{"input_tokens":5,"output_tokens":1}}'])
    assert verdict.failure.startswith("its edits failed (/w/a.py")
    _, verdict = _feed(PRESETS["codex"].parser(), [
        '{"type":"turn.failed","error":{"message":"You\'ve hit your usage limit."}}'])
    assert verdict.failure == "the model's usage or rate limit was reached"
    _, verdict = _feed(PRESETS["opencode"].parser(), [
        '{"type":"tool_use","part":{"tool":"edit","state":{"status":"error",'
        '"input":{"filePath":"/w/a.py"},"error":"oldString not found"}}}'])
    assert verdict.failure.startswith("its edits failed (/w/a.py: oldString not found")
    _, verdict = _feed(PRESETS["opencode"].parser(), [
        '{"type":"error","error":{"name":"APIError","data":{"statusCode":403,'
        '"message":"Forbidden"}}}'])
    assert verdict.failure == "the model refused its key (403)" and verdict.fatal


def test_the_leftovers_of_a_command_running_a_known_cli():
    from bzzz.exec.agents import leftovers_of
    assert leftovers_of(["aider", "--yes-always"]) == (".aider*",)
    assert ".claude.json" in leftovers_of(["/opt/clis/bin/claude", "-p"])
    assert leftovers_of(["my-agent", "--fix"]) == ()


def test_presets_and_a_command_are_one_or_the_other():
    from bzzz.config import ConfigError, load_config
    with pytest.raises(ConfigError, match="agent_command: set one of them"):
        load_config(env={"BZZZ_AGENT": "aider", "BZZZ_AGENT_COMMAND": "aider"})
    cfg = load_config(env={"BZZZ_AGENT": "claude-code,aider", "BZZZ_AGENT_MODEL": "m",
                           "BZZZ_AGENT_MAX_TURNS": "5"})
    assert cfg.agent == ["claude-code", "aider"] and cfg.agent_max_turns == 5


def test_a_long_agent_command_outlives_trios_idle_worker_threads(workdir):
    """bubblewrap's parent-death signal follows the thread that started it, and trio's
    worker threads end after 10 s idle: a task started from one was SIGKILLed at 10 s."""
    from bzzz.exec.executor import AgentExecutor

    async def main():
        root = Path(workdir)
        box = await open_sandbox("bwrap", node_id="t", hidden=[], state_dir=root / "state",
                                 docker_host=None, default_image="-", network="none",
                                 limits=Limits(), user=task_identity(None))
        ws, out, inp = _checkout(root, box.owner)
        job = Job(task_id="owner/tasks#2", repo="owner/tasks", issue=2, title="t", body="b",
                  executor="agent", options={}, code=None, workspace=ws, output_dir=out,
                  feedback="", feedback_file=inp / "feedback.md", env={}, read_only=[inp],
                  timeout=RUN_LIMIT)
        return await AgentExecutor(["/bin/sh", "-c", "sleep 12; echo slept"], box).run(job)

    outcome = trio.run(main)
    assert outcome.result.status == "succeeded", outcome.result.output
    assert "slept" in outcome.result.output


def _stored(repo="owner/tasks", issue=1, preset="claude-code", session="s-1", cwd="/w/a"):
    given, digest = SessionStore.given("")
    return Stored(repo, issue, preset, "m", session, cwd, given, digest, 0.0, 0, 0)


def test_the_session_store_follows_no_link_and_is_bounded(tmp_path):
    """A HOME comes from a sandboxed task: only its regular files and directories are kept,
    nothing is read or written through a link, and an entry over its bound is not kept."""
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key").write_text("the node's secret")
    home = tmp_path / "home"
    projects = home / ".claude" / "projects" / "-w-a"
    projects.mkdir(parents=True)
    (projects / "s-1.jsonl").write_text('{"kept": true}\n')
    (projects / "leak.jsonl").symlink_to(secret / "key")
    (projects / "linked").symlink_to(secret)
    os.mkfifo(projects / "pipe")
    os.link(secret / "key", projects / "hard.jsonl")
    store = SessionStore(tmp_path / "store", max_entry=1000)
    done = store.save(_stored(), home, [".claude/projects", ".claude.json", "../secret"])
    assert (done.files, done.bytes) == (1, len('{"kept": true}\n'))
    assert oct(os.stat(store.root).st_mode & 0o777) == "0o700"

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    stored = store.load("owner/tasks", 1, "claude-code", "m")
    moved = PRESETS["claude-code"].relocate("/w/a", "/w/b-2")
    assert moved == {".claude/projects/-w-a": ".claude/projects/-w-b-2"}
    assert store.restore(stored, fresh, moved, None) == 1
    assert [str(p.relative_to(fresh)) for p in sorted(fresh.rglob("*")) if p.is_file()] == \
        [".claude/projects/-w-b-2/s-1.jsonl"]

    # a HOME whose session directory is itself a link: nothing is kept
    (home / ".claude" / "projects").rename(home / "elsewhere")
    (home / ".claude" / "projects").symlink_to(home / "elsewhere")
    assert store.save(_stored(), home, [".claude/projects"]).files == 0
    # nor restored through a link in the new HOME
    (home / ".claude" / "projects").unlink()
    (home / "elsewhere").rename(home / ".claude" / "projects")
    assert store.save(_stored(), home, [".claude/projects"]).files == 1
    trap = tmp_path / "trap"
    trap.mkdir()
    (trap / ".claude").symlink_to(secret)
    with pytest.raises(SessionError):
        store.restore(store.load("owner/tasks", 1, "claude-code", "m"), trap, {}, None)
    assert sorted(os.listdir(secret)) == ["key"]

    # over its bound: not kept, and the earlier entry goes too
    (projects / "big").write_text("x" * 2000)
    with pytest.raises(SessionError, match="not kept"):
        store.save(_stored(), home, [".claude/projects"])
    assert store.load("owner/tasks", 1, "claude-code", "m") is None


def test_the_session_store_forgets_old_many_and_closed_tasks(tmp_path):
    now = [1000.0]
    home = tmp_path / "home"
    (home / ".codex" / "sessions").mkdir(parents=True)
    (home / ".codex" / "sessions" / "r.jsonl").write_text("x" * 100)
    store = SessionStore(tmp_path / "store", max_tasks=2, max_total=250, max_age=50,
                         clock=lambda: now[0])
    for issue in (1, 2, 3):  # three tasks: the oldest goes
        now[0] += 1
        store.save(_stored(issue=issue, preset="codex"), home, [".codex/sessions"])
    assert [store.load("owner/tasks", n, "codex", "m") is not None for n in (1, 2, 3)] == \
        [False, True, True]
    store.save(_stored(issue=3, preset="claude-code"), home, [".codex/sessions"])
    assert store.load("owner/tasks", 2, "codex", "m") is None, "over max_total: the oldest go"
    assert store.load("owner/tasks", 3, "claude-code", "m") is not None
    store.forget("owner/tasks", 3)  # its pull request closed
    assert store.tasks() == []

    store.save(_stored(issue=4, preset="codex"), home, [".codex/sessions"])
    now[0] += 51
    assert store.load("owner/tasks", 4, "codex", "m") is None, "too old"
    assert len(store.evict()) == 1 and store.tasks() == []
    with pytest.raises(SessionError):
        store.save(_stored(session="--not-an-id"), home, [".codex/sessions"])


def test_a_resumed_round_is_given_the_feedback_since():
    said = "## t1 @o on the pull request\n\nfix the typo\n\n"
    given, digest = SessionStore.given(said)
    stored = Stored("o/r", 1, "codex", "m", "s", "/w", given, digest, 0.0, 0, 0)
    assert stored.new_feedback(said + "## t2 @o\n\nand the test\n\n") == "## t2 @o\n\nand the test\n\n"
    assert stored.new_feedback("## t0 something else") is None
    job = Job(task_id="o/r#1", repo="o/r", issue=1, title="Fix it", body="The whole issue.",
              executor="agent", options={}, code=None, workspace=Path("/w"),
              output_dir=Path("/o"), feedback="", feedback_file=Path("/i/f"), env={},
              read_only=[], timeout=1, repo_instructions="Use tabs.")
    text = resumed_instructions(job, "and the test")
    assert text.startswith("# Fix it\n") and "and the test" in text and "Use tabs." in text
    assert "The whole issue." not in text
    lines = ["↩ resumed session s (codex, this task's last round on this node)",
             "🔧 Edit a.py", "■ done"]
    md = checklist_markdown(lines, final=True)
    assert md.startswith("↩ resumed session s (codex") and "- [x] Edited `a.py`" in md


def test_a_cli_that_wants_more_data_than_the_limit_gives_is_said_so_at_start(caplog):
    """opencode (Bun) runs 3-7 times slower under a 2g per-process data limit, which is what
    task_memory is without a delegated cgroup: the agent says so once, at start, with the
    setting to change; not with a cgroup, nor with enough memory, nor for other CLIs."""
    import logging
    from types import SimpleNamespace

    from bzzz.agent import Agent
    from bzzz.exec.agents import PRESETS
    from bzzz.exec.limits import TaskLimits

    def agent(memory, cgroup=None):
        limits = TaskLimits(memory=memory, pids=256, disk=1 << 30, cgroup=cgroup,
                            cgroup_note="", user=None)
        return SimpleNamespace(sandbox=SimpleNamespace(limits=limits),
                               config=SimpleNamespace(task_memory=f"{memory >> 30}g"))

    floor = PRESETS["opencode"].data_floor
    assert floor == 4 << 30 and PRESETS["claude-code"].data_floor == 0
    with caplog.at_level(logging.WARNING, logger="bzzz.agent"):
        Agent._warn_data_floor(agent(2 << 30), "opencode", floor)
        assert 'set task_memory = "4g"' in caplog.text
        caplog.clear()
        Agent._warn_data_floor(agent(4 << 30), "opencode", floor)
        Agent._warn_data_floor(agent(2 << 30, cgroup=Path("/sys/fs/cgroup/x")), "opencode",
                               floor)
        Agent._warn_data_floor(agent(2 << 30), "claude-code", 0)
        assert caplog.text == ""
