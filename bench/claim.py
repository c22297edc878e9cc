"""Claim-and-run benchmarks (issue: claiming GitHub tasks). One JSON object per line.

  requests_per_task   GitHub requests from claim to result, per completed task (polling
                      excluded: it is measured on its own below)
  idle_budget         rate-limit budget an idle agent spends per hour after the first poll
  issue_to_claim      seconds from an issue being filed to its claim, with polling
  mesh_throughput     10 agents x 200 trivial tasks (pacing off): tasks/s and duplicates

devhub runs as its own process; the agents' claim services run in this process (one trio
loop), each with its own GitHub client. Run as `python bench/claim.py [--quick]`.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bzzz.github.client import GitHubClient  # noqa: E402
from bzzz.claim.service import ClaimService, ClaimSettings  # noqa: E402
from bzzz.decisions import MemoryDecisionLog  # noqa: E402
from bzzz.testing.wait import wait_for, wait_until  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from devhub import start_devhub  # noqa: E402

SEED_EXTRA = {"users": [{"login": "owner", "token": "t-owner"}, {"login": "bot", "token": "t-bot"}]
              + [{"login": f"bot{i}", "token": f"t-bot{i}"} for i in range(10)],
              "repos": [{"full_name": "owner/tasks", "push": ["bot"] + [f"bot{i}" for i in range(10)]}]}


def emit(metric, value, unit, target, ok, **params) -> None:
    print(json.dumps({"bench": "claim", "metric": metric, "value": value, "unit": unit,
                      "target": target, "ok": ok, "params": params}), flush=True)


def seed(url: str) -> httpx.Client:
    httpx.post(url + "/_devhub/seed", json=SEED_EXTRA)
    return httpx.Client(base_url=url, headers={"Authorization": "token t-owner"}, timeout=30)


def file_tasks(owner: httpx.Client, count: int, tag: str) -> list[int]:
    return [owner.post("/repos/owner/tasks/issues", json={
        "title": f"{tag}-{i}", "body": "```bzzz\ntrue\n```", "labels": ["bzzz", tag]}).json()["number"]
        for i in range(count)]


def bot_requests(url: str) -> dict[str, int]:
    return httpx.get(url + "/_devhub/stats").json()["requests"].get("bot", {})


def budget_left(url: str) -> int:
    """The bot's rate-limit budget left, as devhub's /rate_limit says."""
    return httpx.get(url + "/rate_limit",
                     headers={"Authorization": "token t-bot"}).json()["rate"]["remaining"]


def service(gh, node, tmp, poll, max_tasks=1, login="bot", peers=()) -> ClaimService:
    return ClaimService(gh, ClaimSettings(["owner/tasks"], node, f"12D3KooW{node}", login,
                                          max_tasks=max_tasks, poll_interval=poll,
                                          workroot=Path(tmp) / node, lease=60),
                        MemoryDecisionLog(), capabilities=lambda: ["shell"],
                        peers=lambda: list(peers))


def finished(owner: httpx.Client, numbers: list[int]) -> bool:
    issues = owner.get("/repos/owner/tasks/issues", params={
        "state": "all", "per_page": 100, "labels": "bzzz:done"}).json()
    done = {i["number"] for i in issues}
    page = 2
    while len(issues) == 100:
        issues = owner.get("/repos/owner/tasks/issues", params={
            "state": "all", "per_page": 100, "page": page, "labels": "bzzz:done"}).json()
        done |= {i["number"] for i in issues}
        page += 1
    return set(numbers) <= done


async def all_finished(
        owner: httpx.Client, numbers: list[int],
        timeout: float,  # noqa: ASYNC109 -- the wait runs in a thread: no cancel scope stops it
        interval: float) -> None:
    """Poll devhub (another process) in a worker thread until every task is done."""
    await trio.to_thread.run_sync(lambda: wait_for(
        lambda: finished(owner, numbers), timeout, interval, "every task done", retry=()))


async def requests_per_task(url: str, tmp: str, count: int) -> None:
    owner = seed(url)
    numbers = await trio.to_thread.run_sync(file_tasks, owner, count, "rpt")
    await trio.to_thread.run_sync(httpx.delete, url + "/_devhub/stats")
    async with GitHubClient(url, "t-bot") as gh, trio.open_nursery() as nursery:
        await nursery.start(service(gh, "solo", tmp, 0.2).run)
        await all_finished(owner, numbers, 300, 0.2)
        nursery.cancel_scope.cancel()
    stats = bot_requests(url)
    # polling: the task list and the comment commands (conditional, a 304 is free)
    polling = sum(v for k, v in stats.items() if k in (
        "GET /repos/{owner}/{repo}/issues", "GET /repos/{owner}/{repo}/issues/comments"))
    # read once per agent: the repository, its default branch and that commit, and the
    # author's permission (cached for github.trust_ttl)
    one_off = sum(min(v, 1) for k, v in stats.items() if k in (
        "GET /repos/{owner}/{repo}", "GET /repos/{owner}/{repo}/git/ref/{ref*}",
        "GET /repos/{owner}/{repo}/git/commits/{sha}",
        "GET /repos/{owner}/{repo}/collaborators/{username}/permission"))
    work = sum(stats.values()) - polling - one_off
    per = round(work / count, 2)
    emit("requests_per_task", per, "requests", "<= 8", per <= 8, tasks=count,
         by_endpoint={k: v for k, v in sorted(stats.items())}, polling_requests=polling,
         one_off_requests=one_off)


async def idle_budget(url: str, tmp: str, seconds: float) -> None:
    owner = seed(url)
    async with GitHubClient(url, "t-bot") as gh, trio.open_nursery() as nursery:
        svc = service(gh, "idle", tmp, 0.25)
        await nursery.start(svc.run)
        await trio.sleep(1.0)  # the first polls
        before = await trio.to_thread.run_sync(budget_left, url)
        await trio.sleep(seconds)
        after = await trio.to_thread.run_sync(budget_left, url)
        nursery.cancel_scope.cancel()
    spent = before - after
    per_hour = round(spent * 3600 / seconds, 1)
    emit("idle_budget_per_hour", per_hour, "requests/h", "0 after the first poll",
         per_hour == 0, observed_seconds=seconds, polls=svc.feed.repos["owner/tasks"].polls,
         not_modified=svc.feed.repos["owner/tasks"].unchanged)
    owner.close()


async def issue_to_claim(url: str, tmp: str, poll: float, samples: int) -> None:
    owner = seed(url)
    delays = []
    async with GitHubClient(url, "t-bot") as gh, trio.open_nursery() as nursery:
        svc = service(gh, "watch", tmp, poll, max_tasks=4)
        await nursery.start(svc.run)
        # Issues arrive at random moments; sample the poll cycle's phases evenly (stratified,
        # shuffled) instead of trusting a handful of random draws. Each sample starts right
        # after the previous claim, i.e. just after a poll.
        phases = [(i + 0.5) * poll / samples for i in range(samples)]
        random.Random(7).shuffle(phases)
        for i, phase in enumerate(phases):
            await trio.sleep(phase)
            t0 = time.time()
            (n,) = await trio.to_thread.run_sync(file_tasks, owner, 1, f"lat{i}")
            await wait_until(lambda n=n: any(e["type"] == "claimed" and e.get("issue") == n
                                             for e in svc.decisions.entries),
                             poll * 4 + 10, f"issue {n} claimed")
            claimed = next(e["ts"] for e in svc.decisions.entries
                           if e["type"] == "claimed" and e.get("issue") == n)
            delays.append(claimed - t0)
        nursery.cancel_scope.cancel()
    p50 = round(statistics.median(delays), 3)
    emit(f"issue_to_claim_polling_{poll:g}s", p50, "s", "p50 <= 3 s (5 s polling)",
         p50 <= 3 if poll == 5 else None, samples=samples, sampling="stratified phases",
         max=round(max(delays), 3))


async def issue_to_claim_webhook(url: str, tmp: str, samples: int) -> None:
    from bzzz.asgi import serve_app
    from bzzz.claim.webhook import WebhookIntake

    owner = seed(url)
    delays = []
    async with GitHubClient(url, "t-bot") as gh, trio.open_nursery() as nursery:
        svc = service(gh, "hooked", tmp, 300.0, max_tasks=4)  # polling effectively off
        await nursery.start(svc.run)
        intake = WebhookIntake("bench-secret", svc.on_webhook)
        with __import__("socket").socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        await nursery.start(lambda task_status: serve_app(intake, "127.0.0.1", port,
                                                          task_status=task_status))
        owner.post("/repos/owner/tasks/hooks", json={
            "config": {"url": f"http://127.0.0.1:{port}/", "secret": "bench-secret"},
            "events": ["issues"]})
        for i in range(samples):
            t0 = time.time()
            (n,) = await trio.to_thread.run_sync(file_tasks, owner, 1, f"hook{i}")
            await wait_until(lambda n=n: any(e["type"] == "claimed" and e.get("issue") == n
                                             for e in svc.decisions.entries),
                             30, f"issue {n} claimed", interval=0.005)
            delays.append(next(e["ts"] for e in svc.decisions.entries
                               if e["type"] == "claimed" and e.get("issue") == n) - t0)
        nursery.cancel_scope.cancel()
    p50 = round(statistics.median(delays), 3)
    emit("issue_to_claim_webhook", p50, "s", "<= 0.5 s", p50 <= 0.5, samples=samples,
         max=round(max(delays), 3), poll_interval_s=300)


async def mesh_throughput(url: str, tmp: str, agents: int, count: int) -> None:
    owner = seed(url)
    numbers = await trio.to_thread.run_sync(file_tasks, owner, count, "mesh")
    from bzzz.p2p.capabilities import PeerView
    clients = [GitHubClient(url, f"t-bot{i}") for i in range(agents)]  # a token per agent
    views = [PeerView(f"12D3KooWm{i}", ("shell",), 0, 4) for i in range(agents)]
    services = [service(c, f"m{i}", tmp, 0.3, max_tasks=4, login=f"bot{i}",
                        peers=[v for j, v in enumerate(views) if j != i])
                for i, c in enumerate(clients)]
    start = time.monotonic()
    async with trio.open_nursery() as nursery:
        for s in services:
            await nursery.start(s.run)
        await all_finished(owner, numbers, 600, 0.3)
        nursery.cancel_scope.cancel()
    elapsed = time.monotonic() - start
    for c in clients:
        await c.aclose()
    results = [e for s in services for e in s.decisions.entries if e["type"] == "result"
               and e["issue"] in set(numbers)]
    runs = len(results)
    duplicates = runs - len({e["issue"] for e in results})
    rate = round(count / elapsed, 2)
    emit("mesh_throughput", rate, "tasks/s", ">= 5 tasks/s, 0 duplicates",
         rate >= 5 and duplicates == 0, agents=agents, tasks=count, duplicates=duplicates,
         seconds=round(elapsed, 1))


async def main_async(quick: bool) -> None:
    tmp = tempfile.mkdtemp(prefix="bzzz-bench-claim-")
    for part in ("rpt", "idle", "latency", "webhook", "mesh"):
        proc, url = start_devhub(Path(tempfile.mkdtemp(prefix=f"bzzz-bench-{part}-")))
        try:
            if part == "rpt":
                await requests_per_task(url, tmp, 10 if quick else 50)
            elif part == "idle":
                await idle_budget(url, tmp, 3 if quick else 30)
            elif part == "latency":
                await issue_to_claim(url, tmp, 1.0 if quick else 5.0, 4 if quick else 20)
            elif part == "webhook":
                await issue_to_claim_webhook(url, tmp, 3 if quick else 20)
            else:
                await mesh_throughput(url, tmp, 10, 20 if quick else 200)
        finally:
            proc.terminate()
            proc.wait(10)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small smoke run (CI)")
    args = p.parse_args()
    trio.run(main_async, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
