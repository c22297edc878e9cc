"""A lab of network namespaces for tests and benchmarks: switches, hosts, routers, agents.

Everything is created inside namespaces this lab makes (a switch is a namespace holding a
bridge), so nothing touches the machine's own network, and everything is removed on close.
Traffic goes only to the lab's own addresses. Needs root and ``ip`` (iproute2).

The test process reaches an agent's API inside a namespace without helper processes: a
short-lived thread ``setns``es into the namespace and opens the socket there (a network
namespace is per thread on Linux).
"""

from __future__ import annotations

import ctypes
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

# re-exported: benches wait through netns
from .wait import WaitTimeout as WaitTimeout, wait_for as wait_for

T = TypeVar("T")

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def available() -> tuple[bool, str]:
    """Whether this machine can run the lab (root, iproute2, namespaces)."""
    if os.geteuid() != 0:
        return False, "needs root"
    if shutil.which("ip") is None:
        return False, "needs iproute2 (ip)"
    name = f"bzprobe{os.getpid()}"
    probe = subprocess.run(["ip", "netns", "add", name], capture_output=True)
    if probe.returncode != 0:
        return False, "cannot create network namespaces: " + probe.stderr.decode().strip()
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return True, ""


def ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")


def in_netns(ns: str, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` in a thread that has joined namespace ``ns``; return its result."""
    results: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns failed")
            finally:
                os.close(fd)
            results.append(fn(*args))
        except BaseException as exc:  # re-raised in the caller
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return results[0]


def _http_get(host: str, port: int, path: str, timeout: float) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def http_get(ns: str, host: str, port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    return in_netns(ns, _http_get, host, port, path, timeout)


@dataclass
class Host:
    ns: str
    ip: str
    lab: "Lab"


@dataclass
class Agent:
    """A ``bzzz run`` process inside a host's namespace."""

    name: str
    host: Host
    data_dir: Path
    api_port: int
    p2p_port: int
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    peer_id: str = ""

    @property
    def api_token(self) -> str:
        """The bearer token of this agent's acting endpoints (its API is beyond loopback)."""
        return f"lab-api-token-{self.name}"

    def start(self) -> "Agent":
        env = {k: v for k, v in os.environ.items() if not k.startswith("BZZZ_")}
        self.data_dir.mkdir(parents=True, exist_ok=True)
        token_file = self.data_dir.parent / f"{self.name}.api-token"
        token_file.write_text(self.api_token + "\n")
        env.update({
            "BZZZ_API_TOKEN_FILE": str(token_file),
            "BZZZ_NODE_ID": self.name,
            "BZZZ_DATA_DIR": str(self.data_dir),
            "BZZZ_LISTEN": f"/ip4/0.0.0.0/tcp/{self.p2p_port}",
            "BZZZ_API_LISTEN": f"{self.host.ip}:{self.api_port}",
            "BZZZ_LOG_LEVEL": "debug" if os.environ.get("BZZZ_TEST_DEBUG") else "info",
        })
        env.update(self.env)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.host.ns, sys.executable, "-m", "bzzz", "run"],
            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        return self

    def get(self, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
        return http_get(self.host.ns, self.host.ip, self.api_port, path, timeout)

    def probe(self, needs: list[str], wait: float, timeout: float = 30.0) -> dict[str, Any]:
        """``POST /api/v1/help/probe`` with this agent's API token, from inside its namespace."""
        import httpx

        def call() -> dict[str, Any]:
            answer: dict[str, Any] = httpx.post(
                f"http://{self.host.ip}:{self.api_port}/api/v1/help/probe",
                json={"needs": needs, "wait": wait}, timeout=timeout,
                headers={"Authorization": f"Bearer {self.api_token}"}).json()
            return answer
        return in_netns(self.host.ns, call)

    def status(self) -> dict[str, Any]:
        code, body = self.get("/api/v1/status")
        if code != 200:
            raise RuntimeError(f"status answered {code}")
        status: dict[str, Any] = json.loads(body)
        return status

    def healthy(self) -> bool:
        try:
            return self.get("/healthz", 0.5)[0] == 200
        except OSError:
            return False

    def wait_healthy(self, timeout: float = 20.0) -> "Agent":
        def check() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n"
                                     + self.log_tail())
            return self.healthy()

        wait_for(check, timeout, what=f"{self.name} /healthz")
        self.peer_id = self.status()["peer_id"]
        return self

    def peer_ids(self) -> set[str]:
        return {p["peer_id"] for p in self.status()["peers"]}

    def send_signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # `ip netns exec` execs the command, so the pid is the agent's own.
            os.kill(self.proc.pid, sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        if self.proc is None:
            return None
        self.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def stop_all(agents: list[Agent], timeout: float = 10.0) -> None:
    """SIGTERM to every agent at once, then wait for each (killed after ``timeout``): one
    signal each, as a second SIGTERM would cut a leaving agent short."""
    for agent in agents:
        agent.send_signal(signal.SIGTERM)
    for agent in agents:
        if agent.proc is None:
            continue
        try:
            agent.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            agent.proc.kill()
            agent.proc.wait()


@dataclass
class Lab:
    """Owns namespaces and agent processes; ``close()`` (or the context manager) removes all."""

    prefix: str = field(default_factory=lambda: "bz" + uuid.uuid4().hex[:6])
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bzzz-lab-")))
    namespaces: list[str] = field(default_factory=list)
    agents: list[Agent] = field(default_factory=list)
    _links: int = 0

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ns(self, name: str) -> str:
        ns = f"{self.prefix}-{name}"
        ip("netns", "add", ns)
        self.namespaces.append(ns)
        ip("-n", ns, "link", "set", "lo", "up")
        return ns

    def switch(self, name: str) -> str:
        ns = self._ns(name)
        ip("-n", ns, "link", "add", "br0", "type", "bridge")
        ip("-n", ns, "link", "set", "br0", "up")
        return ns

    def _link(self, ns: str, switch: str, cidr: str) -> str:
        self._links += 1
        inner, outer = f"e{self._links}", f"p{self._links}"
        ip("link", "add", inner, "netns", ns, "type", "veth", "peer", "name", outer,
           "netns", switch)
        ip("-n", switch, "link", "set", outer, "master", "br0", "up")
        ip("-n", ns, "addr", "add", cidr, "dev", inner)
        ip("-n", ns, "link", "set", inner, "up")
        return inner

    def host(self, name: str, switch: str, cidr: str, gateway: str | None = None) -> Host:
        ns = self._ns(name)
        self._link(ns, switch, cidr)
        if gateway:
            ip("-n", ns, "route", "add", "default", "via", gateway)
        return Host(ns, cidr.split("/")[0], self)

    def router(self, name: str, legs: list[tuple[str, str]]) -> str:
        """A namespace forwarding unicast between switches (multicast is not routed)."""
        ns = self._ns(name)
        for switch, cidr in legs:
            self._link(ns, switch, cidr)
        subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"],
                       check=True)
        return ns

    def agent(self, name: str, host: Host, *, api_port: int = 8090, p2p_port: int = 4001,
              env: dict[str, str] | None = None, data_dir: Path | None = None) -> Agent:
        data = data_dir or self.workdir / name
        data.mkdir(parents=True, exist_ok=True)
        agent = Agent(name, host, data, api_port, p2p_port, dict(env or {}),
                      self.workdir / f"{name}.log")
        self.agents.append(agent)
        return agent

    def close(self) -> None:
        for agent in self.agents:
            if agent.proc is not None and agent.proc.poll() is None:
                agent.proc.kill()
                try:
                    agent.proc.wait(5)
                except subprocess.TimeoutExpired:
                    pass
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.namespaces.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)
