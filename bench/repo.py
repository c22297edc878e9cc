"""Repository-work benchmarks (issue: repository work). One JSON object per line.

  claim_to_pr_warm     claim → pull request opened, one-line change, 5,000-file repository,
                       the node's mirror warm: p50 (write pacing off, and with the default
                       pacing with tasks back to back)
  claim_to_pr_cold     the same on a node that has never seen the repository
  writes_per_pr        content-creating REST requests per task that ends in a pull request
                       (git pushes counted apart)
  disk_per_task        disk of one more checkout (working files, index, its .git) over the
                       checkout's working files

Real `bzzz run` agents against devhub (in this process, a thread); timings come from the
agents' own decision logs (``claimed`` → ``pull_request``). `python bench/repo.py [--quick]`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bzzz.devhub import DevHubThread  # noqa: E402
from bzzz.hyperlog.store import read_entries  # noqa: E402
from bzzz.testing import agents  # noqa: E402
from bzzz.testing.netns import wait_for  # noqa: E402
from bzzz.testing.bigrepo import push_big_repo, working_bytes  # noqa: E402

SEED = {"users": [{"login": "owner", "token": "t-owner"}]
        + [{"login": f"bot{i}", "token": f"t-bot{i}"} for i in range(4)],
        "repos": [{"full_name": "owner/big", "push": [f"bot{i}" for i in range(4)]}]}
TASK = "```bzzz\necho 'line {i}' >> src/d{d:02d}/f{f:05d}.txt\n```"
WRITES = ("POST", "PATCH", "PUT", "DELETE")


def emit(metric, value, unit, target, ok, **params) -> None:
    print(json.dumps({"bench": "repo", "metric": metric, "value": value, "unit": unit,
                      "target": target, "ok": ok, "params": params}), flush=True)


def in_review(owner: httpx.Client, n: int) -> bool:
    doc = owner.get(f"/repos/owner/big/issues/{n}").json()
    return "bzzz:review" in {x["name"] for x in doc["labels"]}


STEPS = (("prepare", "claimed", "running"), ("run_and_deliver", "running", "result"),
         ("record", "result", "pull_request"))


def durations(data_dir: Path, steps: dict | None = None) -> dict[int, float]:
    """issue → seconds from its claim to its pull request, from the agent's log; ``steps``
    gets each step's seconds per issue (prepare: claim to the task's start, the checkout;
    run_and_deliver: the task, then its commit, push and pull request; record: to the
    decision that names the pull request)."""
    at: dict[int, dict[str, float]] = {}
    out = {}
    for e in read_entries(data_dir / "log"):
        if e.get("type") in ("claimed", "running", "result", "pull_request"):
            at.setdefault(e.get("issue"), {})[e["type"]] = e["ts"]
        if e.get("type") == "pull_request" and "claimed" in at.get(e.get("issue"), {}):
            out[e["issue"]] = e["ts"] - at[e["issue"]]["claimed"]
    if steps is not None:
        for n in out:
            steps[n] = {name: round(at[n][b] - at[n][a], 3) for name, a, b in STEPS
                        if a in at[n] and b in at[n]}
    return out


def writes_by(url: str, login: str) -> tuple[int, int]:
    stats = httpx.get(url + "/_devhub/stats").json()["requests"].get(login, {})
    rest = sum(n for k, n in stats.items()
               if k.split(" ", 1)[0] in WRITES and not k.split(" ", 1)[1].startswith("git "))
    pushes = sum(n for k, n in stats.items() if "git-receive-pack" in k and k.startswith("POST"))
    return rest, pushes


def du(path: Path, *extra: str) -> int:
    """Disk a directory occupies (blocks, in bytes)."""
    return int(subprocess.run(["du", "-s", "-B1", *extra, str(path)], capture_output=True,
                              text=True, check=True).stdout.split()[0])


def run(tmp: Path, tasks: int, files: int, commits: int) -> None:
    with DevHubThread(seed=SEED) as hub:
        owner = httpx.Client(base_url=hub.url, headers={"Authorization": "token t-owner"},
                             timeout=60)
        t0 = time.monotonic()
        push_big_repo(f"{hub.url}/owner/big.git", "t-owner", files=files, commits=commits)
        made = time.monotonic() - t0

        def one(agent_name: str, i: int) -> int:
            n = owner.post("/repos/owner/big/issues", json={
                "title": f"change {agent_name} {i}", "labels": ["bzzz"],
                "body": TASK.format(i=i, d=(i * 13) % 50, f=(i * 13) % files)}).json()["number"]
            try:
                wait_for(lambda: in_review(owner, n), 120, what=f"task {n} in review")
            except TimeoutError:
                for log in tmp.glob("*.log"):
                    sys.stderr.write(log.read_text()[-3000:])
                raise
            return n

        # pacing off: the agent's own speed
        a = agents.start(tmp, "bot0", hub.url, "t-bot0", "owner/big",
                         BZZZ_GITHUB__WRITE_INTERVAL="0", BZZZ_KEEP_WORKSPACES="on")
        try:
            numbers = [one("bot0", i) for i in range(tasks)]
        finally:
            a.stop()
        steps: dict = {}
        d = durations(a.data_dir, steps)
        cold, warm = d[numbers[0]], [d[n] for n in numbers[1:]]
        p50 = statistics.median(warm)
        step_p50 = {name: statistics.median(steps[n].get(name, 0) for n in numbers[1:])
                    for name, _, _ in STEPS}
        emit("claim_to_pr_warm", round(p50, 3), "s", "p50 <= 1.5 s", p50 <= 1.5,
             steps_p50=step_p50,
             pacing="off", samples=len(warm), files=files, commits=commits,
             p90=round(sorted(warm)[int(len(warm) * 0.9) - 1], 3) if len(warm) >= 2 else None,
             repo_made_s=round(made, 2))
        emit("claim_to_pr_cold", round(cold, 3), "s", "<= 10 s", cold <= 10, pacing="off",
             files=files, commits=commits)
        rest, pushes = writes_by(hub.url, "bot0")
        per = rest / tasks
        emit("writes_per_pr", round(per, 2), "requests", "report; <= 10", per <= 10,
             git_pushes_per_pr=round(pushes / tasks, 2), tasks=tasks)
        work = tmp / "bot0-work"
        cos = sorted(p for p in work.iterdir() if p.name.startswith("owner_big-"))
        extra = [du(co) + du(work / ".private" / co.name) for co in cos]
        files_disk = statistics.median(du(co, "--exclude=.git") for co in cos)
        ratio = statistics.median(extra) / files_disk
        emit("disk_per_task", round(ratio, 3), "x working files", "<= 2", ratio <= 2,
             working_files_disk=int(files_disk), checkout_disk=int(statistics.median(extra)),
             working_bytes=working_bytes(cos[-1]))

        # the default pacing (0.75 s between content-creating requests), warm
        b = agents.start(tmp, "bot1", hub.url, "t-bot1", "owner/big")
        try:
            numbers = [one("bot1", i) for i in range(max(2, tasks // 2))]
        finally:
            b.stop()
        d = durations(b.data_dir)
        warm = [d[n] for n in numbers[1:]]
        p50 = statistics.median(warm)
        emit("claim_to_pr_warm_default_pacing", round(p50, 3), "s",
             "report (tasks back to back: after the burst, POSTs wait for the bucket)", None,
             pacing="bursts of 10, then one POST per 0.86 s", samples=len(warm))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small smoke run (CI)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bzzz-bench-repo-") as tmp:
        os.chmod(tmp, 0o755)  # the task user (nobody, when run as root) reaches the checkouts
        if args.quick:
            run(Path(tmp), tasks=4, files=5000, commits=2000)
        else:
            run(Path(tmp), tasks=21, files=5000, commits=2000)
    return 0


if __name__ == "__main__":
    sys.exit(main())
