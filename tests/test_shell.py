"""The shell executor: real processes, real process groups (the ``none`` sandbox; the
others have tests of their own: test_sandbox.py, test_container.py)."""

import os

import trio

from bzzz.exec.sandbox import NoSandbox
from bzzz.exec.shell import run_shell
from bzzz.testing.wait import wait_until

NONE = NoSandbox()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:  # a zombie is dead too
        return fh.read().split(")")[-1].split()[0] != "Z"


async def test_success_and_failure(tmp_path):
    ok = await run_shell("echo hello && echo err >&2 && pwd", tmp_path / "ws", sandbox=NONE)
    assert ok.status == "succeeded" and ok.exit_code == 0
    assert "hello" in ok.output and "err" in ok.output
    assert ok.output.strip().endswith(str((tmp_path / "ws").resolve()))
    bad = await run_shell("echo partial; exit 3", tmp_path / "ws", sandbox=NONE)
    assert bad.status == "failed" and bad.exit_code == 3 and "partial" in bad.output


async def test_refused_commands_never_start(tmp_path):
    marker = tmp_path / "ran"
    r = await run_shell(f"touch {marker}; sudo true", tmp_path / "ws", sandbox=NONE)
    assert r.status == "refused" and "privilege escalation" in r.verdict.explain()
    assert not marker.exists()


async def test_secrets_are_not_inherited(tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_supersecret")
    monkeypatch.setenv("BZZZ_PSK_FILE", "/secret/swarm.key")
    r = await run_shell("env", tmp_path / "ws", sandbox=NONE)
    assert "ghp_supersecret" not in r.output and "BZZZ_PSK_FILE" not in r.output
    assert "BZZZ_WORKSPACE=" in r.output


async def test_output_is_bounded_tail(tmp_path):
    r = await run_shell("head -c 300000 /dev/zero | tr '\\0' a; echo; echo THE-END",
                        tmp_path / "ws", sandbox=NONE, max_output=1000)
    assert r.status == "succeeded" and r.truncated and r.output_bytes > 300000
    assert len(r.output) <= 1000 and r.output.rstrip().endswith("THE-END")


async def test_timeout_kills_the_whole_tree(tmp_path):
    pidfile = tmp_path / "ws" / "child.pid"
    start = trio.current_time()
    r = await run_shell("sleep 100 & echo $! > child.pid; sleep 100", tmp_path / "ws",
                        sandbox=NONE, timeout=0.5, kill_grace=0.5)
    assert r.status == "timeout"
    pid = int(pidfile.read_text())  # signals are delivered asynchronously: wait, bounded
    await wait_until(lambda: not alive(pid), 5, "the child gone")
    assert trio.current_time() - start < 10


async def test_cancellation_stops_the_tree_within_seconds(tmp_path):
    pidfile = tmp_path / "ws" / "child.pid"
    results = []
    async with trio.open_nursery() as nursery:
        async def run():
            results.append(await run_shell(
                "trap '' TERM; (trap '' TERM; sleep 100) & echo $! > child.pid; sleep 100",
                tmp_path / "ws", sandbox=NONE, kill_grace=0.5))
        nursery.start_soon(run)
        await wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), 10,
                         "the child's pid written")
        start = trio.current_time()
        nursery.cancel_scope.cancel()
    assert results == []
    # the whole tree, even processes that ignore SIGTERM, is gone within 10 s of the cancel
    pid = int(pidfile.read_text())
    await wait_until(lambda: not alive(pid), 10 - (trio.current_time() - start), "the tree gone")


def test_who_tasks_run_as():
    import os

    import pytest

    from bzzz.exec.shell import TaskUserError, task_identity
    if os.geteuid() != 0:
        assert task_identity(None) is None  # the agent's own user
        with pytest.raises(TaskUserError, match="needs an agent running as root"):
            task_identity("root")
        return
    nobody = task_identity(None)
    assert nobody is not None and nobody.name == "nobody" and nobody.uid != 0
    assert task_identity(str(nobody.uid)) == nobody
    assert task_identity("root") is None  # explicit opt-in: no drop
    with pytest.raises(TaskUserError, match="not a user"):
        task_identity("no-such-user-here")


async def test_a_dropped_task_owns_its_workspace_and_nothing_else(tmp_path):
    import os

    from bzzz.exec.shell import task_identity
    if os.geteuid() != 0:
        return  # covered by the agent test under CI (root)
    user = task_identity(None)
    ws = tmp_path / "ws"
    tmp_path.chmod(0o755)
    r = await run_shell(f"id -u; touch mine; touch {tmp_path}/not-mine || echo denied", ws,
                        sandbox=NoSandbox(user))
    assert r.output.split() == [str(user.uid), *r.output.split()[1:]]
    assert "denied" in r.output and (ws / "mine").stat().st_uid == user.uid
    assert not (tmp_path / "not-mine").exists()


async def test_unpassable_text_is_refused_not_raised(tmp_path):
    for command, env in (("echo a\x00b", None), ("echo \ud800", None), ("echo ok", {"A": "\x00"}),
                         ("echo ok", {"\udcff": "x"})):
        r = await run_shell(command, tmp_path / "ws", sandbox=NONE, env=env)
        assert r.status == "refused" and not r.verdict.allowed, (command, env)
        assert "NUL" in r.verdict.explain() or "surrogate" in r.verdict.explain()


async def test_without_a_sandbox_argument_it_is_none(tmp_path):
    r = await run_shell("echo hi", tmp_path / "ws")
    assert r.status == "succeeded" and r.extra["sandbox"] == "none"
