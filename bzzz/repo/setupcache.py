"""A node's cache of repository setups: what a setup left in a checkout, as one tar file
per cache key, restored into the next checkout with the same key.

What is kept: the paths the setup created that git does not track (``node_modules/``,
``.venv/``, the tools' caches under the task's home, which is the checkout), listed by the
caller with the agent's own index, never the task's ``.git``. A file the setup changed that
git tracks is not kept: the next checkout has its own. Saved right after the setup, before
the executor starts, so what a task does later never reaches the cache.

Restoring is written for a hostile tar file (the setup ran the repository's code): no
absolute names or ``..``, nothing written through a link (tarfile's ``data`` filter checks
each member's real destination), no devices, no set-uid bits; a link's own target may point
anywhere (a virtualenv's ``bin/python`` points at the system's) since it is never followed
here; a path the checkout already has is left as it is. Each entry is at most
``max_entry`` bytes; the oldest-used entries go once all of them pass ``max_total``.

A warm task starts at once: writing thousands of files from a tar file takes seconds on a
busy disk, so after each setup the agent writes the entry out ahead of time, in the
background, into a spare directory only it can reach (``spare_root``, on the workspaces'
file system, already handed to the task user), as it does for checkouts
(bzzz/repo/workspace.py). The next task with the key renames the saved paths into its
checkout (one rename each); without a spare it restores from the tar file.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import RepoError

__all__ = ["CacheError", "SetupCache", "Saved"]


class CacheError(RepoError):
    """A setup's result is not cached (too large, unreadable): the message says why."""


@dataclass(frozen=True)
class Saved:
    files: int
    bytes: int


class _TooLarge(Exception):
    pass


def _safe_member(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    """tarfile's ``data`` filter, except that a link's target is not judged (only where it
    is written); None (skipped) for what the checkout already has."""
    if member.issym():
        checked = tarfile.data_filter(member.replace(linkname="x", deep=False), dest).replace(
            linkname=member.linkname, deep=False)
    else:
        checked = tarfile.data_filter(member, dest)
    target = os.path.join(dest, checked.name)
    if not checked.isdir() and os.path.lexists(target):
        return None
    return checked


class SetupCache:
    def __init__(self, root: Path, *, max_entry: int = 2 << 30, max_total: int = 8 << 30,
                 spare_root: Path | None = None, max_spares: int = 4) -> None:
        self.root = Path(root)
        self.max_entry, self.max_total = max_entry, max_total
        self.spare_root, self.max_spares = spare_root, max_spares
        if spare_root is not None:  # an earlier run's: its owner may have changed since
            shutil.rmtree(spare_root, ignore_errors=True)

    def path(self, key: str) -> Path:
        if not key.isalnum():
            raise CacheError(f"not a cache key: {key[:40]!r}")
        return self.root / f"{key}.tar"

    def lookup(self, key: str) -> Path | None:
        """The entry of ``key`` (marked as just used), or None."""
        p = self.path(key)
        try:
            os.utime(p)
        except FileNotFoundError:
            return None
        return p

    def save(self, key: str, ws: Path, paths: Sequence[str]) -> Saved:
        """Keep ``paths`` (relative to ``ws``) as the entry of ``key``; CacheError when
        they are over ``max_entry`` bytes."""
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        final = self.path(key)
        tmp = final.with_name(f".{key}.{os.getpid()}.{time.monotonic_ns()}.tmp")
        count, size = 0, 0

        def bounded(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
            nonlocal count, size
            if not (info.isreg() or info.isdir() or info.issym() or info.islnk()):
                return None  # fifos, devices, sockets: not kept
            count, size = count + 1, size + info.size + 512
            if size > self.max_entry:
                raise _TooLarge()
            return info

        try:
            with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
                for rel in paths:
                    tar.add(ws / rel, arcname=rel.rstrip("/"), recursive=True, filter=bounded)
            self.root.joinpath(f"{key}.paths").write_text(json.dumps(list(paths)))
            os.replace(tmp, final)
        except _TooLarge:
            raise CacheError(f"over {self.max_entry:,} bytes: not cached") from None
        except OSError as exc:
            raise CacheError(f"not cached: {exc}") from None
        finally:
            tmp.unlink(missing_ok=True)
        self.evict(keep=final)
        return Saved(count, size)

    def restore(self, key: str, ws: Path) -> list[str]:
        """Write the entry of ``key`` into ``ws``; the names written."""
        p = self.path(key)
        written: list[str] = []

        def member_filter(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
            out = _safe_member(member, dest)
            if out is not None:
                written.append(out.name)
            return out

        try:
            with tarfile.open(p, "r") as tar:
                tar.extractall(ws, filter=member_filter)
        except (OSError, tarfile.TarError) as exc:
            raise CacheError(f"could not restore the setup: {exc}") from None
        return written

    def entries(self) -> list[tuple[Path, os.stat_result]]:
        try:
            found = [(p, p.stat()) for p in self.root.glob("*.tar")]
        except FileNotFoundError:
            return []
        return sorted(found, key=lambda e: e[1].st_mtime)

    def evict(self, keep: Path | None = None) -> list[Path]:
        """Remove the oldest-used entries until all of them fit ``max_total``."""
        found = self.entries()
        total = sum(st.st_size for _, st in found)
        gone = []
        for p, st in found:
            if total <= self.max_total:
                break
            if p == keep:
                continue
            p.unlink(missing_ok=True)
            p.with_suffix(".paths").unlink(missing_ok=True)
            if self.spare_root is not None:
                shutil.rmtree(self.spare_root / p.stem, ignore_errors=True)
            total -= st.st_size
            gone.append(p)
        return gone

    # ---------------------------------------------------------------- spares

    def paths(self, key: str) -> list[str]:
        try:
            doc = json.loads(self.path(key).with_suffix(".paths").read_text())
        except (OSError, ValueError):
            return []
        return [p for p in doc if isinstance(p, str)] if isinstance(doc, list) else []

    def make_spare(self, key: str, owner: tuple[int, int] | None) -> bool:
        """Write the entry of ``key`` out ahead of time (False: no entry, or a spare is
        there already). Raises CacheError as restore does."""
        if self.spare_root is None or self.lookup(key) is None:
            return False
        final = self.spare_root / key
        if final.exists():
            return False
        self.spare_root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.spare_root, 0o700)
        tmp = self.spare_root / f".{key}.{os.getpid()}.{time.monotonic_ns()}"
        try:
            tmp.mkdir()
            names = self.restore(key, tmp)
            if owner is not None:
                for name in names:
                    os.lchown(tmp / name, *owner)
            os.rename(tmp, final)
        except OSError:
            return False  # another task's spare of the same key got there first
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self._trim_spares(keep=final)
        return True

    def _trim_spares(self, keep: Path) -> None:
        assert self.spare_root is not None
        spares = sorted((p for p in self.spare_root.iterdir() if not p.name.startswith(".")),
                        key=lambda p: p.stat().st_mtime)
        for p in spares[:max(0, len(spares) - self.max_spares)]:
            if p != keep:
                shutil.rmtree(p, ignore_errors=True)

    def take_spare(self, key: str, ws: Path) -> list[str] | None:
        """Move the spare of ``key`` into ``ws``: the saved paths moved (None: no spare).
        A path the checkout already has, or whose directory in ``ws`` is not a plain one
        (a link the checkout holds), is not moved: a restore fills those in."""
        if self.spare_root is None:
            return None
        spare = self.spare_root / key
        taking = self.spare_root / f".{key}.taking.{os.getpid()}.{time.monotonic_ns()}"
        try:
            os.rename(spare, taking)  # this task's alone from now on
        except OSError:
            return None
        moved, real_ws = [], os.path.realpath(ws)
        try:
            for rel in self.paths(key):
                rel = rel.rstrip("/")
                src, dst = taking / rel, ws / rel
                parent = os.path.dirname(rel)
                if not os.path.lexists(src) or os.path.lexists(dst) or \
                        os.path.realpath(dst.parent) != os.path.join(real_ws, parent).rstrip("/"):
                    continue
                os.rename(src, dst)
                moved.append(rel)
        finally:
            shutil.rmtree(taking, ignore_errors=True)
        return moved
