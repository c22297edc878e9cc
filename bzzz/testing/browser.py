"""Headless Chromium for page tests and benchmarks: Debian's ``chromium`` driven by Playwright.

Playwright's own browser download (``playwright install``) is never used: the browser is
launched from ``executable_path``. Every page opened through :func:`watched_page` records its
requests, console errors and uncaught exceptions, and aborts (and records) any request that
would leave loopback; the browser itself resolves no host name but the loopback ones.

Screenshots go to :func:`artifacts_dir` (``$BZZZ_ARTIFACTS``, else ``.pytest-artifacts/``).
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")

# Nothing but loopback is resolvable, whatever a page or the browser's own services ask for.
NO_NETWORK_ARGS = [
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-domain-reliability", "--no-first-run", "--no-default-browser-check",
    "--disable-features=Translate,OptimizationHints,MediaRouter,InterestFeedContentSuggestions",
]


LEAVES_LOOPBACK = re.compile(
    r"^(?!(?:https?|wss?)://(?:127(?:\.\d{1,3}){3}|localhost|\[::1\])(?::\d+)?(?:[/?#]|$))"
    r"(?:https?|wss?|ftp)://")


def chromium_path() -> str | None:
    found = os.environ.get("BZZZ_CHROMIUM")
    if found:
        return found if os.access(found, os.X_OK) else None
    for candidate in CHROMIUM_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromium")


def available() -> tuple[bool, str]:
    """Whether page tests can run here (Playwright importable, a chromium binary)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False, "the Python package playwright is not installed (pip install -e '.[test]')"
    if chromium_path() is None:
        return False, "chromium is not installed (apt-get install chromium; .ci/system-deps.sh)"
    return True, ""


def launch(playwright: Any, **options: Any) -> Any:
    """A headless Chromium from Debian's binary (``--no-sandbox`` when running as root,
    where Chromium refuses its own sandbox)."""
    path = chromium_path()
    if path is None:
        raise RuntimeError(available()[1])
    args = list(NO_NETWORK_ARGS)
    if os.geteuid() == 0:
        args.append("--no-sandbox")
    args += options.pop("args", [])
    return playwright.chromium.launch(executable_path=path, headless=True, args=args,
                                      **options)


@contextmanager
def chromium(**options: Any) -> Iterator[Any]:
    """``with chromium() as browser:`` (Playwright's synchronous API)."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        browser = launch(pw, **options)
        try:
            yield browser
        finally:
            browser.close()


def is_loopback_url(url: str) -> bool:
    """Whether ``url`` stays on this machine (loopback hosts, or no network at all)."""
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about", "chrome-error", "chrome"):
        return True
    host = (parts.hostname or "").strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class Watched:
    """A page and what it did: every request URL, what was blocked, console errors and
    uncaught exceptions."""

    page: Any
    context: Any
    requests: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        """Everything that should not have happened, one line each."""
        return ([f"left loopback: {u}" for u in self.blocked]
                + [f"console error: {m}" for m in self.console_errors]
                + [f"page error: {m}" for m in self.page_errors])

    def wait(self, predicate: Any, seconds: float = 10.0, every_ms: int = 50) -> bool:
        """Poll ``predicate`` (a Python condition, e.g. on a server's state) until true or
        ``seconds`` pass, letting the browser's events run meanwhile (``time.sleep`` would
        stall them under Playwright's synchronous API)."""
        import time
        deadline = time.monotonic() + seconds
        while not predicate():
            if time.monotonic() >= deadline:
                return bool(predicate())
            self.page.wait_for_timeout(every_ms)
        return True

    def close(self) -> None:
        self.context.close()


def watched_page(browser: Any, *, viewport: dict[str, int] | None = None,
                 ignore_console: tuple[str, ...] = (), timeout_ms: float = 15_000,
                 **context_options: Any) -> Watched:
    """A new context and page whose requests are watched (see :class:`Watched`).
    ``ignore_console``: regular expressions of console errors a test expects;
    ``timeout_ms``: how long a wait on the page may take before it fails."""
    context = browser.new_context(viewport=viewport or {"width": 1280, "height": 900},
                                  **context_options)
    context.set_default_timeout(timeout_ms)
    page = context.new_page()
    watched = Watched(page=page, context=context)

    def refuse(route: Any) -> None:
        watched.blocked.append(route.request.url)
        route.abort("blockedbyclient")

    # Only what leaves loopback is intercepted (the pattern is matched inside the browser):
    # loopback requests never wait on this process, which would stall them whenever the
    # test blocks, and would slow every request of a benchmark.
    context.route(LEAVES_LOOPBACK, refuse)
    page.on("request", lambda request: watched.requests.append(request.url))

    def websocket(ws: Any) -> None:
        watched.requests.append(ws.url)
        if not is_loopback_url(ws.url):
            watched.blocked.append(ws.url)

    page.on("websocket", websocket)

    def console(message: Any) -> None:
        if message.type == "error" and not any(re.search(p, message.text)
                                               for p in ignore_console):
            watched.console_errors.append(message.text)

    page.on("console", console)
    page.on("pageerror", lambda exc: watched.page_errors.append(str(exc)))
    return watched


def artifacts_dir() -> Path:
    path = Path(os.environ.get("BZZZ_ARTIFACTS") or ".pytest-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def screenshot(page: Any, name: str, *, full_page: bool = True) -> Path:
    """Save a PNG of ``page`` as an artefact named ``name``; its path."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
    target = artifacts_dir() / f"{safe}.png"
    page.screenshot(path=str(target), full_page=full_page)
    return target
