"""Hive bridge benchmarks (#13). One JSON object per line:
{"bench", "metric", "value", "unit", "target", "ok", "params", ...}

  enqueue_to_issue_p50_ms  POST /enqueue answered with the filed issue (a new job each time:
                           reservation commit, ref, issue, ref check), devhub limits off
  enqueue_throughput       jobs filed per minute, sustained, with devhub's secondary limit on
                           (80 content-creating requests a minute per token, as GitHub) and
                           the monitor's client pacing its writes to stay under it; also
                           the writes each job costs and the hourly bound (500 a hour)
  callback_delivery_p50_s  observe() of a decision -> the signed callback received

devhub runs as its own process (`bzzz devhub`); the bridge, the callback receiver and the
client share this process. Run as `python bench/bridge.py [--quick]`. Timings on a busy
2-core machine are indicative.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bzzz.asgi import lifespan, read_body, serve_app  # noqa: E402
from bzzz.github.client import GitHubClient  # noqa: E402
from bzzz.monitor.bridge import EnqueueBridge  # noqa: E402
from bzzz.monitor.callbacks import Callbacks  # noqa: E402
from bzzz.monitor.jobs import parse_job  # noqa: E402
from bzzz.monitor.jobstore import JobStore  # noqa: E402
from bzzz.testing.wait import wait_until  # noqa: E402

SEED = {"users": [{"login": "mon", "token": "t-mon"}, {"login": "owner", "token": "t-owner"}],
        "repos": [{"full_name": "bench/tasks", "push": ["mon"]}]}
TOKEN = "bench-token-0123456789abcdef"
SECRET = b"bench-secret"
LIMIT_PER_MINUTE = 80
HOURLY_CREATIONS = 500


def emit(metric: str, value, unit: str, target: str, ok: bool | None, **params) -> None:
    print(json.dumps({"bench": "bridge", "metric": metric, "value": value, "unit": unit,
                      "target": target, "ok": ok, "params": params}), flush=True)


def start_devhub(tmp: Path) -> tuple[subprocess.Popen, str]:
    seed = tmp / "seed.json"
    seed.write_text(json.dumps(SEED))
    proc = subprocess.Popen([sys.executable, "-m", "bzzz", "devhub", "--seed", str(seed)],
                            stdout=subprocess.PIPE, text=True)
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        raise RuntimeError("devhub did not start")
    return proc, url


def body(job_id: str) -> dict:
    return {"jobId": job_id, "repo": "bench/tasks", "task": "shell",
            "instructions": f"echo {job_id}"}


async def serve(nursery, app) -> str:
    bound = await nursery.start(lambda task_status: serve_app(app, "127.0.0.1", 0,
                                                              task_status=task_status))
    return bound[0]


async def latency(hub: str, tmp: Path, n: int) -> None:
    async with GitHubClient(hub, "t-mon") as gh, trio.open_nursery() as nursery:
        bridge = EnqueueBridge(gh, {"bench": TOKEN}, tmp / "lat", rate=1000, burst=1000)
        url = await serve(nursery, bridge)
        times = []
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"},
                                     timeout=30) as http:
            await http.post("/enqueue", json=body("warm-up"))  # the repository's empty tree
            writes = gh.writes
            for i in range(n):
                start = time.perf_counter()
                r = await http.post("/enqueue", json=body(f"lat-{i}"))
                times.append((time.perf_counter() - start) * 1000)
                assert r.status_code == 202 and r.json()["issue"], r.text
            replay = []
            for i in range(min(n, 20)):
                start = time.perf_counter()
                r = await http.post("/enqueue", json=body(f"lat-{i}"))
                replay.append((time.perf_counter() - start) * 1000)
                assert r.status_code == 202
        p50 = statistics.median(times)
        emit("enqueue_to_issue_p50_ms", round(p50, 1), "ms", "<= 300", p50 <= 300, jobs=n,
             p90_ms=round(sorted(times)[int(0.9 * (n - 1))], 1),
             replay_p50_ms=round(statistics.median(replay), 1),
             github_writes_per_job=round((gh.writes - writes) / n, 2))
        nursery.cancel_scope.cancel()


async def throughput(hub: str, tmp: Path, n: int) -> None:
    interval = 60.0 / LIMIT_PER_MINUTE
    async with httpx.AsyncClient(base_url=hub) as admin:
        await admin.post("/_devhub/limits", json={"secondary_per_minute": LIMIT_PER_MINUTE})
        try:
            async with GitHubClient(hub, "t-mon", write_interval=interval, write_burst=1) as gh, \
                    trio.open_nursery() as nursery:
                bridge = EnqueueBridge(gh, {"bench": TOKEN}, tmp / "tp", rate=1000, burst=1000)
                url = await serve(nursery, bridge)
                async with httpx.AsyncClient(base_url=url, timeout=300,
                                             headers={"Authorization": f"Bearer {TOKEN}"}) as http:
                    await http.post("/enqueue", json=body("tp-warm-up"))
                    writes, requests = gh.writes, gh.requests
                    start = time.perf_counter()
                    statuses: list[int] = []

                    async def one(i: int) -> None:
                        r = await http.post("/enqueue", json=body(f"tp-{i}"))
                        statuses.append(r.status_code)

                    limiter = trio.CapacityLimiter(4)

                    async def bounded(i: int) -> None:
                        async with limiter:
                            await one(i)

                    async with trio.open_nursery() as jobs:
                        for i in range(n):
                            jobs.start_soon(bounded, i)
                    elapsed = time.perf_counter() - start
                stats = (await admin.get("/_devhub/stats")).json()
                per_job = (gh.writes - writes) / n
                rate = n / elapsed * 60
                emit("enqueue_throughput", round(rate, 1), "jobs/min",
                     f"report (bound {LIMIT_PER_MINUTE}/min / writes per job)",
                     all(s == 202 for s in statuses), jobs=n, seconds=round(elapsed, 1),
                     limit=f"{LIMIT_PER_MINUTE} content-creating requests/min per token (devhub, "
                     "as GitHub's secondary limit)",
                     content_creations_per_job=round(per_job, 2),
                     bound_per_minute=round(LIMIT_PER_MINUTE / per_job, 1),
                     bound_per_hour=int(HOURLY_CREATIONS / per_job),
                     refused=sum(1 for s in statuses if s != 202),
                     github_requests_per_job=round((gh.requests - requests) / n, 2),
                     devhub_requests=stats.get("total"))
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):  # devhub's limit is lifted whatever happened
                await admin.post("/_devhub/limits", json={"secondary_per_minute": None})


class Receiver:
    def __init__(self) -> None:
        self.at: dict[str, float] = {}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        raw = await read_body(receive)
        self.at.setdefault(json.loads(raw)["deliveryId"], time.perf_counter())
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def callbacks(tmp: Path, n: int) -> None:
    store = JobStore(tmp / "cb")
    receiver = Receiver()
    async with trio.open_nursery() as nursery:
        url = await serve(nursery, receiver)
        cbs = Callbacks(store, SECRET, deny=())  # the receiver is on loopback
        await nursery.start(cbs.run)
        jobs = max(1, n // 5)
        for j in range(jobs):
            job = parse_job({**body(f"cb-{j}"), "callbackUrl": url + "/hook"})
            store.adopt(job.job_id, job.repo, job.digest, "bench", job.normalised(),
                        job.callback_url, 100 + j, f"{url}/issues/{100 + j}")
        sent: dict[str, float] = {}
        kinds = ["claimed", "needs_input", "claimed", "pull_request", "reported"]
        for k in range(n):
            j, step = k % jobs, k // jobs
            entry = {"type": kinds[step % len(kinds)], "repo": "bench/tasks", "issue": 100 + j,
                     "ts": time.time(), "node": "n1", "pr": 7, "status": "succeeded",
                     "generation": step}
            before = {e.delivery_id for e in store.events(f"cb-{j}")}
            start = time.perf_counter()
            if cbs.observe("peer", "n1", entry) is None:
                continue
            (new,) = {e.delivery_id for e in store.events(f"cb-{j}")} - before
            sent[new] = start
            await trio.sleep(0.02)
        await wait_until(lambda: len(receiver.at) >= len(sent), 30, "every callback received",
                         interval=0.01)
        lat = [receiver.at[d] - s for d, s in sent.items()]
        p50 = statistics.median(lat)
        emit("callback_delivery_p50_s", round(p50, 4), "s", "<= 2", p50 <= 2, events=len(lat),
             jobs=jobs, p90_s=round(sorted(lat)[int(0.9 * (len(lat) - 1))], 4),
             note="from observe(); the lead re-measures from a log append through the monitor")
        nursery.cancel_scope.cancel()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        proc, hub = start_devhub(tmp)
        try:
            trio.run(latency, hub, tmp, 20 if args.quick else 100)
            trio.run(throughput, hub, tmp, 8 if args.quick else 60)
            trio.run(callbacks, tmp, 20 if args.quick else 100)
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
