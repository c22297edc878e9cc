"""devhub's pull requests over HTTP, as GitHub's REST API has them: pulls, merging, review
requests, reviews, review comments, commits and files (computed with git), branches and
branch protection, and what a moved branch does to the pull requests on it.

A mixin of DevHubApp: the state changes are the Hub's (state.py); this module does the git
work they need (shas, diffs, merges) and renders the answers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import protection as protect
from .checks import required_states
from .handlers import Handlers
from .gitstore import Identity
from .http import Request, Response, _page, _since
from .render import Renderer
from .state import HubError, Issue, Repo, ReviewComment, closing_references

MERGE_METHODS = ("merge", "squash", "rebase")
_HUNK = re.compile(r"^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@")


def diff_lines(patch: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Each line of a file's patch with its diff ``position`` (GitHub's: the line below the
    first ``@@`` is 1, later hunk headers count too), kind (`` ``, ``+``, ``-``), its line
    number on the LEFT (old) and RIGHT (new) side, and where its hunk starts."""
    lines = patch.split("\n")
    out: list[dict[str, Any]] = []
    position = left = right = hunk = 0
    for i, line in enumerate(lines):
        m = _HUNK.match(line)
        if m:
            left, right, hunk = int(m.group(1)), int(m.group(2)), i
            if i > 0:
                position += 1
            continue
        position += 1
        if line.startswith("\\"):  # "\ No newline at end of file"
            continue
        kind = line[:1] if line[:1] in ("+", "-") else " "
        out.append({"position": position, "kind": kind, "hunk": hunk, "index": i,
                    "left": None if kind == "+" else left, "right": None if kind == "-" else right})
        if kind != "+":
            left += 1
        if kind != "-":
            right += 1
    return out, lines


def _string_fields(doc: dict[str, Any], *names: str) -> None:
    for name in names:
        if doc.get(name) is not None and not isinstance(doc[name], str):
            raise HubError(422, f"Invalid request.\n\nFor 'properties/{name}', "
                                f"{doc[name]!r} is not a string.")


def _int_field(doc: dict[str, Any], name: str) -> int | None:
    value = doc.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise HubError(422, f"Invalid request.\n\nFor 'properties/{name}', {value!r} is not an "
                            "integer.")
    return value


class PullsAPI(Handlers):
    """Handlers for DevHubApp, which provides _repo, _r, _number and refresh_contributors."""

    if TYPE_CHECKING:  # DevHubApp's (app.py), beside Handlers'
        async def refresh_contributors(self, r: Repo) -> None: ...

    # ------------------------------------------------------------------ rendering

    async def _shas(self, r: Repo, issue: Issue,
                    tips: dict[str, str] | None = None) -> tuple[str | None, str | None]:
        """(head sha, base sha): the branches' tips while open, as recorded once closed."""
        pull = issue.pr
        if issue.state != "open":
            return pull["head_sha"], pull["base_sha"]
        if tips is None:
            tips = await self.git.branch_tips(r.full_name)
        return tips.get(pull["head"], pull["head_sha"]), tips.get(pull["base"], pull["base_sha"])

    def _merge_blocker(self, r: Repo, issue: Issue, actor: str | None,
                       head: str | None = None) -> str | None:
        rule = r.protections.get(issue.pr["base"])
        states = required_states(r.statuses, r.check_runs, head or issue.pr["head_sha"] or "",
                                 protect.required_contexts(rule), protect.required_apps(rule))
        return protect.approvals_needed(rule, r.role(actor),
                                        self.hub.latest_reviews(r, issue.number),
                                        {r.owner} | r.push, states)

    async def _detail(self, r: Repo, issue: Issue, head: str | None,
                      base: str | None) -> dict[str, Any]:
        commits: list[dict[str, Any]] = []
        files: list[dict[str, Any]] = []
        mergeable, state = None, "unknown"
        if head and base:
            commits = await self.git.log(r.full_name, head, base)
            files = await self.git.diff(r.full_name, base, head)
            if issue.state == "open":
                mergeable = await self.git.merge_trees(r.full_name, base, head) is not None
                state = ("draft" if issue.pr["draft"] else "dirty" if not mergeable
                         else "blocked" if self._merge_blocker(r, issue, None, head)
                         else "clean")
        return {"commits": len(commits), "additions": sum(f["additions"] for f in files),
                "deletions": sum(f["deletions"] for f in files), "changed_files": len(files),
                "mergeable": mergeable, "rebaseable": mergeable, "mergeable_state": state}

    async def pull_doc(self, render: Renderer, r: Repo, issue: Issue, viewer: str | None,
                       detail: bool = True, tips: dict[str, str] | None = None) -> dict[str, Any]:
        head, base = await self._shas(r, issue, tips)
        extra = await self._detail(r, issue, head, base) if detail else None
        return render.pull(r, issue, viewer, head, base, extra)

    def _pull(self, req: Request, owner: str, repo: str, number: str) -> tuple[Repo, Issue]:
        r = self._repo(req, owner, repo)
        return r, self.hub.pull(r, self._number(number))

    # ------------------------------------------------------------------ pulls

    async def create_pull(self, req: Request, owner: str, repo: str) -> Response:
        r = self._repo(req, owner, repo)
        actor = req.actor()
        doc = req.obj()
        head, base = _branch_name(doc, "head"), _branch_name(doc, "base")
        if ":" in head:  # "owner:branch"; devhub has no forks, so only the owner's own
            head_owner, _, head = head.partition(":")
            if head_owner.lower() != r.owner.lower():
                raise HubError(422, "Validation Failed", [
                    {"resource": "PullRequest", "code": "invalid", "field": "head"}])
        _string_fields(doc, "body")
        tips = await self.git.branch_tips(r.full_name)
        for field_name, ref in (("head", head), ("base", base)):
            if ref not in tips:
                raise HubError(422, "Validation Failed",
                               [{"resource": "PullRequest", "code": "invalid", "field": field_name}])
        if head == base:
            raise HubError(422, "Validation Failed", [{"resource": "PullRequest", "code": "custom",
                                                       "message": f"No commits between {base} and {head}"}])
        issue = self.hub.create_pull(r, actor, req.now, doc.get("title"), doc.get("body"),
                                     head, base, bool(doc.get("draft", False)), tips[head],
                                     tips[base], bool(doc.get("maintainer_can_modify", False)))
        return 201, await self.pull_doc(self._r(req), r, issue, req.login), {}

    async def get_pull(self, req: Request, owner: str, repo: str, number: str) -> Response:
        r, issue = self._pull(req, owner, repo, number)
        return 200, await self.pull_doc(self._r(req), r, issue, req.login), {}

    async def list_pulls(self, req: Request, owner: str, repo: str) -> Response:
        """GitHub's filters: state (open|closed|all), head (``owner:branch``), base; sort
        created|updated|popularity|long-running; direction (desc for created, else asc)."""
        r = self._repo(req, owner, repo)
        state = req.arg("state", "open")
        if state not in ("open", "closed", "all"):
            raise HubError(422, "Validation Failed",
                           [{"resource": "PullRequest", "field": "state", "code": "invalid"}])
        items = [i for i in r.issues.values()
                 if i.pull is not None and (state == "all" or i.state == state)]
        head = req.arg("head")
        if head:
            head_owner, _, branch = head.rpartition(":")
            if head_owner and head_owner.lower() != r.owner.lower():
                items = []
            items = [i for i in items if i.pr["head"] == branch]
        base = req.arg("base")
        if base:
            items = [i for i in items if i.pr["base"] == base]
        sort = req.arg("sort", "created")
        direction = req.arg("direction", "desc" if sort == "created" else "asc")
        if direction not in ("asc", "desc"):
            raise HubError(422, "Validation Failed",
                           [{"resource": "PullRequest", "field": "direction", "code": "invalid"}])
        comments: dict[int, int] = {}
        for c in self.hub.visible_review_comments(r):
            comments[c.pull] = comments.get(c.pull, 0) + 1
        if sort == "long-running":  # open over a month, with activity in the last one
            month = 30 * 24 * 3600
            items = [i for i in items if req.now - i.created_at > month
                     and req.now - i.updated_at < month]
        key = {"created": lambda i: (i.created_at, i.number),
               "updated": lambda i: (i.updated_at, i.number),
               "popularity": lambda i: (i.comments + comments.get(i.number, 0), i.number),
               "long-running": lambda i: (i.created_at, i.number)}.get(sort)
        if key is None:
            raise HubError(422, "Validation Failed",
                           [{"resource": "PullRequest", "field": "sort", "code": "invalid"}])
        items.sort(key=key, reverse=direction == "desc")
        page, links = _page(req, items)
        render = self._r(req)
        tips = await self.git.branch_tips(r.full_name)
        return 200, [await self.pull_doc(render, r, i, req.login, False, tips)
                     for i in page], links

    async def edit_pull(self, req: Request, owner: str, repo: str, number: str) -> Response:
        r, issue = self._pull(req, owner, repo, number)
        doc = req.obj()
        _string_fields(doc, "title", "body", "base", "state")
        base_sha = None
        if doc.get("base") is not None:
            base_sha = (await self.git.branch_tips(r.full_name)).get(doc["base"])
            if base_sha is None:
                raise HubError(422, "Validation Failed",
                               [{"resource": "PullRequest", "field": "base", "code": "invalid"}])
        self.hub.update_pull(r, issue.number, req.actor(), req.now, doc, base_sha)
        return 200, await self.pull_doc(self._r(req), r, issue, req.login), {}

    async def list_pull_commits(self, req: Request, owner: str, repo: str,
                                number: str) -> Response:
        r, issue = self._pull(req, owner, repo, number)
        head, base = await self._shas(r, issue)
        commits = await self.git.log(r.full_name, head, base) if head and base else []
        page, links = _page(req, commits)
        render = self._r(req)
        return 200, [render.commit(r, c) for c in page], links

    async def list_pull_files(self, req: Request, owner: str, repo: str,
                              number: str) -> Response:
        r, issue = self._pull(req, owner, repo, number)
        head, base = await self._shas(r, issue)
        files = await self.git.diff(r.full_name, base, head) if head and base else []
        page, links = _page(req, files[:3000])
        render = self._r(req)
        return 200, [render.file(r, f, head) for f in page] if head else [], links

    # ------------------------------------------------------------------ merging

    async def check_merged(self, req: Request, owner: str, repo: str, number: str) -> Response:
        _, issue = self._pull(req, owner, repo, number)
        if issue.pr["merged"]:
            return 204, None, {}
        raise HubError(404, "Not Found")

    async def merge_pull(self, req: Request, owner: str, repo: str, number: str) -> Response:
        """``PUT /pulls/{n}/merge``: a merge commit, a squash or a rebase onto the base, made
        in the bare repository; the base moves by compare-and-set."""
        r, issue = self._pull(req, owner, repo, number)
        actor = req.actor()
        doc = req.obj()
        method = _merge_method(doc)
        head, base = await self._mergeable(r, issue, actor, doc)
        tree = await self.git.merge_trees(r.full_name, base, head)
        if tree is None:
            raise HubError(405, "Merge conflict")
        commits = await self.git.log(r.full_name, head, base)
        stamp = f"{req.now} +0000"
        merger = Identity(actor, f"{actor}@users.devhub", stamp)
        if method == "rebase":
            sha = await self._rebase(r, commits, base, merger)
        else:
            sha = await self._merge_commit(r, issue, method, doc, commits, tree, base, head,
                                           merger, stamp)
        pull = issue.pr
        if not await self.git.move_ref(r.full_name, f"refs/heads/{pull['base']}", sha, base):
            raise HubError(405, "Base branch was modified. Review and try the merge again.")
        closes = []
        if pull["base"] == r.default_branch:
            closes = closing_references([issue.body] + [c["message"] for c in commits],
                                        r.full_name)
        self.hub.merge_pull(r, issue.number, actor, req.now, sha, head, base, closes)
        await self.refs_moved(r, actor, req.now, {pull["base"]: (base, sha)})
        return 200, {"sha": sha, "merged": True, "message": "Pull Request successfully merged"}, {}

    async def _mergeable(self, r: Repo, issue: Issue, actor: str,
                         doc: dict[str, Any]) -> tuple[str, str]:
        """The head and base tips, once the actor may merge and the pull request can be:
        open, not a draft, something left to merge, the expected head, no protection
        blocking it."""
        if not r.can_push(actor):
            raise HubError(403, "Must have push access to repository")
        pull = issue.pr
        if issue.state != "open":
            raise HubError(405, "Pull Request is not mergeable")
        if pull["draft"]:
            raise HubError(405, "Pull Request is still a draft")
        tips = await self.git.branch_tips(r.full_name)
        head, base = tips.get(pull["head"]), tips.get(pull["base"])
        if head is None or base is None:
            raise HubError(405, "Pull Request is not mergeable")
        if await self.git.is_ancestor(r.full_name, head, base):  # nothing left to merge
            raise HubError(405, "Pull Request is not mergeable")
        if doc.get("sha") and doc["sha"] != head:
            raise HubError(409, "Head branch was modified. Review and try the merge again.")
        blocker = self._merge_blocker(r, issue, actor, head)
        if blocker:
            raise HubError(405, blocker)
        return head, base

    async def _rebase(self, r: Repo, commits: list[dict[str, Any]], base: str,
                      merger: Identity) -> str:
        """Each commit picked onto the base in turn, its author kept: the last one's sha."""
        sha = base
        for c in commits:
            picked = await self.git.pick_tree(r.full_name, c, sha)
            if picked is None:
                raise HubError(405, "This branch can't be rebased")
            author = Identity(c["author"]["name"], c["author"]["email"],
                              f"{c['author']['unix']} +0000")
            sha = await self.git.write_commit(r.full_name, c["message"], picked, [sha],
                                              author, merger)
        return sha

    async def _merge_commit(self, r: Repo, issue: Issue, method: str, doc: dict[str, Any],
                            commits: list[dict[str, Any]], tree: str, base: str, head: str,
                            merger: Identity, stamp: str) -> str:
        """A merge commit (base and head its parents) or a squash (the base its only parent,
        the pull request's author its author), titled as GitHub does unless the request
        says otherwise."""
        pull = issue.pr
        title, message = doc.get("commit_title"), doc.get("commit_message")
        if method == "merge":
            title = title or f"Merge pull request #{issue.number} from {r.owner}/{pull['head']}"
            message = issue.title if message is None else message
            parents, author = [base, head], merger
        else:
            title = title or f"{issue.title} (#{issue.number})"
            message = "\n\n".join("* " + c["message"].strip() for c in commits) \
                if message is None else message
            parents = [base]
            author = Identity(issue.user, f"{issue.user}@users.devhub", stamp)
        text = title + ("\n\n" + message if message else "") + "\n"
        return await self.git.write_commit(r.full_name, text, tree, parents, author, merger)

    async def refs_moved(self, r: Repo, actor: str, now: int,
                         changed: dict[str, tuple[str | None, str | None]]) -> None:
        """Branches moved (a push, the refs API, a merge): open pull requests on them follow.
        A moved head is a ``synchronize`` (stale approvals dismissed where the base's
        protection says so); a base that now contains a pull request's commits merged it."""
        if r.default_branch in changed:
            await self.refresh_contributors(r)
        for issue in [i for i in r.issues.values() if i.pull is not None and i.state == "open"]:
            pull = issue.pr
            if pull["head"] in changed:
                after = changed[pull["head"]][1]
                if after is not None and after != pull["head_sha"]:
                    rule = r.protections.get(pull["base"]) or {}
                    stale = bool((rule.get("required_pull_request_reviews") or {}).get(
                        "dismiss_stale_reviews"))
                    self.hub.synchronize(r, issue.number, actor, now, after, stale)
            new_base = changed[pull["base"]][1] if pull["base"] in changed else None
            if new_base is not None:
                old_base = pull["base_sha"]
                pull["base_sha"] = new_base
                head = pull["head_sha"]
                if head and old_base and not await self.git.is_ancestor(r.full_name, head, old_base) \
                        and await self.git.is_ancestor(r.full_name, head, new_base):
                    commits = await self.git.log(r.full_name, head, old_base)
                    closes = []
                    if pull["base"] == r.default_branch:
                        closes = closing_references(
                            [issue.body] + [c["message"] for c in commits], r.full_name)
                    self.hub.merge_pull(r, issue.number, actor, now, new_base, head, old_base,
                                        closes)

    # ------------------------------------------------------------------ review requests

    async def list_requested_reviewers(self, req: Request, owner: str, repo: str,
                                       number: str) -> Response:
        _, issue = self._pull(req, owner, repo, number)
        render = self._r(req)
        return 200, {"users": [render.user(x) for x in issue.pr["requested_reviewers"]],
                     "teams": []}, {}

    async def request_reviewers(self, req: Request, owner: str, repo: str,
                                number: str) -> Response:
        r, issue = self._pull(req, owner, repo, number)
        doc = req.obj()
        self.hub.request_reviewers(r, issue.number, req.actor(), req.now, doc.get("reviewers"),
                                   doc.get("team_reviewers"))
        return 201, await self.pull_doc(self._r(req), r, issue, req.login, False), {}

    async def remove_requested_reviewers(self, req: Request, owner: str, repo: str,
                                         number: str) -> Response:
        r, issue = self._pull(req, owner, repo, number)
        self.hub.remove_reviewers(r, issue.number, req.actor(), req.now,
                                  req.obj().get("reviewers"))
        return 200, await self.pull_doc(self._r(req), r, issue, req.login, False), {}

    # ------------------------------------------------------------------ reviews

    async def _place(self, r: Repo, issue: Issue, commit_id: str, c: dict[str, Any],
                     single: bool) -> dict[str, Any]:
        """Where a review comment goes in the diff of ``commit_id`` against the base: its path
        and line (or deprecated position), the side, and GitHub's ``diff_hunk``."""
        def fail(what: str, field_name: str) -> HubError:
            if single:
                return HubError(422, "Validation Failed", [
                    {"resource": "PullRequestReviewComment", "code": "custom",
                     "field": f"pull_request_review_thread.{field_name}",
                     "message": f"pull_request_review_thread.{field_name} {what}"}])
            return HubError(422, "Unprocessable Entity",
                            [f"{field_name.capitalize()} {what}"])

        if not isinstance(c, dict):
            raise HubError(422, "Invalid request.\n\nFor 'items', is not an object.")
        _string_fields(c, "path", "body", "side", "start_side", "subject_type")
        if not c.get("body") and single:
            raise HubError(422, "Validation Failed", [{"resource": "PullRequestReviewComment",
                                                       "code": "missing_field", "field": "body"}])
        if not c.get("body"):
            raise HubError(422, "Unprocessable Entity", ["Body can't be blank"])
        if not c.get("path"):
            raise fail("can't be blank", "path")
        line, position = _int_field(c, "line"), _int_field(c, "position")
        start_line = _int_field(c, "start_line")
        _, base = await self._shas(r, issue)
        files = await self.git.diff(r.full_name, base, commit_id) if base else []
        found = next((f for f in files if f["filename"] == c["path"]), None)
        if found is None:
            raise fail("could not be resolved", "path")
        out = {"body": c["body"], "path": c["path"], "commit_id": commit_id}
        if c.get("subject_type") == "file":
            return {**out, "subject_type": "file", "diff_hunk": ""}
        entries, lines = diff_lines(found["patch"] or "")
        entry, side, number_key = _diff_entry(entries, c, line, position, fail)
        start_side = _start_side(entries, c, start_line, side, entry[number_key], fail)
        hunk = "\n".join(lines[entry["hunk"]:entry["index"] + 1])
        return {**out, "line": entry[number_key], "side": side, "start_line": start_line,
                "start_side": start_side, "position": entry["position"], "diff_hunk": hunk,
                "subject_type": "line"}

    async def _commit_of(self, r: Repo, issue: Issue, commit_id: Any) -> str:
        if commit_id is None:
            head, _ = await self._shas(r, issue)
            assert head is not None, "a pull request's head is recorded when it is opened"
            return head
        if not isinstance(commit_id, str) or await self.git.object_type(r.full_name,
                                                                         commit_id) != "commit":
            raise HubError(422, "Validation Failed", [{"resource": "PullRequestReview",
                                                       "code": "invalid", "field": "commit_id"}])
        return commit_id

    async def list_reviews(self, req: Request, owner: str, repo: str, number: str) -> Response:
        r, issue = self._pull(req, owner, repo, number)
        page, links = _page(req, self.hub.reviews(r, issue.number, req.login))
        render = self._r(req)
        return 200, [render.review(r, x) for x in page], links

    async def create_review(self, req: Request, owner: str, repo: str, number: str) -> Response:
        r, issue = self._pull(req, owner, repo, number)
        actor = req.actor()
        doc = req.obj()
        _string_fields(doc, "body", "event")
        commit_id = await self._commit_of(r, issue, doc.get("commit_id"))
        comments = doc.get("comments") or []
        if not isinstance(comments, list):
            raise HubError(422, "Invalid request.\n\nFor 'properties/comments', is not an array.")
        placed = [await self._place(r, issue, commit_id, c, single=False) for c in comments]
        review = self.hub.create_review(r, issue.number, actor, req.now, doc.get("body"),
                                        doc.get("event"), commit_id, placed)
        return 200, self._r(req).review(r, review), {}

    async def get_review(self, req: Request, owner: str, repo: str, number: str,
                         id: str) -> Response:
        r, issue = self._pull(req, owner, repo, number)
        review = self.hub.review(r, issue.number, self._number(id), req.login)
        return 200, self._r(req).review(r, review), {}

    async def edit_review(self, req: Request, owner: str, repo: str, number: str,
                          id: str) -> Response:
        r, issue = self._pull(req, owner, repo, number)
        review = self.hub.edit_review(r, issue.number, self._number(id), req.actor(), req.now,
                                      req.obj().get("body"))
        return 200, self._r(req).review(r, review), {}

    async def delete_review(self, req: Request, owner: str, repo: str, number: str,
                            id: str) -> Response:
        r, issue = self._pull(req, owner, repo, number)
        review = self.hub.delete_review(r, issue.number, self._number(id), req.actor())
        return 200, self._r(req).review(r, review), {}

    async def submit_review(self, req: Request, owner: str, repo: str, number: str,
                            id: str) -> Response:
        r, issue = self._pull(req, owner, repo, number)
        doc = req.obj()
        _string_fields(doc, "body", "event")
        review = self.hub.submit_review(r, issue.number, self._number(id), req.actor(), req.now,
                                        doc.get("event"), doc.get("body"))
        return 200, self._r(req).review(r, review), {}

    async def dismiss_review(self, req: Request, owner: str, repo: str, number: str,
                             id: str) -> Response:
        r, issue = self._pull(req, owner, repo, number)
        review = self.hub.dismiss_review(r, issue.number, self._number(id), req.actor(),
                                         req.now, req.obj().get("message"))
        return 200, self._r(req).review(r, review), {}

    async def list_review_comments_of_review(self, req: Request, owner: str, repo: str,
                                             number: str, id: str) -> Response:
        r, issue = self._pull(req, owner, repo, number)
        review = self.hub.review(r, issue.number, self._number(id), req.login)
        items = sorted((c for c in r.review_comments.values() if c.review_id == review.id),
                       key=lambda c: c.id)
        page, links = _page(req, items)
        render = self._r(req)
        return 200, [render.review_comment(r, c) for c in page], links

    # ------------------------------------------------------------------ review comments

    def _sorted_comments(self, req: Request,
                         items: list[ReviewComment]) -> list[ReviewComment]:
        """``sort`` created|updated with ``direction`` (default: ascending id; desc once a
        sort is given), ``since`` on ``updated_at``."""
        since_ts = _since(req)
        items = [c for c in items if since_ts is None or c.updated_at >= since_ts]
        sort, direction = req.arg("sort"), req.arg("direction")
        if sort not in (None, "created", "updated", "created_at"):
            raise HubError(422, "Validation Failed", [
                {"resource": "PullRequestReviewComment", "field": "sort", "code": "invalid"}])
        if direction not in (None, "asc", "desc"):
            raise HubError(422, "Validation Failed", [
                {"resource": "PullRequestReviewComment", "field": "direction", "code": "invalid"}])
        if sort is None:
            return sorted(items, key=lambda c: c.id, reverse=direction == "desc")
        field_name = "updated_at" if sort == "updated" else "created_at"
        return sorted(items, key=lambda c: (getattr(c, field_name), c.id),
                      reverse=(direction or "desc") == "desc")

    async def list_pull_comments(self, req: Request, owner: str, repo: str,
                                 number: str) -> Response:
        r, issue = self._pull(req, owner, repo, number)
        items = [c for c in self.hub.visible_review_comments(r) if c.pull == issue.number]
        page, links = _page(req, self._sorted_comments(req, items))
        render = self._r(req)
        return 200, [render.review_comment(r, c) for c in page], links

    async def list_repo_review_comments(self, req: Request, owner: str, repo: str) -> Response:
        r = self._repo(req, owner, repo)
        page, links = _page(req, self._sorted_comments(req, self.hub.visible_review_comments(r)))
        render = self._r(req)
        return 200, [render.review_comment(r, c) for c in page], links

    async def create_pull_comment(self, req: Request, owner: str, repo: str,
                                  number: str) -> Response:
        r, issue = self._pull(req, owner, repo, number)
        actor = req.actor()
        doc = req.obj()
        reply_to = _int_field(doc, "in_reply_to")
        if reply_to is not None:
            _string_fields(doc, "body")
            c = {"body": doc.get("body"), "in_reply_to": reply_to}
        else:
            if doc.get("commit_id") is None:
                raise HubError(422, "Validation Failed", [{"resource": "PullRequestReviewComment",
                                                           "code": "missing_field",
                                                           "field": "commit_id"}])
            commit_id = await self._commit_of(r, issue, doc.get("commit_id"))
            c = await self._place(r, issue, commit_id, doc, single=True)
        comment = self.hub.create_review_comment(r, issue.number, actor, req.now, c)
        return 201, self._r(req).review_comment(r, comment), {}

    async def reply_pull_comment(self, req: Request, owner: str, repo: str, number: str,
                                 id: str) -> Response:
        r, issue = self._pull(req, owner, repo, number)
        doc = req.obj()
        _string_fields(doc, "body")
        comment = self.hub.create_review_comment(r, issue.number, req.actor(), req.now,
                                                 {"body": doc.get("body"),
                                                  "in_reply_to": self._number(id)})
        return 201, self._r(req).review_comment(r, comment), {}

    async def get_review_comment(self, req: Request, owner: str, repo: str, id: str) -> Response:
        r = self._repo(req, owner, repo)
        comment = self.hub.review_comment(r, self._number(id), req.login)
        return 200, self._r(req).review_comment(r, comment), {}

    async def edit_review_comment(self, req: Request, owner: str, repo: str,
                                  id: str) -> Response:
        r = self._repo(req, owner, repo)
        comment = self.hub.edit_review_comment(r, self._number(id), req.actor(), req.now,
                                               req.obj().get("body"))
        return 200, self._r(req).review_comment(r, comment), {}

    async def delete_review_comment(self, req: Request, owner: str, repo: str,
                                    id: str) -> Response:
        r = self._repo(req, owner, repo)
        self.hub.delete_review_comment(r, self._number(id), req.actor())
        return 204, None, {}

    # ------------------------------------------------------------------ branches, protection

    async def list_branches(self, req: Request, owner: str, repo: str) -> Response:
        r = self._repo(req, owner, repo)
        tips = sorted((await self.git.branch_tips(r.full_name)).items())
        wanted = req.arg("protected")
        if wanted in ("true", "false"):
            tips = [(n, s) for n, s in tips if (n in r.protections) == (wanted == "true")]
        page, links = _page(req, tips)
        render = self._r(req)
        return 200, [render.branch(r, n, s, False) for n, s in page], links

    async def _branch(self, req: Request, owner: str, repo: str,
                      branch: str) -> tuple[Repo, str]:
        r = self._repo(req, owner, repo)
        sha = (await self.git.branch_tips(r.full_name)).get(branch)
        if sha is None:
            raise HubError(404, "Branch not found")
        return r, sha

    async def get_branch(self, req: Request, owner: str, repo: str, branch: str) -> Response:
        r, sha = await self._branch(req, owner, repo, branch)
        render = self._r(req)
        doc = render.branch(r, branch, sha, True)
        doc["commit"] = render.commit(r, await self.git.read_commit(r.full_name, sha))
        return 200, doc, {}

    async def get_protection(self, req: Request, owner: str, repo: str, branch: str) -> Response:
        r, _ = await self._branch(req, owner, repo, branch)
        rule = self.hub.protection(r, req.actor(), branch)
        return 200, self._r(req).protection(r, branch, rule), {}

    async def set_protection(self, req: Request, owner: str, repo: str, branch: str) -> Response:
        r, _ = await self._branch(req, owner, repo, branch)
        actor = req.actor()
        if r.role(actor) != "admin":
            raise HubError(403, "Must have admin rights to Repository.")
        rule = self.hub.set_protection(r, actor, branch, protect.normalize(req.json()))
        self.git.install_hooks(r.full_name, True)
        return 200, self._r(req).protection(r, branch, rule), {}

    async def delete_protection(self, req: Request, owner: str, repo: str,
                                branch: str) -> Response:
        r, _ = await self._branch(req, owner, repo, branch)
        self.hub.delete_protection(r, req.actor(), branch)
        self.git.install_hooks(r.full_name, bool(r.protections))
        return 204, None, {}

    def push_rules(self, r: Repo, login: str | None) -> dict[str, dict[str, Any]]:
        """The protection rules that bind ``login``'s pushes, by full ref name."""
        rules = {}
        for branch, rule in r.protections.items():
            bound = protect.push_rule(rule, r.role(login))
            if bound is not None:
                rules[f"refs/heads/{branch}"] = bound
        return rules

    async def check_protected_update(self, r: Repo, login: str, ref: str, sha: str | None,
                                     force: bool) -> None:
        """The refs API on a protected branch: 422 where a push would get GH006."""
        rule = self.push_rules(r, login).get(ref)
        if rule is None:
            return
        forcing = False
        if sha is not None:
            old = await self.git.resolve(r.full_name, ref)
            if old and force:
                forcing = not await self.git.is_ancestor(r.full_name, old, sha)
        reasons = protect.refusals(rule, sha is None, forcing)
        if reasons:
            raise HubError(422, f"Protected branch update failed for {ref}.", reasons)


def _branch_name(doc: dict[str, Any], name: str) -> str:
    """A new pull request's ``head`` or ``base``: a branch name (or ``owner:branch``)."""
    value = doc.get(name)
    if not isinstance(value, str) or not value:
        raise HubError(422, "Validation Failed", [
            {"resource": "PullRequest", "code": "missing_field", "field": name}])
    return value


def _merge_method(doc: dict[str, Any]) -> str:
    """The merge request's method ("merge" unless it says), its string fields checked."""
    _string_fields(doc, "commit_title", "commit_message", "sha", "merge_method")
    method = doc.get("merge_method") or "merge"
    if method not in MERGE_METHODS:
        raise HubError(422, "Validation Failed",
                       [{"resource": "PullRequest", "field": "merge_method", "code": "invalid"}])
    return method


def _diff_entry(entries: list[dict[str, Any]], c: dict[str, Any], line: int | None,
                position: int | None,
                fail: Callable[[str, str], HubError]) -> tuple[dict[str, Any], str, str]:
    """The diff line a review comment is on, by its line on a side or by its (deprecated)
    position: the entry, the side, and the key of the entry's number on that side."""
    side = c.get("side") or "RIGHT"
    if side not in ("LEFT", "RIGHT"):
        raise fail("is invalid", "side")
    number_key = "right" if side == "RIGHT" else "left"
    if line is not None:
        entry = next((e for e in entries if e[number_key] == line), None)
    elif position is not None:
        entry = next((e for e in entries if e["position"] == position), None)
        if entry is not None:
            side = "RIGHT" if entry["kind"] != "-" else "LEFT"
            number_key = side.lower()
    else:
        raise fail("can't be blank", "line")
    if entry is None:
        raise fail("must be part of the diff", "line" if position is None else "position")
    return entry, side, number_key


def _start_side(entries: list[dict[str, Any]], c: dict[str, Any], start_line: int | None,
                side: str, end: int, fail: Callable[[str, str], HubError]) -> str | None:
    """A multi-line comment's start side (its end's side unless given), once its start line
    is checked to precede the end and be part of the diff; None for a one-line comment."""
    if start_line is None:
        return None
    start_side = c.get("start_side") or side
    start_key = "right" if start_side == "RIGHT" else "left"
    if start_line >= end:
        raise fail("must precede the end line.", "start_line")
    if not any(e[start_key] == start_line for e in entries):
        raise fail("must be part of the diff", "start_line")
    return start_side
