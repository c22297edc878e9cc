"""Mesh Visualizer page benchmarks (issue #12). One JSON object per line:
{"bench", "metric", "value", "unit", "target", "ok", "params", ...}

  page_first_render_s   navigation start -> the page's first full render (graph laid out,
                        agents table, task counts; the page's own mark), a fresh browser
                        context each run (nothing cached), 50 agents and 100,000 indexed
                        entries behind the monitor stub; median of the runs (max reported)
  page_log_render_s     the same for the log view of one agent (its newest page of entries)
  page_event_to_dom_s   a `mesh` event pushed by the server -> the change visible in the open
                        page (p50, p99 reported)

The monitor's API is the stub (bzzz/testing/monitorstub.py, the documented shapes), as its
own process on loopback; the browser is Debian's headless chromium driven by Playwright.
Run as `python bench/page.py [--quick]`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bzzz.testing import browser  # noqa: E402
from bzzz.testing.monitorstub import StubProcess  # noqa: E402

READY = "() => document.documentElement.dataset.ready === '1'"


def emit(metric: str, value, unit: str, target: str, ok: bool | None, **params) -> None:
    print(json.dumps({"bench": "page", "metric": metric, "value": value, "unit": unit,
                      "target": target, "ok": ok, "params": params}), flush=True)


def first_render(chromium, url: str) -> float:
    """Seconds from navigation start to the page's first full render, in a new context."""
    w = browser.watched_page(chromium)
    try:
        w.page.goto(url)
        w.page.wait_for_function(READY)
        ms = w.page.evaluate("window.bzzzFirstRender")
        problems = w.problems()
        if problems:
            raise RuntimeError("; ".join(problems))
        return ms / 1000.0
    finally:
        w.close()


def event_latency(chromium, stub: StubProcess, rounds: int) -> list[float]:
    """Push a changed mesh ``rounds`` times; seconds until each change shows."""
    w = browser.watched_page(chromium)
    try:
        w.page.goto(stub.url + "/")
        w.page.wait_for_function(READY)
        w.page.wait_for_selector("#live[data-status='live']")
        mesh = stub.state()["mesh"]
        out = []
        for i in range(rounds):
            mesh["agents"][0]["version"] = f"0.1.{i + 1}"
            mesh["generated"] += 1
            start = time.perf_counter()
            stub.set_mesh(mesh)
            w.page.wait_for_function(
                "([p, v]) => { const r = document.querySelector(`#agents tr[data-peer='${p}']`);"
                " return r && r.children[2].textContent === v; }",
                arg=[mesh["agents"][0]["peer_id"], f"0.1.{i + 1}"], polling="raf")
            out.append(time.perf_counter() - start)
        return out
    finally:
        w.close()


def real_monitor(tmp: str, logs: int, per_log: int):
    """A real monitor (bench/_monitor_peer.py) holding ``logs`` agents' logs of ``per_log``
    decisions each, served over the real protocol by two bench/_log_peer.py processes.
    Returns (its URL, the processes to stop)."""
    import json
    import subprocess
    here = Path(__file__).resolve().parent
    procs, servers = [], []
    for k in range(2):
        p = subprocess.Popen([sys.executable, str(here / "_log_peer.py"), "many",
                              f"{tmp}/server{k}", str(logs // 2), str(per_log)],
                             stdout=subprocess.PIPE, text=True)
        procs.append(p)
    servers = [json.loads(p.stdout.readline()) for p in procs]
    mon = subprocess.Popen([sys.executable, str(here / "_monitor_peer.py"), f"{tmp}/monitor",
                            json.dumps(servers), str(logs // 2 * 2 * per_log), "--serve"],
                           stdout=subprocess.PIPE, text=True)
    procs.append(mon)
    return json.loads(mon.stdout.readline())["url"], procs


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a smoke run: a few seconds")
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--entries", type=int, default=100_000)
    args = parser.parse_args()
    ok, why = browser.available()
    if not ok:
        print(f"bench/page.py: {why}", file=sys.stderr)
        return 1
    runs, rounds = (3, 20) if args.quick else (10, 200)
    params = {"agents": args.agents, "entries": args.entries, "tasks": 300, "runs": runs,
              "machine": "shared 2-core machine, indicative"}
    with StubProcess(agents=args.agents, entries=args.entries, tasks=300) as stub, \
            browser.chromium() as chromium:
        params["chromium"] = chromium.version
        first_render(chromium, stub.url + "/")  # the stub's first answers warm its caches
        times = [first_render(chromium, stub.url + "/") for _ in range(runs)]
        median = statistics.median(times)
        emit("page_first_render_s", round(median, 3), "s", "<= 1", median <= 1.0,
             max=round(max(times), 3), **params)
        peer = stub.state()["mesh"]["agents"][0]["peer_id"]
        times = [first_render(chromium, f"{stub.url}/#/log/{peer}") for _ in range(runs)]
        median = statistics.median(times)
        emit("page_log_render_s", round(median, 3), "s", "<= 1", median <= 1.0,
             max=round(max(times), 3), page_size=200, **params)
        lat = sorted(event_latency(chromium, stub, rounds))
        p50 = lat[len(lat) // 2]
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        emit("page_event_to_dom_s", round(p50, 4), "s", "p50 <= 1, p99 <= 3",
             p50 <= 1 and p99 <= 3, p99=round(p99, 4), rounds=rounds, **params)
        # the same page on the real monitor (bzzz/monitor) holding 50 agents' logs
        import tempfile
        with tempfile.TemporaryDirectory(prefix="bzzz-bench-page-") as tmp:
            url, procs = real_monitor(tmp, args.agents, max(1, args.entries // args.agents))
            try:
                first_render(chromium, url + "/")
                times = [first_render(chromium, url + "/") for _ in range(runs)]
            finally:
                for p in procs:
                    p.kill()
                    p.wait()
        median = statistics.median(times)
        emit("page_first_render_real_monitor_s", round(median, 3), "s", "<= 1", median <= 1.0,
             max=round(max(times), 3), **{**params, "tasks": "from the logs"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
