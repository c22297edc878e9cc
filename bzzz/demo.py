"""``bzzz demo``: devhub, a mesh of agents and sample tasks, all on this machine.

devhub (the GitHub-compatible server) runs on loopback with a demo repository. Each agent is
a real ``bzzz run`` process with its own data directory, API port and capabilities; they
share one bot login (the claim ref, not the assignee, tells them apart) and know each
other's addresses as bootstrap peers (mDNS on loopback is not meaningful). Sample task
issues are filed the way N8N would; the demo follows them on devhub as the agents claim,
run and report them, then prints who ran what, duplicate claims and API requests used.
No GitHub account and no network are needed.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from .devhub import DevHubThread
from .devhub.ciapp import CiApp, forbid
from .identity import load_or_create

REPO = "demo/tasks"
BOT_TOKEN = "demo-bot-token"
OWNER_TOKEN = "demo-owner-token"
SEED = {"users": [{"login": "demo", "token": OWNER_TOKEN}, {"login": "bzzz-bot", "token": BOT_TOKEN}],
        "repos": [{"full_name": REPO, "push": ["bzzz-bot"]}]}
SAMPLE_TASKS = [
    # title, command, priority, needs
    ("Fix the typo in the README", "sed -i 's/teh mesh/the mesh/' README.md\n"
     "echo 'Fixed a typo in the README.' > \"$BZZZ_OUTPUT/summary.md\"", "high", []),
    ("Add the 0.2.0 changelog entry",
     "printf '\\n## 0.2.0\\n\\n- Tasks end as pull requests.\\n' >> CHANGELOG.md\n"
     "echo 'Added the 0.2.0 entry to CHANGELOG.md.' > \"$BZZZ_OUTPUT/summary.md\"", "normal", []),
    ("Ignore Python caches", "printf '__pycache__/\\n*.pyc\\n' > .gitignore", "low", []),
    ("Run the unit tests", "python3 -c \"print('42 tests passed')\"", "high", ["python"]),
    ("Build the container image", "echo 'built image demo:latest'", "normal", ["docker"]),
    ("Summarise the changelog", "echo 'summary: 3 features, 2 fixes'", "normal", ["ollama"]),
    ("Hotfix smoke check", "echo 'hotfix ok'", "critical", []),
    # demo-ci (the demo's CI, bzzz/devhub/ciapp.py) fails the first push for its FIXME; the
    # agents' CI round reads the annotation in $BZZZ_FEEDBACK and fixes it; ready when green
    ("Write the release notes",
     "if grep -q 'FIXME left in' \"$BZZZ_FEEDBACK\"; then\n"
     "  printf '# Release notes\\n\\n0.2.0: tasks end as pull requests that pass CI.\\n'"
     " > RELEASE_NOTES.md\n"
     "  echo 'Finished the release notes (CI found a FIXME).' > \"$BZZZ_OUTPUT/summary.md\"\n"
     "else\n"
     "  printf '# Release notes\\n\\nFIXME: say what changed.\\n' > RELEASE_NOTES.md\n"
     "  echo 'Drafted the release notes.' > \"$BZZZ_OUTPUT/summary.md\"\n"
     "fi", "low", []),
    ("Flaky integration test", "echo 'assertion failed' >&2; exit 3", "normal", []),
    ("Clean the build machine", "sudo rm -rf /var/cache", "high", []),
    ("Count the sources", "ls -a | wc -l", "normal", []),
    ("Report disk usage", "du -sh .", "low", []),
    ("Stamp the release time", "date -u +%Y-%m-%dT%H:%M:%SZ", "normal", []),
    ("Compute the checksum", "python3 -c 'print(sum(range(1000)))'", "normal", ["python"]),
    ("Record the git version", "git --version || echo 'git missing'", "low", ["git"]),
]
# a block's info string beyond the executor, by task
BLOCK_INFO = {"Write the release notes": "pr=ready-when-green"}
CI_TASK = "Write the release notes"
FINAL = {"bzzz:review": "pull request", "bzzz:done": "done", "bzzz:failed": "failed",
         "bzzz:needs-input": "needs input"}
DEMO_FILES = {
    "README.md": "# demo/tasks\n\nA repository for the Bzzz demo: teh mesh changes it through "
                 "pull requests.\n",
    "CHANGELOG.md": "# Changelog\n\n## 0.1.0\n\n- First release.\n",
    "src/hello.py": "def hello(name: str) -> str:\n    return f\"hello, {name}\"\n",
}

CAPABILITY_SETS = [
    ["shell", "python"],
    ["shell", "docker", "git"],
    ["shell", "ollama:llama3"],
    ["shell", "python", "gpu"],
    ["shell", "node"],
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _status(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/status", timeout=1) as r:
            status: dict[str, Any] = json.loads(r.read())
            return status
    except (OSError, ValueError):
        return None


class _Process:
    """A ``bzzz`` process the demo started, stopped as Docker would (SIGTERM, then kill)."""

    proc: subprocess.Popen[bytes] | None = None
    _asked = False

    def ask_to_stop(self) -> None:
        """SIGTERM, once (a second one would cut the leaving process short)."""
        if self.proc is not None and self.proc.poll() is None and not self._asked:
            self.proc.send_signal(signal.SIGTERM)
            self._asked = True

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.ask_to_stop()
        try:
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


class _Agent(_Process):
    def __init__(self, index: int, root: Path) -> None:
        self.name = f"agent-{index + 1}"
        self.data_dir = root / self.name
        self.peer_id = load_or_create(self.data_dir).peer_id.to_base58()
        self.p2p_port = _free_port()
        self.api_port = _free_port()
        self.capabilities = CAPABILITY_SETS[index % len(CAPABILITY_SETS)]
        self.addr = f"/ip4/127.0.0.1/tcp/{self.p2p_port}/p2p/{self.peer_id}"
        self.log_path = root / f"{self.name}.log"
        self.proc = None
        self.seen: set[str] = set()

    def start(self, bootstrap: list[str], github: dict[str, str]) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BZZZ_")}
        env.update({
            "BZZZ_NODE_ID": self.name, "BZZZ_DATA_DIR": str(self.data_dir),
            "BZZZ_LISTEN": f"/ip4/127.0.0.1/tcp/{self.p2p_port}",
            "BZZZ_API_LISTEN": f"127.0.0.1:{self.api_port}", "BZZZ_MDNS": "off",
            "BZZZ_BOOTSTRAP": ",".join(b for b in bootstrap if b != self.addr),
            "BZZZ_CAPABILITIES": ",".join(self.capabilities),
            "BZZZ_DETECT_CAPABILITIES": "off", "BZZZ_LOG_FORMAT": "text",
            "BZZZ_MAX_TASKS": "2", **github,
        })
        if "BZZZ_WORKSPACE_DIR" in github:
            env["BZZZ_WORKSPACE_DIR"] = str(Path(github["BZZZ_WORKSPACE_DIR"]) / self.name)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "bzzz", "run"], env=env,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)


class _Monitor(_Process):
    """`bzzz monitor` beside the agents: the Mesh Visualizer of the demo's mesh."""

    def __init__(self, root: Path) -> None:
        self.data_dir = root / "monitor"
        self.peer_id = load_or_create(self.data_dir).peer_id.to_base58()
        self.p2p_port, self.http_port = _free_port(), _free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.log_path = root / "monitor.log"
        self.token_path = root / "monitor-token"
        self.token_path.write_text(secrets.token_urlsafe(24) + "\n")
        self.token_path.chmod(0o600)
        self.proc = None

    def start(self, bootstrap: list[str], github: dict[str, str]) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BZZZ_")}
        env.update({
            "BZZZ_NODE_ID": "monitor", "BZZZ_DATA_DIR": str(self.data_dir),
            "BZZZ_LISTEN": f"/ip4/127.0.0.1/tcp/{self.p2p_port}", "BZZZ_MDNS": "off",
            "BZZZ_BOOTSTRAP": ",".join(bootstrap), "BZZZ_LOG_FORMAT": "text",
            "BZZZ_MONITOR__LISTEN": f"127.0.0.1:{self.http_port}",
            "BZZZ_MONITOR__TOKEN_FILE": str(self.token_path),
            "BZZZ_MONITOR__POLL_INTERVAL": "1",
            **{k: v for k, v in github.items() if k in (
                "BZZZ_GITHUB__URL", "BZZZ_GITHUB__REPOS", "GITHUB_TOKEN_FILE")}})
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "bzzz", "monitor"], env=env,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)

    def counts(self) -> dict[str, Any] | None:
        import httpx
        try:
            reply = httpx.get(f"{self.url}/api/v1/mesh", timeout=5)
            counts: dict[str, Any] = reply.json()["counts"]
            return counts
        except (httpx.HTTPError, ValueError, KeyError):
            return None


def _file_tasks(hub_url: str, count: int) -> dict[int, tuple[str, str]]:
    import httpx

    filed: dict[int, tuple[str, str]] = {}
    with httpx.Client(base_url=hub_url, headers={"Authorization": f"token {OWNER_TOKEN}"}) as c:
        for i in range(count):
            title, command, priority, needs = SAMPLE_TASKS[i % len(SAMPLE_TASKS)]
            info = BLOCK_INFO.get(title, "")
            if i >= len(SAMPLE_TASKS):
                title = f"{title} ({i // len(SAMPLE_TASKS) + 1})"
            labels = ["bzzz"] + ([f"priority:{priority}"] if priority != "normal" else [])
            labels += [f"needs:{n}" for n in needs]
            doc = c.post(f"/repos/{REPO}/issues", json={
                "title": title, "labels": labels,
                "body": f"Filed by the demo.\n\n```bzzz{' ' + info if info else ''}\n"
                        f"{command}\n```\n"}).json()
            filed[doc["number"]] = (title, priority)
    return filed


def _task_states(hub_url: str) -> dict[int, dict[str, Any]]:
    import httpx

    out: dict[int, dict[str, Any]] = {}
    with httpx.Client(base_url=hub_url, headers={"Authorization": f"token {OWNER_TOKEN}"}) as c:
        issues = c.get(f"/repos/{REPO}/issues", params={"state": "all", "per_page": 100}).json()
        for issue in issues:
            names = {x["name"] for x in issue["labels"]}
            final = next((FINAL[n] for n in FINAL if n in names), None)
            out[issue["number"]] = {"claimed": "bzzz:claimed" in names, "final": final,
                                    "comments": issue["comments"]}
    return out


def _comments(hub_url: str, number: int) -> list[str]:
    import httpx

    with httpx.Client(base_url=hub_url, headers={"Authorization": f"token {OWNER_TOKEN}"}) as c:
        return [x["body"] for x in c.get(f"/repos/{REPO}/issues/{number}/comments").json()]


def _claimers(hub_url: str, number: int) -> list[str]:
    return [b.split("**")[1] for b in _comments(hub_url, number) if "<!-- bzzz:claim:" in b]


def _claim_counts(hub_url: str, number: int) -> tuple[int, int]:
    """(duplicate claims, handovers): a claim while another attempt still held the task (a
    helper taking a task handed to it is a new claim after the handover, and a new round
    after a result, e.g. a CI round, a new claim after that result: neither is a second
    holder)."""
    duplicates = handovers = 0
    held = False
    for b in _comments(hub_url, number):
        if "<!-- bzzz:claim:" in b:
            duplicates += held
            held = True
        elif "<!-- bzzz:handover:" in b or "<!-- bzzz:result:" in b:
            handovers += "<!-- bzzz:handover:" in b
            held = False
    return duplicates, handovers


def _seed_repository(hub_url: str) -> None:
    """The demo repository's files, pushed over smart HTTP as a person would."""
    from .repo.git import git_env
    with tempfile.TemporaryDirectory(prefix="bzzz-demo-repo-") as tmp:
        for name, text in DEMO_FILES.items():
            (Path(tmp) / name).parent.mkdir(parents=True, exist_ok=True)
            (Path(tmp) / name).write_text(text)
        env = {**git_env(), "GIT_AUTHOR_NAME": "demo", "GIT_AUTHOR_EMAIL": "demo@example.invalid",
               "GIT_COMMITTER_NAME": "demo", "GIT_COMMITTER_EMAIL": "demo@example.invalid"}
        for args in (["init", "-q", "-b", "main"], ["add", "-A"],
                     ["commit", "-q", "-m", "The demo repository"]):
            subprocess.run(["git", *args], cwd=tmp, env=env, check=True, capture_output=True)
        subprocess.run(["git", "push", "-q", "--force", f"{hub_url}/{REPO}.git", "main:main"],
                       cwd=tmp, env=git_env(token=OWNER_TOKEN), check=True, capture_output=True)


def _pull_requests(hub_url: str) -> list[dict[str, Any]]:
    import httpx

    with httpx.Client(base_url=hub_url, headers={"Authorization": f"token {OWNER_TOKEN}"}) as c:
        prs: list[dict[str, Any]] = c.get(f"/repos/{REPO}/pulls",
                                          params={"state": "all", "per_page": 100}).json()
        return prs


def run_demo(agents: int = 3, tasks: int = 15, exit_after: bool = False,
             out: TextIO = sys.stdout, timeout: float = 120.0) -> int:
    if not 1 <= agents <= 32:
        print("bzzz: --agents must be between 1 and 32", file=sys.stderr)
        return 2
    if not 0 <= tasks <= 100:
        print("bzzz: --tasks must be between 0 and 100", file=sys.stderr)
        return 2
    with DevHubThread(seed=SEED) as hub:
        return _run(hub, agents, tasks, exit_after, out, timeout)


def _demo_sandbox() -> str:
    """bubblewrap where it works (the demo needs no container engine or image); else the
    demo's own sample tasks run unconfined, and the demo says so."""
    if shutil.which("bwrap") is None:
        return "none"
    probe = subprocess.run(["bwrap", "--ro-bind", "/", "/", "--unshare-all", "true"],
                           capture_output=True, timeout=10)
    return "bwrap" if probe.returncode == 0 else "none"


def _run(hub: DevHubThread, agents: int, tasks: int, exit_after: bool, out: TextIO,
         timeout: float) -> int:
    say: Callable[[str], None] = lambda text: print(text, file=out, flush=True)  # noqa: E731
    root = Path(tempfile.mkdtemp(prefix="bzzz-demo-"))
    (root / "token").write_text(BOT_TOKEN + "\n")
    # tasks of agents started as root run as an unprivileged user (exec/shell.py), who
    # must reach the workspaces but never the data (keys, token): a separate directory
    work = Path(tempfile.mkdtemp(prefix="bzzz-demo-work-"))
    work.chmod(0o755)
    github = _agent_env(hub.url, root, work)
    mesh = [_Agent(i, root) for i in range(agents)]
    names = {a.peer_id: a.name for a in mesh}
    monitor = _Monitor(root)
    say(f"Bzzz demo: the Mesh Visualizer at {monitor.url}/ (its new-task form takes the "
        f"token in {monitor.token_path})")
    say(f"  devhub at {hub.url}, repository {REPO}, {agents} agents (data in {root})")
    if github["BZZZ_SANDBOX"] == "none":
        say("  (bubblewrap is not installed, so the demo's own sample tasks run without a "
            "sandbox; install it, e.g. apt-get install bubblewrap, to see them sandboxed)")
    t0 = time.monotonic()
    stamp: Callable[[], str] = lambda: f"[{time.monotonic() - t0:5.2f}s]"  # noqa: E731
    stack = contextlib.ExitStack()
    try:
        bootstrap = [a.addr for a in mesh]
        monitor.start(bootstrap, github)
        for a in mesh:
            a.start(bootstrap, github)
            say(f"  started {a.name:9} {a.peer_id[:20]}…  offers {', '.join(a.capabilities)}")
        if not _mesh_formed(mesh, names, say, stamp, t0, timeout, root):
            return 1
        say(f"\nMesh formed in {time.monotonic() - t0:.2f} s: every agent sees the other "
            f"{agents - 1}.")
        _seed_repository(hub.url)
        ci = CiApp(hub.url, REPO, "demo", forbid("FIXME"), name="demo-ci", interval=0.3)
        stack.enter_context(ci)
        say("  demo-ci, the demo's own CI (a GitHub App on devhub), checks every pull "
            "request's head and fails one that still says FIXME")
        filed = _file_tasks(hub.url, tasks) if tasks else {}
        if filed:
            say(f"\nFiled {len(filed)} task issues in {REPO} (as N8N or a person would):")
            for n, (title, prio) in filed.items():
                say(f"  #{n:<3} {title} [{prio}]")
            say("")
        order = _follow_tasks(hub.url, filed, say, stamp, timeout)
        if any(title == CI_TASK for title, _ in filed.values()):
            _follow_ci(hub.url, ci, say, stamp, timeout)
        if filed and not _summarize(hub, monitor, filed, order, say, root):
            return 1
        if exit_after:
            return 0
        say(f"\nRunning; the Mesh Visualizer: {monitor.url}/ ; devhub: {hub.url}/repos/{REPO}/issues . "
            "`bzzz status --api 127.0.0.1:PORT` shows an agent. Ctrl-C stops.")
        while all(a.proc is not None and a.proc.poll() is None for a in mesh):
            time.sleep(0.5)
        return 1
    except KeyboardInterrupt:
        say("\nstopping")
        return 0
    finally:
        stack.close()
        for p in (*mesh, monitor):  # all leave together: each takes most of a second
            p.ask_to_stop()
        codes = [a.stop() for a in mesh]
        monitor.stop()
        if all(c == 0 for c in codes):
            shutil.rmtree(root, ignore_errors=True)
        else:
            say(f"  an agent did not stop cleanly ({codes}); logs kept in {root}")


def _agent_env(hub_url: str, root: Path, work: Path) -> dict[str, str]:
    """The environment the demo's agents and monitor start with: devhub, the bot's token,
    quick polling, the workspaces and the sandbox."""
    return {"BZZZ_GITHUB__URL": hub_url, "BZZZ_GITHUB__REPOS": REPO,
            "GITHUB_TOKEN_FILE": str(root / "token"), "BZZZ_GITHUB__POLL_INTERVAL": "0.5",
            "BZZZ_GITHUB__WRITE_INTERVAL": "0", "BZZZ_GITHUB__LEASE": "30",
            "BZZZ_WORKSPACE_DIR": str(work), "BZZZ_SANDBOX": _demo_sandbox(),
            # demo-ci reports within a second: a head it passed need not wait 30 s more
            "BZZZ_CI_SETTLE": "2"}


def _mesh_formed(mesh: list[_Agent], names: dict[str, str], say: Callable[[str], None],
                 stamp: Callable[[], str], t0: float, timeout: float, root: Path) -> bool:
    """Wait until every agent is up and sees every other, telling each step; False (told)
    when an agent exits or the mesh does not form within ``timeout`` of ``t0``."""
    agents = len(mesh)
    healthy: set[str] = set()
    while True:
        for a in mesh:
            if a.proc is not None and a.proc.poll() is not None:
                say(f"  {a.name} exited with status {a.proc.returncode}; its log:")
                say(a.log_path.read_text(errors="replace")[-2000:])
                return False
            status = _status(a.api_port)
            if status is None:
                continue
            if a.name not in healthy:
                healthy.add(a.name)
                say(f"  {stamp()} {a.name} is up: "
                    f"http://127.0.0.1:{a.api_port}/api/v1/status")
            for peer in status["peers"]:
                if peer["peer_id"] not in a.seen:
                    a.seen.add(peer["peer_id"])
                    say(f"  {stamp()} {a.name} sees "
                        f"{names.get(peer['peer_id'], peer['node_id'])} "
                        f"({', '.join(peer['capabilities'])})")
        if all(len(a.seen & names.keys()) == agents - 1 for a in mesh) \
                and len(healthy) == agents:
            return True
        if time.monotonic() - t0 > timeout:
            say("  the mesh did not form in time; logs are in " + str(root))
            return False
        time.sleep(0.1)


def _follow_tasks(hub_url: str, filed: dict[int, tuple[str, str]], say: Callable[[str], None],
                  stamp: Callable[[], str], timeout: float) -> list[tuple[int, str, str]]:
    """Tell each filed task's claim and end as devhub shows them, until all have ended or
    ``timeout`` passed: the ended ones, (number, agent, result), in the order they ended."""
    shown: dict[int, str] = {}
    order: list[tuple[int, str, str]] = []
    deadline = time.monotonic() + timeout
    while filed and time.monotonic() < deadline:
        for n, st in _task_states(hub_url).items():
            if n not in filed:
                continue
            if st["final"] and shown.get(n) != "final":
                who = (_claimers(hub_url, n) or ["?"])[-1]
                shown[n] = "final"
                order.append((n, who, st["final"]))
                say(f"  {stamp()} #{n:<3} {filed[n][0]}: {st['final']} ({who})")
            elif st["claimed"] and n not in shown:
                who = (_claimers(hub_url, n) or ["?"])[-1]
                shown[n] = "claimed"
                say(f"  {stamp()} #{n:<3} {filed[n][0]}: claimed by {who}")
        if len(order) == len(filed):
            break
        time.sleep(0.3)
    return order


def _follow_ci(hub_url: str, ci: CiApp, say: Callable[[str], None], stamp: Callable[[], str],
               timeout: float) -> bool:
    """Tell demo-ci's verdicts as they come, until a pull request it failed passes and is
    ready for review (the agents' CI round), or ``timeout``; whether it did."""
    import httpx

    shown, failed = 0, set()
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=hub_url, headers={"Authorization": f"token {OWNER_TOKEN}"},
                      timeout=30) as c:
        while time.monotonic() < deadline:
            for pr, sha, conclusion, title in ci.events[shown:]:
                shown += 1
                if conclusion != "success":
                    failed.add(pr)
                    say(f"  {stamp()} demo-ci: pull request #{pr} at {sha[:7]} failed "
                        f"({title}): the agents start a CI round with its annotations")
                elif pr in failed:
                    say(f"  {stamp()} demo-ci: pull request #{pr} at {sha[:7]} passed")
            for pr in sorted(failed):
                if any(p == pr and k == "success" for p, _, k, _ in ci.events) and \
                        not c.get(f"/repos/{REPO}/pulls/{pr}").json().get("draft"):
                    say(f"  {stamp()} pull request #{pr} is green and ready for review "
                        "(pr=ready-when-green)")
                    return True
            time.sleep(0.3)
    say("  demo-ci's round did not finish in time")
    return False


def _summarize(hub: DevHubThread, monitor: _Monitor, filed: dict[int, tuple[str, str]],
               order: list[tuple[int, str, str]], say: Callable[[str], None],
               root: Path) -> bool:
    """The run's summary: results, pull requests, duplicate claims, handovers, the
    monitor's counts, API requests; False (told) when not every task finished."""
    counts = [_claim_counts(hub.url, n) for n in filed]
    duplicates = sum(d for d, _ in counts)
    handed = sum(h for _, h in counts)
    stats = hub.app.stats
    bot_requests = sum(v for (login, _, _), v in stats.items() if login == "bzzz-bot")
    say(f"\nSummary: {len(order)} of {len(filed)} tasks finished "
        f"({sum(1 for o in order if o[2] == 'pull request')} as pull requests, "
        f"{sum(1 for o in order if o[2] == 'done')} done, "
        f"{sum(1 for o in order if o[2] == 'failed')} failed).")
    say(f"  {'order':>5}  {'task':42} {'agent':10} result")
    for i, (n, who, result) in enumerate(order, 1):
        say(f"  {i:>5}  #{n:<3} {filed[n][0][:37]:37} {who:10} {result}")
    prs = _pull_requests(hub.url)
    if prs:
        say("  pull requests opened (draft, each with 'Fixes #n'):")
        for pr in sorted(prs, key=lambda p: p["number"]):
            say(f"    #{pr['number']:<3} {pr['title'][:40]:40} {pr['head']['ref']}")
    say(f"  duplicate claims: {duplicates}")
    say(f"  handed over to a helper after a failure: {handed}")
    view = monitor.counts()
    if view is not None:
        say("  the monitor's view: " + ", ".join(
            f"{v} {k.replace('_', ' ')}" for k, v in view.items() if v))
    say(f"  API requests used by the agents: {bot_requests} "
        f"({bot_requests / max(1, len(order)):.1f} per task, polling included)")
    if len(order) != len(filed):
        say("  not every task finished in time; logs are in " + str(root))
        return False
    return True
