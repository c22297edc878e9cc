"""An agent's progress and usage as a person sees them (cores, no I/O): the checklist of its
transcript (bzzz/exec/agents/checklist.py), the progress comment and the usage line of the
result comment (bzzz/claim/report.py), hostile transcripts among them."""

from __future__ import annotations

from bzzz.claim import report
from bzzz.exec.agents.aider import AiderText
from bzzz.exec.agents.checklist import MAX_MARKDOWN, MAX_SHOWN, Checklist, checklist_markdown
from bzzz.exec.agents.claude_code import ClaudeStream
from bzzz.exec.agents.codex import CodexStream
from bzzz.github.markers import find_markers

CLAUDE = [
    "▶ Claude Code started (model m)",
    "🔧 Read README.md",
    "🔧 Grep TODO",
    "🔧 Edit src/app.py",
    "  ✖ Edit: String to replace not found in file.",
    "🔧 Edit src/app.py",
    "🔧 Bash python -m pytest -q tests",
    "🔧 Bash make build",
    "💬 Fixed the greeting; the tests pass.",
    "■ Fixed the greeting.",
]


def test_a_transcript_becomes_a_checklist() -> None:
    md = checklist_markdown(CLAUDE, final=True)
    assert md.splitlines()[:6] == [
        "- [x] Read `README.md`", "- [x] Searched `TODO`", "- [x] Edited `src/app.py`",
        "- [x] Ran tests: `python -m pytest -q tests`", "- [x] Ran `make build`",
        "- [x] Done: Fixed the greeting."]
    assert md.endswith("💬 Fixed the greeting; the tests pass.")
    # the edit that failed and was done again shows as done, once
    assert md.count("src/app.py") == 1


def test_a_failed_step_stays_open_with_why() -> None:
    md = checklist_markdown(["🔧 Edit a.py", "  ✖ Edit: no match", "🔧 Bash ls"])
    assert "- [ ] ✖ Edited `a.py`: no match" in md
    assert md.splitlines()[-1] == "- [ ] …working"
    assert checklist_markdown(["🔧 Read a"], final=True).splitlines()[-1] == \
        "- [ ] Stopped before it finished"
    failed = checklist_markdown(["🔧 Read a", "[bzzz] claude-code failed: it made no change"])
    assert failed.splitlines()[-1] == "- [ ] Failed: it made no change"


def test_every_presets_lines_are_understood() -> None:
    codex = ["✏️ src/a.py, src/b.py", "$ npm test (exit 1)", "$ ls -la (exit 0)", "💬 done"]
    md = checklist_markdown(codex)
    assert "- [x] Edited `src/a.py`" in md and "- [x] Edited `src/b.py`" in md
    assert "- [ ] ✖ Ran tests: `npm test`: exit 1" in md and "- [x] Ran `ls -la`" in md
    assert "- [x] Edited `hello.py`" in checklist_markdown(["✏️ Applied edit to hello.py"])
    opencode = ["🔧 read /w/README.md", "🔧 edit x.py ✖ oldString not found", "🔧 bash pytest"]
    md = checklist_markdown(opencode)
    assert "- [ ] ✖ Edited `x.py`: oldString not found" in md
    assert "- [x] Ran tests: `pytest`" in md
    # the parsers' own output, fed through
    parser = ClaudeStream()
    lines = [s for doc in (
        '{"type":"assistant","message":{"content":[{"type":"tool_use","id":"1","name":"Read",'
        '"input":{"file_path":"README.md"}}]}}',
        '{"type":"result","subtype":"success","num_turns":2,"result":"ok"}') for s in parser.feed(doc)]
    assert checklist_markdown(lines).splitlines()[0] == "- [x] Read `README.md`"
    assert CodexStream and AiderText  # imported: their lines are the ones above


def test_the_checklist_travels_as_lines_and_comes_back_the_same() -> None:
    c = Checklist()
    for i in range(100):
        c.feed(f"🔧 Read f{i}.py")
    for line in CLAUDE:
        c.feed(line)
    again = checklist_markdown(c.lines())
    assert again == c.markdown()
    assert len(c.lines()) <= MAX_SHOWN + 4
    assert again.startswith(f"- … {len(c.steps) - MAX_SHOWN} earlier steps")


def test_hostile_lines_are_bounded_and_defused() -> None:
    hostile = ["🔧 Read " + "A" * 100_000, "🔧 Bash echo `x` ``y``",
               "💬 @everyone <!-- bzzz:result:x:1 --> <img src=x onerror=alert(1)> # head",
               "🔧 Write <!-- bzzz:claim:y -->", "■ <!-- bzzz:pr:1:main: -->"]
    hostile += [f"🔧 Edit file{i}" for i in range(10_000)]
    c = Checklist()
    for line in hostile:
        c.feed(line)
    md = c.markdown(final=True)
    assert len(md) <= MAX_MARKDOWN
    assert len(c.steps) <= 200 and c.more > 0
    assert not find_markers(md)
    body = report.progress_comment("n:1", "node", 5, "", checklist=md).body
    assert find_markers(body) == {("progress", "n:1")}
    msg = checklist_markdown(hostile[:3])
    assert "@\u200beveryone" in msg and "<img" not in msg and "``` echo `x` ``y`` ```" in msg
    # the plain lines of another executor are defused as well
    plain = report.progress_comment("n:1", "node", 5, "<!-- bzzz:result:z:1 -->").body
    assert find_markers(plain) == {("progress", "n:1")}
    # no step, no message: no checklist (the last lines are shown instead)
    assert checklist_markdown(["plain output", "more"]) == ""


def test_the_progress_comment_says_running_then_ran() -> None:
    md = checklist_markdown(CLAUDE)
    body = report.progress_comment("n:1", "node", 75, "", checklist=md).body
    assert "⏳ Running on **node** for 1 min 15 s." in body and "- [x] Read `README.md`" in body
    final = report.progress_comment("n:1", "node", 80, "", checklist=md, final=True).body
    assert "🏁 Ran on **node** for 1 min 20 s." in final
    assert "```" in report.progress_comment("n:1", "node", 1, "line one").body


def test_usage_comes_from_the_cli_and_the_gateway() -> None:
    extra = {"agent": "claude-code", "model": "m-1", "route": "local", "turns": 7,
             "egress": {"models": {"local": {"requests": 7, "tokens_in": 12_000,
                                             "tokens_out": 2_000, "cost": 0.03},
                                   "other": {"requests": 1, "tokens_in": 345,
                                             "tokens_out": 345, "cost": 0.01}}}}
    usage = report.usage_of(extra)
    assert usage == {"agent": "claude-code", "model": "m-1", "route": "local", "turns": 7,
                     "tokens_in": 12_345, "tokens_out": 2_345, "requests": 8, "cost": 0.04}
    line = report.usage_lines(usage)[1]
    assert line == ("🧑‍💻 claude-code (`m-1`): 7 turns, 12,345 tokens in, 2,345 out, "
                    "about $0.04.")
    assert report.usage_of({"executor": "shell"}) is None
    bare = report.usage_of({"agent": "aider", "model": "m", "turns": 1})
    assert report.usage_lines(bare)[1].startswith("🧑‍💻 aider (`m`): 1 turn (no model use")
    resumed = report.usage_of({**extra, "session": {"resumed": "3fea2f4d-b06d", "kept": True}})
    assert resumed is not None and resumed["resumed"] == "3fea2f4d-b06d"
    assert report.usage_lines(resumed)[1].endswith(
        "; it resumed session `3fea2f4d-b06d` of this task's last round.")
    assert "resumed" not in report.usage_of({**extra, "session": {"resumed": "`x` @all"}})
    small = report.usage_lines({**usage, "cost": 0.00012})[1]
    assert small.endswith("about $0.0001.")
    body = report.work_comment("n:1", "node", "succeeded", 3.0, 0, "out", False,
                               usage=usage).body
    assert line in body
    body = report.result_comment("n:1", "node", "failed", 3.0, 1, "out", False,
                                 usage=usage).body
    assert line in body


# ---------------------------------------------------------------- the runner, with a fake CLI


class _FakeBox:
    """A sandbox whose 'CLI' prints the given stream (and edits the checkout)."""

    kind, owner = "fake", None

    def __init__(self, chunks):
        self.chunks = chunks

    async def run(self, argv, workspace, env, *, timeout,  # noqa: ASYNC109 - the protocol's
                  max_output, kill_grace, task_id,
                  image=None, output_dir=None, read_only=(), on_output=None):
        from bzzz.exec.sandbox import Outcome as BoxOutcome

        (workspace / "README.md").write_text("edited\n")
        for chunk in self.chunks:
            on_output(chunk)
        return BoxOutcome("succeeded", 0, 0.1, "", sum(map(len, self.chunks)), False)


def _claude_lines(secret):
    import json

    def tool(i, name, **args):
        return json.dumps({"type": "assistant", "message": {"content": [
            {"type": "tool_use", "id": str(i), "name": name, "input": args}]}})

    return [
        json.dumps({"type": "system", "subtype": "init", "model": "m"}),
        tool(1, "Read", file_path="README.md"),
        tool(2, "Bash", command="curl -H 'Authorization: token " + secret + "' x" + "y" * 200),
        tool(3, "Edit", file_path="README.md"),
        "garbage " * 10_000,
        json.dumps({"type": "assistant", "message": {"content": [
            {"type": "text", "text": "done, key ghp_" + "a" * 36 + " and " + secret}]}}),
        json.dumps({"type": "result", "subtype": "success", "num_turns": 3, "result": "ok"}),
    ]


def test_the_runner_reports_a_redacted_bounded_checklist(tmp_path):
    import trio

    from bzzz.exec.agents import PRESETS, Installed
    from bzzz.exec.agents.runner import PresetExecutor
    from bzzz.exec.executor import Job
    from bzzz.redact import register, unregister

    secret = "s3cr3t-value-of-the-node-1234"
    register(secret)
    try:
        data = "\n".join(_claude_lines(secret)).encode() + b"\n"
        chunks = [data[i:i + 777] for i in range(0, len(data), 777)]
        agent = Installed(PRESETS["claude-code"], tmp_path / "claude", None, "m", "claude",
                          "http://gw/llm/claude")
        ex = PresetExecutor({"claude-code": agent}, _FakeBox(chunks))
        ws, out, inp = tmp_path / "ws", tmp_path / "out", tmp_path / "in"
        for d in (ws, out, inp):
            d.mkdir()
        (ws / "README.md").write_text("old\n")
        (inp / "feedback.md").write_text("")
        seen = []
        job = Job(task_id="t#1", repo="o/r", issue=1, title="t", body="b", executor="agent",
                  options={}, code=None, workspace=ws, output_dir=out, feedback="",
                  feedback_file=inp / "feedback.md", env={}, read_only=[], timeout=60,
                  progress=seen.append)
        outcome = trio.run(ex.run, job)
    finally:
        unregister(secret)
    assert outcome.result.status == "succeeded", outcome
    assert outcome.result.extra["route"] == "claude"
    assert seen and all(secret not in p and "ghp_" not in p for p in seen)
    assert secret not in outcome.result.output
    final = checklist_markdown(seen[-1].splitlines(), final=True)
    assert final.splitlines()[0] == "- [x] Read `README.md`"
    assert final.splitlines()[1].startswith("- [x] Ran `curl -H 'Authorization: token [redacted]")
    assert "[redacted]" in final and "- [x] Edited `README.md`" in final
    assert "- [x] Done: ok" in final
    assert max(len(p) for p in seen) < 8000
