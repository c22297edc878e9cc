from bzzz.p2p.envelope import Announcement
from bzzz.p2p.peertable import PeerTable


def ann(pid="p1", ts=100.0, seq=1, caps=("shell",)):
    return Announcement(pid, "n-" + pid, ts, caps, ("/ip4/1.2.3.4/tcp/1/p2p/" + pid,), "", (0, 1), seq)


def test_new_refresh_change_outdated():
    t = PeerTable(timeout=15)
    assert t.update(ann(), 100) == "new"
    assert t.update(ann(ts=105, seq=2), 105) == "refreshed"
    assert t.update(ann(ts=110, seq=3, caps=("shell", "git")), 110) == "changed"
    assert t.update(ann(ts=101, seq=9), 111) == "outdated"
    assert t.get("p1").announcement.capabilities == ("shell", "git")


def test_expiry_after_silence():
    t = PeerTable(timeout=15)
    t.update(ann("a"), 100)
    t.update(ann("b"), 110)
    assert t.expire(114.9) == []
    assert t.expire(115.1) == ["a"]
    assert "b" in t and "a" not in t


def test_departure_unless_reannounced_later():
    t = PeerTable(timeout=15)
    t.update(ann(ts=100), 100)
    assert not t.depart("p1", ts=99, now=0)  # a goodbye older than the last hello
    assert t.depart("p1", ts=101, now=0)
    assert len(t) == 0
    assert not t.depart("p1", ts=102, now=0)


def test_a_late_copy_of_an_announcement_does_not_bring_a_departed_peer_back():
    t = PeerTable(timeout=3)
    t.update(ann(ts=100, seq=5), 100)
    assert t.depart("p1", ts=101, now=101)
    # a copy of an earlier announcement relayed late by another peer: still gone
    assert t.update(ann(ts=100.5, seq=6), 101.2) == "outdated"
    assert "p1" not in t
    # a goodbye heard before its peer's table entry (gossip reorders) still counts
    t2 = PeerTable(timeout=3)
    assert not t2.depart("p2", ts=50, now=50)
    assert t2.update(ann("p2", ts=49), 50.1) == "outdated"
    # the peer restarted and announces anew: back at once
    assert t.update(ann(ts=102, seq=1), 102) == "new"
    # the goodbye is forgotten once older announcements would be stale anyway
    t.depart("p1", ts=103, now=103)
    t.expire(103 + 91)
    assert t.update(ann(ts=102.5, seq=2), 103 + 91) == "new"
