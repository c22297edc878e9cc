"""devhub's HTTP surface: a GitHub REST subset as an ASGI app (served by hypercorn on trio).

Per request: authenticate (``token X`` / ``Bearer X``), spend the token's hourly budget,
apply the secondary limit to content-creating requests, inject configured faults, route,
then add GitHub's headers (``X-RateLimit-*``, weak ``ETag``, ``Link`` pagination). A ``304``
to ``If-None-Match`` is refunded, as GitHub does not count it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote

import logging

import trio

from ..asgi import MAX_BODY, http_request, respond
from .clock import Clock
from .gitstore import GitStore, Identity
from .limits import Fault, Faults, RateLimits
from .pulls import PullsAPI
from .checks_api import ChecksAPI
from . import graphql as gql
from .render import Renderer, node_id
from .apps import InstallationToken
from ..asgi import Receive, Scope, Send
from .http import DOCS, Handler, Request, Response, _page, _since
from .state import REACTIONS, ROLES, Comment, Hub, HubError, Repo, Review, ReviewComment
from ..github.webhooks import sign
from .webhooks import Delivery, DeliveryLog

log = logging.getLogger("bzzz.devhub")
WRITE_METHODS = {"POST", "PATCH", "PUT", "DELETE"}


Match = tuple[Handler, dict[str, str], str]
"""A route that matched: its handler, the path's parameters, the route's template."""

_SMART_HTTP = re.compile(
    r"^/(?P<owner>[^/]+)/(?P<repo>[^/]+?)(?:\.git)?/(?P<rest>info/refs|git-upload-pack|git-receive-pack)$")


class DevHubApp(PullsAPI, ChecksAPI):
    def __init__(self, hub: Hub | None = None, limits: RateLimits | None = None,
                 on_change: Callable[[], None] | None = None,
                 git_root: str | None = None, clock: Clock | None = None) -> None:
        self.hub = hub or Hub()
        self.clock = clock or Clock()
        self.git = GitStore(git_root or tempfile.mkdtemp(prefix="devhub-git-"))
        self.limits = limits or RateLimits()
        self.faults = Faults()
        self.stats: Counter[tuple[str, str, str]] = Counter()  # (login, method, route)
        self.on_change = on_change or (lambda: None)
        self.routes: list[tuple[str, re.Pattern[str], Handler, str]] = []
        self._routes()
        self.sync_git()
        self.nursery: trio.Nursery | None = None  # set by the server; webhooks are sent from it
        self.deliveries = DeliveryLog()
        self.webhook_timeout = 10.0

    def sync_git(self) -> None:
        """Make sure every repository has its bare git repository (after seeding)."""
        for repo in self.hub.repos.values():
            self.git.ensure(repo.full_name, repo.owner, repo.created_at or int(self.clock.time()),
                            repo.default_branch, bool(repo.protections))

    # ------------------------------------------------------------------ routing table

    def route(self, method: str, template: str, handler: Handler) -> None:
        pattern = "^" + re.sub(r"\{(\w+)(\*?)\}",
                               lambda m: f"(?P<{m.group(1)}>{'.+' if m.group(2) else '[^/]+'})",
                               template) + "$"
        self.routes.append((method, re.compile(pattern), handler, template))

    def _routes(self) -> None:
        """The table, in matching order: the first template that matches wins."""
        self._user_routes()
        self._issue_routes()
        self._repo_routes()
        self._pull_routes()
        self._git_routes()
        self._check_routes()

    def _user_routes(self) -> None:
        r = self.route
        R = "/repos/{owner}/{repo}"
        r("GET", "/user", self.get_user)
        r("GET", "/users/{login}", self.get_named_user)
        r("GET", "/rate_limit", self.get_rate_limit)
        r("GET", R, self.get_repo)

    def _issue_routes(self) -> None:
        r = self.route
        R = "/repos/{owner}/{repo}"
        r("GET", R + "/labels", self.list_labels)
        r("POST", R + "/labels", self.create_label)
        r("GET", R + "/labels/{name}", self.get_label)
        r("GET", R + "/issues", self.list_issues)
        r("POST", R + "/issues", self.create_issue)
        r("GET", R + "/issues/comments", self.list_repo_comments)
        r("GET", R + "/issues/comments/{id}", self.get_comment)
        r("PATCH", R + "/issues/comments/{id}", self.edit_comment)
        r("DELETE", R + "/issues/comments/{id}", self.delete_comment)
        r("GET", R + "/issues/comments/{id}/reactions", self.list_comment_reactions)
        r("POST", R + "/issues/comments/{id}/reactions", self.create_comment_reaction)
        r("DELETE", R + "/issues/comments/{id}/reactions/{reaction}", self.delete_comment_reaction)
        r("GET", R + "/issues/events", self.list_repo_events)
        r("GET", R + "/issues/{number}", self.get_issue)
        r("PATCH", R + "/issues/{number}", self.edit_issue)
        r("POST", R + "/issues/{number}/assignees", self.add_assignees)
        r("DELETE", R + "/issues/{number}/assignees", self.remove_assignees)
        r("GET", R + "/assignees", self.list_assignees)
        r("GET", R + "/assignees/{login}", self.check_assignee)
        r("GET", R + "/issues/{number}/labels", self.list_issue_labels)
        r("POST", R + "/issues/{number}/labels", self.add_issue_labels)
        r("PUT", R + "/issues/{number}/labels", self.set_issue_labels)
        r("DELETE", R + "/issues/{number}/labels", self.clear_issue_labels)
        r("DELETE", R + "/issues/{number}/labels/{name}", self.remove_issue_label)
        r("GET", R + "/issues/{number}/comments", self.list_comments)
        r("POST", R + "/issues/{number}/comments", self.create_comment)
        r("GET", R + "/issues/{number}/events", self.list_events)
        r("GET", R + "/issues/{number}/reactions", self.list_issue_reactions)
        r("POST", R + "/issues/{number}/reactions", self.create_issue_reaction)
        r("DELETE", R + "/issues/{number}/reactions/{reaction}", self.delete_issue_reaction)

    def _repo_routes(self) -> None:
        """Collaborators and webhooks."""
        r = self.route
        R = "/repos/{owner}/{repo}"
        r("GET", R + "/collaborators", self.list_collaborators)
        r("GET", R + "/collaborators/{username}", self.check_collaborator)
        r("DELETE", R + "/collaborators/{username}", self.remove_collaborator)
        r("GET", R + "/collaborators/{username}/permission", self.get_permission)
        r("GET", R + "/hooks", self.list_hooks)
        r("POST", R + "/hooks", self.create_hook)
        r("GET", R + "/hooks/{id}", self.get_hook)
        r("DELETE", R + "/hooks/{id}", self.delete_hook)
        r("GET", R + "/hooks/{id}/deliveries", self.list_deliveries)
        r("POST", R + "/hooks/{id}/deliveries/{delivery}/attempts", self.redeliver)

    def _pull_routes(self) -> None:
        r = self.route
        R = "/repos/{owner}/{repo}"
        r("GET", R + "/pulls", self.list_pulls)
        r("POST", R + "/pulls", self.create_pull)
        r("GET", R + "/pulls/comments", self.list_repo_review_comments)  # before /pulls/{number}
        r("GET", R + "/pulls/comments/{id}", self.get_review_comment)
        r("PATCH", R + "/pulls/comments/{id}", self.edit_review_comment)
        r("DELETE", R + "/pulls/comments/{id}", self.delete_review_comment)
        r("GET", R + "/pulls/{number}", self.get_pull)
        r("PATCH", R + "/pulls/{number}", self.edit_pull)
        r("GET", R + "/pulls/{number}/commits", self.list_pull_commits)
        r("GET", R + "/pulls/{number}/files", self.list_pull_files)
        r("GET", R + "/pulls/{number}/merge", self.check_merged)
        r("PUT", R + "/pulls/{number}/merge", self.merge_pull)
        r("GET", R + "/pulls/{number}/requested_reviewers", self.list_requested_reviewers)
        r("POST", R + "/pulls/{number}/requested_reviewers", self.request_reviewers)
        r("DELETE", R + "/pulls/{number}/requested_reviewers", self.remove_requested_reviewers)
        r("GET", R + "/pulls/{number}/reviews", self.list_reviews)
        r("POST", R + "/pulls/{number}/reviews", self.create_review)
        r("GET", R + "/pulls/{number}/reviews/{id}", self.get_review)
        r("PUT", R + "/pulls/{number}/reviews/{id}", self.edit_review)
        r("DELETE", R + "/pulls/{number}/reviews/{id}", self.delete_review)
        r("POST", R + "/pulls/{number}/reviews/{id}/events", self.submit_review)
        r("PUT", R + "/pulls/{number}/reviews/{id}/dismissals", self.dismiss_review)
        r("GET", R + "/pulls/{number}/reviews/{id}/comments", self.list_review_comments_of_review)
        r("GET", R + "/pulls/{number}/comments", self.list_pull_comments)
        r("POST", R + "/pulls/{number}/comments", self.create_pull_comment)
        r("POST", R + "/pulls/{number}/comments/{id}/replies", self.reply_pull_comment)

    def _git_routes(self) -> None:
        """Branches, their protection, and the git database."""
        r = self.route
        R = "/repos/{owner}/{repo}"
        r("GET", R + "/branches", self.list_branches)
        r("GET", R + "/branches/{branch*}/protection", self.get_protection)  # before the branch
        r("PUT", R + "/branches/{branch*}/protection", self.set_protection)
        r("DELETE", R + "/branches/{branch*}/protection", self.delete_protection)
        r("GET", R + "/branches/{branch*}", self.get_branch)
        r("POST", R + "/git/blobs", self.create_blob)
        r("GET", R + "/git/blobs/{sha}", self.get_blob)
        r("POST", R + "/git/trees", self.create_tree)
        r("GET", R + "/git/trees/{sha}", self.get_tree)
        r("POST", R + "/git/commits", self.create_commit)
        r("GET", R + "/git/commits/{sha}", self.get_commit)
        r("GET", R + "/git/refs", self.list_refs)
        r("POST", R + "/git/refs", self.create_ref)
        r("GET", R + "/git/ref/{ref*}", self.get_ref)
        r("GET", R + "/git/refs/{ref*}", self.get_ref)
        r("GET", R + "/git/matching-refs/{ref*}", self.matching_refs)
        r("PATCH", R + "/git/refs/{ref*}", self.update_ref)
        r("DELETE", R + "/git/refs/{ref*}", self.delete_ref)

    def _check_routes(self) -> None:
        """Commit statuses, check runs and suites (checks_api.py), and GraphQL's one
        mutation (graphql.py)."""
        r = self.route
        R = "/repos/{owner}/{repo}"
        r("POST", R + "/statuses/{sha}", self.create_status)
        r("GET", R + "/commits/{ref}/statuses", self.list_statuses)
        r("GET", R + "/commits/{ref}/status", self.combined_status)
        r("GET", R + "/commits/{ref}/check-runs", self.list_check_runs_for_ref)
        r("GET", R + "/commits/{ref}/check-suites", self.list_check_suites_for_ref)
        r("POST", R + "/check-runs", self.create_check_run)
        r("GET", R + "/check-runs/{id}", self.get_check_run)
        r("PATCH", R + "/check-runs/{id}", self.update_check_run)
        r("GET", R + "/check-runs/{id}/annotations", self.list_annotations)
        r("GET", R + "/check-suites/{id}", self.get_check_suite)
        r("GET", R + "/check-suites/{id}/check-runs", self.list_suite_check_runs)
        r("POST", "/graphql", self.graphql)

    # ------------------------------------------------------------------ ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (request := await http_request(scope, receive, send)) is None:
            return
        body = await request.body(MAX_BODY)
        if body is None:
            await self._send(send, 413, {"message": "Payload too large"}, {})
            return
        status, payload, extra = await self.handle(request.method, request.path,
                                                  request.query_string.decode(),
                                                  request.headers, body, scope.get("client"))
        await self._send(send, status, payload, extra)

    @staticmethod
    async def _send(send: Send, status: int, payload: Any, headers: dict[str, str]) -> None:
        if isinstance(payload, (bytes, bytearray)):
            data = bytes(payload)
        elif payload is None or status in (204, 304):
            data = b""
        else:
            data = json.dumps(payload).encode()
        content_type = headers.pop("content-type", "application/json; charset=utf-8")
        await respond(send, status, data, content_type,
                      [(k.encode(), str(v).encode()) for k, v in headers.items()])

    # ------------------------------------------------------------------ the pipeline

    async def handle(self, method: str, path: str, query: str, headers: dict[str, str],
                     body: bytes, client: tuple[str, int] | None = None) -> Response:
        if path.startswith("/_devhub/"):
            return self.admin(method, path, body)
        smart = _SMART_HTTP.match(path)
        if smart:
            return await self.smart_http(method, smart, query, headers, body)
        base = f"http://{headers.get('host', 'localhost')}"
        if path == "/app" or path.startswith("/app/"):  # a GitHub App's JWT (apps.py)
            return self.hub.apps.api(method, path, parse_qs(query), headers, body,
                                     self.clock.time(), base)
        token, login, app_token, refused = self._authenticate(headers)
        if refused is not None:
            return refused
        key = f"token:{token}" if token else f"ip:{client[0] if client else '?'}"
        now = self.clock.time()
        req = Request(method, unquote(path), parse_qs(query, keep_blank_values=True), headers,
                      body, login, base, now)
        match = self._match(method, req.path)
        route = match[2] if match else "unknown"
        self.stats[(login or "-", method, route)] += 1

        delay, injected, forced_secondary = self.faults.decide(method, req.path)
        if delay:
            await trio.sleep(delay)

        rl, refused = self._rate_limit(method, path, key, login, now, forced_secondary)
        if refused is not None:
            return refused
        if injected is not None:
            return injected, {"message": "Server Error (injected)"}, rl
        if app_token is not None:  # an installation token: its permissions and repositories
            refused = self._app_gate(app_token, method, req.path, route, match, rl)
            if refused is not None:
                return refused
        if match is None:
            return 404, {"message": "Not Found", "documentation_url": DOCS}, rl
        ok, result = await self._call(match, req, method, path, rl)
        if not ok:
            return result
        status, payload, extra = result
        if method in WRITE_METHODS:
            self.on_change()
            await self._dispatch_webhooks(req.base)
        return self._conditional(method, headers, status, payload, {**rl, **extra},
                                 key, login, now)

    def _authenticate(self, headers: dict[str, str]) -> tuple[
            str | None, str | None, InstallationToken | None, Response | None]:
        """(token, login, app_token, None), or a 401 as the last item."""
        auth = headers.get("authorization", "")
        token = None
        if auth:
            scheme, _, value = auth.partition(" ")
            if scheme.lower() in ("token", "bearer") and value.strip():
                token = value.strip()
            else:
                return None, None, None, (401, {"message": "Bad credentials",
                                                "documentation_url": DOCS}, {})
        login, app_token = self.hub.apps.resolve(token, self.clock.time())  # users' and apps'
        if token and login is None:
            return token, None, app_token, (401, {"message": "Bad credentials",
                                                  "documentation_url": DOCS}, {})
        return token, login, app_token, None

    def _rate_limit(self, method: str, path: str, key: str, login: str | None, now: float,
                    forced_secondary: bool) -> tuple[dict[str, str], Response | None]:
        """Spend from the primary budget (unless reading it) and check the secondary one:
        the rate-limit headers, and a 403 when over either."""
        counts = path != "/rate_limit"
        ok, budget = (self.limits.spend(key, login is not None, now) if counts
                      else (True, self.limits.budget(key, login is not None, now)))
        rl = {"x-ratelimit-limit": str(budget.limit),
              "x-ratelimit-remaining": str(budget.remaining),
              "x-ratelimit-reset": str(budget.reset), "x-ratelimit-used": str(budget.used),
              "x-ratelimit-resource": "core", "x-github-media-type": "github.v3; format=json",
              "x-github-request-id": hashlib.sha1(f"{now}{path}".encode()).hexdigest()[:16]}
        if not ok:
            msg = (f"API rate limit exceeded for user ID {self.hub.users[login].id}."
                   if login else "API rate limit exceeded.")
            return rl, (403, {"message": msg, "documentation_url": DOCS}, rl)
        if method in WRITE_METHODS or forced_secondary:
            retry = 60 if forced_secondary else self.limits.secondary(key, now)
            if retry is not None:
                return rl, (403, {"message": "You have exceeded a secondary rate limit. Please "
                                  "wait a few minutes before you try again.",
                                  "documentation_url": DOCS}, {**rl, "retry-after": str(retry)})
        return rl, None

    def _app_gate(self, app_token: InstallationToken, method: str, path: str, route: str,
                  match: Match | None, rl: dict[str, str]) -> Response | None:
        """An installation token: its revocation, or a refusal outside its permissions and
        repositories; None to go on."""
        if method == "DELETE" and path == "/installation/token":
            self.hub.apps.revoke(app_token.token)
            return 204, None, rl
        denied = self.hub.apps.authorize(app_token, method, route, match[1] if match else {})
        if denied is not None:
            return denied[0], denied[1], rl
        return None

    async def _call(self, match: Match, req: Request, method: str, path: str,
                    rl: dict[str, str]) -> tuple[bool, Response]:
        """Run the route's handler: (True, its response), or (False, the error response)."""
        handler, params = match[0], match[1]
        try:
            answer = handler(req, **params)  # a response, or (async handlers) its awaitable
            status, payload, extra = answer if isinstance(answer, tuple) else await answer
        except HubError as err:
            doc: dict[str, Any] = {"message": err.message, "documentation_url": DOCS}
            if err.errors:
                doc["errors"] = err.errors
            return False, (err.status, doc, rl)
        except Exception:  # a devhub bug: answer like GitHub's 500, keep serving, log it
            log.exception("devhub: %s %s failed", method, path)
            return False, (500, {"message": "Server Error", "documentation_url": DOCS}, rl)
        return True, (status, payload, extra)

    def _conditional(self, method: str, headers: dict[str, str], status: int, payload: Any,
                     headers_out: dict[str, str], key: str, login: str | None,
                     now: float) -> Response:
        """A GET's ETag, and a 304 (its request refunded) when the client already has it."""
        if method == "GET" and status == 200:
            etag = 'W/"' + hashlib.sha1(json.dumps(payload, sort_keys=True).encode()
                                        ).hexdigest() + '"'
            headers_out["etag"] = etag
            if headers.get("if-none-match") in (etag, etag[2:]):
                refunded = self.limits.refund(key, login is not None, now)
                headers_out.update({"x-ratelimit-remaining": str(refunded.remaining),
                                    "x-ratelimit-used": str(refunded.used)})
                return 304, None, headers_out
        return status, payload, headers_out

    def _match(self, method: str, path: str) -> Match | None:
        """The first route of the table that matches: its handler, parameters, template."""
        for m, pattern, handler, template in self.routes:
            if m == method:
                found = pattern.match(path)
                if found:
                    return handler, found.groupdict(), template
        return None

    # ------------------------------------------------------------------ helpers

    def _repo(self, req: Request, owner: str, repo: str) -> Repo:
        return self.hub.repo(owner, repo, req.login)

    def _r(self, req: Request) -> Renderer:
        return Renderer(self.hub, req.base)

    @staticmethod
    def _number(value: str) -> int:
        if not value.isdigit():
            raise HubError(404, "Not Found")
        return int(value)

    # ------------------------------------------------------------------ users and repos

    def get_user(self, req: Request) -> Response:
        return 200, self._r(req).user_detail(req.actor(), private=True), {}

    def get_named_user(self, req: Request, login: str) -> Response:
        self.hub.user(login)
        return 200, self._r(req).user_detail(login, private=False), {}

    def get_rate_limit(self, req: Request) -> Response:
        key = f"token:{req.headers.get('authorization', '').partition(' ')[2].strip()}" \
            if req.login else "ip:?"
        b = self.limits.budget(key, req.login is not None, self.clock.time())
        core = {"limit": b.limit, "remaining": b.remaining, "reset": b.reset, "used": b.used,
                "resource": "core"}
        # devhub limits only the core budget; the others are reported full, as GitHub's
        # shapes require them (search and graphql always; the rest when the token has them)
        others = {name: {"limit": limit, "remaining": limit, "reset": b.reset, "used": 0,
                         "resource": name}
                  for name, limit in (("search", 30), ("graphql", 5000),
                                      ("code_search", 10), ("integration_manifest", 5000))}
        return 200, {"resources": {"core": core, **others}, "rate": core}, {}

    def get_repo(self, req: Request, owner: str, repo: str) -> Response:
        return 200, self._r(req).repo(self._repo(req, owner, repo), req.login), {}

    # ------------------------------------------------------------------ GraphQL

    async def graphql(self, req: Request) -> Response:
        """``POST /graphql``: ``markPullRequestReadyForReview`` only (graphql.py)."""
        req.actor()  # 401 without a token, as GitHub's GraphQL API
        doc = req.obj()
        try:
            mutation = gql.parse(doc.get("query"), doc.get("variables"))
            node = mutation.args["input"]["pullRequestId"]
            found = self._pull_by_node(req, node)
            if found is None:
                raise gql.GraphQLError(f"Could not resolve to a node with the global id of "
                                       f"'{node}'.", "NOT_FOUND", [gql.MUTATION])
            r, issue = found
            try:
                self.hub.mark_ready(r, issue.number, req.actor(), req.now)
            except HubError as err:
                raise gql.GraphQLError(err.message, "FORBIDDEN" if err.status == 403
                                       else "UNPROCESSABLE", [gql.MUTATION]) from None
            pull = await self.pull_doc(self._r(req), r, issue, req.login, detail=False)
            values = {"clientMutationId": mutation.args["input"].get("clientMutationId"),
                      "pullRequest": ("PullRequest", _graphql_pull(pull, r))}
            data = gql.select(mutation.selections, values,
                              "MarkPullRequestReadyForReviewPayload", [mutation.alias])
        except gql.GraphQLError as err:
            return 200, {"data": None if err.kind != "NOT_FOUND" else {gql.MUTATION: None},
                         "errors": [err.doc()]}, {}
        return 200, {"data": {mutation.alias: data}}, {}

    def _pull_by_node(self, req: Request, node: str) -> tuple[Repo, Any] | None:
        ident = gql.pull_request_id(node)
        for r in self.hub.repos.values():
            if not r.can_read(req.login):
                continue
            for issue in r.issues.values():
                if issue.pull is not None and issue.pull["id"] == ident:
                    return r, issue
        return None

    # ------------------------------------------------------------------ labels

    def list_labels(self, req: Request, owner: str, repo: str) -> Response:
        r = self._repo(req, owner, repo)
        items, links = _page(req, sorted(r.labels.values(), key=lambda x: x.name.lower()))
        render = self._r(req)
        return 200, [render.label(r, x) for x in items], links

    def create_label(self, req: Request, owner: str, repo: str) -> Response:
        r = self._repo(req, owner, repo)
        doc = req.obj()
        label = self.hub.create_label(r, req.actor(), doc.get("name", ""),
                                      doc.get("color", "ededed"), doc.get("description"))
        return 201, self._r(req).label(r, label), {}

    def get_label(self, req: Request, owner: str, repo: str, name: str) -> Response:
        r = self._repo(req, owner, repo)
        return 200, self._r(req).label(r, self.hub.label(r, name)), {}

    # ------------------------------------------------------------------ issues

    def list_issues(self, req: Request, owner: str, repo: str) -> Response:
        r = self._repo(req, owner, repo)
        state = req.arg("state", "open")
        if state not in ("open", "closed", "all"):
            raise HubError(422, "Validation Failed",
                           [{"resource": "Issue", "field": "state", "code": "invalid"}])
        items = [i for i in r.issues.values() if state == "all" or i.state == state]
        labels = [x.strip().lower() for x in (req.arg("labels") or "").split(",") if x.strip()]
        if labels:
            items = [i for i in items if set(labels) <= {x.lower() for x in i.labels}]
        assignee = req.arg("assignee")
        if assignee == "none":
            items = [i for i in items if not i.assignees]
        elif assignee == "*":
            items = [i for i in items if i.assignees]
        elif assignee:
            items = [i for i in items if assignee in i.assignees]
        creator = req.arg("creator")
        if creator:
            items = [i for i in items if i.user == creator]
        since_ts = _since(req)
        if since_ts is not None:
            items = [i for i in items if i.updated_at >= since_ts]
        sort = req.arg("sort", "created")
        key = {"created": lambda i: (i.created_at, i.number),
               "updated": lambda i: (i.updated_at, i.number),
               "comments": lambda i: (i.comments, i.number)}.get(sort)
        if key is None:
            raise HubError(422, "Validation Failed",
                           [{"resource": "Issue", "field": "sort", "code": "invalid"}])
        items.sort(key=key, reverse=req.arg("direction", "desc") != "asc")
        page, links = _page(req, items)
        render = self._r(req)
        return 200, [render.issue(r, i) for i in page], links

    def create_issue(self, req: Request, owner: str, repo: str) -> Response:
        r = self._repo(req, owner, repo)
        doc = req.obj()
        assignees = doc.get("assignees")
        if assignees is None and doc.get("assignee"):
            assignees = [doc["assignee"]]
        issue = self.hub.create_issue(r, req.actor(), req.now, doc.get("title"), doc.get("body"),
                                      doc.get("labels"), assignees)
        return 201, self._r(req).issue(r, issue), {}

    def get_issue(self, req: Request, owner: str, repo: str, number: str) -> Response:
        r = self._repo(req, owner, repo)
        return 200, self._r(req).issue(r, self.hub.issue(r, self._number(number))), {}

    def edit_issue(self, req: Request, owner: str, repo: str, number: str) -> Response:
        r = self._repo(req, owner, repo)
        issue = self.hub.update_issue(r, self._number(number), req.actor(), req.now, req.obj())
        return 200, self._r(req).issue(r, issue), {}

    # ------------------------------------------------------------------ assignees

    def add_assignees(self, req: Request, owner: str, repo: str, number: str) -> Response:
        r = self._repo(req, owner, repo)
        issue = self.hub.add_assignees(r, self._number(number), req.actor(), req.now,
                                       req.obj().get("assignees", []))
        return 201, self._r(req).issue(r, issue), {}

    def remove_assignees(self, req: Request, owner: str, repo: str, number: str) -> Response:
        r = self._repo(req, owner, repo)
        issue = self.hub.remove_assignees(r, self._number(number), req.actor(), req.now,
                                          req.obj().get("assignees", []))
        return 200, self._r(req).issue(r, issue), {}

    def list_assignees(self, req: Request, owner: str, repo: str) -> Response:
        r = self._repo(req, owner, repo)
        logins = sorted({r.owner} | r.push)
        page, links = _page(req, logins)
        render = self._r(req)
        return 200, [render.user(x) for x in page], links

    def check_assignee(self, req: Request, owner: str, repo: str, login: str) -> Response:
        r = self._repo(req, owner, repo)
        if login in self.hub.users and r.can_push(login):
            return 204, None, {}
        raise HubError(404, "Not Found")

    # ------------------------------------------------------------------ issue labels

    def _issue_labels(self, req: Request, r: Repo, number: int) -> Response:
        issue = self.hub.issue(r, number)
        render = self._r(req)
        return 200, [render.label(r, r.labels[x.lower()]) for x in issue.labels], {}

    def list_issue_labels(self, req: Request, owner: str, repo: str, number: str) -> Response:
        return self._issue_labels(req, self._repo(req, owner, repo), self._number(number))

    @staticmethod
    def _label_names(req: Request) -> Any:
        doc = req.json()
        return doc.get("labels", []) if isinstance(doc, dict) else doc

    def add_issue_labels(self, req: Request, owner: str, repo: str, number: str) -> Response:
        r = self._repo(req, owner, repo)
        self.hub.add_labels(r, self._number(number), req.actor(), req.now, self._label_names(req))
        return self._issue_labels(req, r, self._number(number))

    def set_issue_labels(self, req: Request, owner: str, repo: str, number: str) -> Response:
        r = self._repo(req, owner, repo)
        self.hub.set_labels(r, self._number(number), req.actor(), req.now, self._label_names(req))
        return self._issue_labels(req, r, self._number(number))

    def clear_issue_labels(self, req: Request, owner: str, repo: str, number: str) -> Response:
        r = self._repo(req, owner, repo)
        self.hub.set_labels(r, self._number(number), req.actor(), req.now, [])
        return 204, None, {}

    def remove_issue_label(self, req: Request, owner: str, repo: str, number: str,
                           name: str) -> Response:
        r = self._repo(req, owner, repo)
        self.hub.remove_label(r, self._number(number), req.actor(), req.now, name)
        return self._issue_labels(req, r, self._number(number))

    # ------------------------------------------------------------------ comments and events

    def list_comments(self, req: Request, owner: str, repo: str, number: str) -> Response:
        r = self._repo(req, owner, repo)
        n = self._number(number)
        self.hub.issue(r, n)
        since_ts = _since(req)
        items = sorted((c for c in r.comments.values() if c.issue == n
                        and (since_ts is None or c.updated_at >= since_ts)), key=lambda c: c.id)
        page, links = _page(req, items)
        render = self._r(req)
        return 200, [render.comment(r, c) for c in page], links

    def list_repo_comments(self, req: Request, owner: str, repo: str) -> Response:
        """GitHub's repo-wide list: ascending id by default; ``sort`` created|updated with
        ``direction`` (ignored without ``sort``); ``since`` compares ``updated_at``."""
        r = self._repo(req, owner, repo)
        since_ts = _since(req)
        items = [c for c in r.comments.values() if since_ts is None or c.updated_at >= since_ts]
        sort, direction = req.arg("sort"), req.arg("direction")
        if sort not in (None, "created", "updated"):
            raise HubError(422, "Validation Failed",
                           [{"resource": "IssueComment", "field": "sort", "code": "invalid"}])
        if direction not in (None, "asc", "desc"):
            raise HubError(422, "Validation Failed",
                           [{"resource": "IssueComment", "field": "direction", "code": "invalid"}])
        if sort is None:
            items.sort(key=lambda c: c.id)
        else:
            field_name = "created_at" if sort == "created" else "updated_at"
            items.sort(key=lambda c: (getattr(c, field_name), c.id),
                       reverse=(direction or "desc") == "desc")
        page, links = _page(req, items)
        render = self._r(req)
        return 200, [render.comment(r, c) for c in page], links

    def create_comment(self, req: Request, owner: str, repo: str, number: str) -> Response:
        r = self._repo(req, owner, repo)
        c = self.hub.create_comment(r, self._number(number), req.actor(), req.now,
                                    req.obj().get("body"))
        return 201, self._r(req).comment(r, c), {}

    def get_comment(self, req: Request, owner: str, repo: str, id: str) -> Response:
        r = self._repo(req, owner, repo)
        return 200, self._r(req).comment(r, self.hub.comment(r, self._number(id))), {}

    def edit_comment(self, req: Request, owner: str, repo: str, id: str) -> Response:
        r = self._repo(req, owner, repo)
        c = self.hub.edit_comment(r, self._number(id), req.actor(), req.now,
                                  req.obj().get("body"))
        return 200, self._r(req).comment(r, c), {}

    def delete_comment(self, req: Request, owner: str, repo: str, id: str) -> Response:
        r = self._repo(req, owner, repo)
        self.hub.delete_comment(r, self._number(id), req.actor(), req.now)
        return 204, None, {}

    # ------------------------------------------------------------------ reactions

    def _reaction_subject(self, r: Repo, kind: str, ident: str) -> str:
        n = self._number(ident)
        if kind == "comment":
            self.hub.comment(r, n)
        else:
            self.hub.issue(r, n)
        return f"{kind}:{n}"

    def _list_reactions(self, req: Request, r: Repo, subject: str) -> Response:
        content = req.arg("content")
        if content is not None and content not in REACTIONS:
            raise HubError(422, "Validation Failed",
                           [{"resource": "Reaction", "field": "content", "code": "invalid"}])
        items = [x for x in self.hub.reactions(r, subject)
                 if content is None or x.content == content]
        page, links = _page(req, items)
        render = self._r(req)
        return 200, [render.reaction(x) for x in page], links

    def _create_reaction(self, req: Request, r: Repo, subject: str) -> Response:
        created, reaction = self.hub.react(r, subject, req.actor(), req.now,
                                           req.obj().get("content"))
        return (201 if created else 200), self._r(req).reaction(reaction), {}

    def list_comment_reactions(self, req: Request, owner: str, repo: str, id: str) -> Response:
        r = self._repo(req, owner, repo)
        return self._list_reactions(req, r, self._reaction_subject(r, "comment", id))

    def create_comment_reaction(self, req: Request, owner: str, repo: str, id: str) -> Response:
        r = self._repo(req, owner, repo)
        return self._create_reaction(req, r, self._reaction_subject(r, "comment", id))

    def delete_comment_reaction(self, req: Request, owner: str, repo: str, id: str,
                                reaction: str) -> Response:
        r = self._repo(req, owner, repo)
        self.hub.unreact(r, self._reaction_subject(r, "comment", id), req.actor(),
                         self._number(reaction))
        return 204, None, {}

    def list_issue_reactions(self, req: Request, owner: str, repo: str, number: str) -> Response:
        r = self._repo(req, owner, repo)
        return self._list_reactions(req, r, self._reaction_subject(r, "issue", number))

    def create_issue_reaction(self, req: Request, owner: str, repo: str,
                              number: str) -> Response:
        r = self._repo(req, owner, repo)
        return self._create_reaction(req, r, self._reaction_subject(r, "issue", number))

    def delete_issue_reaction(self, req: Request, owner: str, repo: str, number: str,
                              reaction: str) -> Response:
        r = self._repo(req, owner, repo)
        self.hub.unreact(r, self._reaction_subject(r, "issue", number), req.actor(),
                         self._number(reaction))
        return 204, None, {}

    # ------------------------------------------------------------------ collaborators

    def _collaborators_viewer(self, req: Request, owner: str, repo: str, what: str) -> Repo:
        r = self._repo(req, owner, repo)
        if not r.can_push(req.actor()):
            raise HubError(403, f"Must have push access to view {what}.")
        return r

    def list_collaborators(self, req: Request, owner: str, repo: str) -> Response:
        r = self._collaborators_viewer(req, owner, repo, "repository collaborators")
        affiliation = req.arg("affiliation", "all")
        if affiliation not in ("all", "direct", "outside"):
            raise HubError(422, "Validation Failed",
                           [{"resource": "Collaborator", "field": "affiliation",
                             "code": "invalid"}])
        logins = [r.owner] + sorted(r.roles)
        wanted = req.arg("permission")
        if wanted is not None:
            rank = {"pull": "read", "push": "write"}.get(wanted, wanted)
            if rank not in ROLES:
                raise HubError(422, "Validation Failed",
                               [{"resource": "Collaborator", "field": "permission",
                                 "code": "invalid"}])
            logins = [x for x in logins if ROLES.index(r.role(x)) <= ROLES.index(rank)]
        page, links = _page(req, logins)
        render = self._r(req)
        return 200, [render.collaborator(r, x) for x in page], links

    def check_collaborator(self, req: Request, owner: str, repo: str, username: str) -> Response:
        r = self._collaborators_viewer(req, owner, repo, "repository collaborators")
        if username in self.hub.users and r.role(username) is not None:
            return 204, None, {}
        raise HubError(404, "Not Found")

    def remove_collaborator(self, req: Request, owner: str, repo: str, username: str) -> Response:
        r = self._repo(req, owner, repo)
        if r.role(req.actor()) != "admin":
            raise HubError(403, "Must have admin rights to Repository.")
        if username == r.owner:
            raise HubError(422, "Validation Failed",
                           [{"resource": "Collaborator", "code": "custom",
                             "message": "Cannot remove the repository owner"}])
        if username in self.hub.users:
            self.hub.set_role(r, username, None)
        return 204, None, {}

    def get_permission(self, req: Request, owner: str, repo: str, username: str) -> Response:
        r = self._collaborators_viewer(req, owner, repo, "collaborator permission")
        self.hub.user(username)  # 404 for a login devhub does not know
        return 200, self._r(req).permission(r, username), {}

    def list_events(self, req: Request, owner: str, repo: str, number: str) -> Response:
        r = self._repo(req, owner, repo)
        n = self._number(number)
        self.hub.issue(r, n)
        page, links = _page(req, [e for e in r.events if e.issue == n])
        render = self._r(req)
        return 200, [render.event(r, e) for e in page], links

    def list_repo_events(self, req: Request, owner: str, repo: str) -> Response:
        r = self._repo(req, owner, repo)
        page, links = _page(req, list(reversed(r.events)))
        render = self._r(req)
        return 200, [render.event(r, e, with_issue=True) for e in page], links

    # ------------------------------------------------------------------ webhooks

    def _hook_doc(self, req: Request, r: Repo, hook: dict[str, Any]) -> dict[str, Any]:
        config = dict(hook["config"])
        if config.get("secret"):
            config["secret"] = "********"  # GitHub never returns the secret
        url = f"{req.base}/repos/{r.full_name}/hooks/{hook['id']}"
        return {"type": "Repository", "id": hook["id"], "name": "web", "active": hook["active"],
                "events": hook["events"], "config": config, "url": url,
                "test_url": f"{url}/test", "ping_url": f"{url}/pings",
                "deliveries_url": f"{url}/deliveries", "last_response": self._last_response(
                    hook["id"]),
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(hook["created_at"])),
                "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(hook["updated_at"]))}

    def _last_response(self, hook_id: int) -> dict[str, Any]:
        """GitHub's ``last_response`` of a hook: its latest delivery's outcome."""
        last = next((d for d in reversed(self.deliveries.deliveries) if d.hook_id == hook_id),
                    None)
        if last is None or (last.status_code is None and last.error is None):
            return {"code": None, "status": "unused", "message": None}
        if last.status_code is not None and last.status_code < 300:
            return {"code": last.status_code, "status": "active", "message": "OK"}
        return {"code": last.status_code, "status": "failed",
                "message": last.error or f"Invalid HTTP Response: {last.status_code}"}

    def _hook(self, r: Repo, hook_id: str) -> dict[str, Any]:
        hook = r.hooks.get(self._number(hook_id))
        if hook is None:
            raise HubError(404, "Not Found")
        return hook

    def list_hooks(self, req: Request, owner: str, repo: str) -> Response:
        r = self._writable(req, owner, repo)
        return 200, [self._hook_doc(req, r, h) for h in r.hooks.values()], {}

    def create_hook(self, req: Request, owner: str, repo: str) -> Response:
        r = self._repo(req, owner, repo)
        hook = self.hub.create_hook(r, req.actor(), req.now, req.obj())
        return 201, self._hook_doc(req, r, hook), {}

    def get_hook(self, req: Request, owner: str, repo: str, id: str) -> Response:
        r = self._writable(req, owner, repo)
        return 200, self._hook_doc(req, r, self._hook(r, id)), {}

    def delete_hook(self, req: Request, owner: str, repo: str, id: str) -> Response:
        r = self._repo(req, owner, repo)
        self.hub.delete_hook(r, req.actor(), self._number(id))
        return 204, None, {}

    def list_deliveries(self, req: Request, owner: str, repo: str, id: str) -> Response:
        r = self._writable(req, owner, repo)
        hook = self._hook(r, id)
        out = [{"id": d.id, "guid": d.guid, "event": d.event, "action": d.action,
                "delivered_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(d.at)),
                "status_code": d.status_code or 0, "redelivery": d.redelivery,
                "duration": d.duration or 0.0, "installation_id": None,
                "repository_id": r.id, "throttled_at": None,
                "status": "OK" if d.status_code and d.status_code < 300
                else (d.error or "pending")}
               for d in reversed(self.deliveries.deliveries) if d.hook_id == hook["id"]]
        return 200, out, {}

    def redeliver(self, req: Request, owner: str, repo: str, id: str, delivery: str) -> Response:
        r = self._writable(req, owner, repo)
        hook = self._hook(r, id)
        original = self.deliveries.find(hook["id"], self._number(delivery))
        if original is None:
            raise HubError(404, "Not Found")
        again = self.deliveries.new(self.hub.new_id(), hook["id"], original.event,
                                    original.action, original.body, guid=original.guid)
        self._send_delivery(hook, again)
        return 202, {}, {}

    async def _dispatch_webhooks(self, base: str) -> None:
        """Send what the hub queued. ``pull_request*`` payloads carry the pull request (as it
        is now) instead of the issue; ``issues`` and ``issue_comment`` carry the issue."""
        outbox, self.hub.outbox = self.hub.outbox, []
        render = Renderer(self.hub, base)
        pulls: dict[tuple[str, int], dict[str, Any]] = {}
        for repo_key, event, action, number, extra in outbox:
            r = self.hub.repos.get(repo_key)
            if r is None or number not in r.issues:
                continue
            issue = r.issues[number]
            payload: dict[str, Any] = {"action": action}
            if event.startswith("pull_request") and issue.pull is not None:
                if (repo_key, number) not in pulls:
                    pulls[(repo_key, number)] = await self.pull_doc(render, r, issue, None)
                if event == "pull_request":
                    payload["number"] = number
                payload["pull_request"] = pulls[(repo_key, number)]
            else:
                payload["issue"] = render.issue(r, issue)
            payload.update({"repository": render.repo(r, None),
                            "sender": render.user(extra["sender"])})
            if "assignee" in extra:
                payload["assignee"] = render.user(extra["assignee"])
            if "requested_reviewer" in extra:
                payload["requested_reviewer"] = render.user(extra["requested_reviewer"])
            if "label" in extra and extra["label"].lower() in r.labels:
                payload["label"] = render.label(r, r.labels[extra["label"].lower()])
            if isinstance(extra.get("comment"), Comment):
                payload["comment"] = render.comment(r, extra["comment"])
            elif isinstance(extra.get("comment"), ReviewComment):
                payload["comment"] = render.review_comment(r, extra["comment"])
            if isinstance(extra.get("review"), Review):  # a webhook's review state is lower case
                payload["review"] = render.review(r, extra["review"])
                payload["review"]["state"] = payload["review"]["state"].lower()
            for key in ("changes", "before", "after"):
                if key in extra:
                    payload[key] = extra[key]
            self._deliver(r, event, action, payload)

    def _deliver(self, r: Repo, event: str, action: str | None,
                 payload: dict[str, Any]) -> None:
        """A webhook payload to every active hook of ``r`` that subscribed to ``event``."""
        body = json.dumps(payload).encode()
        for hook in r.hooks.values():
            if hook["active"] and (event in hook["events"] or "*" in hook["events"]):
                delivery = self.deliveries.new(self.hub.new_id(), hook["id"], event, action,
                                               body)
                self._send_delivery(hook, delivery)

    def _send_delivery(self, hook: dict[str, Any], delivery: Delivery) -> None:
        if self.nursery is not None:
            self.nursery.start_soon(self._post_delivery, hook, delivery)

    async def _post_delivery(self, hook: dict[str, Any], d: Delivery) -> None:
        import httpx

        headers = {"content-type": "application/json", "user-agent": "GitHub-Hookshot/devhub",
                   "x-github-event": d.event, "x-github-delivery": d.guid,
                   "x-github-hook-id": str(hook["id"]),
                   "x-github-hook-installation-target-type": "repository"}
        secret = hook["config"].get("secret")
        if secret:
            headers["x-hub-signature-256"] = sign(secret, d.body)
        start = time.monotonic()
        try:
            async with httpx.AsyncClient(timeout=self.webhook_timeout) as client:
                resp = await client.post(hook["config"]["url"], content=d.body, headers=headers)
            d.status_code = resp.status_code
        except httpx.HTTPError as exc:
            d.error = f"{type(exc).__name__}"
        d.duration = round(time.monotonic() - start, 3)

    # ------------------------------------------------------------------ smart HTTP (git clone/push)

    def _basic_login(self, headers: dict[str, str]) -> tuple[bool, str | None, Any]:
        """(credentials given, login, installation token or None): Basic auth with the token
        as user or password."""
        auth = headers.get("authorization", "")
        scheme, _, value = auth.partition(" ")
        now = self.clock.time()
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return True, None, None
            login, app_token = self.hub.apps.resolve(password, now)
            if login is None:
                login, app_token = self.hub.apps.resolve(user, now)
            return True, login, app_token
        if scheme.lower() in ("token", "bearer"):
            return (True, *self.hub.apps.resolve(value.strip(), now))
        return False, None, None

    async def smart_http(self, method: str, m: re.Match[str], query: str,
                         headers: dict[str, str], body: bytes) -> Response:
        given, login, app_token = self._basic_login(headers)
        challenge = {"www-authenticate": 'Basic realm="devhub"', "content-type": "text/plain"}
        if given and login is None:
            return 401, b"Bad credentials\n", challenge
        repo = self.hub.repos.get(f"{m['owner']}/{m['repo']}".lower())
        if repo is None or not repo.can_read(login):
            return (401, b"Authentication required\n", challenge) if login is None else \
                (404, b"Repository not found\n", {"content-type": "text/plain"})
        pushing = m["rest"] == "git-receive-pack" or "service=git-receive-pack" in query
        if app_token is not None and not self.hub.apps.may_use_git(app_token, repo.full_name,
                                                                   pushing):
            return 403, b"Permission denied\n", {"content-type": "text/plain"}
        if pushing and not repo.can_push(login):
            return (401, b"Authentication required\n", challenge) if login is None else \
                (403, b"Permission denied\n", {"content-type": "text/plain"})
        self.stats[(login or "-", method, "git " + m["rest"])] += 1
        owner, name = repo.full_name.lower().split("/", 1)
        env = {
            "GIT_PROJECT_ROOT": str(self.git.root), "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": f"/{owner}/{name}.git/{m['rest']}", "REQUEST_METHOD": method,
            "QUERY_STRING": query, "CONTENT_TYPE": headers.get("content-type", ""),
            "REMOTE_USER": login or "anonymous", "REMOTE_ADDR": "127.0.0.1",
            "PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "GIT_CONFIG_NOSYSTEM": "1",
        }
        if headers.get("content-encoding"):
            env["HTTP_CONTENT_ENCODING"] = headers["content-encoding"]
        if headers.get("git-protocol"):
            env["GIT_PROTOCOL"] = headers["git-protocol"]
        receiving = m["rest"] == "git-receive-pack" and method == "POST"
        if receiving:  # the update hook refuses what branch protection refuses (GH006)
            env["DEVHUB_PROTECTED"] = json.dumps(self.push_rules(repo, login))
            before = dict(await self.git.refs(repo.full_name, "refs/heads/"))
        result = await trio.run_process(["git", "http-backend"], stdin=body, capture_stdout=True,
                                        capture_stderr=True, check=False, env=env)
        out = result.stdout
        split = out.find(b"\r\n\r\n")
        sep = 4
        if split < 0:
            split, sep = out.find(b"\n\n"), 2
        if result.returncode != 0 or split < 0:
            return 500, b"git http-backend failed\n", {"content-type": "text/plain"}
        status, extra = 200, {}
        for line in out[:split].decode("latin-1").splitlines():
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = int(value.split()[0])
            elif key:
                extra[key.lower()] = value.strip()
        if receiving:
            assert login is not None, "a push needs a writer (checked above)"
            after = dict(await self.git.refs(repo.full_name, "refs/heads/"))
            moved = {name[len("refs/heads/"):]: (before.get(name), after.get(name))
                     for name in set(before) | set(after) if before.get(name) != after.get(name)}
            await self.refs_moved(repo, login, int(self.clock.time()), moved)
            self.on_change()
            await self._dispatch_webhooks(f"http://{headers.get('host', 'localhost')}")
        return status, out[split + sep:], extra

    # ------------------------------------------------------------------ git data

    def _git_url(self, req: Request, r: Repo, kind: str, sha: str) -> str:
        return f"{req.base}/repos/{r.full_name}/git/{kind}/{sha}"

    def _writable(self, req: Request, owner: str, repo: str) -> Repo:
        r = self._repo(req, owner, repo)
        if not r.can_push(req.actor()):
            raise HubError(403, "Resource not accessible by integration")
        return r

    async def create_blob(self, req: Request, owner: str, repo: str) -> Response:
        r = self._writable(req, owner, repo)
        doc = req.obj()
        content, encoding = doc.get("content"), doc.get("encoding", "utf-8")
        if not isinstance(content, str):
            raise HubError(422, "Invalid request.\n\n\"content\" wasn't supplied.")
        if encoding == "base64":
            try:
                data = base64.b64decode(content, validate=False)
            except ValueError:
                raise HubError(422, "content is not valid Base64") from None
        elif encoding in ("utf-8", "utf8"):
            data = content.encode()
        else:
            raise HubError(422, f"encoding {encoding!r} is not supported")
        sha = await self.git.write_blob(r.full_name, data)
        return 201, {"sha": sha, "url": self._git_url(req, r, "blobs", sha)}, {}

    async def get_blob(self, req: Request, owner: str, repo: str, sha: str) -> Response:
        r = self._repo(req, owner, repo)
        data = await self.git.read_blob(r.full_name, sha)
        return 200, {"sha": sha, "node_id": sha, "size": len(data),
                     "url": self._git_url(req, r, "blobs", sha),
                     "content": base64.encodebytes(data).decode(), "encoding": "base64"}, {}

    def _tree_doc(self, req: Request, r: Repo, sha: str,
                  entries: list[dict[str, Any]]) -> dict[str, Any]:
        for e in entries:
            kind = {"blob": "blobs", "tree": "trees"}.get(e["type"], "commits")
            e["url"] = self._git_url(req, r, kind, e["sha"])
        return {"sha": sha, "url": self._git_url(req, r, "trees", sha), "tree": entries,
                "truncated": False}

    async def create_tree(self, req: Request, owner: str, repo: str) -> Response:
        r = self._writable(req, owner, repo)
        doc = req.obj()
        entries = doc.get("tree")
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise HubError(422, "Invalid tree info")
        sha = await self.git.write_tree(r.full_name, entries, doc.get("base_tree"))
        return 201, self._tree_doc(req, r, sha, await self.git.read_tree(r.full_name, sha)), {}

    async def get_tree(self, req: Request, owner: str, repo: str, sha: str) -> Response:
        r = self._repo(req, owner, repo)
        entries = await self.git.read_tree(r.full_name, sha, bool(req.arg("recursive")))
        return 200, self._tree_doc(req, r, sha, entries), {}

    def _commit_doc(self, req: Request, r: Repo, c: dict[str, Any]) -> dict[str, Any]:
        def person(p: dict[str, Any]) -> dict[str, Any]:
            return {"name": p["name"], "email": p["email"],
                    "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(p["unix"]))}

        return {"sha": c["sha"], "node_id": c["sha"], "url": self._git_url(req, r, "commits", c["sha"]),
                "html_url": f"{req.base}/{r.full_name}/commit/{c['sha']}",
                "author": person(c["author"]), "committer": person(c["committer"]),
                "tree": {"sha": c["tree"], "url": self._git_url(req, r, "trees", c["tree"])},
                "message": c["message"].rstrip("\n"),
                "parents": [{"sha": p, "url": self._git_url(req, r, "commits", p),
                             "html_url": f"{req.base}/{r.full_name}/commit/{p}"}
                            for p in c["parents"]],
                "verification": {"verified": False, "reason": "unsigned", "signature": None,
                                 "payload": None, "verified_at": None}}

    async def create_commit(self, req: Request, owner: str, repo: str) -> Response:
        r = self._writable(req, owner, repo)
        doc = req.obj()
        message, tree, parents = doc.get("message"), doc.get("tree"), doc.get("parents", [])
        if not isinstance(message, str) or not isinstance(tree, str) or not isinstance(parents, list):
            raise HubError(422, "Invalid request: message, tree and parents are required")

        def ident(d: object) -> Identity:
            user = self.hub.users[req.actor()]
            d = d if isinstance(d, dict) else {}
            return Identity(str(d.get("name") or user.login),
                            str(d.get("email") or f"{user.login}@users.devhub"),
                            f"{req.now} +0000")

        sha = await self.git.write_commit(r.full_name, message, tree, [str(p) for p in parents],
                                          ident(doc.get("author")), ident(doc.get("committer")))
        return 201, self._commit_doc(req, r, await self.git.read_commit(r.full_name, sha)), {}

    async def get_commit(self, req: Request, owner: str, repo: str, sha: str) -> Response:
        r = self._repo(req, owner, repo)
        return 200, self._commit_doc(req, r, await self.git.read_commit(r.full_name, sha)), {}

    def _ref_doc(self, req: Request, r: Repo, name: str, sha: str) -> dict[str, Any]:
        return {"ref": name, "node_id": name,
                "url": f"{req.base}/repos/{r.full_name}/git/{name}",
                "object": {"sha": sha, "type": "commit",
                           "url": self._git_url(req, r, "commits", sha)}}

    async def list_refs(self, req: Request, owner: str, repo: str) -> Response:
        r = self._repo(req, owner, repo)
        page, links = _page(req, await self.git.refs(r.full_name))
        return 200, [self._ref_doc(req, r, n, s) for n, s in page], links

    async def matching_refs(self, req: Request, owner: str, repo: str, ref: str) -> Response:
        r = self._repo(req, owner, repo)
        prefix = "refs/" + ref
        found = [(n, s) for n, s in await self.git.refs(r.full_name) if n.startswith(prefix)]
        return 200, [self._ref_doc(req, r, n, s) for n, s in found], {}

    async def get_ref(self, req: Request, owner: str, repo: str, ref: str) -> Response:
        r = self._repo(req, owner, repo)
        name = ref if ref.startswith("refs/") else "refs/" + ref
        sha = await self.git.resolve(r.full_name, name)
        if sha is None:
            raise HubError(404, "Not Found")
        return 200, self._ref_doc(req, r, name, sha), {}

    async def refresh_contributors(self, r: Repo) -> None:
        """CONTRIBUTOR is whoever authored a commit on the default branch: map commit authors
        to logins by their devhub address (``login@users.devhub``) or name."""
        found = set()
        for name, email in await self.git.authors(r.full_name, f"refs/heads/{r.default_branch}"):
            local, _, domain = email.partition("@")
            if domain == "users.devhub" and local in self.hub.users:
                found.add(local)
            elif name in self.hub.users:
                found.add(name)
        r.contributors |= found

    async def create_ref(self, req: Request, owner: str, repo: str) -> Response:
        r = self._writable(req, owner, repo)
        doc = req.obj()
        ref, sha = doc.get("ref"), doc.get("sha")
        if not isinstance(ref, str) or not isinstance(sha, str):
            raise HubError(422, "Invalid request.\n\n\"ref\" and \"sha\" are required.")
        await self.git.create_ref(r.full_name, ref, sha)
        await self._ref_moved(req, r, ref, None, sha)
        return 201, self._ref_doc(req, r, ref, sha), {}

    async def _ref_moved(self, req: Request, r: Repo, name: str, old: str | None,
                         new: str | None) -> None:
        if name.startswith("refs/heads/"):
            await self.refs_moved(r, req.actor(), req.now, {name[len("refs/heads/"):]: (old, new)})

    async def update_ref(self, req: Request, owner: str, repo: str, ref: str) -> Response:
        r = self._writable(req, owner, repo)
        doc = req.obj()
        sha, force = doc.get("sha"), bool(doc.get("force", False))
        if not isinstance(sha, str):
            raise HubError(422, "Invalid request.\n\n\"sha\" wasn't supplied.")
        name = ref if ref.startswith("refs/") else "refs/" + ref
        await self.check_protected_update(r, req.actor(), name, sha, force)
        old = await self.git.resolve(r.full_name, name)
        await self.git.update_ref(r.full_name, name, sha, force)
        await self._ref_moved(req, r, name, old, sha)
        return 200, self._ref_doc(req, r, name, sha), {}

    async def delete_ref(self, req: Request, owner: str, repo: str, ref: str) -> Response:
        r = self._writable(req, owner, repo)
        name = ref if ref.startswith("refs/") else "refs/" + ref
        await self.check_protected_update(r, req.actor(), name, None, True)
        old = await self.git.resolve(r.full_name, name)
        await self.git.delete_ref(r.full_name, name)
        await self._ref_moved(req, r, name, old, None)
        return 204, None, {}

    # ------------------------------------------------------------------ admin API

    def admin(self, method: str, path: str, body: bytes) -> Response:
        try:
            doc = json.loads(body) if body else {}
        except ValueError:
            return 400, {"message": "Problems parsing JSON"}, {}
        now = self.clock.time()
        try:
            if path == "/_devhub/health" and method == "GET":
                return 200, {"ok": True, "repos": len(self.hub.repos)}, {}
            if path == "/_devhub/clock" and method == "POST":
                return self._admin_clock(doc)
            if path == "/_devhub/seed" and method == "POST":
                return self._admin_seed(doc, now)
            if path == "/_devhub/roles" and method == "POST":
                return self._admin_role(doc)
            if path == "/_devhub/head-repo-deleted" and method == "POST":
                return self._admin_head_repo_deleted(doc)
            handled = self.hub.apps.admin(method, path, doc, now)  # GitHub Apps (apps.py)
            if handled is not None:
                if method != "GET":
                    self.on_change()
                return handled
            if path == "/_devhub/stats" and method == "GET":
                return self._admin_stats()
            if path == "/_devhub/stats" and method == "DELETE":
                self.stats.clear()
                return 204, None, {}
            if path == "/_devhub/faults" and method == "POST":
                return self._admin_fault(doc)
            if path == "/_devhub/faults" and method == "DELETE":
                self.faults.clear()
                return 204, None, {}
            if path == "/_devhub/limits" and method == "POST":
                return self._admin_limits(doc)
        except (HubError, ValueError, TypeError, re.error) as exc:
            status = exc.status if isinstance(exc, HubError) else 422
            return status, {"message": str(exc)}, {}
        return 404, {"message": "Not Found"}, {}

    def _admin_clock(self, doc: Any) -> Response:
        """{"advance": seconds}: move devhub's clock forward (clock.py)."""
        advance = doc.get("advance") if isinstance(doc, dict) else None
        if isinstance(advance, bool) or not isinstance(advance, (int, float)) \
                or not advance >= 0:
            raise HubError(422, "advance must be a number of seconds, not negative")
        return 200, {"now": self.clock.advance(advance)}, {}

    def _admin_seed(self, doc: Any, now: float) -> Response:
        self.hub.seed(doc, int(now))
        self.sync_git()
        self.on_change()
        return 200, {"users": len(self.hub.users), "repos": len(self.hub.repos)}, {}

    def _admin_role(self, doc: Any) -> Response:
        """{"repo": "o/r", "login": "u", "role": "admin|maintain|write|triage|read|null"}"""
        if not isinstance(doc, dict) or not isinstance(doc.get("repo"), str):
            raise HubError(422, "repo must be a full name")
        repo = self.hub.repos.get(doc["repo"].lower())
        if repo is None:
            raise HubError(404, "Not Found")
        if "role" not in doc:
            raise HubError(422, "role is required (null removes the collaborator)")
        role = self.hub.set_role(repo, doc.get("login"), doc["role"])
        self.on_change()
        return 200, {"repo": repo.full_name, "login": doc["login"], "role": role}, {}

    def _admin_head_repo_deleted(self, doc: Any) -> Response:
        """{"repo": "o/r", "pull": n}: the pull request's fork is gone (head.repo null)."""
        if not isinstance(doc, dict) or not isinstance(doc.get("repo"), str) \
                or not isinstance(doc.get("pull"), int):
            raise HubError(422, "repo (a full name) and pull (a number) are required")
        repo = self.hub.repos.get(doc["repo"].lower())
        if repo is None:
            raise HubError(404, "Not Found")
        self.hub.delete_head_repo(repo, doc["pull"])
        self.on_change()
        return 200, {"repo": repo.full_name, "pull": doc["pull"]}, {}

    def _admin_stats(self) -> Response:
        per: dict[str, dict[str, int]] = {}
        for (login, m, route), n in self.stats.items():
            per.setdefault(login, {})[f"{m} {route}"] = n
        return 200, {"requests": per, "total": sum(self.stats.values())}, {}

    def _admin_fault(self, doc: Any) -> Response:
        self.faults.add(Fault(doc.get("pattern", "."),
                              tuple(doc.get("latency_ms", (0, 0))),
                              float(doc.get("error_rate", 0.0)),
                              int(doc.get("error_status", 502)),
                              int(doc.get("secondary_burst", 0))))
        return 201, {"faults": len(self.faults.rules)}, {}

    def _admin_limits(self, doc: Any) -> Response:
        if "hourly" in doc:
            self.limits.hourly = int(doc["hourly"])
        if "secondary_per_minute" in doc:
            v = doc["secondary_per_minute"]
            self.limits.secondary_per_minute = None if v is None else int(v)
        if "secondary_burst" in doc:  # the next N writes (of one token, or all) get 403
            key = f"token:{doc['token']}" if doc.get("token") else "*"
            self.limits.force_secondary(key, int(doc["secondary_burst"]))
        return 200, {"hourly": self.limits.hourly,
                     "secondary_per_minute": self.limits.secondary_per_minute}, {}


def _graphql_pull(pull: dict[str, Any], r: Repo) -> dict[str, Any]:
    """A pull request's GraphQL fields, from its REST document."""
    state = "MERGED" if pull["merged"] else pull["state"].upper()
    return {"id": pull["node_id"], "databaseId": pull["id"], "number": pull["number"],
            "isDraft": pull["draft"], "state": state, "closed": pull["state"] == "closed",
            "merged": pull["merged"], "title": pull["title"], "body": pull["body"],
            "url": pull["html_url"], "permalink": pull["html_url"],
            "headRefName": pull["head"]["ref"], "headRefOid": pull["head"]["sha"],
            "baseRefName": pull["base"]["ref"], "baseRefOid": pull["base"]["sha"],
            "createdAt": pull["created_at"], "updatedAt": pull["updated_at"],
            "author": ("User", {"login": pull["user"]["login"]}),
            "repository": ("Repository", {"id": node_id("Repository", r.id), "name": r.name,
                                          "nameWithOwner": r.full_name})}
