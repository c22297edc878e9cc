"""Hostile tasks against real `bzzz run` agents, in every sandbox set-up users have.

Each set-up runs the corpus of bzzz/testing/hostile.py through one agent taking issues
from devhub (all filed by the repository's owner, so the trust rule lets them run): tasks
that go for the agent's token, swarm key, API token (in /run/secrets), identity key, its
environment and another task's workspace; that write into the data directory, the agent's
log and another workspace; that try to kill the agent; and that leave processes behind.
Then: the agent is alive and healthy, no comment, log line or decision-log entry holds a
secret in any spelling, the log verifies, the identity key is unchanged, nothing is left
running, and SIGTERM stops the agent with exit 0.

  bwrap-root       the agent is root, tasks run as nobody under bubblewrap
  bwrap-user       the agent runs as an unprivileged uid and tasks share it (the shipped
                   image): only bubblewrap keeps them from the agent's files
  container-root   the agent is root, one container per task on podman, no network

And the agent killed with SIGKILL while a task runs: bubblewrap's tasks die with it; a
task container outlives it and the restarted agent removes it.
"""

import os
import shutil

import pytest

from bzzz.testing import hostile, procs
from bzzz.testing import podman as podman_helper
from bzzz.testing.hostile import Hostile, HostileRun, Setup, containers_of
from bzzz.testing.wait import wait_for

from .conftest import require

SETUPS = ["bwrap-root", "bwrap-user", "container-root"]


@pytest.fixture(scope="module")
def podman():
    ok, reason = podman_helper.available()
    require(ok, reason)
    with podman_helper.PodmanService() as service:
        yield service


def make_setup(name: str, request) -> Setup:
    require(os.geteuid() == 0, "the hostile suite runs agents as root and as another uid")
    if name.startswith("bwrap"):
        require(shutil.which("bwrap") is not None, "bubblewrap is not installed")
    if name == "bwrap-root":
        return Setup(name, "bwrap")
    if name == "bwrap-user":
        require(hostile.python_for(hostile.USER_UID) is not None,
                f"no python that uid {hostile.USER_UID} can run bzzz with")
        return Setup(name, "bwrap", uid=hostile.USER_UID)
    return Setup(name, "container", podman=request.getfixturevalue("podman"))


@pytest.mark.parametrize("name", SETUPS)
def test_hostile_tasks_are_contained(name, request):
    setup = make_setup(name, request)
    with HostileRun(setup) as run:
        report = run.run()
        log_tail = run.agent.log_text()[-2000:]
    summary = report.summary()
    print(summary)
    assert not report.problems, f"{summary}\n--- agent log tail ---\n{log_tail}"
    for m in report.metrics():
        assert m["value"] == 0, f"{m['metric']} = {m['value']}\n{summary}"
    assert all(t.outcome != "no result" for t in report.tasks), summary
    assert all(t.labels & hostile.DONE for t in report.tasks), summary
    assert report.agent_exit == 0
    # the sandbox, not only the Guardian, was tested: of every kind, some tasks ran
    for kind in ("secret", "write", "leave", "kill"):
        ran = [t.hostile.name for t in report.tasks
               if t.hostile.kind == kind and t.outcome != "refused"]
        assert ran, f"the Guardian refused every {kind} task: the corpus no longer tests " \
                    f"the sandbox\n{summary}"
    assert len(report.tasks) >= 25


@pytest.mark.parametrize("name", SETUPS)
def test_kill_9_of_the_agent_leaves_no_task_behind(name, request):
    setup = make_setup(name, request)
    main, child = procs.unique_seconds(), procs.unique_seconds()
    with HostileRun(setup) as run:
        a = run.agent
        a.start()
        long = run.open_issue(Hostile("long", "leave", f"nohup sleep {child} >/dev/null 2>&1 &\n"
                                      f"sleep {main}", sleeps=(main, child)))
        run.results.append(long)  # its processes are killed at the end whatever happens
        wait_for(lambda: procs.with_arg(main) and procs.with_arg(child), 30,
                 what="the long task and its nohup child run")
        a.kill9()
        if setup.sandbox == "bwrap":  # --die-with-parent: the kernel ends the whole sandbox
            wait_for(lambda: not procs.with_arg(main) and not procs.with_arg(child), 5,
                     what="the task's processes die with the agent")
        else:  # the container outlives the agent; the next start removes it
            assert containers_of(setup.podman, run.node) == [f"{hostile.REPO}#{long.number}"]
            run.close_issue(long)  # the restarted agent must not run it again
            a.start()  # same data dir, same node id
            wait_for(lambda: not containers_of(setup.podman, run.node), 30,
                     what="the restarted agent reaps the container")
            wait_for(lambda: not procs.with_arg(main) and not procs.with_arg(child), 10,
                     what="the container's processes are gone")
            assert '"reaped": 1' in a.log_text()
            assert a.healthz()
            assert a.terminate() == 0
