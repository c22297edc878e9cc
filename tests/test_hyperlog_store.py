"""hyperlog storage: durability, torn tails, corruption, readers, the CLI, Hypercore's code."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bzzz.decisions import HyperlogDecisionLog
from bzzz.hyperlog.entries import BlobStore, decode, encode
from bzzz.hyperlog.store import Hyperlog, LogCorrupt, LogError, export, read_entries, verify_dir

from .conftest import require

SEED = bytes(range(32))
JS_DIR = Path(__file__).parent / "js"


def make(path, batches):
    log = Hyperlog.create(path, SEED)
    for batch in batches:
        log.append(batch)
    return log


def test_reopen_with_and_without_the_caches(tmp_path):
    log = make(tmp_path, [[b"a"], [b"b", b"c"], [bytes([i]) * i for i in range(100)]])
    head = log.head
    log.close()
    for drop in ([], ["checkpoint"], ["tree", "index", "checkpoint"], ["tree"]):
        for name in drop:
            (tmp_path / name).unlink(missing_ok=True)
        with Hyperlog.open(tmp_path) as again:
            assert again.length == 103 and again.head == head
            assert again.get(1) == b"b" and again.get(102) == bytes([99]) * 99


def test_a_torn_last_write_is_dropped_at_every_cut(tmp_path):
    log = make(tmp_path / "src", [[b"first"], [b"second", b"third"]])
    acknowledged = (tmp_path / "src" / "log").stat().st_size
    log.append([b"x" * 50, b"y" * 50])  # the write we tear
    full = (tmp_path / "src" / "log").read_bytes()
    log.close()
    for cut in range(acknowledged, len(full)):
        d = tmp_path / f"cut{cut}"
        shutil.copytree(tmp_path / "src", d)
        (d / "checkpoint").unlink()
        with open(d / "log", "r+b") as fh:
            fh.truncate(cut)
        with Hyperlog.open(d, SEED, writable=True) as again:
            assert again.length == 3 and again.get(2) == b"third"
            assert again.recovered_bytes == cut - acknowledged
            again.append([b"after"])  # and it goes on from there
        assert verify_dir(d).ok
        shutil.rmtree(d)


def test_damage_in_the_middle_is_named_and_never_served(tmp_path):
    log = make(tmp_path, [[f"block {i}".encode()] for i in range(20)])
    pos = log.offsets[7] + 6  # inside block 7's payload
    log.close()
    with open(tmp_path / "log", "r+b") as fh:
        fh.seek(pos)
        fh.write(b"X")
    report = verify_dir(tmp_path)
    assert not report.ok and report.first_bad == 7 and "block 7" in report.error
    # with the caches, opening is quick and trusts them; the damaged block is still refused
    with Hyperlog.open(tmp_path) as again:
        assert again.get(6) == b"block 6"
        with pytest.raises(LogCorrupt, match="block 7"):
            again.get(7)
    # without them the scan meets the damage: valid data follows, so it is not a torn
    # tail, and nothing is truncated
    (tmp_path / "checkpoint").unlink()
    size = (tmp_path / "log").stat().st_size
    with pytest.raises(LogCorrupt, match="block 7"):
        Hyperlog.open(tmp_path, SEED, writable=True)
    assert (tmp_path / "log").stat().st_size == size


@given(st.data())
@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_flipped_byte_is_caught(tmp_path, data):
    d = tmp_path / f"l{data.draw(st.integers(0, 10**9))}"
    log = make(d, [[b"alpha", b"beta"], [b"gamma"], [b"delta" * 20]])
    log.close()
    raw = bytearray((d / "log").read_bytes())
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] ^= data.draw(st.integers(1, 255))
    (d / "log").write_bytes(bytes(raw))
    assert not verify_dir(d).ok
    shutil.rmtree(d)


def test_a_head_signed_by_another_key_is_refused(tmp_path):
    make(tmp_path / "a", [[b"x"]]).close()
    other = Hyperlog.create(tmp_path / "b", bytes(32))
    other.append([b"x"])
    other.close()
    a = (tmp_path / "a" / "log").read_bytes()
    b = (tmp_path / "b" / "log").read_bytes()
    # a's header and block with b's head (same tree, wrong signer)
    head_len = 5 + 112 + 4 + 4
    (tmp_path / "a" / "log").write_bytes(a[:-head_len] + b[-head_len:])
    report = verify_dir(tmp_path / "a")
    assert not report.ok and report.first_bad == 0


def test_readers_change_nothing_and_there_is_one_writer(tmp_path):
    log = make(tmp_path, [[b"a"]])
    with open(tmp_path / "log", "ab") as fh:
        fh.write(b"\x05\x00\x00\x00\x01tor")  # a write in progress, as a reader may see it
    before = (tmp_path / "log").read_bytes()
    with Hyperlog.open(tmp_path) as reader:
        assert reader.length == 1 and not reader.writable
        with pytest.raises(LogError, match="read-only"):
            reader.append([b"b"])
    assert (tmp_path / "log").read_bytes() == before
    with pytest.raises(LogError, match="open for writing elsewhere"):
        Hyperlog.open(tmp_path, SEED, writable=True)
    log.close()
    with pytest.raises(LogError, match="another key"):
        Hyperlog.open(tmp_path, bytes(32), writable=True)


CHILD = """
import sys
from bzzz.hyperlog.store import Hyperlog
log = Hyperlog.create(sys.argv[1], bytes(range(32)))
n = log.length
while True:
    k = 1 + n % 7
    log.append([b"%d" % (n + j) for j in range(k)])
    n += k
    sys.stdout.write(f"{n}\\n")
    sys.stdout.flush()
"""


def test_kill_9_at_random_moments_never_loses_an_acknowledged_entry(tmp_path):
    rng = random.Random(7)
    d = tmp_path / "log"
    acknowledged = 0
    for _ in range(50):
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(d)], stdout=subprocess.PIPE)
        line = proc.stdout.readline()  # it is appending
        assert line, "the child died"
        trio.run(trio.sleep, rng.random() * 0.05)  # let it run a random while (not a wait)
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        lines = (line + out).split()
        acknowledged = max(acknowledged, int(lines[-1])) if lines else acknowledged
        with Hyperlog.open(d) as log:
            assert log.length >= acknowledged
            n = log.length
            assert [int(log.get(i)) for i in range(n - 5, n)] == list(range(n - 5, n))
    assert verify_dir(d).ok


def test_cli_append_show_verify_export(tmp_path):
    d = tmp_path / "cli"
    def bzzz(*args, stdin=None):
        return subprocess.run([sys.executable, "-m", "bzzz", "log", *args], input=stdin,
                              capture_output=True, timeout=60)
    r = bzzz("append", str(d), stdin=b"one\ntwo\n\nthree\n")
    assert r.returncode == 0 and r.stdout.strip() == b"4"
    assert oct((d / "secret").stat().st_mode & 0o777) == "0o600"
    r = bzzz("append", str(d), stdin=b"four\n")
    assert r.stdout.strip() == b"5"
    r = bzzz("show", str(d))
    assert r.returncode == 0 and b"three" in r.stdout and b"length     5" in r.stdout
    shown = json.loads(bzzz("show", str(d), "--json").stdout)
    assert shown["length"] == 5 and shown["blocks"][1] == {"index": 1, "hex": b"two".hex()}
    r = bzzz("verify", str(d))
    assert r.returncode == 0 and b"5 blocks verified" in r.stdout
    exported = json.loads(bzzz("export", str(d), "--json").stdout)
    assert exported["length"] == 5 and exported["blocks"][2] == ""
    assert set(exported) == {"public_key", "key", "length", "fork", "tree_hash", "signature",
                             "blocks"}
    raw = bytearray((d / "log").read_bytes())
    raw[-200] ^= 1
    (d / "log").write_bytes(bytes(raw))
    r = bzzz("verify", str(d))
    assert r.returncode == 1 and b"block" in r.stderr
    r = bzzz("show", str(tmp_path / "nothing"))
    assert r.returncode == 1 and b"no log here" in r.stderr


def test_entries_and_blobs(tmp_path):
    blobs = BlobStore(tmp_path / "blobs")
    big = "x" * 5000
    block = encode({"type": "result", "ts": 1.5, "output": big, "status": "ok"}, blobs)
    entry = decode(block)
    assert entry["output_size"] == 5000 and "output" not in entry
    assert blobs.get(entry["output_blob"]) == big.encode()
    assert decode(b"not msgpack \xc1") is None and decode(encode({"type": "x"})) == {"type": "x"}
    assert blobs.get("../../etc/passwd") is None
    path = tmp_path / "blobs" / entry["output_blob"][:2] / entry["output_blob"]
    path.write_bytes(b"tampered")
    assert blobs.get(entry["output_blob"]) is None


async def test_decisions_are_group_committed(tmp_path):
    decisions = HyperlogDecisionLog(tmp_path / "log", SEED)
    async with trio.open_nursery() as nursery:
        await nursery.start(decisions.run)
        indexes = [decisions.append({"type": "seen", "issue": i}) for i in range(500)]
        assert indexes == list(range(500))
        await decisions.flushed(499)
        assert decisions.log.length == 500 and decisions.batches < 50
        nursery.cancel_scope.cancel()
    decisions.append({"type": "after"})  # without the flusher: written at once
    decisions.close()
    entries = read_entries(tmp_path / "log")
    assert [e.get("issue") for e in entries[:500]] == list(range(500))
    assert entries[-1]["type"] == "after"


def _node():
    node = shutil.which("node")
    require(node is not None, "Node.js is not installed")
    require((JS_DIR / "node_modules" / "hypercore").is_dir(),
            "npm packages missing: run `make js-deps`")
    return node


def _js(node, *args, stdin):
    r = subprocess.run([node, str(JS_DIR / "hypercore.mjs"), *args], input=stdin,
                       capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    return json.loads(r.stdout)


CASES = {"1": [b"a"], "2": [b"a", b"b"], "3": [b"a", b"b", b"c"],
         "7": [b"%d" % i for i in range(7)], "8": [b"%d" % i for i in range(8)],
         "1000": [os.urandom(100) for _ in range(1000)], "empty": [b"", b"", b"x", b""],
         "1MiB": [os.urandom(1 << 20), os.urandom(1 << 20), b"tail"]}


@pytest.mark.js
@pytest.mark.parametrize("case", list(CASES))
def test_hypercore_verifies_our_logs_and_writes_the_same_bytes(tmp_path, case):
    node = _node()
    blocks = CASES[case]
    log = Hyperlog.create(tmp_path, SEED)
    # in several batches, as an agent writes them
    for i in range(0, len(blocks), 3):
        log.append(blocks[i:i + 3])
    exported = export(log)
    log.close()
    checked = _js(node, "verify", stdin=json.dumps(exported).encode())
    assert checked == {"key_ok": True, "tree_ok": True, "signature_ok": True, "length_ok": True}
    theirs = _js(node, "write", SEED.hex(), stdin=json.dumps([b.hex() for b in blocks]).encode())
    assert theirs["key"] == exported["key"] and theirs["length"] == len(blocks)
    assert theirs["tree_hash"] == exported["tree_hash"]
    assert theirs["signature"] == exported["signature"]
