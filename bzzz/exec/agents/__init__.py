"""Coding-agent presets: the CLIs a node runs for issues (``agent = "claude-code"``), each a
small module knowing its CLI (bzzz/exec/agents/base.py says what a preset knows).

:data:`PRESETS` is the table; :func:`resolve` finds, for the configured names, each CLI's
executable (``agent_path``, then ``PATH``) and the model route it talks to (the ``[[llm]]``
endpoint serving ``agent_model`` in the CLI's dialect), and says why a preset cannot run.
A node announces each preset it can run as ``agent:<name>`` (bzzz/agent.py).

OpenHands is not among them: its packages on PyPI (``openhands-ai``) run the agent in a
Docker runtime it starts itself (docs/agents.md).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ...gateway import inside
from .aider import Aider
from .base import Dialect, Preset
from .claude_code import ClaudeCode
from .codex import Codex
from .opencode import OpenCode

__all__ = ["PRESETS", "Installed", "Route", "leftovers_of", "resolve"]

PRESETS: dict[str, Preset] = {p.name: p for p in (ClaudeCode(), Codex(), Aider(), OpenCode())}

# the [[llm]] kinds each dialect's clients can talk to
KINDS: dict[Dialect, tuple[str, ...]] = {"anthropic": ("anthropic",),
                                          "openai": ("openai", "auto", "ollama")}
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/etc")


@dataclass(frozen=True)
class Route:
    """An [[llm]] endpoint as the task gateway names it (bzzz/agent.py model_routes)."""

    name: str
    kind: str
    models: tuple[str, ...]


@dataclass(frozen=True)
class Installed:
    """A preset this node can run: its CLI and its model route."""

    preset: Preset
    executable: Path  # the real file (links resolved)
    install_root: Path | None  # to show read-only in the sandbox (None: under /usr)
    model: str
    route: str  # the gateway's name of the endpoint
    base_url: str  # as the task sees it

    @property
    def name(self) -> str:
        return self.preset.name


def leftovers_of(argv: Sequence[str]) -> tuple[str, ...]:
    """The leftovers of the known CLIs a command runs (an ``agent_command`` of ``aider …``
    leaves Aider's files, which never belong in a pull request either)."""
    names = {Path(word).name for word in argv}
    return tuple(g for p in PRESETS.values() if p.executable in names for g in p.leftovers)


def install_root(real: Path) -> Path | None:
    """What a sandboxed task needs to see to run ``real``: its virtual environment, or the
    npm prefix holding its ``node_modules``, or its directory; None under the system's own
    directories (every sandbox shows those)."""
    if any(str(real).startswith(d + "/") for d in SYSTEM):
        return None
    for parent in real.parents:
        if (parent / "pyvenv.cfg").is_file():
            return parent
        if parent.name == "node_modules":
            return parent.parent
    return real.parent


def find_executable(name: str, search: Sequence[str | os.PathLike[str]]) -> Path | None:
    path = os.pathsep.join([*(str(p) for p in search), os.environ.get("PATH", os.defpath)])
    found = shutil.which(name, path=path)
    return Path(found).resolve() if found else None


def choose_route(dialect: Dialect, model: str, routes: Sequence[Route]) -> Route | None:
    """The endpoint that lists ``model`` in the dialect's kinds, else the first of them."""
    fits = [r for r in routes if r.kind in KINDS[dialect]]
    return next((r for r in fits if model in r.models), fits[0] if fits else None)


def base_url(dialect: Dialect, route: str) -> str:
    root = f"{inside.PROXY}/llm/{route}"
    return root if dialect == "anthropic" else root + "/v1"


def resolve(names: Sequence[str], models: dict[str, str], routes: Sequence[Route],
            search: Sequence[str | os.PathLike[str]] = ()
            ) -> tuple[dict[str, Installed], dict[str, str]]:
    """The presets of ``names`` this node can run, and why each of the others cannot.
    ``models`` maps a preset's name (or "" for all) to its model."""
    ok: dict[str, Installed] = {}
    why: dict[str, str] = {}
    for name in names:
        preset = PRESETS.get(name)
        if preset is None:
            why[name] = f"no such preset (one of {', '.join(PRESETS)})"
            continue
        model = models.get(name) or models.get("", "")
        if not model:
            why[name] = "no model: set agent_model"
            continue
        route = choose_route(preset.dialect, model, routes)
        if route is None:
            why[name] = (f"no [[llm]] endpoint of kind {' or '.join(KINDS[preset.dialect])} "
                         "for it to talk to")
            continue
        exe = find_executable(preset.executable, search)
        if exe is None:
            why[name] = f"`{preset.executable}` is not installed (on agent_path or PATH)"
            continue
        ok[name] = Installed(preset, exe, install_root(exe), model, route.name,
                             base_url(preset.dialect, route.name))
    return ok, why
