"""The agent's configuration: one pydantic model, read from TOML and overridden by ``BZZZ_*``.

Precedence (highest first): environment variables, the TOML file, the defaults below.
Nested fields use a double underscore (``BZZZ_GITHUB__URL``). A list-valued variable takes a
JSON list or a comma-separated string; switches take on/off, true/false, 1/0.
"""

from __future__ import annotations

from .errors import SetupError
from .gateway.allow import parse_all
import json
import os
import shlex
import socket
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, ValidationError,
                      field_validator, model_validator)

from .monitor.egress import DEFAULT_DENY, parse_networks

ENV_PREFIX = "BZZZ_"


class ConfigError(SetupError):
    """A configuration problem, phrased as one line naming the field."""


def _split_list(value: Any) -> Any:
    """Accept a JSON list or a comma-separated string wherever a list is expected."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not a valid JSON list: {exc.msg}") from None
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


def _json_list(value: Any, variable: str, key: str) -> Any:
    """A list of tables given as one environment variable: JSON (empty: none)."""
    if isinstance(value, str):
        try:
            return json.loads(value) if value.strip() else []
        except ValueError:
            raise ValueError(f"{variable} must be a JSON list of {{\"{key}\": ...}}") from None
    return value


StrList = Annotated[list[str], BeforeValidator(_split_list)]


def _owner_names(repos: list[str]) -> list[str]:
    for repo in repos:
        owner, _, name = repo.partition("/")
        if not owner or not name or "/" in name:
            raise ValueError(f"{repo!r} is not owner/name")
    return repos


def _check_multiaddr(text: str) -> str:
    from multiaddr import Multiaddr

    try:
        Multiaddr(text)
    except Exception as exc:  # multiaddr raises several unrelated types
        raise ValueError(f"{text!r} is not a multiaddr ({exc})") from None
    return text


class GitHubConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = "https://api.github.com"
    # the credential: exactly one of token_file, token_command, app_id with app_key_file
    # (bzzz/github/credentials.py; the README's "GitHub credentials")
    token_file: Path | None = None  # re-read when it changes
    # a command printing a token on stdout: an argv list, or one line split like a shell
    # would (no shell runs), e.g. "vault kv get -field=token secret/bzzz" or "gh auth token"
    token_command: list[str] | None = None
    token_refresh: float = Field(default=45 * 60.0, gt=0)  # seconds between runs of token_command
    token_command_timeout: float = Field(default=30.0, gt=0, le=600)
    # a GitHub App: its id, its private key (PEM), and the installation (looked up on the
    # owner of the first repo when absent)
    app_id: int | None = Field(default=None, ge=1)
    app_key_file: Path | None = None
    installation_id: int | None = Field(default=None, ge=1)
    repos: StrList = Field(default_factory=list)
    poll_interval: float = Field(default=5.0, gt=0)
    # content-creating requests per token: bursts of write_burst, then one per write_interval
    # seconds; the defaults keep any minute at or under GitHub's 80 (10 + 60 / 0.86)
    write_interval: float = Field(default=0.86, ge=0)
    write_burst: int = Field(default=10, ge=1, le=80)
    lease: float = Field(default=60.0, ge=1)
    # "ref": the git-ref lock (needs contents write); "assign": a weaker lock from
    # assignment alone, for issues-only tokens, one login per agent (see the README)
    claim_mode: Literal["ref", "assign"] = "ref"
    settle: float = Field(default=2.0, gt=0, le=60)
    close_on_success: bool = False
    # webhook intake (optional; polling stays the safety net): host:port and the secret
    webhook_listen: str | None = None
    webhook_secret_file: Path | None = None
    # seconds a permission answer (who may push) is cached for the trust rule
    trust_ttl: float = Field(default=60.0, ge=0, le=3600)
    # every task in a checkout of its repository, its changes delivered as a pull request;
    # off: tasks run in an empty directory and answer with a comment only
    checkout: bool = True
    # seconds a task waits for an answer to its question before it fails (72 h)
    input_timeout: float = Field(default=72 * 3600.0, gt=0)

    @field_validator("token_file", "app_key_file", "token_command", "app_id",
                     "installation_id", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("token_command", mode="before")
    @classmethod
    def _command_argv(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    return json.loads(text)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"not a valid JSON list: {exc.msg}") from None
            try:
                return shlex.split(text)
            except ValueError as exc:
                raise ValueError(f"cannot split into words ({exc})") from None
        return value

    @field_validator("token_command")
    @classmethod
    def _command_has_program(cls, argv: list[str] | None) -> list[str] | None:
        if argv is not None and (not argv or not argv[0]):
            raise ValueError("needs a program to run")
        return argv

    @model_validator(mode="after")
    def _one_credential(self) -> "GitHubConfig":
        if (self.app_id is None) != (self.app_key_file is None):
            raise ValueError("github.app_id and github.app_key_file go together (a GitHub "
                             "App needs both)")
        if self.installation_id is not None and self.app_id is None:
            raise ValueError("github.installation_id needs github.app_id and app_key_file")
        given = [name for name, on in (("token_file", self.token_file is not None),
                                       ("token_command", self.token_command is not None),
                                       ("app_id", self.app_id is not None)) if on]
        if len(given) > 1:
            raise ValueError(f"set one GitHub credential, not {' and '.join(given)} (token_file "
                             "may come from GITHUB_TOKEN_FILE)")
        return self

    @property
    def credential_kind(self) -> str | None:
        """Which credential is configured: "app", "token_command", "token_file" or None."""
        if self.app_id is not None:
            return "app"
        if self.token_command is not None:
            return "token_command"
        return "token_file" if self.token_file is not None else None

    @field_validator("repos")
    @classmethod
    def _repos_are_owner_name(cls, repos: list[str]) -> list[str]:
        return _owner_names(repos)


class LLMConfig(BaseModel):
    """One LLM endpoint: Ollama (native API) or anything OpenAI-compatible (llama.cpp, vLLM,
    LM Studio, Ollama's /v1)."""
    model_config = ConfigDict(extra="forbid")

    url: str
    # "anthropic": a Messages API endpoint for coding agents through the task gateway (the
    # llm executor itself speaks the OpenAI and Ollama APIs)
    kind: Literal["auto", "openai", "ollama", "anthropic"] = "auto"
    models: StrList = Field(default_factory=list)  # added to what the endpoint lists
    name: str = ""
    api_key_file: Path | None = None
    context: int | None = Field(default=None, ge=256)  # tokens, when the endpoint does not say
    # USD per million tokens, for the task gateway's cost estimate and budgets
    price_in: float = Field(default=0.0, ge=0)
    price_out: float = Field(default=0.0, ge=0)


class BudgetConfig(BaseModel):
    """What one task (task_budget), or one repository in one UTC day (task_budget_daily),
    may spend through the task gateway; a limit left out is no limit."""
    model_config = ConfigDict(extra="forbid")

    tokens: int | None = Field(default=None, ge=0)  # model tokens, in and out
    requests: int | None = Field(default=None, ge=0)
    bytes: int | None = Field(default=None, ge=0)
    cost: float | None = Field(default=None, ge=0)  # estimated, USD (needs [[llm]] prices)


class MonitorConfig(BaseModel):
    """``bzzz monitor``: the monitoring node (the Mesh Visualizer, /api/v1/mesh, /metrics) and
    the bridges that live on its HTTP server (Hive's /enqueue)."""
    model_config = ConfigDict(extra="forbid")

    listen: str = "127.0.0.1:8091"  # the Visualizer, its API and /metrics
    # bearer token of the acting endpoints (the new-task form); without it they are refused
    token_file: Path | None = None
    # read-only bearer token of the page's API (/api/v1/...): needed, and required, when
    # `listen` is beyond loopback; on loopback reads stay open without one
    viewer_token_file: Path | None = None
    # seconds between polls of github.repos for tasks no agent holds yet (0: no polling)
    poll_interval: float = Field(default=5.0, ge=0)
    # an agent not heard from for this long is shown as gone (grey)
    agent_expiry: float = Field(default=20.0, gt=0)
    # Hive-compatible POST /enqueue: "name token" per line; absent: the bridge is off
    enqueue_tokens_file: Path | None = None
    enqueue_repo: str | None = None  # where jobs without a repo go
    enqueue_rate: float = Field(default=1.0, gt=0)  # jobs per second per token, sustained
    enqueue_burst: int = Field(default=20, ge=1)
    # HMAC-SHA256 key of X-Bzzz-Signature-256 on job callbacks
    callback_secret_file: Path | None = None
    callback_retry_for: float = Field(default=86400.0, gt=0)  # seconds a callback is retried
    # networks callbacks may not reach (bzzz/monitor/egress.py): every non-public address by
    # default ("non-public"), loopback, link-local, RFC 1918, fc00::/7, 100.64.0.0/10 and the
    # Docker bridge named too; [] denies nothing
    callback_deny: StrList = Field(default_factory=lambda: list(DEFAULT_DENY))
    # networks callbacks may reach even though callback_deny holds them (a receiver on a
    # private network): CIDR list, it wins over callback_deny
    callback_allow: StrList = Field(default_factory=list)

    @field_validator("callback_deny", "callback_allow")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        parse_networks(value)  # raises naming the bad entry
        return value

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"{value!r} is not host:port")
        return value


class ScheduleConfig(BaseModel):
    """One ``[[schedules]]`` entry: a task issue filed once per cron slot, mesh-wide
    (bzzz/schedule). ``title`` may contain ``{slot}``, the slot's local time."""
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
    # five fields (minute hour day month weekday); a sixth, seconds (croniter's extension),
    # is accepted for tests and short intervals
    cron: str
    timezone: str = "UTC"  # IANA name (zoneinfo)
    repo: str
    title: str = Field(min_length=1, max_length=256)
    body: str | None = Field(default=None, max_length=64 * 1024)
    # a ```bzzz shell block
    command: str | None = Field(default=None, min_length=1, max_length=16 * 1024)
    labels: StrList = Field(default_factory=list)
    priority: Literal["critical", "high", "normal", "low"] = "normal"

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        from .schedule.core import Cron, CronError
        try:
            Cron(value)
        except CronError as exc:
            raise ValueError(str(exc)) from None
        return " ".join(value.split())

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        from .schedule.core import CronError, zone
        try:
            zone(value)
        except CronError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("repo")
    @classmethod
    def _repo(cls, value: str) -> str:
        owner, _, name = value.partition("/")
        if not owner or not name or "/" in name:
            raise ValueError(f"{value!r} is not owner/name")
        return value

    @model_validator(mode="after")
    def _body_or_command(self) -> "ScheduleConfig":
        if self.body is None and self.command is None:
            raise ValueError("a schedule needs a body or a command")
        if self.body is not None and self.command is not None:
            raise ValueError("a schedule takes a body or a command, not both")
        return self


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    node_id: str = Field(default_factory=socket.gethostname, min_length=1, max_length=128)
    data_dir: Path = Path("./data")
    # seconds after its last heartbeat (every third of this) that another agent may take
    # over the data directory's lease (bzzz/datalease.py); keep it above NFS's actimeo
    data_lease_expiry: float = Field(default=15.0, ge=0.3, le=3600)
    listen: StrList = Field(default_factory=lambda: ["/ip4/0.0.0.0/tcp/4001"])
    api_listen: str = "127.0.0.1:8090"
    mdns: bool = True
    bootstrap: StrList = Field(default_factory=list)
    psk_file: Path | None = None
    # None means "detect from the machine"; a list is added to what is detected.
    capabilities: StrList | None = None
    detect_capabilities: bool = True
    ollama_url: str | None = None
    announce_interval: float = Field(default=5.0, gt=0, le=3600)
    max_tasks: int = Field(default=1, ge=0, le=1024)
    exec_timeout: float = Field(default=600.0, gt=0)
    # None: the Guardian's deny rules; a list: only these programs may run (plus the rules)
    guardian_allow: StrList | None = None
    workspace_dir: Path | None = None
    keep_workspaces: bool = False  # leave each task's directories behind (for debugging)
    # a delivery that changes a path matching one of these globs (repository-relative,
    # case-insensitive, `*` crosses `/`) is refused: nothing is pushed, the task fails.
    # GitHub runs a pushed branch's workflows with the repository's secrets.
    delivery_protected_paths: StrList = Field(default_factory=lambda: [".github/workflows/**"])
    # repositories ("owner/name") whose tasks may change protected paths all the same
    delivery_allow_protected: StrList = Field(default_factory=list)
    # the coding-agent CLI of the `agent` executor (and of issues without a bzzz block), run
    # in the sandbox in the checkout; {instructions} is the instructions file (also in
    # $BZZZ_INSTRUCTIONS), e.g. "aider --yes-always --no-auto-commits --message-file {instructions}"
    agent_command: str | None = None
    agent_env: dict[str, str] = Field(default_factory=dict)  # e.g. OLLAMA_API_BASE
    # coding-agent presets instead of agent_command (bzzz/exec/agents/, docs/agents.md):
    # "claude-code", "codex", "aider", "opencode"; several: a task's needs:agent:<name>
    # picks one, else the first. Each talks to an [[llm]] endpoint through the task gateway.
    agent: StrList = Field(default_factory=list)
    agent_model: str | None = None  # a model of an [[llm]] endpoint, for every preset
    agent_models: dict[str, str] = Field(default_factory=dict)  # preset -> its own model
    agent_max_turns: int = Field(default=30, ge=1, le=10_000)  # where the CLI has a limit
    agent_path: StrList = Field(default_factory=list)  # searched for the CLIs before PATH
    # a review round on this node resumes the CLI's session of the task's last round: the
    # sessions kept, at most this much in all (data_dir/agent-sessions; "0": none kept, each
    # round starts afresh), 20 MiB a task and preset, 200 tasks, 14 days
    agent_sessions: str = Field(default="256m", pattern=r"^[0-9]+[kmg]?$")
    # LLM endpoints for the llm executor ([[llm]] in TOML; BZZZ_LLM as a JSON list); with
    # none, Ollama at ollama_url (or localhost:11434) is used when it answers
    llm: list[LLMConfig] = Field(default_factory=list)
    llm_first_token_timeout: float = Field(default=120.0, gt=0)
    # a long llm or agent run keeps one comment updated at most this often (seconds; 0: off)
    progress_interval: float = Field(default=30.0, ge=0)
    # seconds a task no live node can take waits before the mesh says so on the issue (one
    # comment naming what is missing, and the bzzz:waiting label; 0: never)
    waiting_notice: float = Field(default=30.0, ge=0)
    # CI rounds (bzzz/claim/ciround.py): a red head gets this many more rounds on its branch
    # with what failed as feedback; pending checks count as failed after ci_wait seconds; a
    # head with no checks at all is green after ci_settle seconds
    ci_rounds: int = Field(default=2, ge=0)
    ci_wait: float = Field(default=1800.0, gt=0)
    ci_settle: float = Field(default=30.0, ge=0)
    # ask peers for help with a failed task (and hand it over); off: report the failure
    help_requests: bool = True
    # whom a help request goes to first: every peer of the capability table, or only the
    # connected ones (forwarding reaches further); and whether it is also announced on gossip
    help_scope: Literal["table", "connected"] = "table"
    help_wait: float = Field(default=3.0, gt=0, le=60)  # seconds the origin waits for offers
    help_broadcast: bool = True
    # connect to every peer heard of (announcements, DHT), or only to bootstrap/mDNS peers
    dial_discovered: bool = True
    # how many peers' logs each agent follows (replicates and verifies); 0 turns it off
    replicate_logs: int = Field(default=2, ge=0, le=1000)
    # tasks of an agent running as root run as this user (default nobody); "root" opts out
    task_user: str | None = None
    # where tasks run: "auto" (a container engine if one answers, else bubblewrap),
    # "container", "bwrap", or "none" (unconfined: tasks can read what the agent can)
    sandbox: Literal["auto", "container", "bwrap", "none"] = "auto"
    docker_host: str | None = None  # default: DOCKER_HOST, else unix:///var/run/docker.sock
    task_image: str = "debian:bookworm-slim"  # the container executor's default image
    # "gateway": only the node's task gateway, which lets through what task_egress names
    # (docs/gateway.md); "none": loopback only; "host" (or
    # "bridge"): the network as the host has it (bwrap) or the engine's bridge (containers),
    # an explicit opt-out the agent logs
    task_network: Literal["gateway", "host", "bridge", "none"] = "gateway"
    # container tasks: the image of the side container that offers a task its gateway (any
    # image with python3, e.g. the agent's own; default: task_image). Without python3 in it,
    # container tasks get no network at all (the start-up line says so).
    gateway_image: str | None = None
    # container tasks: the image a coding-agent preset (`agent`) runs in, its CLI's
    # installation bind-mounted read-only: it needs what the CLI needs (docs/agents.md;
    # default: task_image)
    agent_image: str | None = None
    # what a task may reach through the gateway: host, *.domain, host:port, @preset
    task_egress: StrList = Field(default_factory=list)
    # the most a repository's own configuration may add to task_egress
    task_egress_max: StrList = Field(default_factory=list)
    task_budget: BudgetConfig = Field(default_factory=BudgetConfig)
    task_budget_daily: BudgetConfig = Field(default_factory=BudgetConfig)

    @field_validator("task_egress", "task_egress_max")
    @classmethod
    def _egress(cls, value: list[str]) -> list[str]:
        parse_all(value)  # raises naming the bad entry
        return value

    task_memory: str = Field(default="2g", pattern=r"^[0-9]+[kmg]?$")
    task_cpus: float = Field(default=1.0, gt=0, le=256)
    task_pids: int = Field(default=512, ge=16, le=1_000_000)
    # the largest file a task may write (bwrap: RLIMIT_FSIZE)
    task_disk: str = Field(default="10g", pattern=r"^[0-9]+[kmg]?$")
    # a repository's own setup (.bzzz/setup.sh, copilot-setup-steps.yml, devcontainer's
    # postCreateCommand; docs/repository-files.md) runs before each task in its sandbox: at
    # most this many seconds for all its steps, and its result is cached per node, at most
    # setup_cache in all (the oldest-used go first; "0": no cache) and setup_cache_entry each
    setup_timeout: float = Field(default=900.0, gt=0)
    setup_cache: str = Field(default="8g", pattern=r"^[0-9]+[kmg]?$")
    setup_cache_entry: str = Field(default="2g", pattern=r"^[0-9]+[kmg]?$")
    # a repository's own check (.bzzz/test.sh, or test = "…" in its .bzzz.toml) after the
    # executor: at most this many seconds a run
    test_timeout: float = Field(default=600.0, gt=0)
    # bwrap tasks get a cgroup each (memory.max, pids.max) under this delegated cgroup v2
    # directory: "auto" (the agent's own cgroup, when delegated), "off", or a path; without
    # one, resource limits stand in (see docs and bzzz/exec/limits.py)
    task_cgroup: str = "auto"
    # the host's path of workspace_dir when the agent itself runs in a container
    task_workspace_host_dir: Path | None = None
    # bearer token for the API's endpoints that act (needed when api_listen is not loopback)
    api_token_file: Path | None = None
    log_level: str = "info"
    log_format: str = Field(default="json", pattern="^(json|text)$")
    github: GitHubConfig = Field(default_factory=GitHubConfig)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    # [[schedules]] in TOML (BZZZ_SCHEDULES as a JSON list): issues filed on a cron
    schedules: list[ScheduleConfig] = Field(default_factory=list)

    @field_validator("delivery_allow_protected")
    @classmethod
    def _allowed_are_owner_name(cls, repos: list[str]) -> list[str]:
        return _owner_names(repos)

    @field_validator("delivery_protected_paths")
    @classmethod
    def _globs_not_empty(cls, globs: list[str]) -> list[str]:
        if any(not g.strip("/ ") for g in globs):
            raise ValueError("a protected path must not be empty")
        return [g.strip().lstrip("/") for g in globs]

    @field_validator("listen", "bootstrap")
    @classmethod
    def _multiaddrs(cls, addrs: list[str]) -> list[str]:
        return [_check_multiaddr(a) for a in addrs]

    @field_validator("listen")
    @classmethod
    def _listen_not_empty(cls, addrs: list[str]) -> list[str]:
        if not addrs:
            raise ValueError("at least one listen address is needed")
        return addrs

    @field_validator("node_id")
    @classmethod
    def _printable(cls, value: str) -> str:
        if not value.isprintable() or value != value.strip():
            raise ValueError("must be printable text without surrounding spaces")
        return value

    @field_validator("api_listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"{value!r} is not host:port")
        return value

    @field_validator("llm", mode="before")
    @classmethod
    def _llm_json(cls, value: Any) -> Any:
        return _json_list(value, "BZZZ_LLM", "url")

    @field_validator("schedules", mode="before")
    @classmethod
    def _schedules_json(cls, value: Any) -> Any:
        return _json_list(value, "BZZZ_SCHEDULES", "name")

    @field_validator("schedules")
    @classmethod
    def _unique_schedules(cls, value: list[ScheduleConfig]) -> list[ScheduleConfig]:
        seen: set[str] = set()
        for s in value:
            if s.name in seen:
                raise ValueError(f"schedule name {s.name!r} is used twice")
            seen.add(s.name)
        return value

    @model_validator(mode="after")
    def _one_kind_of_agent(self) -> "Config":
        if self.agent and self.agent_command:
            raise ValueError("agent (presets) and agent_command: set one of them")
        return self

    @model_validator(mode="after")
    def _schedules_need_a_token(self) -> "Config":
        if self.schedules and self.github.token_file is None:
            raise ValueError("schedules need github.token_file (or GITHUB_TOKEN_FILE)")
        return self

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value.lower() not in {"debug", "info", "warning", "error"}:
            raise ValueError("must be one of debug, info, warning, error")
        return value.lower()

    @property
    def api_host_port(self) -> tuple[str, int]:
        host, _, port = self.api_listen.rpartition(":")
        return host.strip("[]"), int(port)


def _env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    """Turn ``BZZZ_A__B=value`` into ``{"a": {"b": "value"}}``."""
    out: dict[str, Any] = {}
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX):
            continue
        path = key[len(ENV_PREFIX):].lower().split("__")
        if not all(path):
            continue
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        else:
            node[path[-1]] = value
    if "GITHUB_TOKEN_FILE" in env and "token_file" not in out.get("github", {}):
        out.setdefault("github", {})["token_file"] = env["GITHUB_TOKEN_FILE"]
    return out


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def _first_error(exc: ValidationError, env_keys: set[str]) -> str:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"] if not isinstance(p, int)) or "config"
    env_name = ENV_PREFIX + field.upper().replace(".", "__")
    where = f" (from {env_name})" if env_name in env_keys else ""
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown field"
    return f"{field}{where}: {msg}"


def load_config(path: str | os.PathLike[str] | None = None,
                env: Mapping[str, str] | None = None) -> Config:
    """Load and validate the configuration; raise ConfigError with one clear line."""
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config file {path}: not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: not valid TOML ({exc})") from None
        except OSError as exc:
            raise ConfigError(f"config file {path}: {exc.strerror}") from None
    data = _merge(data, _env_overrides(env))
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_first_error(exc, {k for k in env if k.startswith(ENV_PREFIX)})) from None
