"""What agents write on issues (a core, no I/O): texts with hidden markers.

Every comment carries an HTML comment marker naming its kind, task generation and node, so
an agent whose POST had an uncertain outcome (timeout, connection reset) can look for its
marker before posting again: never a duplicate comment, never a blind retry.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..exec.agents.sessions import valid_session
from ..github.markers import Comment, defuse_markers, find_markers, marker

OUTPUT_TAIL = 3000


def marker_authors(comments: list[dict[str, Any]]) -> set[str]:
    """Authors of comments that carry an agents' marker (whose access then matters)."""
    out = set()
    for c in comments:
        login = (c.get("user") or {}).get("login")
        if isinstance(login, str) and find_markers(c.get("body") or ""):
            out.add(login)
    return out


def claim_comment(node: str, peer: str, key: str) -> Comment:
    return Comment("claim", key,
                   f"{marker('claim', key)}\n🐝 Claimed by **{node}** (peer `{peer}`).")


def _fence(text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{text}\n{fence}"


def egress_lines(doc: Mapping[str, Any] | None) -> list[str]:
    """What the task reached through the gateway and what it was refused (the hosts are the
    gateway's checked names, shown as code)."""
    if not doc:
        return []
    hosts = doc.get("hosts") or {}
    refused = doc.get("refused") or {}
    kib = (int(doc.get("bytes_out", 0)) + int(doc.get("bytes_in", 0))) / 1024
    lines = ["", f"🌐 Network: {len(hosts)} host{'s' if len(hosts) != 1 else ''} reached "
             f"through the gateway ({kib:.1f} KiB)"
             + (": " + ", ".join(f"`{h}`" for h in list(hosts)[:20]) if hosts else "") + "."]
    if refused:
        lines.append(f"🚫 Refused {int(doc.get('refused_total', 0))} time"
                     f"{'s' if doc.get('refused_total', 0) != 1 else ''} (add a host to "
                     "`task_egress`, or to the repository's `.bzzz.toml`, if the task needs it):")
        for target, why in list(refused.items())[:20]:
            n = sum(why.values())
            lines.append(f"- `{target}`: {', '.join(why)}" + (f" (×{n})" if n > 1 else ""))
    for name, use in list((doc.get("models") or {}).items())[:10]:
        lines.append(f"🤖 Model `{name}`: {int(use.get('requests', 0))} requests, "
                     f"{int(use.get('tokens_in', 0)):,} tokens in, "
                     f"{int(use.get('tokens_out', 0)):,} out"
                     + (f", about ${float(use['cost']):,.4f}" if use.get("cost") else "")
                     + (f", {int(use['refused'])} refused" if use.get("refused") else "") + ".")
    if doc.get("budget_exceeded"):
        lines.append(f"⛔ Stopped: {doc['budget_exceeded']}.")
    if doc.get("model_failure"):
        lines.append(f"⚠️ {doc['model_failure']}: the run counts as failed.")
    for entry in (doc.get("beyond_ceiling") or [])[:20]:
        lines.append(f"- `.bzzz.toml` asked for `{entry}`, beyond this node's `task_egress_max`")
    return lines


def usage_of(extra: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What a coding agent used (None when no preset ran): its preset, model and model
    route, its turns (from the CLI's own output), and the tokens and cost the gateway
    counted for the task (bzzz/gateway/: exactly what the model server answered), summed
    over the models it reached. In the result comment and in the ``result`` decision."""
    if not extra or not extra.get("agent"):
        return None
    models = ((extra.get("egress") or {}).get("models") or {}) if isinstance(
        extra.get("egress"), Mapping) else {}
    uses = [u for u in models.values() if isinstance(u, Mapping)]
    doc: dict[str, Any] = {"agent": str(extra["agent"]), "model": str(extra.get("model") or ""),
                           "turns": int(extra.get("turns") or 0)}
    if extra.get("route"):
        doc["route"] = str(extra["route"])
    session = extra.get("session")
    if isinstance(session, Mapping) and valid_session(session.get("resumed")):
        doc["resumed"] = str(session["resumed"])  # the CLI's session of the last round
    if uses:
        doc.update(tokens_in=sum(int(u.get("tokens_in") or 0) for u in uses),
                   tokens_out=sum(int(u.get("tokens_out") or 0) for u in uses),
                   requests=sum(int(u.get("requests") or 0) for u in uses),
                   cost=round(sum(float(u.get("cost") or 0) for u in uses), 6))
    return doc


def usage_lines(usage: Mapping[str, Any] | None) -> list[str]:
    """The result comment's line about what the coding agent used."""
    if not usage:
        return []
    model = str(usage.get("model") or "").replace("`", "'")
    line = (f"🧑‍💻 {usage.get('agent')}" + (f" (`{model}`)" if model else "")
            + f": {int(usage.get('turns') or 0)} turn{'s' if usage.get('turns') != 1 else ''}")
    if "tokens_in" in usage:
        line += (f", {int(usage['tokens_in']):,} tokens in, {int(usage['tokens_out']):,} out"
                 + (f", about {_dollars(float(usage['cost']))}" if usage.get("cost") else ""))
    else:
        line += " (no model use counted: the task ran without the gateway)"
    if valid_session(usage.get("resumed")):
        line += f"; it resumed session `{usage['resumed']}` of this task's last round"
    return ["", line + "."]


def _dollars(cost: float) -> str:
    return f"${cost:,.2f}" if cost >= 0.01 else f"${cost:.4f}"


def setup_lines(doc: Mapping[str, Any] | None) -> list[str]:
    """The result comment's lines about the setup."""
    if not doc:
        return []
    steps = doc.get("steps") or []
    where = f"`{doc.get('source')}`" if doc.get("source") else "the repository's setup"
    if str(doc.get("cache", "")).startswith("restored"):
        return ["", f"🧰 Setup: {where} restored from this node's cache in "
                f"{doc.get('seconds', 0):.1f} s."]
    bad = [s for s in steps if s.get("status") != "succeeded"]
    head = (f"🧰 Setup: {where}, {len(steps)} step{'s' if len(steps) != 1 else ''} in "
            f"{doc.get('seconds', 0):.1f} s")
    if not bad:
        return ["", head + "."]
    lines = ["", head + ": " + ", ".join(
        f"`{s.get('name')}` {s.get('status')}"
        + (f" (exit {s['exit_code']})" if s.get("exit_code") is not None else "")
        for s in bad[:5]) + (" — the task did not run (`[setup] required`)." if doc.get(
            "required") else " — the task ran all the same.")]
    tail = str(doc.get("failed_output") or "")[-1500:]
    if tail.strip():
        lines += ["", "<details><summary>the failed step's output</summary>", "",
                  "```", tail.replace("```", "``\u200b`"), "```", "", "</details>"]
    return lines


def check_lines(doc: Mapping[str, Any] | None) -> list[str]:
    """What the result comment and the pull request's body say about the check."""
    if not doc:
        return []
    runs = doc.get("runs") or []
    last = runs[-1] if runs else {}
    again = " after one more round with its failure as feedback" if doc.get("retried") else ""
    if doc.get("passed"):
        return ["", f"🧪 Check `{doc.get('source')}` passed{again} "
                f"({float(last.get('seconds') or 0):.1f} s)."]
    code = f"exit {last['exit_code']}" if last.get("exit_code") is not None else \
        str(last.get("status", "not run"))
    lines = ["", f"🧪 Check `{doc.get('source')}` failed ({code}){again}."]
    tail = str(doc.get("output") or "")[-1500:]
    if tail.strip():
        lines += ["", "<details><summary>the check's output</summary>", "", "```",
                  tail.replace("```", "``\u200b`"), "```", "", "</details>"]
    return lines


def result_comment(key: str, node: str, status: str, duration: float, exit_code: int | None,
                   output: str, truncated: bool,
                   egress: Mapping[str, Any] | None = None,
                   setup: Mapping[str, Any] | None = None,
                   check: Mapping[str, Any] | None = None,
                   usage: Mapping[str, Any] | None = None) -> Comment:
    icon = {"succeeded": "✅", "failed": "❌", "timeout": "⏱️", "cancelled": "🛑"}.get(status, "❔")
    tail = output[-OUTPUT_TAIL:]
    shown = "last part of the output" if truncated or len(output) > len(tail) else "output"
    lines = [marker("result", key),
             f"{icon} **{status}** on **{node}** in {duration:.1f} s"
             + (f" (exit status {exit_code})" if exit_code is not None else "") + ".",
             *usage_lines(usage), *egress_lines(egress), *setup_lines(setup),
             *check_lines(check),
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


def review_comment(key: str, node: str, history: list[dict[str, Any]]) -> Comment:
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


def approval_comment(digest: str, author: str, node: str, inherits: int | None = None) -> Comment:
    """The waiting-for-approval comment: it announces the task's full hash (the marker, of
    the title and body), which is what a writer's ``/bzzz approve <first 8 digits>`` then
    covers. ``inherits``: the issue whose approval a follow-up inherits."""
    short = digest[:8]
    why = (f"it is a follow-up filed by the task of #{inherits}, which ran on a writer's "
           "approval, and it inherits that trust" if inherits is not None else
           f"its author @{author} has no write access to this repository")
    return Comment("approval", digest,
                   f"{marker('approval', digest)}\n🔒 This task waits for approval: {why}, so "
                   "no agent runs it yet.\n\n"
                   "Someone with write access can run it by commenting\n\n"
                   f"```\n/bzzz approve {short}\n```\n\n"
                   f"The approval covers this exact title and text of the issue (sha256 "
                   f"`{short}…`); an edit of either after it needs a new approval. "
                   f"(Checked by **{node}**.)")


def approval_mismatch_comment(digest: str, given: str, node: str) -> Comment:
    """Answer to an approval whose hash is not the body's as it is now; it announces the
    current hash, so a new approval after it covers the current body."""
    short = digest[:8]
    return Comment("approval", digest,
                   f"{marker('approval', digest)}\n🔒 `{given[:16]}` is not the hash of this "
                   f"issue's title and text as they are now. Its hash is `{short}`: read the "
                   f"issue again, then comment\n\n```\n/bzzz approve {short}\n```\n\n(**{node}**)")


def work_comment(key: str, node: str, status: str, duration: float, exit_code: int | None,
                 output: str, truncated: bool, *, summary: str | None = None,
                 pr: int | None = None, pr_url: str | None = None, branch: str | None = None,
                 base: str | None = None, files: int = 0, new_round: bool = False,
                 delivery_error: str | None = None,
                 follow_ups: Sequence[tuple[str, int]] = (),
                 follow_up_error: str | None = None, filed_keys: Sequence[str] = (),
                 egress: Mapping[str, Any] | None = None,
                 setup: Mapping[str, Any] | None = None,
                 check: Mapping[str, Any] | None = None,
                 usage: Mapping[str, Any] | None = None) -> Comment:
    """The result of a task that ran in a checkout: what it changed and where it went."""
    icon = {"succeeded": "✅", "failed": "❌", "timeout": "⏱️"}.get(status, "❔")
    lines = [marker("result", key)]
    if pr is not None and branch is not None:
        lines.append(marker("pr", f"{pr}:{branch}:{base or ''}"))
    lines += [marker("filed", k) for k in filed_keys]
    head = (f"{icon} **{status}** on **{node}** in {duration:.1f} s"
            + (f" (exit status {exit_code})" if exit_code is not None else ""))
    if pr is not None:
        what = "pushed another round to" if new_round else "opened"
        lines.append(f"{head}: {what} pull request #{pr}"
                     + (f" ({pr_url})" if pr_url and not pr_url.startswith("#") else "")
                     + f", {files} file{'s' if files != 1 else ''} changed on `{branch}`.")
    elif branch is not None:
        why = ("the run did not succeed, so there is no pull request"
               if status != "succeeded" else "`pr=none`: no pull request")
        lines.append(f"{head}: {files} changed file{'s' if files != 1 else ''} pushed to "
                     f"`{branch}` ({why}).")
    else:
        lines.append(head + ("." if not delivery_error else ": its changes were not delivered."))
    if delivery_error:
        lines += ["", f"⚠️ {delivery_error}"]
    if follow_ups:
        lines += ["", "Follow-ups filed: " + ", ".join(f"#{n} ({t[:60]})" for t, n in follow_ups)]
    if follow_up_error:
        lines += ["", f"⚠️ Follow-ups not filed: {follow_up_error}"]
    lines += usage_lines(usage) + egress_lines(egress) + setup_lines(setup) + check_lines(check)
    if summary:
        lines += ["", summary.strip()[:OUTPUT_TAIL * 2]]
    tail = output[-OUTPUT_TAIL:]
    shown = "last part of the output" if truncated or len(output) > len(tail) else "output"
    lines += ["", f"<details><summary>{shown}</summary>", "", _fence(tail or "(no output)"), "",
              "</details>"]
    return Comment("result", key, "\n".join(lines))


def round_comment(key: str, node: str, commit: str, files: int, summary: str | None) -> Comment:
    """On the pull request: a review round pushed a new commit."""
    lines = [marker("round", key),
             f"🐝 **{node}** pushed {commit[:10]} for the review ({files} file"
             f"{'s' if files != 1 else ''} changed)."]
    if summary:
        lines += ["", summary.strip()[:OUTPUT_TAIL * 2]]
    return Comment("round", key, "\n".join(lines))


def setup_failed_comment(key: str, node: str, why: str) -> Comment:
    return Comment("result", key,
                   f"{marker('result', key)}\n❌ **{node}** could not prepare this task's "
                   f"checkout: {why}\n\nFix it and remove the `bzzz:failed` label (or comment "
                   "`/bzzz retry`) to try again.")


def pr_closed_comment(pr: int, node: str) -> Comment:
    return Comment("pr-closed", str(pr),
                   f"{marker('pr-closed', str(pr))}\n🛑 Pull request #{pr} was closed without "
                   f"merging: this task ends here. Reopen the issue and comment `/bzzz retry` "
                   f"to start again. (**{node}**)")


def question_comment(key: str, node: str, question: str) -> Comment:
    quoted = "\n".join(f"> {line}" for line in question.strip()[:OUTPUT_TAIL * 3].splitlines())
    return Comment("question", key,
                   f"{marker('question', key)}\n❓ The task asks (on **{node}**):\n\n{quoted}\n\n"
                   "Reply with a comment (someone with write access; `/bzzz answer …` works "
                   "too): the task then runs again with every question and answer so far.")


def input_timeout_comment(key: str, node: str, hours: float) -> Comment:
    return Comment("input-timeout", key,
                   f"{marker('input-timeout', key)}\n⌛ Nobody answered within {hours:g} h, so "
                   f"this task stops here (**{node}**). Answer and comment `/bzzz retry` to "
                   "run it again.")


def progress_comment(key: str, node: str, elapsed: float, lines: str, *,
                     checklist: str = "", final: bool = False) -> Comment:
    """The one comment a long run keeps up to date: how long it has run, and what it did
    (an agent's checklist: bzzz/exec/agents/checklist.py) or its last lines; ``final``:
    the run is over (its result comment follows)."""
    minutes, seconds = divmod(int(elapsed), 60)
    if checklist.strip():
        shown = f"\n\n{checklist}"
    else:
        shown = f"\n\n{_fence(defuse_markers(lines))}" if lines.strip() else ""
    head = (f"🏁 Ran on **{node}** for {minutes} min {seconds:02d} s." if final else
            f"⏳ Running on **{node}** for {minutes} min {seconds:02d} s.")
    return Comment("progress", key, f"{marker('progress', key)}\n{head}{shown}")
