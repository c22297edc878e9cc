"""Where slot records live: the git refs of the schedule's repository (GitHub or devhub).

``create`` is the compare-and-set (``POST /git/refs`` answers 201 to exactly one caller and
422 to every other); ``advance`` moves a ref to a child commit with ``force=false``, which
also has one winner among concurrent updates. Slot commits are orphans on the default
branch's tree, like the claim commits (bzzz/claim/gitlock.py).

An uncertain write (the connection dropped after sending) is settled by reading: a ref that
points at our commit means we won; an issue is looked for by its marker before it is filed
again.
"""

from __future__ import annotations

import builtins
from typing import Protocol

from ..github.client import GitHubClient, GitHubError, Unavailable
from ..claim.gitlock import RefRecords, git_time
from ..github.markers import find_markers
from .core import REF_PREFIX, Record, parse_record

SEARCH_PAGES = 10  # issues read (100 a page, newest first) when looking for a marker
SEARCH_MARGIN = 3600.0  # seconds before the slot an issue may carry a clock's skew


class SlotStore(Protocol):
    """The operations the scheduler needs; :class:`GitHubSlotStore` and, for tests and the
    bench, :class:`bzzz.schedule.memory.MemorySlotStore`."""

    async def list(self, name: str) -> list[str]: ...
    async def read(self, name: str, key: str) -> tuple[str, Record | None] | None: ...
    async def create(self, name: str, key: str, record: Record) -> str | None: ...
    async def advance(self, name: str, key: str, parent: str, record: Record) -> str | None: ...
    async def delete(self, name: str, key: str) -> None: ...
    async def find_issue(self, marker_key: tuple[str, str], since: float) -> int | None: ...
    async def file_issue(self, title: str, body: str, labels: builtins.list[str],
                         marker_key: tuple[str, str], since: float) -> int: ...




class GitHubSlotStore(RefRecords):
    def __init__(self, client: GitHubClient, repo: str) -> None:
        self.gh = client
        self.repo = repo
        self._base: tuple[str, str] | None = None

    async def _commit(self, record: Record, parent: str) -> str:
        return await self._record_commit(record.message(), parent)

    async def list(self, name: str) -> list[str]:
        prefix = f"{REF_PREFIX}/{name}/"
        reply = await self.gh.request("GET", self._path(f"git/matching-refs/{prefix[5:]}"))
        return [r["ref"][len(prefix):] for r in reply.data or []
                if isinstance(r, dict) and str(r.get("ref", "")).startswith(prefix)]

    async def _ref_sha(self, name: str, key: str) -> str | None:
        try:
            ref = (await self.gh.request(
                "GET", self._path(f"git/ref/{REF_PREFIX[5:]}/{name}/{key}"))).data
        except GitHubError as exc:
            if exc.status == 404:
                return None
            raise
        sha: str = ref["object"]["sha"]
        return sha

    async def read(self, name: str, key: str) -> tuple[str, Record | None] | None:
        sha = await self._ref_sha(name, key)
        if sha is None:
            return None
        commit = (await self.gh.request("GET", self._path(f"git/commits/{sha}"))).data
        return sha, parse_record(commit.get("message", ""))

    async def create(self, name: str, key: str, record: Record) -> str | None:
        base, _ = await self._base_commit()
        sha = await self._commit(record, base)
        for _ in range(3):
            try:
                await self.gh.request("POST", self._path("git/refs"), retry=False,
                                      json={"ref": f"{REF_PREFIX}/{name}/{key}", "sha": sha})
                return sha
            except Unavailable:
                current = await self._ref_sha(name, key)  # did it land?
                if current is not None:
                    return sha if current == sha else None
            except GitHubError as exc:
                if exc.status != 422:
                    raise
                return None
        raise Unavailable(0, "slot ref not created after 3 attempts", "POST",
                          self._path("git/refs"))

    async def advance(self, name: str, key: str, parent: str, record: Record) -> str | None:
        sha = await self._commit(record, parent)
        try:
            await self.gh.request("PATCH", self._path(f"git/refs/{REF_PREFIX[5:]}/{name}/{key}"),
                                  json={"sha": sha, "force": False})
        except GitHubError as exc:
            if exc.status not in (404, 422):
                raise
            return sha if await self._ref_sha(name, key) == sha else None
        return sha

    async def delete(self, name: str, key: str) -> None:
        try:
            await self.gh.request("DELETE", self._path(f"git/refs/{REF_PREFIX[5:]}/{name}/{key}"))
        except GitHubError as exc:
            if exc.status not in (404, 422) or isinstance(exc, Unavailable):
                raise

    async def find_issue(self, marker_key: tuple[str, str], since: float) -> int | None:
        """The issue carrying the marker, among those created since ``since`` minus a margin
        (newest first; pull requests skipped; open or closed, whatever its labels now)."""
        for page in range(1, SEARCH_PAGES + 1):
            reply = await self.gh.request("GET", self._path("issues"), params={
                "state": "all", "sort": "created", "direction": "desc", "per_page": 100,
                "page": page})
            items = [i for i in reply.data or [] if isinstance(i, dict)]
            for issue in items:
                if "pull_request" in issue:
                    continue
                if marker_key in find_markers(issue.get("body") or ""):
                    return int(issue["number"])
            if not items or git_time(items[-1].get("created_at")) < since - SEARCH_MARGIN or \
                    'rel="next"' not in reply.headers.get("link", ""):
                return None
        return None

    async def file_issue(self, title: str, body: str, labels: builtins.list[str],
                         marker_key: tuple[str, str], since: float) -> int:
        for _ in range(3):
            try:
                reply = await self.gh.request("POST", self._path("issues"), retry=False,
                                              json={"title": title, "body": body,
                                                    "labels": labels})
                return int(reply.data["number"])
            except Unavailable:
                found = await self.find_issue(marker_key, since)  # did it land?
                if found is not None:
                    return found
        raise Unavailable(0, "issue not filed after 3 attempts", "POST", self._path("issues"))
