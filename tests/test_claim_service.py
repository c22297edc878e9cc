"""Claim, run and report end to end against devhub, with several nodes competing."""

import httpx
import trio

from bzzz.claim.github import GitHubClient
from bzzz.claim.service import ClaimService, ClaimSettings
from bzzz.decisions import MemoryDecisionLog
from bzzz.devhub import DevHubThread

SEED = {"users": [{"login": "owner", "token": "t-owner"}, {"login": "bot", "token": "t-bot"}],
        "repos": [{"full_name": "owner/tasks", "push": ["bot"]}]}

TASKS = [
    ("echo one", ["priority:low"]),
    ("echo two", ["priority:critical"]),
    ("echo three && exit 0", []),
    ("echo four; exit 4", []),          # fails
    ("sudo rm -rf /", []),              # the Guardian refuses
    ("nvidia-smi || echo no-gpu-here", ["needs:gpu"]),
    ("python3 -c 'print(6*7)'", ["needs:python"]),
    ("echo eight", ["priority:high"]),
    (None, []),                         # no command
]


def body(cmd):
    return "Task\n\n```bzzz\n" + cmd + "\n```\n" if cmd else "Please do something."


async def test_every_task_is_run_once_and_reported_once(tmp_path):
    with DevHubThread(seed=SEED) as hub:
        owner = httpx.Client(base_url=hub.url, headers={"Authorization": "token t-owner"})
        numbers = [owner.post("/repos/owner/tasks/issues", json={
            "title": f"task {i}", "body": body(cmd), "labels": ["bzzz", *labels]}).json()["number"]
            for i, (cmd, labels) in enumerate(TASKS)]
        caps = {"n1": ["shell", "python"], "n2": ["shell"], "n3": ["shell", "gpu"]}
        logs = {n: MemoryDecisionLog() for n in caps}
        async with GitHubClient(hub.url, "t-bot") as gh, trio.open_nursery() as nursery:
            services = []
            for node, c in caps.items():
                s = ClaimService(gh, ClaimSettings(
                    ["owner/tasks"], node, f"12D3KooW{node}", "bot", max_tasks=2,
                    poll_interval=0.2, workroot=tmp_path / node), logs[node],
                    capabilities=lambda c=c: c)
                services.append(s)
                await nursery.start(s.run)

            def finished():
                issues = owner.get("/repos/owner/tasks/issues",
                                   params={"state": "all", "per_page": 100}).json()
                done = [i for i in issues if {l["name"] for l in i["labels"]} &
                        {"bzzz:done", "bzzz:failed", "bzzz:needs-input"}]
                return len(done) == len(TASKS)

            with trio.fail_after(30):
                while not finished():
                    await trio.sleep(0.1)
            nursery.cancel_scope.cancel()

        claimed_by = {}
        for n, (cmd, labels) in zip(numbers, TASKS):
            comments = owner.get(f"/repos/owner/tasks/issues/{n}/comments").json()
            claims = [c for c in comments if "bzzz:claim:" in c["body"]]
            finals = [c for c in comments if any(k in c["body"] for k in
                                                 ("bzzz:result:", "bzzz:refused:",
                                                  "bzzz:needs-input:"))]
            assert len(claims) == 1 and len(finals) == 1, (n, [c["body"] for c in comments])
            issue = owner.get(f"/repos/owner/tasks/issues/{n}").json()
            names = {l["name"] for l in issue["labels"]}
            assert "bzzz:claimed" not in names
            claimed_by[n] = claims[0]["body"].split("**")[1]
            if cmd == "echo four; exit 4" or cmd == "sudo rm -rf /":
                assert "bzzz:failed" in names
            elif cmd is None:
                assert "bzzz:needs-input" in names
            else:
                assert "bzzz:done" in names and "succeeded" in finals[0]["body"]
            if "needs:gpu" in labels:
                assert claimed_by[n] == "n3"
            if "needs:python" in labels:
                assert claimed_by[n] == "n1"
            assert [a["login"] for a in issue["assignees"]] == ["bot"]
        refused = numbers[4]
        body_text = owner.get(f"/repos/owner/tasks/issues/{refused}/comments").json()[-1]["body"]
        assert "privilege escalation" in body_text
        # every claim ref was released
        refs = owner.get("/repos/owner/tasks/git/matching-refs/bzzz/claims/").json()
        assert refs == []
        # decisions: one claim or take-over per task across the mesh, contention recorded
        claims_logged = [e for lg in logs.values() for e in lg.entries if e["type"] == "claimed"]
        assert sorted(e["issue"] for e in claims_logged) == sorted(numbers)
        results = [e for lg in logs.values() for e in lg.entries
                   if e["type"] in ("result", "guardian_refused", "needs_input")]
        assert len(results) == len(TASKS)
