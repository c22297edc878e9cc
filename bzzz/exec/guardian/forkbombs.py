"""Fork bombs by structure: a function that reaches itself through calls, one of them in a
pipeline or the background. A core without state: it takes the calls the walk recorded and
returns the functions that start themselves.
"""

from __future__ import annotations

Calls = dict[str, list[tuple[str, bool]]]  # function -> (called, in a pipeline/background)


def self_starting(functions: Calls) -> list[str]:
    """The functions with a spawning call inside their strongly connected component."""
    if not functions:
        return []
    graph = {f: [(g, s) for g, s in calls if g in functions] for f, calls in functions.items()}
    comp = _components(graph)
    found = []
    for f, calls in graph.items():
        for g, spawned in calls:
            if spawned and comp.get(f) == comp.get(g):
                found.append(f)
                break
    return found


def _components(graph: Calls) -> dict[str, int]:
    """Strongly connected components (Tarjan, without recursion): function -> component."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    comp: dict[str, int] = {}
    on, stack, counter = set(), [], 0
    for root in graph:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on.add(v)
            edges = graph[v]
            if i > 0:
                w = edges[i - 1][0]
                if comp.get(w) is None and w in on:
                    low[v] = min(low[v], low[w])
            while i < len(edges):
                w = edges[i][0]
                i += 1
                if w not in index:
                    work.append((v, i))
                    work.append((w, 0))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                if low[v] == index[v]:
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp[w] = index[v]
                        if w == v:
                            break
    return comp
