"""Soak (issue #14, "staying up"): agents, a monitor, devhub and a steady stream of tasks (one
every 6 s, every 2 s with --quick; one GitHub login per agent), failing tasks (each one's help
requests), and agent restarts (SIGTERM and SIGKILL in turn), for
``--duration`` seconds (3600 by default; ``--quick``: 45 s of load, about a minute in all).

Every few seconds the RSS, open files, threads and log sizes (the signed log on disk and the
process's own output) of every agent process are sampled. Agent 0 is never restarted, so one
process lives through the whole run; the others are restarted in turn, and each of their
incarnations is measured on its own. Growth is a least-squares slope over the samples after a
warm-up, per hour; RSS growth is also given in percent of the mean.

One JSON object per line:

  soak_rss_growth_pct_per_hour      per agent (its longest-lived incarnation), target <= 5 %,
                                    judged for the agent never restarted (a0)
  soak_open_files_growth_per_hour   per agent
  soak_threads_growth_per_hour      per agent
  soak_log_growth_bytes_per_hour    per agent (signed log + output), for sizing
  soak_monitor_rss_growth_pct_per_hour   the monitor, when `bzzz monitor` exists
  tasks_lost                        tasks filed that ended neither done nor failed (target 0)
  tasks_run_twice                   tasks with more than one result comment (target 0)
  soak_concurrent_holds             pairs of agents holding one task's claim at once, from
                                    the agents' signed logs (target 0; a hand-off's hold ends
                                    when it was sent, its decision's released_at)

Short runs extrapolate a few minutes to an hour: the growth figures of --quick are a smoke
check, not a measurement (noise of a few MB reads as tens of percent per hour).

Run as `python bench/soak.py [--quick] [--duration S] [--agents N]`. Exits 1 when a task
was lost or run twice (correctness), 0 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bzzz.hyperlog.store import read_entries  # noqa: E402
from bzzz.testing import agents as agents_mod  # noqa: E402
from bzzz.testing.netns import wait_for  # noqa: E402


def seed(n_agents: int) -> dict:
    """One login and token per agent: a token's hourly budget (5,000 requests, devhub
    enforces it as GitHub does) is spent per agent, as in a deployment that sizes for it."""
    bots = [f"bot{i}" for i in range(n_agents)]
    return {"users": [{"login": "owner", "token": "t-owner"}]
            + [{"login": b, "token": f"t-{b}"} for b in bots],
            "repos": [{"full_name": "owner/tasks", "push": bots}]}

RSS_TARGET = 5.0
# claim states an agent holds a task in, and the decisions that end a hold
HOLD_START = {"claimed", "taken_over", "help_adopted"}
HOLD_END = {"result", "lease_lost", "claim_abandoned", "help_handed_over", "cancelled",
            "needs_input", "guardian_refused", "reported"}


def emit(metric, value, unit, target, ok, **params) -> None:
    print(json.dumps({"bench": "soak", "metric": metric, "value": value, "unit": unit,
                      "target": target, "ok": ok, "params": params}), flush=True)


# ------------------------------------------------------------------ process sampling

def proc_sample(pid: int) -> dict | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    out = {"rss": 0, "rss_anon": 0, "rss_file": 0, "fds": fds, "threads": 0}
    fields = {"VmRSS:": "rss", "RssAnon:": "rss_anon", "RssFile:": "rss_file",
              "Threads:": "threads"}
    for line in status.splitlines():
        key = fields.get(line.split(maxsplit=1)[0] if line else "")
        if key is not None:
            n = int(line.split()[1])
            out[key] = n if key == "threads" else n * 1024
    return out


def dir_bytes(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(dirpath, f))
            except OSError:
                pass
    return total


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (t, y), per second."""
    n = len(points)
    if n < 3:
        return 0.0
    mt = sum(t for t, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    return sum((t - mt) * (y - my) for t, y in points) / var if var else 0.0


@dataclass
class Incarnation:
    pid: int
    started: float
    samples: list[tuple[float, dict]] = field(default_factory=list)
    ended: float | None = None
    how: str = ""


# ------------------------------------------------------------------ the soak


class Soak:
    def __init__(self, root: Path, n_agents: int, duration: float, warmup: float,
                 task_every: float, restart_every: float, sample_every: float, lease: float):
        self.root = root
        self.n = n_agents
        self.duration = duration
        self.warmup = warmup
        self.task_every = task_every
        self.restart_every = restart_every
        self.sample_every = sample_every
        self.lease = lease
        self.agents: dict[str, agents_mod.AgentProc] = {}
        self.lives: dict[str, list[Incarnation]] = {}
        self.issues: dict[int, str] = {}   # number -> "ok" | "fail"
        self.kills: list[tuple[str, float]] = []  # (agent, time) of SIGKILLs
        self.stops: list[tuple[str, float]] = []  # (agent, time) of SIGTERMs
        self.monitor: subprocess.Popen | None = None
        self.monitor_life: Incarnation | None = None
        self.monitor_note = ""
        self.lock = threading.Lock()
        self.pending: set[int] = set()
        self.failed = False
        self.overlaps: list[dict] = []
        self.samples_out = None  # a text file: every sample as a JSON line
        self.t0 = time.monotonic()

    # -------------------------------------------------------------- parts

    def start_hub(self) -> None:
        seed_file = self.root / "seed.json"
        seed_file.write_text(json.dumps(seed(self.n)))
        self.hub = subprocess.Popen([sys.executable, "-m", "bzzz", "devhub", "--host",
                                     "127.0.0.1", "--port", "0", "--seed", str(seed_file)],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.url = self.hub.stdout.readline().strip()
        if not self.url.startswith("http://"):
            raise RuntimeError(f"devhub did not start: {self.url!r}")
        self.owner = httpx.Client(base_url=self.url, timeout=20,
                                  headers={"Authorization": "token t-owner"})

    def env(self) -> dict[str, str]:
        sandbox = "bwrap" if shutil.which("bwrap") else "none"
        env = {"BZZZ_DETECT_CAPABILITIES": "off", "BZZZ_CAPABILITIES": "shell",
               "BZZZ_ANNOUNCE_INTERVAL": "2", "BZZZ_SANDBOX": sandbox,
               "BZZZ_GITHUB__CHECKOUT": "off", "BZZZ_GITHUB__LEASE": str(self.lease),
               "BZZZ_GITHUB__POLL_INTERVAL": "1", "BZZZ_GITHUB__WRITE_INTERVAL": "0",
               "BZZZ_HELP_WAIT": "1", "BZZZ_MAX_TASKS": "2", "BZZZ_DATA_LEASE_EXPIRY": "6",
               # a steady state: finished work is closed (as a merged pull request closes
               # its issue), so what an agent polls does not grow with the run's length
               "BZZZ_GITHUB__CLOSE_ON_SUCCESS": "on"}
        if sandbox == "none" and os.geteuid() == 0:
            env["BZZZ_TASK_USER"] = "root"  # unconfined anyway; nobody could not enter root's dirs
        return env

    def start_agent(self, name: str) -> None:
        boot = self.agents["a0"].addr if name != "a0" and "a0" in self.agents else ""
        a = agents_mod.start(self.root, name, self.url, f"t-bot{name[1:]}", "owner/tasks",
                             bootstrap=boot, **self.env())
        self.agents[name] = a
        self.lives.setdefault(name, []).append(Incarnation(a.proc.pid, time.monotonic()))

    def healthy(self, name: str) -> bool:
        a = self.agents[name]
        if a.proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {a.proc.returncode}: "
                               + a.log.read_text(errors="replace")[-2000:])
        try:
            return httpx.get(a.api + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def start_monitor(self) -> None:
        """One `bzzz monitor` process beside the agents (its RSS is sampled like theirs).
        HOOK: trees without bzzz/monitor (it was built alongside) skip it and say so."""
        if not hasattr(agents_mod, "start_monitor"):
            self.monitor_note = "bzzz monitor is not in this tree"
            return
        m = agents_mod.start_monitor(self.root, self.url, "t-owner", "owner/tasks",
                                     bootstrap=self.agents["a0"].addr,
                                     BZZZ_ANNOUNCE_INTERVAL="2")
        self.monitor = m.proc
        self.monitor_url = m.url
        self.monitor_life = Incarnation(m.proc.pid, time.monotonic())
        wait_for(lambda: self._monitor_up(), 60, what="the monitor is up")

    def _monitor_up(self) -> bool:
        if self.monitor.poll() is not None:
            raise RuntimeError(f"the monitor exited with {self.monitor.returncode}: "
                               + (self.root / "monitor.log").read_text(errors="replace")[-2000:])
        try:
            return httpx.get(self.monitor_url + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    # -------------------------------------------------------------- loops

    def feed(self, stop: threading.Event) -> None:
        i = 0
        while not stop.is_set():
            fail = i % 5 == 4  # every fifth task fails everywhere: help requests, then a human
            body = (f"```bzzz\necho failing-{i}\nexit 3\n```" if fail
                    else f"```bzzz\nsleep 0.{(i % 7) + 2}\necho soak-{i}\n```")
            try:
                n = self.owner.post("/repos/owner/tasks/issues", json={
                    "title": f"soak {i}", "body": body, "labels": ["bzzz"]}).json()["number"]
                with self.lock:
                    self.issues[n] = "fail" if fail else "ok"
            except (httpx.HTTPError, KeyError, ValueError) as exc:
                print(f"feed error: {exc}", file=sys.stderr)
            i += 1
            if i % 10 == 0:
                self.triage()
            stop.wait(self.task_every)

    def triage(self) -> None:
        """Close the failed tasks, as the person who read each failure would."""
        try:
            failed = self.owner.get("/repos/owner/tasks/issues", params={
                "state": "open", "labels": "bzzz:failed", "per_page": 100}).json()
            for issue in failed:
                self.owner.patch(f"/repos/owner/tasks/issues/{issue['number']}",
                                 json={"state": "closed"})
        except (httpx.HTTPError, KeyError, ValueError, TypeError) as exc:
            print(f"triage error: {exc}", file=sys.stderr)

    def sample(self) -> None:
        now = time.monotonic()
        for name, a in self.agents.items():
            life = self.lives[name][-1]
            if life.ended is not None:
                continue
            s = proc_sample(a.proc.pid)
            if s is None:
                continue
            s["log_bytes"] = dir_bytes(a.data_dir / "log") + a.log.stat().st_size
            life.samples.append((now, s))
            self.record(name, a.proc.pid, now, s)
        if self.monitor is not None and self.monitor_life is not None:
            s = proc_sample(self.monitor.pid)
            if s is not None:
                s["log_bytes"] = dir_bytes(self.root / "monitor") + \
                    (self.root / "monitor.log").stat().st_size
                self.monitor_life.samples.append((now, s))
                self.record("monitor", self.monitor.pid, now, s)

    def record(self, who: str, pid: int, now: float, sample: dict) -> None:
        if self.samples_out is not None:
            self.samples_out.write(json.dumps({"who": who, "pid": pid,
                                               "t": round(now - self.t0, 1), **sample}) + "\n")
            self.samples_out.flush()

    def restart(self, k: int) -> None:
        """Restart one of the agents other than a0: SIGTERM and SIGKILL in turn."""
        name = f"a{1 + k % (self.n - 1)}"
        a = self.agents[name]
        life = self.lives[name][-1]
        how = "SIGKILL" if k % 2 else "SIGTERM"
        at = time.time()
        if how == "SIGKILL":
            a.proc.kill()
            a.proc.wait(10)
            self.kills.append((name, at))
        else:
            a.proc.terminate()
            code = a.proc.wait(30)
            if code != 0:
                print(f"{name} exited {code} on SIGTERM", file=sys.stderr)
            self.stops.append((name, at))
        life.ended, life.how = time.monotonic(), how
        self.start_agent(name)
        wait_for(lambda: self.healthy(name), 60, what=f"{name} back after {how}")

    def run(self) -> dict:
        self.start_hub()
        for i in range(self.n):
            self.start_agent(f"a{i}")
            if i == 0:
                wait_for(lambda: self.healthy("a0"), 60, what="a0 up")
        for i in range(self.n):
            wait_for(lambda i=i: self.healthy(f"a{i}"), 60, what=f"a{i} up")
        self.start_monitor()
        t0 = time.monotonic()
        stop = threading.Event()
        feeder = threading.Thread(target=self.feed, args=(stop,), daemon=True)
        feeder.start()
        restarts = 0
        next_restart = t0 + self.warmup
        next_sample = t0
        try:
            while time.monotonic() - t0 < self.duration:
                now = time.monotonic()
                if now >= next_sample:
                    self.sample()
                    next_sample = now + self.sample_every
                if self.n > 1 and now >= next_restart:
                    self.restart(restarts)
                    restarts += 1
                    next_restart = time.monotonic() + self.restart_every
                time.sleep(0.2)
        finally:
            stop.set()
            feeder.join(30)
        self.sample()
        drained = self.drain()
        return {"restarts": restarts, "drained": drained}

    def terminal(self, n: int) -> bool:
        r = self.owner.get(f"/repos/owner/tasks/issues/{n}")
        if r.status_code != 200:
            print(f"issue {n}: {r.status_code} {r.text[:200]}", file=sys.stderr)
            return False
        labels = {x["name"] for x in r.json().get("labels", [])}
        return bool(labels & {"bzzz:done", "bzzz:failed"})

    def drain(self, bound: float = 60.0) -> float:
        t = time.monotonic()
        pending = set(self.issues)
        deadline = t + bound
        while pending and time.monotonic() < deadline:
            pending = {n for n in pending if not self.terminal(n)}
            time.sleep(0.5)
        self.pending = pending
        return round(time.monotonic() - t, 1)

    def close(self) -> None:
        self.stop_agents()
        for p in (self.monitor, getattr(self, "hub", None)):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()

    def stop_agents(self) -> None:
        for name, a in self.agents.items():
            if a.proc.poll() is None:
                a.proc.terminate()
                try:
                    a.proc.wait(30)
                except subprocess.TimeoutExpired:
                    a.proc.kill()
                    a.proc.wait(10)
                self.stops.append((name, time.time()))

    # -------------------------------------------------------------- figures

    def concurrent_holds(self) -> int:
        """Pairs of agents holding one task at the same time, from their signed logs; a
        killed agent's holds end at its kill (its sandboxed task dies with it)."""
        holds: dict[int, list[tuple[float, float, str]]] = {}
        for name, a in self.agents.items():
            ends = sorted(t for n, t in self.kills + self.stops if n == name)
            open_: dict[int, float] = {}
            for e in read_entries(a.data_dir / "log"):
                kind, issue, ts = e.get("type"), e.get("issue"), e.get("ts", 0.0)
                if kind == "started":  # a new incarnation: whatever was open ended before it
                    for n, s in open_.items():
                        end = next((t for t in ends if t >= s), ts)
                        holds.setdefault(n, []).append((s, end, name))
                    open_.clear()
                if not isinstance(issue, int):
                    continue
                if kind in HOLD_START and issue not in open_:
                    open_[issue] = ts
                elif kind in HOLD_END and issue in open_:
                    # a hand-off is logged once GitHub has moved the claim, so the helper's
                    # start may come first by a request's latency; the hold ended when the
                    # hand-off was sent (released_at), which GitHub then serialised
                    end = e.get("released_at", ts)
                    end = end if isinstance(end, (int, float)) else ts
                    holds.setdefault(issue, []).append((open_.pop(issue), end, name))
            for n, s in open_.items():
                end = next((t for t in ends if t >= s), time.time())
                holds.setdefault(n, []).append((s, end, name))
        self.overlaps = []
        for n, hs in holds.items():
            hs.sort()
            for i, (_start, e, who) in enumerate(hs):
                self.overlaps += [{"issue": n, "agents": [who, w2],
                                   "overlap_s": round(min(e, e2) - s2, 3)}
                                  for s2, e2, w2 in hs[i + 1:] if s2 < e and w2 != who]
        return len(self.overlaps)

    def decision_counts(self) -> dict[str, int]:
        """How often the agents took the decisions that show the soak exercised restarts,
        takeovers and help (from their signed logs)."""
        kinds = ("started", "claimed", "taken_over", "help_requested", "help_handed_over",
                 "help_adopted", "help_exhausted", "cancelled", "lease_lost")
        out = dict.fromkeys(kinds, 0)
        for a in self.agents.values():
            for e in read_entries(a.data_dir / "log"):
                if e.get("type") in out:
                    out[e["type"]] += 1
        return out

    def result_comments(self, n: int) -> int:
        return sum("<!-- bzzz:result:" in c["body"] for c in
                   self.owner.get(f"/repos/owner/tasks/issues/{n}/comments").json())


def growth(life: Incarnation, warmup: float) -> dict | None:
    pts = [(t, s) for t, s in life.samples if t - life.started >= warmup]
    if len(pts) < 3:
        return None
    rss = [(t, s["rss"]) for t, s in pts]
    mean = sum(v for _, v in rss) / len(rss)
    anon = [(t, s.get("rss_anon", 0)) for t, s in pts]
    anon_mean = sum(v for _, v in anon) / len(anon)
    out = {"rss_pct_per_hour": round(slope(rss) * 3600 / mean * 100, 2),
           "rss_mb_mean": round(mean / 2 ** 20, 1),
           "rss_mb_first": round(rss[0][1] / 2 ** 20, 1),
           "rss_mb_last": round(rss[-1][1] / 2 ** 20, 1),
           # the heap alone (RSS less mapped files such as shared libraries)
           "anon_pct_per_hour": round(slope(anon) * 3600 / anon_mean * 100, 2)
           if anon_mean else None,
           "fds_per_hour": round(slope([(t, s["fds"]) for t, s in pts]) * 3600, 1),
           "threads_per_hour": round(slope([(t, s["threads"]) for t, s in pts]) * 3600, 1),
           "fds_last": pts[-1][1]["fds"], "threads_last": pts[-1][1]["threads"],
           "measured_s": round(pts[-1][0] - pts[0][0], 1), "samples": len(pts)}
    if "log_bytes" in pts[0][1]:
        out["log_bytes_per_hour"] = round(slope([(t, s["log_bytes"]) for t, s in pts]) * 3600)
        out["log_bytes_last"] = pts[-1][1]["log_bytes"]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="45 s of load with three restarts, about a minute in all")
    ap.add_argument("--duration", type=float, default=None, help="seconds of load (3600)")
    ap.add_argument("--agents", type=int, default=3)
    ap.add_argument("--samples", type=Path, default=None, metavar="FILE",
                    help="append every process sample to FILE as it is taken (JSON lines: "
                         "who, pid, seconds since start, rss, rss_anon, rss_file, fds, threads)")
    ap.add_argument("--task-every", type=float, default=None,
                    help="seconds between tasks (2 with --quick, else 6: within the tokens' "
                         "hourly budgets)")
    args = ap.parse_args()
    if args.agents < 1:
        ap.error("--agents must be at least 1")
    duration = args.duration or (45.0 if args.quick else 3600.0)
    if duration <= 0:
        ap.error("--duration must be positive")
    warmup = min(30.0, duration / 4) if args.quick else min(300.0, duration / 6)
    restart_every = 10.0 if args.quick else 120.0
    root = Path(tempfile.mkdtemp(prefix="bzzz-soak-"))
    os.chmod(root, 0o755)  # tasks run as nobody when the agent is root: they enter it
    task_every = args.task_every or (2.0 if args.quick else 6.0)
    if task_every <= 0:
        ap.error("--task-every must be positive")
    soak = Soak(root, args.agents, duration, warmup, task_every=task_every,
                restart_every=restart_every, sample_every=2.0 if args.quick else 10.0,
                lease=6.0)
    t = time.monotonic()
    if args.samples is not None:
        soak.samples_out = args.samples.open("a")
    try:
        info = soak.run()
        soak.stop_agents()  # their logs complete; devhub stays up for the checks below
        report(soak, args, info, duration, warmup, t)
    finally:
        soak.close()
        if soak.samples_out is not None:
            soak.samples_out.close()
        if soak.failed or soak.overlaps:  # the logs and outputs say why: keep them
            print(f"soak: the agents' logs and outputs are kept in {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 1 if soak.failed else 0


def report(soak: Soak, args, info: dict, duration: float, warmup: float, t: float) -> None:
    params = {"agents": soak.n, "task_every_s": soak.task_every, "duration_s": duration, "warmup_s": warmup,
              "restarts": info["restarts"], "tasks": len(soak.issues),
              "sandbox": soak.env()["BZZZ_SANDBOX"], "quick": args.quick}
    for name, lives in soak.lives.items():
        measured = [(life, growth(life, warmup if i == 0 else min(warmup, 10.0)))
                    for i, life in enumerate(lives)]
        measured = [(life, g) for life, g in measured if g is not None]
        if not measured:
            emit("soak_rss_growth_pct_per_hour", None, "%/h", f"<= {RSS_TARGET:g}", None,
                 agent=name, note="no incarnation lived past the warm-up", **params)
            continue
        life, g = max(measured, key=lambda x: x[1]["measured_s"])
        p = {"agent": name, "incarnations": len(lives), **params, **g}
        # only a process that lived through the run is judged: a restarted agent's lives
        # are a few minutes each, mostly warm-up, which says nothing per hour
        judged = not args.quick and len(lives) == 1
        if not judged and not args.quick:
            p["note"] = "restarted during the run: its lives are mostly warm-up; not judged"
        emit("soak_rss_growth_pct_per_hour", g["rss_pct_per_hour"], "%/h", f"<= {RSS_TARGET:g}",
             g["rss_pct_per_hour"] <= RSS_TARGET if judged else None, **p)
        emit("soak_open_files_growth_per_hour", g["fds_per_hour"], "fds/h", "~0", None, **p)
        emit("soak_threads_growth_per_hour", g["threads_per_hour"], "threads/h", "~0", None, **p)
        emit("soak_log_growth_bytes_per_hour", g.get("log_bytes_per_hour"), "B/h", "", None, **p)
    if soak.monitor_life is not None:
        g = growth(soak.monitor_life, warmup)
        emit("soak_monitor_rss_growth_pct_per_hour", g and g["rss_pct_per_hour"], "%/h",
             f"<= {RSS_TARGET:g}",
             None if args.quick or g is None else g["rss_pct_per_hour"] <= RSS_TARGET,
             **params, **(g or {}))
    else:
        emit("soak_monitor_rss_growth_pct_per_hour", None, "%/h", f"<= {RSS_TARGET:g}", None,
             skipped=soak.monitor_note, **params)
    # correctness
    ok_tasks = [n for n, kind in soak.issues.items() if kind == "ok"]
    twice = sum(1 for n in ok_tasks if soak.result_comments(n) > 1)
    lost = len(soak.pending)
    holds = soak.concurrent_holds()
    emit("tasks_lost", lost, "tasks", "0", lost == 0, drain_s=info["drained"], **params)
    emit("tasks_run_twice", twice, "tasks", "0", twice == 0, **params)
    emit("soak_concurrent_holds", holds, "pairs", "0", holds == 0,
         overlaps=soak.overlaps[:10], **params)
    emit("soak_decisions", soak.decision_counts(), "count", "", None, **params)
    emit("soak_wall_seconds", round(time.monotonic() - t, 1), "s",
         "<= 90" if args.quick else "", None, **params)
    # overlapping holds read from the logs fail the full run; a quick run (minutes, often on
    # a loaded machine) reports them with their details but fails only on lost or doubled work
    soak.failed = bool(lost or twice or (holds and not args.quick))


if __name__ == "__main__":
    sys.exit(main())
