"""CI rounds: what the agents do with a pull request's checks (a core: no I/O).

After an agent pushes to a pull request, the mesh watches the head commit's check runs and
commit statuses at each poll (bzzz/github/checks.py reads them and gives a
:class:`~bzzz.github.checks.Verdict`). :func:`next_step` says what follows:

- ``wait``: still pending (within ``ci_wait``);
- ``green``: the pull request stays for review, or with ``pr=ready-when-green`` is marked
  ready (GitHub's GraphQL ``markPullRequestReadyForReview``) and its review requested;
- ``round``: red, and fewer than ``ci_rounds`` CI rounds ran on this pull request: the task
  runs again on the same branch with what failed in ``$BZZZ_FEEDBACK``;
- ``give_up``: red after ``ci_rounds`` rounds: one comment says what still fails, and the
  pull request waits for a person.

The rounds are counted on GitHub itself (the ``ci`` comments on the pull request), so every
node counts the same and a restart forgets nothing; each step is taken once for the whole
mesh (the caller takes the repository's once-only lock for the head commit first).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..github.checks import Verdict
from ..github.markers import Comment, defuse_markers, find_markers, marker

CI_ROUNDS = 2
CI_WAIT = 1800.0  # seconds a head's checks may stay pending before they count as failed
FEEDBACK_HEAD = "CI failed on the pull request's head"


@dataclass(frozen=True)
class Step:
    kind: str  # wait | green | round | give_up
    round: int = 0  # the CI round this starts (1-based), for "round"


def next_step(v: Verdict, rounds_done: int, ci_rounds: int = CI_ROUNDS) -> Step:
    if v.state == "pending":
        return Step("wait")
    if v.state == "green":
        return Step("green")
    if rounds_done < ci_rounds:
        return Step("round", rounds_done + 1)
    return Step("give_up")


def rounds_done(comments: list[dict[str, Any]], pr: int, login: str) -> int:
    """CI rounds already started on pull request ``pr``: its ``ci`` comments written by the
    agents' ``login`` (anyone may write a marker into a comment; only the agents' count)."""
    prefix = f"{pr}:"
    return sum(1 for c in comments
               if str((c.get("user") or {}).get("login", "")).lower() == login.lower()
               for kind, key in find_markers(c.get("body") or "")
               if kind == "ci" and key.startswith(prefix))


def _what_failed(v: Verdict) -> str:
    """The CI's own words (its output and annotations), never a marker of ours."""
    text = defuse_markers(v.feedback().strip())
    return text or "(no details were reported)"


def round_comment(pr: int, sha: str, v: Verdict, step: Step, ci_rounds: int,
                  node: str) -> Comment:
    """On the pull request: CI failed, another round starts (its text is the round's
    feedback: the attempt reads it back into $BZZZ_FEEDBACK)."""
    key = f"{pr}:{sha}"
    why = "timed out" if v.timed_out else "failed"
    lines = [marker("ci", key),
             f"🔁 CI {why} on `{sha[:12]}`: starting CI round {step.round} of {ci_rounds} on "
             f"this branch (**{node}**).", "", f"### {FEEDBACK_HEAD}", "", _what_failed(v)]
    return Comment("ci", key, "\n".join(lines))


def give_up_comment(pr: int, sha: str, v: Verdict, ci_rounds: int, node: str) -> Comment:
    key = f"{pr}:{sha}"
    lines = [marker("ci-final", key),
             f"🛑 CI still fails on `{sha[:12]}` after {ci_rounds} CI round"
             f"{'s' if ci_rounds != 1 else ''}: this pull request waits for a person "
             f"(**{node}**). A comment with `/bzzz` starts another round.", "",
             _what_failed(v)]
    return Comment("ci-final", key, "\n".join(lines))


def feedback_of(body: str) -> str | None:
    """The failure report a ``ci`` comment carries (for $BZZZ_FEEDBACK), or None."""
    if not any(kind == "ci" for kind, _ in find_markers(body)):
        return None
    _, _, rest = body.partition(f"### {FEEDBACK_HEAD}")
    return rest.strip() or None
