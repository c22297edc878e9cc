"""The bubblewrap sandbox (and ``none`` for contrast): real processes, tried the way a task
would try to get out. The sandbox is run directly (no Guardian in front), so what holds here
holds for a command the Guardian would have let through.

The secrets are world-readable on purpose: what keeps them from the task is the sandbox, not
file permissions. As root, every bwrap test runs twice: bubblewrap started as root, and as
``nobody`` (the unprivileged path an agent running as root takes)."""

from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from bzzz.exec.sandbox import (BwrapSandbox, Limits, NoSandbox, SandboxError, _Records,
                               open_sandbox)
from bzzz.exec.shell import run_shell, task_identity
from bzzz.testing.procs import gone, kill_all, unique_seconds, with_arg
from bzzz.testing.wait import wait_until

from .conftest import require

ROOT = Path(__file__).resolve().parent.parent
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
TOKEN = "ghp_TOKEN-secret-5b1f"
KEY = "DATA-key-secret-77c2"
USERS = ["agent", "nobody"] if os.geteuid() == 0 else ["agent"]


class Secrets:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.token = base / "token"
        self.token.write_text(TOKEN)
        self.data = base / "data"
        self.data.mkdir()
        (self.data / "identity.key").write_text(KEY)
        for p in (self.token, self.data / "identity.key"):
            p.chmod(0o644)
        self.data.chmod(0o755)
        self.ws = base / "work" / "task-1"
        self.state = base / "state"

    @property
    def hidden(self) -> list[Path]:
        return [self.token, self.data]


@pytest.fixture
def secrets(workdir):
    return Secrets(Path(workdir))


def bwrap_ok() -> None:
    require(shutil.which("bwrap") is not None, "bubblewrap is not installed (apt-get install bubblewrap)")


@pytest.fixture(params=USERS)
async def box(request, secrets):
    bwrap_ok()
    user = task_identity("nobody") if request.param == "nobody" else None
    try:
        sandbox = await open_sandbox("bwrap", node_id="test", hidden=secrets.hidden,
                                     state_dir=secrets.state, docker_host=None,
                                     default_image="unused", network="none", limits=Limits(),
                                     user=user)
    except SandboxError as exc:
        require(False, str(exc))
    yield sandbox
    await sandbox.aclose()


async def sh(box, script: str, ws: Path, **kw):
    opts = {"timeout": 30, "max_output": 64 * 1024, "kill_grace": 0.5, "task_id": "t1"} | kw
    return await box.run(["bash", "-c", script], ws, dict(ENV), **opts)


# -- secrets ---------------------------------------------------------------------------------

async def test_secrets_are_not_there(box, secrets):
    r = await sh(box, f"cat {secrets.token}; cat {secrets.data}/identity.key; ls -la {secrets.data}; "
                      f"grep -rs {TOKEN[:8]} {secrets.base} /tmp; "
                      f"echo \"ls:$(ls -A {secrets.base} | tr '\\n' ' ')\"", secrets.ws)
    assert r.status == "succeeded"
    assert TOKEN not in r.output and KEY not in r.output
    assert "No such file" in r.output  # the token file does not exist in the sandbox
    # of the agent's directories, only the path to the workspace exists
    assert "ls:work \n" in r.output


async def test_secrets_inside_a_bound_directory_are_masked(box, secrets):
    # a secret file and a data directory that lie *inside* a directory the task is given
    inner_file = secrets.ws / ".agent-token"
    inner_dir = secrets.ws / ".agent-data"
    inner_dir.mkdir(parents=True)
    inner_file.write_text(TOKEN)
    (inner_dir / "k").write_text(KEY)
    masked = BwrapSandbox(hidden=[inner_file, inner_dir], state_dir=secrets.state,
                          network="none", user=box.user)
    r = await sh(masked, "cat .agent-token; ls -A .agent-data; cat .agent-data/k; "
                         "echo x > .agent-data/evil || echo no-write; echo x > .agent-token || echo no-write2",
                 secrets.ws)
    assert TOKEN not in r.output and KEY not in r.output
    assert "no-write" in r.output and "no-write2" in r.output
    assert not (inner_dir / "evil").exists() and inner_file.read_text() == TOKEN


async def test_system_secrets_are_masked(box, secrets):
    require(await trio.Path("/etc/shadow").exists(), "no /etc/shadow here")
    r = await sh(box, "cat /etc/shadow; echo end", secrets.ws)
    assert "root:" not in r.output and "end" in r.output


async def test_no_agent_environment(box, secrets, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    r = await sh(box, "cat /proc/1/environ; echo; cat /proc/$PPID/environ; echo; env; "
                      "ls /proc | grep -c '^[0-9]'", secrets.ws)
    assert r.status == "succeeded"
    assert TOKEN not in r.output and "GITHUB_TOKEN" not in r.output
    assert "LANG=C.UTF-8" in r.output
    # the task's pid namespace holds bubblewrap's init, the shell and its children
    assert int(r.output.split()[-1]) <= 6


async def test_writes_to_hidden_places_do_not_land(box, secrets):
    r = await sh(box, f"mkdir -p {secrets.data}; echo pwned > {secrets.data}/evil; "
                      f"echo pwned > {secrets.token}; echo ok > mine; echo done", secrets.ws)
    assert "done" in r.output
    assert not (secrets.data / "evil").exists() and secrets.token.read_text() == TOKEN
    assert (secrets.ws / "mine").read_text() == "ok\n"
    if box.user is not None:
        assert (secrets.ws / "mine").stat().st_uid == box.user.uid


# -- the agent is out of reach ---------------------------------------------------------------

async def test_kill_parent_and_everything_hits_only_the_sandbox(box, secrets):
    # a bystander outside, running as the same user as the task
    tag = unique_seconds()
    as_user = ({"user": box.user.uid, "group": box.user.gid, "extra_groups": []}
               if box.user else {})
    bystander = await trio.lowlevel.open_process(["sleep", tag], **as_user)
    try:
        # guard: only send kill -1 from inside a pid namespace (we are pid 2 there)
        r = await sh(box, '[ "$$" -le 3 ] || { echo "not in a pid namespace: $$"; exit 99; }; '
                          "kill -9 -1; kill -9 $PPID; echo still", secrets.ws)
        assert r.exit_code != 99, r.output
        os.kill(os.getpid(), 0)  # the agent (this process) is alive: we got here
        assert bystander.poll() is None, "a process outside the sandbox was killed"
    finally:
        bystander.kill()
        await bystander.wait()


def escapees(tags: list[str]) -> str:
    """Start ``nohup``, ``setsid`` and double-forked sleeps; return once each is set up (so
    the task's end, not a race, decides their fate)."""
    return (f"rm -f n.ok s.ok d.ok; nohup sh -c 'touch n.ok; exec sleep {tags[0]}' >/dev/null 2>&1 & "
            f"setsid sh -c 'touch s.ok; exec sleep {tags[1]}' >/dev/null 2>&1 & "
            f"(sh -c 'touch d.ok; exec sleep {tags[2]}' >/dev/null 2>&1 &); "
            "while [ ! -e n.ok ] || [ ! -e s.ok ] || [ ! -e d.ok ]; do sleep 0.01; done; ")


async def test_nothing_outlives_the_task(box, secrets):
    tags = [unique_seconds() for _ in range(3)]
    start = trio.current_time()
    r = await sh(box, escapees(tags) + "echo started; exit 0", secrets.ws)
    try:
        assert r.status == "succeeded" and r.exit_code == 0 and "started" in r.output
        assert trio.current_time() - start < 10  # did not wait for the sleeps' output pipe
        for tag in tags:
            assert await gone(tag), f"sleep {tag} outlived its task"
    finally:
        for tag in tags:
            kill_all(tag)


async def test_timeout_kills_the_tree(box, secrets):
    tags = [unique_seconds() for _ in range(2)]
    start = trio.current_time()
    r = await sh(box, f"setsid sleep {tags[0]} & sleep {tags[1]}", secrets.ws, timeout=0.5)
    assert r.status == "timeout" and trio.current_time() - start < 10
    for tag in tags:
        assert await gone(tag)


async def test_a_task_outlives_the_worker_threads_idle_timeout(box, secrets, monkeypatch):
    """bubblewrap's --die-with-parent follows the *thread* that started it: a task started
    from one of trio's worker threads was killed when that thread retired, idle (10 s). The
    idle timeout shortened here, a 2-second task must still succeed."""
    import trio._core._thread_cache as thread_cache  # trio's knob, to make 10 s short
    monkeypatch.setattr(thread_cache, "IDLE_TIMEOUT", 0.2)
    await trio.to_thread.run_sync(lambda: None)  # a worker thread exists, then idles
    r = await sh(box, "sleep 2; echo lived", secrets.ws, timeout=30)
    assert r.status == "succeeded" and "lived" in r.output, (r.status, r.output)


async def test_cancellation_kills_the_tree(box, secrets):
    tags = [unique_seconds() for _ in range(2)]
    results = []
    async with trio.open_nursery() as nursery:
        async def run():
            results.append(await sh(
                box, f"trap '' TERM; setsid sleep {tags[0]} & sleep {tags[1]}", secrets.ws))
        nursery.start_soon(run)
        await wait_until(lambda: all(with_arg(t) for t in tags), 10, "both sleeps running")
        nursery.cancel_scope.cancel()
    assert results == []
    for tag in tags:
        assert await gone(tag, 10)


async def test_a_killed_agent_takes_its_tasks_along(box, secrets):
    """SIGKILL to the agent process: --die-with-parent ends the sandbox and all in it."""
    tags = [unique_seconds() for _ in range(2)]
    child = await trio.lowlevel.open_process(
        [sys.executable, "-c", CHILD, str(secrets.state), box.user.name if box.user else "",
         str(secrets.ws), f"setsid sleep {tags[0]} & nohup sleep {tags[1]} & wait"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        await wait_until(lambda: all(with_arg(t) for t in tags) or child.poll() is not None,
                         20, "the task to start")
        assert child.poll() is None, (await child.stderr.receive_some()).decode()
        child.kill()
        await child.wait()
        for tag in tags:
            assert await gone(tag, 5), f"sleep {tag} outlived its killed agent"
    finally:
        child.kill()
        await child.wait()
        for tag in tags:
            kill_all(tag)


CHILD = """
import sys
from pathlib import Path
import trio
from bzzz.exec.sandbox import Limits, open_sandbox
from bzzz.exec.shell import task_identity
state, user, ws, script = sys.argv[1:5]

async def main():
    box = await open_sandbox("bwrap", node_id="child", hidden=[], state_dir=Path(state),
                             docker_host=None, default_image="unused", network="none",
                             limits=Limits(), user=task_identity(user) if user else None)
    await box.run(["bash", "-c", script], Path(ws), {"PATH": "/usr/bin:/bin"}, timeout=600,
                  max_output=1000, kill_grace=1, task_id="t")
trio.run(main)
"""


async def test_reap_kills_what_a_dead_agent_recorded(box, secrets):
    tag = unique_seconds()
    leftover = await trio.lowlevel.open_process(["sleep", tag], start_new_session=True)
    _Records(secrets.state).add(leftover.pid)
    assert await box.reap() == 1
    with trio.fail_after(5):
        assert await leftover.wait() == -9
    assert await box.reap() == 0


# -- network ---------------------------------------------------------------------------------

@pytest.fixture
def listener():
    """A TCP listener on this machine's loopback: reachable only from its network namespace."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(5)
    srv.settimeout(0)
    yield srv
    srv.close()


def accepted(srv: socket.socket) -> bool:
    try:
        conn, _ = srv.accept()
    except BlockingIOError:
        return False
    conn.close()
    return True


async def test_network_none_has_only_its_own_loopback(box, secrets, listener):
    port = listener.getsockname()[1]
    r = await sh(box, f"cut -d: -f1 /proc/net/dev | tail -n +3; "
                      f"(echo hi > /dev/tcp/127.0.0.1/{port}) 2>/dev/null && echo connected || echo refused",
                 secrets.ws)
    assert r.output.split() == ["lo", "refused"]
    assert not accepted(listener)


async def test_network_bridge_shares_the_hosts(secrets, listener):
    bwrap_ok()
    box = await open_sandbox("bwrap", node_id="test", hidden=secrets.hidden,
                             state_dir=secrets.state, docker_host=None, default_image="unused",
                             network="bridge", limits=Limits(), user=task_identity(None))
    port = listener.getsockname()[1]
    r = await sh(box, f"(echo hi > /dev/tcp/127.0.0.1/{port}) && echo connected", secrets.ws)
    assert "connected" in r.output
    await wait_until(lambda: accepted(listener), 5, "the connection accepted")
    assert "the host's network" in box.describe()


# -- bad input, output -----------------------------------------------------------------------

async def test_nul_and_surrogates_fail_cleanly(box, secrets):
    r = await box.run(["bash", "-c", "echo a\x00b"], secrets.ws, dict(ENV), timeout=5,
                      max_output=100, kill_grace=0.5, task_id="t")
    assert r.status == "failed" and "NUL" in r.output
    r = await box.run(["true"], secrets.ws, {**ENV, "X": "\udcff\ud800"}, timeout=5,
                      max_output=100, kill_grace=0.5, task_id="t")
    assert r.status == "failed" and "surrogate" in r.output
    for command, env in (("echo \ud800", None), ("echo ok", {"A": "b\x00"})):
        res = await run_shell(command, secrets.ws, sandbox=box, env=env)
        assert res.status == "refused" and res.verdict and not res.verdict.allowed


async def test_output_is_a_bounded_tail(box, secrets):
    r = await sh(box, "head -c 300000 /dev/zero | tr '\\0' a; echo; echo THE-END", secrets.ws,
                 max_output=1000)
    assert r.status == "succeeded" and r.truncated and r.output_bytes > 300000
    assert len(r.output) <= 1000 and r.output.rstrip().endswith("THE-END")


async def test_run_shell_through_bwrap(box, secrets):
    r = await run_shell(f"pwd; cat {secrets.token} || echo no-token", secrets.ws, sandbox=box)
    assert r.status == "succeeded" and r.extra["sandbox"] == "bwrap"
    assert r.output.split() [0] == str(secrets.ws.resolve()) and "no-token" in r.output
    refused = await run_shell("sudo true", secrets.ws, sandbox=box)
    assert refused.status == "refused"  # the Guardian still decides first


# -- choosing a sandbox ----------------------------------------------------------------------

async def test_auto_without_an_engine_picks_bwrap(secrets, tmp_path):
    bwrap_ok()
    box = await open_sandbox("auto", node_id="t", hidden=secrets.hidden, state_dir=secrets.state,
                             docker_host=f"unix://{tmp_path}/no-engine.sock",
                             default_image="x", network="none", limits=Limits(), user=None)
    assert box.kind == "bwrap" and box.describe().startswith("bwrap (")


async def test_missing_sandboxes_are_one_clear_line(secrets, tmp_path, monkeypatch):
    args = dict(node_id="t", hidden=[], state_dir=secrets.state,
                docker_host=f"unix://{tmp_path}/no-engine.sock", default_image="x",
                network="none", limits=Limits(), user=None)
    with pytest.raises(SandboxError, match="no container engine answers at unix://"):
        await open_sandbox("container", **args)
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on it
    with pytest.raises(SandboxError, match="bubblewrap"):
        await open_sandbox("bwrap", **args)
    with pytest.raises(SandboxError) as err:
        await open_sandbox("auto", **args)
    assert str(err.value).startswith("no sandbox available: install bubblewrap or mount a "
                                     'Docker socket; sandbox = "none" runs tasks unconfined')
    assert "\n" not in str(err.value)
    with pytest.raises(SandboxError, match="memory limit"):
        await open_sandbox("none", **{**args, "limits": Limits(memory="lots")})


# -- none, for contrast ----------------------------------------------------------------------

async def test_none_exposes_what_the_agent_can_read(secrets):
    box = NoSandbox(task_identity(None), secrets.state)
    assert "NO isolation" in box.describe()
    r = await sh(box, f"cat {secrets.token}", secrets.ws)
    assert TOKEN in r.output  # what bwrap and containers prevent


async def test_none_kills_its_group_but_not_escapees(secrets):
    box = NoSandbox(task_identity(None), secrets.state)
    tags = [unique_seconds() for _ in range(3)]
    try:
        r = await sh(box, escapees(tags) + "exit 0", secrets.ws)
        assert r.status == "succeeded"
        assert await gone(tags[0])  # nohup: it stayed in the task's process group
        assert with_arg(tags[1]), "setsid leaves the group: only a sandbox catches it"
    finally:
        for tag in tags:
            kill_all(tag)


async def test_the_output_directory_is_writable_too(box, secrets):
    out = secrets.base / "out" / "task-1"
    r = await box.run(["bash", "-c", 'echo "done it" > "$BZZZ_OUTPUT/summary.md"; echo x > ../evil; echo x > /usr/evil || echo ro'],
                      secrets.ws, {**ENV, "BZZZ_OUTPUT": str(out)}, timeout=10, max_output=1000,
                      kill_grace=0.5, task_id="t", output_dir=out)
    assert r.status == "succeeded", r.output
    assert (out / "summary.md").read_text() == "done it\n"
    # ../ is not the host's: the path to the workspace is the sandbox's own (in its /tmp
    # here, or its read-only root)
    assert "ro" in r.output and not (secrets.ws.parent / "evil").exists()


# -- resource limits -------------------------------------------------------------------------

TIGHT = Limits(memory="256m", pids=32, disk="8m")
FORK_BOMB = """
import os, time
n = 0
try:
    while n < 1000:
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        n += 1
except OSError as exc:
    print("fork failed after", n, exc)
else:
    print("forked", n)
"""


def python3() -> str:
    require(Path("/usr/bin/python3").exists(), "no /usr/bin/python3 for the task to run")
    return "/usr/bin/python3"


@pytest.fixture
async def tight(secrets):
    """bubblewrap with small limits, tasks running as a user the kernel holds to them: root
    is exempt from RLIMIT_NPROC, so an agent running as root runs them as nobody."""
    bwrap_ok()
    user = task_identity("nobody") if os.geteuid() == 0 else None
    try:
        sandbox = await open_sandbox("bwrap", node_id="test", hidden=secrets.hidden,
                                     state_dir=secrets.state, docker_host=None,
                                     default_image="unused", network="none", limits=TIGHT,
                                     user=user)
    except SandboxError as exc:
        require(False, str(exc))
    yield sandbox
    await sandbox.aclose()


async def test_a_fork_bomb_stops_at_the_pids_limit(tight, secrets):
    r = await tight.run([python3(), "-c", FORK_BOMB], secrets.ws, dict(ENV), timeout=60,
                        max_output=4096, kill_grace=0.5, task_id="bomb")
    found = re.search(r"fork failed after (\d+)", r.output)
    assert found, r.output
    assert int(found[1]) < TIGHT.pids
    assert tight.enforced()["pids"]["limit"] == TIGHT.pids


async def test_memory_beyond_the_limit_is_refused_or_killed(tight, secrets):
    opts = dict(timeout=60, max_output=4096, kill_grace=0.5, task_id="mem")
    r = await tight.run([python3(), "-c", "b = bytearray(512 << 20); print('got it')"],
                        secrets.ws, dict(ENV), **opts)
    assert r.status == "failed" and "got it" not in r.output
    assert "MemoryError" in r.output or "out of memory" in r.note, (r.output, r.note)
    r = await tight.run([python3(), "-c", "b = bytearray(64 << 20); print('got it')"],
                        secrets.ws, dict(ENV), **opts)
    assert r.status == "succeeded" and "got it" in r.output, r.output


async def test_a_file_past_the_size_limit_fails_and_tmp_is_bounded(tight, secrets):
    opts = dict(timeout=60, max_output=4096, kill_grace=0.5, task_id="disk")
    r = await tight.run(["bash", "-c", "head -c 9M /dev/zero > big"], secrets.ws, dict(ENV),
                        **opts)
    assert r.status == "failed" and r.exit_code == 128 + signal.SIGXFSZ, (r.exit_code, r.output)
    assert (secrets.ws / "big").stat().st_size == 8 << 20
    r = await tight.run(["bash", "-c", "df -k --output=size /tmp | tail -1"], secrets.ws,
                        dict(ENV), **opts)
    assert int(r.output.strip()) == 256 * 1024, r.output


async def test_the_start_up_line_and_the_status_say_which_limits_hold(secrets, tmp_path,
                                                                      caplog):
    """What an operator reads at start (the "tasks run sandboxed" line) and in
    /api/v1/status: every limit, and how it is enforced on this host."""
    import logging

    from bzzz.agent import Agent

    from .helpers import agent_config
    bwrap_ok()
    agent = Agent(agent_config(tmp_path, "a", sandbox="bwrap", task_memory="256m",
                               task_pids=32, task_disk="8m", task_network="none"))
    try:
        with caplog.at_level(logging.INFO, logger="bzzz"):
            try:
                await agent.open_sandbox()
            except Exception as exc:  # AgentError: bubblewrap cannot run here
                require(False, str(exc))
        line = next(r for r in caplog.records if r.getMessage() == "tasks run sandboxed")
        said = line.sandbox
        for phrase in ("memory 256m (", "file_size 8m (RLIMIT_FSIZE", "tmp 256m (tmpfs",
                       "cpus unlimited"):
            assert phrase in said, said
        assert "pids 32 (" in said or "pids unlimited (not enforced" in said, said
        limits = agent.status()["sandbox"]["limits"]
        assert limits["memory"] == {"limit": "256m", "how": limits["memory"]["how"]}
        assert limits["memory"]["how"].startswith(("cgroup", "RLIMIT_DATA"))
        assert limits["file_size"]["limit"] == "8m"
        assert limits["pids"]["limit"] in (32, None)
    finally:
        await agent.sandbox.aclose() if agent.sandbox else None
        agent.logsync.close()
        agent.decisions.close()
        agent.datalease.release()


def test_a_delegated_cgroup_gets_a_cgroup_per_task_with_the_limits(tmp_path):
    """The cgroup v2 path, on a stand-in directory (this host may not delegate one)."""
    from bzzz.exec.limits import TaskLimits, prepare_cgroup
    base = tmp_path / "cg"
    base.mkdir()
    (base / "cgroup.controllers").write_text("cpu memory pids\n")
    (base / "cgroup.subtree_control").write_text("")
    (base / "cgroup.procs").write_text("4242\n")  # the agent, still in it
    root, note = prepare_cgroup(base)
    assert root == base and note == f"cgroup v2 under {base}"
    assert (base / "bzzz-agent" / "cgroup.procs").read_text() == "4242"
    assert (base / "cgroup.subtree_control").read_text() == "+memory +pids"
    limits = TaskLimits(memory=256 << 20, pids=32, disk=8 << 20, cgroup=root,
                        cgroup_note=note, user=None)
    group = limits.open_cgroup("owner/repo#7")
    assert group.path.parent == base and group.path.name.startswith("task-owner-repo-7-")
    assert (group.path / "memory.max").read_text() == str(256 << 20)
    assert (group.path / "pids.max").read_text() == "32"
    assert limits.status()["pids"] == {"limit": 32, "how": "cgroup pids.max"}
    assert [r for r, _ in limits.rlimits()] == [resource.RLIMIT_FSIZE]  # the rest: cgroup
    (group.path / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert group.oom_killed()
    # no pids controller, or not writable: not used, and said why
    (base / "cgroup.controllers").write_text("cpu memory\n")
    assert prepare_cgroup(base) == (None, f"cgroup {base} has no pids controller")
