"""Codex (npm ``@openai/codex``, the ``codex`` command) on the gateway's OpenAI-compatible
route, through the Responses API.

``codex exec --json -m <model> -`` with the instructions on standard input, its own sandbox
and approvals off (``--dangerously-bypass-approvals-and-sandbox``: Bzzz's sandbox is the
boundary, and Codex's own needs namespaces a sandboxed task does not get). Its HOME and
``CODEX_HOME`` are the task's own; ``CODEX_HOME/config.toml`` names the route as a model
provider (``base_url``, ``env_key = "OPENAI_API_KEY"``: the task's capability, never
written down) with one retry. It has no turn limit of its own: the gateway's budget is the
limit. The repository's instructions end the message (it also reads AGENTS.md itself).

Its ``--json`` stream: ``thread.started``, ``turn.started``, ``item.started``/``completed``
(``agent_message``, ``file_change`` with ``status`` completed or failed,
``command_execution`` with ``exit_code``, ``error``), ``error`` (``Reconnecting... 1/5
(unexpected status 401 Unauthorized ...)``), ``turn.failed`` and ``turn.completed`` with
``usage``. ``thread.started`` names the session (``thread_id``).

A review round on this node resumes it: ``codex exec resume <id> -``, its rollout
(``$CODEX_HOME/sessions/YYYY/MM/DD/rollout-…-<id>.jsonl``) restored from the last round. A
session it does not know: ``no rollout found for thread id <id>`` on standard error.
"""

from __future__ import annotations

import json
from typing import Any

from .base import (Dialect, Invocation, Setup, Verdict, auth_failure, edit_failures, json_line,
                   limit_failure, short, unknown_session)


UNKNOWN_SESSION = "no rollout found for thread id"


def _toml(text: str) -> str:
    return json.dumps(text)  # a JSON string is a TOML basic string


class Codex:
    name = "codex"
    executable = "codex"
    dialect: Dialect = "openai"
    data_floor = 0
    leftovers: tuple[str, ...] = (".codex",)
    session_paths: tuple[str, ...] = (".codex/sessions",)

    def invocation(self, setup: Setup) -> Invocation:
        config = "\n".join([
            f"model = {_toml(setup.model)}", 'model_provider = "bzzz"',
            'approval_policy = "never"', 'sandbox_mode = "danger-full-access"',
            "[model_providers.bzzz]", 'name = "the bzzz task gateway"',
            f"base_url = {_toml(setup.base_url)}", 'env_key = "OPENAI_API_KEY"',
            'wire_api = "responses"', "request_max_retries = 1", "stream_max_retries = 1",
            ""])
        flags = ["--json", "--dangerously-bypass-approvals-and-sandbox",
                 "--skip-git-repo-check", "-m", setup.model]
        argv = ["exec", "--color", "never", *(
            ["resume", *flags, setup.resume] if setup.resume else flags), "-"]
        return Invocation(
            argv,
            {"CODEX_HOME": str(setup.home / ".codex")}, stdin=True,
            files={".codex/config.toml": config})

    def parser(self) -> CodexStream:
        return CodexStream()

    def relocate(self, old_cwd: str, new_cwd: str) -> dict[str, str]:
        return {}  # its sessions are filed by date, not by checkout


class CodexStream:
    def __init__(self) -> None:
        self.verdict = Verdict()

    def feed(self, line: str) -> list[str]:
        doc = json_line(line)
        if doc is None:
            unknown_session(self.verdict, line, UNKNOWN_SESSION)
            if "apply_patch verification failed" in line:  # its log, on standard error
                err = line.split("apply_patch verification failed", 1)[1].lstrip(": ")
                self.verdict.failed_edits["(a patch)"] = err or "verification failed"
            return [short(line)] if line.strip() and "WARN" not in line else []
        v, kind = self.verdict, doc.get("type")
        if kind == "thread.started" and isinstance(doc.get("thread_id"), str):
            v.session = doc["thread_id"]
        elif kind == "turn.started":
            v.turns += 1
        elif kind == "item.completed":
            return self._item(doc.get("item") or {})
        elif kind == "error":
            text = str(doc.get("message") or "")
            if why := auth_failure(None, text):
                v.fail(why, fatal=True)
            return [f"… {short(text)}"]
        elif kind == "turn.failed":
            text = str((doc.get("error") or {}).get("message") or "the turn failed")
            v.fail(auth_failure(None, text) or limit_failure(None, text)
                   or f"it ended in error ({short(text, 120)})")
            return [f"✖ {short(text)}"]
        elif kind == "turn.completed":
            usage = doc.get("usage") or {}
            v.tokens_in += int(usage.get("input_tokens") or 0)
            v.tokens_out += int(usage.get("output_tokens") or 0)
        return []

    def _item(self, item: dict[str, Any]) -> list[str]:
        v, kind = self.verdict, item.get("type")
        if kind == "agent_message":
            v.message = str(item.get("text") or "")
            return [f"💬 {short(v.message)}"]
        if kind == "file_change":
            paths = [str(c.get("path")) for c in item.get("changes") or [] if isinstance(c, dict)]
            ok = item.get("status") == "completed"
            for p in paths:
                if ok:
                    v.failed_edits.pop(p, None)
                else:
                    v.failed_edits[p] = f"the patch {item.get('status')}"
            v.edits += len(paths) if ok else 0
            return [f"{'✏️' if ok else '✖'} {', '.join(short(p, 80) for p in paths)}"]
        if kind == "command_execution":
            return [f"$ {short(str(item.get('command')), 120)} (exit {item.get('exit_code')})"]
        if kind == "error":
            return [f"… {short(str(item.get('message')))}"]
        return []

    def finish(self) -> Verdict:
        edit_failures(self.verdict)
        return self.verdict
