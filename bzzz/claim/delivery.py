"""Repository work around one task attempt: the checkout before it, the pull request after.

Before: the node's mirror of the repository is fetched (incrementally) and the task gets a
fresh checkout at the base branch (``base=``, else the default branch) or, in a review
round, at its pull request's branch. After: the task's own commits, where they are
safe to keep (bzzz/repo/taskcommits.py), then the working files as one more commit by
``Bzzz <node>`` with the issue in a trailer, pushed (never forced) to
``bzzz/<issue>-<slug>`` (``-2``, ``-3``… when that name is taken), and a pull request is
opened (draft unless ``pr=ready``) whose body says ``Fixes #<issue>``, with review asked of
the issue's author. A run that failed still pushes what it changed, without a pull request.

What the task hands back is read from its output directory without following links (a task
could point ``summary.md`` at a file only the agent can read): ``summary.md``,
``follow-ups.json``.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import os
import re
import shutil
import stat
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from ..errors import ClaimError, RepoError
from ..github.client import GitHubClient, GitHubError
from ..github.markers import defuse_closing, defuse_markers, find_markers, marker
from ..repo.git import Git, GitError
from ..repo.taskcommits import snapshot_keeping
from ..repo.workspace import (Checkout, Mirrors, Spare, branch_name, changed_files, checkout,
                              make_spare, touched_files)
from .task import Task, TaskSpec

log = logging.getLogger("bzzz.delivery")

# ready-when-green: a draft until the head's CI is green, then ready (bzzz/claim/ciround.py)
PR_MODES = ("draft", "ready", "none", "ready-when-green")
MAX_SUMMARY = 60_000
MAX_FOLLOW_UPS = 10
MAX_FOLLOW_UP_DEPTH = 3  # a follow-up of a follow-up of a follow-up files no more
MAX_BRANCH_TRIES = 20
_BRANCH_RE = re.compile(r"^bzzz/(?P<issue>\d+)-[a-z0-9-]+$")


class DeliveryError(ClaimError):
    """Delivering the work failed: a line for the result comment (already redacted)."""


@dataclass(frozen=True)
class PullRef:
    """The pull request a task already has (the agents' link comment names it)."""
    number: int
    branch: str
    base: str


@dataclass
class Delivered:
    commit: str
    branch: str
    files: list[str]
    kept: int = 0  # the task's own commits kept under ``commit`` (bzzz/repo/taskcommits.py)
    pr: int | None = None
    pr_url: str | None = None
    opened: bool = False  # a new pull request (not a new round on an old one)
    reviewers: list[str] = field(default_factory=list)


def commit_message(task: Task, summary: str, node: str, login: str) -> str:
    """The commit a person would write: the issue's title, the agent's summary, and the
    trailers (``commit_trailers``)."""
    title = " ".join(task.title.split())[:200] or f"Task #{task.number}"
    body = defuse_closing(summary.strip()[:2000])
    trailers = commit_trailers(task, node, login)
    return f"{title}\n\n" + (f"{body}\n\n" if body else "") + "\n".join(trailers) + "\n"


def commit_trailers(task: Task, node: str, login: str) -> list[str]:
    """The issue, the node, and the issue's author as co-author (GitHub credits them
    through their no-reply address; not for the agents' own login, e.g. a follow-up): they
    end the delivery's commit and each of the task's own commits kept."""
    trailers = [f"Bzzz-Issue: {task.repo}#{task.number}", f"Bzzz-Node: {node}"]
    author = task.author
    if author and author.lower() != login.lower() and _LOGIN.fullmatch(author):
        address = (f"{task.author_id}+{author}" if task.author_id else author)
        trailers.append(f"Co-authored-by: {author} <{address}@users.noreply.github.com>")
    return trailers


_LOGIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})(?:\[bot\])?")


def pr_mode(spec: TaskSpec | None) -> str:
    mode = (spec.options.get("pr") if spec else None) or "draft"
    return mode if mode in PR_MODES else "draft"


def prior_pull(comments: Iterable[Mapping[str, Any]], issue: int,
               trusted: Callable[[str], bool]) -> PullRef | None:
    """The newest pull request the agents linked from this issue: a ``pr`` marker in a
    comment by a trusted author (a writer: the agents' logins are), for a branch of this
    issue's own prefix. Anyone can type a marker; only writers' count."""
    found = None
    for c in comments:
        login = (c.get("user") or {}).get("login")
        if not isinstance(login, str) or not trusted(login):
            continue
        for kind, key in find_markers(c.get("body") or ""):
            if kind != "pr":
                continue
            parts = key.split(":")
            if len(parts) != 3 or not parts[0].isdigit():
                continue
            m = _BRANCH_RE.match(parts[1])
            if m is None or int(m["issue"]) != issue:
                continue
            found = PullRef(int(parts[0]), parts[1], parts[2])
    return found


def pr_marker(pr: int, branch: str, base: str) -> str:
    return marker("pr", f"{pr}:{branch}:{base}")


def read_handed_back(out: Path, name: str, limit: int) -> str | None:
    """A regular file the task left in its output directory (never through a link), at
    most ``limit`` bytes; None if absent or not a plain file."""
    try:
        fd = os.open(out / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = os.read(fd, limit + 1)
    finally:
        os.close(fd)
    text = data[:limit].decode("utf-8", "replace")
    return text + ("\n… (cut)" if len(data) > limit else "")


@dataclass(frozen=True)
class FollowUp:
    title: str
    body: str
    labels: tuple[str, ...]

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.title.strip().lower().encode()).hexdigest()[:12]


def parse_follow_ups(text: str) -> list[FollowUp]:
    """``follow-ups.json``: a list of ``{"title", "body"?, "labels"?}``; ValueError with
    what is wrong (the task's author sees it)."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"follow-ups.json is not JSON: {exc}") from None
    if not isinstance(doc, list):
        raise ValueError("follow-ups.json must be a JSON list of {\"title\", \"body\", \"labels\"}")
    if len(doc) > MAX_FOLLOW_UPS:
        raise ValueError(f"follow-ups.json has {len(doc)} entries; at most {MAX_FOLLOW_UPS}")
    out = []
    for i, item in enumerate(doc, 1):
        if not isinstance(item, dict):
            raise ValueError(f"follow-up {i} is not an object")
        title, body, labels = item.get("title"), item.get("body", ""), item.get("labels", [])
        if not isinstance(title, str) or not title.strip() or len(title) > 256:
            raise ValueError(f"follow-up {i}: \"title\" must be text of 1 to 256 characters")
        if not isinstance(body, str) or len(body) > 60_000:
            raise ValueError(f"follow-up {i}: \"body\" must be text of at most 60000 characters")
        if not isinstance(labels, list) or len(labels) > 10 or not all(
                isinstance(x, str) and 0 < len(x) <= 50 for x in labels):
            raise ValueError(f"follow-up {i}: \"labels\" must be a list of at most 10 names")
        bad = [x for x in labels if x.startswith("bzzz:")]
        if bad:
            raise ValueError(f"follow-up {i}: state labels ({', '.join(bad)}) are the agents'")
        out.append(FollowUp(title.strip(), body, tuple(dict.fromkeys(labels))))
    return out


def protected_changes(files: Iterable[str], patterns: Iterable[str]) -> list[str]:
    """The changed paths a protected glob covers (case-insensitive; ``*`` crosses ``/``, so
    ``dir/**`` is everything below ``dir``), and any path that stands where a protected
    directory would be (a file or link named ``.github``: git lists files, not directories)."""
    pats = [p.lower() for p in patterns]
    dirs = [_glob_dir(p) for p in pats]
    out = []
    for f in files:
        low = f.lower()
        if any(fnmatch.fnmatchcase(low, p) for p in pats) or \
                any(d == low or d.startswith(low + "/") for d in dirs if d):
            out.append(f)
    return out


def _glob_dir(pattern: str) -> str:
    """The directory a glob's literal start names (``.github/workflows`` of
    ``.github/workflows/**``), or "" when it names none."""
    head = pattern[:min((pattern.find(c) for c in "*?[" if c in pattern), default=len(pattern))]
    return head[:max(head.rfind("/"), 0)]


def follow_up_depth(body: str | None) -> int:
    depths = [int(k.rsplit(":", 1)[1]) for kind, k in find_markers(body or "")
              if kind == "follow-up-of" and k.rsplit(":", 1)[-1].isdigit()]
    return max(depths, default=0)


class RepoWork:
    def __init__(self, gh: GitHubClient, git: Git, mirrors: Mirrors, workroot: Path,
                 node_id: str, login: str, owner: tuple[int, int] | None, *,
                 protected: Sequence[str] = (".github/workflows/**",),
                 allow_protected: Iterable[str] = ()) -> None:
        self.gh = gh
        self.protected = list(protected)  # globs a delivery may not change (config.py)
        self.allow_protected = {r.lower() for r in allow_protected}  # repos where it may
        self.git = git
        self.mirrors = mirrors
        self.workroot = Path(workroot)
        self.node_id = node_id
        self.login = login
        self.owner = owner
        self._repo_docs: dict[str, dict[str, Any]] = {}
        self.prs_opened = 0
        self.commits_kept = 0  # the tasks' own commits delivered (bzzz/repo/taskcommits.py)
        self.commits_declined = 0  # deliveries whose task's commits were not safe to keep
        # one checkout of each repository's default branch written ahead of time
        self.spare_dir = self.workroot / ".spare"
        shutil.rmtree(self.spare_dir, ignore_errors=True)  # a killed agent's half-made one
        self.spares: dict[str, Spare] = {}
        self._refilling: dict[str, trio.Event] = {}
        self.spares_used = 0

    def author(self) -> tuple[str, str]:
        safe = re.sub(r"[^A-Za-z0-9._-]+", "-", self.node_id).strip("-") or "node"
        return f"Bzzz {self.node_id}", f"{safe}@bzzz.invalid"

    async def repo_doc(self, repo: str) -> dict[str, Any]:
        doc = self._repo_docs.get(repo)
        if doc is None:
            doc = (await self.gh.request("GET", f"/repos/{repo}")).data or {}
            self._repo_docs[repo] = doc
        return doc

    async def prepare(self, task: Task, spec: TaskSpec | None, ws: Path, private: Path,
                      prior: PullRef | None) -> Checkout | None:
        """A fresh checkout in ``ws``; None when the repository has no commits (the task
        then runs in an empty directory). RepoError with a line for the issue otherwise."""
        doc = await self.repo_doc(task.repo)
        url, default = doc.get("clone_url"), doc.get("default_branch") or "main"
        if not isinstance(url, str):
            raise RepoError(f"GitHub gave no clone URL for {task.repo}")
        mirror = await self.mirrors.fetch(task.repo, url)
        base = prior.branch if prior else ((spec.options.get("base") if spec else None) or default)
        start = await self.mirrors.resolve(mirror, f"refs/heads/{base}")
        if start is None:
            if prior is not None:
                raise RepoError(f"the pull request's branch {base} is gone")
            if base == default and await self.mirrors.resolve(mirror, "HEAD") is None \
                    and not await self._has_branches(mirror):
                return None  # an empty repository
            raise RepoError(f"the base branch {base!r} does not exist in {task.repo}")
        local = prior.branch if prior else branch_name(task.number, task.title)
        making = self._refilling.get(task.repo)
        if making is not None and prior is None:
            await making.wait()  # it started earlier: sooner done than a second checkout
        spare = self.spares.pop(task.repo, None)
        if spare is not None and (spare.base != base or spare.mirror != mirror):
            shutil.rmtree(spare.path.parent, ignore_errors=True)
            spare = None
        try:
            co = await checkout(self.git, mirror, task.repo, start, ws, private, local,
                                self.owner, spare)
        except GitError as exc:
            raise RepoError(f"checkout of {base}: {exc}") from None
        if spare is not None:
            self.spares_used += 1
        return co

    async def refill(self, repo: str) -> None:
        """Write the next task's checkout of ``repo``'s default branch ahead of time (a
        background job: a failure only means the next task checks out as usual)."""
        if repo in self._refilling or repo in self.spares:
            return
        self._refilling[repo] = done = trio.Event()
        try:
            doc = self._repo_docs.get(repo) or {}
            base = doc.get("default_branch") or "main"
            mirror = self.mirrors.path(repo)
            start = await self.mirrors.resolve(mirror, f"refs/heads/{base}")
            if start is None:
                return
            root = self.spare_dir / repo.replace("/", "_")
            self.spares[repo] = await make_spare(self.git, mirror, repo, base, start, root,
                                                 self.owner)
        except (GitError, OSError, RepoError) as exc:
            log.info("no spare checkout", extra={"repo": repo, "error": str(exc)[:200]})
        finally:
            del self._refilling[repo]
            done.set()

    async def _has_branches(self, mirror: Path) -> bool:
        out = await self.git.out(["--git-dir", str(mirror), "for-each-ref", "--count=1",
                                  "refs/heads/"], what="for-each-ref")
        return bool(out)

    def base_of(self, task: Task, spec: TaskSpec | None, prior: PullRef | None) -> str:
        if prior is not None:
            return prior.base
        doc = self._repo_docs.get(task.repo) or {}
        return (spec.options.get("base") if spec else None) or doc.get("default_branch") or "main"

    async def deliver(self, co: Checkout, task: Task, spec: TaskSpec | None, key: str,
                      summary: str, succeeded: bool, prior: PullRef | None,
                      issue_url: str, checked: str = "",
                      leftovers: Sequence[str] = ()) -> Delivered | None:
        """Commit, push and (for a successful first round, unless ``pr=none``) open the pull
        request (``checked``: what the repository's own check said, for its body). None: the
        task changed nothing. ``leftovers``: globs of what the executor's tool leaves in the
        checkout (a coding agent's history files), never committed."""
        message = commit_message(task, summary, self.node_id, self.login)
        try:
            made = await snapshot_keeping(
                self.git, co, message, self.author(), exclude=leftovers,
                trailers=commit_trailers(task, self.node_id, self.login))
        except GitError as exc:
            raise DeliveryError(f"could not commit the changes: {exc}") from None
        except RepoError as exc:
            raise DeliveryError(str(exc)) from None
        if made is None:
            return None
        commit = made.head
        files = await changed_files(self.git, co.mirror, co.start, commit)
        # every commit pushed counts: one of the task's may change a path a later one restores
        self._refuse_protected(task, await touched_files(self.git, co.mirror, co.start, commit)
                               if made.kept else files)
        url = (await self.repo_doc(task.repo))["clone_url"]
        branch = await self._push(co, task, commit, url, prior)
        done = Delivered(commit, branch, files, made.kept)
        self.commits_kept += made.kept
        self.commits_declined += bool(made.declined)
        base = self.base_of(task, spec, prior)
        if prior is not None:
            done.pr, done.pr_url = prior.number, self._pr_url(task.repo, prior.number)
            return done
        if not succeeded or pr_mode(spec) == "none":
            return done
        body = "\n".join([
            marker("task", f"{task.repo}#{task.number}"),
            f"Fixes #{task.number}", "",
            defuse_closing(summary.strip()[:MAX_SUMMARY]) or "(no summary)", "",
            *([checked[:MAX_SUMMARY], ""] if checked else []), "---", f"🐝 Made by **{self.node_id}** for {issue_url} (attempt `{key}`). "
            "Review it here; a comment or review containing `/bzzz` from someone with write "
            "access starts another round on this branch."])
        try:
            pr = (await self.gh.request("POST", f"/repos/{task.repo}/pulls", retry=False, json={
                "title": task.title.strip()[:250] or f"Task #{task.number}", "head": branch,
                "base": base, "body": body, "draft": pr_mode(spec) != "ready"})).data
        except GitHubError as exc:
            raise DeliveryError(f"pushed {branch}, but GitHub refused the pull request: "
                                f"{exc.message}") from None
        self.prs_opened += 1
        done.pr, done.pr_url, done.opened = pr["number"], pr.get("html_url"), True
        if task.author and task.author.lower() != self.login.lower():
            try:
                await self.gh.request("POST", f"/repos/{task.repo}/pulls/{pr['number']}/"
                                      "requested_reviewers", json={"reviewers": [task.author]})
                done.reviewers = [task.author]
            except GitHubError as exc:  # not a collaborator, or GitHub says no: cosmetic
                log.info("review not requested", extra={"task": task.key, "error": exc.message})
        return done

    def _refuse_protected(self, task: Task, files: Sequence[str]) -> None:
        """A push runs the branch's workflows with the repository's secrets: changes to
        protected paths are delivered only where the operator allows them."""
        if task.repo.lower() in self.allow_protected:
            return
        hit = protected_changes(files, self.protected)
        if hit:
            shown = ", ".join(f"`{f}`" for f in hit[:20]) + (" …" if len(hit) > 20 else "")
            raise DeliveryError(
                f"nothing was pushed: the task changed protected paths ({shown}). Pushing "
                "them would run them as GitHub workflows with this repository's secrets; an "
                "operator can allow it for this repository with `delivery_allow_protected`.")

    def _pr_url(self, repo: str, number: int) -> str:
        html = (self._repo_docs.get(repo) or {}).get("html_url") or ""
        return f"{html}/pull/{number}" if html else f"#{number}"

    async def _push(self, co: Checkout, task: Task, commit: str, url: str,
                    prior: PullRef | None) -> str:
        if prior is not None:
            try:
                await self.mirrors.push(co.mirror, url, commit, prior.branch)
            except GitError as exc:
                raise DeliveryError(f"could not push to {prior.branch} (did it move while the "
                                    f"task ran? a retry starts from its new head): {exc}") from None
            return prior.branch
        last: Exception | None = None
        for n in range(1, MAX_BRANCH_TRIES + 1):
            name = branch_name(task.number, task.title, n)
            if await self.mirrors.resolve(co.mirror, f"refs/heads/{name}") is not None:
                continue  # taken (by an earlier attempt, or someone else)
            try:
                await self.mirrors.push(co.mirror, url, commit, name)
                return name
            except GitError as exc:
                last = exc
                if "rejected" not in str(exc) and "fetch first" not in str(exc):
                    break  # not a name clash: say why
        raise DeliveryError(f"could not push the changes: {last or 'every branch name is taken'}")

    async def file_follow_ups(self, task: Task, items: Sequence[FollowUp],
                              filed_before: set[str], open_markers: set[str],
                              inherits: bool = True) -> list[tuple[FollowUp, int]]:
        """File each follow-up not filed before (by digest); returns (item, issue number).
        ``inherits``: the task ran on a writer's approval, not on its author's own access;
        its follow-ups say so and carry the ``inherits`` marker, so they wait for one too
        (trust.py). The task's text cannot carry markers of its own: they are defused."""
        depth = follow_up_depth(task.body) + 1
        origin = (f"Follow-up of #{task.number}, filed by its task. #{task.number} ran on a "
                  "writer's approval, not on its author's own write access, and this "
                  "follow-up inherits that trust: it waits for a writer's approval too.\n"
                  f"{marker('inherits', str(task.number))}\n" if inherits
                  else f"Follow-up of #{task.number}.\n")
        out = []
        for item in items:
            if item.digest in filed_before or f"{task.number}:{item.digest}" in open_markers:
                continue
            body = (f"{defuse_markers(item.body.strip())}\n\n{origin}"
                    f"{marker('follow-up-of', f'{task.number}:{item.digest}:{depth}')}")
            labels = ["bzzz", *[x for x in item.labels if x != "bzzz"]]
            doc = (await self.gh.request("POST", f"/repos/{task.repo}/issues", retry=False, json={
                "title": item.title, "body": body, "labels": labels})).data
            out.append((item, doc["number"]))
        return out


def filed_digests(comments: Iterable[Mapping[str, Any]], trusted: Callable[[str], bool]) -> set[str]:
    """Follow-ups an earlier attempt filed: ``filed`` markers in writers' comments."""
    out = set()
    for c in comments:
        login = (c.get("user") or {}).get("login")
        if isinstance(login, str) and trusted(login):
            out |= {k for kind, k in find_markers(c.get("body") or "") if kind == "filed"}
    return out


def follow_up_markers(tasks: Iterable[Task]) -> set[str]:
    """``<issue>:<digest>`` of every open follow-up the feed holds."""
    out = set()
    for t in tasks:
        for kind, k in find_markers(t.body or ""):
            if kind == "follow-up-of":
                out.add(k.rsplit(":", 1)[0])
    return out


Feedback = Callable[[], Awaitable[str]]
