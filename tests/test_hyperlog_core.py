"""hyperlog: Hypercore 11's hashes, the flat tree, and our tree against a naive one."""

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from bzzz.hyperlog import flat
from bzzz.hyperlog.crypto import (Signer, Verifier, core_key, default_manifest, leaf_hash,
                                  namespace, parent_hash, tree_hash)
from bzzz.hyperlog.tree import Tree


def test_hypercore_crypto_vectors():
    # holepunchto/hypercore-crypto test.js
    assert leaf_hash(b"hello world").hex() == \
        "9f1b578fd57a4df015493d2886aec9600eef913c3bb009768c7f0fb875996308"
    leaf = leaf_hash(b"hello world")
    assert parent_hash(22, leaf, leaf).hex() == \
        "3ad0c9b58b771d1b7707e1430f37c23a23dd46e0c7c3ab9c16f79d25f7c36804"
    assert tree_hash([(3, 11, bytes(32)), (9, 2, bytes(32))]).hex() == \
        "0e576a56b478cddb6ffebab8c494532b6de009466b2e9f7af9143fc54b9eaa36"
    assert namespace("hyperswarm/secret-stream", 0).hex() == \
        "a931a0155b5c09e6d28628236af83c4b8a6af9af60986edeede9dc5d63192bf7"
    assert namespace("hyperswarm/secret-stream", 1).hex() == \
        "742c9d833d430af4c48a8705e91631eecf295442bbca18996e597097723b1061"
    assert namespace("foo", 1).hex() == \
        "fff5eac99641b1b9dee6cabaaeb5959f4b452f7c83769156566aa44de89c82fb"


def test_manifest_key_and_signature():
    signer = Signer(bytes(range(32)))
    assert len(default_manifest(signer.public_key)) == 70
    assert signer.key == core_key(signer.public_key)
    sig = signer.sign_head(bytes(32), 5, 0)
    v = Verifier(signer.public_key)
    assert v.verify_head(bytes(32), 5, 0, sig)
    assert not v.verify_head(bytes(32), 6, 0, sig)
    assert not v.verify_head(bytes(32), 5, 1, sig)
    assert not v.verify_head(b"\x01" * 32, 5, 0, sig)
    assert not v.verify_head(bytes(32), 5, 0, sig[:-1])
    # measured against npm hypercore@11.37.1 with the same seed (see the js cross-check)
    assert signer.key.hex() == "798b52954f2f524c0a491fd95e508007de655fbdc048947a8afa2e65f1a03b77"


def _naive_roots(blocks):
    """Every node of the tree by recursion, then the full roots: an independent reference."""
    nodes = {2 * i: (len(b), leaf_hash(b)) for i, b in enumerate(blocks)}
    changed = True
    while changed:
        changed = False
        for i in sorted(nodes):
            s = flat.sibling(i)
            p = flat.parent(i)
            if s in nodes and p not in nodes:
                left, right = (i, s) if i < s else (s, i)
                size = nodes[left][0] + nodes[right][0]
                nodes[p] = (size, parent_hash(size, nodes[left][1], nodes[right][1]))
                changed = True
    return [(r, *nodes[r]) for r in flat.full_roots(2 * len(blocks))]


@given(st.lists(st.binary(max_size=40), max_size=40))
@settings(max_examples=60, deadline=None)
def test_incremental_tree_equals_the_naive_one(blocks):
    tree = Tree()
    for b in blocks:
        tree.append(b)
    assert [(r.index, r.size, r.hash) for r in tree.roots] == _naive_roots(blocks)
    assert tree.hash() == tree_hash(_naive_roots(blocks))


def test_flat_tree_arithmetic():
    assert flat.full_roots(0) == []
    assert flat.full_roots(2) == [0]
    assert flat.full_roots(6) == [1, 4]
    assert flat.full_roots(16) == [7]
    assert flat.full_roots(18) == [7, 16]
    assert flat.full_roots(14) == [3, 9, 12]
    for i in range(200):
        d = flat.depth(i)
        assert flat.index(d, flat.offset(i)) == i
        if d:
            left, right = flat.children(i)
            assert flat.parent(left) == flat.parent(right) == i
            assert flat.sibling(left) == right
            assert flat.left_span(i) == flat.left_span(left)
            assert flat.right_span(i) == flat.right_span(right)
            assert (flat.right_span(i) - flat.left_span(i)) // 2 + 1 == flat.count(i)
    for start in range(40):
        for end in range(start, 41):
            covered = []
            for node in flat.spans(start, end):
                covered.extend(range(flat.left_span(node) // 2, flat.right_span(node) // 2 + 1))
            assert covered == list(range(start, end))


def test_discovery_key_is_keyed_blake2b():
    from bzzz.hyperlog.crypto import discovery_key
    key = bytes(range(32))
    assert discovery_key(key) == hashlib.blake2b(b"hypercore", key=key, digest_size=32).digest()
