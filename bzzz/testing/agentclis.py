"""Where the tests find the coding-agent CLIs that ``.ci/agent-clis.sh`` installs (the same
cache directory it chooses), for ``agent_path``."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cli_bin", "cli_path"]


def cli_bin() -> Path:
    """The cache's bin directory (a link per CLI)."""
    if os.environ.get("BZZZ_CLI_CACHE"):
        return Path(os.environ["BZZZ_CLI_CACHE"]) / "bin"
    if os.geteuid() == 0:
        return Path("/var/cache/bzzz/agent-clis/bin")
    return Path.home() / ".cache" / "bzzz" / "agent-clis" / "bin"


def cli_path(name: str) -> Path | None:
    """The installed CLI ``name`` (claude, codex, opencode, aider), or None."""
    path = cli_bin() / name
    return path if path.exists() and os.access(path, os.X_OK) else None
