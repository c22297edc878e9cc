"""Finding tasks: conditional polling of each repository's open ``bzzz`` issues.

The first page is requested with ``If-None-Match``; a 304 means nothing changed and costs no
rate-limit budget, so an idle mesh spends nothing. Issues are sorted by ``updated``
(newest first): any change to any task (a label, a comment, a close) moves it onto page 1
and so changes page 1's ETag, which makes that one conditional request a faithful change
detector. When it changed, every page is read. Issues that are not valid tasks are skipped
and counted, never fatal.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ..github.client import GitHubClient
from .task import TASK_LABEL, Task, TaskError, parse_issue

log = logging.getLogger("bzzz.feed")
PER_PAGE = 100
MAX_PAGES = 20


@dataclass
class RepoFeed:
    repo: str
    etag: str | None = None
    tasks: dict[int, Task] = field(default_factory=dict)
    malformed: int = 0
    polls: int = 0
    unchanged: int = 0


class TaskFeed:
    def __init__(self, client: GitHubClient, repos: list[str]) -> None:
        self.gh = client
        self.repos = {r: RepoFeed(r) for r in repos}

    async def poll(self, repo: str) -> bool:
        """Refresh one repository; True when its task list changed."""
        feed = self.repos[repo]
        feed.polls += 1
        params = {"state": "open", "labels": TASK_LABEL, "sort": "updated",
                  "direction": "desc", "per_page": PER_PAGE}
        first = await self.gh.request("GET", f"/repos/{repo}/issues", params=params,
                                      etag=feed.etag)
        if first.status == 304:
            feed.unchanged += 1
            return False
        docs = list(first.data or [])
        page = 1
        reply = first
        while 'rel="next"' in reply.headers.get("link", "") and page < MAX_PAGES:
            page += 1
            reply = await self.gh.request("GET", f"/repos/{repo}/issues",
                                          params={**params, "page": page})
            docs += list(reply.data or [])
        tasks: dict[int, Task] = {}
        for doc in docs:
            try:
                task = parse_issue(repo, doc)
            except TaskError as exc:
                feed.malformed += 1
                log.warning("skipped malformed issue", extra={"repo": repo, "why": str(exc)})
                continue
            tasks[task.number] = task
        changed = tasks != feed.tasks
        feed.tasks, feed.etag = tasks, first.etag
        return changed

    def all_tasks(self) -> list[Task]:
        return [t for feed in self.repos.values() for t in feed.tasks.values()]
