"""Issue-side operations for a claimed task: assignee, labels, comments (never duplicated)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from .client import GitHubClient, GitHubError, Unavailable
from .markers import Comment, find_markers


class IssueOps:
    def __init__(self, client: GitHubClient, repo: str) -> None:
        self.gh = client
        self.repo = repo
        self._uncertain: set[tuple[int, str, str]] = set()  # comments whose POST may have landed

    def _path(self, number: int, tail: str = "") -> str:
        return f"/repos/{self.repo}/issues/{number}{tail}"

    async def get(self, number: int) -> dict[str, Any]:
        issue: dict[str, Any] = (await self.gh.request("GET", self._path(number))).data
        return issue

    async def mark_claimed(self, number: int, fresh: dict[str, Any], login: str | None,
                           label: str) -> None:
        """Assignee and claimed label in one PATCH, from a fresh read of the issue (PATCH
        replaces both sets, so they are computed from what the issue has now). No login:
        the label only (the assign lock has assigned already)."""
        labels = [x["name"] for x in fresh.get("labels") or [] if isinstance(x, dict)]
        change: dict[str, Any] = {"labels": labels + ([label] if label not in labels else [])}
        if login is not None:
            assignees = [a["login"] for a in fresh.get("assignees") or [] if isinstance(a, dict)]
            change["assignees"] = assignees + ([login] if login not in assignees else [])
        await self.gh.request("PATCH", self._path(number), json=change)

    async def set_labels(self, number: int, labels: list[str]) -> None:
        await self.gh.request("PUT", self._path(number, "/labels"), json={"labels": labels})

    async def close(self, number: int) -> None:
        await self.gh.request("PATCH", self._path(number), json={"state": "closed"})

    async def add_labels(self, number: int, labels: list[str]) -> None:
        """Additive (POST): safe beside another agent's label changes."""
        await self.gh.request("POST", self._path(number, "/labels"), json={"labels": labels})

    async def remove_label(self, number: int, label: str) -> None:
        try:
            await self.gh.request("DELETE", self._path(number, f"/labels/{quote(label, safe='')}"))
        except GitHubError as exc:
            if exc.status != 404 or isinstance(exc, Unavailable):
                raise  # 404: it was not there, which is what we wanted

    async def react(self, comment_id: int, content: str) -> None:
        """A reaction on a comment, so people see a command was taken."""
        await self.gh.request("POST", f"/repos/{self.repo}/issues/comments/{comment_id}/reactions",
                              json={"content": content})

    async def comments(self, number: int, max_pages: int = 50) -> list[dict[str, Any]]:
        """Every comment of an issue, oldest first."""
        out: list[dict[str, Any]] = []
        page = 1
        while page <= max_pages:
            reply = await self.gh.request("GET", self._path(number, "/comments"),
                                          params={"per_page": 100, "page": page})
            out += [c for c in reply.data or [] if isinstance(c, dict)]
            if 'rel="next"' not in reply.headers.get("link", ""):
                break
            page += 1
        return out

    async def pull_list(self, number: int, kind: str,
                        max_pages: int = 20) -> list[dict[str, Any]]:
        """A pull request's ``reviews`` or review ``comments``, oldest first."""
        out: list[dict[str, Any]] = []
        for page in range(1, max_pages + 1):
            reply = await self.gh.request("GET", f"/repos/{self.repo}/pulls/{number}/{kind}",
                                          params={"per_page": 100, "page": page})
            out += [c for c in reply.data or [] if isinstance(c, dict)]
            if 'rel="next"' not in reply.headers.get("link", ""):
                break
        return out

    async def comment_id(self, number: int, comment: Comment) -> int | None:
        """The id of the comment carrying ``comment``'s marker, if there is one."""
        for c in await self.comments(number):
            if (comment.kind, comment.key) in find_markers(c.get("body", "")):
                return c.get("id")
        return None

    async def has_comment(self, number: int, comment: Comment) -> bool:
        """Whether a comment carrying ``comment``'s marker is on the issue already."""
        return any((comment.kind, comment.key) in find_markers(c.get("body", ""))
                   for c in await self.comments(number))

    async def comment_once(self, number: int, comment: Comment, attempts: int = 3) -> None:
        """Post a comment exactly once. After an uncertain attempt (5xx, timeout) the marker is
        looked for before any new POST, across calls too: a caller that retries after
        :class:`Unavailable` never duplicates the comment. Raises Unavailable when GitHub did
        not answer ``attempts`` times."""
        mark = (number, comment.kind, comment.key)
        for _ in range(attempts):
            try:
                if mark in self._uncertain:
                    if await self.has_comment(number, comment):
                        self._uncertain.discard(mark)
                        return
                await self.gh.request("POST", self._path(number, "/comments"), retry=False,
                                      json={"body": comment.body})
                self._uncertain.discard(mark)
                return
            except Unavailable:
                self._uncertain.add(mark)
        raise Unavailable(0, f"comment not posted after {attempts} attempts", "POST",
                          self._path(number, "/comments"))
