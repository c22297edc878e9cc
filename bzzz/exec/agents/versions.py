"""What a node says of its coding-agent presets (``bzzz status``, the status API, the
capability announcement): each preset's CLI, the version it reports, its model and the
model route it talks to.

The version is the first line of ``<cli> --version``, run once when the node starts, in a
worker thread, with a time limit and its output cut short (a CLI that hangs or prints a
novel shows as ``unknown``). It runs with a HOME of its own, emptied afterwards, so that no
CLI writes its first-run files into the node's HOME.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import trio

from . import Installed

__all__ = ["UNKNOWN", "announced", "cli_version", "describe", "probe"]

UNKNOWN = "unknown"
TIMEOUT = 20.0  # seconds: an npm CLI starting on a busy machine takes a few
MAX_VERSION = 64
MAX_ANNOUNCED = 120  # characters of one preset in the announcement (the envelope takes 512)


def first_line(output: bytes) -> str:
    """The version a CLI printed: its first non-empty line, printable and short."""
    for raw in output.decode("utf-8", "replace").splitlines():
        line = "".join(ch for ch in raw if ch.isprintable()).strip()
        if line:
            return line if len(line) <= MAX_VERSION else line[:MAX_VERSION - 1] + "…"
    return UNKNOWN


def cli_version(executable: Path, timeout: float = TIMEOUT) -> str:
    """``<cli> --version``'s first line (blocking: call it in a thread), else UNKNOWN."""
    with tempfile.TemporaryDirectory(prefix="bzzz-version-") as home:
        env = {"HOME": home, "PATH": os.pathsep.join([str(executable.parent), "/usr/bin",
                                                       "/bin"]),
               "LANG": "C.UTF-8", "NO_COLOR": "1", "DISABLE_AUTOUPDATER": "1",
               "DISABLE_TELEMETRY": "1", "AIDER_CHECK_UPDATE": "false",
               "AIDER_ANALYTICS": "false"}
        try:
            done = subprocess.run([str(executable), "--version"], env=env, cwd=home,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, timeout=timeout, check=False)
        except (OSError, subprocess.SubprocessError):
            return UNKNOWN
    return first_line(done.stdout[:4096]) if done.returncode == 0 else UNKNOWN


async def probe(presets: Mapping[str, Installed], limit: float = TIMEOUT) -> dict[str, str]:
    """Every preset's CLI version, asked at once (one worker thread each)."""
    found: dict[str, str] = {}

    async def one(name: str, exe: Path) -> None:
        # a node stopping meanwhile leaves the thread (its process ends within ``limit``);
        # the ignore: trio-typing's stale stubs, as in bzzz/exec/guardian/__init__.py
        found[name] = await trio.to_thread.run_sync(  # type: ignore[call-arg]
            cli_version, exe, limit, abandon_on_cancel=True)

    async with trio.open_nursery() as nursery:
        for name, agent in presets.items():
            nursery.start_soon(one, name, agent.executable)
    return found


def describe(presets: Mapping[str, Installed], versions: Mapping[str, str],
             problems: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Each configured preset for the status document: those that run, then why the others
    do not (a version not yet known is None)."""
    out: list[dict[str, Any]] = [
        {"preset": name, "cli": str(a.executable), "version": versions.get(name),
         "model": a.model, "route": a.route} for name, a in presets.items()]
    out += [{"preset": name, "error": why} for name, why in (problems or {}).items()]
    return out


def announced(presets: Mapping[str, Installed], versions: Mapping[str, str]) -> list[str]:
    """One short line a preset, as the capability announcement carries them:
    ``claude-code 2.0.14 · model scripted via claude``."""
    out = []
    for name, a in presets.items():
        line = f"{name} {versions.get(name) or UNKNOWN} · model {a.model} via {a.route}"
        out.append(line if len(line) <= MAX_ANNOUNCED else line[:MAX_ANNOUNCED - 1] + "…")
    return out
