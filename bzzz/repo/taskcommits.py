"""The commits a task made itself, kept where that is safe (a coding agent's own ``git
commit``, Aider's auto-commits), read without running git on the task's ``.git``.

The task's ``.git`` (bzzz/repo/workspace.py ``checkout``) is the task's: git run there would
honour its hooks, filters and ``core.fsmonitor``. So nothing of it is given to git. Python
reads, without following a link anywhere (``O_NOFOLLOW`` on every component) and with
bounded sizes:

- ``HEAD`` (a branch under ``refs/heads/``, or a commit id) and that branch's ref (its loose
  file, else ``packed-refs``); a symbolic ref, a reftable or another object format is
  declined;
- the loose objects the task wrote (``objects/xx/…``): inflated as a stream, the header's
  type and size checked, the SHA-1 of what was read compared with the file's name, nothing
  after the end; trees and blobs are copied as they were read into a quarantine the agent
  owns (``<private>/quarantine``). Objects the task did not write must be in the mirror
  (the agent's own repository: ``git cat-file --batch-check`` there says so). A task that
  packed its objects (a ``.pack`` under ``objects/pack``, e.g. after ``git gc``) is
  declined: reading packs (deltas, an index) is not worth its risk here. dulwich would read
  them, but refs and loose objects are some two hundred lines of our own, and a library
  that opens a repository would be one more thing to keep from honouring the task's
  ``.git`` (its config, its alternates, links).

The commits are kept when HEAD's first-parent chain reaches the start commit within
``MAX_COMMITS`` commits the task wrote, none a merge, every object valid, every tree free of
``.git`` and of modes other than files, executables, links and directories, no file over
``MAX_FILE``. Anything else keeps none: the working files become the single snapshot commit
on the start commit as before, with one log line saying why.

Kept commits are replayed, not copied: each one's tree goes through a replay index the
agent owns (``read-tree``; the task's environment and the CLI's leftovers set back to the
start, as ``snapshot_tree`` leaves them; ``write-tree``) with the quarantine as an
alternate, and ``commit-tree`` makes it the agent's commit: the agent's identity as author
and committer, and its clock (the task's author line is only the task's word: it becomes a
``Co-authored-by:`` trailer when well-formed), the task's message without control
characters, at most ``MAX_MESSAGE`` characters, followed by the delivery's trailers. A
commit that changed only what is left out is dropped. The objects the replayed commits need
and the mirror lacks are then moved from the quarantine into the mirror, and the mirror is
checked to hold every object from the start commit on (``rev-list --objects``). The working
files, as ``snapshot_tree`` makes them, follow as one more commit when they differ from the
last kept one.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import shutil
import stat
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import trio

from ..github.markers import defuse_closing
from ..errors import RepoError
from .git import Git
from .workspace import (MAX_ENTRIES, MAX_FILE, Checkout, commit_tree, kept_out,
                        snapshot_tree)

log = logging.getLogger("bzzz.repo")

MAX_COMMITS = 50  # the task's commits between the start and HEAD
MAX_REF = 4096  # HEAD, a loose ref
MAX_PACKED_REFS = 1 << 20
MAX_COMMIT = 1 << 20  # one commit object, inflated
MAX_TREE = 16 << 20  # one tree object, inflated
MAX_READ = 1 << 30  # every object read from the task together, inflated
MAX_MESSAGE = 8000  # characters of a kept commit's message
_CHUNK = 1 << 16

_SHA = re.compile(r"[0-9a-f]{40}")
_REF_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_MODES = {b"100644": "blob", b"100755": "blob", b"120000": "blob", b"40000": "tree"}
_IDENT = re.compile(rb"(?P<name>[^<>\n]*?) ?<(?P<email>[^<>\n]*)> (?P<ts>\d{1,12}) [+-]\d{4}")
_NAME = re.compile(r"[^\x00-\x1f\x7f<>]{1,100}")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+")
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
_TRAILER = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*: \S.*")


class NotKept(RepoError):
    """Why the task's commits are not kept (one line for the log)."""


@dataclass(frozen=True)
class TaskCommit:
    sha: str
    tree: str
    parent: str
    co_author: str  # "Name <email>" of its author line when well-formed, else ""
    message: str  # cleaned (``clean_message``)


@dataclass(frozen=True)
class Snapshot:
    """What a delivery pushes: ``head`` on top of the start commit, ``kept`` of the task's
    own commits under it (0: one snapshot commit, as before); ``declined``: why the task's
    commits were not kept, when it made some."""
    head: str
    kept: int
    declined: str = ""


# -- reading the task's .git, never through a link ------------------------------------------

def _open_at(dirfd: int, name: str, *, directory: bool = False) -> int | None:
    """``name`` (one component) in ``dirfd``, never through a link; None when absent."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | \
        (os.O_DIRECTORY if directory else os.O_NONBLOCK)
    try:
        fd = os.open(name, flags, dir_fd=dirfd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        why = "a link or not a directory" if exc.errno in (errno.ELOOP, errno.ENOTDIR) \
            else exc.strerror
        raise NotKept(f"{name} in the task's .git: {why}") from None
    if not directory and not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotKept(f"{name} in the task's .git is not a plain file")
    return fd


def _open_path(dirfd: int, parts: Sequence[str]) -> int | None:
    """The file at ``parts`` under ``dirfd``, each directory opened without following links."""
    fds: list[int] = []
    try:
        for part in parts[:-1]:
            sub = _open_at(fds[-1] if fds else dirfd, part, directory=True)
            if sub is None:
                return None
            fds.append(sub)
        return _open_at(fds[-1] if fds else dirfd, parts[-1])
    finally:
        for fd in fds:
            os.close(fd)


def _read_small(dirfd: int, parts: Sequence[str], limit: int) -> bytes | None:
    fd = _open_path(dirfd, parts)
    if fd is None:
        return None
    try:
        data = os.read(fd, limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise NotKept(f"{'/'.join(parts)} in the task's .git is over {limit} bytes")
    return data


def _branch(text: str) -> str | None:
    """``refs/heads/<name>`` when every part of it is a plain name."""
    if not text.startswith("refs/heads/"):
        return None
    parts = text.split("/")[2:]
    ok = parts and all(_REF_PART.fullmatch(p) and not p.endswith((".lock", ".")) and ".." not in p
                       for p in parts)
    return text if ok else None


def read_head(gitfd: int) -> str:
    """The commit id HEAD names (through its branch when it names one)."""
    data = _read_small(gitfd, ["HEAD"], MAX_REF)
    text = (data or b"").decode("ascii", "replace").rstrip("\n")
    if _SHA.fullmatch(text):
        return text
    ref = _branch(text[5:]) if text.startswith("ref: ") else None
    if ref is None:
        raise NotKept("HEAD names no branch of refs/heads/")
    loose = _read_small(gitfd, ref.split("/"), MAX_REF)
    if loose is not None:
        sha = loose.decode("ascii", "replace").rstrip("\n")
        if not _SHA.fullmatch(sha):
            raise NotKept(f"{ref} holds no commit id")
        return sha
    for line in (_read_small(gitfd, ["packed-refs"], MAX_PACKED_REFS) or b"").splitlines():
        sha_b, _, name = line.partition(b" ")
        if name == ref.encode():
            sha = sha_b.decode("ascii", "replace")
            if not _SHA.fullmatch(sha):
                raise NotKept(f"{ref} holds no commit id")
            return sha
    raise NotKept(f"{ref} does not exist")


class TaskObjects:
    """The task's loose objects, each verified against its name as it is read; trees and
    blobs are copied, as read, into ``quarantine`` (a loose object directory)."""

    def __init__(self, gitfd: int, quarantine: Path) -> None:
        objects = _open_at(gitfd, "objects", directory=True)
        if objects is None:
            raise NotKept("the task's .git has no objects")
        self.fd = objects
        self.quarantine = quarantine
        self.read = 0  # bytes inflated so far
        self.count = 0  # objects read so far
        try:
            packs = _open_at(objects, "pack", directory=True)
            if packs is not None:
                try:
                    if any(n.endswith(".pack") for n in os.listdir(packs)):
                        raise NotKept("the task packed its objects")
                finally:
                    os.close(packs)
        except NotKept:
            os.close(objects)
            raise

    def close(self) -> None:
        os.close(self.fd)

    def get(self, sha: str, kind: str, limit: int) -> bytes | None:
        """The content of object ``sha``, which must be a ``kind``; a blob's content is
        not kept (b""). None: the task did not write it."""
        fd = _open_path(self.fd, [sha[:2], sha[2:]])
        if fd is None:
            return None
        self.count += 1
        if self.count > MAX_ENTRIES:
            raise NotKept(f"the task's commits hold over {MAX_ENTRIES} objects")
        try:
            if os.fstat(fd).st_size > limit + limit // 64 + 1024:
                raise NotKept(f"object {sha} is too big")
            if kind == "commit":
                return _inflate(fd, sha, kind, limit, None, self)
            tmp = self.quarantine / f"tmp-{sha}"
            with open(tmp, "wb") as copy:
                content = _inflate(fd, sha, kind, limit, copy, self)
            (self.quarantine / sha[:2]).mkdir(exist_ok=True)
            os.replace(tmp, self.quarantine / sha[:2] / sha[2:])
            return content
        finally:
            os.close(fd)


def _inflate(fd: int, sha: str, kind: str, limit: int, copy: BinaryIO | None,
             budget: TaskObjects) -> bytes:
    """Read a loose object: its header must say ``kind`` and at most ``limit`` bytes, the
    SHA-1 of what it holds must be ``sha``, nothing may follow its end. The content (empty
    for a blob, which is only hashed) and, into ``copy``, the bytes read."""
    d = zlib.decompressobj()
    digest = hashlib.sha1()  # noqa: S324 -- git's object names are SHA-1
    header = bytearray()
    size = -1
    body = bytearray()
    got = 0

    def take(out: bytes) -> None:
        nonlocal size, got
        if size < 0:
            header.extend(out)
            end = header.find(b"\0")
            if end < 0:
                if len(header) > 32:
                    raise NotKept(f"object {sha} has no header")
                return
            head, out = bytes(header[:end]), bytes(header[end + 1:])
            typ, _, length = head.partition(b" ")
            if typ.decode("ascii", "replace") != kind or not length.isdigit() or \
                    str(int(length)).encode() != length:  # git's own form: no leading 0
                raise NotKept(f"object {sha} is not a {kind}")
            size = int(length)
            if size > limit or budget.read + size > MAX_READ:
                raise NotKept(f"object {sha} is too big")
            budget.read += size
            digest.update(head + b"\0")
        got += len(out)
        if got > size:
            raise NotKept(f"object {sha} is longer than its header says")
        digest.update(out)
        if kind != "blob":
            body.extend(out)

    try:
        while chunk := os.read(fd, _CHUNK):
            if d.eof:
                raise NotKept(f"object {sha} has bytes after its end")
            if copy is not None:
                copy.write(chunk)
            out = d.decompress(chunk, _CHUNK)
            take(out)
            while d.unconsumed_tail or len(out) == _CHUNK:
                out = d.decompress(d.unconsumed_tail, _CHUNK)
                take(out)
    except zlib.error:
        raise NotKept(f"object {sha} is not a zlib stream") from None
    if not d.eof or d.unused_data or got != size or digest.hexdigest() != sha:
        raise NotKept(f"object {sha} does not hold what its name says")
    return bytes(body)


def parse_commit(sha: str, data: bytes) -> TaskCommit:
    head, _, raw_message = data.partition(b"\n\n")
    trees: list[str] = []
    parents: list[str] = []
    author = None
    for line in head.split(b"\n"):
        key, _, value = line.partition(b" ")
        text = value.decode("ascii", "replace")
        if key == b"tree":
            trees.append(text)
        elif key == b"parent":
            parents.append(text)
        elif key == b"author":
            author = _IDENT.fullmatch(value)
    if len(trees) != 1 or not all(_SHA.fullmatch(x) for x in trees + parents) or author is None:
        raise NotKept(f"commit {sha} is not well-formed")
    if len(parents) > 1:
        raise NotKept(f"commit {sha} is a merge")
    if not parents:
        raise NotKept("HEAD does not descend from the start commit")
    name = author["name"].decode("utf-8", "replace").strip()
    email = author["email"].decode("utf-8", "replace")
    co_author = f"{name} <{email}>" if _NAME.fullmatch(name) and _EMAIL.fullmatch(email) \
        and len(email) <= 254 else ""
    return TaskCommit(sha, trees[0], parents[0], co_author, clean_message(raw_message))


def clean_message(raw: bytes) -> str:
    """A commit message of the task's, fit to show: control and direction characters out,
    lines' trailing blanks out, closing keywords defused (a kept commit never closes an
    issue: bzzz/github/markers.py), at most ``MAX_MESSAGE`` characters."""
    text = raw.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")
    text = "\n".join(line.rstrip() for line in _CONTROL.sub("", text).split("\n")).strip("\n")
    text = defuse_closing(text)
    if len(text) > MAX_MESSAGE:
        text = text[:MAX_MESSAGE].rstrip() + "\n… (cut)"
    return text or "(no message)"


def _tree_entries(sha: str, data: bytes) -> list[tuple[str, bytes, str]]:
    """(kind, name, id) of each entry; NotKept for a mode or a name snapshot would not
    commit (a submodule, ``.git``, ``..``)."""
    out = []
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        nul = data.find(b"\0", space + 1)
        if space < 0 or nul < 0 or nul + 21 > len(data):
            raise NotKept(f"tree {sha} is not well-formed")
        mode, name = data[pos:space], data[space + 1:nul]
        kind = _MODES.get(mode)
        if kind is None:
            raise NotKept(f"tree {sha} holds an entry of mode {mode.decode('ascii', 'replace')}")
        if name in (b"", b".", b"..") or b"/" in name or name.lower() == b".git":
            raise NotKept(f"tree {sha} holds a path named {name.decode('utf-8', 'replace')!r}")
        out.append((kind, name, data[nul + 1:nul + 21].hex()))
        pos = nul + 21
    return out


def read_history(workspace: Path, start: str, quarantine: Path
                 ) -> tuple[list[TaskCommit], dict[str, str]]:
    """The task's commits from ``start`` to its HEAD (oldest first), with their trees and
    blobs verified and copied into ``quarantine``; and the objects they name that the task
    did not write (id → kind), which the mirror must hold. NotKept: why not."""
    try:
        gitfd = os.open(workspace / ".git", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW |
                        os.O_CLOEXEC)
    except OSError:
        raise NotKept("the task's .git is not a directory") from None
    try:
        head = read_head(gitfd)
        if head == start:
            return [], {}
        objects = TaskObjects(gitfd, quarantine)
        try:
            commits = _chain(objects, head, start)
            return commits, _trees(objects, [c.tree for c in commits])
        finally:
            objects.close()
    finally:
        os.close(gitfd)


def _chain(objects: TaskObjects, head: str, start: str) -> list[TaskCommit]:
    chain: list[TaskCommit] = []
    sha = head
    while sha != start:
        if len(chain) >= MAX_COMMITS:
            raise NotKept(f"the task made over {MAX_COMMITS} commits")
        data = objects.get(sha, "commit", MAX_COMMIT)
        if data is None:  # an older commit: a history rewritten (reset, rebase…)
            raise NotKept("HEAD does not descend from the start commit")
        commit = parse_commit(sha, data)
        chain.append(commit)
        sha = commit.parent
    return chain[::-1]


def _trees(objects: TaskObjects, roots: list[str]) -> dict[str, str]:
    """Read every tree and blob the task wrote under ``roots``; what it did not write."""
    elsewhere: dict[str, str] = {}
    seen: set[str] = set()
    todo = [("tree", sha) for sha in roots]
    entries = 0
    while todo:
        kind, sha = todo.pop()
        if sha in seen:
            continue
        seen.add(sha)
        data = objects.get(sha, kind, MAX_TREE if kind == "tree" else MAX_FILE)
        if data is None:
            elsewhere[sha] = kind
            continue
        if kind == "tree":
            children = _tree_entries(sha, data)
            entries += len(children)
            if entries > MAX_ENTRIES:
                raise NotKept(f"the task's trees hold over {MAX_ENTRIES} entries")
            todo.extend((k, child) for k, _, child in children)
    return elsewhere


# -- replaying them as the agent's -------------------------------------------------------

async def _check_mirror_has(git: Git, mirror: Path, wanted: dict[str, str]) -> None:
    if not wanted:
        return
    out = await git.out(["--git-dir", str(mirror), "cat-file", "--batch-check"],
                        what="cat-file", stdin="".join(f"{s}\n" for s in wanted).encode())
    found = dict(line.split(" ")[:2] for line in out.splitlines() if " " in line)
    missing = [s for s, kind in wanted.items() if found.get(s) != kind]
    if missing:
        raise NotKept(f"object {missing[0]} is neither the task's nor the mirror's")


def replayed_message(c: TaskCommit, trailers: Sequence[str], agent_email: str) -> str:
    """The task's message, then its author as co-author (when it is not the agent) and the
    delivery's trailers, in the message's trailer block when it ends with one."""
    own = [f"Co-authored-by: {c.co_author}"] if c.co_author and \
        not c.co_author.endswith(f"<{agent_email}>") else []
    body = c.message
    paragraphs = body.split("\n\n")
    last = paragraphs[-1].split("\n")
    add = [t for t in dict.fromkeys([*own, *trailers]) if t not in last]
    if not add:
        return body + "\n"
    block = len(paragraphs) > 1 and all(_TRAILER.fullmatch(x) for x in last)
    return body + ("\n" if block else "\n\n") + "\n".join(add) + "\n"


async def _replay(git: Git, co: Checkout, commits: list[TaskCommit], quarantine: Path,
                  author: tuple[str, str], trailers: Sequence[str], when: int | None,
                  exclude: Sequence[str], start_tree: str) -> tuple[str, str, int]:
    """Each commit's filtered tree, committed as the agent's on the previous one: (the last
    commit, its tree, how many were kept)."""
    env = {"GIT_INDEX_FILE": str(co.private / "replay-index"),
           "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(quarantine)}
    gd = ["--git-dir", str(co.mirror)]
    specs = kept_out(co, exclude, magic="")
    restore = b""
    if specs:  # what the left-out paths were at the start, to set them back to
        await git.run([*gd, "read-tree", co.start], what="read-tree", env=env)
        restore = (await git.run([*gd, "ls-files", "-s", "-z", "--", *specs],
                                 what="ls-files", env=env)).stdout
    parent, parent_tree, kept = co.start, start_tree, 0
    for c in commits:
        await git.run([*gd, "read-tree", c.tree], what="read-tree", env=env)
        if specs:
            await git.run([*gd, "rm", "--cached", "-f", "-r", "-q", "--ignore-unmatch", "--",
                           *specs], what="rm", env=env)
            if restore:
                await git.run([*gd, "update-index", "-z", "--index-info"], what="update-index",
                              env=env, stdin=restore)
        tree = await git.out([*gd, "write-tree"], what="write-tree", env=env)
        if tree == parent_tree:
            continue  # it changed only what is left out
        parent = await commit_tree(git, co.mirror, tree, parent,
                                   replayed_message(c, trailers, author[1]), author, when,
                                   env=env)
        parent_tree, kept = tree, kept + 1
    return parent, parent_tree, kept


async def _migrate(git: Git, mirror: Path, quarantine: Path, head: str, start: str) -> None:
    """Move what ``head`` needs from the quarantine into the mirror, then check that the
    mirror alone holds every object from ``start`` to ``head``."""
    out = await git.out(["--git-dir", str(mirror), "rev-list", "--objects", "--no-object-names",
                         head, "--not", start], what="rev-list",
                        env={"GIT_ALTERNATE_OBJECT_DIRECTORIES": str(quarantine)})
    await trio.to_thread.run_sync(_move_objects, mirror / "objects", quarantine, out.split())
    await git.run(["--git-dir", str(mirror), "rev-list", "--objects", "--quiet", head, "--not",
                   start], what="rev-list")


def _move_objects(objects: Path, quarantine: Path, shas: list[str]) -> None:
    for sha in shas:
        src = quarantine / sha[:2] / sha[2:]
        dest = objects / sha[:2] / sha[2:]
        if not src.is_file() or dest.exists():
            continue
        dest.parent.mkdir(mode=0o755, exist_ok=True)
        tmp = dest.with_name(f"tmp-{sha[2:]}")
        shutil.copyfile(src, tmp)
        os.chmod(tmp, 0o444)
        os.replace(tmp, dest)


async def keep_task_commits(git: Git, co: Checkout, author: tuple[str, str],
                            trailers: Sequence[str], when: int | None, exclude: Sequence[str],
                            start_tree: str) -> tuple[str, str, int] | None:
    """The task's own commits replayed as the agent's in the mirror: (the last, its tree,
    how many); None when the task made none (or none changed more than what is left out).
    NotKept: why they are not kept."""
    quarantine = co.private / "quarantine"
    try:
        await trio.to_thread.run_sync(_fresh_dir, quarantine)
        commits, elsewhere = await trio.to_thread.run_sync(read_history, co.path, co.start,
                                                           quarantine)
        if not commits:
            return None
        await _check_mirror_has(git, co.mirror, elsewhere)
        head, tree, kept = await _replay(git, co, commits, quarantine, author, trailers, when,
                                         exclude, start_tree)
        if not kept:
            return None
        await _migrate(git, co.mirror, quarantine, head, co.start)
        return head, tree, kept
    except NotKept:
        raise
    except (RepoError, OSError) as exc:  # GitError, a file that went away
        raise NotKept(str(exc)) from None
    finally:
        shutil.rmtree(quarantine, ignore_errors=True)
        (co.private / "replay-index").unlink(missing_ok=True)


def _fresh_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(mode=0o700)


async def snapshot_keeping(git: Git, co: Checkout, message: str, author: tuple[str, str], *,
                           trailers: Sequence[str] = (), when: int | None = None,
                           exclude: Sequence[str] = ()) -> Snapshot | None:
    """What the task delivers: its own commits kept where safe, then the working files as
    one more commit (``message``) when they differ from the last kept one; None when the
    working files are the start's. ``trailers`` end each kept commit's message."""
    tree, start_tree = await snapshot_tree(git, co, exclude)
    if tree == start_tree:
        return None
    declined = ""
    try:
        kept = await keep_task_commits(git, co, author, trailers, when, exclude, start_tree)
    except NotKept as exc:
        kept, declined = None, str(exc)[:300]
        log.info("the task's own commits are not kept: one snapshot commit instead",
                 extra={"repo": co.repo, "reason": declined})
    parent, count = (kept[0], kept[2]) if kept else (co.start, 0)
    if kept is not None and kept[1] == tree:
        return Snapshot(parent, count)
    return Snapshot(await commit_tree(git, co.mirror, tree, parent, message, author, when), count,
                    declined)
