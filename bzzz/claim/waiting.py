"""A task nobody in the mesh can take says so (a core: no I/O).

As GitHub Actions says "waiting for a runner with these labels": a task whose needs no live
node offers (``needs:gpu``, ```` ```bzzz llm model=absent ````) gets, once it has been seen
for ``notice_after`` seconds, one comment for the whole mesh naming what is missing and what
the live nodes offer, and the label ``bzzz:waiting``. The node that says it is the one with
the smallest id among the live nodes that see the task (each node decides alone, from its
peer table: no message is exchanged); the comment carries a marker keyed by the unmet needs,
so a second speaker finds it instead of saying it again. Nothing else changes: the task stays
claimable, and the first node that can run it (one joining, or one whose capabilities change)
takes it at once; its claim drops the label.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..github.markers import Comment, defuse_markers, marker
from ..p2p.capabilities import PeerView, capability_met
from .task import Task, TaskError, ineligible_reason, required

NOTICE_AFTER = 30.0  # seconds a task is seen unmet before the mesh says so
SHOWN_NODES = 12
SHOWN_CAPS = 24


@dataclass(frozen=True)
class Unmet:
    task: Task
    needs: tuple[str, ...]  # what the task requires
    missing: tuple[str, ...]  # what no live node offers at all
    offers: tuple[tuple[str, tuple[str, ...]], ...]  # (node, its capabilities), me first

    @property
    def key(self) -> str:
        """The marker's key: the task and what it needs (needs edited: a new notice)."""
        digest = hashlib.sha256(",".join(self.needs).encode()).hexdigest()[:12]
        return f"{self.task.key}:{digest}"


def unmet(task: Task, me: str, mine: Sequence[str], peers: Sequence[PeerView]) -> Unmet | None:
    """The task's unmet needs when no live node (this one or a peer taking tasks) could run
    it, else None. Only a task that fails on its needs alone counts (not a closed, finished
    or malformed one)."""
    why = ineligible_reason(task, mine)
    if why is None or not why.startswith("needs "):
        return None
    takers = [p for p in peers if p.max_tasks > 0]
    if any(ineligible_reason(task, p.capabilities) is None for p in takers):
        return None
    try:
        needs = tuple(sorted(required(task)))
    except TaskError:
        return None
    offered = [list(mine)] + [list(p.capabilities) for p in takers]
    missing = tuple(n for n in needs if not any(capability_met(n, c) for c in offered))
    offers = ((me, tuple(mine)),) + tuple((p.peer_id[:16], p.capabilities) for p in takers)
    return Unmet(task, needs, missing, offers)


def speaker(me: str, peers: Iterable[PeerView]) -> bool:
    """Whether this node says it for the mesh: the smallest id among the live nodes."""
    return all(me <= p.peer_id for p in peers)


def due(first_seen: float, now: float, notice_after: float = NOTICE_AFTER) -> bool:
    return now - first_seen >= notice_after


def _code(text: str) -> str:
    return "`" + defuse_markers(text.replace("`", "'")) + "`"


def waiting_comment(u: Unmet) -> Comment:
    """The mesh's one comment: what is unmet, and what the live nodes offer."""
    lacking = u.missing or u.needs
    head = (f"⏳ **Waiting for a node with {', '.join(_code(n) for n in lacking)}.** "
            if u.missing else
            f"⏳ **Waiting for one node with all of {', '.join(_code(n) for n in u.needs)}.** ")
    lines = [marker("waiting", u.key),
             head + "No live node in the mesh can run this task yet; it is taken at once when "
             "one that can joins.", "",
             f"Live nodes and what they offer ({len(u.offers)}):"]
    for node, caps in u.offers[:SHOWN_NODES]:
        shown = ", ".join(_code(c) for c in caps[:SHOWN_CAPS])
        more = f" and {len(caps) - SHOWN_CAPS} more" if len(caps) > SHOWN_CAPS else ""
        lines.append(f"- {_code(node)}: {shown or 'nothing'}{more}")
    if len(u.offers) > SHOWN_NODES:
        lines.append(f"- and {len(u.offers) - SHOWN_NODES} more nodes")
    lines += ["", "Add a node that offers it (its `capabilities`, an `[[llm]]` model, an "
              "`agent` preset), or change the task's `needs:` labels."]
    return Comment("waiting", u.key, "\n".join(lines))
