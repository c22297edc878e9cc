"""The monitor's figures (issue #12), one JSON line each.

- monitor_ingest: entries per second replicated, verified and indexed from 50 logs, served
  over the real protocol by two processes holding 25 signed logs each (fifty agent processes
  do not fit on two cores); target >= 20,000/s.
- monitor_rss: the monitor's resident memory once it holds every entry (1,000,000 in the
  full run); target <= 300 MB.
- monitor_api: the answer times of the page's API calls over that index.
- decision_to_callback: a job's state change in an agent's log (the decision's timestamp)
  -> its signed callback received, through `bzzz monitor`'s Hive bridge; target p50 <= 2 s.
- decision_to_event: a decision appended on a real agent (`bzzz run`) -> the matching
  `entry` event on the monitor's live stream (`bzzz monitor`), what the open page shows;
  target p50 <= 1 s, p99 <= 3 s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bzzz.testing.agents import free_port, start_monitor  # noqa: E402
from bzzz.testing.netns import wait_for  # noqa: E402


def ingest(tmp: Path, logs: int, per_log: int) -> dict:
    servers, procs = [], []
    try:
        for s in range(2):
            p = subprocess.Popen([sys.executable, str(ROOT / "bench" / "_log_peer.py"), "many",
                                  str(tmp / f"server{s}"), str(logs // 2), str(per_log)],
                                 stdout=subprocess.PIPE, text=True)
            procs.append(p)
        for p in procs:
            servers.append(json.loads(p.stdout.readline()))
        out = subprocess.run([sys.executable, str(ROOT / "bench" / "_monitor_peer.py"),
                              str(tmp / "monitor"), json.dumps(servers),
                              str(logs // 2 * 2 * per_log)],
                             capture_output=True, text=True, timeout=1800)
        if out.returncode != 0:
            raise SystemExit(f"monitor peer failed: {out.stderr[-2000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        for p in procs:
            p.kill()
            p.wait()


def latency(tmp: Path, samples: int) -> dict:
    port, api = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BZZZ_")}
    env.update({"BZZZ_NODE_ID": "a1", "BZZZ_DATA_DIR": str(tmp / "a1"),
                "BZZZ_LISTEN": f"/ip4/127.0.0.1/tcp/{port}", "BZZZ_API_LISTEN": f"127.0.0.1:{api}",
                "BZZZ_MDNS": "off", "BZZZ_ANNOUNCE_INTERVAL": "1"})
    from bzzz.identity import load_or_create
    peer = load_or_create(tmp / "a1").peer_id.to_base58()
    agent = subprocess.Popen([sys.executable, "-m", "bzzz", "run"], env=env,
                             stdout=open(tmp / "a1.log", "ab"), stderr=subprocess.STDOUT)
    mon = start_monitor(tmp, "http://127.0.0.1:9", "unused", "",
                        bootstrap=f"/ip4/127.0.0.1/tcp/{port}/p2p/{peer}",
                        BZZZ_ANNOUNCE_INTERVAL="1", BZZZ_MONITOR__POLL_INTERVAL="0")
    seen: dict[str, float] = {}
    stop = threading.Event()

    def read_events() -> None:
        try:
            with httpx.stream("GET", f"{mon.url}/api/v1/events", timeout=None) as r:
                kind = None
                for line in r.iter_lines():
                    if stop.is_set():
                        return
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: ") and kind == "entry":
                        doc = json.loads(line[6:])
                        if doc["type"] == "help_requested":
                            seen[f"n{len(seen)}"] = time.perf_counter()
        except httpx.HTTPError:  # the monitor stopped at the end of the run
            pass

    try:
        def ready() -> bool:
            m = httpx.get(f"{mon.url}/api/v1/mesh", timeout=2).json()
            return any(a["log"]["state"] == "verified" for a in m["agents"])
        wait_for(ready, 60, what="the monitor following the agent's log")
        reader = threading.Thread(target=read_events, daemon=True)
        reader.start()
        time.sleep(0.5)  # the stream is open (its first mesh event is on the way)
        lat = []
        for _ in range(samples):
            before = len(seen)
            t0 = time.perf_counter()
            httpx.post(f"http://127.0.0.1:{api}/api/v1/help/probe",
                       json={"needs": ["nothing-has-this"], "wait": 0.05}, timeout=10)
            wait_for(lambda before=before: len(seen) > before, 10, interval=0.002,
                     what="the entry event")
            lat.append(seen[f"n{before}"] - t0)
        lat.sort()
        pick = lambda q: round(lat[min(len(lat) - 1, int(q * len(lat)))], 3)  # noqa: E731
        out = {"samples": len(lat), "p50_s": pick(0.5), "p99_s": pick(0.99), "max_s": lat[-1]}
        out["page"] = on_page(mon.url, api, peer, samples)
        return out
    finally:
        stop.set()
        mon.stop()
        agent.terminate()
        agent.wait(20)


def callbacks(tmp: Path, jobs: int) -> dict:
    import http.server

    from bzzz.devhub import DevHubThread
    from bzzz.testing.agents import start
    got: list[tuple[float, dict]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["content-length"]))
            got.append((time.time(), json.loads(body)))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{server.server_address[1]}/hook"
    (tmp / "enqueue-tokens").write_text("bench bench-token-0123456789\n")
    (tmp / "callback-secret").write_text("bench-secret\n")
    work = Path(tempfile.mkdtemp(prefix="bzzz-bench-work-"))
    work.chmod(0o755)
    seed = {"users": [{"login": "bot", "token": "t-bot"}, {"login": "mon", "token": "t-mon"}],
            "repos": [{"full_name": "owner/tasks", "push": ["bot", "mon"]}]}
    with DevHubThread(seed=seed) as hub:
        agent = start(tmp, "cb-agent", hub.url, "t-bot", "owner/tasks",
                      BZZZ_WORKSPACE_DIR=str(work / "a"), BZZZ_GITHUB__POLL_INTERVAL="0.5",
                      BZZZ_GITHUB__WRITE_INTERVAL="0", BZZZ_ANNOUNCE_INTERVAL="1",
                      BZZZ_GITHUB__CHECKOUT="off", BZZZ_SANDBOX="none", BZZZ_MAX_TASKS="2")
        mon = start_monitor(tmp, hub.url, "t-mon", "owner/tasks", bootstrap=agent.addr,
                            name="cb-monitor", BZZZ_ANNOUNCE_INTERVAL="1",
                            BZZZ_MONITOR__POLL_INTERVAL="0",
                            BZZZ_MONITOR__ENQUEUE_TOKENS_FILE=str(tmp / "enqueue-tokens"),
                            BZZZ_MONITOR__CALLBACK_SECRET_FILE=str(tmp / "callback-secret"),
                            BZZZ_MONITOR__CALLBACK_ALLOW="127.0.0.0/8")  # the receiver is on loopback
        try:
            wait_for(lambda: httpx.get(f"{mon.url}/health", timeout=2).status_code == 200, 60,
                     what="the monitor's bridge")
            for i in range(jobs):
                r = httpx.post(f"{mon.url}/enqueue", timeout=30,
                               headers={"Authorization": "Bearer bench-token-0123456789"},
                               json={"jobId": f"bench-{i}", "repo": "owner/tasks",
                                     "task": "shell", "instructions": f"echo job {i}",
                                     "callbackUrl": hook})
                assert r.status_code == 202, r.text
            wait_for(lambda: sum(1 for _, d in got if d["event"] == "done") >= jobs, 180,
                     what="every job's done callback")
        finally:
            mon.stop()
            agent.stop()
            server.shutdown()
    lat = sorted(at - d["ts"] for at, d in got if isinstance(d.get("ts"), (int, float)))
    pick = lambda q: round(lat[min(len(lat) - 1, int(q * len(lat)))], 3)  # noqa: E731
    return {"jobs": jobs, "callbacks": len(got), "p50_s": pick(0.5), "p99_s": pick(0.99),
            "events": sorted({d["event"] for _, d in got})}


def on_page(url: str, api: int, peer: str, samples: int) -> dict | None:
    """The same decisions seen on the open page: the agent's log view in headless Chromium,
    from the request that makes the decision to its row on the page."""
    from bzzz.testing import browser
    ok, _ = browser.available()
    if not ok:
        return None
    lat = []
    with browser.chromium() as chromium:
        w = browser.watched_page(chromium)
        try:
            w.page.goto(f"{url}/#/log/{peer}")
            w.page.wait_for_function("() => document.documentElement.dataset.ready === '1'")
            w.page.wait_for_selector("#live[data-status='live']")
            for _ in range(samples):
                top = w.page.evaluate("() => Math.max(-1, ...[...document.querySelectorAll("
                                      "'tr[data-seq]')].map(r => +r.dataset.seq))")
                t0 = time.perf_counter()
                httpx.post(f"http://127.0.0.1:{api}/api/v1/help/probe",
                           json={"needs": ["nothing-has-this"], "wait": 0.05}, timeout=10)
                w.page.wait_for_function(
                    "(top) => [...document.querySelectorAll(\"tr[data-type='help_requested']\")]"
                    ".some(r => +r.dataset.seq > top)", arg=top, polling="raf")
                lat.append(time.perf_counter() - t0)
        finally:
            w.close()
    lat.sort()
    return {"samples": len(lat), "p50_s": round(lat[len(lat) // 2], 3),
            "p99_s": round(lat[min(len(lat) - 1, int(0.99 * len(lat)))], 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="a short smoke run")
    args = ap.parse_args()
    logs, per_log, samples = (50, 2000, 10) if args.quick else (50, 20_000, 40)
    with tempfile.TemporaryDirectory(prefix="bzzz-bench-monitor-") as d:
        tmp = Path(d)
        r = ingest(tmp, logs, per_log)
        print(json.dumps({"figure": "monitor_ingest", "logs": r["logs"], "entries": r["entries"],
                          "seconds": r["seconds"], "entries_per_s": r["entries_per_s"],
                          "entries_per_cpu_s": r["entries_per_cpu_s"],
                          "target_per_s": 20000, "quick": args.quick}))
        print(json.dumps({"figure": "monitor_rss", "entries": r["entries"], "rss_mb": r["rss_mb"],
                          "peak_rss_mb": r["peak_rss_mb"], "target_mb": 300,
                          "quick": args.quick}))
        print(json.dumps({"figure": "monitor_api", "entries": r["entries"], "ms": r["api_ms"]}))
        r = callbacks(tmp, 3 if args.quick else 10)
        print(json.dumps({"figure": "decision_to_callback", **r, "target_p50_s": 2,
                          "quick": args.quick}))
        r = latency(tmp, samples)
        print(json.dumps({"figure": "decision_to_event", **r, "target_p50_s": 1,
                          "target_p99_s": 3, "quick": args.quick}))


if __name__ == "__main__":
    main()
