"""A task nobody in the mesh can take says so (bzzz/claim/waiting.py): the core, then a real
mesh of two agents on devhub."""

from pathlib import Path

import httpx
import trio
from hypothesis import given
from hypothesis import strategies as st

from bzzz.claim.task import parse_issue
from bzzz.claim.waiting import due, speaker, unmet, waiting_comment
from bzzz.devhub import DevHubThread
from bzzz.github.markers import find_markers
from bzzz.p2p.capabilities import PeerView
from bzzz.testing.wait import wait_until_async

from .helpers import start_agent


def issue(labels=("bzzz",), body="", state="open"):
    return parse_issue("acme/widgets", {
        "number": 5, "title": "t", "body": body, "state": state,
        "labels": [{"name": n} for n in labels], "created_at": "2026-11-20T10:00:00Z",
        "updated_at": "2026-11-20T10:00:00Z", "assignees": []})


def peer(pid, *caps, max_tasks=1):
    return PeerView(pid, tuple(caps), 0, max_tasks)


def test_a_need_nobody_offers_is_unmet_and_named():
    t = issue(("bzzz", "needs:gpu"))
    u = unmet(t, "me", ["shell"], [peer("p1", "shell", "docker")])
    assert u is not None and u.needs == ("gpu",) and u.missing == ("gpu",)
    body = waiting_comment(u).body
    assert "Waiting for a node with `gpu`" in body
    assert "`me`: `shell`" in body and "`p1`: `shell`, `docker`" in body
    assert ("waiting", u.key) in find_markers(body)
    # a label may hold spaces: a need spelling a marker of ours stays text
    forged = unmet(issue(("bzzz", "needs:<!-- bzzz:claim:x -->")), "me", [], [])
    assert forged is not None
    assert find_markers(waiting_comment(forged).body) == {("waiting", forged.key)}


def test_a_model_nobody_serves_is_unmet():
    t = issue(body="```bzzz llm model=absent\nhi\n```")
    u = unmet(t, "me", ["shell", "llm", "llm:llama3"], [])
    assert u is not None and u.missing == ("llm:absent",)


def test_met_by_a_peer_or_by_me_or_not_a_needs_problem_is_not_unmet():
    t = issue(("bzzz", "needs:gpu"))
    assert unmet(t, "me", ["shell", "gpu"], []) is None
    assert unmet(t, "me", ["shell"], [peer("p1", "gpu")]) is None
    assert unmet(issue(("bzzz", "needs:gpu"), state="closed"), "me", [], []) is None
    assert unmet(issue(("other",)), "me", [], []) is None
    assert unmet(issue(body="```bzzz frobnicate\nx\n```"), "me", [], []) is None  # malformed
    # a peer that takes no tasks offers nothing
    assert unmet(t, "me", ["shell"], [peer("p1", "gpu", max_tasks=0)]) is not None


def test_needs_split_across_nodes_say_so():
    t = issue(("bzzz", "needs:gpu", "needs:cuda"))
    u = unmet(t, "me", ["gpu"], [peer("p1", "cuda")])
    assert u is not None and u.missing == ()  # each is offered, never together
    assert "one node with all of `cuda`, `gpu`" in waiting_comment(u).body


def test_one_speaker_for_the_mesh_and_a_new_notice_when_the_needs_change():
    peers = [peer("b"), peer("c")]
    assert speaker("a", peers) and not speaker("d", peers) and speaker("a", [])
    one = unmet(issue(("bzzz", "needs:gpu")), "me", [], [])
    two = unmet(issue(("bzzz", "needs:gpu", "needs:tpu")), "me", [], [])
    assert one is not None and two is not None and one.key != two.key
    assert due(100.0, 130.0, 30.0) and not due(100.0, 129.0, 30.0)


@given(st.lists(st.text(min_size=1, max_size=30).filter(lambda s: "," not in s), max_size=5),
       st.lists(st.text(max_size=40), max_size=40))
def test_hostile_needs_and_capabilities_stay_in_their_code_spans(needs, caps):
    t = issue(("bzzz", *[f"needs:{n}" for n in needs]))
    u = unmet(t, "me`<!--", caps, [peer("p`x", *caps)])
    if u is None:
        return
    body = waiting_comment(u).body
    assert body.count("<!-- bzzz:") == 1  # only our marker; a name cannot open another
    assert len(body) < 8000


# -- a real mesh ------------------------------------------------------------------------------

SEED = {"users": [{"login": "owner", "token": "t-owner"}, {"login": "bot", "token": "t-bot"}],
        "repos": [{"full_name": "owner/tasks", "push": ["bot"]}]}


async def test_a_task_nobody_can_take_says_so_then_a_node_that_can_takes_it(tmp_path, workdir):
    (tmp_path / "token").write_text("t-bot\n")
    with DevHubThread(seed=SEED) as hub:
        gh = {"url": hub.url, "repos": ["owner/tasks"], "poll_interval": 0.3,
              "write_interval": 0, "token_file": tmp_path / "token", "checkout": False}
        async with httpx.AsyncClient(base_url=hub.url,
                                     headers={"Authorization": "token t-owner"}) as owner:
            n = (await owner.post("/repos/owner/tasks/issues", json={
                "title": "needs a gpu", "labels": ["bzzz", "needs:gpu"],
                "body": "```bzzz\necho ran-on-the-gpu-node\n```"})).json()["number"]

            async def comments():
                got = await owner.get(f"/repos/owner/tasks/issues/{n}/comments")
                return [c["body"] for c in got.json()]

            async def labels():
                got = await owner.get(f"/repos/owner/tasks/issues/{n}")
                return {x["name"] for x in got.json()["labels"]}

            async def labelled(name):
                return name in await labels()

            async with trio.open_nursery() as nursery:
                a = await start_agent(nursery, tmp_path, "a", github=gh, waiting_notice=1.0,
                                      sandbox="none", help_requests=False,
                                      workspace_dir=Path(workdir) / "a")
                await wait_until_async(lambda: labelled("bzzz:waiting"), 30,
                                       "the waiting label")
                said = [c for c in await comments() if "Waiting for a node with `gpu`" in c]
                assert len(said) == 1 and "`a`: `shell`" in said[0], said
                # a node that offers it joins: it takes the task at once
                await start_agent(nursery, tmp_path, "b", github=gh, waiting_notice=1.0,
                                  sandbox="none", help_requests=False,
                                  workspace_dir=Path(workdir) / "b",
                                  capabilities=["shell", "gpu"],
                                  bootstrap=[f"{a.node.addrs()[0]}/p2p/{a.peer_id}"])
                await wait_until_async(lambda: labelled("bzzz:done"), 60, "the task done")
                assert "bzzz:waiting" not in await labels()
                everything = await comments()
                assert any("ran-on-the-gpu-node" in c for c in everything)
                assert len([c for c in everything if "Waiting for" in c]) == 1  # said once
                nursery.cancel_scope.cancel()
