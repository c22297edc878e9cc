"""Real `bzzz run` processes taking tasks from devhub."""

import os
import signal
import subprocess
import sys

import httpx

from bzzz.devhub import DevHubThread
from bzzz.hyperlog.store import read_entries, verify_dir
from bzzz.testing.wait import wait_for

from .conftest import require
from .helpers import free_port

SEED = {"users": [{"login": "owner", "token": "t-owner"}, {"login": "bot", "token": "t-bot"}],
        "repos": [{"full_name": "owner/tasks", "push": ["bot"]}]}


def start_agent(tmp_path, name, hub, workdir, **env):
    (tmp_path / "token").write_text("t-bot\n")
    api = free_port()
    e = {k: v for k, v in os.environ.items() if not k.startswith("BZZZ_")}
    e.update({"BZZZ_NODE_ID": name, "BZZZ_DATA_DIR": str(tmp_path / name),
              "BZZZ_LISTEN": "/ip4/127.0.0.1/tcp/0", "BZZZ_API_LISTEN": f"127.0.0.1:{api}",
              "BZZZ_MDNS": "off", "BZZZ_GITHUB__URL": hub.url,
              "BZZZ_GITHUB__REPOS": "owner/tasks", "BZZZ_GITHUB__POLL_INTERVAL": "0.3",
              "BZZZ_GITHUB__WRITE_INTERVAL": "0", "GITHUB_TOKEN_FILE": str(tmp_path / "token"),
              "BZZZ_WORKSPACE_DIR": os.path.join(workdir, name), **env})
    log = open(tmp_path / f"{name}.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "bzzz", "run"], env=e, stdout=log,
                            stderr=subprocess.STDOUT)
    return proc, api


def labels(owner, n):
    return {l["name"] for l in owner.get(f"/repos/owner/tasks/issues/{n}").json()["labels"]}


def test_agents_complete_tasks_and_the_token_never_leaks(tmp_path, workdir):
    with DevHubThread(seed=SEED) as hub:
        owner = httpx.Client(base_url=hub.url, headers={"Authorization": "token t-owner"})
        numbers = [owner.post("/repos/owner/tasks/issues", json={
            "title": f"t{i}", "body": f"```bzzz\necho task-{i}\n```", "labels": ["bzzz"]}
        ).json()["number"] for i in range(4)]
        agents = [start_agent(tmp_path, f"a{i}", hub, workdir, BZZZ_MAX_TASKS="2") for i in range(2)]
        try:
            wait_for(lambda: all("bzzz:done" in labels(owner, n) for n in numbers), 60,
                     what="all tasks done")
            status = httpx.get(f"http://127.0.0.1:{agents[0][1]}/api/v1/status").json()
            assert status["github"]["enabled"] and status["github"]["login"] == "bot"
            def completed():
                return sum(httpx.get(f"http://127.0.0.1:{api}/api/v1/status").json()["github"]
                           ["completed"] for _, api in agents)
            wait_for(lambda: completed() == 4, 30, what="both agents report 4 completed")
        finally:
            for proc, _ in agents:
                proc.terminate()
                assert proc.wait(15) == 0
        for i in range(2):
            text = (tmp_path / f"a{i}.log").read_text()
            assert "t-bot" not in text
            decisions = read_entries(tmp_path / f"a{i}" / "log")
            assert decisions and all("type" in d and "ts" in d for d in decisions)
            assert verify_dir(tmp_path / f"a{i}" / "log").ok


def test_kill_9_of_the_holder_then_takeover_after_the_lease(tmp_path, workdir):
    with DevHubThread(seed=SEED) as hub:
        owner = httpx.Client(base_url=hub.url, headers={"Authorization": "token t-owner"})
        n = owner.post("/repos/owner/tasks/issues", json={
            "title": "long", "body": "```bzzz\nsleep 300\n```", "labels": ["bzzz"]}).json()["number"]
        lease = {"BZZZ_GITHUB__LEASE": "3"}
        a, _ = start_agent(tmp_path, "a", hub, workdir, **lease)
        try:
            # the claim comment comes after the label: kill a once both are there
            wait_for(lambda: "bzzz:claimed" in labels(owner, n) and any(
                "Claimed by **a**" in c["body"] for c in owner.get(
                    f"/repos/owner/tasks/issues/{n}/comments").json()), 30, what="a claims")
        finally:
            a.send_signal(signal.SIGKILL)
            a.wait(10)
        owner.patch(f"/repos/owner/tasks/issues/{n}", json={"body": "```bzzz\necho rescued\n```"})
        b, _ = start_agent(tmp_path, "b", hub, workdir, **lease)
        try:
            wait_for(lambda: "bzzz:done" in labels(owner, n), 60, what="b takes over")
        finally:
            b.terminate()
            b.wait(15)
        comments = [c["body"] for c in owner.get(f"/repos/owner/tasks/issues/{n}/comments").json()]
        assert sum("Claimed by **a**" in c for c in comments) == 1
        assert sum("Claimed by **b**" in c for c in comments) == 1
        assert any("rescued" in c and "succeeded" in c for c in comments)
        decisions = read_entries(tmp_path / "b" / "log")
        assert "taken_over" in [d["type"] for d in decisions]


def test_an_agent_running_as_root_runs_tasks_unprivileged(tmp_path, workdir):
    require(os.geteuid() == 0, "needs root (the agent drops privileges for its tasks)")
    import pwd
    nobody = pwd.getpwnam("nobody").pw_uid
    key = tmp_path / "a" / "identity.key"
    with DevHubThread(seed=SEED) as hub:
        owner = httpx.Client(base_url=hub.url, headers={"Authorization": "token t-owner"})
        # a hostile task goes for the agent's key and token; it must not get them
        cmd = f"id -u; cat {key} {tmp_path / 'token'} || echo no-secrets-for-me"
        n = owner.post("/repos/owner/tasks/issues", json={
            "title": "who", "body": f"```bzzz\n{cmd}\n```", "labels": ["bzzz"]}).json()["number"]
        a, _ = start_agent(tmp_path, "a", hub, workdir)
        try:
            wait_for(lambda: labels(owner, n) & {"bzzz:done", "bzzz:failed"}, 60, what="ran")
        finally:
            a.terminate()
            a.wait(15)
        result = [c["body"] for c in owner.get(f"/repos/owner/tasks/issues/{n}/comments").json()
                  if "<!-- bzzz:result:" in c["body"]][0]
        assert f"\n{nobody}\n" in result and "no-secrets-for-me" in result
        assert "t-bot" not in result


def test_a_workspace_the_task_user_cannot_reach_is_refused_at_start(tmp_path):
    require(os.geteuid() == 0, "needs root (the agent drops privileges for its tasks)")
    (tmp_path / "token").write_text("t-bot\n")
    os.chmod(tmp_path, 0o700)
    e = {k: v for k, v in os.environ.items() if not k.startswith("BZZZ_")}
    e.update({"BZZZ_DATA_DIR": str(tmp_path / "a"), "BZZZ_GITHUB__URL": "http://127.0.0.1:9",
              "BZZZ_GITHUB__REPOS": "owner/tasks", "GITHUB_TOKEN_FILE": str(tmp_path / "token"),
              "BZZZ_API_LISTEN": f"127.0.0.1:{free_port()}", "BZZZ_MDNS": "off"})
    r = subprocess.run([sys.executable, "-m", "bzzz", "run"], env=e, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2
    # names the first directory on the way that the task user cannot enter
    assert "nobody" in r.stderr and "cannot enter /tmp/" in r.stderr and "workspace_dir" in r.stderr
    e["BZZZ_TASK_USER"] = "no-such-user-here"
    r = subprocess.run([sys.executable, "-m", "bzzz", "run"], env=e, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "no-such-user-here" in r.stderr
