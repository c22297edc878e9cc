"""What this node offers: tools found on the machine, an Ollama endpoint's models, configured extras."""

from __future__ import annotations

import shutil
from collections.abc import Iterable

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


def detect_tools(which=shutil.which) -> list[str]:
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
