"""Running devhub: in a trio nursery, in a background thread (for synchronous clients such as
PyGithub in tests), or as ``bzzz devhub``. State lives in memory and, with ``state_file``, is
saved atomically (write, fsync, rename) shortly after each change and on shutdown.

A test that only talks REST to devhub needs no server: ``bzzz.testing.inprocess`` gives its
httpx clients a transport that calls the app in process (``InProcessDevHub``)."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from ..asgi import serve_app
from ..fsutil import write_synced
from .app import DevHubApp
from .limits import RateLimits
from .state import Hub

if TYPE_CHECKING:
    import httpx
    from trio_typing import TaskStatus

SAVE_DELAY = 0.2


def load_state(path: Path) -> Hub:
    try:
        return Hub.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        return Hub()
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a devhub state file ({exc})") from None


def save_state(hub: Hub, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write_synced(tmp, json.dumps(hub.to_json()).encode())
    os.replace(tmp, path)


class DevHub:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, state_file: str | None = None,
                 seed: dict[str, Any] | None = None, limits: RateLimits | None = None) -> None:
        self.host, self.port = host, port
        self.state_file = Path(state_file) if state_file else None
        hub = load_state(self.state_file) if self.state_file else Hub()
        if seed:
            hub.seed(seed, int(time.time()))
        git_root = str(self.state_file) + ".git.d" if self.state_file else None
        self.app = DevHubApp(hub, limits, on_change=self._changed, git_root=git_root)
        self.url = ""
        self._changed_flag = False

    @property
    def hub(self) -> Hub:
        return self.app.hub

    def _changed(self) -> None:
        self._changed_flag = True

    def save(self) -> None:
        """Write the state file (when there is one)."""
        if self.state_file:
            save_state(self.hub, self.state_file)

    async def _saver(self) -> None:
        while True:
            await trio.sleep(SAVE_DELAY)
            if self._changed_flag and self.state_file:
                self._changed_flag = False
                save_state(self.hub, self.state_file)

    async def run(self, task_status: TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self.app.nursery = nursery
                if self.state_file:
                    nursery.start_soon(self._saver)
                bound = await nursery.start(
                    lambda task_status: serve_app(self.app, self.host, self.port,
                                                  keep_alive=30.0, task_status=task_status))
                self.url = (bound or [""])[0].replace("0.0.0.0", "127.0.0.1")
                task_status.started(self.url)
        finally:
            self.save()


class DevHubThread:
    """devhub on its own trio loop in a background thread: ``with DevHubThread(seed=...) as d``."""

    def __init__(self, **kwargs: Any) -> None:
        self.devhub = DevHub(**kwargs)
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._cancel: trio.CancelScope | None = None
        self.error: BaseException | None = None

    @property
    def url(self) -> str:
        return self.devhub.url

    @property
    def app(self) -> DevHubApp:
        return self.devhub.app

    def advance_clock(self, seconds: float = 1.0) -> None:
        """Move devhub's clock forward (timestamps have whole seconds, as GitHub's do): what
        a test does instead of sleeping until the next second (clock.py)."""
        self.devhub.app.clock.advance(seconds)

    def client(self, **kwargs: Any) -> httpx.Client:
        """A client on this devhub's URL (``httpx.Client``'s keywords). A test that needs
        no socket uses ``bzzz.testing.inprocess.InProcessDevHub``, which has this too."""
        import httpx  # only tests ask (devhub itself sends with httpx only for webhooks)

        return httpx.Client(base_url=self.url, **kwargs)

    def async_client(self, **kwargs: Any) -> httpx.AsyncClient:
        """An async client on this devhub's URL (``httpx.AsyncClient``'s keywords)."""
        import httpx

        return httpx.AsyncClient(base_url=self.url, **kwargs)

    def __enter__(self) -> "DevHubThread":
        def target() -> None:
            async def main() -> None:
                with trio.CancelScope() as scope:
                    self._cancel = scope
                    self._token = trio.lowlevel.current_trio_token()
                    async with trio.open_nursery() as nursery:
                        await nursery.start(self.devhub.run)
                        self._started.set()
            try:
                trio.run(main)
            except BaseException as exc:  # reported to the caller
                self.error = exc
                self._started.set()

        self._thread = threading.Thread(target=target, daemon=True, name="devhub")
        self._thread.start()
        self._started.wait(30)
        if self.error is not None or not self.url:
            raise RuntimeError(f"devhub did not start: {self.error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None and self._cancel is not None:
            try:  # thread-safe, and usable from inside another trio loop (async tests)
                self._token.run_sync_soon(self._cancel.cancel)
            except trio.RunFinishedError:
                pass
        if self._thread is not None:
            self._thread.join(10)
