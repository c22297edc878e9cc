"""The agent's container image: its size and how fast a container of it answers /healthz.
One JSON object per line.

  image_size_mb        the image's uncompressed size (what `podman images` shows), target 250
  start_to_healthz_s   p50 over several starts: `podman run -d` issued -> GET /healthz 200 on
                       the host network (container sandbox with the engine's socket mounted,
                       as on a Swarm node), target 3 s
  build_s              how long building the image took (absent when it came from the cache)

The image comes from the cache that tests/test_image.py fills (bzzz.testing.image, keyed by
the sources) or is built here (about a minute; the local base image takes another minute the
first time on a machine). The bench starts podman itself (bzzz.testing.podman, root) and
reports skipped lines when it cannot. Run as `python bench/image.py [--quick]`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bzzz.testing import image  # noqa: E402
from bzzz.testing import podman as podman_helper  # noqa: E402
from bzzz.testing.agents import free_port  # noqa: E402

TARGETS = {"image_size_mb": 250, "start_to_healthz_s": 3.0}
UID = 10001


def emit(metric, value, unit, target, ok, **params) -> None:
    print(json.dumps({"bench": "image", "metric": metric, "value": value, "unit": unit,
                      "target": target, "ok": ok, "params": params}), flush=True)


def skipped(why: str) -> None:
    for metric, unit in (("image_size_mb", "MB"), ("start_to_healthz_s", "s")):
        emit(metric, None, unit, TARGETS[metric], None, skipped=why)


def one_start(podman, tag: str) -> float:
    api = free_port()
    data = Path(tempfile.mkdtemp(prefix="bzzz-bench-image-"))
    os.chown(data, UID, UID)
    st = podman.socket.stat()
    env = {"BZZZ_NODE_ID": "bench", "BZZZ_DATA_DIR": str(data), "BZZZ_MDNS": "off",
           "BZZZ_LISTEN": "/ip4/127.0.0.1/tcp/0", "BZZZ_API_LISTEN": f"127.0.0.1:{api}",
           "BZZZ_DETECT_CAPABILITIES": "off", "BZZZ_SANDBOX": "container",
           "BZZZ_TASK_IMAGE": podman.image, "BZZZ_WORKSPACE_DIR": str(data / "work")}
    agent = image.AgentContainer(podman, tag, env=env, group_add=[st.st_gid],
                                 mounts=[(str(data), str(data)),
                                         (str(podman.socket), "/var/run/docker.sock")])
    url = f"http://127.0.0.1:{api}/healthz"
    try:
        t0 = time.monotonic()
        agent.start()
        while not image.get_healthz(url, timeout=0.5):
            if time.monotonic() - t0 > 60:
                raise image.ImageError(f"no /healthz within 60 s: {agent.logs()[-1000:]}")
            time.sleep(0.01)
        took = time.monotonic() - t0
        code, _ = agent.stop(timeout=20)
        if code != 0:
            raise image.ImageError(f"exit {code} on SIGTERM: {agent.logs()[-1000:]}")
        return took
    finally:
        agent.remove()
        shutil.rmtree(data, ignore_errors=True)


def main(quick: bool) -> int:
    ok, why = podman_helper.available()
    if not ok:
        skipped(f"no container engine could be set up: {why}")
        return 0
    starts = 3 if quick else 10
    with podman_helper.PodmanService() as podman:
        # the socket's group may connect (the agent runs as uid 10001)
        os.chmod(podman.socket, 0o660)
        built, cached = image.build_or_load(podman)
        params = {"cached": cached, "base": "local bookworm (debootstrap minbase)"}
        if not cached:
            emit("build_s", round(built.seconds + built.context_seconds, 1), "s", None, None,
                 **params)
        emit("image_size_mb", round(built.size_mb, 1), "MB", TARGETS["image_size_mb"],
             built.size_mb <= TARGETS["image_size_mb"], **params)
        times = [one_start(podman, built.tag) for _ in range(starts)]
        p50 = statistics.median(times)
        emit("start_to_healthz_s", round(p50, 3), "s", TARGETS["start_to_healthz_s"],
             p50 <= TARGETS["start_to_healthz_s"], starts=starts,
             samples=[round(t, 3) for t in times], sandbox="container", network="host")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three starts (a smoke run)")
    sys.exit(main(parser.parse_args().quick))
