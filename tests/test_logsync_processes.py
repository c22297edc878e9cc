"""Log replication between real agent processes over libp2p (loopback)."""

import os
import signal
import subprocess
import sys

import httpx

from bzzz.hyperlog.store import Hyperlog, export, verify_dir
from bzzz.identity import load_or_create
from bzzz.testing.wait import wait_for

from .helpers import free_port

BLOCKS = 120_000


def agent(tmp_path, name, port, api, bootstrap=""):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BZZZ_")}
    env.update({"BZZZ_NODE_ID": name, "BZZZ_DATA_DIR": str(tmp_path / name),
                "BZZZ_LISTEN": f"/ip4/127.0.0.1/tcp/{port}", "BZZZ_API_LISTEN": f"127.0.0.1:{api}",
                "BZZZ_MDNS": "off", "BZZZ_BOOTSTRAP": bootstrap, "BZZZ_ANNOUNCE_INTERVAL": "1"})
    log = open(tmp_path / f"{name}.log", "ab")
    return subprocess.Popen([sys.executable, "-m", "bzzz", "run"], env=env, stdout=log,
                            stderr=subprocess.STDOUT)


def status(api):
    try:
        return httpx.get(f"http://127.0.0.1:{api}/api/v1/status", timeout=5).json()
    except httpx.HTTPError:
        return None


def test_b_follows_a_and_a_reader_gets_as_log_from_b_resuming_after_a_kill(tmp_path):
    ida = load_or_create(tmp_path / "a")
    idb = load_or_create(tmp_path / "b")
    # a's log already holds a long history (written with a's own key, in batches)
    with Hyperlog.create(tmp_path / "a" / "log", ida.seed) as log:
        for start in range(0, BLOCKS, 1000):
            log.append([b"entry %d" % i for i in range(start, start + 1000)])
        key = log.key.hex()
    pa, pb, apia, apib = free_port(), free_port(), free_port(), free_port()
    a = agent(tmp_path, "a", pa, apia)
    b = agent(tmp_path, "b", pb, apib, f"/ip4/127.0.0.1/tcp/{pa}/p2p/{ida.peer_id.to_base58()}")
    try:
        wait_for(lambda: (status(apia) or {}).get("log", {}).get("length") == BLOCKS + 1, 30,
                 what="a is up")
        wait_for(lambda: (status(apib) or {}).get("log", {}).get("replicas", {}).get(key)
                 == BLOCKS + 1, 120, what="b holds a verified copy of a's log")
    finally:
        a.send_signal(signal.SIGTERM)
        assert a.wait(30) == 0
    try:
        # a is gone; a reader fetches a's log from b
        src = f"/ip4/127.0.0.1/tcp/{pb}/p2p/{idb.peer_id.to_base58()}"
        cmd = [sys.executable, "-m", "bzzz", "log", "replicate", "--from", src, "--key", key,
               str(tmp_path / "copy")]
        reader = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

        def sealed():
            try:
                with Hyperlog.open(tmp_path / "copy") as c:
                    return c.length > 0
            except Exception:
                return False
        wait_for(sealed, 60, 0.02, what="the reader stored a first verified part")
        reader.send_signal(signal.SIGKILL)  # a disconnect at the worst moment
        reader.wait(10)
        with Hyperlog.open(tmp_path / "copy") as c:
            kept = c.length
        assert 0 < kept
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert f"{BLOCKS + 1} blocks of log {key} verified" in r.stdout
        assert "blocks" in r.stderr  # the progress bar
    finally:
        b.send_signal(signal.SIGTERM)
        assert b.wait(30) == 0
    assert verify_dir(tmp_path / "copy").ok
    with Hyperlog.open(tmp_path / "copy") as c, Hyperlog.open(tmp_path / "a" / "log") as orig:
        assert export(c)["tree_hash"] == export(orig)["tree_hash"]
        assert c.get(BLOCKS - 1) == b"entry %d" % (BLOCKS - 1)
