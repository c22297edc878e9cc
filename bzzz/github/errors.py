"""What a GitHub request can end in, as one tree (bzzz/github/client.py raises them)::

    GitHubError            an answer that is not what was asked (status, message)
    ├── RateLimited        the hourly budget is spent until ``reset``
    └── Unavailable        no useful answer after the retries: an outage, for the caller
"""

from __future__ import annotations

from ..errors import BzzzError


class GitHubError(BzzzError):
    def __init__(self, status: int, message: str, method: str = "", path: str = "") -> None:
        super().__init__(f"{method} {path}: {status} {message}".strip())
        self.status = status
        self.message = message


class RateLimited(GitHubError):
    def __init__(self, reset: float, method: str = "", path: str = "") -> None:
        super().__init__(403, f"rate limit exhausted until {int(reset)}", method, path)
        self.reset = reset


class Unavailable(GitHubError):
    """GitHub did not answer usefully after the retries (an outage, for the caller)."""
