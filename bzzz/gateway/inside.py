"""What a sandbox adds to offer a task its gateway (a core: no I/O).

The task's own network namespace has only its loopback. Its route's socket and the forwarder
(bzzz/gateway/forwarder.py) are bound into the sandbox at fixed paths; the forwarder listens
on the sandbox's ``127.0.0.1:3128`` and runs the task; the proxy variables every common client
reads (pip, npm, git, curl, httpx, requests, the model SDKs) point at it.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["FORWARDER", "PROXY", "PROXY_PORT", "SOCKET", "bwrap_args", "proxy_env",
           "wrap_argv"]

SOCKET = "/run/bzzz/gateway.sock"
FORWARDER = "/run/bzzz/forwarder.py"
PROXY_PORT = 3128
PROXY = f"http://127.0.0.1:{PROXY_PORT}"


def proxy_env() -> dict[str, str]:
    """The variables a task's tools read to find the proxy (both spellings: tools differ)."""
    env = {}
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        env[name] = env[name.upper()] = PROXY
    # no no_proxy: nothing but the forwarder listens in the sandbox, so even a loopback
    # address (an operator's local index, allowed as 127.0.0.1:port) goes through the gateway
    env["npm_config_proxy"] = env["npm_config_https_proxy"] = PROXY
    env["BZZZ_GATEWAY"] = PROXY
    return env


def bwrap_args(socket_path: Path, forwarder: Path) -> list[str]:
    """bubblewrap's mounts for the route's socket and the forwarder (read-only)."""
    return ["--bind", str(socket_path), SOCKET, "--ro-bind", str(forwarder), FORWARDER]


def wrap_argv(python: str, argv: list[str]) -> list[str]:
    """The task's command, started by the forwarder once it listens."""
    return [python, FORWARDER, "--port", str(PROXY_PORT), "--socket", SOCKET, "--", *argv]
