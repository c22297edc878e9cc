"""The Merkle tree core (no I/O): appending leaves to the right edge of a flat tree.

The right edge of a tree of ``n`` leaves is its full roots (``flat.full_roots(2n)``); a new
leaf joins it and merges with every root of its own size to its left. So an append needs only
the roots: the writer and a verifying replica never read older nodes to extend the tree.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import flat
from .crypto import leaf_hash, parent_hash, tree_hash


@dataclass(frozen=True, slots=True)
class Node:
    index: int
    size: int  # bytes of data below it
    hash: bytes


class Tree:
    """The right edge of a tree: its length (leaves) and its roots, left to right."""

    def __init__(self, length: int = 0, roots: list[Node] | None = None) -> None:
        self.length = length
        self.roots: list[Node] = list(roots or [])
        expected = flat.full_roots(2 * length)
        if [r.index for r in self.roots] != expected:
            raise ValueError(f"roots {[r.index for r in self.roots]} do not fit length {length}")

    def append(self, data: bytes, out: list[Node] | None = None,
               digest: bytes | None = None) -> list[Node]:
        """Add one leaf (``digest``: its leaf hash, if the caller computed it already);
        returns (or extends ``out`` with) the new nodes, leaf first."""
        nodes = out if out is not None else []
        node = Node(2 * self.length, len(data), digest or leaf_hash(data))
        nodes.append(node)
        roots = self.roots
        # a node merges with the root to its left while that root is its left sibling
        # (same depth, adjacent); each merge climbs one level
        depth, index = 0, node.index
        while roots and roots[-1].index == index - (2 << depth):
            left = roots.pop()
            size = left.size + node.size
            index -= 1 << depth  # the parent of two siblings sits between them
            depth += 1
            node = Node(index, size, parent_hash(size, left.hash, node.hash))
            nodes.append(node)
        roots.append(node)
        self.length += 1
        return nodes

    def hash(self) -> bytes:
        return tree_hash((r.index, r.size, r.hash) for r in self.roots)

    @property
    def byte_length(self) -> int:
        return sum(r.size for r in self.roots)

    def copy(self) -> "Tree":
        twin = Tree.__new__(Tree)  # already consistent: skip the check in __init__
        twin.length, twin.roots = self.length, list(self.roots)
        return twin
