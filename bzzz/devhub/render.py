"""GitHub's JSON shapes for devhub's objects (the fields PyGithub and our clients read)."""

from __future__ import annotations

import time
from typing import Any, overload
from urllib.parse import quote

from .state import (REACTIONS, WRITE_ROLES, Comment, Event, Hub, Issue, Label, Reaction, Repo,
                    Review, ReviewComment)
from .protection import FLAGS
from .userdoc import node_id, user_doc

__all__ = ["REPO_URLS", "Renderer", "node_id", "ts", "user_doc"]


REPO_URLS = {
    "archive_url": "/{archive_format}{/ref}", "assignees_url": "/assignees{/user}",
    "blobs_url": "/git/blobs{/sha}", "branches_url": "/branches{/branch}",
    "collaborators_url": "/collaborators{/collaborator}",
    "comments_url": "/comments{/number}", "commits_url": "/commits{/sha}",
    "compare_url": "/compare/{base}...{head}", "contents_url": "/contents/{+path}",
    "contributors_url": "/contributors", "deployments_url": "/deployments",
    "downloads_url": "/downloads", "events_url": "/events", "forks_url": "/forks",
    "git_commits_url": "/git/commits{/sha}", "git_refs_url": "/git/refs{/sha}",
    "git_tags_url": "/git/tags{/sha}", "hooks_url": "/hooks",
    "issue_comment_url": "/issues/comments{/number}",
    "issue_events_url": "/issues/events{/number}", "issues_url": "/issues{/number}",
    "keys_url": "/keys{/key_id}", "labels_url": "/labels{/name}",
    "languages_url": "/languages", "merges_url": "/merges",
    "milestones_url": "/milestones{/number}",
    "notifications_url": "/notifications{?since,all,participating}",
    "pulls_url": "/pulls{/number}", "releases_url": "/releases{/id}",
    "stargazers_url": "/stargazers", "statuses_url": "/statuses/{sha}",
    "subscribers_url": "/subscribers", "subscription_url": "/subscription",
    "tags_url": "/tags", "teams_url": "/teams", "trees_url": "/git/trees{/sha}",
}
"""Every URL template of GitHub's repository document, after the repository's API URL."""


def ts(t: int | None) -> str | None:
    return None if t is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


class Renderer:
    def __init__(self, hub: Hub, base: str) -> None:
        self.hub = hub
        self.base = base.rstrip("/")

    @overload
    def user(self, login: str) -> dict[str, Any]: ...

    @overload
    def user(self, login: str | None) -> dict[str, Any] | None: ...

    def user(self, login: str | None) -> dict[str, Any] | None:
        """A user's document; None (JSON null) for no one."""
        if login is None:
            return None
        user = self.hub.users.get(login)
        return user_doc(self.base, login, user.id if user else 0, bool(user and user.site_admin))

    def repo_url(self, repo: Repo) -> str:
        return f"{self.base}/repos/{repo.full_name}"

    def user_detail(self, login: str, private: bool) -> dict[str, Any]:
        """``GET /users/{login}`` (GitHub's public-user) or, for oneself at ``GET /user``,
        the private-user (its counts and plan fields too)."""
        doc = self.user(login)
        user = self.hub.users.get(login)
        created = ts(0)
        owned = [r for r in self.hub.repos.values() if r.owner == login]
        doc.update({"name": None, "company": None, "blog": "", "location": None,
                    "email": None, "hireable": None, "bio": None, "twitter_username": None,
                    "public_repos": sum(1 for r in owned if not r.private), "public_gists": 0,
                    "followers": 0, "following": 0, "created_at": created,
                    "updated_at": created})
        if private:
            doc.update({"private_gists": 0, "owned_private_repos": sum(
                1 for r in owned if r.private), "total_private_repos": sum(
                1 for r in owned if r.private), "disk_usage": 0, "collaborators": 0,
                "two_factor_authentication": False, "user_view_type": "private"})
        else:
            doc["user_view_type"] = "public"
        if user is None:
            doc["id"] = 0
        return doc

    def repo(self, repo: Repo, viewer: str | None) -> dict[str, Any]:
        """GitHub's full repository (every URL template it sends, pointing at devhub)."""
        url = self.repo_url(repo)
        html = f"{self.base}/{repo.full_name}"
        host = self.base.split("://", 1)[-1]
        open_issues = sum(1 for i in repo.issues.values() if i.state == "open")
        doc: dict[str, Any] = {
            "id": repo.id, "node_id": node_id("Repository", repo.id), "name": repo.name,
            "full_name": repo.full_name, "private": repo.private,
            "visibility": "private" if repo.private else "public",
            "owner": self.user(repo.owner), "html_url": html, "description": None,
            "fork": False, "url": url, "homepage": None, "language": None,
            "clone_url": f"{html}.git", "git_url": f"git://{host}/{repo.full_name}.git",
            "ssh_url": f"git@{host}:{repo.full_name}.git", "svn_url": html,
            "mirror_url": None, "default_branch": repo.default_branch,
            "has_issues": True, "has_projects": False, "has_wiki": False, "has_pages": False,
            "has_downloads": False, "has_discussions": False, "archived": False,
            "disabled": False, "is_template": False, "allow_forking": True,
            "web_commit_signoff_required": False, "topics": [], "license": None,
            "forks": 0, "forks_count": 0, "stargazers_count": 0, "watchers": 0,
            "watchers_count": 0, "size": 0, "open_issues": open_issues,
            "open_issues_count": open_issues, "network_count": 0, "subscribers_count": 0,
            "created_at": ts(repo.created_at), "updated_at": ts(repo.created_at),
            "pushed_at": ts(repo.created_at),
            "permissions": self.permissions(repo, viewer),
        }
        for key, tail in REPO_URLS.items():
            doc[key] = url + tail
        return doc

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
            html = f"{self.base}/{repo.full_name}/pull/{issue.number}"
            doc["pull_request"] = {"url": f"{self.repo_url(repo)}/pulls/{issue.number}",
                                   "html_url": html, "diff_url": f"{html}.diff",
                                   "patch_url": f"{html}.patch",
                                   "merged_at": ts(issue.pull.get("merged_at"))}
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
            "performed_via_github_app": None,
            "reactions": self.reaction_summary(repo, f"comment:{c.id}", f"{url}/reactions"),
        }

    def event(self, repo: Repo, e: Event, with_issue: bool = False) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "id": e.id, "node_id": node_id("Event", e.id),
            "url": f"{self.repo_url(repo)}/issues/events/{e.id}", "actor": self.user(e.actor),
            "event": e.event, "commit_id": None, "commit_url": None,
            "created_at": ts(e.created_at), "performed_via_github_app": None,
        }
        if e.assignee is not None:
            doc["assignee"] = self.user(e.assignee)
            doc["assigner"] = self.user(e.actor)
        if e.commit_id is not None:
            doc["commit_id"] = e.commit_id
            doc["commit_url"] = f"{self.repo_url(repo)}/commits/{e.commit_id}"
        if e.requested_reviewer is not None:
            doc["requested_reviewer"] = self.user(e.requested_reviewer)
            doc["review_requester"] = self.user(e.actor)
        if e.label is not None:
            label = repo.labels.get(e.label.lower())
            doc["label"] = {"name": e.label, "color": label.color if label else "ededed"}
        if with_issue and e.issue in repo.issues:
            doc["issue"] = self.issue(repo, repo.issues[e.issue])
        return doc

    # ------------------------------------------------------------------ pull requests

    def pull(self, repo: Repo, issue: Issue, viewer: str | None, head_sha: str | None,
             base_sha: str | None, detail: dict[str, Any] | None = None) -> dict[str, Any]:
        """GitHub's pull request. ``detail`` (the single-pull fields that need git: commits,
        additions, deletions, changed_files, mergeable, rebaseable, mergeable_state) is
        merged in when given, as ``GET /pulls/{n}`` has them and the list does not."""
        pull = issue.pr
        doc = self.issue(repo, issue)
        for key in ("pull_request", "state_reason", "reactions", "closed_by", "events_url",
                    "labels_url", "repository_url", "comments"):
            doc.pop(key, None)
        url = f"{self.repo_url(repo)}/pulls/{issue.number}"
        html = f"{self.base}/{repo.full_name}/pull/{issue.number}"
        issue_url = f"{self.repo_url(repo)}/issues/{issue.number}"
        repo_doc = self.repo(repo, viewer)

        def side(ref: str, sha: str | None) -> dict[str, Any]:
            return {"label": f"{repo.owner}:{ref}", "ref": ref, "sha": sha,
                    "user": self.user(repo.owner), "repo": repo_doc}

        review_comments = sum(1 for c in self.hub.visible_review_comments(repo)
                              if c.pull == issue.number)
        doc.update({
            "id": pull["id"], "node_id": node_id("PullRequest", pull["id"]), "url": url,
            "html_url": html, "diff_url": f"{html}.diff", "patch_url": f"{html}.patch",
            "issue_url": issue_url, "commits_url": f"{url}/commits",
            "review_comments_url": f"{url}/comments",
            "review_comment_url": f"{self.repo_url(repo)}/pulls/comments{{/number}}",
            "comments_url": f"{issue_url}/comments",
            "statuses_url": f"{self.repo_url(repo)}/statuses/{head_sha}",
            "merged_at": ts(pull["merged_at"]), "merge_commit_sha": pull["merge_commit_sha"],
            "requested_reviewers": [self.user(x) for x in pull["requested_reviewers"]],
            "requested_teams": [],
            "head": {**side(pull["head"], head_sha), "repo": None}
            if pull.get("head_repo_deleted") else side(pull["head"], head_sha),
            "base": side(pull["base"], base_sha), "auto_merge": None, "draft": pull["draft"],
            "_links": {"self": {"href": url}, "html": {"href": html},
                       "issue": {"href": issue_url}, "comments": {"href": f"{issue_url}/comments"},
                       "review_comments": {"href": f"{url}/comments"},
                       "review_comment": {"href": f"{self.repo_url(repo)}/pulls/comments{{/number}}"},
                       "commits": {"href": f"{url}/commits"},
                       "statuses": {"href": f"{self.repo_url(repo)}/statuses/{head_sha}"}},
            "merged": pull["merged"], "merged_by": self.user(pull["merged_by"]),
            "comments": issue.comments, "review_comments": review_comments,
            "maintainer_can_modify": pull["maintainer_can_modify"],
        })
        if detail is not None:
            doc.update(detail)
        return doc

    def review(self, repo: Repo, r: Review) -> dict[str, Any]:
        pull_url = f"{self.repo_url(repo)}/pulls/{r.pull}"
        html = f"{self.base}/{repo.full_name}/pull/{r.pull}#pullrequestreview-{r.id}"
        doc = {"id": r.id, "node_id": node_id("PullRequestReview", r.id), "user": self.user(r.user),
               "body": r.body, "state": r.state, "html_url": html, "pull_request_url": pull_url,
               "author_association": self.hub.association(repo, r.user),
               "_links": {"html": {"href": html}, "pull_request": {"href": pull_url}},
               "commit_id": r.commit_id}
        if r.submitted_at is not None:
            doc["submitted_at"] = ts(r.submitted_at)
        return doc

    def review_comment(self, repo: Repo, c: ReviewComment) -> dict[str, Any]:
        url = f"{self.repo_url(repo)}/pulls/comments/{c.id}"
        pull_url = f"{self.repo_url(repo)}/pulls/{c.pull}"
        html = f"{self.base}/{repo.full_name}/pull/{c.pull}#discussion_r{c.id}"
        doc = {
            "url": url, "pull_request_review_id": c.review_id, "id": c.id,
            "node_id": node_id("PullRequestReviewComment", c.id), "diff_hunk": c.diff_hunk,
            "path": c.path, "position": c.position, "original_position": c.position,
            "commit_id": c.commit_id, "original_commit_id": c.commit_id,
            "user": self.user(c.user), "body": c.body, "created_at": ts(c.created_at),
            "updated_at": ts(c.updated_at), "html_url": html, "pull_request_url": pull_url,
            "author_association": self.hub.association(repo, c.user),
            "_links": {"self": {"href": url}, "html": {"href": html},
                       "pull_request": {"href": pull_url}},
            "start_line": c.start_line, "original_start_line": c.start_line,
            "start_side": c.start_side, "line": c.line, "original_line": c.line,
            "side": c.side, "subject_type": c.subject_type,
            "reactions": self.reaction_summary(repo, f"review_comment:{c.id}",
                                               f"{url}/reactions"),
        }
        if c.in_reply_to is not None:
            doc["in_reply_to_id"] = c.in_reply_to
        return doc

    def login_of(self, name: str, email: str) -> str | None:
        """The devhub login behind a git identity: ``login@users.devhub``, or a login as the
        name (what CONTRIBUTOR counting uses too)."""
        local, _, domain = email.partition("@")
        if domain == "users.devhub" and local in self.hub.users:
            return local
        return name if name in self.hub.users else None

    def commit(self, repo: Repo, c: dict[str, Any]) -> dict[str, Any]:
        """GitHub's commit (``GET /pulls/{n}/commits``): git's commit under ``commit``, the
        matching devhub users as ``author`` and ``committer``."""
        rurl = self.repo_url(repo)

        def person(p: dict[str, Any]) -> dict[str, Any]:
            return {"name": p["name"], "email": p["email"], "date": ts(p["unix"])}

        sha = c["sha"]
        return {
            "sha": sha, "node_id": node_id("Commit", int(sha[:12], 16)),
            "url": f"{rurl}/commits/{sha}", "html_url": f"{self.base}/{repo.full_name}/commit/{sha}",
            "comments_url": f"{rurl}/commits/{sha}/comments",
            "commit": {"url": f"{rurl}/git/commits/{sha}", "author": person(c["author"]),
                       "committer": person(c["committer"]), "message": c["message"].rstrip("\n"),
                       "tree": {"sha": c["tree"], "url": f"{rurl}/git/trees/{c['tree']}"},
                       "comment_count": 0,
                       "verification": {"verified": False, "reason": "unsigned",
                                        "signature": None, "payload": None,
                                        "verified_at": None}},
            "author": self.user(self.login_of(c["author"]["name"], c["author"]["email"])),
            "committer": self.user(self.login_of(c["committer"]["name"],
                                                 c["committer"]["email"])),
            "parents": [{"sha": p, "url": f"{rurl}/commits/{p}",
                         "html_url": f"{self.base}/{repo.full_name}/commit/{p}"}
                        for p in c["parents"]],
        }

    def file(self, repo: Repo, f: dict[str, Any], head_sha: str) -> dict[str, Any]:
        path = quote(f["filename"])
        doc = {"sha": f["sha"], "filename": f["filename"], "status": f["status"],
               "additions": f["additions"], "deletions": f["deletions"],
               "changes": f["additions"] + f["deletions"],
               "blob_url": f"{self.base}/{repo.full_name}/blob/{head_sha}/{path}",
               "raw_url": f"{self.base}/{repo.full_name}/raw/{head_sha}/{path}",
               "contents_url": f"{self.repo_url(repo)}/contents/{path}?ref={head_sha}"}
        if f["patch"] is not None:
            doc["patch"] = f["patch"]
        if f["previous_filename"] is not None:
            doc["previous_filename"] = f["previous_filename"]
        return doc

    # ------------------------------------------------------------------ branches

    def branch(self, repo: Repo, name: str, sha: str, full: bool) -> dict[str, Any]:
        url = f"{self.repo_url(repo)}/branches/{quote(name)}"
        rule = repo.protections.get(name)
        doc: dict[str, Any] = {"name": name, "commit": {"sha": sha,
                                                        "url": f"{self.repo_url(repo)}/commits/{sha}"},
                               "protected": rule is not None}
        if full:
            contexts = ((rule or {}).get("required_status_checks") or {}).get("contexts", [])
            level = "off" if rule is None or not contexts \
                else "everyone" if rule["enforce_admins"] else "non_admins"
            doc.update({"_links": {"self": url,
                                   "html": f"{self.base}/{repo.full_name}/tree/{quote(name)}"},
                        "protection": {"enabled": rule is not None, "required_status_checks": {
                            "enforcement_level": level, "contexts": contexts,
                            "checks": self._checks(rule)}},
                        "protection_url": f"{url}/protection"})
        return doc

    @staticmethod
    def _checks(rule: dict[str, Any] | None) -> list[dict[str, Any]]:
        """A rule's required checks, each with the app bound to it (or null)."""
        checks = (rule or {}).get("required_status_checks") or {}
        apps = checks.get("apps") or {}
        return [{"context": x, "app_id": apps.get(x)} for x in checks.get("contexts") or []]

    def protection(self, repo: Repo, name: str, rule: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.repo_url(repo)}/branches/{quote(name)}/protection"
        doc: dict[str, Any] = {"url": url}
        checks = rule["required_status_checks"]
        if checks is not None:
            doc["required_status_checks"] = {
                "url": f"{url}/required_status_checks", "strict": checks["strict"],
                "contexts": checks["contexts"],
                "contexts_url": f"{url}/required_status_checks/contexts",
                "checks": self._checks(rule)}
        reviews = rule["required_pull_request_reviews"]
        if reviews is not None:
            doc["required_pull_request_reviews"] = {
                "url": f"{url}/required_pull_request_reviews", **reviews}
        doc["required_signatures"] = {"url": f"{url}/required_signatures", "enabled": False}
        doc["enforce_admins"] = {"url": f"{url}/enforce_admins", "enabled": rule["enforce_admins"]}
        for key in FLAGS:
            doc[key] = {"enabled": rule[key]}
        return doc
