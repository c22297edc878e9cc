"""The ``bzzz`` command line (thin: parsing, then a call into the package)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

from . import __version__
from .errors import SetupError

if TYPE_CHECKING:
    import httpx

    from .agent import Agent
    from .config import Config
    from .monitor.node import Monitor

Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class CliError(SetupError):
    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def _load(config_path: str | None) -> Config:
    from .config import ConfigError, load_config

    try:
        return load_config(config_path)
    except ConfigError as exc:
        raise CliError(f"config error: {exc}", 2) from None


def _daemon(args: argparse.Namespace, kind: str) -> int:
    """`bzzz run` (kind "agent") and `bzzz monitor`: build, then run until a signal."""
    import trio

    from . import logs
    from .identity import IdentityError
    from .p2p.pnet import PnetError

    config = _load(args.config)
    logs.setup(config.log_level, config.log_format, config.node_id)
    make: Callable[[Config], Agent | Monitor]
    StartError: type[SetupError]
    if kind == "agent":
        from .agent import Agent as make, AgentError as StartError
    else:
        from .monitor.node import Monitor as make, MonitorError as StartError
    try:
        daemon = make(config)
    except (IdentityError, PnetError, StartError) as exc:
        raise CliError(str(exc), 2) from None
    from .datalease import LeaseError
    try:
        trio.run(daemon.run)
    except StartError as exc:  # e.g. the sandbox asked for cannot work here
        raise CliError(str(exc), 2) from None
    except OSError as exc:
        raise CliError(f"cannot start: {exc.strerror or exc}") from None
    except BaseExceptionGroup as group:  # from a running service: one line, not a traceback
        fatal = group.subgroup(lambda e: isinstance(e, (StartError, LeaseError)))
        if fatal is None:
            raise
        while isinstance(fatal, BaseExceptionGroup):
            fatal = fatal.exceptions[0]
        raise CliError(str(fatal), 2) from None
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    return _daemon(args, "agent")


def cmd_monitor(args: argparse.Namespace) -> int:
    return _daemon(args, "monitor")


def cmd_id(args: argparse.Namespace) -> int:
    from .identity import IdentityError, load_or_create

    data_dir = args.data_dir or os.environ.get("BZZZ_DATA_DIR") or "./data"
    try:
        print(load_or_create(data_dir).peer_id.to_base58())
    except IdentityError as exc:
        raise CliError(str(exc), 2) from None
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    import httpx

    url = args.api
    if url is None:
        host, _, port = os.environ.get("BZZZ_API_LISTEN", "127.0.0.1:8090").rpartition(":")
        url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"
    if "://" not in url:
        url = "http://" + url
    try:
        resp = httpx.get(url.rstrip("/") + "/api/v1/status", timeout=5)
        resp.raise_for_status()
        status = resp.json()
    except httpx.HTTPError as exc:
        raise CliError(f"cannot reach the agent at {url}: {exc}") from None
    except ValueError:
        raise CliError(f"{url} did not answer with JSON") from None
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=True))
        return 0
    print(f"node      {status.get('node_id')}  ({status.get('peer_id')})")
    print(f"version   {status.get('version')}")
    print(f"addrs     {', '.join(status.get('addrs', []))}")
    print(f"offers    {', '.join(status.get('capabilities', []))}")
    for line in preset_lines(status.get("agent_presets") or []):
        print(line)
    peers = status.get("peers", [])
    print(f"peers     {len(peers)}")
    for p in peers:
        load = p.get("load", {})
        print(f"  {p.get('node_id', '?'):20} {p.get('peer_id', '')[:20]}…  "
              f"load {load.get('running', '?')}/{load.get('max', '?')}  "
              f"{', '.join(p.get('capabilities', []))}")
    tasks = status.get("tasks", [])
    print(f"tasks     {len(tasks)}")
    for t in tasks:
        print(f"  {t.get('repo')}#{t.get('issue')}  {t.get('state')}")
    return 0


def preset_lines(presets: list[Any]) -> list[str]:
    """``bzzz status``'s lines about the node's coding-agent presets (its status document's
    ``agent_presets``): CLI version, model and route, or why one cannot run."""
    out = [f"agents    {len(presets)}"] if presets else []
    for p in presets[:32]:
        if not isinstance(p, dict):
            continue
        if p.get("error"):
            out.append(f"  {p.get('preset', '?'):12} not run: {p['error']}")
            continue
        out.append(f"  {p.get('preset', '?'):12} {p.get('version') or 'version not yet known'}"
                   f"  model {p.get('model')} via {p.get('route')}  ({p.get('cli')})")
    return out


def cmd_devhub(args: argparse.Namespace) -> int:
    import signal

    import trio

    from .devhub.server import DevHub
    from .devhub.state import HubError

    seed = None
    if args.seed:
        try:
            with open(args.seed, encoding="utf-8") as fh:
                seed = json.load(fh)
        except OSError as exc:
            raise CliError(f"seed file {args.seed}: {exc.strerror}", 2) from None
        except ValueError as exc:
            raise CliError(f"seed file {args.seed}: not valid JSON ({exc})", 2) from None
    try:
        devhub = DevHub(args.host, args.port, args.state, seed)
    except HubError as exc:
        raise CliError(f"seed file {args.seed}: {exc.message}", 2) from None
    except ValueError as exc:
        raise CliError(str(exc), 2) from None

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            url = await nursery.start(devhub.run)
            print(url, flush=True)
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    break
            nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    except OSError as exc:
        raise CliError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    return 0


def cmd_task_create(args: argparse.Namespace) -> int:
    import httpx

    url, token = _github_access(args)
    _check_task_args(args)
    labels, body = _task_labels(args), _task_body(args)
    client = httpx.Client(base_url=url, timeout=30, headers={
        "Authorization": f"token {token}", "Accept": "application/vnd.github+json"})
    try:
        issue, existing = _file_task(client, args, labels, body)
        line = f"{args.repo}#{issue['number']} {issue.get('html_url', '')}".strip()
        print(line + (" (existing issue of this job)" if existing else ""), flush=True)
        if not args.wait:
            return 0
        return _follow_task(client, args, int(issue["number"]))
    except httpx.HTTPError as exc:
        raise CliError(f"cannot reach {url}: {type(exc).__name__}") from None
    finally:
        client.close()


def _github_access(args: argparse.Namespace) -> tuple[str, str]:
    """The REST API's base URL and the token read from its file."""
    url = (args.url or os.environ.get("BZZZ_GITHUB__URL") or "https://api.github.com").rstrip("/")
    token_file = args.token_file or os.environ.get("GITHUB_TOKEN_FILE") or \
        os.environ.get("BZZZ_GITHUB__TOKEN_FILE")
    if not token_file:
        raise CliError("a token is needed: --token-file or GITHUB_TOKEN_FILE", 2)
    try:
        token = open(token_file, encoding="utf-8").read().strip()
    except OSError as exc:
        raise CliError(f"token file {token_file}: {exc.strerror}", 2) from None
    return url, token


def _check_task_args(args: argparse.Namespace) -> None:
    """Usage errors (exit 2) of ``task create`` before anything is sent."""
    from .claim.task import PRIORITIES
    from .follow import check_job_id

    owner, _, name = args.repo.partition("/")
    if not owner or not name or "/" in name:
        raise CliError(f"--repo {args.repo!r} is not owner/name", 2)
    if args.priority not in PRIORITIES:
        raise CliError(f"--priority must be one of {', '.join(PRIORITIES)}", 2)
    if args.job_id is not None:
        try:
            check_job_id(args.job_id)
        except ValueError as exc:
            raise CliError(str(exc), 2) from None
    if args.timeout is not None and args.timeout <= 0:
        raise CliError("--timeout must be a positive number of seconds", 2)
    if (args.timeout is not None or args.wait_input) and not args.wait:
        raise CliError("--timeout and --wait-input go with --wait", 2)


def _task_labels(args: argparse.Namespace) -> list[str]:
    labels = ["bzzz"]
    if args.priority != "normal":
        labels.append(f"priority:{args.priority}")
    labels += [f"needs:{c.strip()}" for c in (args.needs or "").split(",") if c.strip()]
    return labels


def _task_body(args: argparse.Namespace) -> str:
    """The issue text: the given body, the command's fenced block, the job's marker."""
    from .follow import job_marker

    body = args.body or ""
    if args.command:
        body = (body + "\n\n" if body else "") + f"```bzzz\n{args.command}\n```\n"
    if args.job_id is not None:
        body = body.rstrip("\n") + ("\n\n" if body else "") + job_marker(args.job_id) + "\n"
    return body


def _refused(resp: httpx.Response) -> CliError:
    try:
        message = resp.json().get("message", "")
    except ValueError:
        message = resp.text[:200]
    return CliError(f"GitHub answered {resp.status_code}: {message}")


def _file_task(client: httpx.Client, args: argparse.Namespace, labels: list[str],
               body: str) -> tuple[dict[str, Any], bool]:
    """The job's existing issue (with --job-id), else a new one: the issue, and whether it
    existed."""
    import httpx

    from .follow import find_job

    issue = None
    if args.job_id is not None:
        try:
            issue = find_job(client, args.repo, args.job_id)
        except httpx.HTTPStatusError as exc:
            raise _refused(exc.response) from None
    existing = issue is not None
    if issue is None:
        resp = client.post(f"/repos/{args.repo}/issues",
                           json={"title": args.title, "body": body, "labels": labels})
        if resp.status_code != 201:
            raise _refused(resp)
        issue = resp.json()
    return issue, existing


def _follow_task(client: httpx.Client, args: argparse.Namespace, number: int) -> int:
    """--wait: follow the issue to its end; the exit status."""
    import httpx

    from .follow import Follower

    follower = Follower(client, args.repo, number, interval=args.interval,
                        timeout=args.timeout, wait_input=args.wait_input,
                        say=lambda text: print(text, flush=True),
                        agents=[a.strip() for a in (args.agent_login or "").split(",")
                                if a.strip()])
    try:
        _, status = follower.run()
    except httpx.HTTPStatusError as exc:
        raise _refused(exc.response) from None
    return status


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(agents=args.agents, tasks=args.tasks, exit_after=args.exit)


def cmd_log(args: argparse.Namespace) -> int:
    from .hyperlog.tool import main as log_main

    if args.log_command == "replicate":
        import trio

        from .p2p.logsync import replicate_command
        status: int = trio.run(lambda: replicate_command(
            args.source, args.key, args.dir, follow=args.follow, psk_file=args.psk_file))
        return status

    return log_main(args.log_command, args.dir, getattr(args, "json", False))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bzzz", description="Bzzz: a decentralized task mesh")
    parser.add_argument("--version", action="version", version=f"bzzz {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _add_node_commands(sub)
    _add_task_command(sub)
    _add_log_command(sub)
    _add_demo_command(sub)
    return parser


def _add_node_commands(sub: Subcommands) -> None:
    """The daemons and the commands about one node: run, monitor, id, status, devhub."""
    p = sub.add_parser("run", help="run the agent daemon")
    p.add_argument("--config", help="TOML configuration file")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("monitor", help="the monitoring node: the Mesh Visualizer, the mesh's "
                                       "API and metrics")
    p.add_argument("--config", help="TOML configuration file (the [monitor] section)")
    p.set_defaults(func=cmd_monitor)

    p = sub.add_parser("id", help="print this node's peer id (creates the identity if missing)")
    p.add_argument("--data-dir", help="data directory (default: $BZZZ_DATA_DIR or ./data)")
    p.set_defaults(func=cmd_id)

    p = sub.add_parser("status", help="what a running agent knows")
    p.add_argument("--api", help="agent API URL (default: from $BZZZ_API_LISTEN)")
    p.add_argument("--json", action="store_true", help="print the raw JSON")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("devhub", help="the GitHub-compatible REST server on its own")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port (default: any free port)")
    p.add_argument("--state", help="JSON file the state is saved to and loaded from")
    p.add_argument("--seed", help='JSON {"users": [{"login", "token"}], "repos": '
                                  '[{"full_name", "push": [...], "read": [...]}]}')
    p.set_defaults(func=cmd_devhub)


def _add_task_command(sub: Subcommands) -> None:
    p = sub.add_parser("task", help="tasks on GitHub")
    task_sub = p.add_subparsers(dest="task_command", required=True, metavar="ACTION")
    p = task_sub.add_parser("create", help="file a task issue, as N8N or a person would")
    p.add_argument("--repo", required=True, help="owner/name")
    p.add_argument("--title", required=True)
    p.add_argument("--body", help="issue text")
    p.add_argument("--command", help="shell command, put in a ```bzzz fenced block")
    p.add_argument("--priority", default="normal", help="critical, high, normal or low")
    p.add_argument("--needs", help="capabilities the task needs, comma separated")
    p.add_argument("--url", help="REST API base URL (default $BZZZ_GITHUB__URL or GitHub)")
    p.add_argument("--token-file", help="file holding the token (default $GITHUB_TOKEN_FILE)")
    p.add_argument("--job-id", help="idempotency key: a hidden marker in the issue; the same id "
                                    "again gives the existing issue instead of a new one")
    p.add_argument("--wait", action="store_true",
                   help="follow the task to its end; exit 0 done, 1 failed, 2 cancelled or "
                        "closed unmerged, 3 needs input, 124 timeout")
    p.add_argument("--agent-login", metavar="LOGIN,...",
                   help="with --wait: the agents' GitHub logins whose marker comments count "
                        "(besides the logins assigned to the issue)")
    p.add_argument("--wait-input", action="store_true",
                   help="with --wait: keep waiting when the task asks a question")
    p.add_argument("--timeout", type=float, help="with --wait: give up after this many seconds")
    p.add_argument("--interval", type=float, default=2.0, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_task_create)


def _add_log_command(sub: Subcommands) -> None:
    p = sub.add_parser("log", help="signed logs on disk: show, verify, export, append")
    log_sub = p.add_subparsers(dest="log_command", required=True, metavar="ACTION")
    q = log_sub.add_parser("show", help="the log's head and entries")
    q.add_argument("dir", help="log directory (an agent's is DATA_DIR/log)")
    q.add_argument("--json", action="store_true", help="one JSON object")
    q = log_sub.add_parser("verify", help="check every block and signature; names the first bad block")
    q.add_argument("dir")
    q = log_sub.add_parser("export", help="JSON that Hypercore's own code can verify")
    q.add_argument("dir")
    q.add_argument("--json", action="store_true", help="JSON (the only format)")
    q = log_sub.add_parser("append", help="each line of standard input becomes one block")
    q.add_argument("dir")
    q = log_sub.add_parser("replicate", help="copy a log from any peer that holds it, verified")
    q.add_argument("--from", dest="source", required=True,
                   help="the peer: a multiaddr ending in /p2p/<peer id>")
    q.add_argument("--key", required=True, help="the log key (64 hex digits)")
    q.add_argument("--follow", action="store_true", help="keep following new entries")
    q.add_argument("--psk-file", help="private network key, if the mesh uses one")
    q.add_argument("dir", help="where the copy goes (created if missing; resumable)")
    for q in log_sub.choices.values():
        q.set_defaults(func=cmd_log)


def _add_demo_command(sub: Subcommands) -> None:
    p = sub.add_parser("demo", help="a local mesh of agents on this machine")
    p.add_argument("--agents", type=int, default=3, help="number of agents (default 3)")
    p.add_argument("--tasks", type=int, default=15, help="sample tasks (with the task issue)")
    p.add_argument("--exit", action="store_true", help="exit after the summary")
    p.set_defaults(func=cmd_demo)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status: int = args.func(args)
        return status
    except CliError as exc:
        print(f"bzzz: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
