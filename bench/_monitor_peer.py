"""Helper for bench/monitor.py: a real Monitor (bzzz/monitor) in its own process, following
logs that bench/_log_peer.py processes serve (many signed logs per libp2p host), as if
each log were one agent's.

  python bench/_monitor_peer.py DATA_DIR SERVERS_JSON EXPECTED

SERVERS_JSON: [{"addr", "keys"}]. Prints one JSON line when EXPECTED entries are indexed:
entries, seconds, entries_per_s, rss_mb, and the API's answer times.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from libp2p.peer.peerinfo import info_from_p2p_addr  # noqa: E402
from multiaddr import Multiaddr  # noqa: E402

from bzzz.config import Config  # noqa: E402
from bzzz.monitor.node import Monitor  # noqa: E402
from bzzz.monitor.trust import Trust  # noqa: E402


class ClaimsTakenAsHeld(Trust):
    """The bench's logs are synthetic and no GitHub holds their claims: every claim in them
    is taken as held, so their tasks are indexed as a real mesh's would be (the figures are
    about replicating, indexing and answering, not about checking claims on GitHub)."""

    async def prepare(self, peer, entries):
        for _, check in self.pending(peer, entries):
            self._remember(check.key, True)
        return None


def rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def main(data_dir: str, servers_json: str, expected: str) -> None:
    import httpx

    servers = json.loads(servers_json)
    config = Config(node_id="bench-monitor", data_dir=Path(data_dir), mdns=False,
                    listen=["/ip4/127.0.0.1/tcp/0"], monitor={"listen": "127.0.0.1:0",
                                                               "poll_interval": 0})
    mon = Monitor(config)
    mon.trust = ClaimsTakenAsHeld(None)
    follow, k = [], 0
    for s in servers:
        info = info_from_p2p_addr(Multiaddr(s["addr"]))
        for key in s["keys"]:
            follow.append((info.peer_id.to_base58(), key, info))
            fake = f"agent-{k:03d}"
            mon.by_key[key] = fake
            mon.agents[fake] = {"peer_id": fake, "node_id": fake, "capabilities": ["shell"],
                                "load": {"running": 0, "max": 1}, "addrs": [],
                                "last_seen": time.time(), "log_key": key, "peers": [],
                                "version": "bench", "up": True}
            k += 1
    mon.logsync.peers = lambda: [(peer, key) for peer, key, _ in follow]
    want = int(expected)
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: mon.run(task_status, handle_signals=False))
        for s in servers:
            await mon.node.host.connect(info_from_p2p_addr(Multiaddr(s["addr"])))
        t0, c0 = time.perf_counter(), time.process_time()
        # the bench that started this process bounds the wait
        while mon.index.total < want:  # noqa: ASYNC110 -- the index has no event for its growth
            await trio.sleep(0.05)
        seconds = time.perf_counter() - t0
        cpu = time.process_time() - c0
        url = mon.bound[0]
        times = {}
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            for name, path in (("mesh", "/api/v1/mesh"), ("tasks", "/api/v1/tasks?limit=100"),
                               ("agent_log", "/api/v1/agents/agent-000/log?limit=200"),
                               ("log_search", "/api/v1/agents/agent-000/log?q=targets"),
                               ("timeline", "/api/v1/tasks/acme/widgets/7"),
                               ("metrics", "/metrics")):
                t = time.perf_counter()
                r = await client.get(path)
                assert r.status_code == 200, (path, r.status_code)
                times[name] = round((time.perf_counter() - t) * 1e3, 1)
        print(json.dumps({"entries": mon.index.total, "logs": len(follow),
                          "seconds": round(seconds, 2),
                          "entries_per_s": round(mon.index.total / seconds),
                          "cpu_s": round(cpu, 2),
                          "entries_per_cpu_s": round(mon.index.total / cpu),
                          "rss_mb": round(rss_mb(), 1),
                          "peak_rss_mb": round(resource.getrusage(
                              resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                          "api_ms": times, "url": url}), flush=True)
        if len(sys.argv) > 4 and sys.argv[4] == "--serve":
            await trio.sleep_forever()  # the page bench keeps it open
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    import logging
    logging.getLogger("libp2p").setLevel(logging.CRITICAL)
    if os.environ.get("BZZZ_BENCH_PROFILE"):
        import cProfile
        cProfile.run("trio.run(main, *sys.argv[1:4])", os.environ["BZZZ_BENCH_PROFILE"])
    else:
        trio.run(main, *sys.argv[1:4])
