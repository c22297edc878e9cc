"""Merkle proofs against a signed head (a core, no I/O).

A reader that holds a verified head knows the roots of that tree. Anything below a root is
proven by climbing from nodes the reader computed itself (from blocks, or from its own
verified tree) to that root, taking each missing sibling from the proof:

- a range of blocks ``[start, end)``: climb from the range's aligned subtrees
  (``flat.spans``), computed from the blocks;
- an upgrade from length ``a`` to ``L``: climb from the roots of ``a`` (what the reader
  has) to the roots of ``L``: the new tree extends the old one, nothing was rewritten.

The server runs :func:`needed` to know which nodes to send; the reader runs :func:`climb`.
"""

from __future__ import annotations

from ..errors import InputError
from collections.abc import Iterable

from . import flat
from .crypto import parent_hash
from .tree import Node

MAX_PROOF_NODES = 4096


class ProofError(InputError, ValueError):
    pass


def _cover(index: int, targets: set[int]) -> int | None:
    """The target root above ``index``, if any (a target must be an ancestor or itself)."""
    for t in targets:
        if flat.left_span(t) <= flat.left_span(index) and flat.right_span(index) <= flat.right_span(t):
            return t
    return None


def needed(start: Iterable[int], targets: Iterable[int]) -> list[int]:
    """Indexes of the siblings a reader cannot compute when climbing from ``start`` nodes
    to the ``targets`` (the roots of the head), in ascending order."""
    goal = set(targets)
    known = set(start)
    out: set[int] = set()
    for index in sorted(known):
        if _cover(index, goal) is None:
            raise ProofError(f"node {index} is not under any root")
        while index not in goal:
            sib = flat.sibling(index)
            if sib not in known:
                out.add(sib)
                known.add(sib)
            index = flat.parent(index)
            known.add(index)
    return sorted(out - set(start))


def climb(start: list[Node], roots: list[Node], proof: Iterable[Node]) -> None:
    """Check that the ``start`` nodes sit under the ``roots``; raises ProofError if not."""
    goal = {r.index: r for r in roots}
    known: dict[int, Node] = {}
    for n in proof:
        if n.index in known:
            raise ProofError(f"node {n.index} twice in a proof")
        known[n.index] = n
        if len(known) > MAX_PROOF_NODES:
            raise ProofError("proof too large")
    for n in start:
        known[n.index] = n
    for n in start:
        node = n
        if _cover(node.index, set(goal)) is None:
            raise ProofError(f"node {node.index} is not under any root")
        while node.index not in goal:
            sib = known.get(flat.sibling(node.index))
            if sib is None:
                raise ProofError(f"missing node {flat.sibling(node.index)}")
            left, right = (node, sib) if node.index < sib.index else (sib, node)
            size = left.size + right.size
            parent = Node(flat.parent(node.index), size, parent_hash(size, left.hash, right.hash))
            have = known.get(parent.index)
            if have is not None and have != parent:
                raise ProofError(f"node {parent.index} does not match")
            known[parent.index] = parent
            node = parent
        if goal[node.index] != node:
            raise ProofError(f"root {node.index} does not match the signed head")


def range_nodes(blocks: list[bytes], start: int,
                leaves: list[bytes] | None = None) -> list[Node]:
    """The aligned subtrees of ``blocks`` (block ``start`` first), computed from the data
    (or from their leaf hashes, ``leaves``)."""
    from .crypto import leaf_hash
    if leaves is None:
        leaves = [leaf_hash(b) for b in blocks]
    out: list[Node] = []
    pos = 0
    for index in flat.spans(start, start + len(blocks)):
        count = flat.count(index)
        layer = [Node(2 * (start + pos + k), len(blocks[pos + k]), leaves[pos + k])
                 for k in range(min(count, len(blocks) - pos))]
        while len(layer) > 1:
            nxt = []
            # a span is a whole subtree: each layer has a power-of-two length
            for left, right in zip(layer[::2], layer[1::2], strict=True):
                size = left.size + right.size
                nxt.append(Node(flat.parent(left.index), size,
                                parent_hash(size, left.hash, right.hash)))
            layer = nxt
        out.append(layer[0])
        pos += count
    return out
