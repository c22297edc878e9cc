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
"""

from __future__ import annotations

import os
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
    def __init__(self, root: Path, *, max_entry: int = 2 << 30, max_total: int = 8 << 30) -> None:
        self.root = Path(root)
        self.max_entry, self.max_total = max_entry, max_total

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
            total -= st.st_size
            gone.append(p)
        return gone
