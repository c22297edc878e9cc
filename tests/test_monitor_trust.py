"""Issue #19, the monitor's side: a peer's log speaks for a task only while that peer held
the task's claim; a decision dated in the future pins nothing; GitHub's settled state wins;
a peer cannot pass another agent's log off as its own. Through the public surface: a real
peer on the mesh writing its own signed log, the monitor's HTTP API, devhub."""

import json
import time

import httpx
import trio

from bzzz.github.client import GitHubClient
from bzzz.claim.gitlock import ClaimLock
from bzzz.config import Config
from bzzz.devhub import DevHubThread
from bzzz.monitor.node import Monitor
from bzzz.testing.wait import wait_until, wait_until_async

from .helpers import start_agent
from .test_bridge import Receiver, start_receiver

SEED = {"users": [{"login": "owner", "token": "t-owner"}, {"login": "bot", "token": "t-bot"},
                  {"login": "mon", "token": "t-mon"}],
        "repos": [{"full_name": "owner/tasks", "push": ["bot", "mon"]}]}
HIVE = "hive-token-0123456789abcdef"


def monitor_config(tmp_path, hub, **monitor) -> Config:
    (tmp_path / "gh-token").write_text("t-mon\n")
    (tmp_path / "tokens").write_text(f"hive {HIVE}\n")
    (tmp_path / "secret").write_text("callback-secret-for-tests\n")
    return Config(node_id="mon", data_dir=tmp_path / "mon", listen=["/ip4/127.0.0.1/tcp/0"],
                  mdns=False, announce_interval=1.0,
                  github={"url": hub.url, "token_file": tmp_path / "gh-token",
                          "repos": ["owner/tasks"]},
                  monitor={"listen": "127.0.0.1:0", "poll_interval": 0.2,
                           "enqueue_tokens_file": tmp_path / "tokens",
                           "callback_secret_file": tmp_path / "secret",
                           "callback_allow": ["127.0.0.0/8"], **monitor})


async def start_monitor(nursery, config) -> tuple[Monitor, str]:
    mon = Monitor(config)
    await nursery.start(lambda task_status: mon.run(task_status, handle_signals=False))
    return mon, mon.bound[0]


def address(node) -> list[str]:
    return [f"{node.node.addrs()[0]}/p2p/{node.peer_id}"]


async def get(url, path, **kw):
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        return await http.get(path, **kw)


async def enqueue(url, job_id, callback):
    async with httpx.AsyncClient(base_url=url, timeout=30,
                                 headers={"Authorization": f"Bearer {HIVE}"}) as http:
        r = await http.post("/enqueue", json={
            "jobId": job_id, "repo": "owner/tasks", "task": "shell",
            "instructions": f"echo {job_id}", "callbackUrl": callback})
        assert r.status_code == 202, r.text
        return r.json()["issue"]


async def indexed(url, peer, n):
    """The monitor indexed ``n`` entries of ``peer``'s log (they are kept, counted or not)."""
    r = await get(url, f"/api/v1/agents/{peer}/log", params={"limit": 1000})
    return r.status_code == 200 and len(r.json()["entries"]) >= n


async def test_only_the_claim_holder_speaks_for_a_task_and_github_wins(tmp_path):
    with DevHubThread(seed=SEED) as hub:
        async with trio.open_nursery() as nursery:
            receiver = Receiver()
            hook = await start_receiver(nursery, receiver) + "/hook"
            mon, url = await start_monitor(nursery, monitor_config(tmp_path, hub))
            forged = await enqueue(url, "forged", hook)
            held = await enqueue(url, "held", hook)
            # a peer on the mesh (any node holding the private-network key) with a signed log
            evil = await start_agent(nursery, tmp_path, "evil", bootstrap=address(mon))
            peer = evil.peer_id
            # it holds issue `held` the way agents do: a claim commit and ref naming it
            async with GitHubClient(hub.url, "t-bot") as gh:
                got = await ClaimLock(gh, "owner/tasks", "evil", peer, "bot").acquire(held)
            now = time.time()
            task = {"repo": "owner/tasks", "issue": forged, "node": "evil"}
            for entry in [
                    {**task, "type": "claimed", "generation": 1, "title": "forged"},
                    {**task, "type": "pull_request", "pr": 99, "branch": "bzzz/x",
                     "pr_url": "https://evil.example/pull/99"},
                    {**task, "type": "reported", "status": "succeeded"},
                    # dated a day ahead: it would pin the task's state until then
                    {**task, "type": "reported", "status": "failed", "ts": now + 86400},
                    # a cancel command nobody wrote
                    {**task, "type": "command", "verb": "cancel", "by": "owner",
                     "comment": 424242, "acting": True},
                    {"repo": "owner/tasks", "issue": held, "node": "evil", "type": "claimed",
                     "generation": got.claim.generation, "claim": got.sha},
                    {"repo": "owner/tasks", "issue": held, "node": "evil", "type": "reported",
                     "status": "succeeded"}]:
                evil.decisions.append(entry)
            length = evil.decisions.length
            await wait_until_async(lambda: indexed(url, peer, length - 1),  # less its "started"
                                   30, "the peer's log indexed", interval=0.05)
            # the holder's decisions count: its job's callbacks go out
            await wait_until(lambda: [json.loads(b)["jobId"] for _, b in receiver.got
                                 ].count("held") == 2, 20, "the held job's callbacks")
            # (callbacks are queued as the log is indexed: the forged ones would be queued)
            assert [(json.loads(b)["jobId"], json.loads(b)["event"]) for _, b in receiver.got
                    ] == [("held", "claimed"), ("held", "done")]
            # the forged ones are kept in the log, and change nothing
            doc = (await get(url, f"/api/v1/tasks/owner/tasks/{forged}")).json()
            assert doc["task"]["state"] == "waiting", doc["task"]
            assert doc["task"]["pr"] is None and doc["task"]["pr_url"] is None
            assert doc["task"]["agent"] is None
            kinds = [e["type"] for e in doc["timeline"]]
            assert kinds.count("reported") == 2 and "pull_request" in kinds
            job = (await get(url, "/jobs/forged",
                             headers={"Authorization": f"Bearer {HIVE}"})).json()
            assert job["status"] not in ("done", "failed", "cancelled", "review"), job
            assert job["events"] == []
            metrics = (await get(url, "/metrics")).text
            assert 'bzzz_mesh_decisions_refused_total{reason="no_claim"} 3.0' in metrics
            assert 'bzzz_mesh_decisions_refused_total{reason="future"} 1.0' in metrics
            assert 'bzzz_mesh_decisions_refused_total{reason="command"} 1.0' in metrics
            # GitHub says the held task failed: a later word of its holder does not undo it
            async with httpx.AsyncClient(base_url=hub.url,
                                         headers={"Authorization": "token t-owner"}) as owner:
                r = await owner.patch(f"/repos/owner/tasks/issues/{held}", json={
                    "state": "closed", "labels": ["bzzz", "bzzz:failed"]})
            assert r.status_code == 200, r.text

            async def state(n):
                return (await get(url, f"/api/v1/tasks/owner/tasks/{n}")).json()["task"]["state"]

            async def held_failed():
                return await state(held) == "failed"
            await wait_until_async(held_failed, 20, "the monitor reads GitHub's failed",
                                   interval=0.05)
            evil.decisions.append({"repo": "owner/tasks", "issue": held, "node": "evil",
                                   "type": "reported", "status": "succeeded",
                                   "ts": time.time() + 5})
            await wait_until_async(lambda: indexed(url, peer, length), 20,
                                   "the late word indexed", interval=0.05)
            assert await state(held) == "failed"
            nursery.cancel_scope.cancel()


async def test_a_peer_cannot_announce_another_agents_log_as_its_own(tmp_path):
    with DevHubThread(seed=SEED) as hub:
        async with trio.open_nursery() as nursery:
            mon, url = await start_monitor(nursery, monitor_config(tmp_path, hub))
            honest = await start_agent(nursery, tmp_path, "honest", bootstrap=address(mon))
            evil = await start_agent(nursery, tmp_path, "evil", bootstrap=address(mon))
            for i in range(5):
                honest.decisions.append({"type": "test", "i": i})
            honest_key = honest.decisions.key

            async def docs():
                r = await get(url, "/api/v1/mesh")
                return {a["node_id"]: a for a in r.json()["agents"]}

            async def honest_indexed():
                return (await docs()).get("honest", {}).get("log", {}).get("indexed", 0) >= 6
            await wait_until_async(honest_indexed, 30, "honest's log indexed", interval=0.05)
            # evil says honest's log is its own
            evil.mesh.log_key = honest_key
            await wait_until(lambda: (e := mon.mesh.table.get(evil.peer_id)) is not None
                             and e.announcement.log_key == honest_key, 20,
                             "evil's announcement heard", interval=0.05)
            heard = mon.mesh.table.get(evil.peer_id).last_seen

            async def page_heard():
                return (await docs())["evil"]["last_seen"] >= heard
            # the monitor's page has taken that announcement in
            await wait_until_async(page_heard, 20, "the page took it in", interval=0.05)
            assert (await docs())["evil"]["log"]["key"] == evil.decisions.key
            assert 'reason="log_key"} 1.0' in (await get(url, "/metrics")).text
            for i in range(5, 8):
                honest.decisions.append({"type": "test", "i": i})

            async def new_entries_indexed():
                return (await docs())["honest"]["log"]["indexed"] >= 9
            await wait_until_async(new_entries_indexed, 20, "honest's new entries",
                                   interval=0.05)
            agents = await docs()
            assert agents["honest"]["log"]["key"] == honest_key
            assert agents["evil"]["log"]["key"] == evil.decisions.key
            # the log and its new entries are still honest's, and only honest's
            r = (await get(url, f"/api/v1/agents/{honest.peer_id}/log")).json()
            assert r["key"] == honest_key and len(r["entries"]) == 9
            r = (await get(url, f"/api/v1/agents/{evil.peer_id}/log")).json()
            assert r["key"] != honest_key
            info = mon.index.logs[honest_key]
            assert info.peer_id == honest.peer_id
            nursery.cancel_scope.cancel()


async def test_reads_beyond_loopback_need_the_viewer_token(tmp_path):
    import pytest
    from bzzz.monitor.node import MonitorError
    with DevHubThread(seed=SEED) as hub:
        # listening beyond loopback with no viewer token: refused, saying what to set
        with pytest.raises(MonitorError, match="monitor.viewer_token_file"):
            Monitor(monitor_config(tmp_path, hub, listen="0.0.0.0:0"))
        (tmp_path / "viewer").write_text("viewer-token-0123456789\n")
        (tmp_path / "form").write_text("form-token-0123456789\n")
        config = monitor_config(tmp_path, hub, listen="0.0.0.0:0",
                                viewer_token_file=tmp_path / "viewer",
                                token_file=tmp_path / "form")
        async with trio.open_nursery() as nursery:
            mon, _ = await start_monitor(nursery, config)
            port = mon.bound[0].rsplit(":", 1)[1]
            url = f"http://127.0.0.1:{port}"
            viewer = {"Authorization": "Bearer viewer-token-0123456789"}
            reads = ["/api/v1/mesh", "/api/v1/tasks", "/api/v1/tasks/owner/tasks/1",
                     f"/api/v1/agents/{mon.peer_id}/log"]
            for path in reads:
                r = await get(url, path)
                assert r.status_code == 401, (path, r.status_code)
                assert "www-authenticate" in r.headers
                assert (await get(url, path, headers={
                    "Authorization": "Bearer wrong"})).status_code == 401
                assert (await get(url, path, headers=viewer)).status_code in (200, 404)
            assert (await get(url, "/api/v1/mesh", headers={
                "Authorization": "Bearer form-token-0123456789"})).status_code == 200
            # the page, its files, health and metrics stay open; metrics carry no titles
            for path in ("/", "/static/app.js", "/healthz", "/metrics"):
                assert (await get(url, path)).status_code == 200, path
            # the event stream: its cookie (EventSource sends no header)
            async with httpx.AsyncClient(base_url=url, timeout=10) as http:
                async with http.stream("GET", "/api/v1/events") as r:
                    assert r.status_code == 401
                async with http.stream("GET", "/api/v1/events", headers={
                        "Cookie": "bzzz_viewer=viewer-token-0123456789"}) as r:
                    assert r.status_code == 200
                    async for line in r.aiter_lines():
                        if line.startswith("event: mesh"):
                            break
                # the viewer token reads, it does not act
                r = await http.post("/api/v1/tasks", headers=viewer, json={
                    "repo": "owner/tasks", "title": "x", "instructions": "echo x"})
                assert r.status_code == 401
            nursery.cancel_scope.cancel()
    assert "viewer-token-0123456789" not in (tmp_path / "mon").joinpath(
        "monitor.sqlite3").read_bytes().decode("latin-1")
