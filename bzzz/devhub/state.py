"""devhub's state and GitHub's issue semantics (a core: no I/O, time passed in).

Every rule here is GitHub's, including the awkward ones Bzzz must cope with
(shared/FACTS.md): adding assignees is additive, silently ignores logins without push
access and silently stops at 10; a PATCH with ``assignees`` replaces the set (last writer
wins); issue events have 1 s timestamps and increasing ids.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from typing import Any

MAX_ASSIGNEES = 10
DEFAULT_LABEL_COLOR = "ededed"
# Repository roles, most access first. The permission API's legacy ``permission`` maps
# maintain to write and triage to read (GitHub's REST reference).
ROLES = ("admin", "maintain", "write", "triage", "read")
WRITE_ROLES = frozenset({"admin", "maintain", "write"})
TRIAGE_ROLES = WRITE_ROLES | {"triage"}
SEED_ROLE_KEYS = {"admin": "admin", "maintain": "maintain", "push": "write", "write": "write",
                  "triage": "triage", "read": "read"}
REACTIONS = ("+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes")


class HubError(Exception):
    """An API error: HTTP status and GitHub's message."""

    def __init__(self, status: int, message: str, errors: list[dict] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors or []


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
    pull: dict | None = None  # set for pull requests (they share the issue numbering)


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
    hooks: dict[int, dict] = field(default_factory=dict)
    reactions: dict[str, list[Reaction]] = field(default_factory=dict)  # "issue:N"/"comment:ID"
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

    def add_repo(self, full_name: str, now: int, push: list[str] = (), read: list[str] = (),
                 private: bool = False, roles: dict[str, list[str]] | None = None,
                 contributors: list[str] = ()) -> Repo:
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
               assignee: str | None = None, label: str | None = None) -> None:
        repo.events.append(Event(self.new_id(), issue.number, kind, actor, now, assignee, label))
        extra: dict[str, Any] = {"sender": actor}
        if assignee is not None:
            extra["assignee"] = assignee
        if label is not None:
            extra["label"] = label
        self._announce(repo, "issues", kind, issue.number, extra)

    def _announce(self, repo: Repo, event: str, action: str, number: int,
                  extra: dict[str, Any]) -> None:
        if repo.hooks:
            self.outbox.append((repo.full_name.lower(), event, action, number, extra))

    def create_issue(self, repo: Repo, actor: str, now: int, title: Any, body: Any = None,
                     labels: Any = None, assignees: Any = None) -> Issue:
        if not isinstance(title, (str, int)) or str(title) == "":
            raise HubError(422, "Validation Failed",
                           [{"resource": "Issue", "code": "missing_field", "field": "title"}])
        if body is not None and not isinstance(body, str):
            raise HubError(422, "Invalid request.\n\nFor 'properties/body', is not a string.")
        issue = Issue(repo.next_number, self.new_id(), str(title), body, actor, now, now)
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
                     changes: dict[str, Any]) -> Issue:
        """GitHub's PATCH: "Issue owners and users with push access can edit an issue."

        Writers change anything. The issue's author changes its title, body and state; a
        triager changes state, labels and assignees. Labels, assignees and milestone from
        anyone else are silently dropped (as on GitHub); others get 403.
        """
        issue = self.issue(repo, number)
        pusher, triager = repo.can_push(actor), repo.can_triage(actor)
        author = actor == issue.user
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
        edited: dict[str, Any] = {}
        if "title" in changes and str(changes["title"]) != issue.title:
            edited["title"] = {"from": issue.title}
            issue.title = str(changes["title"])
        if "body" in changes and changes["body"] != issue.body:
            edited["body"] = {"from": issue.body}
            issue.body = changes["body"]
        if edited:
            self._announce(repo, "issues", "edited", issue.number,
                           {"sender": actor, "changes": edited})
        if "state" in changes:
            state = changes["state"]
            if state != issue.state:
                issue.state = state
                if state == "closed":
                    issue.closed_at, issue.closed_by = now, actor
                    issue.state_reason = reason or "completed"
                    self._event(repo, issue, "closed", actor, now)
                else:
                    issue.closed_at, issue.closed_by = None, None
                    issue.state_reason = "reopened"
                    self._event(repo, issue, "reopened", actor, now)
        if triager and "labels" in changes:
            self.set_labels(repo, number, actor, now, changes["labels"], touch=False)
        if triager and ("assignees" in changes or "assignee" in changes):
            wanted = changes.get("assignees")
            if wanted is None and "assignee" in changes:
                wanted = [changes["assignee"]] if changes["assignee"] else []
            wanted = [w for w in _names(wanted, "assignees") if self._assignable(repo, w)]
            for gone in [a for a in issue.assignees if a not in wanted]:
                issue.assignees.remove(gone)
                self._event(repo, issue, "unassigned", actor, now, assignee=gone)
            self._assign(repo, issue, wanted, actor, now)
        issue.updated_at = now
        return issue

    def create_pull(self, repo: Repo, actor: str, now: int, title: Any, body: Any, head: str,
                    base: str, draft: bool = False) -> Issue:
        """A pull request: an issue with a ``pull`` part (the app checks the branches)."""
        issue = self.create_issue(repo, actor, now, title, body)
        issue.pull = {"head": head, "base": base, "draft": bool(draft), "merged": False}
        repo.pull_authors.add(actor)
        return issue

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

    def create_hook(self, repo: Repo, actor: str, now: int, doc: dict[str, Any]) -> dict:
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
        hook = {"id": self.new_id(), "name": "web", "active": bool(doc.get("active", True)),
                "events": events, "config": {
                    "url": config["url"], "content_type": config.get("content_type", "json"),
                    "secret": config.get("secret"), "insecure_ssl": str(config.get("insecure_ssl", "0"))},
                "created_at": now, "updated_at": now}
        repo.hooks[hook["id"]] = hook
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
            d["hooks"] = list(repo.hooks.values())
            repos.append(d)
        return {"format": 1, "next_id": next(self._ids), "users": [asdict(u) for u in self.users.values()],
                "tokens": self.tokens, "repos": repos}

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
            repo.comments = {x["id"]: Comment(**x) for x in d["comments"]}
            repo.events = [Event(**x) for x in d["events"]]
            repo.hooks = {h["id"]: h for h in d["hooks"]}
            repo.reactions = {k: [Reaction(**x) for x in v]
                              for k, v in d.get("reactions", {}).items()}
            hub.repos[repo.full_name.lower()] = repo
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
