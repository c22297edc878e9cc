"""``bzzz demo``: a local mesh of agents on this machine, shown finding each other.

Each agent is a real ``bzzz run`` process on loopback with its own data directory, API port
and capabilities. Agents know each other's addresses as bootstrap peers (mDNS on loopback is
not meaningful). The task flow joins the demo with the claim-and-run work.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from .identity import load_or_create

CAPABILITY_SETS = [
    ["shell", "python"],
    ["shell", "docker", "git"],
    ["shell", "ollama:llama3"],
    ["shell", "python", "gpu"],
    ["shell", "node"],
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/status", timeout=1) as r:
            return json.loads(r.read())
    except (OSError, ValueError):
        return None


class _Agent:
    def __init__(self, index: int, root: Path) -> None:
        self.name = f"agent-{index + 1}"
        self.data_dir = root / self.name
        self.peer_id = load_or_create(self.data_dir).peer_id.to_base58()
        self.p2p_port = _free_port()
        self.api_port = _free_port()
        self.capabilities = CAPABILITY_SETS[index % len(CAPABILITY_SETS)]
        self.addr = f"/ip4/127.0.0.1/tcp/{self.p2p_port}/p2p/{self.peer_id}"
        self.log_path = root / f"{self.name}.log"
        self.proc: subprocess.Popen | None = None
        self.seen: set[str] = set()

    def start(self, bootstrap: list[str]) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BZZZ_")}
        env.update({
            "BZZZ_NODE_ID": self.name, "BZZZ_DATA_DIR": str(self.data_dir),
            "BZZZ_LISTEN": f"/ip4/127.0.0.1/tcp/{self.p2p_port}",
            "BZZZ_API_LISTEN": f"127.0.0.1:{self.api_port}", "BZZZ_MDNS": "off",
            "BZZZ_BOOTSTRAP": ",".join(b for b in bootstrap if b != self.addr),
            "BZZZ_CAPABILITIES": ",".join(self.capabilities),
            "BZZZ_DETECT_CAPABILITIES": "off", "BZZZ_LOG_FORMAT": "text",
        })
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "bzzz", "run"], env=env,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def run_demo(agents: int = 3, tasks: int = 12, exit_after: bool = False,
             out=sys.stdout, timeout: float = 60.0) -> int:
    if not 1 <= agents <= 32:
        print("bzzz: --agents must be between 1 and 32", file=sys.stderr)
        return 2
    say = lambda text: print(text, file=out, flush=True)  # noqa: E731
    root = Path(tempfile.mkdtemp(prefix="bzzz-demo-"))
    mesh = [_Agent(i, root) for i in range(agents)]
    names = {a.peer_id: a.name for a in mesh}
    say(f"Bzzz demo: {agents} agents on this machine (data in {root})")
    if tasks and tasks != 12:
        say("  note: sample tasks arrive with the task-claiming work; --tasks has no effect yet")
    t0 = time.monotonic()
    try:
        bootstrap = [a.addr for a in mesh]
        for a in mesh:
            a.start(bootstrap)
            say(f"  started {a.name:9} {a.peer_id[:20]}…  offers {', '.join(a.capabilities)}")
        healthy: set[str] = set()
        while True:
            for a in mesh:
                if a.proc is not None and a.proc.poll() is not None:
                    say(f"  {a.name} exited with status {a.proc.returncode}; its log:")
                    say(a.log_path.read_text(errors="replace")[-2000:])
                    return 1
                status = _status(a.api_port)
                if status is None:
                    continue
                if a.name not in healthy:
                    healthy.add(a.name)
                    say(f"  [{time.monotonic() - t0:5.2f}s] {a.name} is up: "
                        f"http://127.0.0.1:{a.api_port}/api/v1/status")
                for peer in status["peers"]:
                    if peer["peer_id"] not in a.seen:
                        a.seen.add(peer["peer_id"])
                        say(f"  [{time.monotonic() - t0:5.2f}s] {a.name} sees "
                            f"{names.get(peer['peer_id'], peer['node_id'])} "
                            f"({', '.join(peer['capabilities'])})")
            if all(len(a.seen) == agents - 1 for a in mesh) and len(healthy) == agents:
                break
            if time.monotonic() - t0 > timeout:
                say("  the mesh did not form in time; logs are in " + str(root))
                return 1
            time.sleep(0.1)
        say(f"\nMesh formed in {time.monotonic() - t0:.2f} s: every agent sees the other "
            f"{agents - 1}.")
        say(f"  {'agent':10} {'peer id':24} {'peers':>5}  API")
        for a in mesh:
            say(f"  {a.name:10} {a.peer_id[:22]}… {len(a.seen):>5}  "
                f"http://127.0.0.1:{a.api_port}/api/v1/status")
        if exit_after:
            return 0
        say("\nRunning; `bzzz status --api 127.0.0.1:PORT` shows an agent. Ctrl-C stops.")
        while all(a.proc is not None and a.proc.poll() is None for a in mesh):
            time.sleep(0.5)
        return 1
    except KeyboardInterrupt:
        say("\nstopping")
        return 0
    finally:
        codes = [a.stop() for a in mesh]
        if all(c == 0 for c in codes):
            shutil.rmtree(root, ignore_errors=True)
        else:
            say(f"  an agent did not stop cleanly ({codes}); logs kept in {root}")
