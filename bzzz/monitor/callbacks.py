"""Job callbacks: agents' verified decisions become signed POSTs to the job's ``callbackUrl``.

The monitor calls :meth:`Callbacks.observe` for every verified decision of every agent's log;
decisions about an issue that is a job (the bridge recorded it in the store) and that are job
events (bzzz/monitor/jobs.py ``event_of``: claimed, needs_input, pull_request, done, failed,
cancelled) are queued, per job, in the state directory. :meth:`Callbacks.run` delivers them:

- in order per job: an event is sent only once every earlier event of its job was delivered
  (or given up on); jobs do not wait for each other;
- at least once: a failed delivery (connection refused, a timeout, a non-2xx answer) is
  retried with jittered exponential backoff for up to ``retry_for`` seconds after the event;
  a restart resumes the queue (the exact bytes are stored, so a retry is byte-identical);
- once per event: the same event in two logs (two agents both saying done) is queued once,
  and every delivery carries ``deliveryId`` (and ``X-Bzzz-Delivery``), the same on every
  retry and on every monitor, for receivers to de-duplicate;
- signed: ``X-Bzzz-Signature-256: sha256=<hex HMAC-SHA256 of the body>``, keyed with the
  callback secret, as GitHub signs webhooks.

The URL is the user's: only http(s) (checked when the job is enqueued and again here), never
to a denied network (bzzz/monitor/egress.py: every non-public address unless
``monitor.callback_allow`` allows its network; checked on the resolved addresses at each delivery),
and redirects are not followed (a 3xx is refused, not retried).
"""

from __future__ import annotations

from ..errors import SetupError
import json
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import trio

from ..redact import register as register_secret
from .egress import DEFAULT_DENY, Denied, Network, Unresolved, parse_networks, resolve
from .jobs import STATUS_AFTER, JobError, check_callback_url, delivery_id, event_of, sign
from .jobstore import EventRow, JobStore

if TYPE_CHECKING:
    from trio_typing import TaskStatus

    from ..config import MonitorConfig

log = logging.getLogger("bzzz.monitor.callbacks")
USER_AGENT = "bzzz-monitor"


class SecretFileError(SetupError, ValueError):
    pass


def read_secret(path: str | Path) -> bytes:
    """The callback secret from its file (stripped, non-empty), kept out of every log."""
    try:
        secret = Path(path).read_text().strip()
    except OSError as exc:
        raise SecretFileError(f"monitor.callback_secret_file {path}: {exc.strerror}") from None
    if not secret:
        raise SecretFileError(f"monitor.callback_secret_file {path}: empty")
    register_secret(secret)
    return secret.encode()


class Callbacks:
    def __init__(self, store: JobStore, secret: bytes, *, retry_for: float = 86400.0,
                 backoff: float = 1.0, max_backoff: float = 300.0, timeout: float = 10.0,
                 concurrency: int = 8, clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None,
                 transport: httpx.AsyncBaseTransport | None = None,
                 deny: Sequence[Network] = parse_networks(DEFAULT_DENY),
                 allow: Sequence[Network] = ()) -> None:
        if not secret:
            raise ValueError("a callback secret is needed (monitor.callback_secret_file)")
        self.store = store
        self._secret = secret
        self.retry_for = retry_for
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.timeout = timeout
        self.clock = clock
        self._rng = rng or random.Random()
        self._limit = trio.CapacityLimiter(concurrency)
        self._transport = transport
        self.deny = tuple(deny)
        self.allow = tuple(allow)
        self._wake = trio.Event()
        self._busy: set[str] = set()  # jobs with a delivery in flight
        self.counts = {"observed": 0, "queued": 0, "duplicates": 0, "delivered": 0,
                       "failed_attempts": 0, "dropped": 0}

    @classmethod
    def from_config(cls, monitor: MonitorConfig, store: JobStore, **kw: Any) -> "Callbacks | None":
        """The callbacks a ``MonitorConfig`` asks for (None without callback_secret_file)."""
        if monitor.callback_secret_file is None:
            return None
        return cls(store, read_secret(monitor.callback_secret_file),
                   retry_for=monitor.callback_retry_for,
                   deny=parse_networks(monitor.callback_deny),
                   allow=parse_networks(monitor.callback_allow), **kw)

    def __repr__(self) -> str:  # never the secret
        return f"Callbacks(store={self.store.dir})"

    # ------------------------------------------------------------------ intake

    def observe(self, peer_id: str, node_id: str, entry: Mapping[str, Any]) -> str | None:
        """One verified decision from an agent's log (call it from the trio thread that runs
        :meth:`run`). Returns the event queued (None: not a
        job event, not a job, or already seen)."""
        self.counts["observed"] += 1
        repo, issue = entry.get("repo"), entry.get("issue")
        if not isinstance(repo, str) or not isinstance(issue, int) or isinstance(issue, bool):
            return None
        job = self.store.job_for_issue(repo, issue)
        if job is None:
            return None
        seen_key = json.dumps([peer_id, entry.get("type"), entry.get("ts"), repo.lower(), issue,
                               entry.get("generation"), entry.get("pr")], sort_keys=True)
        event = event_of(entry, job.attempt)
        if event is None or not self.store.seen_once(seen_key):
            return None
        ts = entry.get("ts")
        ts = float(ts) if isinstance(ts, (int, float)) and not isinstance(ts, bool) else self.clock()
        did = delivery_id(job.job_id, event.key)
        attempt = job.attempt + 1 if event.name == "claimed" else job.attempt
        payload = {"jobId": job.job_id, "event": event.name, "repo": job.request.get("repo"),
                   "issue": job.issue, "url": job.url,
                   "pr": event.pr if event.pr is not None else job.pr,
                   "agent": peer_id, "node": node_id, "attempt": attempt, "ts": ts,
                   "deliveryId": did, **event.extra}
        body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        update: dict[str, Any] = {"status": STATUS_AFTER[event.name], "agent": peer_id,
                                  "node": node_id}
        if event.name == "claimed":
            update["attempt"] = attempt
        if event.pr is not None:
            update["pr"] = event.pr
        now = self.clock()
        if not self.store.add_event(job, event.key, event.name, did, body,
                                    job.callback_url is not None, now, update):
            self.counts["duplicates"] += 1
            return None
        self.counts["queued"] += 1
        self._wake.set()
        return event.name

    # ------------------------------------------------------------------ delivery

    async def run(self, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with httpx.AsyncClient(follow_redirects=False, timeout=self.timeout,
                                     transport=self._transport,
                                     headers={"User-Agent": USER_AGENT}) as http, \
                trio.open_nursery() as nursery:
            task_status.started()
            while True:
                self._wake = trio.Event()
                now = self.clock()
                wait = 60.0
                for head, url in self.store.heads():
                    if head.job_id in self._busy:
                        continue
                    if head.next_at > now:
                        wait = min(wait, head.next_at - now)
                        continue
                    self._busy.add(head.job_id)
                    nursery.start_soon(self._drain, http, head.job_id, url)
                with trio.move_on_after(max(0.01, wait)):
                    await self._wake.wait()

    async def _drain(self, http: httpx.AsyncClient, job_id: str, url: str | None) -> None:
        """Deliver this job's due events in order, until one fails (it waits its backoff)."""
        try:
            async with self._limit:
                while True:
                    head = next(((h, u) for h, u in self.store.heads() if h.job_id == job_id),
                                None)
                    if head is None or head[0].next_at > self.clock():
                        return
                    if not await self._deliver(http, head[0], head[1]):
                        return
        finally:
            self._busy.discard(job_id)
            self._wake.set()

    async def _deliver(self, http: httpx.AsyncClient, ev: EventRow, url: str | None) -> bool:
        """One attempt; True when the queue may move on (delivered, or given up on)."""
        now = self.clock()
        if url is None:
            self.store.dropped(ev.seq, "no callback URL")
            return True
        try:
            check_callback_url(url)
            answer = await self._attempt(http, ev, url)
        except (JobError, Denied) as exc:
            self.store.dropped(ev.seq, str(exc))
            self.counts["dropped"] += 1
            log.warning("callback refused", extra={"job": ev.job_id, "event": ev.event,
                                                   "why": str(exc)})
            return True
        if isinstance(answer, str):
            error = answer
        elif 200 <= answer.status_code < 300:
            self.store.delivered(ev.seq, self.clock())
            self.counts["delivered"] += 1
            return True
        elif 300 <= answer.status_code < 400 or answer.status_code == 410:
            why = "a redirect (not followed)" if answer.status_code < 400 else "410 Gone"
            self.store.dropped(ev.seq, why)
            self.counts["dropped"] += 1
            log.warning("callback refused", extra={"job": ev.job_id, "event": ev.event,
                                                   "status": answer.status_code})
            return True
        else:
            error = f"HTTP {answer.status_code}"
        self.counts["failed_attempts"] += 1
        if now - ev.created >= self.retry_for:
            self.store.dropped(ev.seq, f"gave up after {ev.tries + 1} attempts: {error}")
            self.counts["dropped"] += 1
            log.warning("callback given up", extra={"job": ev.job_id, "event": ev.event,
                                                    "error": error})
            return True
        delay = min(self.max_backoff, self.backoff * 2 ** min(ev.tries, 30))
        delay *= 0.5 + self._rng.random() / 2
        self.store.failed(ev.seq, min(now + delay, ev.created + self.retry_for), error)
        log.info("callback will be retried", extra={"job": ev.job_id, "event": ev.event,
                                                    "error": error, "retry_in": round(delay, 2)})
        return False

    async def _attempt(self, http: httpx.AsyncClient, ev: EventRow,
                       url: str) -> httpx.Response | str:
        """POST the event to the URL's checked address: the answer, or why none came.
        Raises Denied when the host is (or resolves to) a denied network."""
        try:
            target = await resolve(url, self.deny, self.allow)
        except Unresolved as exc:
            return str(exc)
        headers = {"Content-Type": "application/json", "X-Bzzz-Event": ev.event,
                   "X-Bzzz-Delivery": ev.delivery_id,
                   "X-Bzzz-Signature-256": sign(self._secret, ev.body),
                   "Host": target.host_header}
        ext = {"sni_hostname": target.server_name} if target.server_name else None
        try:
            return await http.post(target.url, content=ev.body, headers=headers,
                                   extensions=ext)
        except httpx.HTTPError as exc:
            return type(exc).__name__

    def pending(self) -> int:
        return len(self.store.heads())
