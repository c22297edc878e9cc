"""bench/gateway.py's other processes: ``origin EVENTS`` (prints its port) or ``gateway DIR
HOST:PORT`` (the origin allowed, and a model route ``bench`` to it; prints its task socket's
path and the task's capability), each serving until killed."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


async def _gateway(directory: str, allow: str) -> None:
    from bzzz.gateway.allow import Allowlist
    from bzzz.gateway.models import ModelEndpoint
    from bzzz.gateway.proxy import Gateway
    gw = Gateway(Path(directory), models=[ModelEndpoint("bench", f"http://{allow}", "openai")])
    async with gw.route("bench", Allowlist.build(allow.split(","))) as route:
        print(route.socket_path, route.capability, flush=True)
        await trio.sleep_forever()


def main() -> None:
    if sys.argv[1] == "origin":
        from gateway import origin  # bench/gateway.py's
        _, port = origin(int(sys.argv[2]))
        print(port, flush=True)
        time.sleep(3600)
    else:
        trio.run(_gateway, sys.argv[2], sys.argv[3])


if __name__ == "__main__":
    main()
