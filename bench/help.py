"""Help-request benchmarks (issue: collaborative help). One JSON object per line.

  offer_latency_{1,2,3}_hops  request sent to accepted offer back at the origin, in network
                              namespaces, through a line of agents that only know their
                              neighbours (the helper 1, 2 or 3 hops away); p50 per hop
  messages_per_request        help messages sent by all agents for one request nobody can
                              take, in a full mesh of 16 agents, against the stated bounds
  request_to_running          a failed task's help request to the helper starting it, 1 hop,
                              real agents with devhub (the handoff goes through the claim)

Run as `python bench/help.py [--quick]` (root: network namespaces).
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

from bzzz.hyperlog.store import read_entries  # noqa: E402
from bzzz.identity import load_or_create  # noqa: E402
from bzzz.testing import netns  # noqa: E402

FANOUT = 3
SPARSE = {"BZZZ_MDNS": "off", "BZZZ_DETECT_CAPABILITIES": "off", "BZZZ_DIAL_DISCOVERED": "off",
          "BZZZ_HELP_SCOPE": "connected", "BZZZ_HELP_BROADCAST": "off",
          "BZZZ_ANNOUNCE_INTERVAL": "1", "BZZZ_REPLICATE_LOGS": "0"}


def emit(metric, value, unit, target, ok, **params) -> None:
    print(json.dumps({"bench": "help", "metric": metric, "value": value, "unit": unit,
                      "target": target, "ok": ok, "params": params}), flush=True)


def probe(agent, needs: list[str], wait: float) -> dict:
    return agent.probe(needs, wait)


def _line(lab, subnet: int) -> tuple[list, list[str]]:
    sw = lab.switch(f"sw{subnet}")
    agents, ids = [], []
    for i in range(4):
        data = lab.workdir / f"l{subnet}n{i}"
        ids.append(load_or_create(data).peer_id.to_base58())
        env = {**SPARSE, "BZZZ_CAPABILITIES": f"shell,hop{i}", "BZZZ_NODE_ID": f"n{i}"}
        if i:
            env["BZZZ_BOOTSTRAP"] = f"/ip4/10.79.{subnet}.{i}/tcp/4001/p2p/{ids[i - 1]}"
        host = lab.host(f"l{subnet}h{i}", sw, f"10.79.{subnet}.{i + 1}/24")
        agents.append(lab.agent(f"n{i}", host, env=env, data_dir=data).start())
    for a in agents:
        a.wait_healthy(60)
    netns.wait_for(lambda: all(len(a.status()["peers"]) == 3 for a in agents), 60,
                   what="the line is up")
    return agents, ids


def line_latency(samples: int) -> None:
    for hops in (1, 2, 3):
        # answers open short-lived connections; after a number of them one sometimes stays
        # and would shortcut the line: sampling then moves on to a fresh line
        latencies, shortcuts, lines = [], 0, 0
        while len(latencies) < samples and lines < 6:
            lines += 1
            with netns.Lab() as lab:
                agents, ids = _line(lab, 10 + lines)

                def only_the_line(agents=agents) -> bool:
                    return all(sorted(p["node_id"] for p in a.status()["peers"]
                                      if p["connected"])
                               == [f"n{j}" for j in (i - 1, i + 1) if 0 <= j < 4]
                               for i, a in enumerate(agents))
                while len(latencies) < samples:
                    try:
                        netns.wait_for(only_the_line, 3, 0.02, what="the line is a line")
                    except TimeoutError:
                        break
                    got = probe(agents[0], [f"hop{hops}"], 2.0)
                    offers = [o for o in got["offers"] if o["helper"] == ids[hops]]
                    if offers and offers[0].get("hops") == hops:
                        latencies.append(offers[0]["latency_ms"])
                    elif offers:
                        shortcuts += 1
        p50 = round(statistics.median(latencies), 2) if latencies else None
        emit(f"offer_latency_{hops}_hops", p50, "ms", "p50 <= 50 ms per hop",
             p50 is not None and p50 <= 50 * hops, samples=len(latencies), lines=lines,
             shortcut=shortcuts, per_hop_ms=round(p50 / hops, 2) if p50 is not None else None,
             p90=round(sorted(latencies)[int(0.9 * (len(latencies) - 1))], 2)
             if latencies else None, setup="namespaces, agents know only their neighbours")


def mesh_messages(n: int) -> None:
    with netns.Lab() as lab:
        sw = lab.switch("sw")
        agents = [lab.agent(f"m{i}", lab.host(f"m{i}", sw, f"10.79.1.{i + 1}/24"), env={
            "BZZZ_DETECT_CAPABILITIES": "off", "BZZZ_ANNOUNCE_INTERVAL": "1",
            "BZZZ_REPLICATE_LOGS": "0"}).start() for i in range(n)]
        for a in agents:
            a.wait_healthy(60)
        netns.wait_for(lambda: all(len(a.status()["peers"]) == n - 1 for a in agents), 60,
                       what="full mesh")

        def total() -> int:
            return sum(sum(a.status()["help"]["sent"].values()) for a in agents)
        before = total()
        probe(agents[0], ["cap_nobody"], 1.0)
        netns.wait_for(lambda: all(a.status()["help"]["counts"].get("received", 0) >= 1
                                   for a in agents[1:]), 10, what="all handled it")
        # until the count stops moving (forwards and declines still in flight)
        last = [total(), 0.0]

        def stable() -> bool:
            now = total()
            if now != last[0]:
                last[0], last[1] = now, time.monotonic()
                return False
            return time.monotonic() - last[1] >= 1.0
        last[1] = time.monotonic()
        netns.wait_for(stable, 20, 0.2, what="no more help messages")
        sent = last[0] - before
        per_node = FANOUT + 1  # each node handles a request once: <= fanout forwards + 1 answer
        bound_nodes = FANOUT + 1 + (n - 1) * per_node
        bound_hops = FANOUT * (1 + FANOUT + FANOUT ** 2 + FANOUT ** 3) + 1
        emit("messages_per_request", sent, "messages",
             f"<= min(origin fan-out {FANOUT} + broadcast + (n-1) x (fan-out + 1), "
             f"fan-out x (1 + fan-out + fan-out^2 + fan-out^3) + 1)",
             sent <= min(bound_nodes, bound_hops), agents=n, fanout=FANOUT,
             bound_by_nodes=bound_nodes, bound_by_hops=bound_hops,
             note="every node handles a request once (dedup by id); a request is forwarded "
                  "at most 3 times; the gossip broadcast reaches peers the origin does not know")


def request_to_running(samples: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bzzz-help-bench-") as d:
        root = Path(d)
        seed = root / "seed.json"
        seed.write_text(json.dumps({"users": [{"login": "owner", "token": "t-owner"},
                                              {"login": "bot", "token": "t-bot"}],
                                    "repos": [{"full_name": "owner/tasks", "push": ["bot"]}]}))
        hub = subprocess.Popen([sys.executable, "-m", "bzzz", "devhub", "--seed", str(seed)],
                               stdout=subprocess.PIPE, text=True)
        url = hub.stdout.readline().strip()
        (root / "token").write_text("t-bot\n")
        work = Path(tempfile.mkdtemp(prefix="bzzz-help-work-"))
        work.chmod(0o755)
        bindir = work / "bin"
        bindir.mkdir()
        tool = bindir / "only_on_b"
        tool.write_text("#!/bin/sh\necho ran\n")
        tool.chmod(0o755)
        procs = []
        ports = []
        ids = []
        try:
            for i, name in enumerate("ab"):
                port = 20000 + os.getpid() % 10000 + i
                ports.append(port)
                data = root / name
                ids.append(load_or_create(data).peer_id.to_base58())
                env = {k: v for k, v in os.environ.items() if not k.startswith("BZZZ_")}
                env.update({"BZZZ_NODE_ID": name, "BZZZ_DATA_DIR": str(data),
                            "BZZZ_LISTEN": f"/ip4/127.0.0.1/tcp/{port}",
                            "BZZZ_API_LISTEN": f"127.0.0.1:{port + 100}", "BZZZ_MDNS": "off",
                            "BZZZ_DETECT_CAPABILITIES": "off", "BZZZ_REPLICATE_LOGS": "0",
                            "BZZZ_CAPABILITIES": "shell" + (",only_on_b" if name == "b" else ""),
                            "BZZZ_GITHUB__URL": url, "BZZZ_GITHUB__REPOS": "owner/tasks",
                            "GITHUB_TOKEN_FILE": str(root / "token"),
                            "BZZZ_GITHUB__WRITE_INTERVAL": "0",
                            "BZZZ_GITHUB__POLL_INTERVAL": "0.3" if name == "a" else "3600",
                            "BZZZ_WORKSPACE_DIR": str(work / name), "BZZZ_HELP_WAIT": "2",
                            "BZZZ_ANNOUNCE_INTERVAL": "1"})
                env["BZZZ_SANDBOX"] = "none"  # node-specific tools outside the system dirs
                if name == "b":
                    env["PATH"] = f"{bindir}:{env['PATH']}"
                    env["BZZZ_BOOTSTRAP"] = f"/ip4/127.0.0.1/tcp/{ports[0]}/p2p/{ids[0]}"
                log = open(root / f"{name}.log", "ab")
                procs.append(subprocess.Popen([sys.executable, "-m", "bzzz", "run"], env=env,
                                              stdout=log, stderr=subprocess.STDOUT))

            def status(i):
                try:
                    return httpx.get(f"http://127.0.0.1:{ports[i] + 100}/api/v1/status",
                                     timeout=2).json()
                except httpx.HTTPError:
                    return None
            netns.wait_for(lambda: all((status(i) or {}).get("peers") for i in (0, 1)), 60,
                           what="a and b meet")
            owner = httpx.Client(base_url=url, headers={"Authorization": "token t-owner"})
            numbers = []
            for k in range(samples):
                numbers.append(owner.post("/repos/owner/tasks/issues", json={
                    "title": f"h{k}", "body": "```bzzz\nonly_on_b\n```",
                    "labels": ["bzzz"]}).json()["number"])

                def done(n=numbers[-1]):
                    labels = {x["name"] for x in owner.get(
                        f"/repos/owner/tasks/issues/{n}").json()["labels"]}
                    return labels & {"bzzz:done", "bzzz:failed"}
                netns.wait_for(done, 60, 0.1, what="the task ends")
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(30)
            hub.terminate()
            hub.wait(10)
        asked = {e["task"].split("#")[1]: e["ts"] for e in read_entries(root / "a" / "log")
                 if e["type"] == "help_requested"}
        adopted = {str(e["issue"]): e["ts"] for e in read_entries(root / "b" / "log")
                   if e["type"] == "help_adopted"}
        delays = [adopted[k] - asked[k] for k in asked if k in adopted]
        p50 = round(statistics.median(delays), 3) if delays else None
        emit("request_to_running", p50, "s", "p50 <= 1 s", p50 is not None and p50 <= 1.0,
             samples=len(delays), tasks=samples,
             steps="offer, handoff commit + ref update, handoff message, adopt (ref read), "
                   "fresh issue read, assignee + label, claim comment")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    ok, reason = netns.available()
    if not ok:
        if os.environ.get("CI"):
            raise SystemExit(f"bench/help.py needs network namespaces: {reason}")
        print(json.dumps({"bench": "help", "skipped": reason}))
    else:
        line_latency(3 if args.quick else 20)
        mesh_messages(8 if args.quick else 16)
    request_to_running(2 if args.quick else 10)


if __name__ == "__main__":
    main()
