"""Restarts and departures (issue #24). One JSON object per line:
{"bench", "metric", "value", "unit", "target", "ok", "params"}

  follow_stall_recovery  two agents in one process, 1 s announcements; the writer's log
                         server loses every wake-up (its follower's long poll sleeps through
                         new entries): seconds from the follower holding the longer announced
                         length to its copy moving again, worst of N rounds (target: within
                         two announcement intervals)
  sigterm_departure      four `bzzz run` agents in network namespaces, found by mDNS; each in
                         turn gets SIGTERM and is started again: seconds until every other
                         agent has dropped it, worst of N rounds, and how many within 1 s
                         (needs root; skipped otherwise)

Run as `python bench/restarts.py [--quick]` (--quick: 3 and 4 rounds, else 20 and 20);
exits 1 when a figure misses its target.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bzzz.agent import Agent  # noqa: E402
from bzzz.config import Config  # noqa: E402
from bzzz.testing import netns  # noqa: E402
from bzzz.testing.agents import free_port  # noqa: E402
from bzzz.testing.wait import wait_until  # noqa: E402

INTERVAL = 1.0


FAILED: list[str] = []


def emit(metric: str, value, unit: str, target: str, ok: bool | None, **params) -> None:
    if ok is False:
        FAILED.append(metric)
    print(json.dumps({"bench": "restarts", "metric": metric, "value": value, "unit": unit,
                      "target": target, "ok": ok, "params": params}), flush=True)


def _config(root: Path, name: str, **more) -> Config:
    return Config(node_id=name, data_dir=root / name, listen=["/ip4/127.0.0.1/tcp/0"],
                  api_listen=f"127.0.0.1:{free_port()}", mdns=False, detect_capabilities=False,
                  capabilities=["shell"], announce_interval=INTERVAL, **more)


async def _stall_rounds(rounds: int, root: Path) -> list[float]:
    took = []
    async with trio.open_nursery() as nursery:
        a = Agent(_config(root, "a"))
        await nursery.start(lambda task_status: a.run(task_status, handle_signals=False))
        b = Agent(_config(root, "b", bootstrap=[f"{a.node.addrs()[0]}/p2p/{a.peer_id}"]))
        await nursery.start(lambda task_status: b.run(task_status, handle_signals=False))
        key = a.decisions.log.key
        a.decisions.append({"type": "bench", "i": 0})
        await wait_until(lambda: b.logsync._copied(key) == a.decisions.length, 30, "b's copy",
                         interval=0.01)
        a.logsync.server._wake = lambda key: None  # the lost wake-up, from here on
        for r in range(rounds):
            rep = b.logsync.replicators[key]
            await wait_until(lambda rep=rep: "following" in rep.waiting_on, 30, "b following",
                             interval=0.01)
            for i in range(3):
                a.decisions.append({"type": "bench", "round": r, "i": i})
            target = a.decisions.length
            await wait_until(lambda target=target: b.mesh.announced_log_length(a.peer_id)
                             >= target, 10, "a's length announced", interval=0.01)
            t0 = trio.current_time()
            await wait_until(lambda target=target: b.logsync._copied(key) >= target, 30,
                             "b's copy caught up", interval=0.01)
            took.append(trio.current_time() - t0)
        stalls = b.logsync.stalls
        nursery.cancel_scope.cancel()
    assert stalls >= rounds, (stalls, rounds)
    return took


def follow_stall_recovery(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        took = trio.run(_stall_rounds, rounds, Path(tmp))
    worst = round(max(took), 3)
    emit("follow_stall_recovery", worst, "s", f"<= {2 * INTERVAL:g} s (two announcement "
         "intervals)", worst <= 2 * INTERVAL, rounds=rounds, interval_s=INTERVAL,
         median_s=round(sorted(took)[len(took) // 2], 3))


def sigterm_departure(rounds: int) -> None:
    took = []
    with netns.Lab() as lab:
        sw = lab.switch("sw")
        agents = [lab.agent(f"a{i}", lab.host(f"h{i}", sw, f"10.231.1.{i + 1}/24"),
                            env={"BZZZ_DETECT_CAPABILITIES": "off"}) for i in range(4)]
        for a in agents:
            a.start()
        for a in agents:
            a.wait_healthy(60)
        ids = {a.peer_id for a in agents}

        def meshed() -> bool:
            return all(a.peer_ids() == ids - {a.peer_id} for a in agents)

        netns.wait_for(meshed, 30, what="mesh")
        for r in range(rounds):
            victim = agents[r % 4]
            others = [a for a in agents if a is not victim]
            t0 = time.monotonic()
            victim.send_signal(signal.SIGTERM)
            netns.wait_for(lambda victim=victim, others=others:
                           all(victim.peer_id not in o.peer_ids() for o in others),
                           20, 0.01, "dropped")
            took.append(time.monotonic() - t0)
            victim.proc.wait(10)
            victim.start()
            victim.wait_healthy(60)
            netns.wait_for(meshed, 30, what="mesh again")
    within = sum(1 for t in took if t <= 1.0)
    emit("sigterm_departure", round(max(took), 3), "s", "<= 1 s in every round",
         within == len(took), rounds=rounds, within_1s=within,
         median_s=round(sorted(took)[len(took) // 2], 3), agents=4, discovery="mdns",
         announce_interval_s=5)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small smoke run (CI)")
    args = p.parse_args()
    follow_stall_recovery(3 if args.quick else 20)
    ok, why = netns.available()
    if ok:
        sigterm_departure(4 if args.quick else 20)
    else:
        emit("sigterm_departure", None, "s", "<= 1 s in every round", None, skipped=why)
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
