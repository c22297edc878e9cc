"""A node's mirrors of its repositories, and a task's checkout made from one.

- **Mirror**: one bare repository per GitHub repository (``<root>/<owner>/<name>.git``),
  created once and then fetched incrementally over smart HTTP (``+refs/heads/*``, pruned).
  Fetches of one repository are serialised; checkouts read it concurrently.
- **Checkout**: the task's working files are written from the mirror by the agent, with an
  index the agent keeps outside the workspace (``private``). The task also gets a ``.git``
  of its own (the delivery branch at the start commit, the mirror's objects as an
  alternate, read-only in the sandbox) so ``git status``, ``git diff`` and commits work, and
  no object is copied: a checkout costs its working files and one index.
- **Spare**: after a task starts, the agent writes the next checkout of the default branch
  ahead of time, in a directory only it can reach (``.spare``, mode 0700). A task that
  starts from that branch takes it over by renaming it, and only the files that changed
  since (a two-tree read-tree) are written then: writing thousands of files, slow on a busy
  disk, is off the path from claim to pull request. A spare is never handed to a task
  before, so it is as pristine as a fresh checkout.
- **Snapshot**: after the task, the agent adds the working files (``.git`` excluded, as git
  always does) to its private index against the mirror and writes one commit on top of the
  start commit. It never runs git on the task's ``.git``: hooks, filters and
  ``core.fsmonitor`` there are the task's. Commits the task made are kept where safe
  (bzzz/repo/taskcommits.py reads them without git: HEAD's first-parent chain back to the
  start within 50 commits, no merge, every object valid, the same paths left out): each is
  replayed as the agent's commit, with the working files' commit on top when they differ
  from the last. Anything else (history rewritten, a merge, a link for a ref, a corrupt or
  packed object, too many commits) falls back to the one snapshot commit, logged with why.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import trio

from ..errors import RepoError  # a step that cannot work: one line, already redacted
from .git import GIT_TIMEOUT, Git, GitError

MAX_FILE = 100 * 1024 * 1024  # GitHub refuses a pushed file over 100 MB
MAX_ENTRIES = 200_000
MAX_EXCLUDED = 1000  # paths of the task's environment kept out of its commit




def slug(title: str, limit: int = 40) -> str:
    """``"Fix the README's typo!"`` → ``fix-the-readme-s-typo`` (ASCII, at most ``limit``)."""
    text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().lower()
    words = re.findall(r"[a-z0-9]+", text)
    out = ""
    for w in words:
        cand = f"{out}-{w}" if out else w
        if len(cand) > limit:
            break
        out = cand
    return out or "task"


def branch_name(issue: int, title: str, n: int = 1) -> str:
    return f"bzzz/{issue}-{slug(title)}" + (f"-{n}" if n > 1 else "")


@dataclass
class MirrorStats:
    created: int = 0
    fetches: int = 0
    fetch_seconds: float = 0.0


class Mirrors:
    def __init__(self, root: Path, git: Git, token: Callable[[], str | None]) -> None:
        self.root = Path(root)
        self.git = git
        self.token = token
        self.stats: dict[str, MirrorStats] = {}
        self._locks: dict[str, trio.Lock] = {}

    def path(self, repo: str) -> Path:
        owner, name = repo.lower().split("/", 1)
        return self.root / owner / f"{name}.git"

    async def fetch(self, repo: str, url: str) -> Path:
        """The mirror of ``repo``, brought up to date (created on first use)."""
        path = self.path(repo)
        lock = self._locks.setdefault(repo.lower(), trio.Lock())
        st = self.stats.setdefault(repo.lower(), MirrorStats())
        async with lock:
            if not (path / "HEAD").is_file():
                await self._create(path)
                st.created += 1
            start = trio.current_time()
            try:
                await self._fetch(path, url)
            except GitError as exc:
                if "not a git repository" not in str(exc) and "corrupt" not in str(exc):
                    raise RepoError(f"fetching {repo}: {exc}") from None
                # a damaged mirror: start it again once
                shutil.rmtree(path, ignore_errors=True)
                await self._create(path)
                st.created += 1
                try:
                    await self._fetch(path, url)
                except GitError as exc2:
                    raise RepoError(f"fetching {repo}: {exc2}") from None
            st.fetches += 1
            st.fetch_seconds += trio.current_time() - start
        return path

    async def _create(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".new")
        shutil.rmtree(tmp, ignore_errors=True)
        await self.git.run(["init", "-q", "--bare", "--template=", str(tmp)], what="init")
        # readable by the task user (its checkout borrows these objects), writable by us only
        os.chmod(tmp, 0o755)
        os.replace(tmp, path)

    async def _fetch(self, path: Path, url: str) -> None:
        await self.git.run(["--git-dir", str(path), "fetch", "--quiet", "--prune", "--no-tags",
                            "--no-write-fetch-head", url, "+refs/heads/*:refs/heads/*"],
                           what="fetch", token=self.token(), timeout=GIT_TIMEOUT)

    async def resolve(self, mirror: Path, ref: str) -> str | None:
        proc = await self.git.run(["--git-dir", str(mirror), "rev-parse", "--verify", "-q",
                                   f"{ref}^{{commit}}"], what="rev-parse", check=False)
        out = proc.stdout.decode().strip()
        return out if proc.returncode == 0 and out else None

    async def push(self, mirror: Path, url: str, commit: str, branch: str) -> None:
        """Push ``commit`` to ``branch`` (never forced: a branch that moved meanwhile
        refuses it), then record it in the mirror."""
        await self.git.run(["--git-dir", str(mirror), "push", "--quiet", "--porcelain", url,
                            f"{commit}:refs/heads/{branch}"], what="push", token=self.token(),
                           timeout=GIT_TIMEOUT)
        await self.git.run(["--git-dir", str(mirror), "update-ref", f"refs/heads/{branch}",
                            commit], what="update-ref")


@dataclass
class Checkout:
    repo: str
    path: Path  # the task's working directory
    private: Path  # the agent's index for it (outside the workspace)
    mirror: Path
    start: str  # the commit the task starts from (base, or the pull request's head)
    branch: str  # the task's local branch name
    # what the repository's setup made (bzzz/claim/setup.py): the task's environment, never
    # part of its work, so never delivered whatever the repository's .gitignore says
    environment: list[str] = field(default_factory=list)

    @property
    def index(self) -> Path:
        return self.private / "index"

    def _env(self) -> dict[str, str]:
        return {"GIT_INDEX_FILE": str(self.index)}

    def _git(self) -> list[str]:
        return ["--git-dir", str(self.mirror), "--work-tree", str(self.path)]


def _chown_paths(root: Path, rel_paths: list[str], uid: int, gid: int) -> None:
    """What a two-tree update wrote (as the agent): the files and their directories."""
    done: set[str] = set()
    for rel in rel_paths:
        parts = [p for p in rel.split("/") if p]
        for k in range(1, len(parts) + 1):
            sub = "/".join(parts[:k])
            if sub in done:
                continue
            done.add(sub)
            try:
                os.lchown(os.path.join(root, sub), uid, gid)
            except FileNotFoundError:  # deleted by the update
                pass


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        os.chown(dirpath, uid, gid)
        for name in filenames + dirnames:
            p = os.path.join(dirpath, name)
            if os.path.islink(p) or name in dirnames:
                os.lchown(p, uid, gid)
            else:
                os.chown(p, uid, gid)


@dataclass
class Spare:
    """A checkout written ahead of time (see the module's docstring)."""
    repo: str
    base: str  # the branch it was made from
    path: Path
    private: Path
    mirror: Path
    start: str


async def make_spare(git: Git, mirror: Path, repo: str, base: str, start: str, root: Path,
                     owner: tuple[int, int] | None) -> Spare:
    """A checkout of ``start`` under ``root`` (created 0700: tasks cannot reach it)."""
    ws, private = root / "ws", root / "private"
    await trio.to_thread.run_sync(_fresh_spare_dirs, root, ws, private)
    await git.run(["--git-dir", str(mirror), "--work-tree", str(ws), "read-tree", "-u",
                   "--reset", start], what="spare", env={"GIT_INDEX_FILE": str(private / "index")})
    if owner is not None:
        await trio.to_thread.run_sync(_chown_tree, ws, owner[0], owner[1])
    return Spare(repo, base, ws, private, mirror, start)


def _fresh_spare_dirs(root: Path, ws: Path, private: Path) -> None:
    """``root`` made again from nothing (an old spare removed), its ``ws`` and ``private``
    inside."""
    root.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(root.parent, 0o700)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(mode=0o700)
    ws.mkdir()
    private.mkdir(mode=0o700)


def _place_checkout(ws: Path, private: Path, spare: Spare | None) -> None:
    """``ws`` and ``private`` cleared, then taken over from ``spare`` (renamed) or made
    empty."""
    for d in (ws, private):
        if d.exists():
            shutil.rmtree(d)
    if spare is not None:
        ws.parent.mkdir(parents=True, exist_ok=True)
        private.parent.mkdir(parents=True, exist_ok=True)
        os.rename(spare.path, ws)
        os.rename(spare.private, private)
        shutil.rmtree(spare.path.parent, ignore_errors=True)
    else:
        ws.mkdir(parents=True)
        private.mkdir(parents=True, mode=0o700)


async def checkout(git: Git, mirror: Path, repo: str, start: str, ws: Path, private: Path,
                   branch: str, owner: tuple[int, int] | None,
                   spare: Spare | None = None) -> Checkout:
    """Write ``start``'s files into ``ws`` (fresh) and give the task its ``.git``;
    ``owner`` (uid, gid) gets the whole tree (the task user of a root agent). With a
    ``spare`` of the same mirror, its files are taken over and brought to ``start``."""
    co = Checkout(repo, ws, private, mirror, start, branch)
    if spare is not None and spare.mirror != mirror:
        spare = None  # another mirror's: of no use here
    await trio.to_thread.run_sync(_place_checkout, ws, private, spare)  # large trees: slow
    if spare is not None:
        if spare.start != start:
            changed = await git.out(["--git-dir", str(mirror), "diff-tree", "-r", "-z",
                                     "--name-only", "--no-renames", spare.start, start],
                                    what="diff-tree")
            # the spare's files were handed to the task user after its index was written:
            # their owner is not a change (without this, a file changed since fails the
            # merge as "not uptodate")
            await git.run([*co._git(), "read-tree", "-m", "-u", spare.start, start],
                          what="checkout", env=co._env(), config=[("core.checkStat", "minimal")])
            if owner is not None:
                await trio.to_thread.run_sync(_chown_paths, ws, changed.split("\0"),
                                              owner[0], owner[1])
    else:
        await git.run([*co._git(), "read-tree", "-u", "--reset", start], what="checkout",
                      env=co._env())
    task_git = ws / ".git"
    await git.run(["init", "-q", "--template=", str(ws)], what="init")
    (task_git / "objects" / "info").mkdir(parents=True, exist_ok=True)
    (task_git / "objects" / "info" / "alternates").write_text(f"{mirror / 'objects'}\n")
    await git.run(["--git-dir", str(task_git), "update-ref", f"refs/heads/{branch}", start],
                  what="update-ref")
    await git.run(["--git-dir", str(task_git), "symbolic-ref", "HEAD", f"refs/heads/{branch}"],
                  what="symbolic-ref")
    shutil.copyfile(co.index, task_git / "index")
    if owner is not None:
        await trio.to_thread.run_sync(_chown_tree, ws, owner[0], owner[1])
    return co


def _scan(root: Path) -> None:
    """Refuse what GitHub would refuse (a file over 100 MB) before hashing it all."""
    count = 0
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath == str(root) and ".git" in dirnames:
            dirnames.remove(".git")
        count += len(filenames) + len(dirnames)
        if count > MAX_ENTRIES:
            raise RepoError(f"the task left over {MAX_ENTRIES} files")
        for name in filenames:
            p = os.path.join(dirpath, name)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and st.st_size > MAX_FILE:
                rel = os.path.relpath(p, root)
                raise RepoError(f"{rel} is {st.st_size // (1 << 20)} MB: GitHub refuses files "
                                "over 100 MB")


def kept_out(co: Checkout, exclude: Sequence[str], *, magic: str = "exclude,") -> list[str]:
    """Pathspecs of what never becomes part of a commit: the task's environment (literal
    paths) and the ``exclude`` globs (e.g. a coding agent's leftovers ``.aider*``) with
    everything under them. ``magic="exclude,"`` keeps them out of ``git add``; ``magic=""``
    names them (``git rm --cached``, bzzz/repo/taskcommits.py)."""
    return [f":({magic}literal){p}" for p in co.environment[:MAX_EXCLUDED]] + \
        [spec for g in exclude for spec in (f":({magic}glob){g}", f":({magic}glob){g}/**")]


async def snapshot_tree(git: Git, co: Checkout, exclude: Sequence[str] = ()) -> tuple[str, str]:
    """The tree of the task's working files, added to the agent's private index against the
    mirror (paths matching ``exclude`` stay as they were at the start), and the start
    commit's tree."""
    await trio.to_thread.run_sync(_scan, co.path)
    specs = kept_out(co, exclude)
    await git.run([*co._git(), "add", "-A", *(["--", ".", *specs] if specs else [])],
                  what="add", env=co._env(), cwd=co.path, timeout=GIT_TIMEOUT)
    tree = await git.out(["--git-dir", str(co.mirror), "write-tree"], what="write-tree",
                         env=co._env())
    start_tree = await git.out(["--git-dir", str(co.mirror), "rev-parse",
                                f"{co.start}^{{tree}}"], what="rev-parse")
    return tree, start_tree


async def commit_tree(git: Git, mirror: Path, tree: str, parent: str, message: str,
                      author: tuple[str, str], when: int | None = None,
                      env: dict[str, str] | None = None) -> str:
    """A commit of ``tree`` on ``parent`` in the mirror, by ``author`` (as committer too)."""
    name, email = author
    who = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email,
           "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email, **(env or {})}
    if when is not None:
        who["GIT_AUTHOR_DATE"] = who["GIT_COMMITTER_DATE"] = f"{when} +0000"
    return await git.out(["--git-dir", str(mirror), "commit-tree", tree, "-p", parent],
                         what="commit-tree", env=who, stdin=message.encode())


async def changed_files(git: Git, mirror: Path, old: str, new: str) -> list[str]:
    """The paths that differ, as they are (``-z``: never quoted or escaped, whatever bytes a
    name holds, so a protected-path check sees the real name)."""
    proc = await git.run(["--git-dir", str(mirror), "diff", "--name-only", "-z", "--no-renames",
                          old, new], what="diff")
    return [name for name in proc.stdout.decode("utf-8", "replace").split("\0") if name]


async def touched_files(git: Git, mirror: Path, old: str, new: str) -> list[str]:
    """Every path some commit from ``old`` (excluded) to ``new`` changed, once each: each of
    those commits is pushed, so a path changed and changed back counts too."""
    proc = await git.run(["--git-dir", str(mirror), "log", "--format=", "--name-only", "-z",
                          "--no-renames", f"{old}..{new}"], what="log")
    names = proc.stdout.decode("utf-8", "replace").split("\0")
    return list(dict.fromkeys(name for name in names if name))


def remove(co: Checkout | None, *paths: Path) -> None:
    for p in [*(() if co is None else (co.path, co.private)), *paths]:
        shutil.rmtree(p, ignore_errors=True)
