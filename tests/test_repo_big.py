"""A repository of 5,000 files and 2,000 commits: one mirror per node, fetched incrementally;
a checkout costs its working files; the token is nowhere a task or `ps` can see."""

import base64
import json
import subprocess
import threading
from pathlib import Path

import httpx

from bzzz.devhub import DevHubThread
from bzzz.testing.bigrepo import push_big_repo, working_bytes
from bzzz.testing.wait import wait_for

from .test_agent_tasks import labels, start_agent
from .test_repo_work import SEED, client, comments, pulls

TASK = """```bzzz pr=ready
echo "one more line {i}" >> src/d01/f00001.txt
env > env-seen.txt
cat .git/config > git-config-seen.txt
ls -la .git > git-dir-seen.txt
```"""


def _du(path: Path) -> int:
    out = subprocess.run(["du", "-sb", "--count-links", str(path)], capture_output=True,
                         text=True, check=True).stdout
    return int(out.split()[0])


class PsWatch(threading.Thread):
    """Every process's command line, sampled as fast as ps runs, while the agent works."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.lines: set[str] = set()
        self.samples = 0

    def run(self) -> None:
        while not self.stop.is_set():
            out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
            self.lines.update(out.splitlines())
            self.samples += 1


def test_big_repository_second_task_does_not_reclone_and_the_token_stays_hidden(tmp_path, workdir):
    secret = "t-bot"
    b64 = base64.b64encode(f"x-access-token:{secret}".encode()).decode()
    with DevHubThread(seed=SEED) as hub:
        owner = client(hub)
        push_big_repo(f"{hub.url}/owner/tasks.git", "t-owner", files=5000, commits=2000)
        ps = PsWatch()
        ps.start()
        agent, api = start_agent(tmp_path, "a", hub, workdir, BZZZ_KEEP_WORKSPACES="on")
        numbers = []
        try:
            for i in range(2):
                numbers.append(owner.post("/repos/owner/tasks/issues", json={
                    "title": f"big {i}", "body": TASK.format(i=i), "labels": ["bzzz"]}).json()["number"])
                wait_for(lambda: "bzzz:review" in labels(owner, numbers[-1]), 90,
                         what=f"task {i} in review")
            status = httpx.get(f"http://127.0.0.1:{api}/api/v1/status").json()
        finally:
            ps.stop.set()
            agent.terminate()
            agent.wait(15)
        mirrors = status["github"]["checkouts"]["mirrors"]
        assert mirrors["owner/tasks"]["created"] == 1  # the second task did not clone again
        assert mirrors["owner/tasks"]["fetches"] >= 2
        prs = pulls(owner)
        assert len(prs) == 2 and not any(p["draft"] for p in prs)  # pr=ready
        # disk: each checkout is its working files plus an index, no objects
        ws_root = Path(workdir) / "a"
        checkouts = [p for p in ws_root.iterdir() if p.name.startswith("owner_tasks-")]
        assert len(checkouts) == 2
        for co in checkouts:
            files = working_bytes(co)
            assert files > 0
            objects = co / ".git" / "objects"
            assert _du(objects) < 64 * 1024, "a checkout copied objects"
            assert _du(co) + _du(ws_root / ".private" / co.name) <= 2 * files + 4 * 1024 * 1024, \
                (_du(co), files)
        # the token: not in any command line, the task's environment or files, the log,
        # the pull requests or the comments
        assert ps.samples > 5
        assert not [x for x in ps.lines if secret in x or b64 in x]
        for co in checkouts:
            for name in ("env-seen.txt", "git-config-seen.txt", "git-dir-seen.txt"):
                text = (co / name).read_text()
                assert secret not in text and b64 not in text
            assert "extraheader" not in (co / "git-config-seen.txt").read_text().lower()
        everything = json.dumps([pulls(owner)] + [comments(owner, n) for n in numbers])
        assert secret not in everything and b64 not in everything
        log = (tmp_path / "a.log").read_text()
        assert secret not in log and b64 not in log
