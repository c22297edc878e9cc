"""What a node offers and whether it meets a need.

Detection (I/O): tools found on the machine, an Ollama endpoint's models, configured extras.
Matching (a core, no I/O), used by claiming (bzzz/claim/task.py) and by help
(bzzz/help/router.py) alike: ``capability_met``, ``matches`` and :class:`PeerView`, what the
peer table says about another node."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import httpx

# capability name -> executables that provide it (any one is enough)
TOOLS: dict[str, tuple[str, ...]] = {
    "shell": ("sh",),
    "git": ("git",),
    "docker": ("docker",),
    "python": ("python3", "python"),
    "node": ("node",),
    "make": ("make",),
    "gcc": ("gcc", "cc"),
    "go": ("go",),
    "cargo": ("cargo",),
    "java": ("java",),
    "curl": ("curl",),
}
DEFAULT_OLLAMA_URL = "http://127.0.0.1:11434"


def detect_tools(which: Callable[[str], str | None] = shutil.which) -> list[str]:
    return [cap for cap, exes in TOOLS.items() if any(which(e) for e in exes)]


def ollama_models(url: str, timeout: float = 0.5) -> list[str]:
    """``ollama:<model>`` for each model an Ollama endpoint serves; [] if it does not answer."""
    try:
        resp = httpx.get(url.rstrip("/") + "/api/tags", timeout=timeout)
        resp.raise_for_status()
        models = resp.json().get("models", [])
    except (httpx.HTTPError, ValueError, AttributeError):
        return []
    caps = ["ollama"]
    for model in models if isinstance(models, list) else []:
        name = model.get("name") if isinstance(model, dict) else None
        if isinstance(name, str) and name:
            caps.append("ollama:" + name.removesuffix(":latest"))
    return caps


def merge(*groups: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for group in groups:
        for cap in group:
            cap = cap.strip()
            if cap:
                seen.setdefault(cap, None)
    return list(seen)


def detect(configured: list[str] | None, detect_machine: bool = True,
           ollama_url: str | None = None) -> list[str]:
    """Configured capabilities plus, unless switched off, what the machine has."""
    found: list[str] = []
    if detect_machine:
        found = detect_tools() + ollama_models(ollama_url or DEFAULT_OLLAMA_URL)
    return merge(configured or [], found)


# ---------------------------------------------------------------------- matching (no I/O)

def capability_met(need: str, capabilities: Iterable[str]) -> bool:
    """``need`` is offered as such, or (a bare name) as any of its kinds: ``ollama`` is met
    by ``ollama:llama3``."""
    caps = set(capabilities)
    if need in caps:
        return True
    return ":" not in need and any(c.startswith(need + ":") for c in caps)


def matches(needs: Sequence[str], capabilities: Sequence[str]) -> bool:
    return all(capability_met(n, capabilities) for n in needs)


@dataclass(frozen=True)
class PeerView:
    """What the peer table says about another node."""

    peer_id: str
    capabilities: tuple[str, ...]
    running: int
    max_tasks: int
    age: float = 0.0  # seconds since last heard
