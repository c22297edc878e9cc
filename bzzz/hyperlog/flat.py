"""Flat-tree arithmetic (as npm ``flat-tree``): the nodes of a binary Merkle tree over a list
numbered in-order, leaves at even indexes (block ``i`` is node ``2i``)."""

from __future__ import annotations


def depth(i: int) -> int:
    """Trailing one bits of ``i``: 0 for leaves."""
    j = i + 1
    return (j & -j).bit_length() - 1


def offset(i: int, d: int | None = None) -> int:
    if d is None:
        d = depth(i)
    return i >> (d + 1)


def index(d: int, o: int) -> int:
    return (o << (d + 1)) | ((1 << d) - 1)


def parent(i: int) -> int:
    d = depth(i)
    return index(d + 1, offset(i, d) >> 1)


def sibling(i: int) -> int:
    d = depth(i)
    return index(d, offset(i, d) ^ 1)


def children(i: int) -> tuple[int, int] | None:
    d = depth(i)
    if d == 0:
        return None
    o = offset(i, d) * 2
    return index(d - 1, o), index(d - 1, o + 1)


def left_span(i: int) -> int:
    d = depth(i)
    return index(0, offset(i, d) << d) if d else i


def right_span(i: int) -> int:
    d = depth(i)
    return index(0, ((offset(i, d) + 1) << d) - 1) if d else i


def count(i: int) -> int:
    """How many leaves the node covers."""
    return 1 << depth(i)


def full_roots(i: int) -> list[int]:
    """The roots of the tree of the leaves before leaf index ``i`` (even), left to right."""
    if i & 1:
        raise ValueError("full_roots takes a leaf index")
    n = i // 2
    out: list[int] = []
    start = 0
    while n:
        factor = 1 << (n.bit_length() - 1)
        out.append(start + factor - 1)
        start += 2 * factor
        n -= factor
    return out


def spans(start: int, end: int) -> list[int]:
    """The largest aligned full subtrees covering blocks ``[start, end)``, left to right."""
    out: list[int] = []
    while start < end:
        size = start & -start if start else 1 << (end.bit_length() - 1)
        while size > end - start:
            size >>= 1
        d = size.bit_length() - 1
        out.append(index(d, start >> d))
        start += size
    return out
