"""The monitor's GitHub poll (bzzz/monitor/node.py ``_poll_repo``): one small request per poll
however many issues the repository holds, pages only for what changed, 304 when quiet."""

import httpx

from bzzz.config import Config
from bzzz.devhub import DevHubThread
from bzzz.monitor import node as node_mod
from bzzz.monitor.node import Monitor

SEED = {"users": [{"login": "owner", "token": "t-owner"}, {"login": "mon", "token": "t-mon"}],
        "repos": [{"full_name": "owner/tasks", "push": ["mon"]}]}


def monitor_config(tmp_path, hub) -> Config:
    (tmp_path / "token").write_text("t-mon\n")
    return Config(node_id="mon", data_dir=tmp_path / "mon", listen=["/ip4/127.0.0.1/tcp/0"],
                  mdns=False, github={"url": hub.url, "token_file": tmp_path / "token",
                                      "repos": ["owner/tasks"]},
                  monitor={"listen": "127.0.0.1:0", "poll_interval": 0})


async def test_the_poll_reads_the_newest_first_then_only_what_changed(tmp_path, monkeypatch):
    monkeypatch.setattr(node_mod, "POLL_PAGE", 5)
    with DevHubThread(seed=SEED) as hub:
        async with httpx.AsyncClient(base_url=hub.url,
                                     headers={"Authorization": "token t-owner"}) as owner:
            for i in range(12):
                r = await owner.post("/repos/owner/tasks/issues", json={
                    "title": f"task {i}", "body": "```bzzz\necho hi\n```", "labels": ["bzzz"]})
                assert r.status_code == 201, r.text
            mon = Monitor(monitor_config(tmp_path, hub))
            try:
                gh = mon.gh
                # the first poll: the newest page only
                assert await mon._poll_repo("owner/tasks")
                assert sorted(n for _, n in mon.index.tasks) == list(range(8, 13))
                # quiet: one conditional request (after the cursor's own second is read
                # again: `since` is inclusive), answered 304, changing nothing
                await mon._poll_repo("owner/tasks")
                before = gh.requests
                assert not await mon._poll_repo("owner/tasks")
                assert gh.requests - before == 1
                # more changes than a page since the last poll: every one, oldest first, read
                # in one poll page by page; the old issues the first poll skipped come in too
                for n in range(1, 8):
                    r = await owner.post(f"/repos/owner/tasks/issues/{n}/labels",
                                         json={"labels": ["bzzz:done"]})
                    assert r.status_code == 200, r.text
                before = gh.requests
                assert await mon._poll_repo("owner/tasks")
                assert gh.requests - before >= 2
                assert all(mon.index.tasks[("owner/tasks", n)].state == "done"
                           for n in range(1, 8))
                assert mon.index.tasks[("owner/tasks", 9)].state == "waiting"
            finally:
                await mon.gh.aclose()
                mon.index.close()
                mon.decisions.close()
                mon.datalease.release()
