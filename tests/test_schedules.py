"""Schedules: the core (cron slots, due slot, records), the protocol over an in-memory
GitHub with a fake clock (many agents, skew, kills, catch-up), the same over devhub, and a
short run of real agent processes."""

import json
import random
import time
from datetime import datetime, timezone

import httpx
import pytest
import trio

from bzzz.github.markers import find_markers
from bzzz.claim.task import parse_issue
from bzzz.config import ConfigError, load_config
from bzzz.decisions import MemoryDecisionLog
from bzzz.schedule.core import (Action, Cron, CronError, Record, State, due_slot, labels_for,
                                on_record, parse_key, parse_record, render_body, render_title,
                                slot_key, slot_ref)
from bzzz.schedule.memory import MemoryHub, MemorySlotStore
from bzzz.schedule.runner import Schedule, Scheduler


def ts(*args) -> float:
    return datetime(*args, tzinfo=timezone.utc).timestamp()


# ---------------------------------------------------------------------- the core

def test_latest_and_next_slot_including_exactly_on_the_slot():
    c = Cron("*/15 * * * *")
    assert c.latest(ts(2026, 12, 2, 12, 0, 0)) == datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)
    assert c.latest(ts(2026, 12, 2, 12, 14, 59)).minute == 0
    assert c.next_after(ts(2026, 12, 2, 12, 0, 0)).minute == 15
    assert c.next_after(ts(2026, 12, 2, 11, 59, 59) + 0.5).minute == 0


def test_time_zone_and_dst():
    c = Cron("0 3 * * *", "Europe/Berlin")
    winter = c.latest(ts(2026, 12, 2, 12, 0))
    summer = c.latest(ts(2026, 7, 2, 12, 0))
    assert (winter.hour, summer.hour) == (2, 1)  # 03:00 local is 02:00 / 01:00 UTC
    assert c.local(winter) == "2026-12-02 03:00"
    assert slot_key(winter) == "20261202T020000Z" and parse_key("20261202T020000Z") == winter
    assert slot_ref("nightly", winter) == "refs/bzzz/schedules/nightly/20261202T020000Z"
    # the night the clocks go back: 03:00 comes once, the slot exists once
    night = [Cron("0 3 * * *", "Europe/Berlin").next_after(ts(2026, 10, 24, 12, 0))]
    assert night[0] == datetime(2026, 10, 25, 2, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("expr", ["", "* * * *", "61 * * * *", "* * * * * * *", "nonsense"])
def test_bad_cron_is_refused(expr):
    with pytest.raises(CronError):
        Cron(expr)


def test_bad_time_zone_is_refused():
    with pytest.raises(CronError, match="IANA"):
        Cron("* * * * *", "Mars/Olympus")


def test_due_slot_rules():
    c = Cron("0 * * * *")
    now = ts(2026, 12, 2, 12, 30)
    noon = datetime(2026, 12, 2, 12, tzinfo=timezone.utc)
    # whole mesh down since 09:00: only the latest missed slot is due
    assert due_slot(c, now, [datetime(2026, 12, 2, 9, tzinfo=timezone.utc)], None) == (noon, "due")
    # a clock behind the mesh's: a newer slot already has a record
    assert due_slot(c, ts(2026, 12, 2, 12, 59, 58), [datetime(2026, 12, 2, 13, tzinfo=timezone.utc)],
                    None)[0] is None
    # a new schedule starts with the first slot after its agent started
    assert due_slot(c, now, [], started_at=ts(2026, 12, 2, 12, 10))[0] is None
    assert due_slot(c, now, [], started_at=ts(2026, 12, 2, 11, 50)) == (noon, "due")


def test_records_round_trip_and_actions():
    r = Record("nightly", "20261202T020000Z", State.CLAIMED, "a1", 100.0)
    assert parse_record(r.message()) == r
    f = Record("nightly", "20261202T020000Z", State.FILED, "a1", 101.0, 7, takeover=True)
    assert parse_record(f.message()) == f
    assert parse_record("claim: something else") is None
    assert parse_record("bzzz schedule x@1\n\nstate: filed\nat: 1\n") is None  # no issue
    assert on_record(f, 10_000) is Action.DONE
    assert on_record(r, 110.0, grace=60) is Action.WAIT
    assert on_record(r, 161.0, grace=60) is Action.TAKE_OVER
    assert on_record(None, 0.0) is Action.TAKE_OVER


def test_body_is_a_task_issue_with_the_marker():
    c = Cron("0 3 * * *", "Europe/Berlin")
    slot = c.latest(ts(2026, 12, 2, 12))
    body = render_body("nightly", c, slot, "a1", body=None, command="echo ```x``` && make clean")
    doc = {"number": 1, "title": render_title("Nightly {slot}", c, slot), "body": body,
           "labels": [{"name": x} for x in labels_for(["needs:python"], "high")],
           "state": "open", "created_at": "2026-12-02T02:00:00Z",
           "updated_at": "2026-12-02T02:00:00Z", "user": {"login": "bot"}}
    task = parse_issue("o/r", doc)
    assert task.command == "echo ```x``` && make clean"
    assert task.priority == "high" and task.needs == {"python"}
    assert doc["title"] == "Nightly 2026-12-02 03:00"
    assert ("schedule", "nightly@20261202T020000Z") in find_markers(body)


def _schedules_toml(tmp_path, extra: str) -> str:
    (tmp_path / "tok").write_text("t\n")
    path = tmp_path / "c.toml"
    path.write_text(f'[github]\ntoken_file = "{tmp_path / "tok"}"\n' + extra)
    return str(path)


def test_config_schedules(tmp_path):
    cfg = load_config(_schedules_toml(tmp_path, '''
[[schedules]]
name = "nightly-clean"
cron = "0 3 * * *"
timezone = "Europe/Berlin"
repo = "acme/ops"
title = "Clean the cache {slot}"
command = "make clean"
labels = ["needs:shell"]
priority = "low"
'''), env={})
    s = cfg.schedules[0]
    assert (s.name, s.timezone, s.priority, s.labels) == ("nightly-clean", "Europe/Berlin", "low",
                                                         ["needs:shell"])
    env = {"BZZZ_SCHEDULES": json.dumps([{"name": "w", "cron": "0 9 * * 1", "repo": "a/b",
                                          "title": "Weekly", "body": "Review"}]),
           "GITHUB_TOKEN_FILE": str(tmp_path / "tok")}
    assert load_config(env=env).schedules[0].cron == "0 9 * * 1"


@pytest.mark.parametrize("entry,needle", [
    ('name = "Bad Name"\ncron = "* * * * *"\nrepo = "a/b"\ntitle = "t"\nbody = "b"', "schedules.name"),
    ('name = "x"\ncron = "* * *"\nrepo = "a/b"\ntitle = "t"\nbody = "b"', "five fields"),
    ('name = "x"\ncron = "* * * * *"\ntimezone = "Nowhere/Land"\nrepo = "a/b"\ntitle = "t"\nbody = "b"',
     "IANA"),
    ('name = "x"\ncron = "* * * * *"\nrepo = "ab"\ntitle = "t"\nbody = "b"', "owner/name"),
    ('name = "x"\ncron = "* * * * *"\nrepo = "a/b"\ntitle = "t"', "a body or a command"),
    ('name = "x"\ncron = "* * * * *"\nrepo = "a/b"\ntitle = "t"\nbody = "b"\ncommand = "c"',
     "not both"),
    ('name = "x"\ncron = "* * * * *"\nrepo = "a/b"\ntitle = "t"\nbody = "b"\npriority = "urgent"',
     "priority"),
])
def test_bad_schedules_are_one_clear_line(tmp_path, entry, needle):
    with pytest.raises(ConfigError, match=needle):
        load_config(_schedules_toml(tmp_path, "[[schedules]]\n" + entry + "\n"), env={})


def test_duplicate_names_and_missing_token(tmp_path):
    one = '[[schedules]]\nname = "x"\ncron = "* * * * *"\nrepo = "a/b"\ntitle = "t"\nbody = "b"\n'
    with pytest.raises(ConfigError, match="used twice"):
        load_config(_schedules_toml(tmp_path, one + one), env={})
    (tmp_path / "bare.toml").write_text(one)
    with pytest.raises(ConfigError, match="token_file"):
        load_config(tmp_path / "bare.toml", env={})


# ---------------------------------------------------------------------- the protocol, in memory

T0 = ts(2026, 12, 2, 0, 0, 30)  # the fake wall clock starts half a minute past midnight
EVERY_MINUTE = Schedule("tick", Cron("* * * * *"), "o/r", "Tick {slot}", command="echo tick")


class Dies:
    """A store that kills its agent (it never returns) right after the n-th successful call
    of ``method``: a crash between two steps of the protocol."""

    def __init__(self, inner, method: str, after: int) -> None:
        self.inner, self.method, self.left = inner, method, after
        self.dead = trio.Event()

    def __getattr__(self, name):
        fn = getattr(self.inner, name)
        if name != self.method:
            return fn

        async def wrapped(*args, **kw):
            result = await fn(*args, **kw)
            if result is not None:
                self.left -= 1
                if self.left == 0:
                    self.dead.set()
                    await trio.sleep_forever()
            return result
        return wrapped


def _agents(hub, n, skews, start, *, wrap=None, grace=120.0, jitter=0.0):
    out = []
    for i in range(n):
        store = MemorySlotStore(hub)
        if wrap is not None and i in wrap:
            store = wrap[i](store)
        skew = skews[i]
        clock = (lambda s=skew: start + s + trio.current_time())
        out.append(Scheduler([EVERY_MINUTE], {"o/r": store}, MemoryDecisionLog(), f"a{i}",
                             clock=clock, grace=grace, jitter=jitter))
    return out


async def _run_for(schedulers, seconds, kills=()):
    """Run every scheduler for ``seconds`` of trio time; ``kills``: (index, at) pairs."""
    scopes = [trio.CancelScope() for _ in schedulers]

    async def one(i):
        with scopes[i]:
            await schedulers[i].run()

    async def killer(i, at):
        await trio.sleep(at)
        scopes[i].cancel()

    with trio.move_on_after(seconds):
        async with trio.open_nursery() as nursery:
            for i in range(len(schedulers)):
                nursery.start_soon(one, i)
            for i, at in kills:
                nursery.start_soon(killer, i, at)


def _one_each(store, keys):
    got = store.issues_for("tick")
    assert sorted(got) == sorted(keys), (sorted(got)[:5], sorted(keys)[:5])
    assert all(len(v) == 1 for v in got.values()), {k: v for k, v in got.items() if len(v) > 1}


def _slot_keys(first: float, n: int) -> list[str]:
    return [slot_key(datetime.fromtimestamp(first + 60 * i, timezone.utc)) for i in range(n)]


async def test_three_agents_100_slots_exactly_100_issues_with_skew(autojump_clock):
    hub = MemoryHub(delay=0.5, rng=random.Random(7))
    agents = _agents(hub, 3, [0.0, 3.0, -3.0], T0)
    await _run_for(agents, 100 * 60 + 10)
    store = MemorySlotStore(hub)
    _one_each(store, _slot_keys(ts(2026, 12, 2, 0, 1), 100))
    assert len(hub.issues) == 100
    assert sum(a.fired for a in agents) == 100 and sum(a.errors for a in agents) == 0
    assert sum(a.lost for a in agents) > 0  # they did race
    assert len([r for r in hub.refs]) <= 5  # old slot refs are pruned
    kinds = {e["type"] for a in agents for e in a.decisions.entries}
    assert {"schedule_fired", "schedule_lost", "schedule_skipped"} <= kinds


async def test_random_kills_and_jitter_change_nothing(autojump_clock):
    for seed in range(5):
        rng = random.Random(seed)
        hub = MemoryHub(delay=rng.uniform(0, 2), rng=rng)
        agents = _agents(hub, 3, [rng.uniform(-4, 4) for _ in range(3)], T0 - trio.current_time(),
                         jitter=2.0)
        await _run_for(agents, 30 * 60 + 10, kills=[(rng.randrange(3), rng.uniform(0, 1800))])
        _one_each(MemorySlotStore(hub), _slot_keys(ts(2026, 12, 2, 0, 1), 30))


@pytest.mark.parametrize("method", ["create", "file_issue"])
async def test_a_claimant_dying_mid_way_is_repaired_without_a_duplicate(autojump_clock, method):
    hub = MemoryHub(delay=0.1)
    # a0 runs ahead, so it wins; it dies after its 3rd ref (before that slot's issue), or
    # after its 3rd issue (before recording it on the ref)
    holder = {}
    agents = _agents(hub, 3, [2.0, 0.0, 0.0], T0,
                     wrap={0: lambda s: holder.setdefault("d", Dies(s, method, 3))})
    await _run_for(agents, 10 * 60 + 10)
    assert holder["d"].dead.is_set()
    _one_each(MemorySlotStore(hub), _slot_keys(ts(2026, 12, 2, 0, 1), 10))
    repaired = [e for a in agents[1:] for e in a.decisions.entries
                if e["type"] == "schedule_repaired"]
    assert len(repaired) == 1 and repaired[0]["filed"] is (method == "create")


async def test_catch_up_files_only_the_latest_missed_slot(autojump_clock):
    hub = MemoryHub(delay=0.2)
    await _run_for(_agents(hub, 3, [0, 1, -1], T0), 5 * 60 + 10)  # slots 00:01..00:05
    # the whole mesh is down from 00:05:40 until 00:42:50: back, 00:42 is filed once
    back = T0 + 5 * 60 + 10 + 37 * 60 + 10
    again = _agents(hub, 3, [0, 1, -1], back - trio.current_time())
    await _run_for(again, 3 * 60)  # and then 00:43..00:45 as usual
    keys = _slot_keys(ts(2026, 12, 2, 0, 1), 5) + _slot_keys(ts(2026, 12, 2, 0, 42), 4)
    _one_each(MemorySlotStore(hub), keys)
    late = sorted(e["slot"] for a in again for e in a.decisions.entries
                  if e["type"] == "schedule_fired")
    assert late[0] == "20261202T004200Z"  # not one of 00:06..00:41


async def test_a_new_schedule_does_not_file_a_past_slot(autojump_clock):
    hub = MemoryHub()
    agents = _agents(hub, 1, [0.0], ts(2026, 12, 2, 3, 0, 30))
    daily = Schedule("daily", Cron("0 3 * * *"), "o/r", "Daily", body="do it")
    agents[0].schedules = [daily]
    await _run_for(agents, 60)
    assert hub.issues == []
    assert [e["reason"] for e in agents[0].decisions.entries] == ["before the schedule's first start"]


# ---------------------------------------------------------------------- on devhub

SEED = {"users": [{"login": "owner", "token": "t-owner"}, {"login": "bot", "token": "t-bot"}],
        "repos": [{"full_name": "owner/tasks", "push": ["bot"]}]}


def _marked(issues, name="tick"):
    """Slot key -> issue numbers carrying that slot's marker."""
    out = {}
    for i in issues:
        for kind, key in find_markers(i.get("body") or ""):
            if kind == "schedule" and key.startswith(name + "@"):
                out.setdefault(key.split("@", 1)[1], []).append(i["number"])
    return out


def _all_issues(url):
    owner = httpx.Client(base_url=url, headers={"Authorization": "token t-owner"})
    return owner.get("/repos/owner/tasks/issues", params={"state": "all", "per_page": 100}).json()


def _slot_states(url, name="tick"):
    """Slot key -> the state its record says, for every slot ref of schedule ``name``."""
    bot = {"Authorization": "token t-bot"}
    refs = httpx.get(f"{url}/repos/owner/tasks/git/matching-refs/bzzz/schedules/{name}/",
                     headers=bot).json()
    return {r["ref"].rsplit("/", 1)[1]: parse_record(httpx.get(
        r["object"]["url"], headers=bot).json()["message"]).state for r in refs}


async def test_three_schedulers_on_devhub_three_slots_one_killed_mid_way(mock_clock):
    from bzzz.github.client import GitHubClient
    from bzzz.devhub import DevHubThread
    from bzzz.schedule.store import GitHubSlotStore

    mock_clock.rate = 20  # a minute of the schedulers' time is 3 s of ours
    sched = Schedule("tick", Cron("* * * * *"), "owner/tasks", "Tick {slot}", command="echo tick")
    with DevHubThread(seed=SEED) as hub:
        # the fake wall clock starts 30 s before a minute, near the real time (devhub stamps
        # issues with its own clock, which the marker search reads)
        start = (time.time() // 60 + 1) * 60 - 30 - trio.current_time()
        clients = [GitHubClient(hub.url, "t-bot", timeout=600) for _ in range(3)]
        dies = Dies(GitHubSlotStore(clients[0], "owner/tasks"), "create", 2)
        stores = [dies] + [GitHubSlotStore(c, "owner/tasks") for c in clients[1:]]
        # a0 runs 2 s ahead, so it wins the first two slots; it dies right after creating
        # the second slot's ref, before filing its issue
        schedulers = [Scheduler([sched], {"owner/tasks": stores[i]}, MemoryDecisionLog(), f"a{i}",
                                clock=(lambda s=skew: start + s + trio.current_time()), jitter=0)
                      for i, skew in enumerate([2.0, 0.0, -1.0])]
        try:
            await _run_for(schedulers, 3 * 60 + 20)
        finally:
            for c in clients:
                await c.aclose()
        # read in a thread: on this loop's mock clock (20 times fast) an HTTP timeout is short
        issues = await trio.to_thread.run_sync(_all_issues, hub.url)
        marked = _marked(issues)
        assert len(issues) == 3 and len(marked) == 3, marked
        assert all(len(v) == 1 for v in marked.values())
        assert dies.dead.is_set()
        kinds = [e["type"] for s in schedulers for e in s.decisions.entries]
        assert kinds.count("schedule_repaired") == 1 and kinds.count("schedule_fired") == 2
        states = await trio.to_thread.run_sync(_slot_states, hub.url)
        assert sorted(states) == sorted(marked)
        assert all(state is State.FILED for state in states.values()), states


# ---------------------------------------------------------------------- real agents

def test_real_agents_file_one_issue_per_slot_and_run_it(workdir):
    """Three `bzzz run` processes carrying the same schedule. The cron has a sixth field
    (seconds, croniter's extension, accepted as a test hook): every 10 s."""
    from pathlib import Path

    from bzzz.devhub import DevHubThread
    from bzzz.hyperlog.store import read_entries
    from bzzz.testing import agents as procs
    from bzzz.testing.wait import wait_for

    schedules = json.dumps([{"name": "tick", "cron": "* * * * * */10", "repo": "owner/tasks",
                             "title": "Tick {slot}", "command": "echo scheduled-run"}])
    root = Path(workdir)
    with DevHubThread(seed=SEED) as hub:
        running = [procs.start(root, f"s{i}", hub.url, "t-bot", "owner/tasks",
                               BZZZ_SCHEDULES=schedules, BZZZ_GITHUB__POLL_INTERVAL="0.5",
                               BZZZ_GITHUB__WRITE_INTERVAL="0") for i in range(3)]
        try:
            def done():
                issues = _all_issues(hub.url)
                return len(_marked(issues)) >= 3 and any(
                    "bzzz:done" in {x["name"] for x in i["labels"]} for i in issues)
            wait_for(done, 90, 0.5, "three slots filed and one task done")
        finally:
            for p in running:
                p.stop()
        issues = _all_issues(hub.url)
        marked = _marked(issues)
        assert all(len(v) == 1 for v in marked.values()), marked
        assert len(issues) == len(marked)
        done_one = next(i for i in issues if "bzzz:done" in {x["name"] for x in i["labels"]})
        comments = httpx.get(f"{hub.url}/repos/owner/tasks/issues/{done_one['number']}/comments",
                             headers={"Authorization": "token t-owner"}).json()
        assert any("scheduled-run" in c["body"] for c in comments)
        fired = [e for i in range(3) for e in read_entries(root / f"s{i}" / "log")
                 if e.get("type") == "schedule_fired"]
        assert len({e["slot"] for e in fired}) == len(fired) >= 3
