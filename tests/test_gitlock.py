"""The claim lock against devhub (GitHub's semantics): exactly one holder, always."""

import httpx
import pytest
import trio

from bzzz.github.client import GitHubClient, GitHubError, RateLimited
from bzzz.claim.gitlock import ClaimLock, Held, Lost
from bzzz.devhub import DevHubThread

SEED = {"users": [{"login": "owner", "token": "t-owner"},
                  {"login": "bot", "token": "t-bot"}, {"login": "other", "token": "t-other"}],
        "repos": [{"full_name": "owner/tasks", "push": ["bot", "other"]}]}


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def hub():
    with DevHubThread(seed=SEED) as d:
        yield d


def new_issue(hub) -> int:
    r = httpx.post(hub.url + "/repos/owner/tasks/issues", json={"title": "t", "labels": ["bzzz"]},
                   headers={"Authorization": "token t-owner"})
    return r.json()["number"]


def lock(client, node, clock=None, **kw) -> ClaimLock:
    return ClaimLock(client, "owner/tasks", node, f"12D3KooW{node}", "bot",
                     clock=clock or Clock(), **kw)


async def test_one_holder_even_with_a_shared_login(hub):
    n = new_issue(hub)
    async with GitHubClient(hub.url, "t-bot") as gh:
        a, b = lock(gh, "a"), lock(gh, "b")  # same token, same login
        held = await a.acquire(n)
        assert isinstance(held, Held) and held.claim.node == "a"
        lost = await b.acquire(n)
        assert isinstance(lost, Lost) and lost.reason == "held"
        assert lost.holder.node == "a" and lost.holder.peer == "12D3KooWa"
        current = await b.read(n)
        assert current.sha == held.sha and current.claim == held.claim


async def test_twenty_concurrent_claimants_one_winner(hub):
    n = new_issue(hub)
    results = []
    async with GitHubClient(hub.url, "t-bot") as gh:
        async def claim(i):
            results.append(await lock(gh, f"n{i}").acquire(n))
        async with trio.open_nursery() as nursery:
            for i in range(20):
                nursery.start_soon(claim, i)
    held = [r for r in results if isinstance(r, Held)]
    assert len(held) == 1 and len(results) == 20
    assert all(r.holder.node == held[0].claim.node for r in results if isinstance(r, Lost)
               and r.holder is not None)


async def test_renewal_takeover_and_the_old_holder_stops(hub):
    n = new_issue(hub)
    clock = Clock()
    async with GitHubClient(hub.url, "t-bot") as gh:
        a = lock(gh, "a", clock, lease=60, grace=5)
        b = lock(gh, "b", clock, lease=60, grace=5)
        held = await a.acquire(n)
        clock.t += 25
        renewed = await a.renew(held)
        assert isinstance(renewed, Held) and renewed.claim.generation == 2
        assert renewed.claim.lease_expires == clock.t + 60
        clock.t += 64  # not yet expired (expires +60, grace 5)
        assert isinstance(await b.acquire(n), Lost)
        clock.t += 2  # a stopped renewing (crashed): the lease ran out
        taken = await b.acquire(n)
        assert isinstance(taken, Held) and taken.taken_over and taken.claim.node == "b"
        assert taken.claim.generation == 3
        assert not await a.still_ours(renewed)
        gone = await a.renew(renewed)  # the old holder finds the ref moved
        assert isinstance(gone, Lost) and gone.holder.node == "b"
        assert not await a.release(renewed)  # and cannot release what is not its own
        assert await b.release(taken)
        assert await b.read(n) is None
        again = await a.acquire(n)  # released: claimable again
        assert isinstance(again, Held)


async def test_two_takeovers_race_one_wins(hub):
    n = new_issue(hub)
    clock = Clock()
    async with GitHubClient(hub.url, "t-bot") as gh:
        await lock(gh, "dead", clock).acquire(n)
        clock.t += 1000
        results = []
        async def take(i):
            results.append(await lock(gh, f"t{i}", clock).acquire(n))
        async with trio.open_nursery() as nursery:
            for i in range(8):
                nursery.start_soon(take, i)
    winners = [r for r in results if isinstance(r, Held)]
    assert len(winners) == 1 and winners[0].taken_over


async def test_garbage_in_a_claim_ref_does_not_block_forever(hub):
    n = new_issue(hub)
    clock = Clock()
    async with GitHubClient(hub.url, "t-other") as gh:
        head = (await gh.request("GET", "/repos/owner/tasks/git/ref/heads/main")).data
        await gh.request("POST", "/repos/owner/tasks/git/refs",
                         json={"ref": f"refs/bzzz/claims/{n}", "sha": head["object"]["sha"]})
        import time as _time
        clock.t = _time.time()  # the commit is old: "Initial commit" has no lease
        l = lock(gh, "x", clock, lease=60, grace=5)
        current = await l.read(n)
        assert current.claim is None
        clock.t = current.commit_time + 30
        assert isinstance(await l.acquire(n), Lost)
        clock.t = current.commit_time + 70
        assert isinstance(await l.acquire(n), Held)


async def test_race_under_server_errors_and_latency(hub):
    n = new_issue(hub)
    results = []
    async with httpx.AsyncClient(base_url=hub.url) as admin, \
            GitHubClient(hub.url, "t-bot", attempts=12, backoff=0.01) as gh:
        await admin.post("/_devhub/faults", json={
            "pattern": "^(POST|PATCH|GET) /repos/owner/tasks/git/", "error_rate": 0.3,
            "error_status": 502, "latency_ms": [5, 30]})

        async def claim(i):
            results.append(await lock(gh, f"f{i}").acquire(n))
        async with trio.open_nursery() as nursery:
            for i in range(10):
                nursery.start_soon(claim, i)
        await admin.delete("/_devhub/faults")
        current = await lock(gh, "check").read(n)
    held = [r for r in results if isinstance(r, Held)]
    assert len(held) == 1 and current.sha == held[0].sha


async def test_client_surfaces_rate_limit_and_hides_the_token(hub):
    async with GitHubClient(hub.url, "t-other") as gh:
        hub.app.limits.exhaust("token:t-other", True, __import__("time").time())
        with pytest.raises(RateLimited) as err:
            await gh.request("GET", "/repos/owner/tasks")
        assert err.value.reset > 0 and "t-other" not in str(err.value)
    async with GitHubClient(hub.url, "nope") as gh:
        with pytest.raises(GitHubError) as err:
            await gh.request("GET", "/user")
        assert err.value.status == 401 and "nope" not in str(err.value)
