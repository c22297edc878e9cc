"""devhub's commit statuses, check runs and check suites over HTTP, as GitHub's REST API has
them, with their webhooks (``status``, ``check_run``, ``check_suite``). The rules and the
stored state are bzzz/devhub/checks.py's; this mixin of DevHubApp checks who may write,
renders the documents and sends the webhooks.

Who may write: a commit status, anyone with push access or an installation token with
``statuses: write``; a check run, only a GitHub App's installation token with
``checks: write`` (a user's token gets GitHub's 403), and only the app that created a run
may update it. The installation token's permission itself is checked before the handler
runs (bzzz/devhub/apps.py ``required_permission``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import checks as core
from .handlers import Handlers
from .http import Request, Response, _page
from .render import Renderer, node_id, ts
from .state import HubError, Repo

if TYPE_CHECKING:
    from .apps import App

GITHUB_APP_ONLY = "You must authenticate via a GitHub App."


class ChecksAPI(Handlers):
    """Handlers for DevHubApp, which provides _repo, _r, _number and _deliver."""

    if TYPE_CHECKING:  # DevHubApp's (app.py), beside Handlers'
        def _deliver(self, r: Repo, event: str, action: str | None,
                     payload: dict[str, Any]) -> None: ...

    # ------------------------------------------------------------------ helpers

    def _app_of(self, login: str | None) -> "App | None":
        """The GitHub App whose installation token made the request (its bot's login)."""
        return next((a for a in self.hub.apps.apps.values() if a.bot == login), None)

    async def _sha(self, r: Repo, ref: str) -> str:
        """A commit's sha from a sha, a branch or a tag name (404 when it names nothing)."""
        for name in (f"refs/heads/{ref}", f"refs/tags/{ref}"):
            sha = await self.git.resolve(r.full_name, name)
            if sha is not None:
                return sha
        if await self.git.object_type(r.full_name, ref) == "commit":
            return ref
        raise HubError(404, f"No commit found for SHA: {ref}")

    async def _commit_sha(self, r: Repo, sha: str) -> str:
        """A full commit sha for a status or a check run (422 when not a commit here)."""
        if await self.git.object_type(r.full_name, sha) != "commit":
            raise HubError(422, f"No commit found for SHA: {sha}")
        return sha

    def _branches_at(self, tips: dict[str, str], sha: str) -> list[str]:
        return sorted(name for name, tip in tips.items() if tip == sha)

    # ------------------------------------------------------------------ rendering

    def _status_doc(self, render: Renderer, r: Repo, s: dict[str, Any]) -> dict[str, Any]:
        creator = render.user(s["creator"])
        return {"url": f"{render.repo_url(r)}/statuses/{s['sha']}", "id": s["id"],
                "node_id": node_id("StatusContext", s["id"]), "state": s["state"],
                "description": s["description"], "target_url": s["target_url"],
                "context": s["context"], "avatar_url": creator["avatar_url"],
                "created_at": ts(s["created_at"]), "updated_at": ts(s["updated_at"]),
                "creator": creator}

    def _app_doc(self, render: Renderer, app_id: int) -> dict[str, Any] | None:
        app = self.hub.apps.apps.get(app_id)
        if app is None:
            return None
        return {"id": app.id, "slug": app.slug, "node_id": node_id("Integration", app.id),
                "client_id": f"Iv1.{app.id:016x}", "owner": render.user(app.owner),
                "name": app.name, "description": "", "external_url": render.base,
                "html_url": f"{render.base}/apps/{app.slug}",
                "created_at": ts(app.created_at), "updated_at": ts(app.created_at),
                "permissions": dict(app.permissions), "events": list(app.events)}

    def _pulls_at(self, render: Renderer, r: Repo, sha: str) -> list[dict[str, Any]]:
        """Open pull requests whose head is ``sha`` (GitHub's minimal form)."""
        out = []
        mini = {"id": r.id, "url": render.repo_url(r), "name": r.name}
        for issue in r.issues.values():
            pull = issue.pull
            if pull is None or issue.state != "open" or pull["head_sha"] != sha:
                continue
            out.append({"id": pull["id"], "number": issue.number,
                        "url": f"{render.repo_url(r)}/pulls/{issue.number}",
                        "head": {"ref": pull["head"], "sha": pull["head_sha"], "repo": mini},
                        "base": {"ref": pull["base"], "sha": pull["base_sha"] or "",
                                 "repo": mini}})
        return out

    def _run_doc(self, render: Renderer, r: Repo, run: dict[str, Any]) -> dict[str, Any]:
        url = f"{render.repo_url(r)}/check-runs/{run['id']}"
        html = f"{render.base}/{r.full_name}/runs/{run['id']}"
        out = run["output"]
        return {"id": run["id"], "node_id": node_id("CheckRun", run["id"]),
                "head_sha": run["head_sha"], "external_id": run["external_id"],
                "url": url, "html_url": html, "details_url": run["details_url"] or html,
                "status": run["status"], "conclusion": run["conclusion"],
                "started_at": ts(run["started_at"]), "completed_at": ts(run["completed_at"]),
                "output": {"title": out["title"], "summary": out["summary"],
                           "text": out["text"], "annotations_count": len(run["annotations"]),
                           "annotations_url": f"{url}/annotations"},
                "name": run["name"], "check_suite": {"id": run["suite_id"]},
                "app": self._app_doc(render, run["app_id"]),
                "pull_requests": self._pulls_at(render, r, run["head_sha"])}

    def _annotation_doc(self, render: Renderer, r: Repo, run: dict[str, Any],
                        a: dict[str, Any]) -> dict[str, Any]:
        return {**a, "blob_href": f"{render.base}/{r.full_name}/blob/{run['head_sha']}/"
                                  f"{a['path']}"}

    async def _suite_doc(self, render: Renderer, r: Repo,
                         suite: dict[str, Any]) -> dict[str, Any]:
        runs = core.latest_runs([x for x in r.check_runs if x["suite_id"] == suite["id"]],
                                suite["head_sha"])
        status, conclusion = core.suite_progress(runs)
        c = await self.git.read_commit(r.full_name, suite["head_sha"])
        url = f"{render.repo_url(r)}/check-suites/{suite['id']}"
        return {"id": suite["id"], "node_id": node_id("CheckSuite", suite["id"]),
                "head_branch": suite["head_branch"], "head_sha": suite["head_sha"],
                "status": status, "conclusion": conclusion, "url": url,
                "before": suite["before"], "after": suite["head_sha"],
                "pull_requests": self._pulls_at(render, r, suite["head_sha"]),
                "app": self._app_doc(render, suite["app_id"]),
                "repository": render.repo(r, None),
                "created_at": ts(suite["created_at"]), "updated_at": ts(suite["updated_at"]),
                "head_commit": {
                    "id": c["sha"], "tree_id": c["tree"], "message": c["message"].rstrip("\n"),
                    "timestamp": ts(c["committer"]["unix"]),
                    "author": {"name": c["author"]["name"], "email": c["author"]["email"]},
                    "committer": {"name": c["committer"]["name"],
                                  "email": c["committer"]["email"]}},
                "latest_check_runs_count": len(runs), "check_runs_url": f"{url}/check-runs",
                "rerequestable": True, "runs_rerequestable": True}

    # ------------------------------------------------------------------ commit statuses

    async def create_status(self, req: Request, owner: str, repo: str, sha: str) -> Response:
        r = self._repo(req, owner, repo)
        actor = req.actor()
        if self._app_of(actor) is None and not r.can_push(actor):
            raise HubError(404 if r.private else 403, "Must have push access to repository"
                           if not r.private else "Not Found")
        full = await self._commit_sha(r, sha)
        status = core.new_status(self.hub.new_id(), full, actor, req.now, req.json(),
                                 r.statuses)
        r.statuses.append(status)
        render = self._r(req)
        doc = self._status_doc(render, r, status)
        await self._status_webhook(render, r, status)
        return 201, doc, {}

    async def _status_webhook(self, render: Renderer, r: Repo, s: dict[str, Any]) -> None:
        if not r.hooks:
            return
        tips = await self.git.branch_tips(r.full_name)
        commit = render.commit(r, await self.git.read_commit(r.full_name, s["sha"]))
        branches = [{"name": b, "commit": {"sha": s["sha"],
                                           "url": f"{render.repo_url(r)}/commits/{s['sha']}"},
                     "protected": b in r.protections}
                    for b in self._branches_at(tips, s["sha"])]
        self._deliver(r, "status", None, {
            "id": s["id"], "sha": s["sha"], "name": r.full_name,
            "target_url": s["target_url"], "context": s["context"],
            "description": s["description"], "state": s["state"], "commit": commit,
            "branches": branches, "created_at": ts(s["created_at"]),
            "updated_at": ts(s["updated_at"]), "repository": render.repo(r, None),
            "sender": render.user(s["creator"])})

    async def list_statuses(self, req: Request, owner: str, repo: str, ref: str) -> Response:
        r = self._repo(req, owner, repo)
        sha = await self._sha(r, ref)
        page, links = _page(req, core.statuses_of(r.statuses, sha))
        render = self._r(req)
        return 200, [self._status_doc(render, r, s) for s in page], links

    async def combined_status(self, req: Request, owner: str, repo: str, ref: str) -> Response:
        r = self._repo(req, owner, repo)
        sha = await self._sha(r, ref)
        latest = core.latest_statuses(r.statuses, sha)
        page, links = _page(req, latest)
        render = self._r(req)
        return 200, {"state": core.combined_state(latest), "sha": sha,
                     "total_count": len(latest),
                     "statuses": [self._status_doc(render, r, s) for s in page],
                     "repository": render.repo(r, None),
                     "commit_url": f"{render.repo_url(r)}/commits/{sha}",
                     "url": f"{render.repo_url(r)}/commits/{sha}/status"}, links

    # ------------------------------------------------------------------ check runs

    def _checks_writer(self, req: Request) -> "App":
        app = self._app_of(req.actor())
        if app is None:
            raise HubError(403, GITHUB_APP_ONLY)
        return app

    async def _suite_for(self, r: Repo, app: "App", sha: str, now: int) -> dict[str, Any]:
        """The app's check suite on ``sha``, created with its first check run there."""
        for suite in r.check_suites:
            if suite["app_id"] == app.id and suite["head_sha"] == sha:
                return suite
        tips = await self.git.branch_tips(r.full_name)
        branches = self._branches_at(tips, sha)
        head_branch = next((i.pr["head"] for i in r.issues.values() if i.pull is not None
                            and i.pr["head_sha"] == sha), branches[0] if branches else None)
        c = await self.git.read_commit(r.full_name, sha)
        suite = {"id": self.hub.new_id(), "app_id": app.id, "head_sha": sha,
                 "head_branch": head_branch, "before": c["parents"][0] if c["parents"]
                 else "0" * 40, "created_at": now, "updated_at": now}
        r.check_suites.append(suite)
        return suite

    async def create_check_run(self, req: Request, owner: str, repo: str) -> Response:
        r = self._repo(req, owner, repo)
        app = self._checks_writer(req)
        doc = req.obj()
        if not isinstance(doc.get("head_sha"), str) or not doc["head_sha"]:
            raise core._invalid("CheckRun", "head_sha", "missing_field")
        sha = await self._commit_sha(r, doc["head_sha"])
        suite = await self._suite_for(r, app, sha, req.now)
        before = self._suite_status(r, suite)
        run = core.new_run(self.hub.new_id(), suite["id"], app.id, req.now,
                           {**doc, "head_sha": sha})
        r.check_runs.append(run)
        await self._run_changed(req, r, run, suite, "created", before)
        return 201, self._run_doc(self._r(req), r, run), {}

    def _run(self, r: Repo, ident: str) -> dict[str, Any]:
        n = self._number(ident)
        run = next((x for x in r.check_runs if x["id"] == n), None)
        if run is None:
            raise HubError(404, "Not Found")
        return run

    async def update_check_run(self, req: Request, owner: str, repo: str,
                               id: str) -> Response:
        r = self._repo(req, owner, repo)
        app = self._checks_writer(req)
        run = self._run(r, id)
        if run["app_id"] != app.id:
            raise HubError(403, "Resource not accessible by integration")
        suite = next(s for s in r.check_suites if s["id"] == run["suite_id"])
        was, before = run["status"], self._suite_status(r, suite)
        core.update_run(run, req.obj(), req.now)
        completed = run["status"] == "completed" and was != "completed"
        await self._run_changed(req, r, run, suite, "completed" if completed else None,
                                before)
        return 200, self._run_doc(self._r(req), r, run), {}

    def _suite_status(self, r: Repo, suite: dict[str, Any]) -> str:
        runs = [x for x in r.check_runs if x["suite_id"] == suite["id"]]
        return core.suite_progress(core.latest_runs(runs, suite["head_sha"]))[0]

    async def _run_changed(self, req: Request, r: Repo, run: dict[str, Any],
                           suite: dict[str, Any], action: str | None, before: str) -> None:
        """The suite follows its runs; ``check_run`` (created, completed) and, when the
        suite completes, ``check_suite`` completed webhooks."""
        suite["updated_at"] = req.now
        if not r.hooks:
            return
        render = self._r(req)
        if action is not None:
            self._deliver(r, "check_run", action, {
                "action": action, "check_run": self._run_doc(render, r, run),
                "repository": render.repo(r, None), "sender": render.user(req.actor())})
        if before != "completed" and self._suite_status(r, suite) == "completed":
            self._deliver(r, "check_suite", "completed", {
                "action": "completed", "check_suite": await self._suite_doc(render, r, suite),
                "repository": render.repo(r, None), "sender": render.user(req.actor())})

    async def get_check_run(self, req: Request, owner: str, repo: str, id: str) -> Response:
        r = self._repo(req, owner, repo)
        return 200, self._run_doc(self._r(req), r, self._run(r, id)), {}

    async def list_annotations(self, req: Request, owner: str, repo: str,
                               id: str) -> Response:
        r = self._repo(req, owner, repo)
        run = self._run(r, id)
        page, links = _page(req, run["annotations"])
        render = self._r(req)
        return 200, [self._annotation_doc(render, r, run, a) for a in page], links

    def _filtered_runs(self, req: Request, runs: list[dict[str, Any]],
                       sha: str) -> list[dict[str, Any]]:
        """``check_name``, ``status``, ``app_id`` and ``filter`` (latest|all) of a list."""
        wanted = req.arg("filter", "latest")
        if wanted not in ("latest", "all"):
            raise core._invalid("CheckRun", "filter")
        runs = core.latest_runs(runs, sha) if wanted == "latest" else sorted(
            (x for x in runs if x["head_sha"] == sha), key=lambda x: -x["id"])
        name, status, app_id = req.arg("check_name"), req.arg("status"), req.arg("app_id")
        return [x for x in runs if (name is None or x["name"] == name)
                and (status is None or x["status"] == status)
                and (app_id is None or str(x["app_id"]) == app_id)]

    async def list_check_runs_for_ref(self, req: Request, owner: str, repo: str,
                                      ref: str) -> Response:
        r = self._repo(req, owner, repo)
        sha = await self._sha(r, ref)
        runs = self._filtered_runs(req, r.check_runs, sha)
        page, links = _page(req, runs)
        render = self._r(req)
        return 200, {"total_count": len(runs),
                     "check_runs": [self._run_doc(render, r, x) for x in page]}, links

    # ------------------------------------------------------------------ check suites

    def _suite(self, r: Repo, ident: str) -> dict[str, Any]:
        n = self._number(ident)
        suite = next((x for x in r.check_suites if x["id"] == n), None)
        if suite is None:
            raise HubError(404, "Not Found")
        return suite

    async def get_check_suite(self, req: Request, owner: str, repo: str, id: str) -> Response:
        r = self._repo(req, owner, repo)
        return 200, await self._suite_doc(self._r(req), r, self._suite(r, id)), {}

    async def list_suite_check_runs(self, req: Request, owner: str, repo: str,
                                    id: str) -> Response:
        r = self._repo(req, owner, repo)
        suite = self._suite(r, id)
        runs = self._filtered_runs(req, [x for x in r.check_runs if x["suite_id"] == suite["id"]],
                                   suite["head_sha"])
        page, links = _page(req, runs)
        render = self._r(req)
        return 200, {"total_count": len(runs),
                     "check_runs": [self._run_doc(render, r, x) for x in page]}, links

    async def list_check_suites_for_ref(self, req: Request, owner: str, repo: str,
                                        ref: str) -> Response:
        r = self._repo(req, owner, repo)
        sha = await self._sha(r, ref)
        suites = [s for s in r.check_suites if s["head_sha"] == sha
                  and (req.arg("app_id") is None or str(s["app_id"]) == req.arg("app_id"))]
        page, links = _page(req, suites)
        render = self._r(req)
        return 200, {"total_count": len(suites),
                     "check_suites": [await self._suite_doc(render, r, s) for s in page]}, links
