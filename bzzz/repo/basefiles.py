"""Files of one commit of a node's mirror, read from git's objects (``ls-tree``,
``cat-file``), never from a working tree.

A task's checkout is the task's: in a review round it holds the pull request's head, and
whatever ran in it may have changed it. What the repository says about its own tasks (its
instructions for agents, its setup, ``.bzzz.toml``) is read here from the base branch's
commit in the mirror, so a pull request under review cannot change what its own round is
told or allowed. Each blob is read only when small enough (``max_blob``); a link is given
as its target (bzzz/repo/instructions.py follows it inside the tree, once).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .git import Git
from .instructions import Entry, Unreadable, link_target

__all__ = ["BaseTree", "TreeEntry"]

MAX_BLOB = 256 * 1024  # bytes of one file read (a larger one is left out, and said so)
MAX_PATHS = 2000  # paths asked for at once
MAX_BELOW = 256  # entries read under a directory listed recursively
_ENV = {"GIT_LITERAL_PATHSPECS": "1"}
LOCK_DEPTH = 3  # directories below the root where a lockfile still counts (packages/web/…)
MAX_FOUND = 200
VENDORED = frozenset({"node_modules", "vendor", ".git", "third_party", "target", "dist",
                      "build", ".venv", "venv"})


@dataclass(frozen=True)
class TreeEntry:
    path: str
    mode: str  # "100644", "100755", "120000" (a link), "160000" (a submodule), "040000"
    sha: str
    size: int  # -1 for a tree or a submodule

    @property
    def kind(self) -> str:
        return {"120000": "link", "160000": "submodule", "040000": "dir"}.get(
            self.mode, "file")


class BaseTree:
    """One commit of a mirror: its entries and their bytes, cached (a task asks a few times)."""

    def __init__(self, git: Git, mirror: Path, commit: str, *, max_blob: int = MAX_BLOB) -> None:
        self.git, self.mirror, self.commit = git, mirror, commit
        self.max_blob = max_blob
        self.entries: dict[str, TreeEntry] = {}
        self.blobs: dict[str, bytes] = {}  # sha -> bytes

    async def find(self, wanted: Callable[[str], bool], *, max_depth: int = LOCK_DEPTH,
                   skip: frozenset[str] = VENDORED) -> dict[str, str]:
        """Path -> blob id of each file of the whole tree whose name ``wanted`` accepts, at
        most ``max_depth`` directories deep, outside vendored directories (``node_modules``
        ...); at most ``MAX_FOUND`` of them. One ``ls-tree -r`` without sizes."""
        out = await self.git.run(["--git-dir", str(self.mirror), "ls-tree", "-r", "-z",
                                  "--full-tree", self.commit], what="ls-tree", env=_ENV)
        found: dict[str, str] = {}
        for rec in out.stdout.split(b"\0"):
            meta, _, raw = rec.partition(b"\t")
            parts = raw.decode("utf-8", "surrogateescape").split("/")
            if not raw or len(parts) > max_depth + 1 or not wanted(parts[-1]) \
                    or skip.intersection(parts[:-1]) or not meta.startswith(b"100"):
                continue
            found["/".join(parts)] = meta.split()[2].decode()
            if len(found) >= MAX_FOUND:
                break
        return found

    async def ls(self, paths: Sequence[str], *, recursive: bool = False) -> list[TreeEntry]:
        """The entries at exactly these paths (a directory's own entry), or with
        ``recursive`` everything below them."""
        if not paths:
            return []
        return await self._ls_tree(["-r"] if recursive else [], paths)

    async def _ls_tree(self, flags: list[str], paths: Sequence[str] = ()) -> list[TreeEntry]:
        args = ["--git-dir", str(self.mirror), "ls-tree", "-z", "--long", "--full-tree", *flags]
        out = await self.git.run([*args, self.commit, "--", *paths[:MAX_PATHS]],
                                 what="ls-tree", env=_ENV)
        found = []
        for rec in out.stdout.split(b"\0"):
            if not rec:
                continue
            meta, _, name = rec.partition(b"\t")
            mode, _type, sha, size = meta.decode().split()
            e = TreeEntry(name.decode("utf-8", "surrogateescape"), mode, sha,
                          int(size) if size.isdigit() else -1)
            self.entries[e.path] = e
            found.append(e)
        return found

    async def load(self, entries: Iterable[TreeEntry]) -> None:
        """Read the blobs of these entries (files and links) that are small enough."""
        want = [e.sha for e in entries if e.kind in ("file", "link") and
                0 <= e.size <= self.max_blob and e.sha not in self.blobs]
        if not want:
            return
        proc = await self.git.run(["--git-dir", str(self.mirror), "cat-file", "--batch"],
                                  what="cat-file", stdin="".join(f"{s}\n" for s in want).encode())
        data, pos = proc.stdout, 0
        for sha in want:
            nl = data.index(b"\n", pos)
            head = data[pos:nl].split()
            if len(head) < 3 or head[1] == b"missing":
                pos = nl + 1
                continue
            size = int(head[2])
            self.blobs[sha] = data[nl + 1:nl + 1 + size]
            pos = nl + 1 + size + 1

    async def fetch(self, paths: Sequence[str], *, recursive: Sequence[str] = ()) -> list[str]:
        """List these paths (and everything under ``recursive``), read their blobs and
        those of the links' targets inside the tree; the paths found."""
        found = await self.ls(paths)
        below = await self.ls(list(recursive), recursive=True)
        found += below[:MAX_BELOW]  # a hostile tree of thousands: the first ones only
        await self.load(found)
        targets = [t for e in found if e.kind == "link" and e.sha in self.blobs
                   for t in [link_target(e.path, self.blobs[e.sha])]
                   if t is not None and t not in self.entries]
        if targets:
            await self.load(await self.ls(targets))
        return [e.path for e in found]

    def read(self, path: str) -> Entry | None:
        """A path already fetched, as instructions.gather reads it; Unreadable when it is
        there but not read (too large, a submodule)."""
        e = self.entries.get(path)
        if e is None:
            return None
        if e.kind in ("dir", "submodule"):
            raise Unreadable(f"a {'directory' if e.kind == 'dir' else 'submodule'}")
        data = self.blobs.get(e.sha)
        if data is None:
            raise Unreadable(f"too large ({e.size:,} bytes; at most {self.max_blob:,} are read)")
        return Entry(e.kind, data)

    def text(self, path: str, limit: int) -> str | None:
        """A fetched regular file (not a link) as text, at most ``limit`` bytes of it; None
        when absent, not a file, or larger than ``limit``."""
        e = self.entries.get(path)
        if e is None or e.kind != "file" or e.size > limit:
            return None
        data = self.blobs.get(e.sha)
        return None if data is None else data.decode("utf-8", "replace")

    def ids(self) -> Mapping[str, str]:
        """path -> blob id of every regular file fetched (a content hash: git's own)."""
        return {p: e.sha for p, e in self.entries.items() if e.kind == "file"}
