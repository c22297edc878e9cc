"""`bzzz run` processes on loopback against a devhub, for tests and benches."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..identity import load_or_create


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Stoppable:
    """A process of ours that stops when asked, and is killed when it does not."""

    proc: subprocess.Popen[bytes]

    def stop(self, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)


def stop_all(procs: Iterable[_Stoppable], timeout: float = 20) -> None:
    """Stop processes together: each is asked at once, then each is waited for (killed
    when it does not stop in ``timeout`` seconds). Agents take most of a second to leave."""
    procs = list(procs)
    for p in procs:
        if p.proc.poll() is None:
            p.proc.terminate()  # once: a second SIGTERM would cut a leaving agent short
    for p in procs:
        try:
            p.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            p.proc.kill()
            p.proc.wait(10)


@dataclass
class AgentProc(_Stoppable):
    name: str
    proc: subprocess.Popen[bytes]
    api: str
    data_dir: Path
    log: Path
    addr: str


def start(root: Path, name: str, hub_url: str, token: str, repos: str, *,
          bootstrap: str = "", **env: str) -> AgentProc:
    """One agent with default settings apart from where it listens and what it reads."""
    root.mkdir(parents=True, exist_ok=True)
    data = root / name
    ident = load_or_create(data)
    port, api = free_port(), free_port()
    token_file = root / f"{name}.token"
    token_file.write_text(token + "\n")
    e = {k: v for k, v in os.environ.items() if not k.startswith("BZZZ_")}
    e.update({"BZZZ_NODE_ID": name, "BZZZ_DATA_DIR": str(data),
              "BZZZ_LISTEN": f"/ip4/127.0.0.1/tcp/{port}", "BZZZ_API_LISTEN": f"127.0.0.1:{api}",
              "BZZZ_MDNS": "off", "BZZZ_BOOTSTRAP": bootstrap, "BZZZ_GITHUB__URL": hub_url,
              "BZZZ_GITHUB__REPOS": repos, "GITHUB_TOKEN_FILE": str(token_file),
              "BZZZ_WORKSPACE_DIR": str(root / f"{name}-work"), **env})
    log = root / f"{name}.log"
    proc = subprocess.Popen([sys.executable, "-m", "bzzz", "run"], env=e,
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT)
    addr = f"/ip4/127.0.0.1/tcp/{port}/p2p/{ident.peer_id.to_base58()}"
    return AgentProc(name, proc, f"http://127.0.0.1:{api}", data, log, addr)


@dataclass
class MonitorProc(_Stoppable):
    proc: subprocess.Popen[bytes]
    url: str
    data_dir: Path
    log: Path
    addr: str
    token: str


def start_monitor(root: Path, hub_url: str, token: str, repos: str, *, bootstrap: str = "",
                  name: str = "monitor", **env: str) -> MonitorProc:
    """A `bzzz monitor` process with its form token ``monitor-token``."""
    root.mkdir(parents=True, exist_ok=True)
    data = root / name
    ident = load_or_create(data)
    port, http = free_port(), free_port()
    token_file = root / f"{name}.token"
    token_file.write_text(token + "\n")
    form_token = root / f"{name}.form-token"
    form_token.write_text("monitor-token\n")
    e = {k: v for k, v in os.environ.items() if not k.startswith("BZZZ_")}
    e.update({"BZZZ_NODE_ID": name, "BZZZ_DATA_DIR": str(data),
              "BZZZ_LISTEN": f"/ip4/127.0.0.1/tcp/{port}", "BZZZ_MDNS": "off",
              "BZZZ_BOOTSTRAP": bootstrap, "BZZZ_GITHUB__URL": hub_url,
              "BZZZ_GITHUB__REPOS": repos, "GITHUB_TOKEN_FILE": str(token_file),
              "BZZZ_MONITOR__LISTEN": f"127.0.0.1:{http}",
              "BZZZ_MONITOR__TOKEN_FILE": str(form_token), **env})
    log = root / f"{name}.log"
    proc = subprocess.Popen([sys.executable, "-m", "bzzz", "monitor"], env=e,
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT)
    addr = f"/ip4/127.0.0.1/tcp/{port}/p2p/{ident.peer_id.to_base58()}"
    return MonitorProc(proc, f"http://127.0.0.1:{http}", data, log, addr, "monitor-token")
