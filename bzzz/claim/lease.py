"""The claim lock's protocol core (no I/O; time passed in).

The lock is the git ref ``refs/bzzz/claims/<issue>``. It points at a *claim commit* whose
message records who holds the task and until when:

    bzzz claim acme/widgets#17

    node: worker-3
    peer: 12D3KooW...
    login: bzzz-bot
    lease-expires: 1795450000
    generation: 4

- Claim: create the ref (GitHub answers 201 to exactly one creator, 422 to the rest).
- Renew: every third of the lease, fast-forward the ref to a child commit with a later
  expiry (``force=false``: only a descendant of the current claim commit is accepted).
- Take over an expired lease: the same fast-forward, from the commit we read; if two try,
  one wins and the other's update is not a fast-forward any more.
- A holder that finds the ref moved (or gone) has lost the task and stops at once.

Who holds the task is decided by the ref, never by the assignee: agents sharing one GitHub
login are told apart by node and peer id.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

CLAIM_REF_PREFIX = "refs/bzzz/claims/"
DEFAULT_LEASE = 60.0
TAKEOVER_GRACE = 5.0  # clock skew allowance before an expired lease may be taken over
_FIELDS = ("node", "peer", "login", "lease-expires", "generation")


def claim_ref(number: int) -> str:
    return f"{CLAIM_REF_PREFIX}{number}"


@dataclass(frozen=True)
class Claim:
    task: str  # "owner/repo#number"
    node: str
    peer: str
    login: str
    lease_expires: float
    generation: int = 1
    # help requests made for this task so far, one JSON object each (see bzzz/help): the
    # claim carries them across renewals, handoffs and takeovers, so the count is mesh-wide
    help: tuple[str, ...] = ()

    def holder(self) -> tuple[str, str]:
        return self.node, self.peer

    def message(self) -> str:
        return (f"bzzz claim {self.task}\n\nnode: {self.node}\npeer: {self.peer}\n"
                f"login: {self.login}\nlease-expires: {int(self.lease_expires)}\n"
                f"generation: {self.generation}\n" + "".join(f"help: {h}\n" for h in self.help))

    def renewed(self, now: float, lease: float) -> "Claim":
        return replace(self, lease_expires=now + lease, generation=self.generation + 1)

    def taken_over_by(self, node: str, peer: str, login: str, now: float,
                      lease: float, help_entry: str | None = None) -> "Claim":
        """The claim for a new holder (a takeover, or a handoff with its help entry)."""
        history = self.help + ((help_entry,) if help_entry else ())
        return Claim(self.task, node, peer, login, now + lease, self.generation + 1, history)

    def with_help(self, entry: str) -> "Claim":
        return replace(self, help=self.help + (entry,))


def parse_claim(message: str) -> Claim | None:
    """A Claim from a claim commit message; None when it is not one (treated as foreign)."""
    lines = message.strip().splitlines()
    if not lines or not lines[0].startswith("bzzz claim "):
        return None
    values: dict[str, str] = {}
    history: list[str] = []
    for line in lines[1:]:
        key, sep, value = line.partition(":")
        if sep and key.strip() == "help" and len(history) < 20:
            history.append(value.strip())
        elif sep and key.strip() in _FIELDS:
            values[key.strip()] = value.strip()
    try:
        return Claim(task=lines[0][len("bzzz claim "):].strip(), node=values["node"],
                     peer=values["peer"], login=values.get("login", ""),
                     lease_expires=float(values["lease-expires"]),
                     generation=int(values.get("generation", "1")), help=tuple(history))
    except (KeyError, ValueError):
        return None


def renewal_due(claim: Claim, now: float, lease: float) -> bool:
    """Renew once a third of the lease has passed (two thirds are left as margin)."""
    return now >= claim.lease_expires - lease * 2 / 3


def expired(claim: Claim | None, now: float, commit_time: float,
            lease: float = DEFAULT_LEASE, grace: float = TAKEOVER_GRACE) -> bool:
    """Whether a claim may be taken over. An unreadable claim commit counts as a lease of
    the default length from the commit's own time, so garbage cannot block a task forever."""
    until = claim.lease_expires if claim is not None else commit_time + lease
    return now > until + grace


def still_held(mine_sha: str, current_sha: str | None) -> bool:
    """The holder's check before and while running: the ref must still be our commit."""
    return current_sha is not None and current_sha == mine_sha
