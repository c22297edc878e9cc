"""Aider (PyPI ``aider-chat``, the ``aider`` command) on the gateway's OpenAI-compatible route.

``aider --model openai/<model> --openai-api-base <route> --message-file <instructions>``,
answering yes to everything, committing nothing (the agent commits the checkout's files),
with its chat and input histories in its HOME rather than in the checkout. It has no turn
limit of its own (one message, at most three reflections on edits that did not apply).
The repository's instructions end the message.

It prints text only, and exits 0 whatever happened, so its lines are read for the verdict:
``Applied edit to <file>`` for each edit made; ``litellm.AuthenticationError`` (the key
refused), ``RateLimitError``, ``NotFoundError`` and the other ``litellm.*Error`` lines; ``The
LLM did not conform to the edit format`` and ``Only 3 reflections allowed, stopping.`` for
edits that never applied; ``Tokens: 2.4k sent, 34 received.``
"""

from __future__ import annotations

import re

from .base import (Dialect, Invocation, Setup, Verdict, auth_failure, edit_failures, limit_failure,
                   short)

_ERROR = re.compile(r"litellm\.(\w+Error)|\b(AuthenticationError|PermissionDeniedError|"
                    r"RateLimitError|NotFoundError|APIConnectionError|BadRequestError|"
                    r"ContextWindowExceededError)\b")
_APPLIED = re.compile(r"^Applied edit to (.+)$")
_NO_MATCH = re.compile(r"SearchReplaceNoExactMatch: This SEARCH block failed to exactly match "
                       r"lines in\s*(\S*)")
_TOKENS = re.compile(r"^Tokens: ([\d.]+)(k?) sent, ([\d.]+)(k?) received")
_QUIET = ("WARNING:", "Update git name", "Update git email", "https://aider.chat/",
          "You can skip this check", "Warning for openai/", "defaults.")


class Aider:
    name = "aider"
    executable = "aider"
    dialect: Dialect = "openai"
    data_floor = 0
    leftovers: tuple[str, ...] = (".aider*",)  # .aider.chat.history.md, .aider.input.history, tags cache
    # not resumed: it names no session (its Markdown chat history is not one); each round
    # starts afresh with the feedback
    session_paths: tuple[str, ...] = ()

    def invocation(self, setup: Setup) -> Invocation:
        home = setup.home
        argv = ["--model", f"openai/{setup.model}", "--openai-api-base", setup.base_url,
                "--yes-always", "--no-auto-commits", "--no-dirty-commits", "--no-gitignore",
                "--no-check-update", "--no-analytics", "--no-show-release-notes",
                "--no-pretty", "--no-fancy-input", "--no-detect-urls",
                "--no-show-model-warnings", "--edit-format", "diff",
                "--chat-history-file", str(home / "aider.chat.history.md"),
                "--input-history-file", str(home / "aider.input.history"),
                "--message-file", str(setup.instructions)]
        # the model prices litellm would fetch from the network: its bundled copy
        return Invocation(argv, {"LITELLM_LOCAL_MODEL_COST_MAP": "True",
                                 "AIDER_ANALYTICS": "false"})

    def relocate(self, old_cwd: str, new_cwd: str) -> dict[str, str]:
        return {}

    def parser(self) -> AiderText:
        return AiderText()


class AiderText:
    def __init__(self) -> None:
        self.verdict = Verdict()
        self.no_match = False

    def feed(self, line: str) -> list[str]:
        text = line.rstrip()
        v = self.verdict
        if not text.strip() or text.startswith(_QUIET):
            return []
        if m := _APPLIED.match(text.strip()):
            v.edits += 1
            v.failed_edits.pop(m.group(1), None)
            return [f"✏️ {short(text)}"]
        if m := _NO_MATCH.search(text):
            self.no_match = True
            v.failed_edits[m.group(1) or "?"] = "a SEARCH block did not match the file"
        if "did not conform to the edit format" in text:
            v.failed_edits.setdefault("?", "the model's edits did not conform to the format")
        if text.startswith("Only 3 reflections allowed"):
            v.fail("its edits never applied (three tries)")
        if m := _TOKENS.match(text.strip()):
            v.turns += 1
            v.tokens_in += _count(m.group(1), m.group(2))
            v.tokens_out += _count(m.group(3), m.group(4))
        if m := _ERROR.search(text):
            err = m.group(1) or m.group(2)
            why = (auth_failure(401 if err == "AuthenticationError" else
                                403 if err == "PermissionDeniedError" else None)
                   or limit_failure(429 if err == "RateLimitError" else None, text)
                   or f"the model call failed ({err})")
            v.fail(why, fatal=why.startswith("the model refused"))
        return [short(text)]

    def finish(self) -> Verdict:
        edit_failures(self.verdict)
        return self.verdict


def _count(number: str, k: str) -> int:
    return int(float(number) * (1000 if k else 1))
