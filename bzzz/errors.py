"""Bzzz's one error tree: every error Bzzz raises on purpose derives from ``BzzzError``.

Each layer owns a subtree and defines its classes in its own package; this module holds only
the roots, so that a caller can catch one layer's failures without importing its modules.
Foreign exceptions (``OSError``, ``httpx.HTTPError``, ``subprocess``'s, msgpack's,
py-libp2p's) are caught narrowly where they arise and translated into the layer's error at
that seam, with the original as ``__cause__``::

    BzzzError
    ├── SetupError          a node cannot start as configured
    │   ├── ConfigError         bzzz/config.py
    │   ├── IdentityError       bzzz/identity.py
    │   ├── LeaseError          bzzz/datalease.py (another process holds the data directory)
    │   ├── AgentError          bzzz/agent.py
    │   ├── MonitorError        bzzz/monitor/node.py
    │   ├── CliError            bzzz/cli.py
    │   ├── Libp2pPatchError    bzzz/p2p/patches.py (py-libp2p is not the version we patch)
    │   └── SecretFileError, TokenFileError   bzzz/monitor/callbacks.py, bzzz/monitor/bridge.py
    ├── InputError          outside input refused: counted or answered, never fatal
    │   ├── TaskError, TaskRequestError       bzzz/claim/task.py, bzzz/claim/newtask.py
    │   ├── EnvelopeError                     bzzz/p2p/envelope.py
    │   ├── HelpDrop                          bzzz/help/messages.py
    │   ├── EntryError, ProofError            bzzz/hyperlog/entries.py, bzzz/hyperlog/proof.py
    │   ├── CronError                         bzzz/schedule/core.py
    │   └── JobError                          bzzz/monitor/jobs.py
    ├── PolicyError         refused by one of our own rules
    │   ├── Denied, Unresolved                bzzz/monitor/egress.py (callback addresses)
    │   └── Refused                           bzzz/monitor/bridge.py (an answer other than 2xx)
    ├── PnetError           bzzz/p2p/pnet.py: a bad key file, a peer outside the network
    ├── GitHubError         bzzz/github/errors.py: RateLimited, Unavailable (CredentialError)
    ├── LogError            bzzz/hyperlog/store.py: LogCorrupt
    │   └── ReplicationError    bzzz/hyperlog/replicate.py: PeerMisbehaved, LogConflict,
    │                           ChannelClosed (ChannelTimeout)
    ├── ExecError           running a task
    │   ├── SandboxError, TaskUserError       bzzz/exec/sandbox.py, bzzz/exec/shell.py
    │   ├── EngineError                       bzzz/exec/container.py
    │   ├── LLMError                          bzzz/exec/llm.py
    │   └── Budget                            bzzz/exec/guardian/budgets.py (a check ran out)
    ├── RepoError           bzzz/repo/workspace.py; GitError in bzzz/repo/git.py, NotKept in
    │                       bzzz/repo/taskcommits.py (the task's commits fall back)
    ├── ClaimError          DeliveryError (bzzz/claim/delivery.py), IllegalTransition
    │                       (bzzz/claim/attempt.py: a bug, also a RuntimeError)
    └── HubError            devhub's answers (bzzz/devhub/errors.py); GitStoreError

Classes that were ``ValueError``s (input) or ``RuntimeError``s (bugs) stay so as well, so
callers that catch those still do.

Broad catches (``except Exception``) are kept only where one failure must not stop the rest
(a request handler, a peer's stream, a pubsub read loop, closing what may be gone), each with
a one-line reason; none only passes. Closing paths use ``closing_quietly``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["BzzzError", "ClaimError", "ExecError", "InputError", "PolicyError", "RepoError",
           "SetupError", "closing_quietly"]


class BzzzError(Exception):
    """The root of every error Bzzz raises on purpose."""


class SetupError(BzzzError):
    """A node cannot start as configured (the message says what to change)."""


class InputError(BzzzError):
    """Input from outside (a peer, an issue, a request) that is refused."""


class PolicyError(BzzzError):
    """Refused by one of our own rules."""


class ExecError(BzzzError):
    """Running a task failed for a reason of the node's, not the task's."""


class RepoError(BzzzError):
    """The mirror or a checkout cannot be prepared or delivered."""


class ClaimError(BzzzError):
    """Claiming, holding or delivering a task."""


@contextmanager
def closing_quietly(log: logging.Logger, what: str) -> Iterator[None]:
    """Close or reset something that may already be gone (a peer's stream, a connection):
    whatever that raises is logged at debug and goes no further. Never for real work."""
    try:
        yield
    except Exception as exc:  # closing what may be gone: any error, and none matters
        log.debug("closing %s: %s", what, type(exc).__name__)
