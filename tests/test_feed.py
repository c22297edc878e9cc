"""Conditional polling against devhub: an idle feed spends no rate-limit budget."""

import httpx

from bzzz.claim.feed import TaskFeed
from bzzz.github.client import GitHubClient
from bzzz.devhub import DevHubThread

SEED = {"users": [{"login": "owner", "token": "t-owner"}, {"login": "bot", "token": "t-bot"}],
        "repos": [{"full_name": "owner/a", "push": ["bot"]},
                  {"full_name": "owner/b", "push": ["bot"]}]}


def post(hub, path, **json):
    return httpx.post(hub.url + path, json=json, headers={"Authorization": "token t-owner"})


def remaining(hub) -> int:
    r = httpx.get(hub.url + "/rate_limit", headers={"Authorization": "token t-bot"})
    return r.json()["rate"]["remaining"]


async def test_idle_polling_is_free_and_changes_are_seen():
    with DevHubThread(seed=SEED) as hub:
        post(hub, "/repos/owner/a/issues", title="one", labels=["bzzz", "priority:high"])
        post(hub, "/repos/owner/a/issues", title="not a task", labels=["docs"])
        async with GitHubClient(hub.url, "t-bot") as gh:
            feed = TaskFeed(gh, ["owner/a", "owner/b"])
            assert await feed.poll("owner/a") is True
            assert [t.title for t in feed.all_tasks()] == ["one"]
            before = remaining(hub)
            for _ in range(20):
                assert await feed.poll("owner/a") is False
                assert await feed.poll("owner/b") in (True, False)
            assert remaining(hub) == before - 1  # only b's first poll cost anything
            assert feed.repos["owner/a"].unchanged == 20
            post(hub, "/repos/owner/a/issues", title="two", labels=["bzzz"])
            assert await feed.poll("owner/a") is True
            assert sorted(t.title for t in feed.all_tasks()) == ["one", "two"]
            # a change to an old task (a label) is seen too
            post(hub, "/repos/owner/a/issues/1/labels", labels=["needs:gpu"])
            assert await feed.poll("owner/a") is True
            assert feed.repos["owner/a"].tasks[1].needs == {"gpu"}


async def test_pages_are_followed():
    with DevHubThread(seed=SEED) as hub:
        for i in range(7):
            post(hub, "/repos/owner/b/issues", title=f"t{i}", labels=["bzzz"])
        async with GitHubClient(hub.url, "t-bot") as gh:
            feed = TaskFeed(gh, ["owner/b"])
            import bzzz.claim.feed as feed_mod
            old, feed_mod.PER_PAGE = feed_mod.PER_PAGE, 3
            try:
                await feed.poll("owner/b")
            finally:
                feed_mod.PER_PAGE = old
            assert len(feed.all_tasks()) == 7
