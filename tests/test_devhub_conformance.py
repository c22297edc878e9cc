"""devhub against GitHub's own REST description: every route devhub serves, and every webhook
payload it sends, validates against the schema GitHub publishes for that operation.

The description is npm's ``@octokit/openapi`` (``generated/api.github.com.json``, OpenAPI 3.0)
and ``@octokit/openapi-webhooks`` (OpenAPI 3.1, one schema per event and action): ``make
test`` keeps those two files in a cache outside the repository (.ci/github-description.sh,
which prints where). The test converts 3.0's ``nullable`` into JSON Schema and
validates with ``jsonschema`` (draft 2020-12): strict types, no coercion, so a string where
GitHub sends an integer fails, as it would in a client generated from the description.

The walk enumerates devhub's router (``DevHubApp.routes``): a route added without a step
here fails :func:`test_every_route_is_walked`, so none can be forgotten. Each response is
validated against the description's schema for its (method, path, status).
"""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bzzz.testing.inprocess import InProcessDevHub

from .conftest import require

CACHE = Path(os.environ.get("BZZZ_DESCRIPTION_CACHE")
             or Path.home() / ".cache" / "bzzz" / "github-description")
DESCRIPTION = CACHE / "openapi-23.0.2+webhooks-12.1.0"  # as .ci/github-description.sh
REST = DESCRIPTION / "rest.json"
HOOKS = DESCRIPTION / "webhooks.json"

# devhub routes GitHub answers under another template (older aliases it still serves)
ALIASES = {
    ("GET", "/repos/{}/{}/git/refs"): ("GET", "/repos/{}/{}/git/matching-refs/{}"),
    ("GET", "/repos/{}/{}/git/refs/{}"): ("GET", "/repos/{}/{}/git/ref/{}"),
}


NOT_REST = {"/graphql"}  # GitHub's GraphQL API has its own schema (tested in test_devhub_checks)


# Where the description's inline schema contradicts itself: GET /app/installations' items
# require ``account`` to be a user and an enterprise at once (allOf of both; the single
# installation's schema says anyOf). Its items are validated as ``installation`` instead.
OVERRIDES = {("GET", "/app/installations", 200): {
    "type": "array", "items": {"$ref": "urn:gh-rest#/components/schemas/installation"}}}


def _nullable(node: Any) -> Any:
    """OpenAPI 3.0 -> JSON Schema: ``nullable: true`` becomes ``anyOf [schema, null]``."""
    if isinstance(node, list):
        return [_nullable(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _nullable(v) for k, v in node.items() if k not in ("nullable", "example",
                                                                  "examples")}
    if node.get("nullable") is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


def _pointer(*parts: str) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def template_key(template: str) -> str:
    """A path template with its parameters' names dropped: ``/repos/{}/{}/issues/{}``."""
    return re.sub(r"\{[^}]+\}", "{}", template)


class Description:
    """GitHub's REST and webhook descriptions, ready to validate documents against."""

    def __init__(self, rest: Path, hooks: Path) -> None:
        import jsonschema
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT202012

        self.jsonschema = jsonschema
        self.rest = _nullable(json.loads(rest.read_text()))
        self.hooks = json.loads(hooks.read_text())
        self.registry = Registry().with_resources([
            ("urn:gh-rest", Resource.from_contents(self.rest, DRAFT202012)),
            ("urn:gh-hooks", Resource.from_contents(self.hooks, DRAFT202012))])
        self.paths = {template_key(p): p for p in self.rest["paths"]}
        self._validators: dict[str, Any] = {}

    def operation(self, method: str, template: str) -> tuple[str, dict[str, Any]] | None:
        key = (method, template_key(template))
        method, path_key = ALIASES.get(key, key)
        path = self.paths.get(path_key)
        if path is None or method.lower() not in self.rest["paths"][path]:
            return None
        return path, self.rest["paths"][path][method.lower()]

    def _response(self, op: dict[str, Any], status: int) -> dict[str, Any] | None:
        resp = op["responses"].get(str(status))
        if resp is None:
            return None
        if "$ref" in resp:
            resp = self.rest["components"]["responses"][resp["$ref"].rsplit("/", 1)[1]]
        return resp

    def _validate(self, ref: str, doc: Any) -> list[str]:
        validator = self._validators.get(ref)
        if validator is None:
            validator = self._validators[ref] = self.jsonschema.Draft202012Validator(
                {"$ref": ref}, registry=self.registry)
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
        return [_explain(e) for e in errors[:8]]

    def check_response(self, method: str, template: str, status: int, body: Any) -> list[str]:
        """What is wrong with devhub's answer (empty: it validates)."""
        override = OVERRIDES.get((method, template, status))
        if override is not None:
            return self._validate_schema(override, body)
        found = self.operation(method, template)
        if found is None:
            return [f"{method} {template} is not in GitHub's description"]
        path, op = found
        resp = self._response(op, status)
        if resp is None and status >= 400:  # an error the operation does not list (GitHub
            # sends them: 401, 403, 5xx on every route): its common shape
            return self._validate("urn:gh-rest#/components/schemas/basic-error", body)
        if resp is None:
            return [f"{method} {path} has no {status} answer in GitHub's description "
                    f"(it has {', '.join(op['responses'])})"]
        content = (resp.get("content") or {}).get("application/json")
        if content is None or "schema" not in content:
            if body is None or status >= 400:  # an error's message is not described
                return []
            return [f"{status} has no body in GitHub's description"]
        if body is None:
            return [f"{status} needs a body"]
        method_of = ALIASES.get((method, template_key(template)), (method,))[0]
        ref = "urn:gh-rest#" + _pointer("paths", path, method_of.lower(), "responses",
                                        str(status), "content", "application/json", "schema")
        if "$ref" in op["responses"][str(status)]:
            name = op["responses"][str(status)]["$ref"].rsplit("/", 1)[1]
            ref = "urn:gh-rest#" + _pointer("components", "responses", name, "content",
                                            "application/json", "schema")
        return self._validate(ref, body)

    def check_webhook(self, event: str, action: str | None, body: Any) -> list[str]:
        key = event.replace("_", "-") + (f"-{action.replace('_', '-')}" if action else "")
        if key not in self.hooks["webhooks"]:
            key = event.replace("_", "-")
        if key not in self.hooks["webhooks"]:
            return [f"webhook {event}.{action} is not in GitHub's description"]
        ref = "urn:gh-hooks#" + _pointer("webhooks", key, "post", "requestBody", "content",
                                         "application/json", "schema")
        return self._validate(ref, body)

    def _validate_schema(self, schema: dict[str, Any], doc: Any) -> list[str]:
        validator = self.jsonschema.Draft202012Validator(schema, registry=self.registry)
        return [_explain(e) for e in list(validator.iter_errors(doc))[:8]]


def _explain(err: Any) -> str:
    from jsonschema.exceptions import best_match

    while err.context:  # anyOf/oneOf: the branch that came closest
        err = best_match(err.context)
    where = "/".join(str(x) for x in err.absolute_path) or "(top)"
    message = err.message if len(err.message) < 200 else err.message[:200] + "…"
    return f"{where}: {message}"


@pytest.fixture(scope="module")
def description() -> Description:
    require(REST.exists() and HOOKS.exists(),
            "GitHub's REST description (bash .ci/github-description.sh; make test runs it)")
    require(_has_jsonschema(), "jsonschema (pip install -e '.[test]')")
    return Description(REST, HOOKS)


def _has_jsonschema() -> bool:
    try:
        import jsonschema  # noqa: F401
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------------------- the walk

R = "/repos/alice/shop"
SEED = {
    "users": [{"login": x, "token": f"t-{x}"} for x in ("alice", "bob", "carol")],
    "repos": [{"full_name": "alice/shop", "push": ["bob"], "read": ["carol"]}],
}


@dataclass
class Call:
    method: str
    path: str
    template: str
    status: int
    body: Any


@dataclass
class Walk:
    """devhub in process, every answer recorded with the route that gave it."""

    hub: InProcessDevHub
    calls: list[Call] = field(default_factory=list)
    deliveries: list[tuple[str, str | None, Any]] = field(default_factory=list)

    def as_(self, login: str | None, method: str, path: str, expect: int | None = None,
            **kw: Any) -> Any:
        headers = {"Authorization": f"token t-{login}"} if login else {}
        headers.update(kw.pop("headers", {}))
        with self.hub.client(headers=headers) as c:
            r = c.request(method, path, **kw)
        if expect is not None:
            assert r.status_code == expect, f"{method} {path}: {r.status_code} {r.text}"
        match = self.hub.app._match(method, path.split("?")[0])
        template = match[2] if match else _app_template(method, path.split("?")[0])
        body = r.json() if r.content and r.headers.get("content-type", "").startswith(
            "application/json") else None
        self.calls.append(Call(method, path, template, r.status_code, body))
        return body

    def __call__(self, method: str, path: str, expect: int | None = None, **kw: Any) -> Any:
        return self.as_("alice", method, path, expect, **kw)


# served by bzzz/devhub/apps.py (a GitHub App's JWT) outside the router's table
APP_ROUTES = [("GET", "/app"), ("GET", "/app/installations"),
              ("GET", "/app/installations/{installation_id}"),
              ("POST", "/app/installations/{installation_id}/access_tokens"),
              ("DELETE", "/installation/token")]


def _app_template(method: str, path: str) -> str:
    for m, template in APP_ROUTES:
        if m == method and re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", template), path):
            return template
    return "?"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def walk_users_and_issues(w: Walk) -> None:
    w("GET", "/user", 200)
    w("GET", "/users/bob", 200)
    w("GET", "/rate_limit", 200)
    w("GET", R, 200)
    w("POST", R + "/labels", 201, json={"name": "bzzz", "color": "00ff00",
                                        "description": "for the agents"})
    w("GET", R + "/labels", 200)
    w("GET", R + "/labels/bzzz", 200)
    w("POST", R + "/issues", 201, json={"title": "first", "body": "do it", "labels": ["bzzz"],
                                        "assignees": ["bob"]})
    w("GET", R + "/issues", 200)
    w("GET", R + "/issues/1", 200)
    w("PATCH", R + "/issues/1", 200, json={"title": "first, renamed"})
    w("POST", R + "/issues/1/assignees", 201, json={"assignees": ["alice"]})
    w("DELETE", R + "/issues/1/assignees", 200, json={"assignees": ["alice"]})
    w("GET", R + "/assignees", 200)
    w("GET", R + "/assignees/bob", 204)
    w("GET", R + "/issues/1/labels", 200)
    w("POST", R + "/issues/1/labels", 200, json={"labels": ["later"]})
    w("PUT", R + "/issues/1/labels", 200, json={"labels": ["bzzz", "later"]})
    w("DELETE", R + "/issues/1/labels/later", 200)
    w("DELETE", R + "/issues/1/labels", 204)
    c = w("POST", R + "/issues/1/comments", 201, json={"body": "on it"})
    w("GET", R + "/issues/1/comments", 200)
    w("GET", R + "/issues/comments", 200)
    w("GET", f"{R}/issues/comments/{c['id']}", 200)
    w("PATCH", f"{R}/issues/comments/{c['id']}", 200, json={"body": "on it, really"})
    x = w("POST", f"{R}/issues/comments/{c['id']}/reactions", 201, json={"content": "rocket"})
    w("GET", f"{R}/issues/comments/{c['id']}/reactions", 200)
    w("DELETE", f"{R}/issues/comments/{c['id']}/reactions/{x['id']}", 204)
    x = w("POST", R + "/issues/1/reactions", 201, json={"content": "+1"})
    w("GET", R + "/issues/1/reactions", 200)
    w("DELETE", f"{R}/issues/1/reactions/{x['id']}", 204)
    w("GET", R + "/issues/1/events", 200)
    w("GET", R + "/issues/events", 200)
    w("DELETE", f"{R}/issues/comments/{c['id']}", 204)
    w("PATCH", R + "/issues/1", 200, json={"state": "closed"})
    w("PATCH", R + "/issues/1", 200, json={"state": "open"})


def walk_repo(w: Walk) -> None:
    w("GET", R + "/collaborators", 200)
    w("GET", R + "/collaborators/bob", 204)
    w("GET", R + "/collaborators/bob/permission", 200)
    w("DELETE", R + "/collaborators/carol", 204)


def walk_hooks_start(w: Walk) -> int:
    hook = w("POST", R + "/hooks", 201, json={
        "name": "web", "active": True, "events": ["*"],
        "config": {"url": "http://127.0.0.1:9/hook", "content_type": "json",
                   "secret": "hush"}})
    w("GET", R + "/hooks", 200)
    w("GET", f"{R}/hooks/{hook['id']}", 200)
    return int(hook["id"])


def walk_hooks_end(w: Walk, hook_id: int) -> None:
    deliveries = w("GET", f"{R}/hooks/{hook_id}/deliveries", 200)
    w("POST", f"{R}/hooks/{hook_id}/deliveries/{deliveries[0]['id']}/attempts", 202)
    w("DELETE", f"{R}/hooks/{hook_id}", 204)


def _commit(w: Walk, files: dict[str, str], parents: list[str], message: str) -> str:
    entries = []
    for name, text in files.items():
        blob = w("POST", R + "/git/blobs", 201, json={"content": _b64(text),
                                                       "encoding": "base64"})
        entries.append({"path": name, "mode": "100644", "type": "blob", "sha": blob["sha"]})
    tree = w("POST", R + "/git/trees", 201, json={"tree": entries})
    commit = w("POST", R + "/git/commits", 201, json={"message": message, "tree": tree["sha"],
                                                      "parents": parents})
    return str(commit["sha"])


def walk_git(w: Walk) -> tuple[str, str]:
    """The default branch and a feature branch (shas), through the git database API."""
    tip = w("GET", R + "/branches/main", 200)["commit"]["sha"]
    base = _commit(w, {"README.md": "shop\n", "app.py": "print('hi')\n"}, [tip], "start")
    w("PATCH", R + "/git/refs/heads/main", 200, json={"sha": base})
    blob = w("POST", R + "/git/blobs", 201, json={"content": "x", "encoding": "utf-8"})
    w("GET", f"{R}/git/blobs/{blob['sha']}", 200)
    commit = w("GET", f"{R}/git/commits/{base}", 200)
    w("GET", f"{R}/git/trees/{commit['tree']['sha']}", 200)
    head = _commit(w, {"README.md": "shop\nmore\n", "app.py": "print('hello')\n"}, [base],
                   "work")
    w("POST", R + "/git/refs", 201, json={"ref": "refs/heads/feature", "sha": base})
    w("PATCH", R + "/git/refs/heads/feature", 200, json={"sha": head})
    w("GET", R + "/git/refs", 200)
    w("GET", R + "/git/ref/heads/feature", 200)
    w("GET", R + "/git/refs/heads/feature", 200)
    w("GET", R + "/git/matching-refs/heads/", 200)
    w("POST", R + "/git/refs", 201, json={"ref": "refs/heads/gone", "sha": base})
    w("DELETE", R + "/git/refs/heads/gone", 204)
    w("GET", R + "/branches", 200)
    return base, head


def _push(w: Walk, sha: str) -> None:
    """The feature branch moves (its pull request's ``synchronize``)."""
    w("PATCH", R + "/git/refs/heads/feature", 200, json={"sha": sha})


def walk_protection(w: Walk) -> None:
    w("PUT", R + "/branches/main/protection", 200, json={
        "required_status_checks": {"strict": False, "contexts": ["ci/test"]},
        "enforce_admins": False, "required_pull_request_reviews": None,
        "restrictions": None})
    w("GET", R + "/branches/main/protection", 200)


def walk_protection_end(w: Walk) -> None:
    w("DELETE", R + "/branches/main/protection", 204)


def walk_pulls(w: Walk, head: str) -> int:
    pr = w("POST", R + "/pulls", 201, json={"title": "feature", "head": "feature",
                                            "base": "main", "body": "Fixes #1",
                                            "draft": True})
    n = pr["number"]
    P = f"{R}/pulls/{n}"
    w("GET", R + "/pulls", 200)
    w("GET", P, 200)
    w("PATCH", P, 200, json={"body": "Fixes #1, really"})
    w("POST", f"{R}/issues/{n}/labels", 200, json={"labels": ["bzzz"]})
    w("POST", f"{R}/issues/{n}/assignees", 201, json={"assignees": ["bob"]})
    w("DELETE", f"{R}/issues/{n}/assignees", 200, json={"assignees": ["bob"]})
    w("DELETE", f"{R}/issues/{n}/labels/bzzz", 200)
    w("PATCH", P, 200, json={"state": "closed"})
    w("PATCH", P, 200, json={"state": "open"})
    w("GET", P + "/commits", 200)
    w("GET", P + "/files", 200)
    w("POST", P + "/requested_reviewers", 201, json={"reviewers": ["bob"]})
    w("GET", P + "/requested_reviewers", 200)
    w("DELETE", P + "/requested_reviewers", 200, json={"reviewers": ["bob"]})
    pending = w.as_("bob", "POST", P + "/reviews", 200, json={
        "body": "looks fine", "comments": [{"path": "app.py", "line": 1, "body": "why?"}]})
    w.as_("bob", "PUT", f"{P}/reviews/{pending['id']}", 200, json={"body": "looks fine!"})
    w.as_("bob", "GET", f"{P}/reviews/{pending['id']}/comments", 200)
    w.as_("bob", "POST", f"{P}/reviews/{pending['id']}/events", 200, json={"event": "APPROVE"})
    w("GET", P + "/reviews", 200)
    w("GET", f"{P}/reviews/{pending['id']}", 200)
    c = w("POST", P + "/comments", 201, json={"body": "and this", "commit_id": head,
                                              "path": "README.md", "line": 2, "side": "RIGHT"})
    w.as_("bob", "POST", f"{P}/comments/{c['id']}/replies", 201, json={"body": "fixed"})
    w("GET", P + "/comments", 200)
    w("GET", R + "/pulls/comments", 200)
    w("GET", f"{R}/pulls/comments/{c['id']}", 200)
    w("PATCH", f"{R}/pulls/comments/{c['id']}", 200, json={"body": "and this one"})
    w("DELETE", f"{R}/pulls/comments/{c['id']}", 204)
    w("PUT", f"{P}/reviews/{pending['id']}/dismissals", 200, json={"message": "stale"})
    other = w.as_("bob", "POST", P + "/reviews", 200, json={"body": "draft"})
    w.as_("bob", "DELETE", f"{P}/reviews/{other['id']}", 200)
    return int(n)


def new_app(hub: Any, slug: str, permissions: dict[str, str]) -> tuple[str, int]:
    """A new GitHub App installed on alice's repositories: a JWT of it, its installation."""
    import time

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from bzzz.github.credentials import make_jwt

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    with hub.client() as c:
        app = c.post("/_devhub/apps", json={"slug": slug, "owner": "alice",
                                            "public_key": pem.decode(),
                                            "permissions": permissions}).json()
        inst = c.post(f"/_devhub/apps/{app['id']}/installations",
                      json={"account": "alice"}).json()["id"]
    return make_jwt(app["id"], key, time.time()), int(inst)


def app_token(hub: Any, slug: str, permissions: dict[str, str]) -> str:
    """An installation token of a new GitHub App installed on alice's repositories."""
    jwt, inst = new_app(hub, slug, permissions)
    with hub.client(headers={"Authorization": f"Bearer {jwt}"}) as c:
        return str(c.post(f"/app/installations/{inst}/access_tokens").json()["token"])


def walk_app(w: Walk) -> None:
    """The App API (a JWT), and an installation token revoking itself."""
    jwt, inst = new_app(w.hub, "walker", {"issues": "write"})
    bearer = {"headers": {"Authorization": f"Bearer {jwt}"}}
    w.as_(None, "GET", "/app", 200, **bearer)
    w.as_(None, "GET", "/app/installations", 200, **bearer)
    w.as_(None, "GET", f"/app/installations/{inst}", 200, **bearer)
    token = w.as_(None, "POST", f"/app/installations/{inst}/access_tokens", 201,
                  json={"permissions": {"issues": "read"}}, **bearer)["token"]
    w.as_(None, "DELETE", "/installation/token", 204,
          headers={"Authorization": f"token {token}"})


def walk_checks(w: Walk, head: str) -> None:
    """Statuses by a writer, check runs and suites by an App, on the pull request's head."""
    w("POST", f"{R}/statuses/{head}", 201, json={
        "state": "pending", "context": "ci/test", "description": "running",
        "target_url": "http://ci.test/1"})
    w("POST", f"{R}/statuses/{head}", 201, json={"state": "success", "context": "ci/test"})
    w("GET", f"{R}/commits/{head}/statuses", 200)
    w("GET", R + "/commits/feature/status", 200)
    token = app_token(w.hub, "ci", {"checks": "write", "metadata": "read"})
    app = {"headers": {"Authorization": f"token {token}"}}
    run = w.as_(None, "POST", R + "/check-runs", 201, json={
        "name": "lint", "head_sha": head, "status": "in_progress",
        "output": {"title": "Lint", "summary": "running"}}, **app)
    w.as_(None, "PATCH", f"{R}/check-runs/{run['id']}", 200, json={
        "conclusion": "failure", "output": {
            "title": "Lint", "summary": "1 problem", "text": "app.py:1 E999",
            "annotations": [{"path": "app.py", "start_line": 1, "end_line": 1,
                             "annotation_level": "failure", "message": "E999",
                             "title": "syntax"}]}}, **app)
    w("GET", f"{R}/check-runs/{run['id']}", 200)
    w("GET", f"{R}/check-runs/{run['id']}/annotations", 200)
    w("GET", f"{R}/commits/{head}/check-runs", 200)
    suites = w("GET", R + "/commits/feature/check-suites", 200)
    w("GET", f"{R}/check-suites/{suites['check_suites'][0]['id']}", 200)
    w("GET", f"{R}/check-suites/{suites['check_suites'][0]['id']}/check-runs", 200)


def walk_graphql(w: Walk, n: int) -> None:
    pr = w("GET", f"{R}/pulls/{n}", 200)
    assert pr["draft"] is True
    w("POST", "/graphql", 200, json={
        "query": "mutation($id: ID!) { markPullRequestReadyForReview(input: "
                 "{pullRequestId: $id}) { pullRequest { isDraft number } } }",
        "variables": {"id": pr["node_id"]}})


def walk_errors(w: Walk) -> None:
    """GitHub's error answers where its description has a schema for them."""
    w("POST", R + "/labels", 422, json={"name": "bzzz"})
    w("GET", R + "/issues/999", 404)
    w("POST", R + "/issues", 422, json={"body": "no title"})
    w.as_("carol", "POST", R + "/labels", 403, json={"name": "nope"})
    w("POST", R + "/check-runs", 403, json={"name": "x", "head_sha": "0" * 40})
    w("GET", R + "/commits/nothing/status", 404)


def walk_merge(w: Walk, n: int) -> None:
    w("GET", f"{R}/pulls/{n}/merge", 404)
    w("PUT", f"{R}/pulls/{n}/merge", 200, json={"merge_method": "merge"})
    w("GET", f"{R}/pulls/{n}/merge", 204)


def run_walk() -> Walk:
    with InProcessDevHub(seed=SEED) as hub:
        w = Walk(hub)
        hook_id = walk_hooks_start(w)
        walk_users_and_issues(w)
        walk_repo(w)
        _, head = walk_git(w)
        walk_protection(w)
        walk_protection_end(w)
        n = walk_pulls(w, head)
        walk_checks(w, head)
        walk_graphql(w, n)
        _push(w, _commit(w, {"README.md": "shop\nmore\nagain\n"}, [head], "again"))
        walk_merge(w, n)
        walk_errors(w)
        walk_app(w)
        walk_hooks_end(w, hook_id)
        w.deliveries = [(d.event, d.action, json.loads(d.body))
                        for d in hub.app.deliveries.deliveries]
        return w


@pytest.fixture(scope="module")
def walk() -> Walk:
    return run_walk()


def test_every_route_is_walked(walk: Walk) -> None:
    walked = {(c.method, c.template) for c in walk.calls}
    served = [(m, t) for m, _, _, t in walk.hub.app.routes] + APP_ROUTES
    missing = [f"{m} {t}" for m, t in served if (m, t) not in walked]
    assert not missing, "routes the conformance walk does not call:\n" + "\n".join(missing)


def conformance(walk: Walk, description: Description) -> tuple[dict[str, list[str]], int]:
    """Each walked route (method and template) or webhook (event.action): its problems."""
    found: dict[str, list[str]] = {}
    for c in walk.calls:
        if c.template in NOT_REST:
            continue
        key = f"{c.method} {c.template} {c.status}"
        found.setdefault(key, []).extend(
            description.check_response(c.method, c.template, c.status, c.body))
    for event, action, body in walk.deliveries:
        key = f"webhook {event}.{action}"
        found.setdefault(key, []).extend(description.check_webhook(event, action, body))
    return found, len(found)


def test_devhub_answers_as_githubs_description(walk: Walk, description: Description) -> None:
    found, total = conformance(walk, description)
    bad = {k: v for k, v in found.items() if v}
    report = "\n".join(f"{k}:\n  " + "\n  ".join(list(dict.fromkeys(v))[:8])
                       for k, v in sorted(bad.items()))
    assert not bad, f"{total - len(bad)} of {total} validate; the others:\n{report}"


def test_the_validator_catches_what_github_would_refuse(walk: Walk,
                                                        description: Description) -> None:
    """The check is not vacuous: a missing field, a wrong type, a wrong enum value fail."""
    issue = next(c for c in walk.calls if c.template.endswith("/issues/{number}")
                 and c.method == "GET" and c.status == 200)
    t = issue.template
    assert description.check_response("GET", t, 200, issue.body) == []
    missing = {k: v for k, v in issue.body.items() if k != "number"}
    assert any("'number' is a required property" in e
               for e in description.check_response("GET", t, 200, missing))
    assert description.check_response("GET", t, 200, {**issue.body, "id": str(issue.body["id"])})
    hook = next(b for e, a, b in walk.deliveries if e == "check_run")
    assert description.check_webhook("check_run", hook["action"], hook) == []
    wrong = {**hook, "check_run": {**hook["check_run"], "status": "done"}}
    assert description.check_webhook("check_run", hook["action"], wrong)
    assert description.check_response("GET", "/nowhere", 200, {}) == [
        "GET /nowhere is not in GitHub's description"]
