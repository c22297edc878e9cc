"""One live writer per data directory (bzzz/datalease.py): the decision core with a fake
clock, the lease object across simulated machines, and real `bzzz run` processes."""

import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from bzzz import datalease as dl
from bzzz.datalease import DataLease, Decision, Holder, LeaseError, Observation, Verdict, decide
from bzzz.hyperlog.store import verify_dir
from bzzz.testing.wait import wait_for

from .helpers import free_port

EXPIRY = 15.0


def holder(**kw):
    base = dict(node_id="other", peer_id="12D3KooWother", pid=4242, host="h2", started=900.0,
                heartbeat=1000.0, token="t-other", boot_id="boot-2", pidns=7)
    base.update(kw)
    return Holder(**base)


def obs(h, now=1001.0, file_age=1.0, boot_id="boot-1", pidns=7, alive=None, exists=True):
    return Observation(h, exists, now, file_age, boot_id, pidns, alive)


def verdict(o, node_id="me", token="t-me"):
    return decide(o, node_id=node_id, token=token, expiry=EXPIRY).verdict


# ---------------------------------------------------------------- the pure core


def test_no_lease_or_our_own_is_free():
    assert verdict(obs(None, exists=False)) is Verdict.FREE
    assert verdict(obs(holder(token="t-me"))) is Verdict.FREE


def test_a_fresh_lease_of_another_node_refuses_until_it_expires():
    h = holder()
    for now in (1000.0, 1005.0, 1014.9):
        assert verdict(obs(h, now=now, file_age=now - 1000.0)) is Verdict.REFUSE
    d = decide(obs(h, now=1015.5, file_age=15.5), node_id="me", token="t-me", expiry=EXPIRY)
    assert d.verdict is Verdict.STALE and "no heartbeat for 16 s" in d.why


def test_clock_skew_cannot_make_a_live_lease_look_stale():
    # the holder's clock is 100 s behind ours, but the file server saw it written 1 s ago
    assert verdict(obs(holder(heartbeat=900.0), now=1000.0, file_age=1.0)) is Verdict.REFUSE
    # and a holder whose clock runs ahead is judged by the file's age as well: fresh wins
    assert verdict(obs(holder(heartbeat=1100.0), now=1000.0, file_age=20.0)) is Verdict.REFUSE
    # stale only when both clocks agree
    assert verdict(obs(holder(heartbeat=900.0), now=1000.0, file_age=20.0)) is Verdict.STALE


def test_the_pid_is_trusted_only_on_the_same_machine():
    same = holder(boot_id="boot-1", pidns=7)
    assert verdict(obs(same, alive=False)) is Verdict.STALE
    assert verdict(obs(same, alive=True)) is Verdict.REFUSE
    # same boot but another pid namespace (another container): the pid says nothing
    other_ns = holder(boot_id="boot-1", pidns=8)
    assert verdict(obs(other_ns, alive=False)) is Verdict.REFUSE
    assert verdict(obs(holder(boot_id=""), boot_id="", alive=False)) is Verdict.REFUSE


def test_our_node_id_unverifiable_is_watched_but_a_live_twin_here_refuses():
    assert verdict(obs(holder(node_id="me"))) is Verdict.WATCH
    assert verdict(obs(holder(node_id="me", boot_id="boot-1"), alive=True)) is Verdict.REFUSE


def test_an_unreadable_lease_is_taken_over_only_when_old():
    assert verdict(obs(None, file_age=1.0)) is Verdict.REFUSE
    assert verdict(obs(None, file_age=None)) is Verdict.CORRUPT
    assert verdict(obs(None, file_age=60.0)) is Verdict.CORRUPT


def test_parse_rejects_what_is_not_a_lease():
    good = holder().to_json()
    assert Holder.parse(good) == holder()
    for raw in (b"", b"{", b"[]", b'{"node_id": 1}', b"x" * 5000,
                json.dumps({**json.loads(good), "pid": "nope"}).encode()):
        assert Holder.parse(raw) is None


def test_the_refusal_is_one_line_naming_the_holder_and_the_way_out(tmp_path):
    h = holder(node_id="worker-2", host="node-b")
    text = dl.refusal(tmp_path, h, Decision(Verdict.REFUSE, "heartbeat 1.0 s ago"), EXPIRY)
    assert "\n" not in text
    assert "'worker-2'" in text and "node-b" in text and "pid 4242" in text
    assert "own data_dir" in text and "15 s" in text and str(tmp_path / "lease.json") in text


# ---------------------------------------------------------------- the lease object


class FakeClock:
    def __init__(self, t=1_000_000.0):
        self.t = t
        self.hook = None

    def __call__(self):
        return self.t

    def sleep(self, seconds):
        self.t += seconds
        if self.hook:
            self.hook()


def remote(tmp_path, clock, node_id, boot):
    """A lease as a writer on another machine would hold it: its own boot id, no flock (NFS
    gives none across machines)."""
    lease = DataLease(tmp_path, node_id, f"peer-{node_id}", expiry=EXPIRY, clock=clock,
                      sleep=clock.sleep)
    lease.boot_id = boot
    lease._take_flock = lambda: None
    return lease


def age_file(path, seconds):
    old = time.time() - seconds
    os.utime(path, (old, old))


def test_a_second_machine_is_refused_then_takes_over_once_the_first_goes_quiet(tmp_path):
    clock = FakeClock()
    a = remote(tmp_path, clock, "a", "boot-a")
    assert a.acquire().verdict is Verdict.FREE
    b = remote(tmp_path, clock, "b", "boot-b")
    with pytest.raises(LeaseError, match="in use by node 'a'"):
        b.acquire()
    clock.t += 10
    a.beat()
    clock.t += 10  # 10 s after a's last heartbeat: still fresh
    with pytest.raises(LeaseError):
        b.acquire()
    clock.t += 6  # 16 s: a is quiet; the file server agrees
    age_file(a.path, 16)
    d = b.acquire()
    assert d.verdict is Verdict.STALE
    assert Holder.parse(a.path.read_bytes()).node_id == "b"
    # a wakes up (a frozen process, a partitioned NFS client): its next heartbeat stops it
    with pytest.raises(LeaseError, match="taken over by node 'b'"):
        a.beat()
    assert not a.held
    b.release()
    assert not a.path.exists()


def test_release_leaves_a_lease_that_is_no_longer_ours(tmp_path):
    clock = FakeClock()
    a = remote(tmp_path, clock, "a", "boot-a")
    a.acquire()
    clock.t += 20
    age_file(a.path, 20)
    b = remote(tmp_path, clock, "b", "boot-b")
    b.acquire()
    a.release()
    assert Holder.parse(a.path.read_bytes()).node_id == "b"


def test_two_writers_deciding_at_once_only_one_goes_on(tmp_path):
    clock = FakeClock()
    a = remote(tmp_path, clock, "a", "boot-a")
    b = remote(tmp_path, clock, "b", "boot-b")
    # a's settle pause: b, which read the directory as free too, writes its lease meanwhile
    a.settle = b.settle = 0.5
    clock.hook = lambda: (setattr(clock, "hook", None), b._write(b._me()))
    with pytest.raises(LeaseError, match="at the same moment"):
        a.acquire()
    assert not a.held
    assert Holder.parse(a.path.read_bytes()).node_id == "b"


def test_our_node_id_restarted_elsewhere_waits_for_a_quiet_predecessor(tmp_path):
    clock = FakeClock()
    old = remote(tmp_path, clock, "n1", "boot-x")
    old.acquire()
    new = remote(tmp_path, clock, "n1", "boot-y")
    start = clock.t
    d = new.acquire()  # the predecessor never beats again: taken over after about expiry
    assert d.verdict is Verdict.STALE
    assert EXPIRY <= clock.t - start <= EXPIRY + old.heartbeat + 1


def test_our_node_id_with_a_moving_heartbeat_is_a_live_twin(tmp_path):
    clock = FakeClock()
    old = remote(tmp_path, clock, "n1", "boot-x")
    old.acquire()
    twin = remote(tmp_path, clock, "n1", "boot-y")
    clock.hook = old.beat
    with pytest.raises(LeaseError, match="heartbeat is moving"):
        twin.acquire()
    assert Holder.parse(old.path.read_bytes()).token == old.token


def test_flock_refuses_a_second_holder_on_this_machine(tmp_path):
    a = DataLease(tmp_path, "a", "peer-a", expiry=EXPIRY)
    a.acquire()
    assert a.flock == "held" and a.settle == 0.0  # local file system: the lock suffices
    b = DataLease(tmp_path, "b", "peer-b", expiry=EXPIRY)
    with pytest.raises(LeaseError, match="in use by node 'a'.*lock on this machine"):
        b.acquire()
    a.release()
    assert not (tmp_path / "lease.json").exists()
    b.acquire()
    assert b.held
    b.release()


def test_a_dead_pid_on_this_machine_is_taken_over_at_once(tmp_path):
    gone = subprocess.Popen(["true"])
    gone.wait()
    a = DataLease(tmp_path, "a", "peer-a", expiry=EXPIRY)
    a._write(Holder("a", "peer-a", gone.pid, a.host, time.time(), time.time(), "t-old",
                    a.boot_id, a.pidns))
    b = DataLease(tmp_path, "b", "peer-b", expiry=EXPIRY)
    d = b.acquire()
    assert d.verdict is Verdict.STALE and f"pid {gone.pid}" in d.why
    b.release()


# ---------------------------------------------------------------- real processes


def start(tmp_path, name, data_dir, **env):
    api = free_port()
    e = {k: v for k, v in os.environ.items() if not k.startswith("BZZZ_")}
    e.update({"BZZZ_NODE_ID": name, "BZZZ_DATA_DIR": str(data_dir),
              "BZZZ_LISTEN": "/ip4/127.0.0.1/tcp/0", "BZZZ_API_LISTEN": f"127.0.0.1:{api}",
              "BZZZ_MDNS": "off", "BZZZ_DETECT_CAPABILITIES": "off",
              "BZZZ_DATA_LEASE_EXPIRY": "3", **env})
    out = open(tmp_path / f"{name}.out", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "bzzz", "run"], env=e, stdout=out,
                            stderr=subprocess.PIPE, text=True)
    return proc, f"http://127.0.0.1:{api}"


def healthy(proc, url):
    assert proc.poll() is None, proc.stderr.read()
    try:
        return httpx.get(url + "/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def lease_doc(data):
    return json.loads((data / "lease.json").read_text())


def test_two_agents_on_one_data_directory_the_second_refuses(tmp_path):
    data = tmp_path / "shared"
    a, url_a = start(tmp_path, "a", data)
    try:
        wait_for(lambda: healthy(a, url_a), 30, what="a is up")
        first = lease_doc(data)
        assert first["node_id"] == "a" and first["pid"] == a.pid
        b, _ = start(tmp_path, "b", data)
        assert b.wait(30) == 2
        err = b.stderr.read().strip()
        assert len(err.splitlines()) == 1, err
        assert "is in use by node 'a'" in err and f"pid {a.pid}" in err
        assert "own data_dir" in err
        # a keeps running, and keeps its lease fresh
        wait_for(lambda: lease_doc(data)["heartbeat"] > first["heartbeat"], 10,
                 what="a heartbeats after b's refusal")
        assert healthy(a, url_a) and lease_doc(data)["node_id"] == "a"
    finally:
        a.send_signal(signal.SIGTERM)
        assert a.wait(20) == 0
    # a clean shutdown releases the lease; the log is whole
    assert not (data / "lease.json").exists()
    assert verify_dir(data / "log").ok


def test_a_fresh_lease_from_another_machine_refuses_and_a_stale_one_is_taken_over(tmp_path):
    data = tmp_path / "nfs"
    data.mkdir()
    now = time.time()
    other = Holder("elsewhere", "12D3KooWelse", 99999, "node-b", now - 60, now, "t-b",
                   "another-boot", 1)
    (data / "lease.json").write_bytes(other.to_json())
    # a long expiry: however slow the start, the other machine's lease is still fresh
    a, _ = start(tmp_path, "a", data, BZZZ_DATA_LEASE_EXPIRY="600")
    assert a.wait(60) == 2
    err = a.stderr.read()
    assert "in use by node 'elsewhere'" in err and "node-b" in err
    # the other machine went quiet long ago (by its clock and by the file's)
    (data / "lease.json").write_bytes(
        Holder("elsewhere", "12D3KooWelse", 99999, "node-b", now - 60, now - 30, "t-b",
               "another-boot", 1).to_json())
    age_file(data / "lease.json", 30)
    a, url = start(tmp_path, "a", data)
    try:
        wait_for(lambda: healthy(a, url), 30, what="a takes the stale lease over")
        assert lease_doc(data)["node_id"] == "a"
    finally:
        a.send_signal(signal.SIGTERM)
        assert a.wait(20) == 0
    text = a.stderr.read()
    assert "taking over a stale data-directory lease" in text and "elsewhere" in text


def test_after_kill_9_the_same_machine_starts_again_at_once(tmp_path):
    data = tmp_path / "d"
    a, url = start(tmp_path, "a", data, BZZZ_DATA_LEASE_EXPIRY="600")
    wait_for(lambda: healthy(a, url), 30, what="a is up")
    a.kill()
    a.wait(10)
    assert lease_doc(data)["pid"] == a.pid  # left behind, fresh (600 s expiry)
    b, url_b = start(tmp_path, "a", data, BZZZ_DATA_LEASE_EXPIRY="600")
    try:
        wait_for(lambda: healthy(b, url_b), 30, what="the restart takes over the dead pid's lease")
        assert lease_doc(data)["pid"] == b.pid
    finally:
        b.send_signal(signal.SIGTERM)
        assert b.wait(20) == 0
    assert "is not running on this machine" in b.stderr.read()


def test_a_running_agent_whose_lease_is_taken_stops_instead_of_writing_beside_another(tmp_path):
    data = tmp_path / "d"
    a, url = start(tmp_path, "a", data)  # expiry 3 s: a heartbeat every second
    try:
        wait_for(lambda: healthy(a, url), 30, what="a is up")
        now = time.time()
        # another machine took the directory over (a was frozen past the expiry, say)
        (data / "lease.json").write_bytes(Holder("usurper", "12D3KooWu", 777, "node-z", now,
                                                 now, "t-z", "boot-z", 1).to_json())
        code = a.wait(20)
    finally:
        if a.poll() is None:
            a.kill()
    assert code != 0
    err = a.stderr.read()
    assert "our lease was taken over by node 'usurper'" in err
    assert "Traceback" not in err  # one line, not a stack
    assert code == 2
    # it left the other writer's lease alone
    assert lease_doc(data)["node_id"] == "usurper"


def test_a_start_that_fails_after_taking_the_lease_gives_it_back(tmp_path):
    data = tmp_path / "d"
    a, _ = start(tmp_path, "a", data, BZZZ_API_TOKEN_FILE=str(tmp_path / "missing"))
    assert a.wait(60) == 2
    assert "api_token_file" in a.stderr.read()
    assert not (data / "lease.json").exists()


def test_the_monitor_refuses_a_data_directory_an_agent_holds(tmp_path):
    from bzzz.testing.agents import start_monitor
    a, url = start(tmp_path, "a", tmp_path / "mon")
    try:
        wait_for(lambda: healthy(a, url), 30, what="a is up")
        m = start_monitor(tmp_path, "http://127.0.0.1:9", "t-none", "", name="mon")
        assert m.proc.wait(60) == 2
        text = m.log.read_text()
        assert "is in use by node 'a'" in text
        assert healthy(a, url)
    finally:
        a.send_signal(signal.SIGTERM)
        assert a.wait(20) == 0
