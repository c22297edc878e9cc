"""The monitoring node end to end: real `bzzz run` agents, a real `bzzz monitor`, devhub."""

import json
import os
import signal
import threading

import httpx
import pytest

from bzzz.devhub import DevHubThread
from bzzz.testing.agents import start, start_monitor
from bzzz.testing.netns import wait_for

SEED = {"users": [{"login": "owner", "token": "t-owner"}, {"login": "bot", "token": "t-bot"},
                  {"login": "mon", "token": "t-mon"}],
        "repos": [{"full_name": "owner/tasks", "push": ["bot", "mon"]}]}
FAST = {"BZZZ_GITHUB__POLL_INTERVAL": "0.3", "BZZZ_GITHUB__WRITE_INTERVAL": "0",
        "BZZZ_ANNOUNCE_INTERVAL": "1", "BZZZ_SANDBOX": "none", "BZZZ_GITHUB__CHECKOUT": "off"}


def mesh(mon):
    return httpx.get(f"{mon.url}/api/v1/mesh", timeout=10).json()


def agent_doc(mon, name):
    return next((a for a in mesh(mon)["agents"] if a["node_id"] == name), None)


def task_state(mon, n):
    r = httpx.get(f"{mon.url}/api/v1/tasks/owner/tasks/{n}", timeout=10)
    return r.json()["task"]["state"] if r.status_code == 200 else None


class Events:
    """Reads the monitor's event stream in a thread."""

    def __init__(self, url):
        self.items, self.stop = [], False
        self.thread = threading.Thread(target=self._run, args=(url,), daemon=True)
        self.thread.start()

    def _run(self, url):
        with httpx.stream("GET", f"{url}/api/v1/events", timeout=None) as r:
            kind = None
            for line in r.iter_lines():
                if self.stop:
                    return
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    self.items.append((kind, json.loads(line[6:])))


def agent(tmp_path, workdir, name, hub, **env):
    return start(tmp_path, name, hub.url, "t-bot", "owner/tasks",
                 BZZZ_WORKSPACE_DIR=os.path.join(workdir, name), **FAST, **env)


@pytest.fixture
def mesh_of_two(tmp_path, workdir):
    with DevHubThread(seed=SEED) as hub:
        a1 = agent(tmp_path, workdir, "a1", hub)
        a2 = agent(tmp_path, workdir, "a2", hub, bootstrap=a1.addr)
        mon = start_monitor(tmp_path, hub.url, "t-mon", "owner/tasks", bootstrap=a1.addr,
                            BZZZ_ANNOUNCE_INTERVAL="1", BZZZ_MONITOR__POLL_INTERVAL="0.5",
                            BZZZ_MONITOR__AGENT_EXPIRY="4")
        try:
            wait_for(lambda: _up(mon), 30, what="the monitor answers")
            yield hub, (a1, a2), mon
        finally:
            for p in (mon, a2, a1):
                p.stop()


def _up(mon):
    try:
        return httpx.get(f"{mon.url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_the_monitor_sees_every_agent_and_follows_tasks_to_the_end(mesh_of_two):
    hub, (a1, a2), mon = mesh_of_two
    owner = httpx.Client(base_url=hub.url, headers={"Authorization": "token t-owner"})
    wait_for(lambda: {a["node_id"]: a["state"] for a in mesh(mon)["agents"]}
             == {"a1": "up", "a2": "up"}, 30, what="both agents up on the monitor")
    events = Events(mon.url)
    n = owner.post("/repos/owner/tasks/issues", json={
        "title": "say <b>hi</b>", "body": "```bzzz\necho hello-from-the-mesh\n```",
        "labels": ["bzzz"]}).json()["number"]
    wait_for(lambda: task_state(mon, n) == "done", 60, what="the task done on the monitor")
    doc = httpx.get(f"{mon.url}/api/v1/tasks/owner/tasks/{n}").json()
    kinds = [e["type"] for e in doc["timeline"]]
    for kind in ("claimed", "running", "result", "reported"):
        assert kind in kinds, kinds
    assert doc["task"]["title"] == "say <b>hi</b>" and doc["task"]["node"] in ("a1", "a2")
    assert doc["task"]["issue_url"]
    # the live stream told of the decisions as they were indexed
    wait_for(lambda: any(k == "entry" and d.get("issue") == n and d["type"] == "reported"
                         for k, d in events.items), 10, what="the reported entry streamed")
    assert any(k == "mesh" for k, _ in events.items)
    events.stop = True
    # every log verified, and the index answers the log viewer with filters
    m = mesh(mon)
    assert all(a["log"]["state"] == "verified" for a in m["agents"]), m["agents"]
    assert m["counts"]["done"] >= 1 and m["entries"] > 0
    holder = doc["task"]["agent"]
    log = httpx.get(f"{mon.url}/api/v1/agents/{holder}/log", params={"type": "result"}).json()
    assert log["state"] == "verified" and log["entries"]
    assert all(e["type"] == "result" for e in log["entries"])
    hits = httpx.get(f"{mon.url}/api/v1/agents/{holder}/log",
                     params={"q": "hello-from-the-mesh"}).json()["entries"]
    assert hits and all("hello-from-the-mesh" in json.dumps(e["data"]) for e in hits)
    assert httpx.get(f"{mon.url}/api/v1/tasks", params={"state": "done"}).json()["total"] >= 1
    assert httpx.get(f"{mon.url}/api/v1/tasks", params={"state": "bogus"}).status_code == 400
    # mesh-wide metrics
    text = httpx.get(f"{mon.url}/metrics").text
    assert 'bzzz_mesh_agents{state="up"} 2.0' in text
    assert 'bzzz_mesh_logs{state="verified"} 2.0' in text
    assert "bzzz_mesh_replication_lag_seconds_bucket" in text
    # the edges: the two agents are connected
    assert [sorted(e) for e in m["edges"]] == [sorted(a["peer_id"] for a in m["agents"])]
    # an agent killed goes grey within the expiry
    os.kill(a2.proc.pid, signal.SIGKILL)
    wait_for(lambda: (agent_doc(mon, "a2") or {}).get("state") == "gone", 20,
             what="the killed agent shown as gone")
    assert agent_doc(mon, "a1")["state"] == "up"
    assert mesh(mon)["edges"] == []


def test_the_form_files_a_task_behind_the_token(mesh_of_two):
    hub, _, mon = mesh_of_two
    doc = {"repo": "owner/tasks", "title": "From the form", "command": "echo formed",
           "priority": "high", "needs": ["shell"]}
    assert httpx.post(f"{mon.url}/api/v1/tasks", json=doc).status_code == 401
    assert httpx.post(f"{mon.url}/api/v1/tasks", json=doc,
                      headers={"Authorization": "Bearer wrong"}).status_code == 401
    auth = {"Authorization": f"Bearer {mon.token}"}
    bad = httpx.post(f"{mon.url}/api/v1/tasks", json={**doc, "priority": "urgent"}, headers=auth)
    assert bad.status_code == 400 and bad.json()["field"] == "priority"
    bad = httpx.post(f"{mon.url}/api/v1/tasks", json={**doc, "repo": "other/repo"}, headers=auth)
    assert bad.status_code == 400 and bad.json()["field"] == "repo"
    r = httpx.post(f"{mon.url}/api/v1/tasks", json=doc, headers=auth)
    assert r.status_code == 201, r.text
    n = r.json()["issue"]
    owner = httpx.Client(base_url=hub.url, headers={"Authorization": "token t-owner"})
    issue = owner.get(f"/repos/owner/tasks/issues/{n}").json()
    assert {x["name"] for x in issue["labels"]} >= {"bzzz", "priority:high", "needs:shell"}
    assert issue["user"]["login"] == "mon" and "echo formed" in issue["body"]
    wait_for(lambda: task_state(mon, n) == "done", 60, what="the form's task done")


def test_a_tampered_replica_shows_as_failing(tmp_path, workdir):
    with DevHubThread(seed=SEED) as hub:
        a1 = agent(tmp_path, workdir, "a1", hub)
        env = dict(BZZZ_ANNOUNCE_INTERVAL="1", BZZZ_MONITOR__POLL_INTERVAL="0")
        mon = start_monitor(tmp_path, hub.url, "t-mon", "owner/tasks", bootstrap=a1.addr, **env)
        try:
            wait_for(lambda: _up(mon) and (agent_doc(mon, "a1") or {}).get("log", {}).get(
                "state") == "verified", 30, what="a1's log verified on the monitor")
            key = agent_doc(mon, "a1")["log"]["key"]
            mon.stop()
            path = mon.data_dir / "replicas" / key / "log"
            data = bytearray(path.read_bytes())
            data[len(data) // 2] ^= 0xFF
            path.write_bytes(bytes(data))
            mon = start_monitor(tmp_path, hub.url, "t-mon", "owner/tasks", bootstrap=a1.addr,
                                **env)
            wait_for(lambda: _up(mon) and (agent_doc(mon, "a1") or {}).get("log", {}).get(
                "state") == "failing", 30, what="the tampered copy shown as failing")
            assert "verify" in agent_doc(mon, "a1")["log"]["error"]
            assert "bzzz_mesh_verification_failures_total 1.0" in httpx.get(
                f"{mon.url}/metrics").text
        finally:
            mon.stop()
            a1.stop()
