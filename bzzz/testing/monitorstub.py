"""A stand-in for the monitor's HTTP surface (docs/monitor-api.md), for the page's tests and
benchmark until (and besides) the real monitor: the Mesh Visualizer's static files, canned
documents in exactly the documented shapes, and a server-sent event stream the test drives.

Run as its own process, the way the page sees a monitor::

    python -m bzzz.testing.monitorstub [--agents 50] [--entries 100000] [--tasks 300]
                                       [--token-file F] [--port 0]

prints its base URL when ready. :class:`StubProcess` starts it and drives it through a few
control endpoints under ``/_stub/`` (not part of the monitor's API):

- ``GET /_stub/state``: the mesh document, the task list and the posted tasks;
- ``POST /_stub/mesh`` (a mesh document): replace it and push it as an ``event: mesh``;
- ``POST /_stub/tasks`` (``{"tasks": [...]}``): replace the task list;
- ``POST /_stub/event`` (``{"event", "data"}``): push any event to every open stream;
- ``POST /_stub/drop``: close every open event stream (the page must reconnect);
- ``GET /_stub/requests``: every request seen (method, path, query, whether it carried an
  ``Authorization`` header; never the header's value).
"""

from __future__ import annotations

import argparse
import hmac
import json
import mimetypes
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import trio

from ..asgi import headers, http_request, read_body, respond, serve_app
from ..asgi import Receive, Scope, Send

STATIC = Path(__file__).resolve().parent.parent / "monitor" / "static"

STATES = ["waiting", "claimed", "running", "needs_input", "needs_approval", "review", "done",
          "failed"]
LOG_STATES = ["verified", "syncing", "frozen", "failing"]
REPOS = ["acme/widgets", "acme/tools", "acme/docs"]
# decision types an agent's log holds (bzzz/claim/service.py), roughly how often
ENTRY_TYPES = ["claimed", "renewed", "renewed", "renewed", "contention_lost", "result",
               "reported", "help_requested", "help_offered", "help_handed_over",
               "help_adopted", "pull_request", "asked", "lease_lost"]


def peer_id(i: int) -> str:
    """A peer id shaped like libp2p's Ed25519 ones (base58, 52 characters)."""
    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    rnd = random.Random(i)
    return "12D3KooW" + "".join(rnd.choice(alphabet) for _ in range(44))


def build_world(agents: int = 5, entries: int = 1000, tasks: int = 60,
                now: float | None = None, seed: int = 1) -> dict[str, Any]:
    """A consistent mesh: agents, edges, tasks, per-agent logs (``entries`` in all)."""
    rnd = random.Random(seed)
    now = time.time() if now is None else now
    peers = [peer_id(i) for i in range(agents)]
    per_log = [entries // agents + (1 if i < entries % agents else 0) for i in range(agents)]
    task_list = []
    for n in range(tasks):
        state = STATES[n % len(STATES)]
        holder = rnd.randrange(agents) if agents and state not in ("waiting",
                                                                  "needs_approval") else None
        repo = REPOS[n % len(REPOS)]
        issue = n + 1
        pr = issue + 1000 if state in ("review", "done") else None
        task_list.append({
            "repo": repo, "issue": issue, "title": f"Task {issue}: check the widgets",
            "state": state,
            "agent": peers[holder] if holder is not None else None,
            "node": f"node-{holder + 1}" if holder is not None else None,
            "attempt": 1 + n % 2, "updated": now - (tasks - n) * 7.0,
            "issue_url": f"http://127.0.0.1:1/{repo}/issues/{issue}",
            "pr": pr, "pr_url": f"http://127.0.0.1:1/{repo}/pull/{pr}" if pr else None,
        })
    agent_docs = []
    for i, peer in enumerate(peers):
        held = [{"repo": t["repo"], "issue": t["issue"]} for t in task_list
                if t["agent"] == peer and t["state"] in ("claimed", "running")][:2]
        agent_docs.append({
            "peer_id": peer, "node_id": f"node-{i + 1}", "version": "0.1.0",
            "capabilities": ["shell", "python"] + (["llm:tiny"] if i % 3 == 0 else []),
            "models": ["tiny"] if i % 3 == 0 else [],
            "state": "up",
            "load": {"running": len(held), "max": 2},
            "tasks": held,
            "last_seen": now - (i % 5),
            "addrs": [f"/ip4/127.0.0.1/tcp/{4001 + i}"],
            "log": {"key": f"{i:064x}", "length": per_log[i], "replicated": per_log[i],
                    "state": "verified", "error": None},
        })
    edges = []
    for i in range(1, agents):
        edges.append([peers[i], peers[rnd.randrange(i)]])
        if i > 2 and i % 4 == 0:
            j = rnd.randrange(i)
            if [peers[i], peers[j]] not in edges:
                edges.append([peers[i], peers[j]])
    mesh = {
        "monitor": {"node_id": "mon", "peer_id": peer_id(10_000), "version": "0.1.0",
                    "uptime": 12.5},
        "generated": now,
        "agents": agent_docs, "edges": edges,
        "counts": counts_of(task_list),
        "entries": entries,
    }
    return {"mesh": mesh, "tasks": task_list, "log_lengths": per_log}


def counts_of(tasks: list[dict[str, Any]]) -> dict[str, int]:
    counts = {s: 0 for s in STATES}
    for t in tasks:
        if t["state"] in counts:
            counts[t["state"]] += 1
    return counts


def log_entry(peer_index: int, seq: int, now: float, length: int) -> dict[str, Any]:
    """Entry ``seq`` of an agent's log, made up deterministically (never stored: 100,000
    entries cost nothing until asked for)."""
    kind = ENTRY_TYPES[(seq * 5 + peer_index * 3 + seq // 14) % len(ENTRY_TYPES)]
    issue = 1 + (seq * 13 + peer_index) % 60
    data: dict[str, Any] = {"type": kind, "repo": REPOS[issue % len(REPOS)], "issue": issue}
    if kind == "result":
        data.update(status="success" if seq % 5 else "failure", exit_code=0 if seq % 5 else 1)
    elif kind == "renewed":
        data["generation"] = seq % 9
    elif kind == "contention_lost":
        data["reason"] = "ref exists"
    return {"seq": seq, "ts": now - (length - seq) * 0.5, "type": kind, "data": data}


class StubMonitor:
    """The ASGI app. ``token``: the bearer token ``POST /api/v1/tasks`` needs."""

    def __init__(self, world: dict[str, Any], token: str = "stub-token",
                 static: Path = STATIC) -> None:
        self.mesh = world["mesh"]
        self.tasks = world["tasks"]
        self.token = token
        self.static = static.resolve()
        self.posted: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.next_issue = 5000
        self.streams: dict[int, trio.MemorySendChannel[bytes | None]] = {}  # None: drop
        self.stream_ids = 0
        self.log_tails: dict[str, dict[str, Any]] = {}

    # -- plumbing -------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (request := await http_request(scope, receive, send)) is None:
            return
        path, method, query = request.path, request.method, request.query
        self.requests.append({"method": method, "path": path, "query": query,
                              "authorization": "authorization" in request.headers,
                              "ts": time.time()})
        try:
            await self._route(scope, receive, send, method, path, query)
        except (ValueError, KeyError, TypeError) as exc:
            await self._json(send, 400, {"error": f"bad request: {exc}"})

    async def _route(self, scope: Scope, receive: Receive, send: Send, method: str, path: str,
                     query: dict[str, str]) -> None:
        if method == "GET" and path == "/":
            await self._file(send, "index.html")
        elif method == "GET" and path.startswith("/static/"):
            await self._file(send, unquote(path[len("/static/"):]))
        elif method == "GET" and path == "/healthz":
            await self._reply(send, 200, b"ok\n", "text/plain")
        elif method == "GET" and path == "/api/v1/mesh":
            await self._json(send, 200, self.mesh)
        elif method == "GET" and path == "/api/v1/tasks":
            await self._json(send, 200, self._task_list(query))
        elif method == "POST" and path == "/api/v1/tasks":
            await self._post_task(scope, receive, send)
        elif method == "GET" and path.startswith("/api/v1/tasks/"):
            await self._task_detail(send, path[len("/api/v1/tasks/"):])
        elif method == "GET" and path.startswith("/api/v1/agents/") and path.endswith("/log"):
            await self._agent_log(send, unquote(path[len("/api/v1/agents/"):-len("/log")]),
                                  query)
        elif method == "GET" and path == "/api/v1/events":
            await self._events(receive, send)
        elif path.startswith("/_stub/"):
            await self._control(receive, send, method, path)
        else:
            await self._json(send, 404, {"error": "not found"})

    @staticmethod
    async def _reply(send: Send, status: int, body: bytes, content_type: str) -> None:
        await respond(send, status, body, content_type, [(b"cache-control", b"no-store")])

    async def _json(self, send: Send, status: int, doc: Any) -> None:
        await self._reply(send, status, json.dumps(doc).encode(), "application/json")

    async def _file(self, send: Send, name: str) -> None:
        target = (self.static / name).resolve()
        if not target.is_file() or not target.is_relative_to(self.static):
            await self._json(send, 404, {"error": "not found"})
            return
        kind = {".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css",
                ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml"}.get(
                    target.suffix, mimetypes.guess_type(target.name)[0] or "text/plain")
        if kind.startswith("text/") and "charset" not in kind:
            kind += "; charset=utf-8"
        await self._reply(send, 200, target.read_bytes(), kind)

    # -- read API -------------------------------------------------------------------------

    def _task_list(self, query: dict[str, str]) -> dict[str, Any]:
        limit = max(1, min(int(query.get("limit", 100)), 1000))
        offset = max(0, int(query.get("offset", 0)))
        found = [t for t in self.tasks
                 if (not query.get("repo") or t["repo"] == query["repo"])
                 and (not query.get("state") or t["state"] == query["state"])
                 and (not query.get("agent") or query["agent"] in (t["agent"], t["node"]))]
        found.sort(key=lambda t: t["updated"], reverse=True)
        return {"total": len(found), "tasks": found[offset:offset + limit]}

    def _agent(self, peer: str) -> tuple[int, dict[str, Any]] | None:
        for i, a in enumerate(self.mesh["agents"]):
            if a["peer_id"] == peer:
                return i, a
        return None

    async def _task_detail(self, send: Send, rest: str) -> None:
        parts = rest.split("/")
        if len(parts) != 3 or not parts[2].isdigit():
            await self._json(send, 404, {"error": "not found"})
            return
        repo, issue = f"{parts[0]}/{parts[1]}", int(parts[2])
        task = next((t for t in self.tasks if t["repo"] == repo and t["issue"] == issue), None)
        if task is None:
            await self._json(send, 404, {"error": "no such task"})
            return
        await self._json(send, 200, {"task": task, "timeline": self._timeline(task)})

    def _timeline(self, task: dict[str, Any]) -> list[dict[str, Any]]:
        """Claimed, contention, renewals, a help request answered and handed over, a result
        and its report, across three agents (or as many as there are)."""
        agents = self.mesh["agents"]
        if not agents or task["state"] in ("waiting", "needs_approval"):
            return []
        start = task["updated"] - 40.0
        pick = [agents[(task["issue"] + k) % len(agents)] for k in range(3)]
        repo, issue = task["repo"], task["issue"]
        steps: list[tuple[int, float, str, dict[str, Any]]] = [
            (0, 0.0, "claimed", {"lease": 60}), (1, 0.2, "contention_lost",
                                                  {"reason": "ref exists"}),
            (0, 20.0, "renewed", {"generation": 1}),
            (0, 22.0, "help_requested", {"needs": ["python"], "request": "r1"}),
            (2, 22.3, "help_offered", {"request": "r1"}),
            (0, 25.3, "help_handed_over", {"helper": pick[2]["peer_id"]}),
            (2, 25.4, "help_adopted", {"origin": pick[0]["peer_id"]}),
            (2, 38.0, "result", {"status": "success", "exit_code": 0}),
            (2, 39.0, "reported", {"status": "success"})]
        out = []
        for seq, (who, dt, kind, extra) in enumerate(steps):
            agent = pick[who]
            out.append({"ts": start + dt, "peer_id": agent["peer_id"],
                        "node_id": agent["node_id"], "seq": 100 + seq, "type": kind,
                        "data": {"type": kind, "repo": repo, "issue": issue,
                                 "title": task["title"], **extra}})
        # a test may add its own decisions about the task (``extra_timeline``)
        return out + list(task.get("extra_timeline") or [])

    async def _agent_log(self, send: Send, peer: str, query: dict[str, str]) -> None:
        found = self._agent(peer)
        if found is None:
            await self._json(send, 404, {"error": "no such agent"})
            return
        index, agent = found
        length = agent["log"]["length"]
        limit = max(1, min(int(query.get("limit", 200)), 1000))
        before = min(int(query.get("before", length)), length)
        q, kind = query.get("q", "").lower(), query.get("type", "")
        extra = self.log_tails.get(peer, {}).get("entries", [])
        entries: list[dict[str, Any]] = []
        seq = before - 1
        # newest first; the made-up entries are scanned lazily, at most a bounded number
        scanned = 0
        while seq >= 0 and len(entries) < limit and scanned < 20_000:
            entry = (extra[seq - (length - len(extra))] if seq >= length - len(extra)
                     else log_entry(index, seq, self.mesh["generated"], length))
            scanned += 1
            seq -= 1
            if kind and entry["type"] != kind:
                continue
            if q and q not in json.dumps(entry["data"]).lower():
                continue
            entries.append(entry)
        await self._json(send, 200, {
            "peer_id": peer, "node_id": agent["node_id"], "key": agent["log"]["key"],
            "length": length, "state": agent["log"]["state"],
            "types": sorted(set(ENTRY_TYPES) | {e["type"] for e in extra}),
            "entries": entries})

    # -- acting ---------------------------------------------------------------------------

    async def _post_task(self, scope: Scope, receive: Receive, send: Send) -> None:
        auth = headers(scope).get("authorization", "")
        scheme, _, given = auth.partition(" ")
        body = await read_body(receive, 256 * 1024)
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(),
                                                                 self.token.encode()):
            await self._json(send, 401, {"error": "a valid bearer token is needed"})
            return
        try:
            doc = json.loads(body or b"")
        except ValueError:
            await self._json(send, 400, {"error": "the body is not JSON"})
            return
        if not isinstance(doc, dict):
            await self._json(send, 400, {"error": "the body must be a JSON object"})
            return
        repo = doc.get("repo")
        if not isinstance(repo, str) or repo.count("/") != 1 or not all(repo.split("/")):
            await self._json(send, 400, {"error": "repo: expected owner/name"})
            return
        if not isinstance(doc.get("title"), str) or not doc["title"].strip():
            await self._json(send, 400, {"error": "title: required"})
            return
        if doc.get("priority", "normal") not in ("high", "normal", "low"):
            await self._json(send, 400, {"error": "priority: one of high, normal, low"})
            return
        needs = doc.get("needs", [])
        if not isinstance(needs, list) or not all(isinstance(n, str) for n in needs):
            await self._json(send, 400, {"error": "needs: expected a list of strings"})
            return
        self.next_issue += 1
        self.posted.append(doc)
        await self._json(send, 201, {"issue": self.next_issue,
                                     "url": f"http://127.0.0.1:1/{repo}/issues/"
                                            f"{self.next_issue}"})

    # -- events ---------------------------------------------------------------------------

    async def _events(self, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream"),
                                (b"cache-control", b"no-store")]})
        sender, stream = trio.open_memory_channel[bytes | None](1000)
        self.stream_ids += 1
        sid = self.stream_ids
        self.streams[sid] = sender
        await send({"type": "http.response.body", "body": b"retry: 500\n\n", "more_body": True})

        async def until_disconnect(cancel: trio.CancelScope) -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            cancel.cancel()

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(until_disconnect, nursery.cancel_scope)
                while True:
                    with trio.move_on_after(15):
                        chunk = await stream.receive()
                        if chunk is None:  # dropped by the test
                            break
                        await send({"type": "http.response.body", "body": chunk,
                                    "more_body": True})
                        continue
                    await send({"type": "http.response.body", "body": b": ping\n\n",
                                "more_body": True})
                nursery.cancel_scope.cancel()
            await send({"type": "http.response.body", "body": b""})
        finally:
            self.streams.pop(sid, None)

    def push(self, event: str, data: Any) -> None:
        chunk = f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()
        for sender in list(self.streams.values()):
            try:
                sender.send_nowait(chunk)
            except trio.WouldBlock:
                pass

    async def _control(self, receive: Receive, send: Send, method: str, path: str) -> None:
        if method == "GET" and path == "/_stub/requests":
            await self._json(send, 200, {"requests": self.requests})
            return
        if method == "GET" and path == "/_stub/state":
            await self._json(send, 200, {"mesh": self.mesh, "tasks": self.tasks,
                                         "posted": self.posted, "streams": len(self.streams)})
            return
        if method != "POST":
            await self._json(send, 405, {"error": "method not allowed"})
            return
        doc = json.loads(await read_body(receive) or b"{}")
        if path == "/_stub/mesh":
            self.mesh = doc
            self.push("mesh", doc)
        elif path == "/_stub/tasks":
            self.tasks = doc["tasks"]
        elif path == "/_stub/log":
            self.log_tails[doc["peer_id"]] = {"entries": doc["entries"]}
        elif path == "/_stub/event":
            self.push(doc["event"], doc["data"])
        elif path == "/_stub/drop":
            for sender in list(self.streams.values()):
                try:
                    sender.send_nowait(None)
                except trio.WouldBlock:
                    pass
        else:
            await self._json(send, 404, {"error": "not found"})
            return
        await self._json(send, 200, {"ok": True, "streams": len(self.streams)})


class StubProcess:
    """``python -m bzzz.testing.monitorstub`` as a child process, and its control calls."""

    def __init__(self, agents: int = 5, entries: int = 1000, tasks: int = 60,
                 token: str = "stub-token") -> None:
        self.args = ["--agents", str(agents), "--entries", str(entries), "--tasks", str(tasks)]
        self.token = token
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self._token_file: Path | None = None

    def __enter__(self) -> StubProcess:
        import tempfile
        import httpx
        fd, name = tempfile.mkstemp(prefix="bzzz-stub-token-")
        with open(fd, "w") as fh:
            fh.write(self.token)
        self._token_file = Path(name)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bzzz.testing.monitorstub", *self.args,
             "--token-file", name], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http://"):
            self.proc.kill()
            raise RuntimeError("the monitor stub did not start")
        self.http = httpx.Client(base_url=self.url, timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._token_file is not None:
            self._token_file.unlink(missing_ok=True)

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = self.http.get("/_stub/state").json()
        return state

    def set_mesh(self, mesh: dict[str, Any]) -> None:
        self.http.post("/_stub/mesh", json=mesh).raise_for_status()

    def set_tasks(self, tasks: list[dict[str, Any]]) -> None:
        self.http.post("/_stub/tasks", json={"tasks": tasks}).raise_for_status()

    def set_log(self, peer: str, entries: list[dict[str, Any]]) -> None:
        """Entries that end an agent's log (the newest), in place of made-up ones."""
        self.http.post("/_stub/log", json={"peer_id": peer, "entries": entries}
                       ).raise_for_status()

    def event(self, event: str, data: Any) -> None:
        self.http.post("/_stub/event", json={"event": event, "data": data}).raise_for_status()

    def drop_streams(self) -> None:
        self.http.post("/_stub/drop", json={}).raise_for_status()

    def requests(self) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = self.http.get("/_stub/requests").json()["requests"]
        return seen


async def _serve(app: StubMonitor, host: str, port: int) -> None:
    async with trio.open_nursery() as nursery:
        bound = await nursery.start(serve_app, app, host, port)
        print(bound[0], flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bzzz.testing.monitorstub")
    parser.add_argument("--agents", type=int, default=5)
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=60)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token-file")
    args = parser.parse_args(argv)
    if args.agents < 0 or args.entries < 0 or args.tasks < 0:
        parser.error("--agents, --entries and --tasks take non-negative numbers")
    token = Path(args.token_file).read_text().strip() if args.token_file else "stub-token"
    app = StubMonitor(build_world(args.agents, args.entries, args.tasks), token=token)
    try:
        trio.run(_serve, app, args.host, args.port)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
