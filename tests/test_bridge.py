"""The Hive bridge (POST /enqueue and job callbacks) against devhub, with a real agent."""

import ipaddress
import json
import time

import httpx
import pytest
import trio

from bzzz.asgi import lifespan, read_body, serve_app
from bzzz.github.client import GitHubClient
from bzzz.claim.task import spec_from_body
from bzzz.devhub import DevHubThread
from bzzz.hyperlog.store import read_entries
from bzzz.identity import load_or_create
from bzzz.monitor.bridge import EnqueueBridge, TokenFileError, load_tokens
from bzzz.monitor.callbacks import Callbacks
from bzzz.monitor.egress import (DEFAULT_DENY, Denied, Unresolved, check_literal, denied_by,
                                 parse_networks, resolve)
from bzzz.monitor.jobs import (JobError, issue_body, job_ref, parse_job, sign, verify)
from bzzz.monitor.jobstore import JobStore
from bzzz.testing.wait import wait_until

from .test_agent_tasks import start_agent

SEED = {"users": [{"login": "owner", "token": "t-owner"}, {"login": "bot", "token": "t-bot"},
                  {"login": "mon", "token": "t-mon-identity"}],
        "repos": [{"full_name": "owner/tasks", "push": ["bot", "mon"]}]}
REPO = "/repos/owner/tasks"
HIVE_TOKEN = "hive-token-0123456789abcdef"
N8N_TOKEN = "n8n-token-0123456789abcdef"
SECRET = b"callback-secret-for-tests"
OPEN = ()  # no denied networks: these tests' receivers listen on loopback

# Hive's quick-start request, as its client sends it (JSON.stringify: no spaces)
QUICK_START = (b'{"jobId":"hive-quickstart-1","repo":"owner/tasks","branch":"main",'
               b'"base":"main","task":"shell","instructions":"echo hello from hive"}')


def gh_client(hub, who="owner"):
    token = {"owner": "t-owner", "mon": "t-mon-identity"}[who]
    return httpx.Client(base_url=hub.url, headers={"Authorization": f"token {token}"}, timeout=30)


def issues(owner):
    return owner.get(f"{REPO}/issues", params={"state": "all", "per_page": 100}).json()


def labels(owner, n):
    return {x["name"] for x in owner.get(f"{REPO}/issues/{n}").json()["labels"]}


class Bridge:
    """An EnqueueBridge served with hypercorn on loopback."""

    def __init__(self, bridge, url, gh):
        self.bridge, self.url, self.gh = bridge, url, gh

    def http(self, token=HIVE_TOKEN):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30)


async def start_bridge(nursery, hub, state, **kw):
    gh = GitHubClient(hub.url, "t-mon-identity")
    kw.setdefault("callbacks", True)
    kw.setdefault("deny", OPEN)
    bridge = EnqueueBridge(gh, {"hive": HIVE_TOKEN, "n8n": N8N_TOKEN}, state, **kw)
    bound = await nursery.start(lambda task_status: serve_app(bridge, "127.0.0.1", 0,
                                                              task_status=task_status))
    return Bridge(bridge, bound[0], gh)


class Receiver:
    """A callback receiver: records every delivery; answers ``fail`` first with 503."""

    def __init__(self, fail=0, status=200):
        self.got, self.fail, self.status, self.url = [], fail, status, ""
        self.hits = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        body = await read_body(receive)
        self.hits += 1
        status = self.status
        if scope["path"] == "/moved":
            status = 999  # the redirect target: must never be reached
        elif self.fail > 0:
            self.fail -= 1
            status = 503
        elif status == 200:
            self.got.append(({k.decode().lower(): v.decode() for k, v in scope["headers"]},
                             body))
        extra = [(b"location", (self.url + "/moved").encode())] if 300 <= status < 400 else []
        await send({"type": "http.response.start", "status": 200 if status == 999 else status,
                    "headers": [(b"content-length", b"2"), *extra]})
        await send({"type": "http.response.body", "body": b"ok"})

    def events(self):
        return [json.loads(b)["event"] for _, b in self.got]


async def start_receiver(nursery, receiver):
    bound = await nursery.start(lambda task_status: serve_app(receiver, "127.0.0.1", 0,
                                                              task_status=task_status))
    receiver.url = bound[0]
    return bound[0]


def job(job_id, **fields):
    return {"jobId": job_id, "repo": "owner/tasks", "task": "shell",
            "instructions": f"echo {job_id}", **fields}


# ---------------------------------------------------------------------- the core


def test_jobs_are_validated_with_the_field_named():
    for doc, name in [([], "body"), ({}, "jobId"), (job("has space"), "jobId"),
                      (job("a", task="paint"), "task"), (job("a", instructions=""), "instructions"),
                      (job("a", instructions=3), "instructions"), (job("a", repo="nope"), "repo"),
                      (job("a", priority="urgent"), "priority"), (job("a", needs="a b"), "needs"),
                      (job("a", callbackUrl="file:///etc/passwd"), "callbackUrl"),
                      (job("a", callbackUrl="http://u:p@x/"), "callbackUrl"),
                      (job("a", branch="../x"), "branch"), (job("a", model="m"), "model")]:
        with pytest.raises(JobError) as err:
            parse_job(doc)
        assert err.value.field == name, (doc, err.value)
    with pytest.raises(JobError) as err:
        parse_job(job("a", task="paint"))
    assert err.value.doc()["allowed"] == ["agent", "shell", "llm"]
    # Hive's client sends a repository URL and calls a shell job "script"
    hive = parse_job({"jobId": "j", "repo": "https://github.com/owner/tasks.git", "task": "script",
                      "instructions": "x", "githubToken": "ghp_secret", "metadata": {"a": 1}})
    assert hive.repo == "owner/tasks" and hive.task == "shell"
    assert "ghp_secret" not in json.dumps(hive.normalised())
    assert parse_job(job("a")).digest == parse_job(dict(reversed(list(job("a").items())))).digest
    assert parse_job(job("a")).digest != parse_job(job("a", priority="high")).digest
    with pytest.raises(JobError):
        parse_job(job("a", callbackUrl="http://x/"), callbacks=False)


def test_the_issue_body_is_a_task_spec_agents_parse():
    tricky = "printf '```\\n'\n```\necho still-inside\n"
    for task, executor in [("shell", "shell"), ("agent", "agent"), ("llm", "llm")]:
        j = parse_job(job("j1", task=task, instructions=tricky, branch="feature/x", base="main",
                          **({"model": "tiny"} if task == "llm" else {})))
        spec = spec_from_body(issue_body(j, "hive"))
        assert spec.executor == executor and spec.code == tricky.rstrip("\n")
        assert spec.options["base"] == "main" and spec.options["branch"] == "feature/x"
        assert "<!-- bzzz:job:j1 -->" in issue_body(j, "hive")
    only_branch = parse_job(job("j2", branch="dev"))
    assert spec_from_body(issue_body(only_branch, "hive")).options["base"] == "dev"


def test_signature_matches_githubs_test_vector():
    sig = sign(b"It's a Secret to Everybody", b"Hello, World!")
    assert sig == "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert verify(b"It's a Secret to Everybody", b"Hello, World!", sig)
    assert not verify(b"other", b"Hello, World!", sig)


def test_tokens_file_errors_never_show_the_token(tmp_path):
    f = tmp_path / "tokens"
    f.write_text("# comment\nhive hive-token-0123456789abcdef\n\nn8n n8n-token-0123456789abcdef\n")
    assert load_tokens(f) == {"hive": HIVE_TOKEN, "n8n": N8N_TOKEN}
    for text in ["just-one-word-0123456789\n", "hive short\n",
                 f"a {HIVE_TOKEN}\na {N8N_TOKEN}\n", ""]:
        f.write_text(text)
        with pytest.raises(TokenFileError) as err:
            load_tokens(f)
        assert HIVE_TOKEN not in str(err.value) and "0123456789" not in str(err.value)
    with pytest.raises(TokenFileError):
        load_tokens(tmp_path / "missing")


# ---------------------------------------------------------------------- end to end


async def test_quick_start_runs_on_an_agent_with_callbacks_in_order(tmp_path, workdir):
    with DevHubThread(seed=SEED) as hub:
        owner = gh_client(hub)
        async with trio.open_nursery() as nursery:
            receiver = Receiver()
            await start_receiver(nursery, receiver)
            b = await start_bridge(nursery, hub, tmp_path / "state")
            callbacks = Callbacks(b.bridge.store, SECRET, deny=OPEN, backoff=0.05)
            await nursery.start(callbacks.run)
            # Hive's quick-start request, byte for byte
            async with b.http() as http:
                r = await http.post("/enqueue", content=QUICK_START,
                                    headers={"content-type": "application/json"})
                assert r.status_code == 202, r.text
                reply = r.json()
                assert set(reply) == {"jobId", "issue", "url", "status"}
                assert reply["jobId"] == "hive-quickstart-1"
                n = reply["issue"]
                issue = owner.get(f"{REPO}/issues/{n}").json()
                assert issue["user"]["login"] == "mon" and "bzzz" in labels(owner, n)
                assert "<!-- bzzz:job:hive-quickstart-1 -->" in issue["body"]
                assert "**hive**" in issue["body"]  # the token's name is the origin
                assert reply["url"] == issue["html_url"]
                # the replay answers the same issue, byte for byte the same reply
                again = await http.post("/enqueue", content=QUICK_START)
                assert again.status_code == 202 and again.json() == reply
                assert again.headers["x-bzzz-replay"] == "true"
                # a job with a callback, and one to cancel while it runs
                r = await http.post("/enqueue", json=job(
                    "cb-1", instructions="echo called-back", callbackUrl=receiver.url + "/hook",
                    priority="high", needs=["shell"]))
                cb = r.json()["issue"]
                assert {"priority:high", "needs:shell"} <= labels(owner, cb)
                r = await http.post("/enqueue", json=job(
                    "cancel-1", instructions="sleep 60", callbackUrl=receiver.url + "/hook"))
                slow = r.json()["issue"]
                assert len({n, cb, slow}) == 3

                proc, _ = await trio.to_thread.run_sync(
                    lambda: start_agent(tmp_path, "a1", hub, workdir, BZZZ_MAX_TASKS="3"))
                try:
                    await wait_until(lambda: "bzzz:done" in labels(owner, n), 90,
                                     "quick start done")
                    await wait_until(lambda: "bzzz:done" in labels(owner, cb), 60,
                                     "callback job done")
                    await wait_until(lambda: "bzzz:claimed" in labels(owner, slow), 60,
                                     "slow claimed")
                    r = await http.delete("/jobs/cancel-1")
                    assert r.status_code == 202 and r.json()["status"] == "cancelling"
                    assert (await http.delete("/jobs/cancel-1")).status_code == 202  # once
                    assert (await http.delete("/jobs/cancel-1", headers={
                        "Authorization": f"Bearer {N8N_TOKEN}"})).status_code == 403
                    await wait_until(lambda: "bzzz:failed" in labels(owner, slow), 60, "cancelled")
                finally:
                    proc.terminate()
                    await trio.to_thread.run_sync(proc.wait, 20)
                comments = owner.get(f"{REPO}/issues/{slow}/comments").json()
                cancels = [c for c in comments if c["body"].startswith("/bzzz cancel")]
                assert len(cancels) == 1 and cancels[0]["user"]["login"] == "mon"
                results = [c["body"] for c in owner.get(f"{REPO}/issues/{n}/comments").json()
                           if "<!-- bzzz:result:" in c["body"]]
                assert len(results) == 1 and "hello from hive" in results[0]

                # the agent's verified decisions, read from its log, go to observe()
                peer = load_or_create(tmp_path / "a1").peer_id.to_base58()
                entries = read_entries(tmp_path / "a1" / "log")
                assert any(e.get("issue") == cb and e["type"] == "reported" for e in entries)
                for e in entries:
                    callbacks.observe(peer, "a1", e)
                    callbacks.observe(peer, "a1", e)  # the same entry indexed twice
                await wait_until(lambda: len(receiver.got) >= 4, 20, "four callbacks")
                by_job = {}
                for headers, body in receiver.got:
                    assert verify(SECRET, body, headers["x-bzzz-signature-256"])
                    doc = json.loads(body)
                    assert headers["x-bzzz-delivery"] == doc["deliveryId"]
                    by_job.setdefault(doc["jobId"], []).append(doc)
                assert [d["event"] for d in by_job["cb-1"]] == ["claimed", "done"]
                assert [d["event"] for d in by_job["cancel-1"]] == ["claimed", "cancelled"]
                assert "hive-quickstart-1" not in by_job  # it gave no callbackUrl
                done = by_job["cb-1"][1]
                assert done["issue"] == cb and done["agent"] == peer and done["attempt"] == 1
                assert len({json.loads(b)["deliveryId"] for _, b in receiver.got}) == 4
                state = (await http.get("/jobs/cb-1")).json()
                assert state["status"] == "done" and state["issue"] == cb
                assert [e["event"] for e in state["events"]] == ["claimed", "done"]
                assert all(e["delivery"] == "delivered" for e in state["events"])
                assert "bzzz:done" in state["github"]["labels"]
                quick = (await http.get("/jobs/hive-quickstart-1")).json()
                assert quick["status"] == "done"  # events are kept without a callback too
            nursery.cancel_scope.cancel()
        everything = json.dumps([issues(owner)] + [
            owner.get(f"{REPO}/issues/{i}/comments").json() for i in (n, cb, slow)])
        assert HIVE_TOKEN not in everything and "t-mon-identity" not in everything


async def test_refusals(tmp_path):
    with DevHubThread(seed=SEED) as hub:
        owner = gh_client(hub)
        async with trio.open_nursery() as nursery:
            b = await start_bridge(nursery, hub, tmp_path / "s", max_body=4096, rate=0.01,
                                   burst=7)
            async with b.http() as http, b.http("wrong-token-0123456789") as wrong, \
                    b.http(None) as anonymous:
                assert (await anonymous.get("/health")).status_code == 200
                r = await wrong.post("/enqueue", json=job("x"))
                assert r.status_code == 401 and "www-authenticate" in r.headers
                assert (await anonymous.post("/enqueue", json=job("x"))).status_code == 401
                assert (await wrong.get("/jobs/x")).status_code == 401
                r = await http.post("/enqueue", content=b'{"jobId": "x", ' + b" " * 5000 + b"}")
                assert r.status_code == 413
                r = await http.post("/enqueue", content=b'{"jobId": "x",')
                assert r.status_code == 400 and r.json()["field"] == "body"
                r = await http.post("/enqueue", json={"jobId": "x", "repo": "owner/tasks",
                                                      "task": "shell"})
                assert r.status_code == 400 and r.json()["field"] == "instructions"
                r = await http.post("/enqueue", json=job("x", task="custom"))
                assert r.status_code == 400 and r.json()["allowed"] == ["agent", "shell", "llm"]
                assert issues(owner) == []  # nothing was filed for any of them
                r = await http.post("/enqueue", json=job("same"))
                assert r.status_code == 202
                r = await http.post("/enqueue", json=job("same", instructions="echo other"))
                assert r.status_code == 409 and r.json()["issue"] is not None
                assert len(issues(owner)) == 1
                assert (await http.get("/jobs/nope")).status_code == 404
                assert (await http.post("/enqueue", json=job("team/a-1"))).status_code == 202
                assert (await http.get("/jobs/team/a-1")).json()["jobId"] == "team/a-1"
                # the rate limit is per token: hive has used its burst of 7
                r = await http.post("/enqueue", json=job("late"))
                assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
                async with b.http(N8N_TOKEN) as other:
                    assert (await other.post("/enqueue", json=job("n8n-1"))).status_code == 202
                    # a job is read by the token that enqueued it, and no other
                    assert (await other.get("/jobs/n8n-1")).status_code == 200
                    r = await other.get("/jobs/same")
                    assert r.status_code == 403 and "issue" not in r.json()
                    assert (await http.get("/jobs/n8n-1")).status_code == 403
                    assert (await http.get("/jobs/same")).json()["jobId"] == "same"
            nursery.cancel_scope.cancel()
        n8n = max(issues(owner), key=lambda i: i["number"])
        assert "**n8n**" in n8n["body"] and "**hive**" not in n8n["body"]


async def test_two_bridges_racing_the_same_jobs_file_one_issue_each(tmp_path):
    with DevHubThread(seed=SEED) as hub:
        owner = gh_client(hub)
        async with trio.open_nursery() as nursery:
            a = await start_bridge(nursery, hub, tmp_path / "a")
            b = await start_bridge(nursery, hub, tmp_path / "b")
            replies = {}

            async def send(bridge, name, job_id):
                async with bridge.http() as http:
                    r = await http.post("/enqueue", json=job(job_id))
                    replies[(name, job_id)] = (r.status_code, r.json())

            async with trio.open_nursery() as race:
                for i in range(6):
                    race.start_soon(send, a, "a", f"race-{i}")
                    race.start_soon(send, b, "b", f"race-{i}")
            for i in range(6):
                (sa, ra), (sb, rb) = replies[("a", f"race-{i}")], replies[("b", f"race-{i}")]
                assert sa == sb == 202, (ra, rb)
                assert ra["issue"] == rb["issue"]
            assert len(issues(owner)) == 6
            # the loser remembers the job too: a replay to it costs GitHub nothing
            writes = b.gh.writes
            async with b.http() as http:
                r = await http.post("/enqueue", json=job("race-0"))
                assert r.json() == replies[("a", "race-0")][1]
            assert b.gh.writes == writes
            # and a different body under the same jobId is refused by the other monitor too
            fresh = await start_bridge(nursery, hub, tmp_path / "c")
            async with fresh.http() as http:
                r = await http.post("/enqueue", json=job("race-1", instructions="echo nope"))
                assert r.status_code == 409
                r = await http.post("/enqueue", json=job("race-1"))
                assert r.status_code == 202 and r.json()["issue"] == replies[("a", "race-1")][1]["issue"]
            nursery.cancel_scope.cancel()


async def test_restart_and_a_crash_between_reservation_and_issue(tmp_path):
    with DevHubThread(seed=SEED) as hub:
        owner = gh_client(hub)
        async with trio.open_nursery() as nursery:
            a = await start_bridge(nursery, hub, tmp_path / "a")
            async with a.http() as http:
                first = (await http.post("/enqueue", json=job("keep"))).json()

            async def crash(*_):
                raise RuntimeError("the monitor died here")
            a.bridge._post_issue = crash  # the ref is created, then the process "dies"
            async with a.http() as http:
                assert (await http.post("/enqueue", json=job("crashed"))).status_code == 500
                assert (await http.post("/enqueue", json=job("orphan"))).status_code == 500
            assert len(issues(owner)) == 1
            ref = owner.get(f"{REPO}/git/ref/{job_ref('crashed')[5:]}")
            assert ref.status_code == 200

            # the same monitor restarted (same state directory): replays cost no writes,
            # and resume() files what was reserved but not filed
            a2 = await start_bridge(nursery, hub, tmp_path / "a")
            async with a2.http() as http:
                assert (await http.post("/enqueue", json=job("keep"))).json() == first
                assert a2.gh.writes == 0
                assert await a2.bridge.resume() == 2
                crashed = (await http.post("/enqueue", json=job("crashed"))).json()
                assert crashed["issue"] not in (None, first["issue"])
                assert await a2.bridge.resume() == 0
            assert len(issues(owner)) == 3

            # another monitor that only sees a reservation with no issue takes it over
            # once the reservation is old enough, and files it once
            a.bridge._post_issue = crash
            async with a.http() as http:
                assert (await http.post("/enqueue", json=job("lost"))).status_code == 500
            later = [0.0]  # how far c's clock is ahead: the reservation's age as c sees it
            c = await start_bridge(nursery, hub, tmp_path / "c", peer_wait=0.3,
                                   takeover_after=60.0, clock=lambda: time.time() + later[0])
            async with c.http() as http:
                r = await http.post("/enqueue", json=job("lost"))
                assert r.status_code == 503 and r.headers["retry-after"]
                assert c.bridge.counts["takeovers"] == 0
                later[0] = 61.0
                r = await until_ok(http, job("lost"))
                assert r.status_code == 202
            assert c.bridge.counts["takeovers"] == 1
            lost = [i for i in issues(owner) if "<!-- bzzz:job:lost -->" in (i["body"] or "")]
            assert len(lost) == 1 and lost[0]["number"] == r.json()["issue"]
            nursery.cancel_scope.cancel()


async def until_ok(http, body):
    with trio.fail_after(10):
        while True:
            r = await http.post("/enqueue", json=body)
            if r.status_code != 503:
                return r
            await trio.sleep(float(r.headers.get("retry-after", "1")) / 4)


# ---------------------------------------------------------------------- callbacks


def a_job(store, job_id, issue, url):
    j = parse_job(job(job_id, callbackUrl=url))
    store.adopt(j.job_id, j.repo, j.digest, "hive", j.normalised(), j.callback_url, issue,
                f"http://hub/owner/tasks/issues/{issue}")


def lifecycle(issue, ts=1000.0):
    base = {"repo": "owner/tasks", "issue": issue, "node": "a1"}
    return [{**base, "type": "claimed", "ts": ts, "generation": 1},
            {**base, "type": "renewed", "ts": ts + 1},
            {**base, "type": "pull_request", "ts": ts + 2, "pr": 99, "branch": "bzzz/7-x"},
            {**base, "type": "reported", "ts": ts + 3, "status": "succeeded"}]


async def test_callbacks_wait_for_a_receiver_that_is_down_and_keep_order(tmp_path):
    store = JobStore(tmp_path / "state")
    async with trio.open_nursery() as nursery:
        receiver = Receiver(fail=5)
        url = await start_receiver(nursery, receiver)
        a_job(store, "j1", 7, url + "/hook")
        a_job(store, "j2", 8, url + "/hook")
        cbs = Callbacks(store, SECRET, deny=OPEN, backoff=0.05, max_backoff=0.2)
        for e in lifecycle(7):
            cbs.observe("peerA", "a1", e)
        # another agent's log saying the task was done too: sent once
        cbs.observe("peerB", "a2", {**lifecycle(7)[3], "node": "a2", "ts": 1010.0})
        for e in lifecycle(8, 2000.0):
            cbs.observe("peerA", "a1", e)
        cbs.observe("peerA", "a1", {"type": "claimed", "repo": "owner/tasks", "issue": 999,
                                    "ts": 1.0})  # not a job
        assert cbs.counts["queued"] == 6 and cbs.counts["duplicates"] == 1
        await nursery.start(cbs.run)
        await wait_until(lambda: len(receiver.got) == 6, 20, "every callback")
        assert cbs.counts["failed_attempts"] == 5
        for job_id in ("j1", "j2"):
            docs = [json.loads(b) for _, b in receiver.got if json.loads(b)["jobId"] == job_id]
            assert [d["event"] for d in docs] == ["claimed", "pull_request", "done"]
            assert docs[1]["pr"] == 99 and docs[2]["pr"] == 99
        assert len({json.loads(b)["deliveryId"] for _, b in receiver.got}) == 6
        for headers, body in receiver.got:
            assert verify(SECRET, body, headers["x-bzzz-signature-256"])
        nursery.cancel_scope.cancel()


async def test_callbacks_survive_a_restart_and_refuse_redirects(tmp_path):
    state = tmp_path / "state"
    store = JobStore(state)
    async with trio.open_nursery() as nursery:
        receiver = Receiver(fail=10**6)  # down for now
        url = await start_receiver(nursery, receiver)
        a_job(store, "j1", 7, url + "/hook")
        cbs = Callbacks(store, SECRET, deny=OPEN, backoff=0.05, max_backoff=0.1)
        for e in lifecycle(7):
            cbs.observe("peerA", "a1", e)
        async with trio.open_nursery() as first:
            await first.start(cbs.run)
            await wait_until(lambda: receiver.hits >= 3, 10, "a few failed attempts")
            first.cancel_scope.cancel()  # the monitor stops with everything undelivered
        store.close()
        receiver.fail = 0
        store2 = JobStore(state)
        cbs2 = Callbacks(store2, SECRET, deny=OPEN, backoff=0.05, max_backoff=0.1)
        await nursery.start(cbs2.run)
        await wait_until(lambda: len(receiver.got) == 3, 10, "delivered after the restart")
        assert receiver.events() == ["claimed", "pull_request", "done"]
        assert all(e.state == "delivered" for e in store2.events("j1"))

        # a receiver answering with a redirect: refused, never followed
        receiver.status = 302
        hits = receiver.hits
        a_job(store2, "j3", 9, url + "/hook")
        cbs2.observe("peerA", "a1", lifecycle(9)[0])
        await wait_until(lambda: [e.state for e in store2.events("j3")] == ["dropped"], 10,
                         "the redirect refused")
        assert receiver.hits == hits + 1  # /moved was never asked for
        nursery.cancel_scope.cancel()


async def test_callbacks_give_up_after_retry_for(tmp_path):
    store = JobStore(tmp_path / "state")
    async with trio.open_nursery() as nursery:
        receiver = Receiver(fail=10**6)
        url = await start_receiver(nursery, receiver)
        a_job(store, "j1", 7, url + "/hook")
        cbs = Callbacks(store, SECRET, deny=OPEN, backoff=0.05, max_backoff=0.1, retry_for=0.5)
        await nursery.start(cbs.run)
        for e in lifecycle(7)[:1]:
            cbs.observe("peerA", "a1", e)
        await wait_until(lambda: [e.state for e in store.events("j1")] == ["dropped"], 10,
                         "given up")
        receiver.fail = 0
        cbs.observe("peerA", "a1", lifecycle(7)[3])  # the next event still goes out
        await wait_until(lambda: receiver.events() == ["done"], 10, "the next event")
        nursery.cancel_scope.cancel()


async def test_built_from_the_monitor_config(tmp_path):
    from bzzz.config import MonitorConfig
    off = MonitorConfig()
    async with GitHubClient("http://127.0.0.1:9", "t") as gh:
        assert EnqueueBridge.from_config(off, gh, tmp_path / "s") is None
        assert Callbacks.from_config(off, JobStore(tmp_path / "s0")) is None
        (tmp_path / "tokens").write_text(f"hive {HIVE_TOKEN}\n")
        (tmp_path / "secret").write_text("  a-callback-secret \n")
        on = MonitorConfig(enqueue_tokens_file=tmp_path / "tokens", enqueue_repo="owner/tasks",
                           enqueue_rate=2.0, enqueue_burst=3,
                           callback_secret_file=tmp_path / "secret", callback_retry_for=60)
        bridge = EnqueueBridge.from_config(on, gh, tmp_path / "s")
        assert bridge.callbacks and bridge.default_repo == "owner/tasks" and bridge.burst == 3
        assert HIVE_TOKEN not in repr(bridge)
        assert all(bridge.handles(p) for p in ("/enqueue", "/health", "/jobs/a", "/jobs/t/a"))
        assert not any(bridge.handles(p) for p in ("/", "/healthz", "/api/v1/mesh", "/jobs"))
        cbs = Callbacks.from_config(on, bridge.store)
        assert cbs.retry_for == 60 and "a-callback-secret" not in repr(cbs)
        assert ipaddress.ip_address("127.0.0.1") in cbs.deny[0] and bridge.deny == cbs.deny
        opened = MonitorConfig(enqueue_tokens_file=tmp_path / "tokens",
                               callback_secret_file=tmp_path / "secret", callback_deny="")
        assert Callbacks.from_config(opened, bridge.store).deny == ()
        with pytest.raises(ValueError, match="'10.0.0.300/8' is not a network"):
            MonitorConfig(callback_deny=["10.0.0.0/8", "10.0.0.300/8"])
        (tmp_path / "secret").write_text("\n")
        with pytest.raises(ValueError):
            Callbacks.from_config(on, bridge.store)


async def test_a_slow_filer_that_was_taken_over_leaves_one_open_issue(tmp_path):
    with DevHubThread(seed=SEED) as hub:
        owner = gh_client(hub)
        async with trio.open_nursery() as nursery:
            a = await start_bridge(nursery, hub, tmp_path / "a")
            c = await start_bridge(nursery, hub, tmp_path / "c", peer_wait=0.3,
                                   takeover_after=0.5)
            gate, original, replies = trio.Event(), a.bridge._post_issue, {}

            async def slow(j, origin):  # stuck, say, behind a secondary rate limit
                await gate.wait()
                return await original(j, origin)
            a.bridge._post_issue = slow

            async def send_a():
                async with a.http() as http:
                    replies["a"] = (await http.post("/enqueue", json=job("slow"))).json()
            nursery.start_soon(send_a)
            await wait_until(lambda: owner.get(f"{REPO}/git/ref/{job_ref('slow')[5:]}")
                             .status_code == 200, 10, "the reservation")
            async with c.http() as http:
                r = await until_ok(http, job("slow"))
            assert r.status_code == 202 and c.bridge.counts["takeovers"] == 1
            kept = r.json()["issue"]
            gate.set()
            await wait_until(lambda: "a" in replies, 10, "the slow filer's answer")
            assert replies["a"]["issue"] == kept and a.bridge.counts["duplicates_closed"] == 1
            mine = [i for i in issues(owner) if "<!-- bzzz:job:slow -->" in (i["body"] or "")]
            assert sorted(i["state"] for i in mine) == ["closed", "open"]
            assert [i["number"] for i in mine if i["state"] == "open"] == [kept]
            # a repository the monitor cannot reach is the caller's mistake, and leaves nothing
            async with a.http() as http:
                r = await http.post("/enqueue", json=job("elsewhere", repo="owner/missing"))
                assert r.status_code == 422 and r.json()["field"] == "repo"
            assert a.bridge.store.job("elsewhere") is None
            nursery.cancel_scope.cancel()


# ---------------------------------------------------------------------- where callbacks may go


def test_denied_networks_include_loopback_link_local_and_mapped_addresses():
    deny = parse_networks(DEFAULT_DENY)
    for host in ("127.0.0.1", "127.1.2.3", "::1", "169.254.169.254", "fe80::1", "0.0.0.0",
                 "::ffff:127.0.0.1", "::ffff:169.254.169.254"):
        assert denied_by(ipaddress.ip_address(host), deny) is not None, host
    for host in ("93.184.216.34", "2606:4700:4700::1111", "::ffff:93.184.216.34"):
        assert denied_by(ipaddress.ip_address(host), deny) is None, host
    for url in ("http://127.0.0.1:8080/x", "http://[::1]/x", "https://169.254.169.254/",
                "http://localhost:9/", "http://LOCALHOST./", "http://a.localhost/"):
        with pytest.raises(Denied, match="monitor.callback_deny"):
            check_literal(url, deny)
    check_literal("http://hive.internal:8080/cb", deny)  # names are checked at delivery
    check_literal("http://127.0.0.1/x", ())


async def test_a_name_is_checked_on_what_it_resolves_to():
    deny = parse_networks(DEFAULT_DENY)
    with pytest.raises(Denied, match=r"localhost \(127\.0\.0\.1\)|localhost \(::1\)"):
        await resolve("http://localhost:9/hook", deny)
    target = await resolve("https://localhost:8443/hook?a=1", ())
    assert target.url in ("https://127.0.0.1:8443/hook?a=1", "https://[::1]:8443/hook?a=1")
    assert target.host_header == "localhost:8443" and target.server_name == "localhost"
    with pytest.raises(Unresolved):
        await resolve("http://no-such-host.invalid/hook", ())


def test_every_non_public_address_is_denied_unless_allowed():
    """Issue #19: RFC 1918, fc00::/7, 100.64.0.0/10, the Docker bridge and whatever else is
    not public are denied by default; ``monitor.callback_allow`` lets a private receiver in."""
    from bzzz.config import MonitorConfig
    deny = parse_networks(MonitorConfig().callback_deny)
    private = ("10.1.2.3", "172.17.0.2", "172.31.255.1", "192.168.1.10", "100.64.1.1",
               "fd00::1", "fc00::5", "198.18.0.1", "2001:db8::1", "::ffff:10.0.0.1",
               "240.0.0.1")
    for host in private:
        assert denied_by(ipaddress.ip_address(host), deny) is not None, host
        with pytest.raises(Denied, match="monitor.callback_allow"):
            check_literal(f"http://{'[' + host + ']' if ':' in host else host}:8080/cb", deny)
    allow = parse_networks(MonitorConfig(callback_allow=["10.0.0.0/8", "fd00::/8"])
                           .callback_allow)
    assert denied_by(ipaddress.ip_address("10.1.2.3"), deny, allow) is None
    assert denied_by(ipaddress.ip_address("fd00::1"), deny, allow) is None
    assert denied_by(ipaddress.ip_address("192.168.1.10"), deny, allow) is not None
    check_literal("http://10.9.9.9/cb", deny, allow)
    with pytest.raises(ValueError, match="'10.0.0/33' is not a network"):
        MonitorConfig(callback_allow=["10.0.0/33"])


async def test_enqueue_refuses_a_callback_to_a_private_network_unless_allowed(tmp_path):
    from bzzz.config import MonitorConfig
    (tmp_path / "tokens").write_text(f"hive {HIVE_TOKEN}\n")
    with DevHubThread(seed=SEED) as hub:
        async with trio.open_nursery() as nursery:
            gh = GitHubClient(hub.url, "t-mon-identity")
            for allow, want in (([], 400), (["10.0.0.0/8"], 202)):
                config = MonitorConfig(enqueue_tokens_file=tmp_path / "tokens",
                                       callback_secret_file=tmp_path / "tokens",
                                       callback_allow=allow)
                bridge = EnqueueBridge.from_config(config, gh, tmp_path / f"state{len(allow)}")
                bound = await nursery.start(serve_app, bridge, "127.0.0.1", 0)
                async with Bridge(bridge, bound[0], gh).http() as http:
                    r = await http.post("/enqueue", json=job(
                        f"private-{len(allow)}", callbackUrl="http://10.0.0.5:2375/x"))
                    assert r.status_code == want, r.text
                    if want == 400:
                        assert r.json()["field"] == "callbackUrl"
                        assert "denied network" in r.json()["error"]
            nursery.cancel_scope.cancel()


async def test_enqueue_refuses_a_callback_to_a_denied_address(tmp_path):
    with DevHubThread(seed=SEED) as hub:
        async with trio.open_nursery() as nursery:
            b = await start_bridge(nursery, hub, tmp_path / "state",
                                   deny=parse_networks(DEFAULT_DENY))
            async with b.http() as http:
                r = await http.post("/enqueue", json=job("ssrf",
                                                         callbackUrl="http://127.0.0.1:2375/x"))
                assert r.status_code == 400 and r.json()["field"] == "callbackUrl", r.text
                assert "denied network 127.0.0.0/8" in r.json()["error"]
            assert issues(gh_client(hub)) == []
            nursery.cancel_scope.cancel()


async def test_callbacks_to_a_denied_address_are_dropped_and_the_host_header_kept(tmp_path):
    store = JobStore(tmp_path / "state")
    async with trio.open_nursery() as nursery:
        receiver = Receiver()
        url = await start_receiver(nursery, receiver)
        port = url.rsplit(":", 1)[1]
        a_job(store, "j1", 7, url + "/hook")  # 127.0.0.1: denied by default
        cbs = Callbacks(store, SECRET, backoff=0.05)
        await nursery.start(cbs.run)
        cbs.observe("peerA", "a1", lifecycle(7)[0])
        await wait_until(lambda: [e.state for e in store.events("j1")] == ["dropped"], 10,
                         "the denied callback dropped")
        assert receiver.hits == 0 and cbs.counts["dropped"] == 1
        # allowed: a name is sent to the address it resolved to, with its own Host header
        a_job(store, "j2", 8, f"http://localhost:{port}/hook")
        cbs.deny = ()
        cbs.observe("peerA", "a1", lifecycle(8)[0])
        await wait_until(lambda: receiver.events() == ["claimed"], 10, "the allowed callback")
        assert receiver.got[0][0]["host"] == f"localhost:{port}"
        nursery.cancel_scope.cancel()
