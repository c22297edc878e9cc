"""Backlog drain (issue: repository work, item 5). One JSON object per line.

  backlog_known     4 agents with their own tokens and default settings, 40 one-line tasks
                    (no pull request), the agents connected to each other: seconds to done
  backlog_unknown   the same with agents that do not know each other (no bootstrap, no mDNS)

An agent used to wait for its next poll tick after every finished task and every lost claim;
it now takes the next candidate from the last poll at once. Real `bzzz run` processes against
devhub (a thread of this process). `python bench/backlog.py [--quick]`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bzzz.devhub import DevHubThread  # noqa: E402
from bzzz.testing import agents  # noqa: E402

AGENTS = 4
SEED = {"users": [{"login": "owner", "token": "t-owner"}]
        + [{"login": f"bot{i}", "token": f"t-bot{i}"} for i in range(AGENTS)],
        "repos": [{"full_name": "owner/tasks", "push": [f"bot{i}" for i in range(AGENTS)]}]}


def emit(metric, value, unit, target, ok, **params) -> None:
    print(json.dumps({"bench": "backlog", "metric": metric, "value": value, "unit": unit,
                      "target": target, "ok": ok, "params": params}), flush=True)


def done_count(owner: httpx.Client) -> int:
    n, page = 0, 1
    while True:
        r = owner.get("/repos/owner/tasks/issues", params={
            "state": "all", "labels": "bzzz:done", "per_page": 100, "page": page})
        if r.status_code != 200:
            return 0
        n += len(r.json())
        if len(r.json()) < 100:
            return n
        page += 1


def drain(tmp: Path, tasks: int, known: bool, timeout: float) -> dict:
    """Seconds from the agents' start until every task is done, and the claims lost."""
    with DevHubThread(seed=SEED) as hub:
        owner = httpx.Client(base_url=hub.url, headers={"Authorization": "token t-owner"},
                             timeout=60)
        for i in range(tasks):
            owner.post("/repos/owner/tasks/issues", json={
                "title": f"t{i}", "body": f"```bzzz\necho {i}\n```", "labels": ["bzzz"]})
        root = tmp / ("known" if known else "unknown")
        procs: list[agents.AgentProc] = []
        start = time.monotonic()
        try:
            for i in range(AGENTS):
                boot = procs[0].addr if known and procs else ""
                procs.append(agents.start(root, f"bot{i}", hub.url, f"t-bot{i}", "owner/tasks",
                                          bootstrap=boot, BZZZ_SANDBOX="none"))
            while done_count(owner) < tasks:
                if time.monotonic() - start > timeout:
                    raise TimeoutError(f"{done_count(owner)} of {tasks} done after {timeout} s")
                time.sleep(0.25)
            took = time.monotonic() - start
        finally:
            for p in procs:
                p.stop()
        stats = httpx.get(hub.url + "/_devhub/stats").json()["requests"]
        refs = sum(v for login, per in stats.items() if login.startswith("bot")
                   for k, v in per.items() if k == "POST /repos/{owner}/{repo}/git/refs")
        return {"seconds": round(took, 2), "claim_attempts": refs, "tasks": tasks}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small smoke run (CI)")
    args = p.parse_args()
    tasks = 12 if args.quick else 40
    with tempfile.TemporaryDirectory(prefix="bzzz-bench-backlog-") as tmp:
        os.chmod(tmp, 0o755)
        for known in (True, False):
            r = drain(Path(tmp), tasks, known, timeout=300)
            target = 60.0 * tasks / 40
            emit("backlog_known" if known else "backlog_unknown", r["seconds"], "s",
                 f"<= {target:g} s for {tasks} tasks", r["seconds"] <= target,
                 agents=AGENTS, tasks=tasks, claim_attempts=r["claim_attempts"],
                 settings="default")
    return 0


if __name__ == "__main__":
    sys.exit(main())
