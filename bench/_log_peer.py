"""Helper for bench/hyperlog.py: one side of a log replication over libp2p.

  python bench/_log_peer.py serve DIR          serve the log in DIR; prints its multiaddr
  python bench/_log_peer.py fetch ADDR KEY DIR replicate, then print one JSON line:
                                               blocks, bytes, seconds, peak RSS
  python bench/_log_peer.py many ROOT N ENTRIES
                                               write N logs of ENTRIES decisions each
                                               under ROOT (a fresh directory), serve them
                                               all on one host; prints {"addr", "keys"}
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from libp2p.peer.peerinfo import info_from_p2p_addr  # noqa: E402
from multiaddr import Multiaddr  # noqa: E402

from bzzz.hyperlog.replicate import PROTOCOL, LogServer, Replicator  # noqa: E402
from bzzz.hyperlog.store import Hyperlog  # noqa: E402
from bzzz.p2p.logsync import ephemeral_node as _node, stream_channel  # noqa: E402


async def serve(path: str) -> None:
    server = LogServer()
    server.add(Hyperlog.open(path))
    node = _node()

    async def handle(stream) -> None:
        await server.serve(stream_channel(stream))

    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        node.host.set_stream_handler(PROTOCOL, handle)
        print(node.addrs()[0], flush=True)
        await trio.sleep_forever()


async def fetch(addr: str, key: str, path: str) -> None:
    node = _node()
    info = info_from_p2p_addr(Multiaddr(addr))
    rep = Replicator(bytes.fromhex(key), path)
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        await node.host.connect(info)
        stream = await node.host.new_stream(info.peer_id, [PROTOCOL])
        t0 = time.perf_counter()
        length = await rep.sync(stream_channel(stream))
        seconds = time.perf_counter() - t0
        rep.close()
        nursery.cancel_scope.cancel()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"blocks": length, "bytes": rep.bytes, "seconds": seconds,
                      "peak_rss_mb": round(rss_mb, 1)}), flush=True)


def decision(i: int, node: str) -> dict:
    """A decision shaped like an agent's (bzzz/claim/service.py)."""
    kinds = ("claimed", "running", "renewed", "result", "reported")
    entry = {"type": kinds[i % 5], "node": node, "ts": 1.7e9 + i, "repo": "acme/widgets",
             "issue": i // 5 + 1, "generation": 1}
    if entry["type"] == "result":
        entry.update(status="succeeded", exit_code=0, duration=0.4,
                     output=f"task {i // 5 + 1} built 3 targets in 0.4 s")
    return entry


def write_many(root: Path, n: int, entries: int) -> list[Hyperlog]:
    import os

    from bzzz.hyperlog.entries import encode
    logs = []
    for k in range(n):
        path = root / f"log{k:03d}"
        log = Hyperlog.create(path, os.urandom(32))
        node = f"agent-{k:03d}"
        while log.length < entries:
            start = log.length
            log.append([encode(decision(i, node)) for i in range(start, min(entries, start + 2000))])
        logs.append(log)
    return logs


async def serve_many(root: str, n: str, entries: str) -> None:
    logs = write_many(Path(root), int(n), int(entries))
    server = LogServer()
    for log in logs:
        server.add(log)
    node = _node()

    async def handle(stream) -> None:
        try:
            await server.serve(stream_channel(stream))
        except Exception:
            pass

    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        node.host.set_stream_handler(PROTOCOL, handle)
        print(json.dumps({"addr": node.addrs()[0], "keys": [log.key.hex() for log in logs]}),
              flush=True)
        await trio.sleep_forever()


if __name__ == "__main__":
    import logging
    logging.getLogger("libp2p").setLevel(logging.CRITICAL)  # routine stream noise
    if sys.argv[1] == "serve":
        trio.run(serve, sys.argv[2])
    elif sys.argv[1] == "many":
        trio.run(serve_many, *sys.argv[2:5])
    else:
        trio.run(fetch, *sys.argv[2:5])
