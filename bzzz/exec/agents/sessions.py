"""A node's store of coding-agent CLIs' sessions, so that a task's next round on this node
resumes the conversation (docs/agents.md "A review round resumes the CLI's session").

After a preset's run that succeeded (its work is what the round delivers), the runner
(bzzz/exec/agents/runner.py) keeps the files of the CLI's HOME that hold its session (the
preset's ``session_paths``) with what the next round needs: the session's id, the model, the
checkout it ran in, the feedback it was given. One entry per task and preset: a directory
named for the task (a digest of repository and issue, so nothing of a task's name is a path)
holding one directory per preset, never shared between tasks. A run that fails forgets its
preset's entry (the next round starts afresh); a task whose pull request closes forgets all
of its (bzzz/claim/service.py ``_pull_closed``).

The HOME came from a sandboxed task, so copying it trusts nothing in it: a directory is
opened without following a link (``O_NOFOLLOW`` relative to its parent's descriptor, so no
path is looked up twice), only regular files and directories are copied (a symlink, a fifo,
a device, a file with another hard link is left out), at most ``max_entry`` bytes and ``MAX_FILES`` files in all (over
either: nothing is kept), never deeper than ``MAX_DEPTH``. Restoring writes with
``O_EXCL | O_NOFOLLOW`` into the new HOME, which the agent made a moment before.

Bounded as a whole as well: entries older than ``max_age`` go, then the oldest until at most
``max_tasks`` tasks and ``max_total`` bytes remain. The root sits in the node's data
directory, which no task sees (bzzz/agent.py hides it), mode 0700.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ...errors import ExecError

__all__ = ["MAX_ENTRY", "SessionError", "SessionStore", "Stored", "copy_tree",
           "valid_session"]

MAX_ENTRY = 20 << 20  # bytes of one task's session for one preset
MAX_FILES = 2000
MAX_DEPTH = 16
META = "session.json"
FILES = "home"
_SESSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
_PRESET = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


class SessionError(ExecError):
    """A session was not kept or not restored (too large, unreadable): the message says why."""


def valid_session(value: object) -> str | None:
    """A session id as a CLI printed it, when it is one that can go on a command line."""
    return value if isinstance(value, str) and _SESSION.match(value) else None


@dataclass(frozen=True)
class Stored:
    """What the store says of a task's session with one preset."""

    repo: str
    issue: int
    preset: str
    model: str
    session: str
    cwd: str  # the checkout the CLI ran in (as the sandbox saw it)
    feedback_len: int  # the feedback the round was given: its length and digest
    feedback_sha: str
    saved_at: float
    files: int
    bytes: int

    def new_feedback(self, feedback: str) -> str | None:
        """What ``feedback`` holds beyond what the stored round was given (None: it does
        not start with that)."""
        head = feedback[:self.feedback_len]
        if len(head) != self.feedback_len or _digest(head) != self.feedback_sha:
            return None
        return feedback[self.feedback_len:]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()


class _TooLarge(SessionError):
    """Raised deep in the copy; copy_tree says it in one SessionError with the bounds."""


def copy_tree(src: Path, rels: Sequence[str], dst: Path, *, max_bytes: int,
              max_files: int = MAX_FILES, renames: Mapping[str, str] | None = None,
              owner: tuple[int, int] | None = None) -> tuple[int, int]:
    """Copy the regular files and directories of ``rels`` (paths relative to ``src``) to
    the same places under ``dst`` (a path of ``renames``' keys, or under one, goes to its
    value instead), following no link on the way, in ``src`` or in ``dst``: (files, bytes).
    Raises SessionError when they pass ``max_bytes`` or ``max_files``; a path absent, or a
    link, is left out; a file ``dst`` already has is kept as it is."""
    count = [0, 0]
    renames = dict(renames or {})
    try:
        root = os.open(src, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        raise SessionError(f"cannot read {src.name}: {exc.strerror}") from None
    try:
        for rel in rels:
            parts = [p for p in rel.split("/") if p not in ("", ".")]
            if not parts or ".." in parts:
                continue
            _copy_path(root, parts, dst, renames, count, max_bytes, max_files, owner)
    except _TooLarge:
        raise SessionError(f"over {max_bytes:,} bytes or {max_files:,} files: not kept") \
            from None
    finally:
        os.close(root)
    return count[0], count[1]


def _target(dst: Path, rel: str, renames: Mapping[str, str]) -> Path:
    for old, new in renames.items():
        if rel == old or rel.startswith(old + "/"):
            return dst / (new + rel[len(old):])
    return dst / rel


def _copy_path(root: int, parts: list[str], dst: Path, renames: Mapping[str, str],
               count: list[int], max_bytes: int, max_files: int,
               owner: tuple[int, int] | None) -> None:
    """Walk down to ``parts`` from ``root`` (each step a directory, no link), then copy."""
    fd = os.dup(root)
    try:
        for name in parts[:-1]:
            try:
                nxt = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError:
                return  # absent, or not a plain directory
            os.close(fd)
            fd = nxt
        _copy_entry(fd, parts[-1], "/".join(parts), dst, renames, count, max_bytes,
                    max_files, owner, 0)
    finally:
        os.close(fd)


def _copy_entry(parent: int, name: str, rel: str, dst: Path, renames: Mapping[str, str],
                count: list[int], max_bytes: int, max_files: int,
                owner: tuple[int, int] | None, depth: int) -> None:
    try:
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except OSError:
        return
    if stat.S_ISDIR(st.st_mode):
        if depth >= MAX_DEPTH:
            return
        try:
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
        except OSError:
            return
        try:
            _make_dirs(dst, _target(dst, rel, renames), owner)
            for entry in sorted(os.listdir(fd)):
                _copy_entry(fd, entry, f"{rel}/{entry}", dst, renames, count, max_bytes,
                            max_files, owner, depth + 1)
        finally:
            os.close(fd)
    elif stat.S_ISREG(st.st_mode) and st.st_nlink == 1:  # another name: not its own
        count[0] += 1
        count[1] += st.st_size
        if count[0] > max_files or count[1] > max_bytes:
            raise _TooLarge()
        _copy_file(parent, name, _target(dst, rel, renames), dst, count, max_bytes, st.st_size,
                   owner)


def _make_dirs(dst: Path, path: Path, owner: tuple[int, int] | None) -> None:
    """``path`` and its parents up to ``dst`` as plain directories (a link there: refused)."""
    rel = path.relative_to(dst)
    here = dst
    for part in rel.parts:
        here = here / part
        try:
            os.mkdir(here, 0o755)
            if owner is not None:
                os.chown(here, *owner)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(here).st_mode):
                raise SessionError(f"{rel} is not a directory where it is restored") from None


def _copy_file(parent: int, name: str, target: Path, dst: Path, count: list[int],
               max_bytes: int, size: int, owner: tuple[int, int] | None) -> None:
    try:
        src = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=parent)
    except OSError:
        return
    try:
        if not stat.S_ISREG(os.fstat(src).st_mode):
            return  # swapped since it was looked at
        _make_dirs(dst, target.parent, owner)
        try:
            out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except FileExistsError:
            return
        try:
            left = size  # no more than it said it held when counted
            while left > 0:
                chunk = os.read(src, min(left, 1 << 20))
                if not chunk:
                    break
                os.write(out, chunk)
                left -= len(chunk)
            if owner is not None:
                os.fchown(out, *owner)
        finally:
            os.close(out)
    finally:
        os.close(src)


class SessionStore:
    def __init__(self, root: Path, *, max_entry: int = MAX_ENTRY, max_total: int = 256 << 20,
                 max_tasks: int = 200, max_age: float = 14 * 86400.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.root = Path(root)
        self.max_entry, self.max_total = max_entry, max_total
        self.max_tasks, self.max_age = max_tasks, max_age
        self.clock = clock

    # ------------------------------------------------------------ where

    def task_dir(self, repo: str, issue: int) -> Path:
        return self.root / _digest(f"{repo.lower()}#{issue}")[:40]

    def entry(self, repo: str, issue: int, preset: str) -> Path:
        if not _PRESET.match(preset):
            raise SessionError(f"not a preset's name: {preset[:40]!r}")
        return self.task_dir(repo, issue) / preset

    # ------------------------------------------------------------ reading

    def load(self, repo: str, issue: int, preset: str, model: str) -> Stored | None:
        """The task's session with ``preset`` if one is kept for ``model`` (None: none, or
        unreadable, or for another model, or too old)."""
        try:
            doc = json.loads((self.entry(repo, issue, preset) / META).read_text())
            stored = Stored(**{k: doc[k] for k in Stored.__dataclass_fields__})
        except (OSError, ValueError, TypeError, KeyError, SessionError):
            return None
        if (stored.repo, stored.issue, stored.preset) != (repo, issue, preset) or \
                stored.model != model or valid_session(stored.session) is None or \
                self.clock() - stored.saved_at > self.max_age:
            return None
        return stored

    def restore(self, stored: Stored, home: Path, renames: Mapping[str, str],
                owner: tuple[int, int] | None) -> int:
        """Write the stored session's files into ``home`` (``renames``: HOME-relative
        paths placed elsewhere, bzzz/exec/agents/base.py ``Preset.relocate``): the files
        written. Raises SessionError."""
        entry = self.entry(stored.repo, stored.issue, stored.preset) / FILES
        try:
            rels = sorted(os.listdir(entry))
        except OSError as exc:
            raise SessionError(f"the stored session is unreadable: {exc.strerror}") from None
        files, _ = copy_tree(entry, rels, home, max_bytes=self.max_entry, renames=renames,
                             owner=owner)
        return files

    # ------------------------------------------------------------ writing

    def save(self, stored: Stored, home: Path, paths: Sequence[str]) -> Stored:
        """Keep ``paths`` of ``home`` as the task's session with the preset (replacing the
        one kept). Raises SessionError (then nothing is kept for it)."""
        final = self.entry(stored.repo, stored.issue, stored.preset)
        if valid_session(stored.session) is None:
            self.forget(stored.repo, stored.issue, stored.preset)
            raise SessionError("the CLI named no session that can be resumed")
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        final.parent.mkdir(exist_ok=True)
        tmp = final.parent / f".{stored.preset}.{os.getpid()}.{time.monotonic_ns()}"
        try:
            tmp.mkdir()
            (tmp / FILES).mkdir()
            files, size = copy_tree(home, paths, tmp / FILES, max_bytes=self.max_entry)
            done = Stored(**{**asdict(stored), "files": files, "bytes": size,
                             "saved_at": self.clock()})
            (tmp / META).write_text(json.dumps(asdict(done)))
            shutil.rmtree(final, ignore_errors=True)
            os.rename(tmp, final)
        except SessionError:
            shutil.rmtree(final, ignore_errors=True)
            raise
        except OSError as exc:
            shutil.rmtree(final, ignore_errors=True)
            raise SessionError(f"not kept: {exc.strerror}") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self.evict(keep=final.parent)
        return done

    @staticmethod
    def given(feedback: str) -> tuple[int, str]:
        """The feedback a round was given, as a stored entry records it."""
        return len(feedback), _digest(feedback)

    def forget(self, repo: str, issue: int, preset: str | None = None) -> None:
        """Drop the task's session with ``preset`` (None: with every preset)."""
        path = self.task_dir(repo, issue) if preset is None else self.entry(repo, issue, preset)
        shutil.rmtree(path, ignore_errors=True)
        if preset is not None:
            try:
                path.parent.rmdir()  # the task's last one
            except OSError:
                pass

    # ------------------------------------------------------------ bounds

    def tasks(self) -> list[tuple[Path, float, int]]:
        """Each task's directory, when it was last saved, and its size in bytes."""
        out = []
        try:
            dirs = [p for p in self.root.iterdir() if not p.name.startswith(".")]
        except FileNotFoundError:
            return []
        for d in dirs:
            newest, size = 0.0, 0
            for meta in d.glob(f"*/{META}"):
                try:
                    doc = json.loads(meta.read_text())
                    newest = max(newest, float(doc["saved_at"]))
                    size += int(doc["bytes"])
                except (OSError, ValueError, TypeError, KeyError):
                    continue
            out.append((d, newest, size))
        return sorted(out, key=lambda t: t[1])

    def evict(self, keep: Path | None = None) -> list[Path]:
        """Drop entries past ``max_age``, then the oldest tasks until at most ``max_tasks``
        and ``max_total`` bytes remain."""
        found = self.tasks()
        now, total = self.clock(), sum(size for _, _, size in found)
        left, gone = len(found), []
        for d, saved, size in found:
            old = now - saved > self.max_age
            if d != keep and (old or left > self.max_tasks or total > self.max_total):
                shutil.rmtree(d, ignore_errors=True)
                gone.append(d)
                left, total = left - 1, total - size
        return gone
