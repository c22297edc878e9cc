"""What the repository's base branch says about one task: its instructions for coding
agents, its setup, and its ``.bzzz.toml`` (one reader for all three).

Read from the base branch's commit in the node's mirror (bzzz/repo/basefiles.py), never from
the checkout: in a review round the checkout is the pull request's head, and a change there
to ``AGENTS.md``, a setup script or ``.bzzz.toml`` must not reach that pull request's own
round. Which instructions apply depends on the paths the task is likely to touch: those the
issue, its feedback and ``files=`` name, and in a review round those the pull request
changed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..gateway.allow import REPO_FILE_MAX
from ..repo.basefiles import BaseTree
from ..repo.git import Git, GitError
from ..repo.instructions import INSTRUCTIONS_DIR, MAX_TOUCHED, candidates, gather, mentioned_paths
from ..repo.setupfiles import (MAX_SETUP_FILE, REPO_SETTINGS, SETUP_SOURCES, RepoSettings,
                               SetupPlan, Step, cache_key, is_lockfile, parse_settings, plan)
from ..repo.workspace import Checkout, changed_files

log = logging.getLogger("bzzz.claim")

CHECK_SH = ".bzzz/test.sh"  # the repository's own check (bzzz/claim/selfcheck.py)

__all__ = ["RepoFiles", "read_repo_files", "touched_paths"]


@dataclass
class RepoFiles:
    base: str = ""  # the base branch
    commit: str = ""  # its commit, as the mirror has it
    instructions: str = ""  # rendered (bzzz/repo/instructions.py), "" when there are none
    settings_text: str | None = None  # .bzzz.toml, for the gateway's [task] egress
    settings: RepoSettings = field(default_factory=RepoSettings)
    setup: SetupPlan = field(default_factory=SetupPlan)
    setup_key: str = ""  # the setup cache's key ("" without setup)
    sources: list[str] = field(default_factory=list)  # the instruction files used
    check: Step | None = None  # the repository's own check (.bzzz/test.sh, or test = "…")


def touched_paths(texts: Sequence[str], files_option: str = "",
                  changed: Sequence[str] = ()) -> list[str]:
    """The paths a task is likely to touch: changed in its pull request, named by
    ``files=``, mentioned in the issue and its feedback (at most MAX_TOUCHED)."""
    out = list(dict.fromkeys(changed))[:MAX_TOUCHED // 2]
    for name in mentioned_paths(files_option.replace(",", " ")):
        if name not in out:
            out.append(name)
    for text in texts:
        for name in mentioned_paths(text):
            if name not in out:
                out.append(name)
    return out[:MAX_TOUCHED]


async def read_repo_files(git: Git, co: Checkout, base: str, base_commit: str,
                          texts: Sequence[str], *, files_option: str = "",
                          sandbox: str = "none") -> RepoFiles:
    """The base branch's word on this task; a git failure leaves out what it concerns (the
    task still runs, as it did before these files were read)."""
    changed: list[str] = []
    if co.start != base_commit:
        try:
            changed = (await changed_files(git, co.mirror, base_commit, co.start))[:MAX_TOUCHED]
        except GitError as exc:
            log.info("the pull request's changes are not known", extra={"error": str(exc)})
    touched = touched_paths(texts, files_option, changed)
    tree = BaseTree(git, co.mirror, base_commit)
    out = RepoFiles(base, base_commit)
    try:
        listing = await tree.fetch([*candidates(touched), REPO_SETTINGS, *SETUP_SOURCES,
                                    CHECK_SH], recursive=[INSTRUCTIONS_DIR])
    except GitError as exc:
        log.warning("the repository's own files are not read", extra={"error": str(exc)})
        return out
    found = gather(listing, tree.read, touched)
    out.instructions = found.render(f"`{base}` at {base_commit[:10]}")
    out.sources = [s.path for s in found.sources]
    out.settings_text = tree.text(REPO_SETTINGS, REPO_FILE_MAX)
    out.settings = parse_settings(out.settings_text)
    script = tree.text(CHECK_SH, MAX_SETUP_FILE)
    if script is not None and script.strip():
        out.check = Step("test.sh", CHECK_SH, script)
    elif out.settings.test:
        out.check = Step("test", f"{REPO_SETTINGS} test", out.settings.test)
    sources = {s: tree.text(s, MAX_SETUP_FILE) for s in SETUP_SOURCES if s in tree.entries}
    out.setup = plan(sources)
    if out.setup.empty:
        return out
    try:  # the lockfiles of the checkout's own commit (a workspace's packages too)
        locks = await BaseTree(git, co.mirror, co.start).find(is_lockfile)
    except GitError as exc:
        log.info("no lockfiles known", extra={"error": str(exc)})
        locks = {}
    out.setup_key = cache_key(co.repo, sandbox, out.setup, sources, locks)
    return out
