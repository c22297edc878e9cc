"""devhub's API error: what it answers instead of a resource, as GitHub does."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import BzzzError


class HubError(BzzzError):
    """An API error: HTTP status and GitHub's message."""

    def __init__(self, status: int, message: str,
                 errors: Sequence[dict[str, Any] | str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors: list[dict[str, Any] | str] = list(errors or [])
