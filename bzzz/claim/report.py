"""What agents write on issues (a core, no I/O): texts with hidden markers.

Every comment carries an HTML comment marker naming its kind, task generation and node, so
an agent whose POST had an uncertain outcome (timeout, connection reset) can look for its
marker before posting again: never a duplicate comment, never a blind retry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MARKER = "<!-- bzzz:{kind}:{key} -->"
_MARKER_RE = re.compile(r"<!-- bzzz:(?P<kind>[a-z-]+):(?P<key>[^ ]+) -->")
OUTPUT_TAIL = 3000


def marker(kind: str, key: str) -> str:
    return MARKER.format(kind=kind, key=key)


def find_markers(body: str) -> set[tuple[str, str]]:
    return {(m["kind"], m["key"]) for m in _MARKER_RE.finditer(body or "")}


@dataclass(frozen=True)
class Comment:
    kind: str
    key: str  # unique per task attempt, e.g. "<node>:<claim generation>"
    body: str


def claim_comment(node: str, peer: str, key: str) -> Comment:
    return Comment("claim", key,
                   f"{marker('claim', key)}\n🐝 Claimed by **{node}** (peer `{peer}`).")


def _fence(text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{text}\n{fence}"


def result_comment(key: str, node: str, status: str, duration: float, exit_code: int | None,
                   output: str, truncated: bool) -> Comment:
    icon = {"succeeded": "✅", "failed": "❌", "timeout": "⏱️", "cancelled": "🛑"}.get(status, "❔")
    tail = output[-OUTPUT_TAIL:]
    shown = "last part of the output" if truncated or len(output) > len(tail) else "output"
    lines = [marker("result", key),
             f"{icon} **{status}** on **{node}** in {duration:.1f} s"
             + (f" (exit status {exit_code})" if exit_code is not None else "") + ".",
             "", f"<details><summary>{shown}</summary>", "", _fence(tail or "(no output)"), "",
             "</details>"]
    return Comment("result", key, "\n".join(lines))


def refusal_comment(key: str, node: str, reasons: list[str]) -> Comment:
    items = "\n".join(f"- {r}" for r in dict.fromkeys(reasons))
    return Comment("refused", key,
                   f"{marker('refused', key)}\n🛡️ The Guardian on **{node}** refused this "
                   f"task's command:\n\n{items}\n\nEdit the command and remove the "
                   "`bzzz:failed` label to try again.")


def no_command_comment(key: str, node: str) -> Comment:
    return Comment("needs-input", key,
                   f"{marker('needs-input', key)}\n❓ **{node}** found no command: put it in a "
                   "fenced block marked `bzzz`:\n\n````\n```bzzz\nmake test\n```\n````")


def cancelled_comment(key: str, node: str, why: str) -> Comment:
    return Comment("cancelled", key,
                   f"{marker('cancelled', key)}\n🛑 **{node}** stopped this task: {why}.")


def handover_comment(key: str, origin: str, helper: str, helper_peer: str, reason: str) -> Comment:
    return Comment("handover", key,
                   f"{marker('handover', key)}\n🤝 **{origin}** could not finish this task "
                   f"({reason}) and handed it to **{helper}** (peer `{helper_peer}`), "
                   "which now holds the claim.")


def review_comment(key: str, node: str, history: list[dict]) -> Comment:
    """The task failed after every help request it may make: what was tried, for a human."""
    lines = [marker("review", key),
             f"🙋 This task failed and {len(history)} help requests did not get it done: "
             "it needs a human. What was tried:", ""]
    for h in history:
        who = f"handed to **{h['to']}**" if h.get("to") else "nobody took it"
        lines.append(f"{h.get('ask', '?')}. **{h.get('by', '?')}** asked ({h.get('reason', '')}): "
                     f"{who}.")
        for name in h.get("offers", []):
            lines.append(f"   - offered: {name}")
        for name, why in h.get("declines", []):
            lines.append(f"   - declined: {name} ({why})")
    lines += ["", f"Reported by **{node}**. Remove the `bzzz:failed` label to try again."]
    return Comment("review", key, "\n".join(lines))


def approval_comment(digest: str, author: str, node: str) -> Comment:
    """The waiting-for-approval comment: it announces the body's full hash (the marker), which
    is what a writer's ``/bzzz approve <first 8 digits>`` then covers."""
    short = digest[:8]
    return Comment("approval", digest,
                   f"{marker('approval', digest)}\n🔒 This task waits for approval: its author "
                   f"@{author} has no write access to this repository, so no agent runs it yet.\n\n"
                   "Someone with write access can run it by commenting\n\n"
                   f"```\n/bzzz approve {short}\n```\n\n"
                   f"The approval covers this exact text of the issue (sha256 `{short}…`); an "
                   f"edit after it needs a new approval. (Checked by **{node}**.)")


def approval_mismatch_comment(digest: str, given: str, node: str) -> Comment:
    """Answer to an approval whose hash is not the body's as it is now; it announces the
    current hash, so a new approval after it covers the current body."""
    short = digest[:8]
    return Comment("approval", digest,
                   f"{marker('approval', digest)}\n🔒 `{given[:16]}` is not the hash of this "
                   f"issue's text as it is now. Its hash is `{short}`: read the issue again, "
                   f"then comment\n\n```\n/bzzz approve {short}\n```\n\n(**{node}**)")
