"""A new task issue from a form or a request (a core, no I/O): validated fields → the
``POST /repos/{owner}/{name}/issues`` payload, labelled the way agents read it."""

from __future__ import annotations

from ..errors import InputError
import re
from typing import Any

from .task import PRIORITIES

MAX_TITLE = 256
MAX_INSTRUCTIONS = 64 * 1024
_CAPABILITY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:._/-]{0,63}$")


class TaskRequestError(InputError, ValueError):
    """A bad field, named: ``field`` is what the caller got wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def task_labels(priority: str = "normal", needs: list[str] | tuple[str, ...] = ()) -> list[str]:
    labels = ["bzzz"]
    if priority != "normal":
        labels.append(f"priority:{priority}")
    return labels + [f"needs:{c}" for c in needs]


def task_body(instructions: str = "", command: str | None = None) -> str:
    body = instructions.strip()
    if command:
        body = (body + "\n\n" if body else "") + f"```bzzz\n{command.strip()}\n```\n"
    return body


def issue_request(doc: Any, repos: list[str] | None = None) -> tuple[str, dict[str, Any]]:
    """(repo, payload) for ``doc`` = {"repo", "title", "instructions"?, "command"?,
    "priority"?, "needs"?}; ``repos``, when given, are the only repositories allowed."""
    if not isinstance(doc, dict):
        raise TaskRequestError("body", "must be a JSON object")
    repo = doc.get("repo")
    if not repo and repos and len(repos) == 1:
        repo = repos[0]
    if not isinstance(repo, str) or repo.count("/") != 1 or not all(repo.split("/")):
        raise TaskRequestError("repo", "must be owner/name")
    if repos and repo.lower() not in {r.lower() for r in repos}:
        raise TaskRequestError("repo", f"not one of this mesh's repositories ({', '.join(repos)})")
    title = doc.get("title")
    if not isinstance(title, str) or not title.strip():
        raise TaskRequestError("title", "is required")
    if len(title) > MAX_TITLE or not title.isprintable():
        raise TaskRequestError("title", f"must be printable and at most {MAX_TITLE} characters")
    instructions = doc.get("instructions", "") or ""
    command = doc.get("command") or None
    if not isinstance(instructions, str) or len(instructions) > MAX_INSTRUCTIONS:
        raise TaskRequestError("instructions", f"must be text of at most {MAX_INSTRUCTIONS} bytes")
    if command is not None and (not isinstance(command, str) or len(command) > 16 * 1024):
        raise TaskRequestError("command", "must be text of at most 16 KiB")
    if not instructions.strip() and not command:
        raise TaskRequestError("instructions", "give instructions or a command")
    priority = doc.get("priority", "normal") or "normal"
    if priority not in PRIORITIES:
        raise TaskRequestError("priority", f"must be one of {', '.join(PRIORITIES)}")
    needs = doc.get("needs") or []
    if isinstance(needs, str):
        needs = [n.strip() for n in needs.split(",") if n.strip()]
    if not isinstance(needs, list) or len(needs) > 16 or not all(
            isinstance(n, str) and _CAPABILITY.match(n) for n in needs):
        raise TaskRequestError("needs", "must be a list of up to 16 capability names")
    return repo, {"title": title.strip(), "body": task_body(instructions, command),
                  "labels": task_labels(priority, needs)}
