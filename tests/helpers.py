"""In-process helpers: agents and raw nodes on loopback, and condition waits."""

import socket
from pathlib import Path
from typing import TypeVar

import trio

from bzzz.agent import Agent
from bzzz.config import Config
from bzzz.identity import load_or_create
from bzzz.p2p.node import P2PNode

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def agent_config(tmp_path, name: str, **overrides) -> Config:
    values = dict(node_id=name, data_dir=tmp_path / name, listen=["/ip4/127.0.0.1/tcp/0"],
                  api_listen=f"127.0.0.1:{free_port()}", mdns=False, detect_capabilities=False,
                  capabilities=["shell", f"cap-{name}"], announce_interval=1.0)
    values.update(overrides)
    return Config(**values)


async def start_agent(nursery, tmp_path, name: str, **overrides) -> Agent:
    agent = Agent(agent_config(tmp_path, name, **overrides))
    await nursery.start(lambda task_status: agent.run(task_status, handle_signals=False))
    return agent


async def start_node(nursery, tmp_path, name: str, **kw) -> P2PNode:
    node = P2PNode(load_or_create(tmp_path / name), ["/ip4/127.0.0.1/tcp/0"], mdns=False, **kw)
    await nursery.start(node.run)
    return node


async def unix_exchange(path: Path, data: bytes, *, until: bytes | None = None) -> bytes:
    """Send ``data`` on a Unix socket and read the answer until the other side closes (or
    the answer ends with ``until``): a task's side of its gateway route, in tests."""
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await sock.connect(str(path))
    stream = trio.SocketStream(sock)
    await stream.send_all(data)
    out = b""
    with trio.fail_after(10):
        while chunk := await stream.receive_some(65536):
            out += chunk
            if until is not None and out.endswith(until):
                break
    await stream.aclose()
    return out


async def read_request_head(stream: trio.abc.ReceiveStream) -> bytes | None:
    """What a test's HTTP server reads first: bytes up to and past the blank line after the
    head (None: the client closed before it)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = await stream.receive_some(65536)
        if not chunk:
            return None
        buf += chunk
    return buf
