"""A partition between two groups of agents, in network namespaces (tests and benches).

Two switches, one per group, joined by a router; devhub sits on both switches (one address
on each, no forwarding), so GitHub stays reachable from both sides while the router's legs
are down. A feeder files a steady stream of tasks; each task marks its start and end in a
file (a small tool on the agents' PATH), so run intervals come from the runs themselves, not
from what the agents say about them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..identity import load_or_create
from .netns import Lab, in_netns, ip, stop_all
from .wait import wait_for

SEED = {"users": [{"login": "owner", "token": "t-owner"}, {"login": "bot", "token": "t-bot"}],
        "repos": [{"full_name": "owner/tasks", "push": ["bot"]}]}
TASK_BODY = "```bzzz\nrun=$(bzzz-mark start)\nsleep {secs}\nbzzz-mark end \"$run\"\n```"
# the marker tool: a run id from its own pid and the time pairs a run's start and end
MARK = """#!/bin/sh
if [ "$1" = start ]; then
  id="$$-$(date +%N)"
  echo "$BZZZ_ISSUE start $(date +%s.%N) {node} $id" >> {markers}
  echo "$id"
else
  echo "$BZZZ_ISSUE end $(date +%s.%N) {node} $2" >> {markers}
fi
"""


@dataclass
class Run:
    issue: int
    node: str
    start: float
    end: float | None = None


def overlapping_pairs(runs: list[Run]) -> int:
    """Pairs of runs of one task that overlap in time (an unfinished run lasts forever)."""
    count = 0
    by_issue: dict[int, list[Run]] = {}
    for r in runs:
        by_issue.setdefault(r.issue, []).append(r)
    for rs in by_issue.values():
        rs.sort(key=lambda r: r.start)
        for i, a in enumerate(rs):
            end = a.end if a.end is not None else float("inf")
            count += sum(1 for b in rs[i + 1:] if b.start < end)
    return count


def read_runs(path: Path) -> list[Run]:
    """Runs from the marker file: ``<issue> start|end <time> <node> <run id>``."""
    open_runs: dict[tuple[str, str, str], Run] = {}
    runs: list[Run] = []
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    for line in lines:
        parts = line.split()
        if len(parts) != 5:
            continue
        issue, kind, at, node, pid = parts
        key = (issue, node, pid)
        if kind == "start":
            run = Run(int(issue), node, float(at))
            open_runs[key] = run
            runs.append(run)
        elif kind == "end" and key in open_runs:
            open_runs.pop(key).end = float(at)
    return runs


@dataclass
class Partition:
    """The lab of a partition scenario; :meth:`run` plays it and returns the figures."""

    lab: Lab
    per_group: int = 2
    tasks: int = 12
    lease: float = 3.0
    cut_for: float | None = None  # default: 2 x lease + 2 s
    task_seconds: float = 1.5
    feed_interval: float = 0.6
    merge_bound: float = 45.0
    agents: dict[str, list[Any]] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)

    def say(self, what: str) -> None:
        self.log.append(f"{time.strftime('%H:%M:%S')} {what}")

    # ---------------------------------------------------------------- building

    def build(self) -> None:
        lab = self.lab
        self.markers = lab.workdir / "runs.txt"
        self.markers.touch(mode=0o666)
        sw = {"a": lab.switch("swa"), "b": lab.switch("swb")}
        self.router = lab.router("r", [(sw["a"], "10.81.1.254/24"), (sw["b"], "10.81.2.254/24")])
        self.router_legs = self._legs(self.router)
        self.hub_host = lab.host("hub", sw["a"], "10.81.1.100/24")
        lab._link(self.hub_host.ns, sw["b"], "10.81.2.100/24")
        seed = lab.workdir / "seed.json"
        seed.write_text(json.dumps(SEED))
        self.hub = subprocess.Popen(
            ["ip", "netns", "exec", self.hub_host.ns, sys.executable, "-m", "bzzz", "devhub",
             "--host", "0.0.0.0", "--port", "8080", "--seed", str(seed)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.hub.stdout is not None  # stdout=PIPE
        line = self.hub.stdout.readline().strip()
        if not line.startswith("http://"):
            raise RuntimeError(f"devhub did not start: {line!r}")
        token = lab.workdir / "token"
        token.write_text("t-bot\n")
        ids: dict[str, str] = {}
        plans = []
        for g, net in (("a", 1), ("b", 2)):
            for i in range(self.per_group):
                name = f"{g}{i}"
                data = lab.workdir / name
                ids[name] = load_or_create(data).peer_id.to_base58()
                plans.append((g, net, i, name, data))
        boots = {"a0": "10.81.1.1", "b0": "10.81.2.1"}
        for g, net, i, name, data in plans:
            bindir = lab.workdir / f"bin-{name}"
            bindir.mkdir()
            mark = bindir / "bzzz-mark"
            mark.write_text(MARK.replace("{node}", name).replace("{markers}", str(self.markers)))
            mark.chmod(0o755)
            host = lab.host(f"h{name}", sw[g], f"10.81.{net}.{i + 1}/24", f"10.81.{net}.254")
            env = {"BZZZ_MDNS": "off", "BZZZ_DETECT_CAPABILITIES": "off",
                   "BZZZ_CAPABILITIES": "shell", "BZZZ_ANNOUNCE_INTERVAL": "1",
                   "BZZZ_SANDBOX": "none", "BZZZ_TASK_USER": "root",
                   "PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
                   "BZZZ_GITHUB__URL": f"http://10.81.{net}.100:8080",
                   "BZZZ_GITHUB__REPOS": "owner/tasks", "GITHUB_TOKEN_FILE": str(token),
                   "BZZZ_GITHUB__CHECKOUT": "off", "BZZZ_GITHUB__LEASE": str(self.lease),
                   "BZZZ_GITHUB__POLL_INTERVAL": "0.5", "BZZZ_GITHUB__WRITE_INTERVAL": "0",
                   "BZZZ_WORKSPACE_DIR": str(lab.workdir / f"{name}-work"),
                   "BZZZ_BOOTSTRAP": ",".join(f"/ip4/{addr}/tcp/4001/p2p/{ids[b]}"
                                              for b, addr in boots.items() if b != name)}
            self.agents.setdefault(g, []).append(lab.agent(name, host, env=env, data_dir=data))

    def _legs(self, ns: str) -> list[str]:
        out = subprocess.run(["ip", "-n", ns, "-o", "link", "show"], capture_output=True,
                             text=True, check=True).stdout
        return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()
                if line.split(":")[1].strip().startswith("e")]

    def all_agents(self) -> list[Any]:
        return self.agents["a"] + self.agents["b"]

    # ---------------------------------------------------------------- GitHub from the hub

    def gh(self, method: str, path: str, **kw: Any) -> Any:
        import httpx

        def call() -> Any:
            r = httpx.request(method, "http://10.81.1.100:8080" + path, timeout=10,
                              headers={"Authorization": "token t-owner"}, **kw)
            r.raise_for_status()
            return r.json()
        return in_netns(self.hub_host.ns, call)

    def labels(self, n: int) -> set[str]:
        return {x["name"] for x in self.gh("GET", f"/repos/owner/tasks/issues/{n}")["labels"]}

    def result_comments(self, n: int) -> int:
        return sum("<!-- bzzz:result:" in c["body"]
                   for c in self.gh("GET", f"/repos/owner/tasks/issues/{n}/comments"))

    # ---------------------------------------------------------------- the scenario

    def sees(self, agent: Any) -> set[str]:
        try:
            return {p["node_id"] for p in agent.status()["peers"]}
        except (OSError, RuntimeError, ValueError):
            return set()

    def cut(self, down: bool) -> None:
        for leg in self.router_legs:
            ip("-n", self.router, "link", "set", leg, "down" if down else "up")

    def run(self) -> dict[str, Any]:
        cut_for = self.cut_for if self.cut_for is not None else 2 * self.lease + 2
        self.build()
        agents = self.all_agents()
        names = {a.name for a in agents}
        for a in agents:
            a.start()
        for a in agents:
            a.wait_healthy(60)
        t = time.monotonic()
        wait_for(lambda: all(self.sees(a) == names - {a.name} for a in agents), 60,
                 what="the whole mesh before the cut")
        self.say(f"mesh of {len(agents)} formed in {time.monotonic() - t:.1f} s")
        numbers: list[int] = []
        stop = threading.Event()
        errors: list[str] = []

        def feed() -> None:
            for i in range(self.tasks):
                if stop.is_set():
                    return
                try:
                    numbers.append(self.gh("POST", "/repos/owner/tasks/issues", json={
                        "title": f"p{i}", "labels": ["bzzz"],
                        "body": TASK_BODY.format(secs=self.task_seconds)})["number"])
                except Exception as exc:  # reported with the figures
                    errors.append(repr(exc))
                stop.wait(self.feed_interval)

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        try:
            # cut once the stream is flowing (about a third of the tasks filed)
            wait_for(lambda: len(numbers) >= max(1, self.tasks // 3), 60, what="tasks flowing")
            self.cut(True)
            cut_at = time.monotonic()
            wall_cut = time.time()
            self.say("link between the groups cut")
            group = {a.name: ("a" if a in self.agents["a"] else "b") for a in agents}
            mine = {g: {a.name for a in self.agents[g]} for g in "ab"}
            wait_for(lambda: all(self.sees(a) == mine[group[a.name]] - {a.name}
                                 for a in agents), cut_for + 30,
                     what="each group's peer table lists only its own group")
            split_s = time.monotonic() - cut_at
            self.say(f"peer tables split after {split_s:.1f} s")
            while time.monotonic() - cut_at < cut_for:
                time.sleep(0.1)
            self.cut(False)
            restored = time.monotonic()
            wall_restore = time.time()
            self.say(f"link restored after {restored - cut_at:.1f} s")
            wait_for(lambda: all(self.sees(a) == names - {a.name} for a in agents),
                     self.merge_bound, what="the meshes merge again")
            merge_s = time.monotonic() - restored
            self.say(f"meshes merged {merge_s:.1f} s after the restore")
            feeder.join(self.tasks * self.feed_interval + 60)
            wait_for(lambda: len(numbers) == self.tasks and all(
                "bzzz:done" in self.labels(n) for n in numbers),
                self.tasks * (self.task_seconds + 2) + 60, interval=0.5,
                what="every task done")
        finally:
            stop.set()
        runs = read_runs(self.markers)
        per_issue = {n: [r for r in runs if r.issue == n] for n in numbers}
        results = {n: self.result_comments(n) for n in numbers}
        during_cut = {g: sum(1 for r in runs if r.node in mine[g]
                             and wall_cut <= r.start <= wall_restore) for g in "ab"}
        return {
            "tasks": self.tasks, "filed": len(numbers), "feed_errors": errors,
            "runs": len(runs),
            "concurrent_runs": overlapping_pairs(runs),
            "run_twice": sum(1 for rs in per_issue.values() if len(rs) > 1),
            "lost": sum(1 for rs in per_issue.values() if not rs),
            "unfinished_runs": sum(1 for r in runs if r.end is None),
            "result_comments_not_one": sum(1 for c in results.values() if c != 1),
            "runs_started_during_cut": during_cut,
            "split_seconds": round(split_s, 2), "cut_seconds": round(restored - cut_at, 2),
            "merge_seconds": round(merge_s, 2), "lease": self.lease,
            "timeline": self.log,
        }

    def close(self) -> None:
        stop_all([a for a in self.all_agents() if a.proc is not None and a.proc.poll() is None])
        if getattr(self, "hub", None) is not None and self.hub.poll() is None:
            self.hub.terminate()
            try:
                self.hub.wait(10)
            except subprocess.TimeoutExpired:
                self.hub.kill()
