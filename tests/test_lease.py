from hypothesis import given
from hypothesis import strategies as st

from bzzz.claim.lease import (Claim, claim_ref, expired, parse_claim, renewal_due,
                              still_held)


def claim(**kw):
    base = dict(task="acme/widgets#17", node="worker-3", peer="12D3KooWX", login="bot",
                lease_expires=1000.0, generation=1)
    base.update(kw)
    return Claim(**base)


def test_message_roundtrip_and_ref_name():
    c = claim()
    assert parse_claim(c.message()) == c
    assert c.message().startswith("bzzz claim acme/widgets#17\n\n")
    assert claim_ref(17) == "refs/bzzz/claims/17"


def test_garbage_is_not_a_claim():
    assert parse_claim("Initial commit") is None
    assert parse_claim("bzzz claim x\n\nnode: a\n") is None
    assert parse_claim("bzzz claim x\n\nnode: a\npeer: p\nlease-expires: soon\n") is None


def test_renewal_at_a_third_of_the_lease():
    c = claim(lease_expires=160.0)  # taken at 100 with a 60 s lease
    assert not renewal_due(c, 119.9, 60)
    assert renewal_due(c, 120.0, 60)
    r = c.renewed(120.0, 60)
    assert r.lease_expires == 180.0 and r.generation == 2 and r.holder() == c.holder()


def test_expiry_with_grace_and_unreadable_claims():
    c = claim(lease_expires=1000.0)
    assert not expired(c, 1004.0, commit_time=940.0, grace=5)
    assert expired(c, 1005.1, commit_time=940.0, grace=5)
    assert not expired(None, 990.0, commit_time=940.0, lease=60, grace=5)
    assert expired(None, 1006.0, commit_time=940.0, lease=60, grace=5)
    t = c.taken_over_by("worker-9", "12D3KooWY", "bot", now=1010.0, lease=60)
    assert t.holder() == ("worker-9", "12D3KooWY") and t.generation == 2


def test_shared_login_holders_differ_by_node_and_peer():
    a, b = claim(node="a", peer="P1"), claim(node="b", peer="P2")
    assert a.login == b.login and a.holder() != b.holder()


def test_still_held():
    assert still_held("abc", "abc")
    assert not still_held("abc", "def") and not still_held("abc", None)


@given(st.text(min_size=1, max_size=40).filter(lambda s: s.isprintable() and s.strip() == s),
       st.text(min_size=1, max_size=40).filter(lambda s: s.isprintable() and s.strip() == s),
       st.integers(0, 2**40), st.integers(1, 10**6))
def test_roundtrip_property(task, node, expires, gen):
    c = claim(task=task, node=node, lease_expires=float(expires), generation=gen)
    assert parse_claim(c.message()) == c


@given(st.text(max_size=500))
def test_parse_never_raises(text):
    parse_claim(text)
