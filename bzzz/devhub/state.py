"""devhub's state and GitHub's issue semantics (a core: no I/O, time passed in).

Every rule here is GitHub's, including the awkward ones Bzzz must cope with
(shared/FACTS.md): adding assignees is additive, silently ignores logins without push
access and silently stops at 10; a PATCH with ``assignees`` replaces the set (last writer
wins); issue events have 1 s timestamps and increasing ids.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..github.markers import CLOSING
from .errors import HubError
from .roles import ROLES, SEED_ROLE_KEYS, TRIAGE_ROLES, WRITE_ROLES

__all__ = ["ROLES", "SEED_ROLE_KEYS", "TRIAGE_ROLES", "WRITE_ROLES", "HubError"]

MAX_ASSIGNEES = 10
DEFAULT_LABEL_COLOR = "ededed"
REACTIONS = ("+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes")


def not_found() -> HubError:
    return HubError(404, "Not Found")


@dataclass
class User:
    login: str
    id: int
    site_admin: bool = False


@dataclass
class Label:
    id: int
    name: str
    color: str = DEFAULT_LABEL_COLOR
    description: str | None = None


@dataclass
class Comment:
    id: int
    issue: int
    user: str
    body: str
    created_at: int
    updated_at: int


@dataclass
class Reaction:
    id: int
    user: str
    content: str
    created_at: int


@dataclass
class Event:
    id: int
    issue: int
    event: str
    actor: str
    created_at: int
    assignee: str | None = None
    label: str | None = None
    commit_id: str | None = None
    requested_reviewer: str | None = None


@dataclass
class Review:
    """A pull request review: PENDING until submitted, then APPROVED, CHANGES_REQUESTED or
    COMMENTED (DISMISSED later, by a writer or by a push under dismiss_stale_reviews)."""
    id: int
    pull: int
    user: str
    body: str
    state: str
    commit_id: str
    created_at: int
    submitted_at: int | None = None


@dataclass
class ReviewComment:
    """A comment on a line (or a file) of a pull request's diff; always part of a review."""
    id: int
    pull: int
    review_id: int
    user: str
    body: str
    path: str
    commit_id: str
    created_at: int
    updated_at: int
    line: int | None = None
    side: str | None = None
    start_line: int | None = None
    start_side: str | None = None
    position: int | None = None
    diff_hunk: str = ""
    subject_type: str = "line"
    in_reply_to: int | None = None


@dataclass
class Issue:
    number: int
    id: int
    title: str
    body: str | None
    user: str
    created_at: int
    updated_at: int
    state: str = "open"
    state_reason: str | None = None
    closed_at: int | None = None
    closed_by: str | None = None
    labels: list[str] = field(default_factory=list)
    assignees: list[str] = field(default_factory=list)
    comments: int = 0
    locked: bool = False
    pull: dict[str, Any] | None = None  # set for pull requests (they share the issue numbering)

    @property
    def pr(self) -> dict[str, Any]:
        """The pull request part of an issue that is one (what ``Hub.pull`` returns)."""
        assert self.pull is not None, f"issue #{self.number} is not a pull request"
        return self.pull


@dataclass
class Repo:
    id: int
    owner: str
    name: str
    private: bool = False
    roles: dict[str, str] = field(default_factory=dict)  # collaborator -> role (ROLES)
    contributors: set[str] = field(default_factory=set)  # logins with commits on the default branch
    pull_authors: set[str] = field(default_factory=set)  # logins that opened a pull request here
    labels: dict[str, Label] = field(default_factory=dict)  # lower-case name -> label
    issues: dict[int, Issue] = field(default_factory=dict)
    comments: dict[int, Comment] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    hooks: dict[int, dict[str, Any]] = field(default_factory=dict)
    reactions: dict[str, list[Reaction]] = field(default_factory=dict)  # "issue:N"/"comment:ID"
    reviews: dict[int, Review] = field(default_factory=dict)
    review_comments: dict[int, ReviewComment] = field(default_factory=dict)
    protections: dict[str, dict[str, Any]] = field(default_factory=dict)  # branch -> protection.normalize()
    statuses: list[dict[str, Any]] = field(default_factory=list)  # commit statuses (checks.py)
    check_runs: list[dict[str, Any]] = field(default_factory=list)
    check_suites: list[dict[str, Any]] = field(default_factory=list)
    next_number: int = 1
    created_at: int = 0
    default_branch: str = "main"

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    def role(self, login: str | None) -> str | None:
        """The login's role here: the owner is admin; None for non-collaborators."""
        if login is None:
            return None
        return "admin" if login == self.owner else self.roles.get(login)

    @property
    def push(self) -> set[str]:
        return {x for x, r in self.roles.items() if r in WRITE_ROLES}

    @property
    def read(self) -> set[str]:
        return {x for x, r in self.roles.items() if r not in WRITE_ROLES}

    def can_push(self, login: str | None) -> bool:
        return self.role(login) in WRITE_ROLES

    def can_triage(self, login: str | None) -> bool:
        return self.role(login) in TRIAGE_ROLES

    def can_read(self, login: str | None) -> bool:
        if not self.private:
            return True
        return self.role(login) is not None


class Hub:
    """All users, tokens and repositories; every mutation goes through a method here."""

    def __init__(self) -> None:
        self.users: dict[str, User] = {}
        self.tokens: dict[str, str] = {}  # token -> login
        self.repos: dict[str, Repo] = {}  # lower-case full name -> repo
        self._ids = itertools.count(1)
        # What webhooks should announce: (repo key, event, action, issue number, extra).
        self.outbox: list[tuple[str, str, str, int, dict[str, Any]]] = []
        from .apps import Apps  # GitHub Apps, their installations and tokens (apps.py)
        self.apps = Apps(self)

    # ------------------------------------------------------------ ids and lookups

    def new_id(self) -> int:
        return next(self._ids)

    def user(self, login: str) -> User:
        user = self.users.get(login)
        if user is None:
            raise not_found()
        return user

    def login_for(self, token: str | None) -> str | None:
        return self.tokens.get(token) if token else None

    def repo(self, owner: str, name: str, viewer: str | None) -> Repo:
        repo = self.repos.get(f"{owner}/{name}".lower())
        if repo is None or not repo.can_read(viewer):
            raise not_found()  # GitHub hides private repos behind a 404
        return repo

    def association(self, repo: Repo, login: str) -> str:
        """GitHub's ``author_association`` of ``login`` with ``repo``.

        OWNER; COLLABORATOR for every collaborator, read-only ones included (so it never
        proves write access: ask the permission API); CONTRIBUTOR with commits on the
        default branch; FIRST_TIME_CONTRIBUTOR / FIRST_TIMER for someone who opened a pull
        request here with no commits here / on devhub; else NONE. devhub has no
        organisations, so never MEMBER (nor MANNEQUIN).
        """
        if login == repo.owner:
            return "OWNER"
        if login in repo.roles:
            return "COLLABORATOR"
        if login in repo.contributors:
            return "CONTRIBUTOR"
        if login in repo.pull_authors:
            if any(login in r.contributors for r in self.repos.values()):
                return "FIRST_TIME_CONTRIBUTOR"
            return "FIRST_TIMER"
        return "NONE"

    # ------------------------------------------------------------ seeding

    def add_user(self, login: str, token: str | None = None) -> User:
        if not login or "/" in login:
            raise HubError(422, f"invalid login {login!r}")
        user = self.users.get(login)
        if user is None:
            user = self.users[login] = User(login, self.new_id())
        if token:
            self.tokens[token] = login
        return user

    def add_repo(self, full_name: str, now: int, push: Sequence[str] = (),
                 read: Sequence[str] = (), private: bool = False,
                 roles: dict[str, list[str]] | None = None,
                 contributors: Sequence[str] = ()) -> Repo:
        owner, _, name = full_name.partition("/")
        if not owner or not name or "/" in name:
            raise HubError(422, f"invalid repository name {full_name!r}")
        if owner not in self.users:
            self.add_user(owner)
        key = full_name.lower()
        repo = self.repos.get(key)
        if repo is None:
            repo = self.repos[key] = Repo(self.new_id(), owner, name, private=private,
                                          created_at=now)
        wanted = {"read": list(read), "write": list(push), **(roles or {})}
        for role in reversed(ROLES):  # a login named under several roles gets the highest
            for login in wanted.get(role, ()):
                if login != repo.owner:  # the owner is admin whatever a seed says
                    self.set_role(repo, login, role)
        for login in contributors:
            if not isinstance(login, str):
                raise HubError(422, "contributors must be logins")
            self.add_user(login) if login not in self.users else None
            repo.contributors.add(login)
        return repo

    def set_role(self, repo: Repo, login: Any, role: Any) -> str | None:
        """Give ``login`` a role on ``repo`` (None removes it). The owner stays admin."""
        if not isinstance(login, str) or not login:
            raise HubError(422, "login must be a string")
        if role is not None and role not in ROLES:
            raise HubError(422, f"role must be one of {', '.join(ROLES)} or null")
        if login == repo.owner:
            if role != "admin":
                raise HubError(422, "the owner of a repository is always admin")
            return "admin"
        if login not in self.users:
            self.add_user(login)
        if role is None:
            repo.roles.pop(login, None)
        else:
            repo.roles[login] = role
        return repo.role(login)

    def seed(self, doc: dict[str, Any], now: int) -> None:
        """Apply a seed document: ``{"users": [{"login", "token"}], "repos": [...]}``.

        A repo is ``{"full_name", "private"?, "push"?, "read"?, "admin"?, "maintain"?,
        "triage"?, "contributors"?}``: each role key lists logins (``push`` is the write
        role; the owner is always admin); ``contributors`` are logins counted as having
        commits on the default branch (``author_association`` CONTRIBUTOR).
        """
        if not isinstance(doc, dict):
            raise HubError(422, "seed must be a JSON object")
        for u in doc.get("users", []):
            if not isinstance(u, dict) or not isinstance(u.get("login"), str):
                raise HubError(422, "each user needs a login")
            self.add_user(u["login"], u.get("token"))
        for r in doc.get("repos", []):
            if not isinstance(r, dict) or not isinstance(r.get("full_name"), str):
                raise HubError(422, "each repo needs a full_name")
            roles: dict[str, list[str]] = {}
            for key, role in SEED_ROLE_KEYS.items():
                logins = r.get(key, [])
                if not isinstance(logins, list) or not all(isinstance(x, str) for x in logins):
                    raise HubError(422, f"{key} must be a list of logins")
                roles.setdefault(role, []).extend(logins)
            contributors = r.get("contributors", [])
            if not isinstance(contributors, list):
                raise HubError(422, "contributors must be a list of logins")
            self.add_repo(r["full_name"], now, private=bool(r.get("private", False)),
                          roles=roles, contributors=contributors)

    # ------------------------------------------------------------ labels

    def label(self, repo: Repo, name: str) -> Label:
        label = repo.labels.get(name.lower())
        if label is None:
            raise not_found()
        return label

    def create_label(self, repo: Repo, actor: str, name: str, color: str = DEFAULT_LABEL_COLOR,
                     description: str | None = None) -> Label:
        self._require_push(repo, actor)
        if not isinstance(color, str) or (description is not None
                                          and not isinstance(description, str)):
            raise HubError(422, "Validation Failed",
                           [{"resource": "Label", "code": "invalid", "field": "color"}])
        if not isinstance(name, str) or not name or len(name) > 50:
            raise HubError(422, "Validation Failed",
                           [{"resource": "Label", "code": "invalid", "field": "name"}])
        if name.lower() in repo.labels:
            raise HubError(422, "Validation Failed",
                           [{"resource": "Label", "code": "already_exists", "field": "name"}])
        label = Label(self.new_id(), name, color.lstrip("#") or DEFAULT_LABEL_COLOR, description)
        repo.labels[name.lower()] = label
        return label

    def _ensure_label(self, repo: Repo, name: str) -> Label:
        label = repo.labels.get(name.lower())
        if label is None:  # GitHub creates labels named on an issue by a pusher
            label = repo.labels[name.lower()] = Label(self.new_id(), name)
        return label

    # ------------------------------------------------------------ issues

    def issue(self, repo: Repo, number: int) -> Issue:
        issue = repo.issues.get(number)
        if issue is None:
            raise not_found()
        return issue

    def _event(self, repo: Repo, issue: Issue, kind: str, actor: str, now: int,
               assignee: str | None = None, label: str | None = None,
               commit_id: str | None = None, requested_reviewer: str | None = None,
               announce: bool = True) -> None:
        repo.events.append(Event(self.new_id(), issue.number, kind, actor, now, assignee, label,
                                 commit_id, requested_reviewer))
        if not announce:
            return
        extra: dict[str, Any] = {"sender": actor}
        if assignee is not None:
            extra["assignee"] = assignee
        if label is not None:
            extra["label"] = label
        if requested_reviewer is not None:
            extra["requested_reviewer"] = requested_reviewer
        self._announce(repo, "issues", kind, issue.number, extra)

    def _announce(self, repo: Repo, event: str, action: str, number: int,
                  extra: dict[str, Any]) -> None:
        """Queue a webhook. A pull request's issue events are ``pull_request`` events, as on
        GitHub (which sends no ``issues`` event for a pull request)."""
        if not repo.hooks:
            return
        issue = repo.issues.get(number)
        if event == "issues" and issue is not None and issue.pull is not None:
            event = "pull_request"
        self.outbox.append((repo.full_name.lower(), event, action, number, extra))

    def create_issue(self, repo: Repo, actor: str, now: int, title: Any, body: Any = None,
                     labels: Any = None, assignees: Any = None,
                     pull: dict[str, Any] | None = None) -> Issue:
        if not isinstance(title, (str, int)) or str(title) == "":
            raise HubError(422, "Validation Failed",
                           [{"resource": "Issue", "code": "missing_field", "field": "title"}])
        if body is not None and not isinstance(body, str):
            raise HubError(422, "Invalid request.\n\nFor 'properties/body', is not a string.")
        issue = Issue(repo.next_number, self.new_id(), str(title), body, actor, now, now,
                      pull=pull)
        repo.next_number += 1
        repo.issues[issue.number] = issue
        self._announce(repo, "issues", "opened", issue.number, {"sender": actor})
        if repo.can_push(actor):  # others' labels and assignees are silently dropped
            for name in _names(labels, "labels"):
                label = self._ensure_label(repo, name)
                if label.name not in issue.labels:
                    issue.labels.append(label.name)
                    self._event(repo, issue, "labeled", actor, now, label=label.name)
            self._assign(repo, issue, _names(assignees, "assignees"), actor, now)
        return issue

    def update_issue(self, repo: Repo, number: int, actor: str, now: int,
                     changes: dict[str, Any], edited: dict[str, Any] | None = None) -> Issue:
        """GitHub's PATCH: "Issue owners and users with push access can edit an issue."

        Writers change anything. The issue's author changes its title, body and state; a
        triager changes state, labels and assignees. Labels, assignees and milestone from
        anyone else are silently dropped (as on GitHub); others get 403.
        """
        issue = self.issue(repo, number)
        pusher, triager = repo.can_push(actor), repo.can_triage(actor)
        _check_issue_changes(issue, changes, pusher, triager, actor == issue.user)
        self._edit_text(repo, issue, actor, changes, edited)
        if "state" in changes:
            self._change_state(repo, issue, actor, now, changes["state"],
                               changes.get("state_reason"))
        if triager and "labels" in changes:
            self.set_labels(repo, number, actor, now, changes["labels"], touch=False)
        if triager and ("assignees" in changes or "assignee" in changes):
            self._reassign(repo, issue, actor, now, changes)
        issue.updated_at = now
        return issue

    def _edit_text(self, repo: Repo, issue: Issue, actor: str, changes: dict[str, Any],
                   edited: dict[str, Any] | None) -> None:
        """A new title or body, announced (with the caller's other edits) as ``edited``."""
        edited = dict(edited or {})
        if "title" in changes and str(changes["title"]) != issue.title:
            edited["title"] = {"from": issue.title}
            issue.title = str(changes["title"])
        if "body" in changes and changes["body"] != issue.body:
            edited["body"] = {"from": issue.body}
            issue.body = changes["body"]
        if edited:
            self._announce(repo, "issues", "edited", issue.number,
                           {"sender": actor, "changes": edited})

    def _change_state(self, repo: Repo, issue: Issue, actor: str, now: int, state: str,
                      reason: str | None) -> None:
        """Close or reopen (nothing when already so), with its event and state_reason."""
        if state != issue.state:
            issue.state = state
            pull = issue.pull is not None  # a pull request's issue has no state_reason
            if state == "closed":
                issue.closed_at, issue.closed_by = now, actor
                issue.state_reason = None if pull else reason or "completed"
                self._event(repo, issue, "closed", actor, now)
            else:
                issue.closed_at, issue.closed_by = None, None
                issue.state_reason = None if pull else "reopened"
                self._event(repo, issue, "reopened", actor, now)

    def _reassign(self, repo: Repo, issue: Issue, actor: str, now: int,
                  changes: dict[str, Any]) -> None:
        """The assignees become those asked for (``assignees``, or the older ``assignee``)
        that can be assigned: the others unassigned first, then the new ones assigned."""
        wanted = changes.get("assignees")
        if wanted is None and "assignee" in changes:
            wanted = [changes["assignee"]] if changes["assignee"] else []
        wanted = [w for w in _names(wanted, "assignees") if self._assignable(repo, w)]
        for gone in [a for a in issue.assignees if a not in wanted]:
            issue.assignees.remove(gone)
            self._event(repo, issue, "unassigned", actor, now, assignee=gone)
        self._assign(repo, issue, wanted, actor, now)

    def create_pull(self, repo: Repo, actor: str, now: int, title: Any, body: Any, head: str,
                    base: str, draft: bool = False, head_sha: str | None = None,
                    base_sha: str | None = None, maintainer_can_modify: bool = False) -> Issue:
        """A pull request: an issue with a ``pull`` part (the app checks the branches)."""
        pull = pull_defaults({"id": self.new_id(), "head": head, "base": base,
                              "draft": bool(draft), "head_sha": head_sha, "base_sha": base_sha,
                              "maintainer_can_modify": bool(maintainer_can_modify)})
        issue = self.create_issue(repo, actor, now, title, body, pull=pull)
        repo.pull_authors.add(actor)
        return issue

    def delete_head_repo(self, repo: Repo, number: int) -> Issue:
        """The pull request's head came from a fork that is deleted now (admin API): GitHub
        then answers ``head.repo: null``; the pull request stays as it was otherwise."""
        issue = self.pull(repo, number)
        issue.pr["head_repo_deleted"] = True
        return issue

    def pull(self, repo: Repo, number: int) -> Issue:
        issue = repo.issues.get(number)
        if issue is None or issue.pull is None:
            raise not_found()
        return issue

    def update_pull(self, repo: Repo, number: int, actor: str, now: int,
                    changes: dict[str, Any], base_sha: str | None = None) -> Issue:
        """``PATCH /pulls/{n}``: title, body and state as for its issue; ``base`` (an existing
        branch, the app checks) by its author or a writer, while it is open."""
        issue = self.pull(repo, number)
        allowed: dict[str, Any] = {k: changes[k] for k in ("title", "body", "state")
                                   if k in changes}
        edited: dict[str, Any] = {}
        base = changes.get("base")
        if base is not None and base != issue.pr["base"]:
            if actor != issue.user and not repo.can_push(actor):
                raise HubError(403, "Must have push access to edit this pull request.")
            if issue.state != "open":
                raise HubError(422, "Validation Failed",
                               [{"resource": "PullRequest", "code": "custom", "field": "base",
                                 "message": "Cannot change the base branch of a closed pull "
                                            "request."}])
            edited["base"] = {"ref": {"from": issue.pr["base"]},
                              "sha": {"from": issue.pr["base_sha"]}}
            issue.pr["base"], issue.pr["base_sha"] = base, base_sha
        return self.update_issue(repo, number, actor, now, allowed, edited=edited)

    def mark_ready(self, repo: Repo, number: int, actor: str, now: int) -> Issue:
        """A draft pull request becomes ready for review (GitHub's GraphQL mutation
        ``markPullRequestReadyForReview``): its author or a writer, while it is open; a
        ``ready_for_review`` event and webhook. Already ready: nothing changes."""
        issue = self.pull(repo, number)
        if actor != issue.user and not repo.can_push(actor):
            raise HubError(403, f"{actor} does not have the correct permissions to execute "
                                "`MarkPullRequestReadyForReview`")
        if issue.state != "open":
            raise HubError(422, "Pull request is closed")
        if issue.pr["draft"]:
            issue.pr["draft"] = False
            issue.updated_at = now
            self._event(repo, issue, "ready_for_review", actor, now, announce=False)
            self._announce(repo, "pull_request", "ready_for_review", number, {"sender": actor})
        return issue

    # ------------------------------------------------------------ review requests

    def _require_review_requester(self, repo: Repo, issue: Issue, actor: str) -> None:
        if actor != issue.user and not repo.can_triage(actor):
            raise HubError(403, "Must have triage access to request reviews.")

    def request_reviewers(self, repo: Repo, number: int, actor: str, now: int, logins: Any,
                          teams: Any = None) -> Issue:
        """GitHub's review requests: only from collaborators, never from the author; already
        requested logins are no news (no event, no webhook)."""
        issue = self.pull(repo, number)
        self._require_review_requester(repo, issue, actor)
        wanted = _names(logins, "reviewers")
        if _names(teams, "team_reviewers") or any(
                w not in self.users or repo.role(w) is None for w in wanted if w != issue.user):
            raise HubError(422, "Reviews may only be requested from collaborators. One or more "
                           "of the users or teams you specified is not a collaborator of the "
                           f"{repo.full_name} repository.")
        if issue.user in wanted:
            raise HubError(422, "Review cannot be requested from pull request author.")
        for login in dict.fromkeys(wanted):
            if login not in issue.pr["requested_reviewers"]:
                issue.pr["requested_reviewers"].append(login)
                self._event(repo, issue, "review_requested", actor, now,
                            requested_reviewer=login)
        issue.updated_at = now
        return issue

    def remove_reviewers(self, repo: Repo, number: int, actor: str, now: int,
                         logins: Any) -> Issue:
        issue = self.pull(repo, number)
        self._require_review_requester(repo, issue, actor)
        for login in _names(logins, "reviewers"):
            if login in issue.pr["requested_reviewers"]:
                issue.pr["requested_reviewers"].remove(login)
                self._event(repo, issue, "review_request_removed", actor, now,
                            requested_reviewer=login)
        issue.updated_at = now
        return issue

    # ------------------------------------------------------------ reviews

    def review(self, repo: Repo, number: int, review_id: int, viewer: str | None) -> Review:
        """A review of pull request ``number``; someone else's pending review is a 404."""
        review = repo.reviews.get(review_id)
        if review is None or review.pull != number or (
                review.state == "PENDING" and review.user != viewer):
            raise not_found()
        return review

    def reviews(self, repo: Repo, number: int, viewer: str | None) -> list[Review]:
        """Submitted reviews and the viewer's pending one, oldest first."""
        return sorted((r for r in repo.reviews.values() if r.pull == number and (
            r.state != "PENDING" or r.user == viewer)), key=lambda r: r.id)

    def latest_reviews(self, repo: Repo, number: int) -> dict[str, str]:
        """Each reviewer's latest approving, change-requesting or dismissed review state
        (what branch protection counts; a later comment-only review changes nothing)."""
        latest: dict[str, str] = {}
        for r in self.reviews(repo, number, None):
            if r.state in ("APPROVED", "CHANGES_REQUESTED", "DISMISSED"):
                latest[r.user] = r.state
        return latest

    @staticmethod
    def _check_review_event(issue: Issue, actor: str, event: str, body: str,
                            comments: int) -> str:
        states = {"APPROVE": "APPROVED", "REQUEST_CHANGES": "CHANGES_REQUESTED",
                  "COMMENT": "COMMENTED"}
        if event not in states:
            raise HubError(422, "Validation Failed",
                           [{"resource": "PullRequestReview", "code": "invalid",
                             "field": "event"}])
        if actor == issue.user and event == "APPROVE":
            raise HubError(422, "Unprocessable Entity", ["Can not approve your own pull request"])
        if actor == issue.user and event == "REQUEST_CHANGES":
            raise HubError(422, "Unprocessable Entity",
                           ["Can not request changes on your own pull request"])
        if event != "APPROVE" and not body and not comments:
            raise HubError(422, "Unprocessable Entity",
                           [f"Body is required when the event is {event}"])
        return states[event]

    def create_review(self, repo: Repo, number: int, actor: str, now: int, body: Any,
                      event: Any, commit_id: str, comments: list[dict[str, Any]]) -> Review:
        """A review, submitted at once with ``event`` or left PENDING without one.
        ``comments`` are checked against the diff by the app (path, line, side, position,
        diff_hunk, body...)."""
        issue = self.pull(repo, number)
        if body is not None and not isinstance(body, str):
            raise HubError(422, "Invalid request.\n\nFor 'properties/body', is not a string.")
        body = body or ""
        if event in (None, "", "PENDING"):
            state = "PENDING"
        else:
            state = self._check_review_event(issue, actor, event, body, len(comments))
        if any(r.pull == number and r.user == actor and r.state == "PENDING"
               for r in repo.reviews.values()):
            raise HubError(422, "Unprocessable Entity",
                           ["User can only have one pending review per pull request"])
        review = Review(self.new_id(), number, actor, body, state, commit_id, now)
        repo.reviews[review.id] = review
        for c in comments:
            self._new_review_comment(repo, review, actor, now, c)
        if state != "PENDING":
            self._submitted(repo, issue, review, actor, now)
        return review

    def _submitted(self, repo: Repo, issue: Issue, review: Review, actor: str, now: int) -> None:
        review.submitted_at = now
        if actor in issue.pr["requested_reviewers"]:  # a review answers the request
            issue.pr["requested_reviewers"].remove(actor)
        issue.updated_at = now
        self._announce(repo, "pull_request_review", "submitted", issue.number,
                       {"sender": actor, "review": review})
        for c in sorted((c for c in repo.review_comments.values() if c.review_id == review.id),
                        key=lambda c: c.id):
            self._announce(repo, "pull_request_review_comment", "created", issue.number,
                           {"sender": actor, "comment": c})

    def submit_review(self, repo: Repo, number: int, review_id: int, actor: str, now: int,
                      event: Any, body: Any) -> Review:
        issue = self.pull(repo, number)
        review = self.review(repo, number, review_id, actor)
        if review.state != "PENDING":
            raise HubError(422, "Unprocessable Entity", ["Can not submit a non-pending review"])
        if body is not None and not isinstance(body, str):
            raise HubError(422, "Invalid request.\n\nFor 'properties/body', is not a string.")
        body = body or review.body
        comments = sum(1 for c in repo.review_comments.values() if c.review_id == review.id)
        review.state = self._check_review_event(issue, actor, event, body, comments)
        review.body = body
        self._submitted(repo, issue, review, actor, now)
        return review

    def edit_review(self, repo: Repo, number: int, review_id: int, actor: str, now: int,
                    body: Any) -> Review:
        review = self.review(repo, number, review_id, actor)
        if review.user != actor:
            raise HubError(403, "You can only update your own reviews.")
        if not isinstance(body, str) or not body:
            raise HubError(422, "Validation Failed",
                           [{"resource": "PullRequestReview", "code": "missing_field",
                             "field": "body"}])
        if body != review.body:
            changes = {"body": {"from": review.body}}
            review.body = body
            if review.state != "PENDING":
                self._announce(repo, "pull_request_review", "edited", number,
                               {"sender": actor, "review": review, "changes": changes})
        return review

    def delete_review(self, repo: Repo, number: int, review_id: int, actor: str) -> Review:
        review = self.review(repo, number, review_id, actor)
        if review.state != "PENDING":
            raise HubError(422, "Unprocessable Entity",
                           ["Can not delete a non-pending pull request review"])
        del repo.reviews[review.id]
        for c in [c for c in repo.review_comments.values() if c.review_id == review.id]:
            del repo.review_comments[c.id]
        return review

    def dismiss_review(self, repo: Repo, number: int, review_id: int, actor: str, now: int,
                       message: Any) -> Review:
        self._require_push(repo, actor)
        review = self.review(repo, number, review_id, actor)
        if not isinstance(message, str) or not message:
            raise HubError(422, "Validation Failed",
                           [{"resource": "PullRequestReview", "code": "missing_field",
                             "field": "message"}])
        if review.state not in ("APPROVED", "CHANGES_REQUESTED"):
            raise HubError(422, "Unprocessable Entity",
                           ["Can not dismiss a " + ("pending" if review.state == "PENDING"
                                                    else "commented") + " pull request review"])
        review.state = "DISMISSED"
        self._announce(repo, "pull_request_review", "dismissed", number,
                       {"sender": actor, "review": review})
        return review

    def dismiss_stale_approvals(self, repo: Repo, number: int) -> None:
        """A push to the head under ``dismiss_stale_reviews``: approvals no longer count."""
        for r in repo.reviews.values():
            if r.pull == number and r.state == "APPROVED":
                r.state = "DISMISSED"

    # ------------------------------------------------------------ review comments

    def _new_review_comment(self, repo: Repo, review: Review, actor: str, now: int,
                            c: dict[str, Any]) -> ReviewComment:
        comment = ReviewComment(
            self.new_id(), review.pull, review.id, actor, c["body"], c["path"],
            c.get("commit_id") or review.commit_id, now, now, line=c.get("line"),
            side=c.get("side"), start_line=c.get("start_line"), start_side=c.get("start_side"),
            position=c.get("position"), diff_hunk=c.get("diff_hunk", ""),
            subject_type=c.get("subject_type", "line"), in_reply_to=c.get("in_reply_to"))
        repo.review_comments[comment.id] = comment
        return comment

    def review_comment(self, repo: Repo, comment_id: int, viewer: str | None) -> ReviewComment:
        comment = repo.review_comments.get(comment_id)
        review = repo.reviews.get(comment.review_id) if comment else None
        if comment is None or review is None or (review.state == "PENDING"
                                                 and review.user != viewer):
            raise not_found()
        return comment

    def visible_review_comments(self, repo: Repo) -> list[ReviewComment]:
        """Review comments of submitted reviews (pending ones are their author's draft)."""
        return [c for c in repo.review_comments.values()
                if c.review_id in repo.reviews and repo.reviews[c.review_id].state != "PENDING"]

    def create_review_comment(self, repo: Repo, number: int, actor: str, now: int,
                              c: dict[str, Any]) -> ReviewComment:
        """A single comment (GitHub wraps it in a COMMENTED review of its own); a reply
        (``in_reply_to``) joins its thread's first comment, whose place it takes."""
        issue = self.pull(repo, number)
        if not isinstance(c.get("body"), str) or not c["body"]:
            raise HubError(422, "Validation Failed",
                           [{"resource": "PullRequestReviewComment", "code": "missing_field",
                             "field": "body"}])
        if c.get("in_reply_to") is not None:
            parent = self.review_comment(repo, c["in_reply_to"], actor)
            if parent.pull != number:
                raise not_found()
            if parent.in_reply_to is not None:
                parent = self.review_comment(repo, parent.in_reply_to, actor)
            c = {"body": c["body"], "in_reply_to": parent.id, "path": parent.path,
                 "commit_id": parent.commit_id, "line": parent.line, "side": parent.side,
                 "start_line": parent.start_line, "start_side": parent.start_side,
                 "position": parent.position, "diff_hunk": parent.diff_hunk,
                 "subject_type": parent.subject_type}
        review = Review(self.new_id(), number, actor, "", "COMMENTED", c["commit_id"], now, now)
        repo.reviews[review.id] = review
        comment = self._new_review_comment(repo, review, actor, now, c)
        issue.updated_at = now
        self._announce(repo, "pull_request_review_comment", "created", number,
                       {"sender": actor, "comment": comment})
        return comment

    def edit_review_comment(self, repo: Repo, comment_id: int, actor: str, now: int,
                            body: Any) -> ReviewComment:
        comment = self.review_comment(repo, comment_id, actor)
        if actor != comment.user and not repo.can_push(actor):
            raise HubError(403, "Must have push access to edit this comment.")
        if not isinstance(body, str) or not body:
            raise HubError(422, "Validation Failed",
                           [{"resource": "PullRequestReviewComment", "code": "missing_field",
                             "field": "body"}])
        if body != comment.body:
            changes = {"body": {"from": comment.body}}
            comment.body, comment.updated_at = body, now
            self._announce(repo, "pull_request_review_comment", "edited", comment.pull,
                           {"sender": actor, "comment": comment, "changes": changes})
        return comment

    def delete_review_comment(self, repo: Repo, comment_id: int, actor: str) -> None:
        comment = self.review_comment(repo, comment_id, actor)
        if actor != comment.user and not repo.can_push(actor):
            raise HubError(403, "Must have push access to delete this comment.")
        del repo.review_comments[comment_id]
        repo.reactions.pop(f"review_comment:{comment_id}", None)
        self._announce(repo, "pull_request_review_comment", "deleted", comment.pull,
                       {"sender": actor, "comment": comment})

    # ------------------------------------------------------------ head and base moves, merging

    def synchronize(self, repo: Repo, number: int, actor: str, now: int, after: str,
                    dismiss_stale: bool = False) -> None:
        """The head branch moved (a push, or the refs API): ``synchronize``."""
        issue = self.pull(repo, number)
        before, issue.pr["head_sha"] = issue.pr["head_sha"], after
        issue.updated_at = now
        if dismiss_stale:
            self.dismiss_stale_approvals(repo, number)
        self._announce(repo, "pull_request", "synchronize", number,
                       {"sender": actor, "before": before, "after": after})

    def merge_pull(self, repo: Repo, number: int, actor: str, now: int, merge_sha: str,
                   head_sha: str, base_sha: str, closes: list[int]) -> Issue:
        """Record a merge (by the merge API, or a push that brought the head into the base):
        the pull request is closed and merged; open issues in ``closes`` (closing keywords,
        when the base is the default branch) are closed as completed by the merge commit."""
        issue = self.pull(repo, number)
        issue.pr.update(merged=True, merged_at=now, merged_by=actor,
                          merge_commit_sha=merge_sha, head_sha=head_sha, base_sha=base_sha)
        issue.state, issue.closed_at, issue.closed_by, issue.updated_at = \
            "closed", now, actor, now
        self._event(repo, issue, "merged", actor, now, commit_id=merge_sha, announce=False)
        self._event(repo, issue, "closed", actor, now)
        for n in dict.fromkeys(closes):
            other = repo.issues.get(n)
            if other is None or other.pull is not None or other.state != "open":
                continue
            other.state, other.state_reason = "closed", "completed"
            other.closed_at, other.closed_by, other.updated_at = now, actor, now
            self._event(repo, other, "closed", actor, now, commit_id=merge_sha)
        return issue

    # ------------------------------------------------------------ branch protection

    def set_protection(self, repo: Repo, actor: str, branch: str,
                       rule: dict[str, Any]) -> dict[str, Any]:
        self._require_admin(repo, actor)
        repo.protections[branch] = rule
        return rule

    def protection(self, repo: Repo, actor: str, branch: str) -> dict[str, Any]:
        self._require_admin(repo, actor)
        rule = repo.protections.get(branch)
        if rule is None:
            raise HubError(404, "Branch not protected")
        return rule

    def delete_protection(self, repo: Repo, actor: str, branch: str) -> None:
        self.protection(repo, actor, branch)
        del repo.protections[branch]

    # ------------------------------------------------------------ assignees

    def _assignable(self, repo: Repo, login: str) -> bool:
        return login in self.users and repo.can_push(login)

    def _assign(self, repo: Repo, issue: Issue, logins: list[str], actor: str, now: int) -> None:
        for login in logins:
            if len(issue.assignees) >= MAX_ASSIGNEES:
                break  # silently dropped, as on GitHub
            if login in issue.assignees or not self._assignable(repo, login):
                continue  # silently ignored
            issue.assignees.append(login)
            self._event(repo, issue, "assigned", actor, now, assignee=login)

    def add_assignees(self, repo: Repo, number: int, actor: str, now: int, logins: Any) -> Issue:
        issue = self.issue(repo, number)
        if repo.can_triage(actor):
            self._assign(repo, issue, _names(logins, "assignees"), actor, now)
            issue.updated_at = now
        return issue

    def remove_assignees(self, repo: Repo, number: int, actor: str, now: int,
                         logins: Any) -> Issue:
        issue = self.issue(repo, number)
        if repo.can_triage(actor):
            for login in _names(logins, "assignees"):
                if login in issue.assignees:
                    issue.assignees.remove(login)
                    self._event(repo, issue, "unassigned", actor, now, assignee=login)
            issue.updated_at = now
        return issue

    # ------------------------------------------------------------ issue labels

    def add_labels(self, repo: Repo, number: int, actor: str, now: int, names: Any) -> Issue:
        self._require_triage(repo, actor)
        issue = self.issue(repo, number)
        for name in _names(names, "labels"):
            label = self._ensure_label(repo, name)
            if label.name not in issue.labels:
                issue.labels.append(label.name)
                self._event(repo, issue, "labeled", actor, now, label=label.name)
        issue.updated_at = now
        return issue

    def set_labels(self, repo: Repo, number: int, actor: str, now: int, names: Any,
                   touch: bool = True) -> Issue:  # touch: set updated_at
        self._require_triage(repo, actor)
        issue = self.issue(repo, number)
        wanted = [self._ensure_label(repo, n).name for n in _names(names, "labels")]
        for gone in [x for x in issue.labels if x not in wanted]:
            issue.labels.remove(gone)
            self._event(repo, issue, "unlabeled", actor, now, label=gone)
        for name in wanted:
            if name not in issue.labels:
                issue.labels.append(name)
                self._event(repo, issue, "labeled", actor, now, label=name)
        if touch:
            issue.updated_at = now
        return issue

    def remove_label(self, repo: Repo, number: int, actor: str, now: int, name: str) -> Issue:
        self._require_triage(repo, actor)
        issue = self.issue(repo, number)
        match = next((x for x in issue.labels if x.lower() == name.lower()), None)
        if match is None:
            raise HubError(404, "Label does not exist")
        issue.labels.remove(match)
        self._event(repo, issue, "unlabeled", actor, now, label=match)
        issue.updated_at = now
        return issue

    # ------------------------------------------------------------ comments

    def create_comment(self, repo: Repo, number: int, actor: str, now: int, body: Any) -> Comment:
        issue = self.issue(repo, number)
        if not isinstance(body, str) or not body:
            raise HubError(422, "Validation Failed",
                           [{"resource": "IssueComment", "code": "missing_field", "field": "body"}])
        if issue.locked and not repo.can_push(actor):
            raise HubError(403, "Unable to create comment because issue is locked.")
        comment = Comment(self.new_id(), number, actor, body, now, now)
        repo.comments[comment.id] = comment
        self._announce(repo, "issue_comment", "created", number,
                       {"sender": actor, "comment": comment})
        issue.comments += 1
        issue.updated_at = now
        return comment

    def comment(self, repo: Repo, comment_id: int) -> Comment:
        comment = repo.comments.get(comment_id)
        if comment is None:
            raise not_found()
        return comment

    def edit_comment(self, repo: Repo, comment_id: int, actor: str, now: int, body: Any) -> Comment:
        """The comment's author or a writer; a changed body bumps ``updated_at``."""
        comment = self.comment(repo, comment_id)
        if actor != comment.user and not repo.can_push(actor):
            raise HubError(403, "Must have push access to edit this comment.")
        if not isinstance(body, str) or not body:
            raise HubError(422, "Validation Failed",
                           [{"resource": "IssueComment", "code": "missing_field", "field": "body"}])
        if body != comment.body:
            changes = {"body": {"from": comment.body}}
            comment.body, comment.updated_at = body, now
            self._announce(repo, "issue_comment", "edited", comment.issue,
                           {"sender": actor, "comment": comment, "changes": changes})
        return comment

    def delete_comment(self, repo: Repo, comment_id: int, actor: str, now: int) -> None:
        """The comment's author or a writer (204); its reactions go with it."""
        comment = self.comment(repo, comment_id)
        if actor != comment.user and not repo.can_push(actor):
            raise HubError(403, "Must have push access to delete this comment.")
        del repo.comments[comment_id]
        repo.reactions.pop(f"comment:{comment_id}", None)
        issue = repo.issues.get(comment.issue)
        if issue is not None:
            issue.comments = max(0, issue.comments - 1)
        self._announce(repo, "issue_comment", "deleted", comment.issue,
                       {"sender": actor, "comment": comment})

    # ------------------------------------------------------------ reactions

    def reactions(self, repo: Repo, subject: str) -> list[Reaction]:
        return repo.reactions.get(subject, [])

    def react(self, repo: Repo, subject: str, actor: str, now: int,
              content: Any) -> tuple[bool, Reaction]:
        """(created, reaction): one reaction per user and content; again is not new (200)."""
        if content not in REACTIONS:
            raise HubError(422, "Validation Failed",
                           [{"resource": "Reaction", "code": "invalid", "field": "content"}])
        kind, _, ident = subject.partition(":")
        target = repo.issues.get(int(ident)) if kind == "issue" else None
        if kind == "comment":
            comment = repo.comments.get(int(ident))
            target = repo.issues.get(comment.issue) if comment else None
        if target is None:
            raise not_found()
        if target.locked and not repo.can_push(actor):
            raise HubError(403, "Unable to create reaction because issue is locked.")
        existing = repo.reactions.setdefault(subject, [])
        for reaction in existing:
            if reaction.user == actor and reaction.content == content:
                return False, reaction
        reaction = Reaction(self.new_id(), actor, content, now)
        existing.append(reaction)
        return True, reaction

    def unreact(self, repo: Repo, subject: str, actor: str, reaction_id: int) -> None:
        existing = repo.reactions.get(subject, [])
        reaction = next((x for x in existing if x.id == reaction_id), None)
        if reaction is None:
            raise not_found()
        if reaction.user != actor and not repo.can_push(actor):
            raise HubError(403, "Must have push access to delete this reaction.")
        existing.remove(reaction)

    # ------------------------------------------------------------ webhooks

    def create_hook(self, repo: Repo, actor: str, now: int,
                    doc: dict[str, Any]) -> dict[str, Any]:
        self._require_push(repo, actor)
        config = doc.get("config")
        if not isinstance(config, dict) or not isinstance(config.get("url"), str) \
                or not config["url"].startswith(("http://", "https://")):
            raise HubError(422, "Validation Failed",
                           [{"resource": "Hook", "code": "custom", "message": "Config must have a url"}])
        events = doc.get("events", ["push"])
        if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
            raise HubError(422, "Validation Failed",
                           [{"resource": "Hook", "code": "invalid", "field": "events"}])
        hook_id = self.new_id()
        hook = {"id": hook_id, "name": "web", "active": bool(doc.get("active", True)),
                "events": events, "config": {
                    "url": config["url"], "content_type": config.get("content_type", "json"),
                    "secret": config.get("secret"), "insecure_ssl": str(config.get("insecure_ssl", "0"))},
                "created_at": now, "updated_at": now}
        repo.hooks[hook_id] = hook
        return hook

    def delete_hook(self, repo: Repo, actor: str, hook_id: int) -> None:
        self._require_push(repo, actor)
        if repo.hooks.pop(hook_id, None) is None:
            raise not_found()

    # ------------------------------------------------------------ helpers

    @staticmethod
    def _require_push(repo: Repo, actor: str | None) -> None:
        if not repo.can_push(actor):
            raise HubError(403, "Must have push access to repository")

    @staticmethod
    def _require_admin(repo: Repo, actor: str | None) -> None:
        if repo.role(actor) != "admin":
            raise HubError(403, "Must have admin rights to Repository.")

    @staticmethod
    def _require_triage(repo: Repo, actor: str | None) -> None:
        if not repo.can_triage(actor):
            raise HubError(403, "Must have triage access to repository")

    # ------------------------------------------------------------ persistence

    def to_json(self) -> dict[str, Any]:
        repos = []
        for repo in self.repos.values():
            d = asdict(repo)
            d["roles"] = dict(sorted(repo.roles.items()))
            d["contributors"] = sorted(repo.contributors)
            d["pull_authors"] = sorted(repo.pull_authors)
            d["labels"] = list(d["labels"].values())
            d["issues"] = list(d["issues"].values())
            d["comments"] = list(d["comments"].values())
            d["reviews"] = list(d["reviews"].values())
            d["review_comments"] = list(d["review_comments"].values())
            d["hooks"] = list(repo.hooks.values())
            repos.append(d)
        return {"format": 1, "next_id": next(self._ids), "users": [asdict(u) for u in self.users.values()],
                "tokens": self.tokens, "repos": repos, "apps": self.apps.to_json()}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> "Hub":
        hub = cls()
        if doc.get("format") != 1:
            raise ValueError("unknown devhub state format")
        for u in doc["users"]:
            hub.users[u["login"]] = User(**u)
        hub.tokens = dict(doc["tokens"])
        for d in doc["repos"]:
            roles = dict(d.get("roles") or {})
            for login in d.get("read", []):  # the first format had push and read sets
                roles.setdefault(login, "read")
            for login in d.get("push", []):
                roles[login] = "write"
            repo = Repo(id=d["id"], owner=d["owner"], name=d["name"], private=d["private"],
                        roles=roles, contributors=set(d.get("contributors", [])),
                        pull_authors=set(d.get("pull_authors", [])), next_number=d["next_number"],
                        created_at=d["created_at"], default_branch=d["default_branch"])
            repo.labels = {x["name"].lower(): Label(**x) for x in d["labels"]}
            repo.issues = {x["number"]: Issue(**x) for x in d["issues"]}
            for issue in repo.issues.values():
                if issue.pull is not None:
                    pull_defaults(issue.pull)
                    issue.pull["id"] = issue.pull["id"] or issue.id
            repo.comments = {x["id"]: Comment(**x) for x in d["comments"]}
            repo.events = [Event(**x) for x in d["events"]]
            repo.hooks = {h["id"]: h for h in d["hooks"]}
            repo.reactions = {k: [Reaction(**x) for x in v]
                              for k, v in d.get("reactions", {}).items()}
            repo.reviews = {x["id"]: Review(**x) for x in d.get("reviews", [])}
            repo.review_comments = {x["id"]: ReviewComment(**x)
                                    for x in d.get("review_comments", [])}
            repo.protections = dict(d.get("protections", {}))
            repo.statuses = list(d.get("statuses", []))
            repo.check_runs = list(d.get("check_runs", []))
            repo.check_suites = list(d.get("check_suites", []))
            hub.repos[repo.full_name.lower()] = repo
        hub.apps.load(doc.get("apps"))
        hub._ids = itertools.count(doc["next_id"])
        return hub


def _names(value: Any, field_name: str) -> list[str]:
    """A list of names from a JSON value (strings, or objects with ``name``/``login``)."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise HubError(422, f"Invalid request.\n\nFor 'properties/{field_name}', is not an array.")
    out = []
    for item in value:
        if isinstance(item, dict):
            item = item.get("name") or item.get("login")
        if not isinstance(item, str) or not item:
            raise HubError(422, f"Invalid request.\n\nFor 'items', {item!r} is not a string.")
        out.append(item)
    return out


PULL_DEFAULTS: dict[str, Any] = {
    "id": None, "head": "", "base": "", "draft": False, "merged": False, "merged_at": None,
    "merged_by": None, "merge_commit_sha": None, "head_sha": None, "base_sha": None,
    "maintainer_can_modify": False,
    "head_repo_deleted": False}  # its head was a fork, deleted since: head.repo is null


def pull_defaults(pull: dict[str, Any]) -> dict[str, Any]:
    """A pull request's ``pull`` part with every key (older state files lack some)."""
    for key, value in PULL_DEFAULTS.items():
        pull.setdefault(key, value)
    pull.setdefault("requested_reviewers", [])
    return pull


def closing_references(texts: list[str | None], full_name: str) -> list[int]:
    """Issue numbers of ``full_name`` that GitHub's closing keywords name in ``texts``:
    close/closes/closed, fix/fixes/fixed, resolve/resolves/resolved, an optional colon, then
    ``#N``, ``owner/repo#N`` or the issue's URL (case-insensitive)."""
    found: list[int] = []
    for text in texts:
        for m in CLOSING.finditer(text or ""):
            other = m.group("repo") or m.group("url_repo")
            if other is None or other.lower() == full_name.lower():
                found.append(int(m.group("number")))
    return list(dict.fromkeys(found))


def _check_issue_changes(issue: Issue, changes: dict[str, Any], pusher: bool, triager: bool,
                         author: bool) -> None:
    """An issue's PATCH refused (403 or 422) before anything changes: who may edit what,
    the fields' types and values, and no reopening a merged pull request."""
    if not (pusher or triager or author):
        raise HubError(403, "Must have push access to edit this issue.")
    if not (pusher or author) and ("title" in changes or "body" in changes):
        raise HubError(403, "Must have push access to edit this issue.")
    if "title" in changes and (not isinstance(changes["title"], (str, int))
                               or str(changes["title"]) == ""):
        raise HubError(422, "Validation Failed",
                       [{"resource": "Issue", "code": "missing_field", "field": "title"}])
    if "body" in changes and changes["body"] is not None \
            and not isinstance(changes["body"], str):
        raise HubError(422, "Invalid request.\n\nFor 'properties/body', is not a string.")
    if "state" in changes and changes["state"] not in ("open", "closed"):
        raise HubError(422, "Validation Failed",
                       [{"resource": "Issue", "code": "invalid", "field": "state"}])
    reason = changes.get("state_reason")
    if reason is not None and reason not in ("completed", "not_planned", "reopened",
                                             "duplicate"):
        raise HubError(422, "Validation Failed",
                       [{"resource": "Issue", "code": "invalid", "field": "state_reason"}])
    if issue.pull is not None and changes.get("state") == "open" and issue.pull["merged"]:
        raise HubError(422, "Validation Failed",
                       [{"resource": "PullRequest", "code": "custom", "field": "state",
                         "message": "state cannot be changed. The pull request cannot be "
                                    "reopened because it has been merged."}])
