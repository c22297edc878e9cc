"""The agents' pull requests, watched with one conditional request per repository per poll.

A pull request is the agents' when its head is a ``bzzz/<issue>-…`` branch of the repository
itself (not of a fork, nor of a fork deleted since: GitHub then shows no head repository),
it was opened by the agents' own login, and its body carries the task marker the agents
write. Anyone can name a branch ``bzzz/…`` in a fork and type the marker. ``GET /pulls?state=all&sort=updated``
answers 304 (free) until one changes; a change is then read as a transition: merged,
closed without merging. Reviews of a pull request whose task waits in review are read the
same way (conditional, per pull request), so a review with ``/bzzz`` starts another round.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .client import GitHubClient, GitHubError, Unavailable
from .markers import find_markers

_BRANCH = re.compile(r"^bzzz/(?P<issue>\d+)-[a-z0-9-]+$")
RECENT = 24 * 3600.0  # at start, closed pull requests younger than this are still acted on


@dataclass(frozen=True)
class PullInfo:
    repo: str
    number: int
    issue: int
    branch: str
    base: str
    state: str  # open | closed
    merged: bool
    updated: float
    head_sha: str = ""  # the head commit (CI rounds watch its checks)
    node_id: str = ""  # GraphQL's id (marking a draft ready)
    draft: bool = False


def iso_time(text: object) -> float:
    if not isinstance(text, str):
        return 0.0
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def pull_info(repo: str, doc: dict[str, Any], login: str) -> PullInfo | None:
    """The agents' pull request in ``doc`` (``login``: the agents' own), or None."""
    head, base = doc.get("head") or {}, doc.get("base") or {}
    m = _BRANCH.match(head.get("ref") or "") if isinstance(head, dict) else None
    number = doc.get("number")
    if m is None or not isinstance(number, int):
        return None
    head_repo = head.get("repo")
    if not isinstance(head_repo, dict) or not isinstance(head_repo.get("full_name"), str) \
            or head_repo["full_name"].lower() != repo.lower():
        return None  # a fork's branch of the same name (or a deleted fork's) is not ours
    author = doc.get("user")
    if not isinstance(author, dict) or not isinstance(author.get("login"), str) \
            or author["login"].lower() != login.lower():
        return None  # opened by someone else, whatever its branch and body say
    issue = int(m["issue"])
    marks = {(k, v.lower()) for k, v in find_markers(doc.get("body") or "")}
    if ("task", f"{repo.lower()}#{issue}") not in marks:
        return None
    return PullInfo(repo, number, issue, head["ref"], (base or {}).get("ref") or "",
                    doc.get("state") or "open", bool(doc.get("merged_at") or doc.get("merged")),
                    iso_time(doc.get("updated_at")), str(head.get("sha") or ""),
                    str(doc.get("node_id") or ""), bool(doc.get("draft")))


class PullWatch:
    def __init__(self, gh: GitHubClient, repos: Iterable[str], login: str, per_page: int = 50,
                 clock: Callable[[], float] = time.time) -> None:
        self.gh = gh
        self.login = login  # the agents' own: only the pull requests it opened are theirs
        self.per_page = per_page
        self.clock = clock
        self.started = clock()
        self.etag: dict[str, str] = {}
        self.review_etag: dict[tuple[str, int], str] = {}
        self.pulls: dict[tuple[str, int], PullInfo] = {}  # (repo, pr)
        self.first: set[str] = set(repos)  # repositories not read yet
        self.not_ours: set[tuple[str, int]] = set()

    def issue_of(self, repo: str, number: int) -> int | None:
        info = self.pulls.get((repo, number))
        return info.issue if info else None

    async def lookup(self, repo: str, number: int) -> int | None:
        """``number``'s task issue if it is one of the agents' pull requests the list has
        not shown yet (one GET; numbers that are not are remembered)."""
        if (repo, number) in self.not_ours:
            return None
        if len(self.not_ours) > 10_000:
            self.not_ours.clear()
        try:
            doc = (await self.gh.request("GET", f"/repos/{repo}/pulls/{number}")).data
        except GitHubError as exc:
            if exc.status == 404 and not isinstance(exc, Unavailable):
                self.not_ours.add((repo, number))
                return None
            raise
        info = pull_info(repo, doc, self.login) if isinstance(doc, dict) else None
        if info is None:
            self.not_ours.add((repo, number))
            return None
        self.pulls.setdefault((repo, number), info)
        return info.issue

    def of_issue(self, repo: str, issue: int) -> PullInfo | None:
        found = [p for (r, _), p in self.pulls.items() if r == repo and p.issue == issue]
        return max(found, key=lambda p: p.number) if found else None

    async def poll(self, repo: str) -> tuple[list[PullInfo], set[int]]:
        """Read the list if it changed. Returns the pull requests that closed (merged or
        not) since the last read (at the first read: those closed within ``RECENT``), and
        the numbers of those that changed at all (a review moves ``updated_at``)."""
        reply = await self.gh.request("GET", f"/repos/{repo}/pulls", etag=self.etag.get(repo),
                                      params={"state": "all", "sort": "updated",
                                              "direction": "desc", "per_page": self.per_page})
        if reply.status == 304:
            return [], set()
        first = repo in self.first
        self.first.discard(repo)
        closed, changed = [], set()
        for doc in reply.data or []:
            if not isinstance(doc, dict):
                continue
            info = pull_info(repo, doc, self.login)
            if info is None:
                continue
            before = self.pulls.get((repo, info.number))
            self.pulls[(repo, info.number)] = info
            if before is None or before.updated != info.updated:
                changed.add(info.number)
            if info.state != "closed":
                continue
            if (before is not None and before.state != "closed") or \
                    (before is None and (not first or self.clock() - info.updated < RECENT)):
                closed.append(info)
        if reply.etag:
            self.etag[repo] = reply.etag
        return closed, changed

    async def new_reviews(self, repo: str, pr: int) -> list[dict[str, Any]]:
        """A pull request's reviews, if they changed since the last read."""
        key = (repo, pr)
        reply = await self.gh.request("GET", f"/repos/{repo}/pulls/{pr}/reviews",
                                      etag=self.review_etag.get(key), params={"per_page": 100})
        if reply.status == 304:
            return []
        if reply.etag:
            self.review_etag[key] = reply.etag
        return [r for r in reply.data or [] if isinstance(r, dict)]
