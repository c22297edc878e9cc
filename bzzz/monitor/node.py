"""``bzzz monitor``: a mesh member that takes no tasks and watches everything.

It joins like an agent (same identity file, discovery, private network), announces itself
with the ``monitor`` capability and no task slots (so no agent hands it work or help), keeps
every agent it has heard of (the live table, plus those gone), follows and verifies every
agent's log (not ``replicate_logs`` of them), and indexes each verified decision as its
replica grows (event-driven: a replica's new head wakes the indexer). A GitHub poll of
``github.repos`` adds what no log knows yet: tasks waiting for an agent, titles, links.
"""

from __future__ import annotations

from ..kinds import Decision
from ..errors import SetupError
import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from .. import __version__, heap
from ..asgi import serve_app
from ..github.client import GitHubClient, GitHubError
from ..github.pulls import iso_time
from ..config import Config, MonitorConfig
from ..decisions import open_data_dir
from ..hyperlog.entries import decode
from ..hyperlog.store import Hyperlog, LogError
from ..identity import Identity, load_or_create
from ..p2p.logsync import STALL_INTERVALS, LogSync
from ..p2p.mesh import Mesh, leave, until_stop_signal
from ..p2p.node import P2PNode
from ..p2p.pnet import load_psk
from .index import Index, Indexed
from .metrics import MonitorMetrics
from ..redact import register as register_secret
from .trust import RETRY_AFTER, Trust, log_key_of, log_peer, owns

if TYPE_CHECKING:
    from trio_typing import TaskStatus

    from .bridge import EnqueueBridge
    from .callbacks import Callbacks

log = logging.getLogger("bzzz.monitor")

FOLLOW_ALL = 100_000
INDEX_CHUNK = 4096  # blocks read and indexed per transaction
TICK = 0.5  # seconds between looks at the peer table (the page's agents)
VERIFY_EVERY = 600.0  # seconds between full checks of every replica on disk
POLL_PAGE = 100  # issues per request of the GitHub poll
POLL_PAGES = 5  # requests per repository and poll at most (the cursor carries on)
POLL_SOON_GAP = 0.5  # a log names a task the poll has not shown: poll this soon


class MonitorError(SetupError):
    """A start-up problem, phrased as one line."""


def loopback(listen: str) -> bool:
    """Whether ``host:port`` listens on loopback only (127.0.0.0/8, ::1, localhost)."""
    import ipaddress
    host = listen.rpartition(":")[0].strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name: whatever it resolves to, it is not known to be loopback
        return False



Event = tuple[str, dict[str, Any]]  # what live subscribers are told: (kind, document)


class Broadcast:
    """Fan-out of indexed decisions to live subscribers (the page's event streams); a slow
    subscriber loses events (counted) instead of slowing the indexer."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self.subscribers: set[trio.MemorySendChannel[Event]] = set()
        self.dropped = 0

    def subscribe(self) -> tuple[trio.MemorySendChannel[Event], trio.MemoryReceiveChannel[Event]]:
        send: trio.MemorySendChannel[Event]
        recv: trio.MemoryReceiveChannel[Event]
        send, recv = trio.open_memory_channel(self.size)
        self.subscribers.add(send)
        return send, recv

    def unsubscribe(self, send: trio.MemorySendChannel[Event]) -> None:
        self.subscribers.discard(send)

    def publish(self, item: Event) -> None:
        for send in list(self.subscribers):
            try:
                send.send_nowait(item)
            except trio.WouldBlock:
                self.dropped += 1
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                self.subscribers.discard(send)


class Monitor:
    def __init__(self, config: Config, identity: Identity | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.identity = identity or load_or_create(config.data_dir)
        register_secret(self.identity.seed)
        self.peer_id = self.identity.peer_id.to_base58()
        psk = load_psk(config.psk_file) if config.psk_file else None
        if psk is not None:
            register_secret(psk.hex())
        mc = config.monitor
        self._open_tokens(mc)
        self.gh: GitHubClient | None = _github_client(config)
        # which decisions may speak for a task (bzzz/monitor/trust.py)
        self.trust = Trust(self.gh, clock=clock)
        self.datalease, self.decisions = open_data_dir(config, self.peer_id,
                                                       self.identity.seed, MonitorError)
        self.index = Index(config.data_dir / "monitor.sqlite3", clock=clock)
        self.node = P2PNode(self.identity, config.listen, mdns=config.mdns,
                            dial_discovered=config.dial_discovered,
                            bootstrap=config.bootstrap, psk=psk)
        # no log key: agents need not follow the monitor's own log; no slots: no work
        self.mesh = Mesh(self.node, config.node_id, ["monitor"],
                         interval=config.announce_interval, max_tasks=0)
        self.agents: dict[str, dict[str, Any]] = {}  # peer id -> what we know
        self._disowned: dict[str, str] = {}  # peer -> a log key it announced, not its own
        # log key hex -> the peer whose identity signs it (never whoever announces it)
        self.by_key: dict[str, str] = {}
        self._known_from_index()
        self._dirty: set[str] = set()  # replicas with blocks not yet indexed
        self._deferred: dict[str, float] = {}  # replica -> when to try it again (trio time)
        self._wake = trio.Event()
        self._wake.set()
        self._open_logsync(config)
        self.metrics = MonitorMetrics(self)
        from .app import MonitorApp
        self.app = MonitorApp(self)
        self._bridges(mc)
        self.events = Broadcast()
        self.changed = trio.Event()  # the mesh document may have changed
        self.generation = 0
        self.damaged: dict[str, str] = {}  # replica key hex -> why it does not verify
        self.verify_failures = 0
        self.github_ok: bool | None = None
        self._poll_cursor: dict[str, str] = {}  # repo -> newest updated_at seen
        # set when a log speaks of a task GitHub's poll has not shown yet: poll at once
        self._poll_soon = trio.Event()
        self._poll_etag: dict[str, str] = {}  # repo -> ETag of the current query
        self.started_at = clock()
        self.bound: list[str] = []

    def _open_tokens(self, mc: MonitorConfig) -> None:
        """The new-task form's token and the viewer token, read now (a missing or empty
        file stops the start); reads beyond loopback need the viewer token."""
        from ..github.credentials import CredentialError, SecretFile
        self._token = SecretFile(mc.token_file, "monitor.token_file") if mc.token_file else None
        self._viewer = SecretFile(mc.viewer_token_file, "monitor.viewer_token_file") \
            if mc.viewer_token_file else None
        try:  # read now: a missing or empty file stops the start
            for secret in (self._token, self._viewer):
                if secret is not None:
                    secret.get()
        except CredentialError as exc:
            raise MonitorError(str(exc)) from None
        # reads (the page's API) are open on loopback only; beyond it they need a token
        self.reads_open = loopback(mc.listen)
        if not self.reads_open and self._viewer is None:
            raise MonitorError(
                f"monitor.listen {mc.listen} is reachable beyond loopback: set "
                "monitor.viewer_token_file (a read-only token for the page and its API) or "
                "listen on 127.0.0.1")
        if self.viewer_token is not None:
            register_secret(self.viewer_token)

    def _known_from_index(self) -> None:
        """The agents the index knows of (down until heard from), by the logs they sign."""
        for info in self.index.logs.values():
            if info.peer_id and owns(info.peer_id, info.key):
                self.by_key[info.key] = info.peer_id
                self.agents[info.peer_id] = {
                    "peer_id": info.peer_id, "node_id": info.node_id,
                    "capabilities": info.capabilities, "load": {"running": 0, "max": 0},
                    "addrs": [], "last_seen": None, "log_key": info.key, "peers": [],
                    "version": info.version, "up": False}

    def _open_logsync(self, config: Config) -> None:
        """Replication of every log announced; the replicas already on disk opened."""
        self.logsync = LogSync(self.node, self.decisions.log, config.data_dir / "replicas",
                               follow=FOLLOW_ALL, peers=self._log_peers,
                               announced=self.mesh.announced_log_length,
                               stall_after=STALL_INTERVALS * config.announce_interval)
        self.replicas: dict[str, Hyperlog] = {}
        self.logsync.on_replica.append(self._replica_opened)
        for key, rep in self.logsync.replicators.items():
            if rep.log is not None:
                self._replica_opened(key, rep.log)

    @property
    def token(self) -> str | None:
        """The new-task form's bearer token, re-read when its file changes (rotation)."""
        return self._token.get() if self._token is not None else None

    @property
    def viewer_token(self) -> str | None:
        """The read-only token of the page's API, re-read when its file changes."""
        return self._viewer.get() if self._viewer is not None else None

    def _bridges(self, mc: MonitorConfig) -> None:
        """Hive's /enqueue and the job callbacks (bzzz/monitor/bridge.py, callbacks.py): the
        callbacks learn each job's events from the verified decisions as they are indexed."""
        from .bridge import EnqueueBridge, TokenFileError
        from .callbacks import Callbacks
        from .jobstore import JobStore
        self.bridge: EnqueueBridge | None = None
        self.callbacks: Callbacks | None = None
        if mc.enqueue_tokens_file is None and mc.callback_secret_file is None:
            return
        if self.gh is None:
            raise MonitorError("monitor.enqueue_tokens_file needs a GitHub credential for the "
                               "monitor (github.token_file, token_command or app_id)")
        jobs = JobStore(self.config.data_dir / "jobs")
        try:
            self.bridge = EnqueueBridge.from_config(mc, self.gh, jobs)
            self.callbacks = Callbacks.from_config(mc, jobs)
        except (TokenFileError, OSError, ValueError) as exc:
            raise MonitorError(f"the Hive bridge: {exc}") from None
        if self.bridge is not None:
            self.app.bridges.append(self.bridge)
        if self.callbacks is not None:
            self.index.on_entry = self.callbacks.observe

    # ------------------------------------------------------------------ the peer table

    def _log_peers(self) -> list[tuple[str, str]]:
        """The logs to follow, each from the peer that signs it (a peer announcing someone
        else's log is not asked for it)."""
        return [(e.announcement.peer_id, e.announcement.log_key)
                for e in self.mesh.table.entries()
                if e.announcement.log_key and "monitor" not in e.announcement.capabilities
                and owns(e.announcement.peer_id, e.announcement.log_key)]

    def _own_log_key(self, peer: str, announced: str) -> str:
        """The log key to show for a peer: the one it announced if that log is signed by its
        identity; otherwise the one its identity signs (a peer cannot take another's log)."""
        if owns(peer, announced):
            return announced.lower()
        if self._disowned.get(peer) != announced:
            self._disowned[peer] = announced
            self.trust.refuse("log_key")
            log.warning("a peer announced a log that is not its own", extra={
                "peer": peer, "log": announced[:16]})
        return log_key_of(peer) or ""

    def _refresh_agents(self) -> bool:
        """Fold the live table into what we know of every agent; True if it changed."""
        changed = False
        live = set()
        for e in self.mesh.table.entries():
            a = e.announcement
            if "monitor" in a.capabilities or not a.log_key:
                continue
            live.add(a.peer_id)
            log_key = self._own_log_key(a.peer_id, a.log_key)
            known = self.agents.get(a.peer_id)
            doc = {"peer_id": a.peer_id, "node_id": a.node_id,
                   "capabilities": list(a.capabilities),
                   "load": {"running": a.load[0], "max": a.load[1]},
                   "addrs": list(a.addrs), "last_seen": e.last_seen, "log_key": log_key,
                   "peers": list(a.peers),
                   "version": a.version or (known or {}).get("version"), "up": True,
                   "presets": list(a.presets)}
            if known != doc:
                if known is None or any(known.get(k) != doc[k] for k in doc if k != "last_seen"):
                    changed = True
                self.agents[a.peer_id] = doc
            if log_key:
                self.by_key[log_key] = a.peer_id
        now = self.clock()
        expiry = self.config.monitor.agent_expiry
        for peer, doc in self.agents.items():
            up = peer in live and doc["last_seen"] is not None and now - doc["last_seen"] <= expiry
            if doc["up"] != up:
                doc["up"] = up
                changed = True
        return changed

    # ------------------------------------------------------------------ indexing

    def _replica_opened(self, key: bytes, replica: Hyperlog) -> None:
        hexkey = key.hex()
        self.replicas[hexkey] = replica
        try:  # the log says whose it is: its signing key is its author's identity key
            self.by_key[hexkey] = log_peer(replica.public_key)
        except Exception:  # not an Ed25519 identity: nobody's, its decisions count for nothing
            self.by_key.pop(hexkey, None)

        def grew() -> None:
            self._dirty.add(hexkey)
            self.logsync.errors.pop(key, None)
            self._wake.set()

        replica.listeners.append(grew)
        self._dirty.add(hexkey)
        self._wake.set()

    async def _index_some(self, hexkey: str) -> tuple[list[Indexed], bool]:
        """Index up to INDEX_CHUNK sealed blocks of one replica; (indexed, more to do). The
        batch's claims are checked with GitHub first (once each, then cached); a batch whose
        checks GitHub does not answer is indexed up to the first of them, and the rest is
        tried again in RETRY_AFTER seconds."""
        replica = self.replicas.get(hexkey)
        if replica is None:
            return [], False
        sealed = replica.head.length if replica.head is not None else 0
        info = self.index.log_info(hexkey)
        start = info.indexed
        if start >= sealed:
            return [], False
        end = min(sealed, start + INDEX_CHUNK)
        try:
            blocks = replica.read_range(start, end)
        except (LogError, IndexError, OSError) as exc:
            log.warning("a replica cannot be read", extra={"log": hexkey[:16], "error": str(exc)})
            self.damaged[hexkey] = str(exc)
            return [], False
        peer = self.by_key.get(hexkey, "")
        node = (self.agents.get(peer) or {}).get("node_id", "")
        entries = [decode(b) for b in blocks]
        stop = await self.trust.prepare(peer, entries)
        if stop is not None:
            blocks, entries, end = blocks[:stop], entries[:stop], start + stop
            self._deferred[hexkey] = trio.current_time() + RETRY_AFTER
            if not blocks:
                return [], False
        out = self.index.add(hexkey, peer, node, start, blocks, trust=self.trust,
                             entries=entries)
        if any(self._unseen_on_github(e.repo, e.issue) for e in out):
            self._poll_soon.set()
        if out and out[-1].ts:  # how far behind its agent the index is, once per batch
            self.metrics.lag.observe(max(0.0, self.clock() - out[-1].ts))
        return out, end < sealed and hexkey not in self._deferred

    async def _indexer(self) -> None:
        while True:
            wait = min(self._deferred.values(), default=math.inf) - trio.current_time()
            with trio.move_on_after(max(0.0, wait)):
                await self._wake.wait()
            self._wake = trio.Event()
            now = trio.current_time()
            for hexkey, when in list(self._deferred.items()):
                if when <= now:
                    del self._deferred[hexkey]
                    self._dirty.add(hexkey)
            while self._dirty:
                hexkey = self._dirty.pop()
                if hexkey in self._deferred:
                    continue
                items, more = await self._index_some(hexkey)
                if more:
                    self._dirty.add(hexkey)
                for item in items:
                    self.events.publish(("entry", item.doc()))
                if items:
                    self._changed()
                await trio.lowlevel.checkpoint()  # let the network and the page in between chunks

    def _changed(self) -> None:
        self.generation += 1
        self.changed.set()
        self.changed = trio.Event()

    async def _watch_table(self) -> None:
        while True:
            if self._refresh_agents():
                self._changed()
            with trio.move_on_after(TICK):
                await self.mesh.table_changed.wait()

    # ------------------------------------------------------------------ GitHub

    async def _poll_github(self) -> None:
        repos = self.config.github.repos
        interval = self.config.monitor.poll_interval
        if self.gh is None or not repos or interval <= 0:
            return
        while True:
            for repo in repos:
                try:
                    changed = await self._poll_repo(repo)
                    self.github_ok = True
                except GitHubError as exc:
                    if self.github_ok is not False:
                        log.warning("cannot read tasks from GitHub", extra={
                            "repo": repo, "error": str(exc)})
                    self.github_ok = False
                    continue
                if changed:
                    self._changed()
            self._poll_soon = trio.Event()
            with trio.move_on_after(interval):
                await self._poll_soon.wait()
                await trio.sleep(POLL_SOON_GAP)  # one early poll for a burst of new tasks

    def _unseen_on_github(self, repo: str | None, issue: int | None) -> bool:
        """A task of a polled repository that a log names and GitHub's poll has not shown
        (no title or link on the page until the next poll otherwise)."""
        if repo is None or issue is None or repo not in self.config.github.repos:
            return False
        t = self.index.tasks.get((repo, issue))
        return t is not None and t.github is None and t.issue_url is None

    async def _poll_repo(self, repo: str) -> bool:
        """Read the repository's ``bzzz`` issues changed since the last poll into the index;
        True when the index changed.

        The first poll reads the newest POLL_PAGE; later ones only what changed since the
        newest ``updated_at`` seen (``since`` is inclusive: the issues of that second come
        again and change nothing), oldest first, a few pages at most per poll (the cursor
        moves on). A quiet repository answers 304. So each poll costs one small request,
        however many finished issues the repository holds."""
        gh = self.gh
        assert gh is not None  # polled only with a client (_poll_github)
        cursor = self._poll_cursor.get(repo)
        params: dict[str, Any] = {"labels": "bzzz", "state": "all", "sort": "updated",
                                  "per_page": POLL_PAGE}
        params.update({"direction": "desc"} if cursor is None
                      else {"direction": "asc", "since": cursor})
        path = f"/repos/{repo}/issues"
        reply = await gh.request("GET", path, etag=self._poll_etag.get(repo),
                                      params=params)
        if reply.status == 304 or not isinstance(reply.data, list):
            return False
        first_etag, docs, page = reply.etag, list(reply.data), 1
        while cursor is not None and len(reply.data or ()) >= POLL_PAGE \
                and 'rel="next"' in reply.headers.get("link", "") and page < POLL_PAGES:
            page += 1
            reply = await gh.request("GET", path, params={**params, "page": page})
            docs += list(reply.data or [])
        changed = False
        newest = cursor
        for issue in docs:
            if not isinstance(issue, dict) or "pull_request" in issue:
                continue
            updated = issue.get("updated_at")
            if isinstance(updated, str) and (newest is None or updated > newest):
                newest = updated  # ISO 8601 in UTC: text order is time order
            labels = [x.get("name", "") for x in issue.get("labels") or []
                      if isinstance(x, dict)]
            changed |= self.index.observe_issue(
                repo, int(issue.get("number", 0)), str(issue.get("title") or ""),
                labels, issue.get("state") == "open", iso_time(updated), issue.get("html_url"))
        if newest is not None and newest != cursor:  # (None only while the cursor is None)
            self._poll_cursor[repo] = newest
            self._poll_etag.pop(repo, None)  # a new query
        elif first_etag:
            self._poll_etag[repo] = first_etag
        return changed

    async def file_task(self, doc: Any) -> dict[str, Any]:
        """The new-task form: a ``bzzz`` issue filed as the monitor's GitHub identity."""
        from ..claim.newtask import issue_request
        if self.gh is None:
            raise GitHubError(503, "the monitor has no GitHub token (github.token_file)")
        repo, payload = issue_request(doc, self.config.github.repos)
        reply = await self.gh.request("POST", f"/repos/{repo}/issues", json=payload)
        number = int(reply.data["number"])
        self.decisions.append({"type": Decision.TASK_FILED, "node": self.config.node_id,
                               "repo": repo, "issue": number, "via": "form"})
        self.index.observe_issue(repo, number, payload["title"], payload["labels"], True,
                                 self.clock(), reply.data.get("html_url"))
        self._changed()
        return {"issue": number, "url": reply.data.get("html_url"), "repo": repo}

    # ------------------------------------------------------------------ documents

    async def _verify_replicas(self) -> None:
        """Check every replica on disk from its first byte (bzzz.hyperlog.store.verify_dir),
        at start and every VERIFY_EVERY seconds: a copy damaged or tampered with on disk is
        shown as failing until it verifies again."""
        from ..hyperlog.store import verify_dir
        root = self.config.data_dir / "replicas"
        while True:
            for d in sorted(root.iterdir()) if root.is_dir() else []:
                if not (d / "log").exists():
                    continue
                report = await trio.to_thread.run_sync(verify_dir, d)
                if report.ok:
                    self.damaged.pop(d.name, None)
                elif report.error != self.damaged.get(d.name):
                    self.damaged[d.name] = report.error or "does not verify"
                    self.verify_failures += 1
                    log.error("a replica does not verify", extra={"log": d.name[:16],
                                                                  "error": report.error})
                    self._changed()
            await trio.sleep(VERIFY_EVERY)

    def log_state(self, hexkey: str) -> tuple[str, str | None]:
        key = bytes.fromhex(hexkey)
        if key in self.logsync.server.conflicts:
            return "frozen", "its key signed two histories"
        if hexkey in self.damaged:
            return "failing", f"the copy does not verify: {self.damaged[hexkey]}"
        error = self.logsync.errors.get(key)
        if error:
            return "failing", error
        replica = self.replicas.get(hexkey)
        if replica is None or replica.head is None:
            return "syncing", None
        return "verified", None

    def agent_docs(self) -> list[dict[str, Any]]:
        holding = self.index.holding()
        out = []
        for peer, a in sorted(self.agents.items(), key=lambda kv: (kv[1]["node_id"], kv[0])):
            key = a.get("log_key") or ""
            replica = self.replicas.get(key)
            info = self.index.logs.get(key)
            state, error = self.log_state(key) if key else ("syncing", None)
            caps = a.get("capabilities") or []
            out.append({
                "peer_id": peer, "node_id": a["node_id"], "version": a.get("version"),
                "capabilities": caps,
                "models": sorted({c.split(":", 1)[1] for c in caps
                                  if c.startswith(("llm:", "ollama:")) and ":" in c}),
                "state": "up" if a["up"] else "gone", "load": a["load"],
                "presets": a.get("presets") or [],
                "tasks": holding.get(peer, []), "last_seen": a["last_seen"],
                "addrs": a.get("addrs", []),
                "log": {"key": key, "length": replica.length if replica else 0,
                        "replicated": replica.head.length if replica and replica.head else 0,
                        "indexed": info.indexed if info else 0,
                        "state": state, "error": error}})
        return out

    def edges(self) -> list[list[str]]:
        known = set(self.agents)
        seen = set()
        for peer, a in self.agents.items():
            if not a["up"]:
                continue
            for other in a.get("peers") or []:
                if other in known and other != peer and self.agents[other]["up"]:
                    seen.add(tuple(sorted((peer, other))))
        return [list(e) for e in sorted(seen)]

    def mesh_doc(self) -> dict[str, Any]:
        return {
            "monitor": {"node_id": self.config.node_id, "peer_id": self.peer_id,
                        "version": __version__,
                        "uptime": round(self.clock() - self.started_at, 1),
                        "github": self.github_ok},
            "generated": self.clock(),
            "agents": self.agent_docs(),
            "edges": self.edges(),
            "counts": self.index.counts(),
            "entries": self.index.total,
            "recent": self.index.recent(20),
        }

    # ------------------------------------------------------------------ running

    async def run(self, task_status: TaskStatus[Monitor] = trio.TASK_STATUS_IGNORED, *,
                  handle_signals: bool = True) -> None:
        host, _, port = self.config.monitor.listen.rpartition(":")
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.datalease.run)
                await nursery.start(self.decisions.run)
                await nursery.start(self.node.run)
                await nursery.start(self.logsync.run)
                await nursery.start(self.mesh.run)
                nursery.start_soon(self._indexer)
                nursery.start_soon(self._watch_table)
                nursery.start_soon(self._poll_github)
                nursery.start_soon(self._verify_replicas)
                nursery.start_soon(heap.trim_every)
                if self.gh is not None and self.gh.credentials is not None:
                    nursery.start_soon(self.gh.credentials.run)
                if self.callbacks is not None:
                    await nursery.start(self.callbacks.run)
                if self.bridge is not None:
                    nursery.start_soon(self.bridge.resume)
                self.bound = await nursery.start(lambda task_status: serve_app(
                    self.app, host.strip("[]"), int(port), task_status=task_status))
                self.decisions.append({"type": Decision.STARTED, "node": self.config.node_id,
                                       "peer": self.peer_id, "version": __version__,
                                       "role": "monitor"})
                log.info("monitor started", extra={"peer": self.peer_id,
                                                   "addrs": ",".join(self.node.addrs()),
                                                   "url": ",".join(self.bound)})
                task_status.started(self)
                if handle_signals:
                    await until_stop_signal()
                    await leave(self.mesh, self.node)
                    nursery.cancel_scope.cancel()
        finally:
            if self.gh is not None:
                with trio.CancelScope(shield=True):
                    await self.gh.aclose()
            self.logsync.close()
            self.decisions.close()
            self.datalease.release()
            self.index.close()


def _github_client(config: Config) -> GitHubClient | None:
    """The monitor's GitHub client, if credentials are configured (token file, command or
    App); a token file is read now."""
    from ..github import credentials
    provider = credentials.from_config(config.github)  # token file, command or App
    if isinstance(provider, credentials.TokenFile):
        try:
            provider.read()
        except credentials.CredentialError as exc:
            raise MonitorError(str(exc)) from None
    return GitHubClient(
        config.github.url, provider, write_interval=config.github.write_interval,
        write_burst=config.github.write_burst) if provider else None
