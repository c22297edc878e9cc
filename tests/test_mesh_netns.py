"""Real `bzzz run` processes in network namespaces (each agent its own host and address)."""

import os
import signal
import time

import pytest

from bzzz.p2p.pnet import format_psk
from bzzz.testing.wait import wait_for

pytestmark = pytest.mark.netns
QUIET = {"BZZZ_DETECT_CAPABILITIES": "off"}


def _start_all(agents):
    for a in agents:
        a.start()
    for a in agents:
        a.wait_healthy(30)
    return {a.peer_id for a in agents}


def _sees_all(agents, ids):
    return all(a.peer_ids() == ids - {a.peer_id} for a in agents)


def test_five_agents_find_each_other_over_mdns_within_5s(lab):
    sw = lab.switch("sw")
    agents = [lab.agent(f"a{i}", lab.host(f"h{i}", sw, f"10.231.1.{i + 1}/24"),
                        env={**QUIET, "BZZZ_CAPABILITIES": f"shell,cap{i}"}) for i in range(5)]
    ids = _start_all(agents)
    t0 = time.monotonic()
    wait_for(lambda: _sees_all(agents, ids), 5, what="every agent lists the other four")
    print(f"full mesh {time.monotonic() - t0:.2f} s after all were healthy")
    for a in agents:
        peers = {p["node_id"]: p for p in a.status()["peers"]}
        assert set(peers) == {f"a{i}" for i in range(5)} - {a.name}
        for name, p in peers.items():
            assert f"cap{name[1:]}" in p["capabilities"]
            assert p["addrs"] and all("/ip4/10.231.1." in x for x in p["addrs"])


def test_two_subnets_without_multicast_meet_through_one_bootstrap_peer(lab):
    swa, swb = lab.switch("swa"), lab.switch("swb")
    lab.router("r", [(swa, "10.231.1.254/24"), (swb, "10.231.2.254/24")])
    a = [lab.agent(f"a{i}", lab.host(f"ha{i}", swa, f"10.231.1.{i + 1}/24", "10.231.1.254"),
                   env=QUIET) for i in range(3)]
    _start_all(a)
    boot = f"/ip4/10.231.1.1/tcp/4001/p2p/{a[0].peer_id}"
    b = [lab.agent(f"b{i}", lab.host(f"hb{i}", swb, f"10.231.2.{i + 1}/24", "10.231.2.254"),
                   env={**QUIET, "BZZZ_MDNS": "off", "BZZZ_BOOTSTRAP": boot}) for i in range(3)]
    _start_all(b)
    agents = a + b
    ids = {x.peer_id for x in agents}
    wait_for(lambda: _sees_all(agents, ids), 15, what="all six see each other")
    # b1 and b2 only ever heard of a0: they reached a1, a2 and each other across the router
    assert {x.peer_id for x in a[1:]} <= b[2].peer_ids()


def test_kill_restart_and_sigterm(lab):
    sw = lab.switch("sw")
    env = {**QUIET, "BZZZ_ANNOUNCE_INTERVAL": "1"}
    agents = [lab.agent(f"a{i}", lab.host(f"h{i}", sw, f"10.231.1.{i + 1}/24"), env=env)
              for i in range(3)]
    ids = _start_all(agents)
    wait_for(lambda: _sees_all(agents, ids), 5, what="mesh")
    victim, others = agents[2], agents[:2]
    old_id = victim.peer_id

    # kill -9: dropped within 3 announce intervals (+ one check period of slack)
    victim.send_signal(signal.SIGKILL)
    victim.proc.wait(5)
    t0 = time.monotonic()
    wait_for(lambda: all(old_id not in o.peer_ids() for o in others), 4.5,
             what="others drop the killed agent")
    dropped_after = time.monotonic() - t0
    assert dropped_after >= 1.0, "dropped too early: silence was not what removed it"

    # restart from the same data dir: same peer id, seen again within 5 s
    victim.start()
    victim.wait_healthy(30)
    assert victim.peer_id == old_id
    t0 = time.monotonic()
    wait_for(lambda: all(old_id in o.peer_ids() for o in others), 5, what="restarted agent seen")
    wait_for(lambda: victim.peer_ids() == {o.peer_id for o in others}, 5,
             what="restarted agent sees the others")

    # SIGTERM: departure message, exit 0 within 5 s, dropped at once (well before 3 intervals)
    t0 = time.monotonic()
    victim.send_signal(signal.SIGTERM)
    wait_for(lambda: all(old_id not in o.peer_ids() for o in others), 1.0,
             what="others drop the departed agent at once")
    assert victim.proc.wait(5) == 0
    assert time.monotonic() - t0 < 5


def test_sigterm_is_seen_by_every_peer_within_a_second_twenty_times(lab):
    """Four agents found by mDNS, each stopped with SIGTERM in turn and started again, 20
    times: every other agent drops the one leaving within a second every time (its goodbye
    reaches each connected peer before the connections close; silence would take 15 s)."""
    sw = lab.switch("sw")
    agents = [lab.agent(f"a{i}", lab.host(f"h{i}", sw, f"10.231.1.{i + 1}/24"), env=QUIET)
              for i in range(4)]
    ids = _start_all(agents)
    wait_for(lambda: _sees_all(agents, ids), 10, what="mesh")
    took = []
    for round_ in range(20):
        victim = agents[round_ % 4]
        others = [a for a in agents if a is not victim]
        t0 = time.monotonic()
        victim.send_signal(signal.SIGTERM)
        wait_for(lambda victim=victim, others=others:
                 all(victim.peer_id not in o.peer_ids() for o in others), 1.0,
                 what=f"round {round_}: every peer drops {victim.name}")
        took.append(time.monotonic() - t0)
        assert victim.proc.wait(10) == 0
        victim.start()
        victim.wait_healthy(30)
        wait_for(lambda: _sees_all(agents, ids), 15, what=f"round {round_}: the mesh again")
    took.sort()
    print(f"SIGTERM -> dropped by every peer: {len(took)}/20 within 1 s, "
          f"p50 {took[10]:.3f} s, max {took[-1]:.3f} s")


def test_wrong_psk_never_joins(lab):
    sw = lab.switch("sw")
    key, other = lab.workdir / "swarm.key", lab.workdir / "other.key"
    key.write_text(format_psk(os.urandom(32)))
    other.write_text(format_psk(os.urandom(32)))
    env = {**QUIET, "BZZZ_ANNOUNCE_INTERVAL": "1"}
    members = [lab.agent(f"m{i}", lab.host(f"h{i}", sw, f"10.231.1.{i + 1}/24"),
                         env={**env, "BZZZ_PSK_FILE": str(key)}) for i in range(3)]
    intruder = lab.agent("x", lab.host("hx", sw, "10.231.1.9/24"),
                         env={**env, "BZZZ_PSK_FILE": str(other)})
    ids = _start_all(members + [intruder]) - {intruder.peer_id}
    wait_for(lambda: _sees_all(members, ids), 10, what="members mesh")
    # the intruder finds them over mDNS and keeps trying; watch 3 announce intervals
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        assert all(intruder.peer_id not in m.peer_ids() for m in members)
        assert intruder.status()["peers"] == []
        time.sleep(0.2)
    assert sum(m.status()["pnet"]["rejected"] for m in members) >= 1
    metrics = members[0].get("/metrics")[1].decode() + members[1].get("/metrics")[1].decode()
    assert 'bzzz_pnet_rejected_total{reason="wrong_key"}' in metrics
