"""opencode (npm ``opencode-ai``, the ``opencode`` command) on the gateway's
OpenAI-compatible route, through Chat Completions.

``opencode run --pure --format json --auto -m bzzz/<model>`` with the instructions on
standard input. Its configuration comes whole in ``OPENCODE_CONFIG_CONTENT``: the route as
a provider (``@ai-sdk/openai-compatible``, ``baseURL``, ``apiKey = {env:OPENAI_API_KEY}``:
the task's capability, never written down) and the turn limit (the build agent's
``steps``); what it would fetch on its own (the models list, updates, plugins, language
servers) is switched off. The repository's instructions end the message.

Its ``--format json`` stream: ``step_start``, ``tool_use`` (``part.tool``: read, edit,
write, bash …; ``part.state.status`` completed or error), ``text``, ``step_finish``
(``part.tokens``) and ``error`` (``error.data.statusCode``, ``error.data.message``).
"""

from __future__ import annotations

import json
from typing import Any

from .base import (Dialect, Invocation, Setup, Verdict, auth_failure, edit_failures, json_line,
                   limit_failure, short)

EDIT_TOOLS = frozenset({"edit", "write", "patch", "multiedit"})
QUIET = {"OPENCODE_DISABLE_MODELS_FETCH": "1", "OPENCODE_DISABLE_AUTOUPDATE": "1",
         "OPENCODE_DISABLE_DEFAULT_PLUGINS": "1", "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
         "OPENCODE_DISABLE_SHARE": "1",
         # the plugins it would install with npm at start (the gateway refuses the registry
         # anyway): offline, at once, instead of after npm's retries
         "npm_config_offline": "true", "npm_config_fetch_retries": "0"}


class OpenCode:
    name = "opencode"
    executable = "opencode"
    dialect: Dialect = "openai"
    data_floor = 4 << 30  # 3-7 times slower under 2g (docs/agents.md)
    leftovers: tuple[str, ...] = (".opencode/node_modules", ".opencode/bun.lock", ".opencode/package-lock.json")
    # not resumed: its sessions live in a SQLite database beside a snapshot repository of
    # the checkout (~/.local/share/opencode), each round starts afresh with the feedback
    session_paths: tuple[str, ...] = ()

    def invocation(self, setup: Setup) -> Invocation:
        config = {
            "$schema": "https://opencode.ai/config.json",
            "provider": {"bzzz": {
                "npm": "@ai-sdk/openai-compatible", "name": "the bzzz task gateway",
                "options": {"baseURL": setup.base_url, "apiKey": "{env:OPENAI_API_KEY}"},
                "models": {setup.model: {"name": setup.model, "tool_call": True}}}},
            "model": f"bzzz/{setup.model}",
            "agent": {"build": {"steps": setup.max_turns}},
            "autoupdate": False, "share": "disabled"}
        return Invocation(["run", "--pure", "--format", "json", "--auto",
                           "--title", "bzzz task",  # no model call to make one up
                           "-m", f"bzzz/{setup.model}"],
                          {**QUIET, "OPENCODE_CONFIG_CONTENT": json.dumps(config)},
                          stdin=True)

    def relocate(self, old_cwd: str, new_cwd: str) -> dict[str, str]:
        return {}

    def parser(self) -> OpenCodeStream:
        return OpenCodeStream()


class OpenCodeStream:
    def __init__(self) -> None:
        self.verdict = Verdict()

    def feed(self, line: str) -> list[str]:
        doc = json_line(line)
        if doc is None:
            return [short(line)] if line.strip() else []
        v, kind, part = self.verdict, doc.get("type"), doc.get("part") or {}
        if kind == "step_start":
            v.turns += 1
        elif kind == "tool_use":
            return self._tool(part)
        elif kind == "text":
            v.message = str(part.get("text") or "")
            return [f"💬 {short(v.message)}"] if v.message.strip() else []
        elif kind == "step_finish":
            tokens = part.get("tokens") or {}
            v.tokens_in += int(tokens.get("input") or 0)
            v.tokens_out += int(tokens.get("output") or 0)
        elif kind == "error":
            data = (doc.get("error") or {}).get("data") or {}
            status, text = data.get("statusCode"), str(data.get("message") or doc.get("error"))
            why = auth_failure(status) or limit_failure(status, text) or \
                f"it ended in error ({short(text, 120)})"
            v.fail(why, fatal=why.startswith("the model refused"))
            return [f"✖ {short(text)}"]
        return []

    def _tool(self, part: dict[str, Any]) -> list[str]:
        v = self.verdict
        name, state = str(part.get("tool")), part.get("state") or {}
        args = state.get("input") or {}
        target = str(args.get("filePath") or args.get("command") or args.get("pattern") or "")
        failed = state.get("status") == "error"
        if name in EDIT_TOOLS:
            if failed:
                v.failed_edits[target] = str(state.get("error") or "failed")
            else:
                v.failed_edits.pop(target, None)
                v.edits += 1
        line = f"🔧 {name} {short(target, 120)}".rstrip()
        return [line + (f" ✖ {short(str(state.get('error')), 120)}" if failed else "")]

    def finish(self) -> Verdict:
        edit_failures(self.verdict)
        return self.verdict
