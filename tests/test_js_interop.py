"""js-libp2p 3 (npm) against a Bzzz agent: gossip interop and spec-compliant pnet."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import trio

from bzzz.p2p.pnet import format_psk
from bzzz.testing.wait import wait_until

from .conftest import require
from .helpers import start_agent

pytestmark = pytest.mark.js
JS_DIR = Path(__file__).parent / "js"


@pytest.fixture
def node_js():
    node = shutil.which("node")
    require(node is not None, "Node.js is not installed")
    require((JS_DIR / "node_modules" / "libp2p").is_dir(),
            "npm packages missing: run `make js-deps`")
    return node


class JsPeer:
    def __init__(self, node, *args):
        self.cmd = [node, str(JS_DIR / "peer.mjs"), *args]
        self.events: list[dict] = []

    async def run(self, task_status=trio.TASK_STATUS_IGNORED):
        env = dict(os.environ, BZZZ_JS_TIMEOUT_MS="20000")
        proc = await trio.lowlevel.open_process(self.cmd, stdout=subprocess.PIPE, env=env,
                                                cwd=JS_DIR)
        task_status.started(proc)
        try:
            buf = b""
            async for chunk in proc.stdout:
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if line.strip():
                        self.events.append(json.loads(line))
            await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
                with trio.CancelScope(shield=True):
                    await proc.wait()

    def has(self, event: str, **fields):
        return [e for e in self.events if e.get("event") == event
                and all(e.get(k) == v for k, v in fields.items())]


async def test_js_peer_gets_announcements_and_its_messages_reach_the_validator(
        tmp_path, nursery, node_js):
    agent = await start_agent(nursery, tmp_path, "py-agent")
    js = JsPeer(node_js, "interop", agent.node.addrs()[0])
    proc = await nursery.start(js.run)
    try:
        await wait_until(lambda: js.has("connected", remote=agent.peer_id), 15, "js connects")
        await wait_until(lambda: js.has("announcement", node_id="py-agent"), 10,
                         "js receives the agent's announcement")
        ann = js.has("announcement", node_id="py-agent")[0]
        assert {"v", "type", "from", "ts", "node_id", "capabilities", "addrs", "log_key",
                "load"} <= set(ann["fields"])
        assert "cap-py-agent" in ann["capabilities"]
        await wait_until(lambda: js.has("published"), 10, "js publishes")
        js_id = js.has("started")[0]["peer_id"]
        # the valid one is accepted into the peer table, the forged one is counted
        await wait_until(lambda: js_id in agent.mesh.table, 10, "js peer in the table")
        assert agent.mesh.table.get(js_id).announcement.capabilities == ("javascript",)
        await wait_until(lambda: agent.mesh.drops["forged"] == 1, 5, "forged message counted")
    finally:
        proc.kill()


async def _js_dial(node_js, target, key_file=None):
    js = JsPeer(node_js, "dial", target, *([str(key_file)] if key_file else []))
    async with trio.open_nursery() as n:
        await n.start(js.run)
    return js


async def test_pnet_interoperates_with_js(tmp_path, nursery, node_js):
    key, other = tmp_path / "swarm.key", tmp_path / "other.key"
    key.write_text(format_psk(os.urandom(32)))
    other.write_text(format_psk(os.urandom(32)))
    agent = await start_agent(nursery, tmp_path, "private", psk_file=key)
    target = agent.node.addrs()[0]

    same = await _js_dial(node_js, target, key)
    assert same.has("connected", remote=agent.peer_id), same.events

    for label, key_file in (("wrong key", other), ("no key", None)):
        start = trio.current_time()
        js = await _js_dial(node_js, target, key_file)
        assert js.has("dial_failed"), (label, js.events)
        assert trio.current_time() - start < 5.0, label
    stats = agent.node.pnet_stats
    assert stats.rejected_wrong_key >= 1 and stats.rejected_no_pnet >= 1
    assert stats.handshakes >= 1
