"""A full Bzzz agent plus a bench topic, driven by bench/mesh.py (one process per role).

receiver: counts unique bench messages in the topic validator (the agent's delivery path)
          and prints a JSON report each time the count reaches a multiple of --report-every.
sender:   waits until the receiver is subscribed, then for each line read on stdin publishes
          that many 200-byte messages as fast as the stack accepts them, and reports.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import trio

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from bzzz import logs  # noqa: E402
from bzzz.agent import Agent  # noqa: E402
from bzzz.config import Config  # noqa: E402

TOPIC = "bzzz/bench/1"
SIZE = 200


def say(**kw) -> None:
    print(json.dumps(kw), flush=True)


async def receiver(agent: Agent, report_every: int) -> None:
    count = 0
    first = last = 0.0
    lat: list[float] = []

    def handle(signer: str, data: bytes) -> bool:
        nonlocal count, first, last
        now = time.time()
        count += 1
        if count == 1:
            first = now
        last = now
        lat.append(now - float(data[:20]))
        if count % report_every == 0:
            lat.sort()
            say(event="report", received=count, first=first, last=last,
                p50_ms=1000 * lat[len(lat) // 2], p99_ms=1000 * lat[int(len(lat) * 0.99)])
            lat.clear()
        return True

    agent.node.on_message(TOPIC, handle)
    await agent.node.subscribe(TOPIC)
    say(event="ready", peer_id=agent.peer_id, addr=agent.node.addrs()[0], pid=os.getpid())
    await trio.sleep_forever()


async def sender(agent: Agent, receiver_id: str) -> None:
    from libp2p.peer.id import ID

    agent.node.on_message(TOPIC, lambda s, d: True)
    await agent.node.subscribe(TOPIC)
    target = ID.from_base58(receiver_id)
    # as long as bench/mesh.py waits for the line below
    await agent.node.pubsub.wait_for_subscription(target, TOPIC, timeout=60)
    say(event="ready", peer_id=agent.peer_id, pid=os.getpid())
    stdin = trio.lowlevel.FdStream(os.dup(0))
    buf = b""
    while True:
        chunk = await stdin.receive_some(1024)
        if not chunk:
            return
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            n = int(line)
            pad = b"x" * (SIZE - 20)
            start = time.time()
            for _ in range(n):
                await agent.node.publish(TOPIC, f"{time.time():<20.6f}".encode() + pad)
            await agent.node.flush(30)
            say(event="sent", count=n, seconds=time.time() - start)


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("role", choices=["receiver", "sender"])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--api", required=True)
    p.add_argument("--bootstrap", default="")
    p.add_argument("--receiver-id", default="")
    p.add_argument("--report-every", type=int, default=10_000)
    args = p.parse_args()
    logs.setup("error", "text")
    config = Config(node_id=args.role, data_dir=args.data_dir, listen=["/ip4/127.0.0.1/tcp/0"],
                    api_listen=args.api, mdns=False, detect_capabilities=False,
                    capabilities=["bench"],
                    bootstrap=[args.bootstrap] if args.bootstrap else [])
    agent = Agent(config)
    agent.maintenance_interval = float(os.environ.get("BZZZ_BENCH_TRIM", "30"))
    async with trio.open_nursery() as nursery:
        await nursery.start(agent.run)
        if args.role == "receiver":
            await receiver(agent, args.report_every)
        else:
            await sender(agent, args.receiver_id)
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main)
