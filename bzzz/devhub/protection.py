"""GitHub's branch protection: the stored rule, whom it binds, what it refuses (a core).

A rule binds everyone except an admin while ``enforce_admins`` is off. It refuses a push
(over smart HTTP, where the bare repository's update hook applies it, or through the refs
API) when it requires pull requests, status checks devhub cannot report, or a locked branch;
a force push unless ``allow_force_pushes``; a deletion unless ``allow_deletions``. A merge
through the pulls API is the sanctioned way in: it only has to satisfy the required reviews
and status checks. Push restrictions and dismissal restrictions are for organisation
repositories, which devhub does not have, so GitHub's 422 refuses them.
"""

from __future__ import annotations

import sys
from typing import Any

from .state import HubError

FLAGS = ("required_linear_history", "allow_force_pushes", "allow_deletions", "block_creations",
         "required_conversation_resolution", "lock_branch", "allow_fork_syncing")
REQUIRED_KEYS = ("required_status_checks", "enforce_admins", "required_pull_request_reviews",
                 "restrictions")
PULL_REQUEST_REQUIRED = "Changes must be made through a pull request."
FORCE_PUSH = "Cannot force-push to this branch"
DELETION = "Cannot delete this protected branch"
LOCKED = "Cannot change this locked branch"


def _invalid(detail: str) -> HubError:
    return HubError(422, f"Invalid request.\n\n{detail}")


def _flag(doc: dict[str, Any], key: str) -> bool:
    value = doc.get(key)
    if value is not None and not isinstance(value, bool):
        raise _invalid(f"For 'properties/{key}', {value!r} is not a boolean or null.")
    return bool(value)


def normalize(doc: Any) -> dict[str, Any]:
    """The stored form of a ``PUT .../branches/{b}/protection`` body (422 when invalid)."""
    if not isinstance(doc, dict):
        raise HubError(400, "Problems parsing JSON")
    for key in REQUIRED_KEYS:
        if key not in doc:
            raise _invalid(f'"{key}" wasn\'t supplied.')
    out: dict[str, Any] = {"enforce_admins": _flag(doc, "enforce_admins")}
    checks = doc["required_status_checks"]
    if checks is None:
        out["required_status_checks"] = None
    elif not isinstance(checks, dict):
        raise _invalid("For 'properties/required_status_checks', is not an object or null.")
    else:
        if not isinstance(checks.get("strict"), bool):
            raise _invalid('"strict" wasn\'t supplied.')
        contexts = checks.get("contexts")
        apps: dict[str, int] = {}  # a check bound to the app that must report it
        if "checks" in checks and checks["checks"] is not None:
            if not isinstance(checks["checks"], list) or not all(
                    isinstance(c, dict) and isinstance(c.get("context"), str)
                    and (c.get("app_id") is None or (isinstance(c["app_id"], int)
                                                     and not isinstance(c["app_id"], bool)))
                    for c in checks["checks"]):
                raise _invalid("For 'properties/checks', each check needs a context.")
            contexts = [c["context"] for c in checks["checks"]]
            apps = {c["context"]: c["app_id"] for c in checks["checks"]
                    if c.get("app_id") is not None}
        if not isinstance(contexts, list) or not all(isinstance(c, str) for c in contexts):
            raise _invalid('"contexts" wasn\'t supplied.')
        out["required_status_checks"] = {"strict": checks["strict"],
                                         "contexts": list(dict.fromkeys(contexts)),
                                         "apps": apps}
    reviews = doc["required_pull_request_reviews"]
    if reviews is None:
        out["required_pull_request_reviews"] = None
    elif not isinstance(reviews, dict):
        raise _invalid("For 'properties/required_pull_request_reviews', is not an object or null.")
    else:
        count = reviews.get("required_approving_review_count", 1)
        if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= 6:
            raise HubError(422, "Invalid request.\n\nFor 'properties/"
                           "required_approving_review_count', must be between 0 and 6.")
        dismissal = reviews.get("dismissal_restrictions")
        if isinstance(dismissal, dict) and (dismissal.get("users") or dismissal.get("teams")):
            raise HubError(422, "Validation Failed", [
                "Dismissal restrictions are supported only for repositories owned by an "
                "organization."])
        out["required_pull_request_reviews"] = {
            "dismiss_stale_reviews": _flag(reviews, "dismiss_stale_reviews"),
            "require_code_owner_reviews": _flag(reviews, "require_code_owner_reviews"),
            "require_last_push_approval": _flag(reviews, "require_last_push_approval"),
            "required_approving_review_count": count}
    if doc["restrictions"] is not None:
        raise HubError(422, "Validation Failed",
                       ["Only organization repositories can have users and team restrictions"])
    out["restrictions"] = None
    for key in FLAGS:
        out[key] = _flag(doc, key)
    return out


def binds(protection: dict[str, Any], role: str | None) -> bool:
    """Admins bypass a rule unless ``enforce_admins`` is on."""
    return role != "admin" or protection["enforce_admins"]


def push_rule(protection: dict[str, Any], role: str | None) -> dict[str, Any] | None:
    """What the rule refuses from a pusher with ``role`` (None: nothing, it does not bind)."""
    if not binds(protection, role):
        return None
    reasons = []
    if protection["lock_branch"]:
        reasons.append(LOCKED)
    if protection["required_pull_request_reviews"] is not None:
        reasons.append(PULL_REQUEST_REQUIRED)
    contexts = (protection["required_status_checks"] or {}).get("contexts") or []
    if len(contexts) == 1:
        reasons.append(f'Required status check "{contexts[0]}" is expected.')
    elif contexts:
        reasons.append(f"{len(contexts)} of {len(contexts)} required status checks are expected.")
    return {"reasons": reasons, "allow_force_pushes": protection["allow_force_pushes"],
            "allow_deletions": protection["allow_deletions"]}


def refusals(rule: dict[str, Any] | None, deleting: bool, forcing: bool) -> list[str]:
    """Why a ref update is refused under ``rule`` (the update hook applies the same logic)."""
    if rule is None:
        return []
    if deleting:
        return [] if rule["allow_deletions"] else [DELETION]
    reasons = list(rule["reasons"])
    if forcing and not rule["allow_force_pushes"]:
        reasons.append(FORCE_PUSH)
    return reasons


def required_contexts(protection: dict[str, Any] | None) -> list[str]:
    """The status checks (contexts or check run names) a rule requires."""
    return list(((protection or {}).get("required_status_checks") or {}).get("contexts")
                or [])


def required_apps(protection: dict[str, Any] | None) -> dict[str, int]:
    """Required checks bound to one app (by its id): only that app's run counts."""
    return dict(((protection or {}).get("required_status_checks") or {}).get("apps") or {})


def approvals_needed(protection: dict[str, Any] | None, role: str | None,
                     latest: dict[str, str], writers: set[str],
                     checks: dict[str, str] | None = None) -> str | None:
    """Why a merge into the protected branch is not allowed yet (None: it may go ahead).

    ``latest`` is each reviewer's latest approving, change-requesting or dismissed review
    state; only reviewers with write access count, as on GitHub. ``checks`` is each required
    context's state on the head (bzzz/devhub/checks.py required_states): every one must be
    ``success``.
    """
    if protection is None or not binds(protection, role):
        return None
    for context in required_contexts(protection):
        state = (checks or {}).get(context, "expected")
        if state != "success":
            what = {"failure": "failing", "pending": "in progress"}.get(state, "expected")
            return f'Required status check "{context}" is {what}.'
    reviews = protection["required_pull_request_reviews"]
    if reviews is None:
        return None
    if any(state == "CHANGES_REQUESTED" and who in writers for who, state in latest.items()):
        return "Changes have been requested by reviewers with write access."
    need = reviews["required_approving_review_count"]
    have = sum(1 for who, state in latest.items() if state == "APPROVED" and who in writers)
    if have < need:
        return (f"At least {need} approving review is required by reviewers with write access."
                if need == 1 else
                f"At least {need} approving reviews are required by reviewers with write access.")
    return None


HOOK = '''#!{python} -I
"""devhub's update hook: GitHub's branch protection for pushes (GH006).

devhub passes the rules that bind this pusher in DEVHUB_PROTECTED (JSON: ref -> rule, see
bzzz/devhub/protection.py push_rule and refusals, whose logic this repeats)."""
import json
import os
import subprocess
import sys

ZERO = "0" * 40
ref, old, new = sys.argv[1:4]
rule = json.loads(os.environ.get("DEVHUB_PROTECTED") or "{{}}").get(ref)
if rule is not None:
    if new == ZERO:
        reasons = [] if rule["allow_deletions"] else ["{deletion}"]
    else:
        reasons = list(rule["reasons"])
        if old != ZERO and not rule["allow_force_pushes"] and subprocess.run(
                ["git", "merge-base", "--is-ancestor", old, new]).returncode != 0:
            reasons.append("{force}")
    if reasons:
        sys.stderr.write("error: GH006: Protected branch update failed for %s.\\n" % ref)
        for reason in reasons:
            sys.stderr.write("error: %s\\n" % reason)
        sys.exit(1)
'''


def hook_script() -> str:
    return HOOK.format(python=sys.executable, deletion=DELETION, force=FORCE_PUSH)
