"""devhub benchmarks (issue: devhub). One JSON object per line:
{"bench", "metric", "value", "unit", "target", "ok", "params", ...}

  get_issue         GET /repos/o/r/issues/N, requests/s, one client process, keep-alive
  conditional_get   the same with If-None-Match answered 304 (and costing no budget)
  ref_race          50 clients create the same ref at once: exactly one 201, every round

devhub runs as its own process (`bzzz devhub`), as the agents would see it.
Run as `python bench/devhub.py [--quick]`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import trio

SEED = {"users": [{"login": "bench", "token": "t-bench"}]
        + [{"login": f"agent{i}", "token": f"t-agent{i}"} for i in range(50)],
        "repos": [{"full_name": "bench/tasks", "push": [f"agent{i}" for i in range(50)]}]}


def emit(metric: str, value, unit: str, target: str, ok: bool | None, **params) -> None:
    print(json.dumps({"bench": "devhub", "metric": metric, "value": value, "unit": unit,
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


def get_rates(url: str, n: int) -> None:
    with httpx.Client(base_url=url, headers={"Authorization": "token t-bench"}) as c:
        number = c.post("/repos/bench/tasks/issues",
                        json={"title": "bench", "labels": ["bzzz"]}).json()["number"]
        path = f"/repos/bench/tasks/issues/{number}"
        etag = c.get(path).headers["etag"]
        for _ in range(50):  # warm-up
            c.get(path)
        start = time.perf_counter()
        for _ in range(n):
            r = c.get(path)
        full = n / (time.perf_counter() - start)
        assert r.status_code == 200
        before = c.get("/rate_limit").json()["rate"]["remaining"]
        start = time.perf_counter()
        for _ in range(n):
            r = c.get(path, headers={"If-None-Match": etag})
        cond = n / (time.perf_counter() - start)
        assert r.status_code == 304
        after = c.get("/rate_limit").json()["rate"]["remaining"]
    emit("get_issue", round(full, 1), "req/s", ">= 800 req/s", full >= 800, requests=n,
         client="httpx, one process, sequential, keep-alive")
    emit("conditional_get_304", round(cond, 1), "req/s", ">= 800 req/s", cond >= 800,
         requests=n, budget_spent=before - after)


async def ref_race(url: str, rounds: int, clients: int = 50) -> None:
    headers = [{"Authorization": f"token t-agent{i}"} for i in range(clients)]
    async with httpx.AsyncClient(base_url=url, limits=httpx.Limits(max_connections=clients),
                                 timeout=60) as c:
        head = (await c.get("/repos/bench/tasks/git/ref/heads/main",
                            headers=headers[0])).json()["object"]["sha"]

        async def create(i: int, ref: str, statuses: list[int]) -> None:
            r = await c.post("/repos/bench/tasks/git/refs", headers=headers[i],
                             json={"ref": ref, "sha": head})
            statuses.append(r.status_code)

        bad_rounds = 0
        winners_total = 0
        start = time.perf_counter()
        for rnd in range(rounds):
            statuses: list[int] = []
            async with trio.open_nursery() as n:
                for i in range(clients):
                    n.start_soon(create, i, f"refs/bzzz/claims/{rnd}", statuses)
            winners = statuses.count(201)
            winners_total += winners
            if winners != 1 or statuses.count(422) != clients - 1:
                bad_rounds += 1
        elapsed = time.perf_counter() - start
    emit("ref_race_rounds_with_exactly_one_winner", rounds - bad_rounds, "rounds",
         f"exactly 1 winner in all {rounds} rounds", bad_rounds == 0, rounds=rounds,
         clients=clients, winners_total=winners_total,
         seconds_per_round=round(elapsed / rounds, 3))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small smoke run (CI)")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bzzz-bench-devhub-"))
    proc, url = start_devhub(tmp)
    try:
        get_rates(url, 300 if args.quick else 3000)
        trio.run(ref_race, url, 10 if args.quick else 1000)
    finally:
        proc.terminate()
        proc.wait(10)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
