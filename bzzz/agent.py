"""The agent: composes the services under one nursery and shuts them down cleanly.

SIGTERM (what Docker Swarm sends) or SIGINT: a departure message is published and flushed,
connections are closed, and the process exits 0 within a few seconds.
"""

from __future__ import annotations

import logging
from collections import Counter
from functools import partial
import shlex
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from .gateway.budget import Budget
from .gateway.models import ModelEndpoint
from .gateway.proxy import Gateway
from .kinds import Decision
from . import __version__, heap
from .api import Api, is_loopback
from .asgi import serve_app
from .claim.delivery import RepoWork
from .claim.service import ClaimService, ClaimSettings
from .config import Config
from .decisions import open_data_dir
from .errors import SetupError
from .exec import agents as agent_presets
from .exec.agents import versions as preset_versions
from .exec.agents.runner import PresetExecutor
from .exec.agents.sessions import MAX_ENTRY as MAX_SESSION
from .exec.agents.sessions import SessionStore
from .exec.executor import AgentExecutor, Executor
from .exec.guardian import Policy
from .exec.limits import TaskLimits
from .exec.llm import Endpoint, root_url
from .exec.llmexec import LLMExecutor
from .exec.sandbox import (SHARED, ContainerSandbox, Limits, Sandbox, SandboxError, open_sandbox,
                           parse_memory)
from .exec.shell import RunAs, TaskUserError, reachable_by, task_identity
from .github import credentials
from .github.client import GitHubClient, GitHubError
from .github.credentials import CredentialProvider
from .identity import Identity, load_or_create
from .metrics import Metrics
from .p2p import capabilities as caps_mod
from .p2p.capabilities import PeerView
from .p2p.logsync import STALL_INTERVALS, LogSync
from .p2p.mesh import Mesh, leave, until_stop_signal
from .p2p.node import P2PNode
from .p2p.pnet import load_psk
from .redact import register as register_secret
from .repo.git import Git
from .repo.setupcache import SetupCache
from .repo.workspace import Mirrors

if TYPE_CHECKING:
    from trio_typing import TaskStatus

    from .claim.webhook import WebhookIntake
    from .help.service import HelpService

log = logging.getLogger("bzzz.agent")

SHUTDOWN_BUDGET = 3.0
LLM_REFRESH = 60.0  # seconds between probes of the LLM endpoints (models come and go)


class AgentError(SetupError):
    """A start-up problem, phrased as one line."""


def _read_token(config: Config) -> CredentialProvider | None:
    """The GitHub credential (bzzz/github/credentials.py), required when repositories are
    configured. A token file is read now, so a missing one stops the start with one line."""
    provider = credentials.from_config(config.github)
    if provider is None:
        if config.github.repos:
            raise AgentError("a GitHub credential is required when github.repos is set: "
                             "github.token_file (or GITHUB_TOKEN_FILE), github.token_command, "
                             "or github.app_id with github.app_key_file")
        return None
    if isinstance(provider, credentials.TokenFile):
        try:
            provider.read()
        except credentials.CredentialError as exc:
            raise AgentError(str(exc)) from None
    return provider


def setup_cache(config: Config, workroot: Path) -> SetupCache | None:
    """Where repositories' setups are cached (data_dir/setup-cache; None: setup_cache "0"),
    their next copies written ahead beside the workspaces (workroot/.setup-spare)."""
    total = parse_memory(config.setup_cache)
    if total <= 0:
        return None
    return SetupCache(config.data_dir / "setup-cache", max_total=total,
                      max_entry=min(total, parse_memory(config.setup_cache_entry)),
                      spare_root=workroot / ".setup-spare")


def agent_sessions(config: Config) -> SessionStore | None:
    """Where the coding-agent CLIs' sessions are kept between a task's rounds
    (data_dir/agent-sessions, which no task sees; None: agent_sessions "0", or no preset)."""
    total = parse_memory(config.agent_sessions)
    if total <= 0 or not config.agent:
        return None
    return SessionStore(config.data_dir / "agent-sessions", max_total=total,
                        max_entry=min(total, MAX_SESSION))


def _secret_file(path: Path, field: str) -> credentials.SecretFile:
    """A secret file read now (a missing or empty one stops the start) and re-read whenever
    it changes, so it rotates without a restart."""
    secret = credentials.SecretFile(path, field)
    try:
        secret.get()
    except credentials.CredentialError as exc:
        raise AgentError(str(exc)) from None
    return secret


def _task_user(config: Config) -> RunAs | None:
    """Who tasks run as (see exec/shell.py), checked at start: the user must exist and be
    able to reach the workspace directory."""
    try:
        user = task_identity(config.task_user)
    except TaskUserError as exc:
        raise AgentError(str(exc)) from None
    if user is not None and config.github.repos:
        root = config.workspace_dir or config.data_dir / "work"
        root.mkdir(parents=True, exist_ok=True)
        blocked = reachable_by(root, user)
        if blocked is not None:
            raise AgentError(f"tasks run as {user.name}, who cannot enter {blocked}: set "
                             "workspace_dir to a directory that user can reach, or task_user")
    return user


class Agent:
    def __init__(self, config: Config, identity: Identity | None = None) -> None:
        self.config = config
        self.identity = identity or load_or_create(config.data_dir)
        register_secret(self.identity.seed)  # its hex spellings never leave the agent
        self.peer_id = self.identity.peer_id.to_base58()
        psk = load_psk(config.psk_file) if config.psk_file else None
        if psk is not None:
            register_secret(psk.hex())
        self.token = _read_token(config)  # the credential provider
        self.gh: GitHubClient | None = None
        self.webhook = self._webhook_intake(config)
        self.task_user = _task_user(config)
        self.workroot = config.workspace_dir or config.data_dir / "work"
        self.sandbox: Sandbox | None = None  # opened in run() (it may ask a container engine)
        self.gateway: Gateway | None = None  # task_network = "gateway": made in open_sandbox
        self.presets: dict[str, agent_presets.Installed] = {}  # found in open_sandbox
        self.preset_problems: dict[str, str] = {}  # configured presets that cannot run: why
        self.preset_versions: dict[str, str] = {}  # their CLIs' versions, once asked
        self.datalease, self.decisions = open_data_dir(config, self.peer_id,
                                                       self.identity.seed, AgentError)
        self.claims: ClaimService | None = None
        self.work: RepoWork | None = None
        self._llm_keys: dict[Path, credentials.SecretFile] = {}
        endpoints = self._llm_endpoints()
        self.llm: LLMExecutor | None = LLMExecutor(
            endpoints, first_token_timeout=config.llm_first_token_timeout) if endpoints else None
        self._llm_caps: list[str] = []
        self.metrics = Metrics()
        self.metrics.info.labels(config.node_id, self.peer_id, __version__).set(1)
        self.capabilities = caps_mod.detect(config.capabilities, config.detect_capabilities,
                                            config.ollama_url)
        self.node = P2PNode(self.identity, config.listen, mdns=config.mdns,
                            dial_discovered=config.dial_discovered,
                            bootstrap=config.bootstrap, psk=psk)
        self.node.pnet_stats.on_reject.append(
            lambda reason: self.metrics.pnet_rejected.labels(reason).inc())
        self.mesh = Mesh(self.node, config.node_id, self.capabilities,
                         interval=config.announce_interval, max_tasks=config.max_tasks,
                         metrics=self.metrics, log_key=self.decisions.key,
                         log_length=lambda: self.decisions.length)
        self._count_pubsub()
        self.logsync = LogSync(
            self.node, self.decisions.log, config.data_dir / "replicas",
            follow=config.replicate_logs,
            peers=self._log_peers, announced=self.mesh.announced_log_length,
            stall_after=STALL_INTERVALS * config.announce_interval)
        self.help = self._help_service(config)
        self._count_activity()
        api_token = (_secret_file(config.api_token_file, "api_token_file")
                     if config.api_token_file else None)
        self.api = Api(self.status, self.render_metrics, healthy=self.node.started.is_set,
                       probe=self._help_probe, token=api_token,
                       loopback=is_loopback(config.api_host_port[0]))
        self.maintenance_interval = heap.INTERVAL
        self.started_at = time.time()

    def _webhook_intake(self, config: Config) -> WebhookIntake | None:
        """GitHub's webhooks, when the agent listens for them (they need the secret file):
        events go to the claim service once it runs."""
        if not config.github.webhook_listen:
            return None
        secret_file = config.github.webhook_secret_file
        if secret_file is None:
            raise AgentError("github.webhook_secret_file is required with github.webhook_listen")
        secret = _secret_file(secret_file, "github.webhook_secret_file")
        from .claim.webhook import WebhookIntake
        return WebhookIntake(
            secret, lambda e, r, p: self.claims.on_webhook(e, r, p) if self.claims else None)

    def _count_pubsub(self) -> None:
        # py-libp2p drops badly signed messages before our validators see them; it counts
        # them only through our patch (bzzz.p2p.host), read at scrape time.
        self.metrics.counter_from("bzzz_pubsub_bad_signatures",
                                  "Pubsub messages whose signature did not verify",
                                  lambda: self.node.security_stats.pubsub_bad_signature)
        self.metrics.counter_from("bzzz_pubsub_malformed_rpcs",
                                  "Peers' pubsub streams ended for an RPC that did not parse",
                                  lambda: self.node.security_stats.pubsub_malformed_rpc)

    def _help_service(self, config: Config) -> HelpService:
        """Help between peers: what this agent can do and how busy it is, asked live."""
        from .help.service import HelpService
        return HelpService(
            self.node, self.identity, config.node_id, self.decisions,
            capabilities=lambda: self.capabilities,
            load=lambda: (len(self.claims.running) if self.claims else 0, config.max_tasks),
            candidates=self._help_candidates,
            login=lambda: self.claims.s.login if self.claims else "",
            broadcast=config.help_broadcast, keep_connections=config.dial_discovered)

    def _count_activity(self) -> None:
        """Metrics read at scrape time: help, log replication, dials, tasks, GitHub."""
        self.metrics.counter_from("bzzz_help_messages_sent", "Help messages sent, by kind",
                                  lambda: self.help.sent, label="kind")
        self.metrics.counter_from("bzzz_help_dropped", "Help messages dropped, by reason",
                                  lambda: self.help.router.drops, label="reason")
        self.metrics.counter_from("bzzz_help_requests", "Help requests handled, by outcome",
                                  lambda: self.help.router.counts, label="outcome")
        self.metrics.counter_from("bzzz_log_bad_peers",
                                  "Peers dropped for bad log data (proof, signature, size)",
                                  lambda: self.logsync.bad_peers, label="reason")
        self.metrics.counter_from("bzzz_log_follow_stalls",
                                  "Log followers started again after not moving while their "
                                  "peer announced a longer log",
                                  lambda: self.logsync.stalls)
        self.metrics.counter_from("bzzz_dials", "Outgoing dial attempts",
                                  lambda: self.node.dial_attempts)
        self.metrics.counter_from("bzzz_dial_failures", "Outgoing dials that failed",
                                  lambda: self.node.dial_failures)
        self.metrics.counter_from("bzzz_tasks_finished", "Task attempts finished, by status",
                                  lambda: self.claims.finished if self.claims else {},
                                  label="status")
        self.metrics.gauge_from("bzzz_tasks_running", "Tasks running on this agent now",
                                lambda: len(self.claims.running) if self.claims else 0)
        self.metrics.counter_from("bzzz_github_requests", "GitHub API requests sent (retries "
                                  "included)", lambda: self.claims.gh.requests if self.claims else 0)
        self.metrics.counter_from("bzzz_github_writes", "Content-creating GitHub requests sent",
                                  lambda: self.claims.gh.writes if self.claims else 0)
        for name, doc, attr, label in (
                ("bzzz_gateway_refused", "Task requests the gateway refused, by host",
                 "refused_by_host", "host"),
                ("bzzz_gateway_bytes", "Bytes through the task gateway (finished tasks)",
                 "bytes_through", "direction"),
                ("bzzz_gateway_model_requests", "Model requests through the gateway",
                 "model_requests", "model"),
                ("bzzz_gateway_model_tokens_in", "Model input tokens through the gateway",
                 "tokens_in", "model"),
                ("bzzz_gateway_model_tokens_out", "Model output tokens through the gateway",
                 "tokens_out", "model")):
            self.metrics.counter_from(name, doc, partial(self._gateway_counts, attr),
                                      label=label)

    def _gateway_counts(self, attr: str) -> Counter[str]:
        """One of the task gateway's node-wide tallies (empty without a gateway)."""
        counts: Counter[str] = getattr(self.gateway, attr) if self.gateway else Counter()
        return counts

    # ---------------------------------------------------------------- observability

    def status(self) -> dict[str, Any]:
        connected = self.node.connected_peers() if self.node.started.is_set() else set()
        peers = [{
            "peer_id": e.announcement.peer_id,
            "connected": e.announcement.peer_id in connected,
            "node_id": e.announcement.node_id,
            "addrs": list(e.announcement.addrs),
            "capabilities": list(e.announcement.capabilities),
            "load": {"running": e.announcement.load[0], "max": e.announcement.load[1]},
            "last_seen": round(e.last_seen, 3),
        } for e in self.mesh.table.entries()]
        return {
            "node_id": self.config.node_id,
            "peer_id": self.peer_id,
            "addrs": self.node.addrs() if self.node.started.is_set() else [],
            "capabilities": self.capabilities,
            "version": __version__,
            "uptime": round(time.time() - self.started_at, 1),
            "peers": peers,
            "connections": len(self.node.connected_peers()) if self.node.started.is_set() else 0,
            "tasks": self.claims.status() if self.claims else [],
            "agent_presets": preset_versions.describe(self.presets, self.preset_versions,
                                                      self.preset_problems),
            "log": {"key": self.mesh.log_key, "length": self.decisions.length,
                    **self.logsync.status()},
            "github": self._github_status(),
            "help": self.help.status(),
            "sandbox": ({"kind": self.sandbox.kind, "limits": self.sandbox.enforced()}
                        if self.sandbox else None),
            "drops": dict(self.mesh.drops),
            "announcement_age": self.mesh.age_quantiles(),
            "pnet": {"enabled": self.config.psk_file is not None,
                     "rejected": self.node.pnet_stats.rejected},
        }

    def _github_status(self) -> dict[str, Any]:
        if not self.config.github.repos:
            return {"enabled": False}
        c = self.claims
        return {"enabled": True, "url": self.config.github.url, "repos": self.config.github.repos,
                "login": c.s.login if c else None, "ok": c.github_ok if c else False,
                "requests": c.gh.requests if c else 0,
                **self._credential_status(),
                "writes": c.gh.writes if c else 0,
                "completed": sum(c.finished.values()) if c else 0,
                "webhooks": dict(self.webhook.counts) if self.webhook else None,
                "checkouts": self._work_status()}

    def _credential_status(self) -> dict[str, Any]:
        gh = self.gh
        provider = gh.credentials if gh is not None else self.token
        return {"credentials": provider.status() if provider is not None else None,
                "credential_refreshes": provider.refreshes if provider is not None else 0,
                "unauthorized_responses": gh.unauthorized if gh else 0,
                "credential_retries": gh.credential_retries if gh else 0,
                "expired_credential_failures": gh.expired_credential_failures if gh else 0}

    def _work_status(self) -> dict[str, Any] | None:
        work = self.work
        if work is None:
            return None
        return {"pull_requests_opened": work.prs_opened, "git_commands": work.git.runs,
                "spare_checkouts_used": work.spares_used,
                "task_commits_kept": work.commits_kept,
                "task_commits_declined": work.commits_declined,
                "spare_checkouts_ready": sorted(work.spares),
                "git_seconds": round(work.git.seconds, 3),
                "git_steps": {k: {"runs": n, "seconds": round(t, 3)}
                              for k, (n, t) in sorted(work.git.by_step.items())},
                "mirrors": {repo: {"created": st.created, "fetches": st.fetches,
                                   "fetch_seconds": round(st.fetch_seconds, 3)}
                            for repo, st in work.mirrors.stats.items()}}

    async def _help_probe(self, doc: dict[str, Any]) -> dict[str, Any]:
        task = {"repo": "-", "issue": 0, "title": "probe", "needs": doc["needs"]}
        ask = await self.help.ask(task, "probe", 1, wait=doc["wait"], grace=min(0.2, doc["wait"]))
        return {"request": ask.request_id, "sent_to": ask.sent_to,
                "offers": [{"helper": o["helper"], "helper_node": o.get("helper_node"),
                            "hops": o.get("hops"),
                            "latency_ms": round((o.get("_at", ask.started) - ask.started) * 1e3, 2)}
                           for o in ask.offers],
                "declines": [{"helper": d["helper"], "helper_node": d.get("helper_node"),
                              "reason": d.get("reason")} for d in ask.declines]}

    def _log_peers(self) -> list[tuple[str, str]]:
        """Peers whose logs may be followed: all of the table, or in a sparse mesh
        (``dial_discovered`` off) only those we are connected to anyway."""
        connected = None if self.config.dial_discovered else self.node.connected_peers()
        return [(e.announcement.peer_id, e.announcement.log_key)
                for e in self.mesh.table.entries() if e.announcement.log_key
                and (connected is None or e.announcement.peer_id in connected)]

    def _help_candidates(self) -> list[PeerView]:
        now = time.time()
        connected = self.node.connected_peers() if self.config.help_scope == "connected" else None
        return [PeerView(e.announcement.peer_id, tuple(e.announcement.capabilities),
                         e.announcement.load[0], e.announcement.load[1],
                         max(0.0, now - e.last_seen))
                for e in self.mesh.table.entries()
                if connected is None or e.announcement.peer_id in connected]

    def _peer_views(self) -> list[PeerView]:
        return [PeerView(e.announcement.peer_id, e.announcement.capabilities,
                         e.announcement.load[0], e.announcement.load[1])
                for e in self.mesh.table.entries()]

    async def _run_claims(self) -> None:
        """Find our GitHub login (retrying through outages), then run the claim service."""
        gh = GitHubClient(self.config.github.url, self.token,
                          write_interval=self.config.github.write_interval,
                          write_burst=self.config.github.write_burst)
        self.gh = gh
        async with trio.open_nursery() as nursery:
            nursery.start_soon(gh.credentials.run)  # refreshes on schedule (App, command)
            await self._run_claims_with(gh)
            nursery.cancel_scope.cancel()

    async def _run_claims_with(self, gh: GitHubClient) -> None:
        delay = 1.0
        while True:
            try:  # an App's token acts as <slug>[bot] and may not read /user
                login = await gh.credentials.login() or \
                    (await gh.request("GET", "/user")).data["login"]
                break
            except (GitHubError, KeyError, TypeError) as exc:
                log.warning("cannot reach GitHub yet; retrying", extra={"error": str(exc),
                                                                         "retry_in": delay})
                await trio.sleep(delay)
                delay = min(60.0, delay * 2)
        cfg = self.config
        sessions = agent_sessions(cfg) if self.presets else None
        settings = ClaimSettings(
            repos=cfg.github.repos, node_id=cfg.node_id, peer_id=self.peer_id, login=login,
            max_tasks=cfg.max_tasks, poll_interval=cfg.github.poll_interval,
            lease=cfg.github.lease, exec_timeout=cfg.exec_timeout,
            claim_mode=cfg.github.claim_mode, settle=cfg.github.settle,
            help_wait=cfg.help_wait, trust_ttl=cfg.github.trust_ttl,
            intake_state=cfg.data_dir / "intake.json",
            close_on_success=cfg.github.close_on_success,
            policy=Policy.allow_list(cfg.guardian_allow) if cfg.guardian_allow else None,
            workroot=self.workroot, user=self.task_user, sandbox=self.sandbox,
            keep_workspaces=cfg.keep_workspaces, input_timeout=cfg.github.input_timeout,
            progress_interval=cfg.progress_interval, waiting_notice=cfg.waiting_notice,
            ci_rounds=cfg.ci_rounds, ci_wait=cfg.ci_wait, ci_settle=cfg.ci_settle,
            gateway=self.gateway,
            egress=list(cfg.task_egress), egress_max=list(cfg.task_egress_max),
            setup_timeout=cfg.setup_timeout, setup_cache=setup_cache(cfg, self.workroot),
            test_timeout=cfg.test_timeout, agent_sessions=sessions,
            sandbox_owner=self.sandbox.owner if self.sandbox else (
                (self.task_user.uid, self.task_user.gid) if self.task_user else None))
        work = None
        if cfg.github.checkout:
            git = Git()
            work = RepoWork(gh, git, Mirrors(self.workroot / ".mirrors", git, lambda: gh.token),
                            self.workroot, cfg.node_id, login, settings.sandbox_owner,
                            protected=cfg.delivery_protected_paths,
                            allow_protected=cfg.delivery_allow_protected)
        self.work = work
        executors: dict[str, Executor] = {}
        if cfg.agent_command and self.sandbox is not None:
            executors["agent"] = AgentExecutor(
                cfg.agent_command, self.sandbox, env=cfg.agent_env,
                leftovers=agent_presets.leftovers_of(shlex.split(cfg.agent_command)))
        if self.presets and self.sandbox is not None:
            executors["agent"] = PresetExecutor(self.presets, self.sandbox,
                                                max_turns=cfg.agent_max_turns, env=cfg.agent_env,
                                                sessions=sessions, image=cfg.agent_image)
        if self.llm is not None:
            self.llm.git = work.git if work is not None else Git()
            executors["llm"] = self.llm
        self.claims = ClaimService(gh, settings, self.decisions, executors=executors,
                                   capabilities=lambda: self.capabilities,
                                   peers=self._peer_views, on_load=self.mesh.set_load,
                                   helper=self.help if cfg.help_requests else None, work=work)
        log.info("taking tasks", extra={
            "repos": ",".join(cfg.github.repos), "login": login,
            "task_user": self.task_user.name if self.task_user else "(the agent's)",
            "sandbox": self.sandbox.kind if self.sandbox else "none"})
        try:
            await self.claims.run()
        finally:
            with trio.CancelScope(shield=True):
                await gh.aclose()

    def render_metrics(self) -> bytes:
        self.metrics.connections.set(len(self.node.connected_peers()))
        self.metrics.log_conflicts.set(len(self.logsync.server.conflicts))
        return self.metrics.render()

    # ---------------------------------------------------------------- running

    async def open_sandbox(self) -> None:
        """Where tasks run (bzzz/exec/sandbox.py), chosen and checked before anything starts;
        what an earlier run left (a killed agent's containers) is removed."""
        cfg = self.config
        hidden = [p for p in (cfg.github.token_file, cfg.github.app_key_file, cfg.psk_file,
                              cfg.github.webhook_secret_file, cfg.api_token_file, cfg.data_dir,
                              *(e.api_key_file for e in cfg.llm))
                  if p is not None]
        if cfg.task_network == "gateway" and cfg.sandbox != "none":
            # sockets and the forwarder where a task's user can reach its own socket by name
            # the engine mounts a container task's socket from the host's side: an agent in
            # a container keeps the sockets under its workspace root, which the host shares
            # (bzzz/exec/sidecar.py)
            place = (self.workroot if cfg.sandbox == "container" or cfg.task_workspace_host_dir
                     else None)
            if place is not None:
                place.mkdir(parents=True, exist_ok=True)
            self.gateway = Gateway(Path(tempfile.mkdtemp(prefix="bzzz-gateway-", dir=place)),
                                   models=self.model_routes(),
                                   budget=Budget(**cfg.task_budget.model_dump()),
                                   daily_budget=Budget(**cfg.task_budget_daily.model_dump()))
        try:
            self.sandbox = await open_sandbox(
                cfg.sandbox, node_id=cfg.node_id, hidden=hidden, state_dir=cfg.data_dir / "sandbox",
                docker_host=cfg.docker_host, default_image=cfg.task_image,
                network=cfg.task_network,
                limits=Limits(memory=cfg.task_memory, cpus=cfg.task_cpus, pids=cfg.task_pids,
                              disk=cfg.task_disk),
                user=self.task_user, workspace_host_dir=cfg.task_workspace_host_dir,
                workspace_root=self.workroot, cgroup=cfg.task_cgroup, gateway=self.gateway,
                gateway_image=cfg.gateway_image)
        except SandboxError as exc:
            raise AgentError(f"sandbox: {exc}") from None
        reaped = await self.sandbox.reap()
        if self.sandbox.kind == "none":
            log.warning("tasks run unconfined (sandbox = \"none\"): a task can read what this "
                        "agent's user can read, its token included")
            if "task_network" in cfg.model_fields_set and cfg.task_network == "gateway":
                log.warning("task_network = \"gateway\" needs a sandbox: without one a task "
                            "reaches whatever this machine reaches")
        else:
            log.info("tasks run sandboxed", extra={"sandbox": self.sandbox.describe(),
                                                  "reaped": reaped})
            note = getattr(self.sandbox, "gateway_note", "")
            if cfg.task_network == "gateway" and note:
                log.warning("container tasks get no network at all: the task gateway cannot "
                            "be offered (%s); set gateway_image to an image with python3 "
                            "(the agent's own image has one)", note)
            if cfg.task_network in SHARED:
                log.warning("tasks reach the network directly (task_network = \"%s\"), not "
                            "only what task_egress allows through the task gateway",
                            cfg.task_network)
        if self.sandbox.kind == "none" or (self.sandbox.kind == "bwrap"
                                           and cfg.task_network in SHARED):
            # tasks share this machine's loopback: loopback is no proof of an operator, so
            # the acting endpoints need the API token
            self.api.require_token()
        self.presets = self.find_presets()
        if isinstance(self.sandbox, ContainerSandbox):
            await self._probe_presets_in_image(self.sandbox)
        extra = (["container"] if self.sandbox.kind == "container" else []) + \
            (["agent"] if cfg.agent_command or self.presets else []) + \
            [f"agent:{name}" for name in self.presets]
        if any(c not in self.capabilities for c in extra):
            self.capabilities += [c for c in extra if c not in self.capabilities]
            self.mesh.set_capabilities(self.capabilities)

    async def run(self, task_status: TaskStatus[Agent] = trio.TASK_STATUS_IGNORED, *,
                  handle_signals: bool = True) -> None:
        host, port = self.config.api_host_port
        try:
            if self.config.github.repos:
                await self.open_sandbox()
            await self._run(task_status, host, port, handle_signals)
        finally:
            if self.sandbox is not None:
                with trio.CancelScope(shield=True):
                    await self.sandbox.aclose()
            if self.gateway is not None:
                with trio.CancelScope(shield=True):
                    await self.gateway.aclose()
                shutil.rmtree(self.gateway.directory, ignore_errors=True)
            self.logsync.close()
            self.decisions.close()
            self.datalease.release()

    def _llm_key(self, path: Path | None) -> credentials.SecretFile | None:
        """An [[llm]] key file, read once and re-read when it changes (the key rotates
        without a restart); the llm executor and the gateway's model routes share it."""
        if path is None:
            return None
        if path not in self._llm_keys:
            self._llm_keys[path] = _secret_file(path, "llm api_key_file")
        return self._llm_keys[path]

    def _llm_endpoints(self) -> list[Endpoint]:
        cfg = self.config
        out = []
        for e in cfg.llm:
            if e.kind == "anthropic":
                continue  # for coding agents, through the gateway (model_routes)
            out.append(Endpoint(e.url.rstrip("/"), e.kind, list(e.models), e.name or e.url,
                                self._llm_key(e.api_key_file), e.context))
        if not out and (cfg.ollama_url or cfg.detect_capabilities):
            url = (cfg.ollama_url or caps_mod.DEFAULT_OLLAMA_URL).rstrip("/")
            out.append(Endpoint(url, "ollama", [], "ollama"))
        return out

    def model_routes(self) -> list[ModelEndpoint]:
        """Every [[llm]] endpoint as a route of the task gateway, its key read by the agent
        (bzzz/gateway/models.py)."""
        out = []
        for i, e in enumerate(self.config.llm, 1):
            secret = self._llm_key(e.api_key_file)
            out.append(ModelEndpoint(_route_name(e.name, i), root_url(e.url), e.kind,
                                     secret.get if secret is not None else lambda: None,
                                     e.price_in, e.price_out))
        return out

    def find_presets(self) -> dict[str, agent_presets.Installed]:
        """The coding-agent presets (``agent``) this node can run: each CLI found, with its
        model route through the task gateway; why the others cannot is logged."""
        cfg = self.config
        if not cfg.agent:
            return {}
        blocked = self._presets_blocked()
        if blocked:
            log.warning("agent presets run sandboxed behind the task gateway (task_network "
                        "= \"gateway\"): none are run here: %s", blocked)
            return {}
        routes = [agent_presets.Route(_route_name(e.name, i), e.kind, tuple(e.models))
                  for i, e in enumerate(cfg.llm, 1)]
        models = {"": cfg.agent_model or "", **cfg.agent_models}
        found, why = agent_presets.resolve(cfg.agent, models, routes, cfg.agent_path)
        if isinstance(self.sandbox, ContainerSandbox):
            for name in list(found):
                root = found[name].install_root
                problem = self.sandbox.unmountable(root) if root is not None else None
                if problem:  # the task's container could not be given the CLI
                    why[name] = problem
                    del found[name]
        self.preset_problems = why
        for name, reason in why.items():
            log.warning("agent preset not run", extra={"preset": name, "why": reason})
        for name, agent in found.items():
            log.info("agent preset", extra={"preset": name, "cli": str(agent.executable),
                                            "model": agent.model, "route": agent.route})
            self._warn_data_floor(name, agent.preset.data_floor)
        return found

    def _warn_data_floor(self, name: str, floor: int) -> None:
        """A CLI that runs badly under the per-process data limit bubblewrap tasks get when
        no cgroup limits their memory (bzzz/exec/limits.py) is said so at start."""
        limits = getattr(self.sandbox, "limits", None)
        if not floor or not isinstance(limits, TaskLimits) or limits.cgroup is not None \
                or limits.memory >= floor:
            return
        log.warning("agent preset %s runs slowly under task_memory = %s: without a delegated "
                    "cgroup it is each process's data limit, and the CLI wants %d GiB of it; "
                    "set task_memory = \"%dg\" or delegate a cgroup (docs/agents.md)", name,
                    self.config.task_memory, floor >> 30, floor >> 30)

    async def _probe_presets_in_image(self, box: ContainerSandbox) -> None:
        """A preset whose CLI the task image cannot start (no node for an npm CLI, another
        Python for Aider) is not run, nor announced: a task needing it would only fail here."""
        for name, agent in list(self.presets.items()):
            problem = await box.probe_cli(agent.executable, agent.install_root,
                                          self.config.agent_image)
            if problem:
                self.preset_problems[name] = problem
                del self.presets[name]
                log.warning("agent preset not run", extra={"preset": name, "why": problem})

    def _presets_blocked(self) -> str | None:
        """Why this node's sandbox cannot run a preset, or None. Bubblewrap shows the CLI's
        installation read-only; a task container gets it as a read-only bind mount and its
        way out through the gateway's side container (bzzz/exec/sidecar.py)."""
        if self.gateway is None or self.sandbox is None or self.sandbox.kind == "none":
            return "no sandbox with the task gateway"
        if isinstance(self.sandbox, ContainerSandbox) and not self.sandbox.gateway_image:
            return (f"the container sandbox cannot offer the task gateway "
                    f"({self.sandbox.gateway_note})")
        return None

    async def _probe_presets(self) -> None:
        """Each preset's CLI version (``<cli> --version``, once, in worker threads): in the
        status document and, as one line a preset, in the capability announcement."""
        self.preset_versions = await preset_versions.probe(self.presets)
        self.mesh.set_presets(preset_versions.announced(self.presets, self.preset_versions))
        log.info("agent preset versions", extra=dict(self.preset_versions))

    async def _refresh_llm(self) -> None:
        """Probe the LLM endpoints; announce their models as llm:<model> (ollama:<model>)."""
        assert self.llm is not None
        found = await self.llm.refresh()
        keep = [c for c in self.capabilities
                if not c.startswith("llm:") and c != "llm" and c not in self._llm_caps]
        self._llm_caps = [c for c in found if c not in keep]
        caps = keep + self._llm_caps
        if caps != self.capabilities:
            self.capabilities = caps
            self.mesh.set_capabilities(self.capabilities)
            log.info("llm models", extra={"capabilities": ",".join(self._llm_caps) or "(none)",
                                          "down": ",".join(self.llm.down) or "-"})

    async def _llm_loop(self) -> None:
        while True:
            await trio.sleep(LLM_REFRESH)
            await self._refresh_llm()

    async def _run(self, task_status: TaskStatus[Agent], host: str, port: int,
                   handle_signals: bool) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(self.datalease.run)
            await nursery.start(self.decisions.run)
            await nursery.start(self.node.run)
            await nursery.start(self.logsync.run)
            await nursery.start(self.help.run)
            await nursery.start(self.mesh.run)
            await nursery.start(self.api.run, host, port)
            nursery.start_soon(heap.trim_every, self.maintenance_interval)
            if self.presets:
                nursery.start_soon(self._probe_presets)
            if self.config.github.repos:
                if self.llm is not None:
                    await self._refresh_llm()
                    nursery.start_soon(self._llm_loop)
                nursery.start_soon(self._run_claims)
            if self.config.schedules:  # bzzz/schedule: one issue per slot, mesh-wide
                from .schedule.runner import run_schedules
                nursery.start_soon(run_schedules, self.config, self.token, self.decisions)
            webhook, listen = self.webhook, self.config.github.webhook_listen
            if webhook is not None:
                assert listen is not None  # the intake exists only with it
                wh_host, _, wh_port = listen.rpartition(":")
                await nursery.start(lambda task_status: serve_app(
                    webhook, wh_host.strip("[]"), int(wh_port), task_status=task_status))
            self.decisions.append({"type": Decision.STARTED, "node": self.config.node_id,
                                   "peer": self.peer_id, "version": __version__,
                                   "capabilities": list(self.capabilities)})
            log.info("agent started", extra={"peer": self.peer_id,
                                             "addrs": ",".join(self.node.addrs()),
                                             "api": ",".join(self.api.bound)})
            task_status.started(self)
            if handle_signals:
                await until_stop_signal()
                await self.shutdown()
                nursery.cancel_scope.cancel()

    async def shutdown(self) -> None:
        """Take no new work, say goodbye, flush it, close connections (bounded by
        SHUTDOWN_BUDGET). A claim made while leaving would be abandoned unlogged."""
        if self.claims is not None:
            self.claims.stop_taking()
        await leave(self.mesh, self.node, SHUTDOWN_BUDGET)


def _route_name(name: str, index: int) -> str:
    """The task gateway's name of the ``index``-th [[llm]] endpoint (its ``/llm/<name>/``)."""
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name)[:40] or f"llm{index}"
