"""Help requests between real agent processes in network namespaces, with devhub."""

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from bzzz.hyperlog.store import read_entries
from bzzz.identity import load_or_create
from bzzz.testing.netns import in_netns, stop_all
from bzzz.testing.wait import wait_for

pytestmark = pytest.mark.netns
SEED = {"users": [{"login": "owner", "token": "t-owner"}, {"login": "bot", "token": "t-bot"}],
        "repos": [{"full_name": "owner/tasks", "push": ["bot"]}]}
# a sparse mesh: each agent connects to its bootstrap neighbour only, and sends help
# requests to the peers it is connected to (forwarding reaches further)
SPARSE = {"BZZZ_MDNS": "off", "BZZZ_DETECT_CAPABILITIES": "off", "BZZZ_DIAL_DISCOVERED": "off",
          "BZZZ_HELP_SCOPE": "connected", "BZZZ_HELP_BROADCAST": "off", "BZZZ_HELP_WAIT": "1.5",
          "BZZZ_ANNOUNCE_INTERVAL": "1"}


def start_devhub(lab, host, workdir: Path):
    seed = workdir / "seed.json"
    seed.write_text(json.dumps(SEED))
    proc = subprocess.Popen(["ip", "netns", "exec", host.ns, sys.executable, "-m", "bzzz",
                             "devhub", "--host", host.ip, "--port", "8080", "--seed", str(seed)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    url = proc.stdout.readline().strip()
    assert url.startswith("http://"), url
    return proc, url


@pytest.mark.parametrize("target", ["c", "d", "e", "f"])
def test_line_forwarding_handoff_and_failure_after_three_requests(lab, target):
    """A line a-b-c-...: only ``target`` has the tool a's task needs. c, d and e are 1, 2
    and 3 forwards away and take the task over through the claim; f, 4 forwards away, is
    never reached: three requests, then a human. Each distance on a fresh line (answers
    open short-lived connections that later requests could use)."""
    names = "abcdef"[: "abcdef".index(target) + 1]
    sw = lab.switch("sw")
    hub_host = lab.host("hub", sw, "10.77.0.100/24")
    hub, url = start_devhub(lab, hub_host, lab.workdir)

    def gh(method, path, **kw):
        def call():
            return httpx.request(method, url + path, headers={"Authorization": "token t-owner"},
                                 timeout=10, **kw)
        return in_netns(hub_host.ns, call)

    try:
        token = lab.workdir / "token"
        token.write_text("t-bot\n")
        agents = []
        # every identity made before any agent starts: then all start at once
        ids = [load_or_create(lab.workdir / name).peer_id.to_base58() for name in names]
        for i, name in enumerate(names):
            # the tool the task needs: only the last node of the line has it
            bindir = lab.workdir / f"bin-{name}"
            bindir.mkdir()
            if name == target:
                tool = bindir / f"cap_{name}"
                tool.write_text(f"#!/bin/sh\necho cap_{name} ran on {name}\n"
                                # f's copy is broken: a later request may reach f through a
                                # connection an earlier answer left open; f then fails too,
                                # and the three requests still count across the mesh
                                + ("exit 1\n" if name == "f" else ""))
                tool.chmod(0o755)
            host = lab.host(f"h{name}", sw, f"10.77.0.{i + 1}/24")
            env = {**SPARSE, "BZZZ_CAPABILITIES": f"shell,cap_{name}",
                   "PATH": f"{bindir}:{os.environ['PATH']}", "BZZZ_TASK_USER": "root",
                   # node-specific tools live outside the system directories a sandbox shows;
                   # this test is about help routing, not containment
                   "BZZZ_SANDBOX": "none",
                   "BZZZ_GITHUB__URL": url, "BZZZ_GITHUB__REPOS": "owner/tasks",
                   "GITHUB_TOKEN_FILE": str(token), "BZZZ_GITHUB__WRITE_INTERVAL": "0",
                   # only a takes tasks from GitHub; the others only ever get them handed over
                   "BZZZ_GITHUB__POLL_INTERVAL": "0.5" if name == "a" else "3600"}
            if i:  # the previous node, by the id its data directory holds
                env["BZZZ_BOOTSTRAP"] = f"/ip4/10.77.0.{i}/tcp/4001/p2p/{ids[i - 1]}"
            agents.append(lab.agent(name, host, env=env, data_dir=lab.workdir / name).start())
        for agent in agents:
            agent.wait_healthy(30)
        # everyone heard of everyone through gossip, but each is connected to its neighbours
        wait_for(lambda: all(len(x.status()["peers"]) == len(names) - 1 for x in agents), 30,
                 what="announcements crossed the line")
        n = gh("POST", "/repos/owner/tasks/issues", json={
            "title": f"needs {target}", "body": f"```bzzz\ncap_{target}\n```",
            "labels": ["bzzz"]}).json()["number"]

        def labels():
            return {x["name"] for x in gh("GET", f"/repos/owner/tasks/issues/{n}").json()["labels"]}

        def comments():
            return [c["body"] for c in gh("GET", f"/repos/owner/tasks/issues/{n}/comments").json()]

        def ended():  # the final label, and the comment that explains it (handover or review)
            return labels() & {"bzzz:done", "bzzz:failed"} and any(
                "<!-- bzzz:handover:" in b or "<!-- bzzz:review:" in b for b in comments())
        wait_for(ended, 60, what="the task ends")
        bodies = comments()
        stop_all(agents)
        logs = {x.name: read_entries(x.data_dir / "log") for x in agents}
        first = next(e["request"] for e in logs["a"] if e["type"] == "help_requested")
        if target != "f":
            assert "bzzz:done" in labels(), labels()
            results = [b for b in bodies if "<!-- bzzz:result:" in b]
            assert len(results) == 1 and f"cap_{target} ran on {target}" in results[0]
            assert f"on **{target}**" in results[0]
            assert any(f"handed it to **{target}**" in b for b in bodies)
            # found through 1, 2 or 3 forwards: the hops its offer says the request took
            offers = [e for e in logs[target]
                      if e["type"] == "help_offered" and e["request"] == first]
            assert [e["hops"] for e in offers] == [len(names) - 1]
            # the claim moved from a to the helper in one step: a stopped renewing it there
            kinds = [e["type"] for e in logs["a"] if e.get("issue") == n]
            assert "help_handed_over" in kinds
            assert "renewed" not in kinds[kinds.index("help_handed_over"):]
            assert any(e["type"] == "help_adopted" and e.get("issue") == n for e in logs[target])
        else:
            assert "bzzz:failed" in labels()
            review = [b for b in bodies if "<!-- bzzz:review:" in b]
            assert len(review) == 1 and "3 help requests" in review[0]
            assert "nobody took it" in review[0]
            # e, three forwards away, discards the request at the limit; f never hears of it
            assert any(e["type"] == "help_declined" and e.get("request") == first
                       and "hop limit" in e.get("reason", "") for e in logs["e"])
            assert not any(e.get("request") == first for e in logs["f"])
    finally:
        hub.terminate()
        hub.wait(10)


def probe(agent, needs, wait=1.5):
    return agent.probe(needs, wait, timeout=20)


def _mesh(lab, n, subnet, ring):
    sw = lab.switch(f"sw{subnet}")
    hosts = [lab.host(f"m{subnet}x{i}", sw, f"10.78.{subnet}.{i + 1}/24") for i in range(n)]
    ids = {}
    agents = []
    from bzzz.identity import load_or_create
    for i, host in enumerate(hosts):
        data = lab.workdir / f"m{subnet}-{i}"
        ids[i] = load_or_create(data).peer_id.to_base58()
        env = {"BZZZ_MDNS": "off", "BZZZ_DETECT_CAPABILITIES": "off",
               "BZZZ_ANNOUNCE_INTERVAL": "1", "BZZZ_HELP_WAIT": "1.5"}
        if ring:
            env.update({k: v for k, v in SPARSE.items() if k.startswith("BZZZ_DIAL")
                        or k.startswith("BZZZ_HELP")})
        agents.append(lab.agent(f"m{subnet}-{i}", host, env=env, data_dir=data))
    for i, a in enumerate(agents):
        if ring:  # each knows its two neighbours
            near = [(i - 1) % n, (i + 1) % n]
        else:     # one bootstrap peer; the mesh connects everyone
            near = [0] if i else []
        a.env["BZZZ_BOOTSTRAP"] = ",".join(f"/ip4/10.78.{subnet}.{j + 1}/tcp/4001/p2p/{ids[j]}"
                                           for j in near)
        a.start()
    for a in agents:
        a.wait_healthy(30)
    return agents


@pytest.mark.parametrize("shape", ["ring", "full"])
def test_each_node_handles_a_request_once_in_a_ring_and_a_full_mesh(lab, shape):
    agents = _mesh(lab, 6, 1 if shape == "ring" else 2, ring=shape == "ring")
    wait_for(lambda: all(len(a.status()["peers"]) == 5 for a in agents), 30,
             what="everyone announced")
    got = probe(agents[0], ["cap_nobody"])
    assert got["offers"] == []

    def settled():
        return all(a.status()["help"]["counts"].get("received", 0) == 1 for a in agents[1:])
    wait_for(settled, 10, what="every other node handled the request, once")
    statuses = [a.status()["help"] for a in agents]
    duplicates = sum(s["dropped"].get("duplicate", 0) for s in statuses)
    loops = sum(s["dropped"].get("loop", 0) for s in statuses)
    forwarded = sum(s["counts"].get("forwarded", 0) for s in statuses)
    sent = sum(sum(s["sent"].values()) for s in statuses)
    print(f"{shape}: forwarded by {forwarded} nodes, {duplicates} duplicates dropped, "
          f"{sent} messages in all")
    assert loops == 0
    assert duplicates > 0 or shape == "full"  # the ring's two ways round meet
    # bounded: the origin's fan-out and at most three forwards of three each
    assert sent <= 3 + 1 + 3 * (3 + 9 + 27) + 6
