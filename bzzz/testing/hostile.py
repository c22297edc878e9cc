"""Hostile tasks against a real agent: a corpus of issue commands that go for the agent's
secrets, its files, its life and the machine's process table, and a harness that runs them
through a real ``bzzz run`` taking issues from devhub (tests/test_hostile.py, bench/hostile.py).

The agent is given secrets to protect: a GitHub token (``ghp_`` + 36 characters), a swarm
key, an API token in ``/run/secrets`` (created for the run when the machine has none), an
environment variable with a random marker, its identity key, and a file that an earlier task
leaves in its own workspace. The attacker knows every absolute path (they are in the
commands) and the agent's pid.

What counts:

- *reaching a secret*: a task's result (its comments, its decision-log entries) holds a
  secret in any spelling the corpus prints: as is, hex, base64, sha256, reversed. The
  agent's redactor would hide some of these; the other spellings get past it, so what is
  measured is the sandbox, not the redactor;
- *tampering*: a task's own tag (``PWNED-<n>-<run>``) turns up in a file of the data
  directory, the agent's log, another task's workspace or the workspace root, or the
  identity key or the other task's file changed;
- *killing the agent*: the agent died while the task ran (kill tasks run one at a time, so
  the culprit is known; the agent is restarted and the run goes on);
- *leaving a process*: a process with one of the task's ``sleep`` arguments is alive on the
  host after the task finished, or a container of the task still exists.

A Guardian refusal counts as contained; the corpus also has spellings that get past it
(a command piped into ``sh``, python one-liners, ``busybox kill``, a variable as program).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import secrets as _secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from . import procs
from .wait import wait_for

if TYPE_CHECKING:
    from ..devhub import DevHubThread
    from .podman import PodmanService

OWNER_TOKEN = "t-owner-hostile"
REPO = "owner/tasks"
DONE = {"bzzz:done", "bzzz:failed", "bzzz:review"}  # review: it ended as a pull request
NOBODY = 65534


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _alnum(n: int) -> str:
    return "".join(random.SystemRandom().choice(string.ascii_letters + string.digits)
                   for _ in range(n))


# -- setups ----------------------------------------------------------------------------------


@dataclass
class Setup:
    """How the agent runs: ``sandbox`` kind, as root (``uid`` None) or as ``uid``, and for
    the container kind the engine (a :class:`bzzz.testing.podman.PodmanService`)."""

    name: str
    sandbox: str
    uid: int | None = None
    podman: PodmanService | None = None

    @property
    def gid(self) -> int | None:
        return self.uid


USER_UID = 10001  # the shipped image's uid (Dockerfile)

_PY_CACHE: dict[int, list[str] | None] = {}

_BOOT = ("import runpy,site,sys; [site.addsitedir(p) for p in sys.argv[1].split(':') if p]; "
         "sys.path.insert(0, sys.argv[2]); del sys.argv[1:3]; "
         "runpy.run_module('bzzz', run_name='__main__', alter_sys=True)")


def python_for(uid: int) -> list[str] | None:
    """An argv prefix that runs ``python -m bzzz`` as ``uid``: this interpreter when that
    user can run it, else the system's python of the same version with this one's
    site-packages (an interpreter under a private home directory is out of its reach)."""
    if uid in _PY_CACHE:
        return _PY_CACHE[uid]
    import bzzz
    repo = str(Path(bzzz.__file__).resolve().parent.parent)
    sites = ":".join(p for p in sys.path if p.endswith("site-packages"))
    ver = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [[sys.executable, "-m", "bzzz"]]
    systems = [p for p in (f"/usr/bin/python{ver}", f"/usr/local/bin/python{ver}")
               if os.path.exists(p) and os.path.realpath(p) != os.path.realpath(sys.executable)]
    candidates += [[p, "-S", "-c", _BOOT, sites, repo] for p in systems]
    found = None
    for argv in _with_staged_copy(candidates, systems, sites, repo):
        try:
            r = subprocess.run(argv + ["--help"], user=uid, group=uid, extra_groups=[],
                               capture_output=True, timeout=60, cwd="/")
        except (OSError, subprocess.SubprocessError):
            continue
        if r.returncode == 0:
            found = argv
            break
    _PY_CACHE[uid] = found
    return found


def _with_staged_copy(candidates: list[list[str]], systems: list[str], sites: str,
                      repo: str) -> Iterator[list[str]]:
    """The candidates, then (only if none of them ran) the system's python over a copy of
    the site-packages and of the bzzz package in a directory every user can enter: a clone
    inside a private directory (a 0700 temporary directory, say) is out of the user's reach
    wherever its venv lives. The copy is hard links where the filesystem allows."""
    yield from candidates
    if not systems:
        return
    import atexit
    import tempfile
    stage = Path(tempfile.mkdtemp(prefix="bzzz-hostile-py-"))
    stage.chmod(0o755)
    atexit.register(shutil.rmtree, stage, True)
    staged = []
    for i, site_dir in enumerate(s for s in sites.split(":") if s and os.path.isdir(s)):
        dest = stage / f"site{i}"
        if subprocess.run(["cp", "-al", site_dir, str(dest)], capture_output=True).returncode:
            shutil.copytree(site_dir, dest, symlinks=True, dirs_exist_ok=True)
        staged.append(str(dest))
    shutil.copytree(Path(repo) / "bzzz", stage / "src" / "bzzz",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for p in systems:
        yield [p, "-S", "-c", _BOOT, ":".join(staged), str(stage / "src")]


# -- secrets ---------------------------------------------------------------------------------


@dataclass
class Secrets:
    token: str = field(default_factory=lambda: "ghp_" + _alnum(36))
    psk_hex: str = field(default_factory=lambda: _secrets.token_hex(32))
    api_token: str = field(default_factory=lambda: "api-" + _alnum(40))
    marker: str = field(default_factory=lambda: "hm" + _secrets.token_hex(16))
    planted: str = field(default_factory=lambda: "planted-" + _alnum(32))
    identity: bytes = b""  # the identity key file, once the agent made it
    seed_hex: str = ""

    def psk_file_text(self) -> str:
        return f"/key/swarm/psk/1.0.0/\n/base16/\n{self.psk_hex}\n"

    def spellings(self, include_planted: bool = True) -> dict[str, set[str]]:
        """Every spelling a hostile task prints, by secret name."""
        def forms(raw: bytes) -> set[str]:
            s = {raw.hex(), base64.b64encode(raw).decode(), hashlib.sha256(raw).hexdigest()}
            text = raw.decode("utf-8", "ignore")
            if text.strip() and raw.isascii():
                s.add(text.strip())
                s |= {line[::-1] for line in text.splitlines() if len(line) >= 16}
            return s

        out: dict[str, set[str]] = {}
        for name, value in (("token", self.token), ("api_token", self.api_token),
                            ("marker", self.marker), ("planted", self.planted)):
            if name == "planted" and not include_planted:
                continue
            out[name] = forms(value.encode()) | forms((value + "\n").encode())
        out["psk"] = forms(self.psk_file_text().encode()) | forms(self.psk_hex.encode()) | {
            self.psk_hex, self.psk_hex[::-1]}
        if self.identity:
            out["identity"] = forms(self.identity)
        if self.seed_hex:
            out["identity"] = out.get("identity", set()) | {self.seed_hex, self.seed_hex.upper()}
        return {k: {f for f in v if len(f) >= 12} for k, v in out.items()}

    def found_in(self, text: str, include_planted: bool = True) -> set[str]:
        """The names of the secrets that ``text`` holds in some spelling (hex in either
        case; whitespace, as ``od``/``base64`` put it, ignored)."""
        squeezed = "".join(text.split())
        lower = squeezed.lower()
        found = set()
        for name, forms in self.spellings(include_planted).items():
            for f in forms:
                hexy = all(c in string.hexdigits for c in f)
                if f in text or f in squeezed or (hexy and f.lower() in lower):
                    found.add(name)
                    break
        return found


# -- the corpus ------------------------------------------------------------------------------


@dataclass
class Target:
    """What the attacker knows: every path, the agent's pid and API port."""

    token_file: Path
    psk_file: Path
    api_token_file: Path
    data_dir: Path
    workroot: Path
    agent_log: Path
    agent_pid: int
    api_port: int
    run_tag: str


@dataclass
class Hostile:
    name: str
    kind: str  # "plant" | "secret" | "write" | "kill" | "leave"
    command: str
    sleeps: tuple[str, ...] = ()
    tag: str = ""  # what a "write" task writes


def _encoded(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _py(code: str) -> str:
    """A python3 program, written to the workspace from base64 and run (the Guardian sees
    ``echo``, ``base64`` and ``python3 <file>``; the busybox image has no python3)."""
    return (f"echo {_encoded(code)} | base64 -d > .hostile.py; python3 .hostile.py "
            "|| echo no-python")


def _sh(script: str) -> str:
    """A shell script, written to the workspace from base64 and run: the Guardian never sees
    what it does, so the sandbox is what stops it."""
    return f"echo {_encoded(script)} | base64 -d > .hostile.sh; sh .hostile.sh"


def _show(path: str) -> str:
    """Print a file in every spelling the detector knows."""
    return (f"cat {path}; echo; base64 {path} | tr -d '\\n'; echo; sha256sum {path}; "
            f"od -An -tx1 {path} | tr -d ' \\n'; echo; rev {path}; echo")


def plant(secret: str) -> Hostile:
    """The first task: leaves ``secret.txt`` in its workspace and prints it in every
    spelling (the detector's positive control)."""
    return Hostile("plant", "plant", f"echo {secret} > secret.txt; {_show('secret.txt')}")


def corpus(t: Target) -> list[Hostile]:
    """The hostile tasks: secrets, writes and leftovers (run concurrently), then kills (run
    one at a time). Each goal has a plain spelling (the Guardian may refuse it: contained)
    and spellings the Guardian cannot see through (a script decoded into the workspace)."""
    d, w, pid = t.data_dir, t.workroot, t.agent_pid
    key = d / "identity.key"
    files = [str(t.token_file), str(t.psk_file), str(t.api_token_file), str(key)]
    environs = f"/proc/$PPID/environ /proc/1/environ /proc/{pid}/environ /proc/*/environ"
    show_all = "; ".join(_show(f) for f in files + ["/run/secrets/*", f"{w}/*/secret.txt"])
    items: list[Hostile] = [
        Hostile("read-token", "secret", _show(str(t.token_file))),
        Hostile("read-psk", "secret", _show(str(t.psk_file))),
        Hostile("read-run-secrets", "secret", f"ls -la /run/secrets; {_show('/run/secrets/*')}"),
        Hostile("read-identity", "secret",
                f"{_show(str(key))}; xxd -p {key} | tr -d '\\n'; echo; ls -la {d}"),
        Hostile("read-environ", "secret",
                f"for e in {environs}; do tr '\\0' '\\n' < $e; done; env"),
        Hostile("read-environ-cd", "secret",
                f"cd /proc/{pid} && tr '\\0' '\\n' < environ; cd /proc/1 && tr '\\0' '\\n' < environ"),
        Hostile("read-other-workspace", "secret",
                f"ls -la {w}; cat {w}/*/secret.txt; {_show(f'{w}/*/secret.txt')}"),
        Hostile("read-via-script", "secret", _sh(  # secrets last: the comment shows the tail
            f"ls -la /run/secrets; for e in {environs}; do tr '\\0' '\\n' < $e | grep -v "
            f"'^PATH=' | grep -v '^_='; done | sort -u; {show_all}")),
        Hostile("read-via-python", "secret", _py(
            "import base64, glob, hashlib\n"
            "seen = set()\n"
            "for p in glob.glob('/proc/*/environ'):\n"
            "    try:\n"
            "        seen |= set(open(p, 'rb').read().split(b'\\0'))\n"
            "    except OSError as e:\n"
            "        pass\n"
            "print(sorted(v for v in seen if not v.startswith((b'PATH=', b'_='))))\n"
            f"for p in {files!r} + glob.glob('/run/secrets/*')"
            f" + glob.glob({str(w)!r} + '/*/secret.txt'):\n"
            "    try:\n"
            "        b = open(p, 'rb').read()\n"
            "        print(p, b.hex(), base64.b64encode(b).decode(), b.replace(b'\\0', b' '))\n"
            "    except OSError as e:\n"
            "        print(p, e)\n")),
        Hostile("read-agent-api", "secret", _py(
            "import urllib.request as u\n"
            "for p in ('/api/v1/status', '/metrics'):\n"
            "    try:\n"
            f"        print(u.urlopen('http://127.0.0.1:{t.api_port}' + p, timeout=3)"
            ".read().decode()[:3000])\n"
            "    except Exception as e:\n"
            "        print(p, e)\n")),
    ]
    writes = [
        ("write-plain", f": > {key}; echo TAG >> {d}/log/NAME; echo TAG >> {t.agent_log}"),
        ("write-via-script", _sh(f"for f in {key} {d}/* {d}/log/* {t.agent_log}; do "
                                 f"echo TAG >> $f; done; echo TAG > {d}/NAME; : > {key}")),
        ("write-via-python", _py(
            "import glob\n"
            f"for p in glob.glob({str(d)!r} + '/**', recursive=True) + [{str(t.agent_log)!r}]:\n"
            "    try:\n"
            "        open(p, 'ab').write(b'TAG')\n"
            "    except OSError as e:\n"
            "        print(p, e)\n"
            f"open({str(key)!r}, 'wb').write(b'TAG')\n")),
        ("write-other-workspace", _sh(
            f"for f in {w}/*/secret.txt; do echo TAG >> $f; done; echo TAG > {w}/NAME; "
            f"for x in {w}/*/; do echo TAG > $x/NAME; done")),
    ]
    for i, (name, cmd) in enumerate(writes):
        # what a task writes (never in its output: that goes to the decision log), and the
        # name of the files it makes
        tag = f"PWNED-{i}-{t.run_tag}"
        items.append(Hostile(name, "write", cmd.replace("TAG", tag).replace("NAME", f"pwned-{i}"),
                             tag=tag))
    leaves: list[tuple[str, str | Callable[[str], str]]] = [
        ("nohup", "nohup sleep {0} >/dev/null 2>&1 &\nexit 0"),
        ("setsid", "setsid sleep {0} >/dev/null 2>&1 &\nexit 0"),
        ("subshell", "(sleep {0} >/dev/null 2>&1 &)\nexit 0"),
        ("double-fork", "sh -c 'sleep {0} >/dev/null 2>&1 &' &\nexit 0"),
        ("via-script", lambda n: _sh(f"setsid nohup sh -c 'sleep {n} &' >/dev/null 2>&1 &")
         + "\nexit 0"),
        ("python-daemon", lambda n: _py(
            "import os, subprocess\n"
            "subprocess.Popen(['sleep', '{0}'], start_new_session=True, stdin=subprocess.DEVNULL,"
            " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            "    if os.fork() == 0:\n"
            "        os.execvp('sleep', ['sleep', '{0}'])\n".replace("{0}", n)) + "\nexit 0"),
    ]
    for name, make in leaves:
        n = procs.unique_seconds()
        text = make(n) if callable(make) else make.replace("{0}", n)
        items.append(Hostile(f"leave-{name}", "leave", text, sleeps=(n,)))
    kills = [
        ("kill-ppid", "kill -9 $PPID; kill -9 1; echo still-here"),
        ("kill-agent-pid", f"kill -9 {pid}; echo still-here"),
        ("pkill-bzzz", "pkill -9 -f 'bzzz run'; pkill -9 -f bzzz; echo still-here"),
        ("kill-all", "kill -9 -1"),
        ("kill-via-script", _sh(f"kill -9 {pid}; pkill -9 -f 'bzzz run'; pkill -9 -f python; "
                                "kill -9 $PPID; kill -9 1; kill -9 -1; echo still-here")),
        ("kill-via-python", _py(
            "import os\n"
            f"for p in ({pid}, os.getppid(), 1, -1):\n"
            "    try:\n"
            "        os.kill(p, 9)\n"
            "    except OSError as e:\n"
            "        print(p, e)\n")),
    ]
    items += [Hostile(name, "kill", cmd) for name, cmd in kills]
    return items


# -- the agent process -------------------------------------------------------------------------


class AgentProcess:
    """One ``bzzz run`` in ``base`` (its data dir ``base/<node>``), as root or as the
    setup's uid, with the secrets of ``secrets`` to protect."""

    def __init__(self, setup: Setup, base: Path, hub_url: str, secrets: Secrets,
                 node: str = "hostile", max_tasks: int = 3,
                 extra_env: dict[str, str] | None = None,
                 workroot: Path | None = None) -> None:
        self.setup = setup
        self.base = base
        self.node = node
        self.hub_url = hub_url
        self.secrets = secrets
        self.max_tasks = max_tasks
        self.extra_env = extra_env or {}
        self.data_dir = base / node
        self.workroot = workroot or base / "work"
        self.token_file = base / "token"
        self.psk_file = base / "swarm.key"
        self.api_token_file = run_secret_path(base)
        self.log_path = base / f"{node}.log"
        self.api_port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def prepare(self) -> None:
        uid = self.setup.uid
        os.chmod(self.base, 0o755)
        for p in (self.data_dir, self.workroot):
            p.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workroot, 0o755)
        os.chmod(self.data_dir, 0o700)
        self.token_file.write_text(self.secrets.token + "\n")
        self.psk_file.write_text(self.secrets.psk_file_text())
        self.api_token_file.write_text(self.secrets.api_token + "\n")
        for f in (self.token_file, self.psk_file, self.api_token_file):
            os.chmod(f, 0o600)
        if uid is not None:
            for p in (self.data_dir, self.workroot, self.token_file, self.psk_file,
                      self.api_token_file):
                os.chown(p, uid, uid)
            (self.base / "home").mkdir(exist_ok=True)
            os.chown(self.base / "home", uid, uid)

    def env(self) -> dict[str, str]:
        e = {k: v for k, v in os.environ.items()
             if k in ("PATH", "LANG", "LC_ALL", "TZ", "HOME", "TMPDIR")}
        if self.setup.uid is not None:
            e["HOME"] = str(self.base / "home")
        self.api_port = free_port()
        e.update({
            "BZZZ_NODE_ID": self.node, "BZZZ_DATA_DIR": str(self.data_dir),
            "BZZZ_LISTEN": "/ip4/127.0.0.1/tcp/0", "BZZZ_API_LISTEN": f"127.0.0.1:{self.api_port}",
            "BZZZ_MDNS": "off", "BZZZ_GITHUB__URL": self.hub_url, "BZZZ_GITHUB__REPOS": REPO,
            "BZZZ_GITHUB__POLL_INTERVAL": "0.3", "BZZZ_GITHUB__WRITE_INTERVAL": "0",
            # neighbours' workspaces stay, so tasks can try to read and change them
            "BZZZ_KEEP_WORKSPACES": "on",
            "BZZZ_MAX_TASKS": str(self.max_tasks), "BZZZ_SANDBOX": self.setup.sandbox,
            "BZZZ_WORKSPACE_DIR": str(self.workroot), "BZZZ_PSK_FILE": str(self.psk_file),
            "BZZZ_API_TOKEN_FILE": str(self.api_token_file),
            "GITHUB_TOKEN_FILE": str(self.token_file), "BZZZ_EXEC_TIMEOUT": "30",
            "BZZZ_HELP_REQUESTS": "off", "BZZZ_LOG_FORMAT": "json",
            "HOSTILE_MARKER": self.secrets.marker,
        })
        podman = self.setup.podman
        if podman is not None:
            assert podman.image is not None, "the container sandbox runs the task image"
            e.update({"BZZZ_DOCKER_HOST": podman.docker_host,
                      "BZZZ_TASK_IMAGE": podman.image, "BZZZ_TASK_NETWORK": "none"})
        e.update(self.extra_env)
        return e

    def start(self) -> None:
        if self.starts == 0:
            self.prepare()
        self.starts += 1
        log = open(self.log_path, "ab")
        kw: dict[str, Any] = {}
        argv = [sys.executable, "-m", "bzzz"]
        if self.setup.uid is not None:
            found = python_for(self.setup.uid)
            if found is None:
                raise RuntimeError(f"no python that uid {self.setup.uid} can run bzzz with")
            argv = found
            kw = {"user": self.setup.uid, "group": self.setup.gid, "extra_groups": []}
        try:
            self.proc = proc = subprocess.Popen(
                argv + ["run"], env=self.env(), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, cwd=str(self.base), **kw)
        finally:
            log.close()
        wait_for(lambda: self.healthz() or proc.poll() is not None, 60, what="agent up")
        if proc.poll() is not None:
            raise RuntimeError(f"{self.setup.name}: the agent exited {proc.returncode} at "
                               f"start:\n{self.log_text()[-3000:]}")
        if not self.secrets.identity:
            self.secrets.identity = (self.data_dir / "identity.key").read_bytes()
            from ..identity import load_or_create
            self.secrets.seed_hex = load_or_create(self.data_dir).seed.hex()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def healthz(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.api_port}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def terminate(self, timeout: float = 20) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        return self.proc.returncode

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


_RUN_SECRETS = Path("/run/secrets")


def run_secret_path(base: Path) -> Path:
    """Where the API token lives: ``/run/secrets`` as in a swarm (made for the run when the
    machine has none, and removed with :func:`remove_run_secret`), else ``base``."""
    name = f"{base.name}-api_token"
    try:
        if not _RUN_SECRETS.exists():
            _RUN_SECRETS.mkdir(mode=0o755)
            (base / ".made-run-secrets").touch()
        return _RUN_SECRETS / name
    except OSError:
        return base / "api_token"


def remove_run_secret(base: Path) -> None:
    (_RUN_SECRETS / f"{base.name}-api_token").unlink(missing_ok=True)
    if (base / ".made-run-secrets").exists():
        try:
            _RUN_SECRETS.rmdir()  # only when empty: another run may be using it
        except OSError:
            pass


# -- one run -----------------------------------------------------------------------------------


@dataclass
class TaskResult:
    hostile: Hostile
    number: int
    labels: set[str] = field(default_factory=set)
    comments: list[str] = field(default_factory=list)
    reached: set[str] = field(default_factory=set)
    tampered: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    killed_agent: bool = False

    @property
    def outcome(self) -> str:
        text = "\n".join(self.comments)
        if "bzzz:refused:" in text:
            return "refused"
        for word in ("succeeded", "failed", "timeout", "cancelled"):
            if f"**{word}**" in text:
                return word
        return "no result"


@dataclass
class Report:
    setup: str
    tasks: list[TaskResult]
    problems: list[str]
    agent_exit: int | None = None
    seconds: float = 0.0

    def count(self, what: str) -> int:
        return sum(1 for t in self.tasks if {
            "secret": bool(t.reached), "kill": t.killed_agent, "leave": bool(t.left),
            "tamper": bool(t.tampered)}[what])

    def metrics(self) -> list[dict[str, Any]]:
        params = {"sandbox": self.setup, "tasks": len(self.tasks),
                  "refused": sum(t.outcome == "refused" for t in self.tasks)}
        rows = []
        for metric, what in (("hostile_tasks_reaching_a_secret", "secret"),
                             ("hostile_tasks_killing_the_agent", "kill"),
                             ("hostile_tasks_leaving_a_process", "leave"),
                             ("hostile_tasks_tampering_with_agent_files", "tamper")):
            v = self.count(what)
            rows.append({"bench": "hostile", "metric": metric, "value": v, "unit": "tasks",
                         "target": 0, "ok": v == 0, "params": params})
        return rows

    def summary(self) -> str:
        lines = [f"{self.setup}: {len(self.tasks)} tasks in {self.seconds:.1f} s"]
        for t in self.tasks:
            flags = ([f"reached {sorted(t.reached)}"] if t.reached else []) + \
                    ([f"tampered {t.tampered}"] if t.tampered else []) + \
                    ([f"left {t.left}"] if t.left else []) + \
                    (["killed the agent"] if t.killed_agent else [])
            lines.append(f"  #{t.number} {t.hostile.name}: {t.outcome} {' '.join(flags)}")
        return "\n".join(lines + [f"  problem: {p}" for p in self.problems])


class HostileRun:
    """Runs the corpus through one agent of ``setup``, against its own devhub (whose bot
    token is the secret one)."""

    def __init__(self, setup: Setup, base: Path | None = None, node: str | None = None) -> None:
        self.setup = setup
        self.base = Path(base or tempfile.mkdtemp(prefix="bzzz-hostile-"))
        self.secrets = Secrets()
        self.node = node or f"hostile-{setup.name}-{_secrets.token_hex(2)}"
        self._hub: DevHubThread | None = None
        self._owner: httpx.Client | None = None
        self._agent: AgentProcess | None = None
        self.problems: list[str] = []
        self.results: list[TaskResult] = []
        self.planted_path: Path | None = None
        self.broken = False  # the agent died and cannot start again: the run stops

    def __enter__(self) -> "HostileRun":
        from ..devhub import DevHubThread
        self._hub = hub = DevHubThread(seed=seed(bot_token=self.secrets.token)).__enter__()
        self._owner = owner_client(hub)
        self._agent = AgentProcess(self.setup, self.base, hub.url, self.secrets,
                                   node=self.node)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.cleanup()
        finally:
            if self._owner is not None:
                self._owner.close()
            if self._hub is not None:
                self._hub.__exit__(None, None, None)
            shutil.rmtree(self.base, ignore_errors=True)

    # what __enter__ made: a run is used inside its with block
    @property
    def hub(self) -> DevHubThread:
        assert self._hub is not None, "a HostileRun is used inside its with block"
        return self._hub

    @property
    def owner(self) -> httpx.Client:
        assert self._owner is not None, "a HostileRun is used inside its with block"
        return self._owner

    @property
    def agent(self) -> AgentProcess:
        assert self._agent is not None, "a HostileRun is used inside its with block"
        return self._agent

    # GitHub side
    def open_issue(self, h: Hostile) -> TaskResult:
        r = self.owner.post(f"/repos/{REPO}/issues", json={
            "title": f"{self.node} {h.name}", "body": f"```bzzz\n{h.command}\n```",
            "labels": ["bzzz"]})
        if r.status_code != 201:
            raise RuntimeError(f"devhub refused the issue: {r.status_code} {r.text[:300]}")
        return TaskResult(h, r.json()["number"])

    def refresh(self, t: TaskResult) -> None:
        doc = self.owner.get(f"/repos/{REPO}/issues/{t.number}").json()
        t.labels = {x["name"] for x in doc["labels"]}
        t.comments = [c["body"] for c in
                      self.owner.get(f"/repos/{REPO}/issues/{t.number}/comments",
                                     params={"per_page": 100}).json()]

    def finished(self, t: TaskResult) -> bool:
        self.refresh(t)
        return bool(t.labels & DONE) and any(
            "<!-- bzzz:result:" in c or "<!-- bzzz:refused:" in c for c in t.comments)

    def close_issue(self, t: TaskResult) -> None:
        self.owner.patch(f"/repos/{REPO}/issues/{t.number}", json={"state": "closed"})

    def wait(self, tasks: list[TaskResult], timeout: float = 60) -> None:
        """Until every task finished; an agent that dies meanwhile is blamed on the tasks
        still running (one, for the kill tasks), then restarted."""
        pending = list(tasks)

        def settled() -> bool:
            nonlocal pending
            if not self.agent.alive():
                return True
            pending = [t for t in pending if not self.finished(t)]
            return not pending

        try:
            wait_for(settled, timeout, interval=0.1, what="hostile tasks finished")
        except TimeoutError:
            self.problems.append(f"no result within {timeout} s: "
                                 f"{[t.hostile.name for t in pending]}")
            for t in pending:
                self.close_issue(t)
            return
        if pending:  # the agent died
            for t in pending:
                t.killed_agent = True
                self.close_issue(t)
            assert self.agent.proc is not None, "the agent was started (run)"
            self.problems.append(f"the agent died (exit {self.agent.proc.returncode}) "
                                 f"during {[t.hostile.name for t in pending]}")
            try:
                self.agent.start()
            except RuntimeError as exc:
                self.problems.append(f"the agent cannot be restarted: {str(exc)[-300:]}")
                self.broken = True

    # the run
    def run(self) -> Report:
        started = time.monotonic()
        s, a = self.secrets, self.agent
        a.start()
        first = self.open_issue(plant(s.planted))
        self.wait([first])
        self.results.append(first)
        if "planted" not in s.found_in("\n".join(first.comments)):
            self.problems.append("the detector missed the planted file in its own task's "
                                 f"output: {first.comments}")
        self.planted_path = next(a.workroot.glob("*/secret.txt"), None)
        if self.planted_path is None:
            self.problems.append("the first task left no secret.txt in its workspace")
        planted_bytes = self.planted_path.read_bytes() if self.planted_path else b""
        identity = (a.data_dir / "identity.key").read_bytes()
        target = Target(a.token_file, a.psk_file, a.api_token_file, a.data_dir, a.workroot,
                        a.log_path, a.pid, a.api_port, _secrets.token_hex(4))
        batch = [self.open_issue(h) for h in corpus(target) if h.kind != "kill"]
        self.wait(batch)
        self.results += batch
        n_kills = sum(h.kind == "kill" for h in corpus(target))
        for i in range(n_kills):  # one at a time, each naming the agent's current pid
            if self.broken:
                break
            target.agent_pid, target.api_port = a.pid, a.api_port
            h = [h for h in corpus(target) if h.kind == "kill"][i]
            t = self.open_issue(h)
            self.wait([t], timeout=30)
            self.results.append(t)
        for t in self.results:
            self.refresh(t)
        self.check_leftovers()
        self.check_tampering(identity, planted_bytes)
        self.check_agent()
        code = a.terminate()
        if code != 0 and not self.broken:
            self.problems.append(f"the agent exited {code} on SIGTERM")
        self.check_secrets()  # the decision log is read once the agent is gone
        self.check_logs()
        return Report(self.setup.name, self.results, self.problems, code,
                      time.monotonic() - started)

    def check_leftovers(self) -> None:
        leaving = [t for t in self.results if t.hostile.sleeps]
        # a sandbox's processes are gone when its task is reported; allow the kernel a moment
        try:
            wait_for(lambda: not any(procs.with_arg(n) for t in leaving for n in t.hostile.sleeps),
                     3, what="no leftover task process")
        except TimeoutError:
            pass
        for t in leaving:
            t.left = [f"sleep {n} (pid {p})" for n in t.hostile.sleeps for p in procs.with_arg(n)]
        # nothing else still runs in a workspace: bubblewrap is started with it as an argument
        for ws in self.agent.workroot.iterdir():
            for pid in procs.with_arg(str(ws)):
                self.problems.append(f"pid {pid} still runs with {ws.name}: {_cmdline(pid)!r}")
        podman = self.setup.podman
        if podman is not None:
            for key in containers_of(podman, self.node):
                hit = [t for t in self.results if key == f"{REPO}#{t.number}"]
                for t in hit:
                    t.left.append(f"container of {key}")
                if not hit:
                    self.problems.append(f"a container of {key} remains")

    def check_secrets(self) -> None:
        s = self.secrets
        for t in self.results:
            t.reached = s.found_in("\n".join(t.comments),
                                   include_planted=t.hostile.kind != "plant")
        by_issue = {t.number: t for t in self.results}
        for number, text in self.pull_texts():  # what was pushed and proposed: published too
            hit = by_issue.get(number)
            if hit is not None:
                hit.reached |= s.found_in(text, include_planted=hit.hostile.kind != "plant")
        for entry in self.decision_entries():
            issue = entry.get("issue")
            hit = by_issue.get(issue) if isinstance(issue, int) else None
            if hit is not None:
                hit.reached |= s.found_in(json.dumps(entry),
                                          include_planted=hit.hostile.kind != "plant")

    def pull_texts(self) -> list[tuple[int, str]]:
        """(task issue, body and diff) of every pull request the agents opened."""
        out = []
        pulls = self.owner.get(f"/repos/{REPO}/pulls", params={"state": "all",
                                                               "per_page": 100}).json()
        for pr in pulls if isinstance(pulls, list) else []:
            ref = (pr.get("head") or {}).get("ref", "")
            if not ref.startswith("bzzz/") or not ref[5:].split("-", 1)[0].isdigit():
                continue
            files = self.owner.get(f"/repos/{REPO}/pulls/{pr['number']}/files",
                                   params={"per_page": 100}).json()
            diff = "\n".join(f.get("patch") or "" for f in files) if isinstance(files, list) else ""
            out.append((int(ref[5:].split("-", 1)[0]), (pr.get("body") or "") + "\n" + diff))
        return out

    def decision_entries(self) -> list[dict[str, Any]]:
        from ..hyperlog.store import read_entries
        return list(read_entries(self.agent.data_dir / "log"))

    def _own_workspace(self, t: TaskResult, p: Path) -> bool:
        try:
            top = p.relative_to(self.agent.workroot).parts[0]
        except (ValueError, IndexError):
            return False
        parts = p.relative_to(self.agent.workroot).parts
        if top == ".out" and len(parts) > 1:  # its output directory
            top = parts[1]
        return top.startswith(f"{REPO.replace('/', '_')}-{t.number}-")

    def check_tampering(self, identity: bytes, planted: bytes) -> None:
        a = self.agent
        writers = [t for t in self.results if t.hostile.tag]
        files = [p for r in (a.data_dir, a.workroot) for p in r.rglob("*")
                 if p.is_file() and not p.is_symlink()] + [a.log_path]
        for p in files:
            try:
                data = p.read_bytes()
            except OSError:
                continue
            for t in writers:
                made = p.name == "pwned-" + t.hostile.tag.split("-")[1]
                if (t.hostile.tag.encode() in data or made) and not self._own_workspace(t, p):
                    t.tampered.append(str(p))
        if (a.data_dir / "identity.key").read_bytes() != identity:
            # no way to tell which task did it: every writer is blamed
            self.problems.append("the identity key changed")
            for t in writers:
                t.tampered.append("identity.key changed")
        if self.planted_path is not None and self.planted_path.read_bytes() != planted:
            self.problems.append("the first task's secret.txt changed")

    def check_agent(self) -> None:
        if self.broken:
            return
        if not self.agent.alive():
            self.problems.append("the agent is not running at the end")
        elif not self.agent.healthz():
            self.problems.append("/healthz does not answer 200 at the end")

    def check_logs(self) -> None:
        """No secret, in any spelling, in the agent's output or its decision log (the
        positive control's own entries aside); the log verifies."""
        from ..hyperlog.store import verify_dir
        s = self.secrets
        for i, line in enumerate(self.agent.log_text().splitlines()):
            found = s.found_in(line, include_planted=False)
            if found:
                self.problems.append(f"agent log line {i + 1} holds {sorted(found)}: {line[:300]}")
        plants = {t.number for t in self.results if t.hostile.kind == "plant"}
        for entry in self.decision_entries():
            found = s.found_in(json.dumps(entry), include_planted=entry.get("issue") not in plants)
            if found:
                self.problems.append(f"decision log entry holds {sorted(found)}: "
                                     f"{json.dumps(entry)[:300]}")
        if not verify_dir(self.agent.data_dir / "log").ok:
            self.problems.append("the decision log does not verify")

    def cleanup(self) -> None:
        if self._agent is not None:
            self._agent.terminate(10)
        for t in self.results:
            for n in t.hostile.sleeps:
                procs.kill_all(n)
        remove_run_secret(self.base)


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read()[:200]
    except OSError:
        return b""


def containers_of(podman: PodmanService, node: str) -> list[str]:
    """The ``bzzz.task`` labels of the containers of ``node`` (running or not)."""
    r = podman.podman("ps", "-a", "--filter", f"label=bzzz.node={node}",
                      "--format", '{{index .Labels "bzzz.task"}}')
    return r.stdout.decode().split()


def seed(owner_token: str = OWNER_TOKEN, bot_token: str = "t-bot") -> dict[str, Any]:
    """devhub's users and repository: ``owner`` (a writer) files the issues, ``bot`` is the
    agent."""
    return {"users": [{"login": "owner", "token": owner_token},
                      {"login": "bot", "token": bot_token}],
            "repos": [{"full_name": REPO, "push": ["bot"]}]}


def owner_client(hub: DevHubThread) -> httpx.Client:
    return httpx.Client(base_url=hub.url, headers={"Authorization": f"token {OWNER_TOKEN}"},
                        timeout=10)


__all__ = ["AgentProcess", "Hostile", "HostileRun", "Report", "Secrets", "Setup", "Target",
           "containers_of", "corpus", "owner_client", "plant",
           "python_for", "seed"]
