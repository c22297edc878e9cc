"""The monitoring node end to end: real `bzzz run` agents, a real `bzzz monitor`, devhub."""

import json
import os
import signal
import threading

import httpx
import pytest

from bzzz.devhub import DevHubThread
from bzzz.testing.agents import start, start_monitor, stop_all
from bzzz.testing.wait import wait_for

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
        try:
            with httpx.stream("GET", f"{url}/api/v1/events", timeout=None) as r:
                kind = None
                for line in r.iter_lines():
                    if self.stop:
                        return
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: "):
                        self.items.append((kind, json.loads(line[6:])))
        except httpx.HTTPError:  # the monitor stopped at the end of the test
            pass


def agent(tmp_path, workdir, name, hub, **env):
    return start(tmp_path, name, hub.url, "t-bot", "owner/tasks",
                 BZZZ_WORKSPACE_DIR=os.path.join(workdir, name), **FAST, **env)


@pytest.fixture
def mesh_of_two(tmp_path, workdir):
    with DevHubThread(seed=SEED) as hub:
        a1 = agent(tmp_path, workdir, "a1", hub)
        # a bootstrap address that does not answer yet is not dialled again soon: wait for it
        wait_for(lambda: _agent_status(a1), 30, what="a1 answers")
        a2 = agent(tmp_path, workdir, "a2", hub, bootstrap=a1.addr)
        mon = start_monitor(tmp_path, hub.url, "t-mon", "owner/tasks", bootstrap=a1.addr,
                            BZZZ_ANNOUNCE_INTERVAL="1", BZZZ_MONITOR__POLL_INTERVAL="0.5",
                            BZZZ_MONITOR__AGENT_EXPIRY="4")
        try:
            wait_for(lambda: _up(mon), 30, what="the monitor answers")
            yield hub, (a1, a2), mon
        finally:
            stop_all((mon, a2, a1))


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
    # GitHub's labels may say done before the agent's log reached the monitor: the
    # timeline fills as the log is replicated and indexed
    timeline = lambda: [e["type"] for e in httpx.get(  # noqa: E731
        f"{mon.url}/api/v1/tasks/owner/tasks/{n}").json()["timeline"]]
    wait_for(lambda: "reported" in timeline(), 30, what="the task's decisions indexed")
    doc = httpx.get(f"{mon.url}/api/v1/tasks/owner/tasks/{n}").json()
    kinds = [e["type"] for e in doc["timeline"]]
    for kind in ("claimed", "running", "result", "reported"):
        assert kind in kinds, kinds
    assert doc["task"]["title"] == "say <b>hi</b>" and doc["task"]["node"] in ("a1", "a2")
    # the link comes from GitHub's poll, which a task named by a log brings forward
    wait_for(lambda: httpx.get(f"{mon.url}/api/v1/tasks/owner/tasks/{n}").json()
             ["task"]["issue_url"], 10, what="the issue's link from GitHub's poll")
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
        wait_for(lambda: _agent_status(a1), 30, what="a1 answers")
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


def _agent_status(a):
    try:
        return httpx.get(f"{a.api}/api/v1/status", timeout=3).json()
    except (httpx.HTTPError, ValueError):
        return None


def test_replication_survives_twenty_restarts_while_agents_write(tmp_path):
    """Agents killed (SIGKILL) or stopped and restarted 20 times while they write decisions:
    the monitor ends with every log complete and verified."""
    env = {"BZZZ_ANNOUNCE_INTERVAL": "1"}
    a1 = start(tmp_path, "a1", "http://127.0.0.1:9", "unused", "", **env)
    wait_for(lambda: _agent_status(a1), 30, what="a1 answers")  # before it is bootstrapped to
    a2 = start(tmp_path, "a2", "http://127.0.0.1:9", "unused", "", bootstrap=a1.addr, **env)
    mon = start_monitor(tmp_path, "http://127.0.0.1:9", "unused", "", bootstrap=a1.addr,
                        BZZZ_ANNOUNCE_INTERVAL="1", BZZZ_MONITOR__POLL_INTERVAL="0",
                        BZZZ_MONITOR__AGENT_EXPIRY="4")
    agents = [a1, a2]
    try:
        wait_for(lambda: _up(mon), 30, what="the monitor answers")
        # the monitor knows a1 only by the address it had at start: the churn begins once
        # the monitor is in the mesh (else a1 moving at once would leave it with nobody)
        wait_for(lambda: {d["node_id"] for d in mesh(mon)["agents"]} == {"a1", "a2"}, 30,
                 what="the monitor sees both agents")
        for round_ in range(20):
            victim = agents[round_ % 2]
            other = agents[1 - round_ % 2]
            wait_for(lambda other=other: _agent_status(other), 30,
                     what="the other agent answers")
            for _ in range(3):  # the survivor keeps writing while the victim is down
                httpx.post(f"{other.api}/api/v1/help/probe",
                           json={"needs": ["nothing"], "wait": 0.05}, timeout=10)
            if round_ % 3 == 0:
                victim.stop()
            else:
                victim.proc.kill()
                victim.proc.wait()
            new = start(tmp_path, victim.name, "http://127.0.0.1:9", "unused", "",
                        bootstrap=other.addr, **env)
            agents[round_ % 2] = new
        lengths = {}
        for a in agents:
            wait_for(lambda a=a: _agent_status(a), 30, what=f"{a.name} answers")

        def complete():
            # each agent's length as it is now: a restarted agent may still log a gossip
            # replay (a help request relayed to it when it rejoins) after a first look
            for a in agents:
                st = _agent_status(a)
                lengths[a.name] = (st["log"]["key"], st["log"]["length"])
            docs = {d["node_id"]: d for d in mesh(mon)["agents"]}
            return all(docs.get(name, {}).get("log", {}).get("replicated") == length
                       and docs[name]["log"]["key"] == key
                       and docs[name]["log"]["state"] == "verified"
                       and docs[name]["log"]["indexed"] == length
                       for name, (key, length) in lengths.items())
        try:
            wait_for(complete, 60, what="every log complete and verified on the monitor")
        except TimeoutError:
            print(lengths, json.dumps(mesh(mon)["agents"], indent=1))
            raise
        assert all(n > 20 for _, n in lengths.values()), lengths
    finally:
        stop_all([mon] + agents)


class _Receiver:
    """Callback receiver (a stdlib HTTP server in a thread): records each POST."""

    def __init__(self):
        import http.server
        got = self.got = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                got.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self):
        return [json.loads(b)["event"] for _, b in self.got]


def test_hive_enqueue_through_the_monitor_with_callbacks_from_the_logs(tmp_path, workdir):
    import hashlib
    import hmac
    (tmp_path / "enqueue-tokens").write_text("hive hive-token-0123456789abcdef\n")
    (tmp_path / "callback-secret").write_text("callback-secret-for-tests\n")
    receiver = _Receiver()
    quick_start = (b'{"jobId":"hive-quickstart-1","repo":"owner/tasks","branch":"main",'
                   b'"base":"main","task":"shell","instructions":"echo hello from hive"}')
    with DevHubThread(seed=SEED) as hub:
        a1 = agent(tmp_path, workdir, "a1", hub)
        wait_for(lambda: _agent_status(a1), 30, what="a1 answers")
        mon = start_monitor(tmp_path, hub.url, "t-mon", "owner/tasks", bootstrap=a1.addr,
                            BZZZ_ANNOUNCE_INTERVAL="1", BZZZ_MONITOR__POLL_INTERVAL="0.5",
                            BZZZ_MONITOR__ENQUEUE_TOKENS_FILE=str(tmp_path / "enqueue-tokens"),
                            BZZZ_MONITOR__CALLBACK_SECRET_FILE=str(tmp_path / "callback-secret"),
                            # the receiver is on loopback, denied by default
                            BZZZ_MONITOR__CALLBACK_ALLOW='["127.0.0.0/8"]')
        try:
            wait_for(lambda: _up(mon), 30, what="the monitor answers")
            auth = {"Authorization": "Bearer hive-token-0123456789abcdef",
                    "Content-Type": "application/json"}
            assert httpx.get(f"{mon.url}/health").status_code == 200
            assert httpx.post(f"{mon.url}/enqueue", content=quick_start,
                              headers={**auth, "Authorization": "Bearer nope"}).status_code == 401
            r = httpx.post(f"{mon.url}/enqueue", content=quick_start, headers=auth, timeout=30)
            assert r.status_code == 202, r.text
            first = r.json()
            again = httpx.post(f"{mon.url}/enqueue", content=quick_start, headers=auth, timeout=30)
            assert again.status_code in (200, 202) and again.json()["issue"] == first["issue"]
            job = {"jobId": "with-callback", "repo": "owner/tasks", "task": "shell",
                   "instructions": "echo called back", "callbackUrl": receiver.url}
            r = httpx.post(f"{mon.url}/enqueue", json=job, headers=auth, timeout=30)
            assert r.status_code == 202, r.text
            n = r.json()["issue"]
            wait_for(lambda: task_state(mon, first["issue"]) == "done", 60,
                     what="the quick-start job done")
            wait_for(lambda: receiver.events()[-1:] == ["done"], 60, what="the done callback")
            assert receiver.events() == ["claimed", "done"], receiver.events()
            for headers, body in receiver.got:
                want = "sha256=" + hmac.new(b"callback-secret-for-tests", body,
                                            hashlib.sha256).hexdigest()
                assert headers["x-bzzz-signature-256"] == want
                doc = json.loads(body)
                assert doc["jobId"] == "with-callback" and doc["issue"] == n
            assert len({json.loads(b)["deliveryId"] for _, b in receiver.got}) == 2
            state = httpx.get(f"{mon.url}/jobs/with-callback",
                              headers={"Authorization": auth["Authorization"]}).json()
            assert state["issue"] == n
        finally:
            mon.stop()
            a1.stop()
            receiver.server.shutdown()


def test_a_forked_log_is_shown_frozen(tmp_path):
    """An agent whose log was replaced by another history under the same key (a restored
    backup, a copied data directory): the monitor's copy proves the fork and shows it frozen."""
    import shutil
    env = {"BZZZ_ANNOUNCE_INTERVAL": "1"}
    a1 = start(tmp_path, "a1", "http://127.0.0.1:9", "unused", "", **env)
    wait_for(lambda: _agent_status(a1), 30, what="a1 answers")  # before it is bootstrapped to
    mon = start_monitor(tmp_path, "http://127.0.0.1:9", "unused", "", bootstrap=a1.addr,
                        BZZZ_ANNOUNCE_INTERVAL="1", BZZZ_MONITOR__POLL_INTERVAL="0")
    try:
        wait_for(lambda: _up(mon) and _agent_status(a1), 30, what="both up")
        for _ in range(5):
            httpx.post(f"{a1.api}/api/v1/help/probe", json={"needs": ["x"], "wait": 0.05},
                       timeout=10)
        length = _agent_status(a1)["log"]["length"]
        wait_for(lambda: (agent_doc(mon, "a1") or {}).get("log", {}).get("replicated") == length,
                 30, what="the monitor holds a1's whole log")
        a1.stop()
        shutil.rmtree(a1.data_dir / "log")  # same identity, so the same log key: a fork
        a1 = start(tmp_path, "a1", "http://127.0.0.1:9", "unused", "", bootstrap=mon.addr,
                   **env)
        wait_for(lambda: (agent_doc(mon, "a1") or {}).get("log", {}).get("state") == "frozen",
                 40, what="the forked log shown frozen")
        assert "two histories" in agent_doc(mon, "a1")["log"]["error"]
        assert 'bzzz_mesh_logs{state="frozen"} 1.0' in httpx.get(f"{mon.url}/metrics").text
    finally:
        mon.stop()
        a1.stop()
