"""GitHub's JSON shapes for devhub's objects (the fields PyGithub and our clients read)."""

from __future__ import annotations

import base64
import time
from typing import Any

from .state import REACTIONS, WRITE_ROLES, Comment, Event, Hub, Issue, Label, Reaction, Repo


def ts(t: int | None) -> str | None:
    return None if t is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def node_id(kind: str, ident: int) -> str:
    return base64.b64encode(f"{kind}:{ident}".encode()).decode().rstrip("=")


class Renderer:
    def __init__(self, hub: Hub, base: str) -> None:
        self.hub = hub
        self.base = base.rstrip("/")

    def user(self, login: str | None) -> dict[str, Any] | None:
        if login is None:
            return None
        user = self.hub.users.get(login)
        uid = user.id if user else 0
        url = f"{self.base}/users/{login}"
        return {
            "login": login, "id": uid, "node_id": node_id("User", uid),
            "avatar_url": "", "gravatar_id": "", "url": url, "html_url": f"{self.base}/{login}",
            "followers_url": f"{url}/followers", "following_url": f"{url}/following{{/other_user}}",
            "gists_url": f"{url}/gists{{/gist_id}}", "starred_url": f"{url}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{url}/subscriptions", "organizations_url": f"{url}/orgs",
            "repos_url": f"{url}/repos", "events_url": f"{url}/events{{/privacy}}",
            "received_events_url": f"{url}/received_events", "type": "User",
            "site_admin": bool(user and user.site_admin),
        }

    def repo_url(self, repo: Repo) -> str:
        return f"{self.base}/repos/{repo.full_name}"

    def repo(self, repo: Repo, viewer: str | None) -> dict[str, Any]:
        url = self.repo_url(repo)
        return {
            "id": repo.id, "node_id": node_id("Repository", repo.id), "name": repo.name,
            "full_name": repo.full_name, "private": repo.private,
            "visibility": "private" if repo.private else "public",
            "owner": self.user(repo.owner), "html_url": f"{self.base}/{repo.full_name}",
            "description": None, "fork": False, "url": url,
            "issues_url": f"{url}/issues{{/number}}", "labels_url": f"{url}/labels{{/name}}",
            "git_refs_url": f"{url}/git/refs{{/sha}}", "pulls_url": f"{url}/pulls{{/number}}",
            "hooks_url": f"{url}/hooks",
            "clone_url": f"{self.base}/{repo.full_name}.git",
            "default_branch": repo.default_branch, "has_issues": True, "archived": False,
            "disabled": False, "open_issues_count": sum(
                1 for i in repo.issues.values() if i.state == "open"),
            "created_at": ts(repo.created_at), "updated_at": ts(repo.created_at),
            "pushed_at": ts(repo.created_at),
            "permissions": self.permissions(repo, viewer),
        }

    @staticmethod
    def permissions(repo: Repo, login: str | None) -> dict[str, bool]:
        role = repo.role(login)
        return {"admin": role == "admin", "maintain": role in ("admin", "maintain"),
                "push": role in WRITE_ROLES, "triage": repo.can_triage(login),
                "pull": repo.can_read(login) if login is not None else not repo.private}

    def collaborator(self, repo: Repo, login: str) -> dict[str, Any]:
        """A user with ``permissions`` and ``role_name`` (GitHub's collaborator shape)."""
        doc = self.user(login)
        doc["permissions"] = self.permissions(repo, login)
        doc["role_name"] = repo.role(login) or ("none" if repo.private else "read")
        return doc

    def permission(self, repo: Repo, login: str) -> dict[str, Any]:
        """``GET /collaborators/{u}/permission``: the legacy ``permission`` maps maintain to
        write and triage to read; anyone may read a public repository."""
        role = repo.role(login)
        legacy = {"admin": "admin", "maintain": "write", "write": "write", "triage": "read",
                  "read": "read"}.get(role or "", "none" if repo.private else "read")
        doc = self.collaborator(repo, login)
        return {"permission": legacy, "role_name": doc["role_name"], "user": doc}

    def reaction(self, r: Reaction) -> dict[str, Any]:
        return {"id": r.id, "node_id": node_id("Reaction", r.id), "user": self.user(r.user),
                "content": r.content, "created_at": ts(r.created_at)}

    def reaction_summary(self, repo: Repo, subject: str, url: str) -> dict[str, Any]:
        found = self.hub.reactions(repo, subject)
        doc: dict[str, Any] = {"url": url, "total_count": len(found)}
        for content in REACTIONS:
            doc[content] = sum(1 for x in found if x.content == content)
        return doc

    def label(self, repo: Repo, label: Label) -> dict[str, Any]:
        return {"id": label.id, "node_id": node_id("Label", label.id),
                "url": f"{self.repo_url(repo)}/labels/{label.name}", "name": label.name,
                "color": label.color, "default": False, "description": label.description}

    def issue(self, repo: Repo, issue: Issue) -> dict[str, Any]:
        url = f"{self.repo_url(repo)}/issues/{issue.number}"
        labels = [self.label(repo, repo.labels[name.lower()]) for name in issue.labels
                  if name.lower() in repo.labels]
        assignees = [self.user(a) for a in issue.assignees]
        doc = {
            "id": issue.id, "node_id": node_id("Issue", issue.id), "url": url,
            "repository_url": self.repo_url(repo), "labels_url": f"{url}/labels{{/name}}",
            "comments_url": f"{url}/comments", "events_url": f"{url}/events",
            "html_url": f"{self.base}/{repo.full_name}/issues/{issue.number}",
            "number": issue.number, "state": issue.state, "state_reason": issue.state_reason,
            "title": issue.title, "body": issue.body, "user": self.user(issue.user),
            "labels": labels, "assignee": assignees[0] if assignees else None,
            "assignees": assignees, "milestone": None, "locked": issue.locked,
            "active_lock_reason": None, "comments": issue.comments,
            "created_at": ts(issue.created_at), "updated_at": ts(issue.updated_at),
            "closed_at": ts(issue.closed_at), "closed_by": self.user(issue.closed_by),
            "author_association": self.hub.association(repo, issue.user),
            "reactions": self.reaction_summary(repo, f"issue:{issue.number}", f"{url}/reactions"),
        }
        if issue.pull is not None:
            doc["pull_request"] = {"url": f"{self.repo_url(repo)}/pulls/{issue.number}",
                                   "html_url": f"{self.base}/{repo.full_name}/pull/{issue.number}"}
        return doc

    def comment(self, repo: Repo, c: Comment) -> dict[str, Any]:
        url = f"{self.repo_url(repo)}/issues/comments/{c.id}"
        return {
            "id": c.id, "node_id": node_id("IssueComment", c.id), "url": url,
            "html_url": f"{self.base}/{repo.full_name}/issues/{c.issue}#issuecomment-{c.id}",
            "issue_url": f"{self.repo_url(repo)}/issues/{c.issue}", "body": c.body,
            "user": self.user(c.user), "created_at": ts(c.created_at),
            "updated_at": ts(c.updated_at),
            "author_association": self.hub.association(repo, c.user),
            "reactions": self.reaction_summary(repo, f"comment:{c.id}", f"{url}/reactions"),
        }

    def event(self, repo: Repo, e: Event, with_issue: bool = False) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "id": e.id, "node_id": node_id("Event", e.id),
            "url": f"{self.repo_url(repo)}/issues/events/{e.id}", "actor": self.user(e.actor),
            "event": e.event, "commit_id": None, "commit_url": None,
            "created_at": ts(e.created_at),
        }
        if e.assignee is not None:
            doc["assignee"] = self.user(e.assignee)
            doc["assigner"] = self.user(e.actor)
        if e.label is not None:
            label = repo.labels.get(e.label.lower())
            doc["label"] = {"name": e.label, "color": label.color if label else "ededed"}
        if with_issue and e.issue in repo.issues:
            doc["issue"] = self.issue(repo, repo.issues[e.issue])
        return doc
