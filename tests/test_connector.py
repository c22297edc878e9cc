import random

from bzzz.p2p.connector import MAX_DELAY, DialPlan

ADDR = ("/ip4/10.0.0.2/tcp/4001/p2p/B",)


def test_due_then_backoff_grows_and_caps():
    plan = DialPlan("A", random.Random(1))
    assert plan.offer("B", ADDR, "mdns", 0.0)
    assert [c.peer_id for c in plan.due(0.0, set())] == ["B"]
    plan.started("B", 0.0)
    assert plan.due(1.0, set()) == []  # in flight
    delays = [plan.failed("B", 0.0) for _ in range(12)]
    assert delays[1] > delays[0] and max(delays) <= MAX_DELAY * 1.5


def test_never_dials_self_or_connected():
    plan = DialPlan("A")
    assert not plan.offer("A", ("/ip4/1.1.1.1/tcp/1/p2p/A",), "mdns", 0)
    plan.offer("B", ADDR, "mdns", 0)
    assert plan.due(0, {"B"}) == []


def test_new_address_resets_backoff():
    plan = DialPlan("A", random.Random(1))
    plan.offer("B", ADDR, "mdns", 0)
    for _ in range(5):
        plan.failed("B", 0)
    assert plan.due(1, set()) == []
    assert plan.offer("B", ("/ip4/10.0.0.2/tcp/4999/p2p/B",), "announcement", 1)
    assert [c.peer_id for c in plan.due(1, set())] == ["B"]


def test_disconnect_retries_soon_and_unpinned_peers_are_forgotten():
    plan = DialPlan("A")
    plan.offer("B", ADDR, "mdns", 0)
    plan.offer("C", ("/ip4/10.0.0.3/tcp/1/p2p/C",), "bootstrap", 0, pinned=True)
    plan.succeeded("B", 0)
    plan.disconnected("B", 5)
    assert "B" in {c.peer_id for c in plan.due(6, set())}
    assert {c.peer_id for c in plan.due(10_000, set())} == {"C"}


def test_a_node_alone_retries_its_bootstrap_peers_often_whatever_their_backoff():
    plan = DialPlan("A", random.Random(1))
    plan.offer("B", ADDR, "bootstrap", 0.0, pinned=True)
    plan.offer("C", ("/ip4/10.0.0.3/tcp/1/p2p/C",), "mdns", 0.0)
    for _ in range(6):  # B was not listening yet: its backoff has grown to many seconds
        plan.started("B", 0.0)
        plan.failed("B", 0.0)
        plan.started("C", 0.0)
        plan.failed("C", 0.0)
    assert plan.due(1.9, set()) == []
    # connected to nobody: the bootstrap peer is due again after ALONE_RETRY, C is not
    assert [c.peer_id for c in plan.due(2.0, set())] == ["B"]
    plan.started("B", 2.0)
    assert plan.due(4.5, set()) == []  # never twice at once
    # connected to someone: the usual backoff
    plan.failed("B", 5.0)
    assert plan.due(7.0, {"D"}) == []
