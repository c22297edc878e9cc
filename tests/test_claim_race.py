"""The race the issue names: 10 agent processes, 200 tasks, slow and flaky GitHub."""

import collections
import os
import subprocess
import sys

from pathlib import Path

import httpx

from bzzz.devhub import DevHubThread
from bzzz.testing.wait import wait_for

from .helpers import free_port

AGENTS, TASKS = 10, 200
SEED = {"users": [{"login": "owner", "token": "t-owner"}]
        + [{"login": f"bot{i}", "token": f"t-bot{i}"} for i in range(AGENTS)],
        "repos": [{"full_name": "owner/tasks", "push": [f"bot{i}" for i in range(AGENTS)]}]}


def test_ten_processes_two_hundred_tasks_latency_and_5xx(tmp_path, workdir):
    from bzzz.identity import load_or_create
    ports = [free_port() for _ in range(AGENTS)]
    ids = [load_or_create(tmp_path / f"r{i}").peer_id.to_base58() for i in range(AGENTS)]
    boot = f"/ip4/127.0.0.1/tcp/{ports[0]}/p2p/{ids[0]}"
    for i in range(AGENTS):
        (tmp_path / f"token{i}").write_text(f"t-bot{i}\n")
    # every run leaves a file in its own workspace (tasks are sandboxed: the workspace is the
    # only place they can write), so the workspaces tell how often each task ran
    with DevHubThread(seed=SEED) as hub:
        owner = httpx.Client(base_url=hub.url, headers={"Authorization": "token t-owner"},
                             timeout=60)
        for i in range(TASKS):
            owner.post("/repos/owner/tasks/issues", json={
                "title": f"t{i}", "body": f"```bzzz\necho {i} > ran-{i}.txt\n```",
                "labels": ["bzzz"]})
        # slow and flaky from here on (the owner's reads too, which is fine)
        owner.post("/_devhub/faults", json={"pattern": "^(GET|POST|PATCH|PUT|DELETE) /repos/",
                                            "latency_ms": [50, 200], "error_rate": 0.05,
                                            "error_status": 502})
        procs = []
        for i in range(AGENTS):
            env = {k: v for k, v in os.environ.items() if not k.startswith("BZZZ_")}
            env.update({"BZZZ_NODE_ID": f"r{i}", "BZZZ_DATA_DIR": str(tmp_path / f"r{i}"),
                        "BZZZ_LISTEN": f"/ip4/127.0.0.1/tcp/{ports[i]}",
                        "BZZZ_BOOTSTRAP": boot if i else "",
                        "BZZZ_API_LISTEN": f"127.0.0.1:{free_port()}", "BZZZ_MDNS": "off",
                        "BZZZ_DETECT_CAPABILITIES": "off", "BZZZ_CAPABILITIES": "shell",
                        "BZZZ_MAX_TASKS": "3", "BZZZ_GITHUB__URL": hub.url,
                        "BZZZ_GITHUB__REPOS": "owner/tasks", "BZZZ_GITHUB__POLL_INTERVAL": "1",
                        "BZZZ_GITHUB__WRITE_INTERVAL": "0",
                        "GITHUB_TOKEN_FILE": str(tmp_path / f"token{i}"),
                        "BZZZ_WORKSPACE_DIR": str(Path(workdir) / f"r{i}"),
                        "BZZZ_KEEP_WORKSPACES": "on",  # claiming at scale: no checkouts
                        "BZZZ_GITHUB__CHECKOUT": "off",
                        # the tasks reach no network (no gateway forwarder per task), and
                        # the agents do not copy each other's logs: the race is GitHub's
                        "BZZZ_TASK_NETWORK": "none", "BZZZ_REPLICATE_LOGS": "0"})
            log = open(tmp_path / f"r{i}.log", "ab")
            procs.append(subprocess.Popen([sys.executable, "-m", "bzzz", "run"], env=env,
                                          stdout=log, stderr=subprocess.STDOUT))

        def done_count():
            n, page = 0, 1
            while True:
                r = owner.get("/repos/owner/tasks/issues",
                              params={"state": "all", "labels": "bzzz:done", "per_page": 100,
                                      "page": page})
                if r.status_code != 200:
                    return 0
                n += len(r.json())
                if len(r.json()) < 100:
                    return n
                page += 1

        try:
            wait_for(lambda: done_count() == TASKS, 600, 2.0, "all 200 tasks done")
        except TimeoutError:
            _explain_stuck(owner, tmp_path)
            raise
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(30)
        owner.delete("/_devhub/faults")
        counts = collections.Counter(f.read_text().strip()
                                     for f in Path(workdir).glob("r*/*/ran-*.txt"))
        assert len(counts) == TASKS and set(counts.values()) == {1}, \
            [k for k, v in counts.items() if v > 1]  # every task ran exactly once
        for n in range(1, TASKS + 1):
            comments = owner.get(f"/repos/owner/tasks/issues/{n}/comments").json()
            results = [c for c in comments if "<!-- bzzz:result:" in c["body"]]
            claims = [c for c in comments if "<!-- bzzz:claim:" in c["body"]]
            assert len(results) == 1 and len(claims) == 1, (n, len(results), len(claims))


def _explain_stuck(owner: httpx.Client, tmp_path: Path) -> None:
    """Print what the tasks that never finished look like, and what the agents said of them."""
    owner.delete("/_devhub/faults")
    issues = owner.get("/repos/owner/tasks/issues",
                       params={"state": "all", "per_page": 100, "page": 1}).json()
    issues += owner.get("/repos/owner/tasks/issues",
                        params={"state": "all", "per_page": 100, "page": 2}).json()
    for issue in issues:
        labels = [label["name"] for label in issue["labels"]]
        if "bzzz:done" in labels:
            continue
        n = issue["number"]
        print(f"--- issue {n} {issue['state']} {labels} assignees="
              f"{[a['login'] for a in issue.get('assignees') or []]}")
        for c in owner.get(f"/repos/owner/tasks/issues/{n}/comments").json():
            print(f"  comment {c['id']} by {c['user']['login']}: {c['body'][:160]!r}")
        for log in sorted(tmp_path.glob("r*.log")):
            for line in log.read_text(errors="replace").splitlines():
                if f"#{n} " in line or f"#{n}:" in line or f"/{n} " in line or f"#{n}\"" in line:
                    print(f"  {log.stem}: {line[:300]}")
