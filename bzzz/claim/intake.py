"""The comment intake: one place that reads task issues' comments and acts on writers' commands.

Comments come from two sources that feed one path:

- polling: ``GET /repos/{r}/issues/comments?sort=updated&direction=asc&since=<cursor>`` once
  per repository per poll, with ``If-None-Match`` (an idle repository costs nothing);
- the ``issue_comment`` webhook (created, edited), when the agent has one.

A comment is a command when a line starts with ``/bzzz <verb>`` (bzzz/claim/trust.py). Its
author's permission is asked of GitHub (cached for ``cache_ttl`` seconds); commands of people
without write access are dropped and counted. Each command is acted on once:

- by this agent: comment ids it has handled are kept in ``data_dir`` with the polling cursor,
  so a restart does not act again;
- across the mesh: the agent that creates ``refs/bzzz/commands/<comment id>`` (git refs are
  GitHub's one compare-and-set) does what must happen once on GitHub (a reaction, a label, an
  answer); every agent still applies the local part (a running task is stopped by whoever
  runs it).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from ..github.client import GitHubClient, GitHubError, Unavailable
from ..github.markers import find_markers
from .trust import (MAX_ARG, Command, Verb, command_from_comment, is_writer, issue_number,
                    parse_command)

if TYPE_CHECKING:
    from trio_typing import TaskStatus

log = logging.getLogger("bzzz.intake")
PER_PAGE = 100
MAX_PAGES = 10
SEEN_LIMIT = 20_000
COMMAND_REF = "refs/bzzz/commands/{id}"


class Permissions:
    """Repository permissions of GitHub users, asked of the permission API, cached briefly
    (an approval by someone who just lost write access counts for at most ``ttl`` s)."""

    def __init__(self, gh: GitHubClient, ttl: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.gh = gh
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[tuple[str, str], tuple[bool, float]] = {}
        self.lookups = 0

    async def writer(self, repo: str, login: str) -> bool:
        key = (repo.lower(), login.lower())
        hit = self._cache.get(key)
        if hit is not None and hit[1] > self.clock():
            return hit[0]
        self.lookups += 1
        try:
            data = (await self.gh.request(
                "GET", f"/repos/{repo}/collaborators/{login}/permission")).data or {}
            ok = is_writer(data.get("permission"), data.get("role_name"))
        except GitHubError as exc:
            if exc.status != 404 or isinstance(exc, Unavailable):
                raise  # unknown is not "no": the caller retries later
            ok = False
        self._cache[key] = (ok, self.clock() + self.ttl)
        return ok

    async def writers(self, repo: str, logins: set[str]) -> set[str]:
        return {login for login in sorted(logins) if await self.writer(repo, login)}


class CommandLock:
    """``refs/bzzz/commands/<comment id>``: created by exactly one agent, which then does the
    command's once-only part. The ref points at a commit naming that agent, so an uncertain
    creation is settled by reading it."""

    def __init__(self, gh: GitHubClient, repo: str, node: str,
                 base: Callable[[], Awaitable[tuple[str, str]]]) -> None:
        self.gh, self.repo, self.node, self._base = gh, repo, node, base

    async def take(self, comment_id: int | str) -> bool:
        parent, tree = await self._base()
        ref = COMMAND_REF.format(id=comment_id)
        commit = (await self.gh.request(
            "POST", f"/repos/{self.repo}/git/commits", retry=True,
            json={"message": f"bzzz command {comment_id} taken by {self.node}\n",
                  "tree": tree, "parents": [parent]})).data["sha"]
        try:
            await self.gh.request("POST", f"/repos/{self.repo}/git/refs", retry=False,
                                  json={"ref": ref, "sha": commit})
            return True
        except Unavailable:
            pass  # did it land? read it
        except GitHubError as exc:
            if exc.status == 422:
                return False
            raise
        try:
            got = (await self.gh.request("GET", f"/repos/{self.repo}/git/{ref}")).data
        except GitHubError as exc:
            if exc.status == 404:
                return False  # it did not land; the next poll tries again
            raise
        return bool((got.get("object") or {}).get("sha") == commit)


class EveryoneActs:
    """The assign claim mode's tokens may not create refs: every agent does the once-only
    part. It is idempotent (labels; reactions are one per login), so the cost is one extra
    reaction per agent."""

    async def take(self, comment_id: int | str) -> bool:
        return True


Handler = Callable[[Command, bool], Awaitable[None]]


async def _same(repo: str, number: int) -> int | None:
    return number  # (command, we won the command ref)


class CommentIntake:
    def __init__(self, gh: GitHubClient, perms: Permissions,
                 locks: Mapping[str, CommandLock | EveryoneActs], handler: Handler, *,
                 state_file: Path | None = None,
                 route: Callable[[str, int], Awaitable[int | None]] | None = None,
                 waiting: Callable[[str, int], bool] = lambda r, n: False) -> None:
        self.gh = gh
        self.perms = perms
        self.locks = locks
        self.handler = handler
        # issue or pull request number -> its task's issue (None: no task)
        self.route = route or _same
        self.waiting = waiting  # is this issue's task waiting for an answer?
        self.state_file = state_file
        self.cursor: dict[str, str] = {}
        self.etag: dict[str, str] = {}
        self.seen: OrderedDict[int | str, None] = OrderedDict()  # comment ids, "review-<id>"
        self._busy: set[int] = set()
        self.counts: Counter[str] = Counter()
        self.queue_send, self.queue_recv = \
            trio.open_memory_channel[tuple[str, dict[str, Any]]](1000)
        self._load()

    # ---------------------------------------------------------------- persisted state

    def _load(self) -> None:
        if self.state_file is None or not self.state_file.exists():
            return
        try:
            doc = json.loads(self.state_file.read_text())
            self.cursor = {str(k): str(v) for k, v in doc.get("cursor", {}).items()}
            for cid in doc.get("seen", [])[-SEEN_LIMIT:]:
                if isinstance(cid, (int, str)):
                    self.seen[cid] = None
        except (OSError, ValueError, AttributeError, TypeError) as exc:
            # a damaged state file costs re-reading comments; the command refs still keep
            # every command to one action mesh-wide
            log.warning("intake state unreadable; starting from scratch", extra={"error": str(exc)})
            self.counts["state_unreadable"] += 1

    def _save(self) -> None:
        if self.state_file is None:
            return
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"cursor": self.cursor, "seen": list(self.seen)}))
        os.replace(tmp, self.state_file)

    def _mark(self, cid: int | str) -> None:
        self.seen[cid] = None
        while len(self.seen) > SEEN_LIMIT:
            self.seen.popitem(last=False)

    # ---------------------------------------------------------------- sources

    async def poll(self, repo: str) -> int:
        """Read the comments changed since the cursor; returns how many commands were acted on."""
        params: dict[str, Any] = {"sort": "updated", "direction": "asc", "per_page": PER_PAGE}
        if repo in self.cursor:
            params["since"] = self.cursor[repo]
        path = f"/repos/{repo}/issues/comments"
        reply = await self.gh.request("GET", path, params=params, etag=self.etag.get(repo))
        if reply.status == 304:
            return 0
        docs = list(reply.data or [])
        first_etag = reply.etag
        page = 1
        while 'rel="next"' in reply.headers.get("link", "") and page < MAX_PAGES:
            page += 1
            reply = await self.gh.request("GET", path, params={**params, "page": page})
            docs += list(reply.data or [])
        acted = 0
        newest = self.cursor.get(repo)
        try:
            for doc in docs:  # oldest change first
                if not isinstance(doc, dict):
                    continue
                acted += await self.take(repo, doc)
                if isinstance(doc.get("updated_at"), str):
                    newest = doc["updated_at"]
        finally:
            # a comment that failed comes again (`since` is inclusive); so do the newest
            # ones, which are marked seen already
            if newest is not None and newest != self.cursor.get(repo):
                self.cursor[repo] = newest
                self.etag.pop(repo, None)
            elif first_etag:
                self.etag[repo] = first_etag
            self._save()
        return acted

    def on_webhook(self, event: str, repo: str, payload: dict[str, Any]) -> None:
        """An ``issue_comment`` delivery (created or edited): queued for :meth:`run`."""
        if event != "issue_comment" or payload.get("action") not in ("created", "edited"):
            return
        comment = payload.get("comment")
        if isinstance(comment, dict):
            try:
                self.queue_send.send_nowait((repo, comment))
            except trio.WouldBlock:
                self.counts["webhook_queue_full"] += 1  # polling picks it up

    async def run(self, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Act on webhook comments as they arrive (polling is driven by the claim loop)."""
        task_status.started()
        async for repo, comment in self.queue_recv:
            try:
                await self.take(repo, comment)
                self._save()
            except (GitHubError, OSError) as exc:
                log.warning("comment from a webhook not handled; polling will retry",
                            extra={"error": str(exc)})

    # ---------------------------------------------------------------- one comment

    async def take(self, repo: str, doc: dict[str, Any]) -> int:
        """Act on one comment if it is a writer's command not handled yet: 1 if acted."""
        cid = doc.get("id")
        if not isinstance(cid, int) or cid in self.seen or cid in self._busy:
            return 0
        cmd = command_from_comment(repo, doc) or self._plain_answer(repo, doc)
        if cmd is None:
            return 0  # not marked: a comment edited into a command later still counts
        self._busy.add(cid)  # the webhook and a poll may bring the same comment at once
        try:
            return await self._dispatch(repo, cmd, cid, cid)
        finally:
            self._busy.discard(cid)

    def _plain_answer(self, repo: str, doc: dict[str, Any]) -> Command | None:
        """A plain reply on an issue whose task waits for an answer is the answer."""
        number, user, body = issue_number(doc), doc.get("user"), doc.get("body")
        if number is None or not isinstance(user, Mapping) or not isinstance(body, str) \
                or not isinstance(user.get("login"), str) or not body.strip() \
                or find_markers(body) or not self.waiting(repo, number):
            return None
        return Command(repo, number, doc["id"], user["login"], Verb.ANSWER, body.strip()[:MAX_ARG])

    async def take_review(self, repo: str, pr: int, review: dict[str, Any]) -> int:
        """A pull request review (its body) as a command, like a comment."""
        rid, user, body = review.get("id"), review.get("user"), review.get("body")
        if not isinstance(rid, int) or not isinstance(user, Mapping) or \
                not isinstance(user.get("login"), str) or not isinstance(body, str):
            return 0
        key = f"review-{rid}"
        if key in self.seen or review.get("state") == "PENDING":
            return 0
        parsed = parse_command(body)
        if parsed is None:
            self._mark(key)
            return 0
        cmd = Command(repo, pr, rid, user["login"], parsed[0], parsed[1], source="review")
        return await self._dispatch(repo, cmd, key, key)

    async def _dispatch(self, repo: str, cmd: Command, seen_key: int | str,
                        lock_key: int | str) -> int:
        issue = await self.route(repo, cmd.issue)
        if issue is None:
            self.counts["not_a_task"] += 1
            self._mark(seen_key)
            return 0
        if issue != cmd.issue:
            cmd = replace(cmd, issue=issue)
        if not await self.perms.writer(repo, cmd.author):
            self.counts["not_writer"] += 1
            log.info("ignored a command from someone without write access",
                     extra={"repo": repo, "issue": cmd.issue, "verb": cmd.verb.value,
                            "author": cmd.author})
            self._mark(seen_key)
            return 0
        won = await self.locks[repo].take(lock_key)
        await self.handler(cmd, won)
        self.counts[f"{cmd.verb.value}{'' if won else '_seen'}"] += 1
        self._mark(seen_key)
        return 1
