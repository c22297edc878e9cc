"""Mesh benchmarks (issue: foundation). One JSON object per line:
{"bench", "metric", "value", "unit", "target", "ok", "params", ...}

  discovery    N agents (`bzzz run`) in N network namespaces on one bridge, mDNS only:
               seconds from all answering /healthz to complete peer tables (N = 2, 4, 8)
  propagation  capability-announcement age on arrival across 8 agents, p50 / p99
  throughput   200-byte gossip messages between two agent processes, none lost
  rss          receiver agent RSS idle, and growth over 100,000 received messages
  startup      process start to /healthz 200

Run as `python bench/mesh.py [--quick]`; namespace parts need root (skipped otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bzzz.testing import netns  # noqa: E402

PY = sys.executable


def emit(metric: str, value, unit: str, target: str, ok: bool | None, **params) -> None:
    line = {"bench": "mesh", "metric": metric, "value": value, "unit": unit, "target": target,
            "ok": ok, "params": params}
    print(json.dumps(line), flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


# ------------------------------------------------------------------ namespaces

def discovery(sizes: list[int]) -> None:
    for n in sizes:
        with netns.Lab() as lab:
            sw = lab.switch("sw")
            agents = [lab.agent(f"a{i}", lab.host(f"h{i}", sw, f"10.231.1.{i + 1}/24"),
                                env={"BZZZ_DETECT_CAPABILITIES": "off",
                                     "BZZZ_CAPABILITIES": f"shell,c{i}"}) for i in range(n)]
            t_launch = time.monotonic()
            for a in agents:
                a.start()
            for a in agents:
                a.wait_healthy(60)
            t_healthy = time.monotonic()
            ids = {a.peer_id for a in agents}
            netns.wait_for(lambda agents=agents, ids=ids:
                           all(a.peer_ids() == ids - {a.peer_id} for a in agents),
                           30, 0.02, "full mesh")
            t_mesh = time.monotonic()
        formation = round(t_mesh - t_healthy, 3)
        emit(f"mesh_formation_{n}_agents", formation, "s", "8 agents <= 3 s",
             formation <= 3.0 if n == 8 else None, agents=n, discovery="mdns",
             launch_to_mesh_s=round(t_mesh - t_launch, 3),
             launch_to_all_healthy_s=round(t_healthy - t_launch, 3))


def _age_buckets(agent) -> dict[float, float]:
    """Cumulative bucket counts of bzzz_announcement_age_seconds from an agent's /metrics."""
    text = agent.get("/metrics")[1].decode()
    out: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith("bzzz_announcement_age_seconds_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            out[float("inf") if le == "+Inf" else float(le)] = float(line.rsplit(" ", 1)[1])
    return out


def histogram_quantile(q: float, buckets: dict[float, float]) -> float:
    """Prometheus' histogram_quantile: linear interpolation inside the bucket."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    if total <= 0:
        return float("nan")
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if bound == float("inf"):
                return prev_bound
            return prev_bound + (bound - prev_bound) * (rank - prev_count) / max(count - prev_count, 1e-9)
        prev_bound, prev_count = bound, count
    return bounds[-2]


def propagation(n: int, seconds: float) -> None:
    with netns.Lab() as lab:
        sw = lab.switch("sw")
        agents = [lab.agent(f"a{i}", lab.host(f"h{i}", sw, f"10.231.1.{i + 1}/24"),
                            env={"BZZZ_DETECT_CAPABILITIES": "off",
                                 "BZZZ_ANNOUNCE_INTERVAL": "0.5"}) for i in range(n)]
        for a in agents:
            a.start()
        for a in agents:
            a.wait_healthy(60)
        ids = {a.peer_id for a in agents}
        netns.wait_for(lambda: all(a.peer_ids() == ids - {a.peer_id} for a in agents), 30)
        before = [_age_buckets(a) for a in agents]
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:  # let announcements accumulate
            time.sleep(0.1)
        after = [_age_buckets(a) for a in agents]
    pooled: dict[float, float] = {}
    for b0, b1 in zip(before, after, strict=True):
        for bound, count in b1.items():
            pooled[bound] = pooled.get(bound, 0.0) + count - b0.get(bound, 0.0)
    samples = int(pooled.get(float("inf"), 0))
    p50 = round(1000 * histogram_quantile(0.5, pooled), 2)
    p99 = round(1000 * histogram_quantile(0.99, pooled), 2)
    how = ("every announcement received by every agent after the mesh formed, pooled; "
           "quantiles interpolated in the histogram's buckets (histogram_quantile)")
    emit("announcement_propagation_p50", p50, "ms", "p50 <= 50 ms", p50 <= 50, agents=n,
         samples=samples, interval_s=0.5, how=how)
    emit("announcement_propagation_p99", p99, "ms", "(reported)", None, agents=n,
         samples=samples, how=how)


# ------------------------------------------------------------------ two agent processes

class GossipPair:
    def __init__(self, report_every: int) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="bzzz-bench-"))
        peer = str(ROOT / "bench" / "_gossip_peer.py")
        self.receiver = subprocess.Popen(
            [PY, peer, "receiver", "--data-dir", str(self.tmp / "r"),
             "--api", f"127.0.0.1:{free_port()}", "--report-every", str(report_every)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        ready = self._line(self.receiver, 60)
        self.receiver_pid = ready["pid"]
        self.sender = subprocess.Popen(
            [PY, peer, "sender", "--data-dir", str(self.tmp / "s"),
             "--api", f"127.0.0.1:{free_port()}", "--bootstrap", ready["addr"],
             "--receiver-id", ready["peer_id"]],
            stdout=subprocess.PIPE, stdin=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self._line(self.sender, 60)
        self.received = 0

    @staticmethod
    def _line(proc, timeout: float) -> dict:
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError("bench peer did not answer")
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("bench peer exited")
        return json.loads(line)

    def send(self, count: int, timeout: float = 300) -> dict:
        """Send `count` messages; wait until all arrive (or time out): a report dict."""
        target = self.received + count
        t0 = time.time()
        self.sender.stdin.write(f"{count}\n")
        self.sender.stdin.flush()
        last = None
        deadline = time.monotonic() + timeout
        while self.received < target and time.monotonic() < deadline:
            try:
                report = self._line(self.receiver, max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                break
            self.received = report["received"]
            last = report
        return {"t0": t0, "last": last, "lost": target - self.received}

    def close(self) -> None:
        for p in (self.sender, self.receiver):
            p.kill()
            p.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


def throughput_and_rss(messages: int, soak: int, settle: float) -> None:
    pair = GossipPair(report_every=min(messages, soak, 1000))

    def settled() -> float:
        time.sleep(settle)  # a measurement wait: let the burst's working set drain
        return rss_mb(pair.receiver_pid)

    try:
        cold = settled()
        r = pair.send(messages)
        rate = round(messages / (r["last"]["last"] - r["t0"]), 1) if r["last"] else 0.0
        emit("gossip_throughput", rate, "msg/s", ">= 1000 msg/s, none lost",
             rate >= 1000 and r["lost"] == 0, messages=messages, size=200, lost=r["lost"],
             latency_p50_ms=round(r["last"]["p50_ms"], 1) if r["last"] else None,
             note="sender publishes as fast as back-pressure allows; latency is queueing")
        warm = settled()
        emit("agent_rss_idle", round(cold, 1), "MB", "<= 120 MB", cold <= 120,
             warm_after_throughput_mb=round(warm, 1))
        r1 = pair.send(soak)
        during = rss_mb(pair.receiver_pid)
        after1 = settled()
        r2 = pair.send(soak)
        after2 = settled()
        lost = r1["lost"] + r2["lost"]
        emit(f"agent_rss_after_{soak}_messages", round(after1, 1), "MB", "<= 120 MB",
             after1 <= 120 and lost == 0, lost=lost, rss_during_burst_mb=round(during, 1),
             how=f"{settle:.0f} s after the last message of a saturating burst")
        steady = round(100 * (after2 - after1) / after1, 2)
        vs_warm = round(100 * (after1 - warm) / warm, 2)
        emit("agent_rss_growth", steady, "%", "< 5 % growth", steady < 5,
             how=f"RSS after a second round of {soak} messages vs after the first",
             growth_first_round_vs_warm_pct=vs_warm, rss_warm_mb=round(warm, 1),
             rss_after_round1_mb=round(after1, 1), rss_after_round2_mb=round(after2, 1))
    finally:
        pair.close()


def startup(runs: int) -> None:
    times = []
    for _ in range(runs):
        tmp = tempfile.mkdtemp(prefix="bzzz-start-")
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("BZZZ_")}
        env.update({"BZZZ_DATA_DIR": tmp, "BZZZ_API_LISTEN": f"127.0.0.1:{port}",
                    "BZZZ_LISTEN": "/ip4/127.0.0.1/tcp/0", "BZZZ_MDNS": "off"})
        t0 = time.monotonic()
        proc = subprocess.Popen([PY, "-m", "bzzz", "run"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() - t0 > 30 or proc.poll() is not None:
                    raise RuntimeError("agent did not become healthy")
                time.sleep(0.01)
            times.append(time.monotonic() - t0)
        finally:
            proc.terminate()
            proc.wait(10)
            shutil.rmtree(tmp, ignore_errors=True)
    value = round(statistics.median(times), 3)
    emit("start_to_healthz", value, "s", "<= 2.5 s", value <= 2.5, runs=runs,
         all_runs=[round(t, 3) for t in times])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small smoke run (CI)")
    args = p.parse_args()
    ok, why = netns.available()
    if ok:
        discovery([2] if args.quick else [2, 4, 8])
        propagation(3 if args.quick else 8, 2 if args.quick else 8)
    else:
        emit("mesh_formation", None, "s", "8 agents <= 3 s", None, skipped=why)
    throughput_and_rss(2_000 if args.quick else 20_000, 2_000 if args.quick else 100_000,
                       1.0 if args.quick else 8.0)
    startup(1 if args.quick else 5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
