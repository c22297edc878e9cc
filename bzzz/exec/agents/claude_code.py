"""Claude Code (npm ``@anthropic-ai/claude-code``, the ``claude`` command) on the gateway's
Anthropic route.

``claude -p --output-format stream-json --verbose --max-turns N --model M`` with the
instructions on standard input; ``--permission-mode bypassPermissions`` (the sandbox is the
boundary: without it no command, tests included, could run unattended) with ``IS_SANDBOX=1``
(so that a task running as root may use it). The repository's instructions go in with
``--append-system-prompt``. ``ANTHROPIC_API_KEY`` comes from the task's gateway route, the
route's URL in ``--settings`` (``env.ANTHROPIC_BASE_URL``).

Its stream (one JSON object a line): ``system``/``init``; ``system``/``api_retry`` with
``error_status`` (a 401 or 403 there is final: it would retry ten times over three minutes);
``assistant`` messages with ``text`` and ``tool_use`` blocks; ``user`` messages with the
``tool_result`` of each call (``is_error`` on a failed Edit, which the final ``result``
still calls a ``success``); and the ``result`` (``subtype``: ``success``,
``error_max_turns``, ``error_during_execution``; ``is_error``, ``api_error_status``,
``num_turns``, ``usage``, ``result``: the last message). ``init`` and ``result`` carry the
``session_id``.

A review round on this node resumes the session: ``--resume <id>``, its transcript
(``~/.claude/projects/<the checkout's path, each character not a letter or digit made
"-">/<id>.jsonl``) restored from the last round and moved under the new checkout's name
(:meth:`ClaudeCode.relocate`; a name over 200 characters gets a hash Claude Code computes
with Bun's, so it stays where it was: this version finds a session by its id in any
project). A session it does not know: ``No conversation found with session ID: <id>`` on
standard error, and an ``error_during_execution`` result.
"""

from __future__ import annotations

import json
from typing import Any

from .base import (Dialect, Invocation, Setup, Verdict, auth_failure, edit_failures, json_line,
                   limit_failure, short, unknown_session)

EDIT_TOOLS = frozenset({"Edit", "MultiEdit", "Write", "NotebookEdit"})
MAX_PROMPT_ARG = 100_000  # characters of the repository's instructions
PROJECTS = ".claude/projects"
MAX_PROJECT_NAME = 200  # longer names get Claude Code's hash of the path
UNKNOWN_SESSION = "No conversation found with session ID"


def project_name(cwd: str) -> str:
    """Claude Code's directory name for the sessions of a checkout."""
    return "".join(c if c.isascii() and c.isalnum() else "-" for c in cwd)


class ClaudeCode:
    name = "claude-code"
    executable = "claude"
    dialect: Dialect = "anthropic"
    data_floor = 0
    # what it writes beside a project (its HOME is elsewhere, so these are only in case)
    leftovers: tuple[str, ...] = (".claude.json", ".claude.json.*", ".claude/settings.local.json",
                 ".claude/projects", ".claude/backups", ".claude/todos",
                 ".claude/shell-snapshots", ".claude/statsig", ".claude/sessions",
                 ".claude/plugins")
    session_paths: tuple[str, ...] = (PROJECTS,)

    def invocation(self, setup: Setup) -> Invocation:
        # the route in its settings too: they win over the task's ANTHROPIC_BASE_URL, which
        # names the node's first Anthropic endpoint, not necessarily the one of this model
        argv = ["-p", "--output-format", "stream-json", "--verbose",
                "--permission-mode", "bypassPermissions",
                "--max-turns", str(setup.max_turns), "--model", setup.model,
                "--settings", json.dumps({"env": {"ANTHROPIC_BASE_URL": setup.base_url}})]
        if setup.resume:
            argv += ["--resume", setup.resume]
        given = bool(setup.repo_instructions.strip())
        if given:  # one argument: at most 128 KiB (Linux)
            argv += ["--append-system-prompt", setup.repo_instructions[:MAX_PROMPT_ARG]]
        return Invocation(argv, {
            "ANTHROPIC_BASE_URL": setup.base_url, "IS_SANDBOX": "1",
            "DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1",
            "DISABLE_ERROR_REPORTING": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"},
            stdin=True, repo_instructions_given=given)

    def parser(self) -> ClaudeStream:
        return ClaudeStream()

    def relocate(self, old_cwd: str, new_cwd: str) -> dict[str, str]:
        old, new = project_name(old_cwd), project_name(new_cwd)
        if old == new or max(len(old), len(new)) > MAX_PROJECT_NAME:
            return {}
        return {f"{PROJECTS}/{old}": f"{PROJECTS}/{new}"}


class ClaudeStream:
    def __init__(self) -> None:
        self.verdict = Verdict()
        self.calls: dict[str, tuple[str, dict[str, Any]]] = {}  # tool_use id -> (name, input)

    def feed(self, line: str) -> list[str]:
        doc = json_line(line)
        if doc is None:
            unknown_session(self.verdict, line, UNKNOWN_SESSION)
            return [short(line)] if line.strip() else []
        if isinstance(doc.get("session_id"), str) and doc.get("type") in ("system", "result"):
            self.verdict.session = doc["session_id"]
        kind = doc.get("type")
        if kind == "system":
            return self._system(doc)
        if kind == "assistant":
            return self._assistant(doc.get("message") or {})
        if kind == "user":
            return self._results(doc.get("message") or {})
        if kind == "result":
            return self._result(doc)
        return []

    def _system(self, doc: dict[str, Any]) -> list[str]:
        if doc.get("subtype") == "init":
            return [f"▶ Claude Code started (model {doc.get('model')})"]
        if doc.get("subtype") == "api_retry":
            status = doc.get("error_status")
            why = auth_failure(status)
            if why:
                self.verdict.fail(why, fatal=True)
                return [f"✖ {why}"]
            return [f"… the model answered {status} ({doc.get('error')}); retrying"]
        return []

    def _assistant(self, msg: dict[str, Any]) -> list[str]:
        out = []
        for block in msg.get("content") or []:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text" and str(block.get("text", "")).strip():
                self.verdict.message = str(block["text"])
                out.append(f"💬 {short(block['text'])}")
            elif block.get("type") == "tool_use":
                name, args = str(block.get("name")), block.get("input") or {}
                self.calls[str(block.get("id"))] = (name, args if isinstance(args, dict) else {})
                out.append(f"🔧 {name} {short(_target(args), 120)}".rstrip())
        return out

    def _results(self, msg: dict[str, Any]) -> list[str]:
        out = []
        content = msg.get("content")
        for block in content if isinstance(content, list) else []:
            if not isinstance(block, dict) or block.get("type") != "tool_result":
                continue
            name, args = self.calls.get(str(block.get("tool_use_id")), ("?", {}))
            text = _text(block.get("content"))
            if name in EDIT_TOOLS:
                path = str(args.get("file_path") or args.get("notebook_path") or "?")
                if block.get("is_error"):
                    self.verdict.failed_edits[path] = text
                else:
                    self.verdict.failed_edits.pop(path, None)
                    self.verdict.edits += 1
            if block.get("is_error"):
                out.append(f"  ✖ {name}: {short(text, 140)}")
        return out

    def _result(self, doc: dict[str, Any]) -> list[str]:
        v = self.verdict
        v.turns = int(doc.get("num_turns") or 0)
        usage = doc.get("usage") or {}
        v.tokens_in = int(usage.get("input_tokens") or 0)
        v.tokens_out = int(usage.get("output_tokens") or 0)
        text = str(doc.get("result") or "")
        if text.strip():
            v.message = text
        subtype = doc.get("subtype")
        if subtype == "error_max_turns":
            v.fail(f"it reached its turn limit ({v.turns} turns)")
        elif doc.get("is_error") or (subtype and subtype != "success"):
            status = doc.get("api_error_status")
            v.fail(auth_failure(status) or limit_failure(status, text)
                   or f"it ended in error ({short(text or str(subtype), 120)})")
        return [f"■ {short(text or str(subtype))}"]

    def finish(self) -> Verdict:
        edit_failures(self.verdict)
        return self.verdict


def _target(args: Any) -> str:
    if not isinstance(args, dict):
        return ""
    for key in ("file_path", "notebook_path", "command", "pattern", "path", "url",
                "description"):
        if args.get(key):
            return str(args[key])
    return ""


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(c.get("text", "")) for c in content if isinstance(c, dict))
    return ""
