"""What DevHubApp (app.py) gives the handler mixins it is made of (pulls.py, checks_api.py):
the hub's state, the git store, and its request helpers, declared once for the type checker."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .gitstore import GitStore
from .http import Request
from .render import Renderer
from .state import Hub, Repo


class Handlers:
    hub: Hub
    git: GitStore

    if TYPE_CHECKING:  # DevHubApp's (app.py)
        def _repo(self, req: Request, owner: str, repo: str) -> Repo: ...

        def _r(self, req: Request) -> Renderer: ...

        @staticmethod
        def _number(value: str) -> int: ...
