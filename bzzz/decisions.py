"""Every decision an agent takes goes through one interface (ARCHITECTURE.md principle 5).

``DecisionLog.append(entry)`` takes a dict with at least ``type``; a timestamp is added and
every string passes the redactor (bzzz/redact.py) before it is signed into the log. An
agent's decisions go to its signed, Hypercore-compatible log in ``data_dir/log``
(:class:`HyperlogDecisionLog`); tests use :class:`MemoryDecisionLog`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .redact import redact_value

if TYPE_CHECKING:
    from trio_typing import TaskStatus

    from .config import Config
    from .datalease import DataLease


class DecisionLog(Protocol):
    def append(self, entry: dict[str, Any]) -> int: ...

    @property
    def length(self) -> int: ...


class MemoryDecisionLog:
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def append(self, entry: dict[str, Any]) -> int:
        self.entries.append(redact_value({"ts": round(time.time(), 3), **entry}))
        return len(self.entries) - 1

    @property
    def length(self) -> int:
        return len(self.entries)


class HyperlogDecisionLog:
    """The signed log (bzzz/hyperlog) behind the decision interface, with group commit.

    ``append`` encodes the entry and queues it; while :meth:`run` is running, a flusher
    writes everything queued as one batch (one write, one fsync, one signature) in a worker
    thread, so decisions taken together cost one disk flush and the event loop never waits
    on the disk. Without the flusher (tests, tools) ``append`` writes at once. An entry is
    durable when :meth:`flushed` returns for its index.
    """

    def __init__(self, path: str | os.PathLike[str], seed: bytes) -> None:
        from .hyperlog.entries import BlobStore
        from .hyperlog.store import Hyperlog
        self.log = Hyperlog.create(path, seed)
        self.blobs = BlobStore(Path(path) / "blobs")
        self._pending: list[bytes] = []
        self._wake: Any = None  # a trio.Event while the flusher runs
        self._durable: Any = None
        self._inflight = 0  # entries being written by the flusher right now
        self.batches = 0
        self.errors = 0

    @property
    def key(self) -> str:
        return self.log.key.hex()

    @property
    def length(self) -> int:
        return self.log.length + self._inflight + len(self._pending)

    def append(self, entry: dict[str, Any]) -> int:
        from .hyperlog.entries import encode
        block = encode(redact_value({"ts": round(time.time(), 3), **entry}), self.blobs)
        self._pending.append(block)
        index = self.length - 1
        if self._wake is None:
            self._flush_now()
        else:
            self._wake.set()
        return index

    def _flush_now(self) -> None:
        batch, self._pending = self._pending, []
        if batch:
            self.log.append(batch)
            self.batches += 1

    async def run(self, task_status: TaskStatus[None] | None = None) -> None:
        import trio
        self._wake, self._durable = trio.Event(), trio.Condition()
        if task_status is not None:
            task_status.started()
        try:
            while True:
                await self._wake.wait()
                self._wake = trio.Event()
                batch, self._pending = self._pending, []
                if not batch:
                    continue
                self._inflight = len(batch)
                try:
                    await trio.to_thread.run_sync(self.log.append, batch)
                    self.batches += 1
                except OSError:
                    # the disk refused: keep the entries and try again shortly
                    self.errors += 1
                    self._pending[:0] = batch
                    self._inflight = 0
                    await trio.sleep(1.0)
                    self._wake.set()
                self._inflight = 0
                async with self._durable:
                    self._durable.notify_all()
        finally:
            self._wake = None
            with trio.CancelScope(shield=True):
                if self._pending:
                    await trio.to_thread.run_sync(self._flush_now)

    async def flushed(self, index: int) -> None:
        """Wait until entry ``index`` is on disk."""
        if self._durable is None:
            return
        async with self._durable:
            while self.log.length <= index:
                await self._durable.wait()

    def close(self) -> None:
        self._flush_now()
        self.log.close()


def open_data_dir(config: Config, peer_id: str, seed: bytes,
                  error: type[Exception] = RuntimeError
                  ) -> tuple[DataLease, HyperlogDecisionLog]:
    """(lease, log) of a node's data directory: the lease first (one live writer per
    directory, bzzz/datalease.py), given back at exit if a later start step fails, then the
    signed log. Problems are raised as ``error`` with one line."""
    import atexit

    from .datalease import DataLease, LeaseError
    from .hyperlog.store import LogError
    lease = DataLease(config.data_dir, config.node_id, peer_id, expiry=config.data_lease_expiry)
    try:
        lease.acquire()
    except LeaseError as exc:
        raise error(str(exc)) from None
    atexit.register(lease.release)
    try:
        log = HyperlogDecisionLog(config.data_dir / "log", seed)
    except (LogError, OSError) as exc:
        raise error(f"the log in {config.data_dir / 'log'}: {exc}") from None
    return lease, log
