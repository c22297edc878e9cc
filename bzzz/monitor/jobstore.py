"""What the bridge and the callbacks keep in the state directory (SQLite, one file).

- ``jobs``: every job this monitor accepted: its normalised request (never a token), the
  origin (token name), the issue once filed, its status, attempt and pull request;
- ``events``: per job, the events seen, in order, each with its delivery id, the exact
  bytes to POST and its delivery state, so a restart loses nothing and retries send the
  same signed body;
- ``seen``: decisions already observed (the same log entry indexed twice counts once).

Every change is one transaction (``synchronous=FULL``): when a call returns, it is on disk.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
  job_id TEXT PRIMARY KEY, repo TEXT NOT NULL, digest TEXT NOT NULL, origin TEXT NOT NULL,
  request TEXT NOT NULL, callback_url TEXT, issue INTEGER, url TEXT,
  status TEXT NOT NULL DEFAULT 'reserving', attempt INTEGER NOT NULL DEFAULT 0,
  pr INTEGER, agent TEXT, node TEXT, reserved_at REAL NOT NULL, filed_at REAL,
  updated REAL NOT NULL, cancel_requested REAL);
CREATE INDEX IF NOT EXISTS jobs_issue ON jobs (repo, issue);
CREATE TABLE IF NOT EXISTS events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT NOT NULL, key TEXT NOT NULL,
  event TEXT NOT NULL, delivery_id TEXT NOT NULL, body BLOB NOT NULL,
  state TEXT NOT NULL,            -- pending | delivered | dropped | none (no callback)
  tries INTEGER NOT NULL DEFAULT 0, next_at REAL NOT NULL, created REAL NOT NULL,
  observed REAL NOT NULL, delivered_at REAL, last_error TEXT,
  UNIQUE (job_id, key));
CREATE INDEX IF NOT EXISTS events_pending ON events (state, job_id, seq);
CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY);
"""


@dataclass
class JobRow:
    job_id: str
    repo: str
    digest: str
    origin: str
    request: dict[str, Any]
    callback_url: str | None
    issue: int | None
    url: str | None
    status: str
    attempt: int
    pr: int | None
    agent: str | None
    node: str | None
    reserved_at: float
    filed_at: float | None
    updated: float
    cancel_requested: float | None


@dataclass
class EventRow:
    seq: int
    job_id: str
    key: str
    event: str
    delivery_id: str
    body: bytes
    state: str
    tries: int
    next_at: float
    created: float
    observed: float
    delivered_at: float | None
    last_error: str | None


class JobStore:
    def __init__(self, state_dir: str | Path) -> None:
        self.dir = Path(state_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.dir / "jobs.sqlite3", isolation_level=None,
                                  check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)
        self.instance = self._instance()

    def close(self) -> None:
        self.db.close()

    def _instance(self) -> str:
        """This monitor's id (kept across restarts): a reservation it made is its own."""
        row = self.db.execute("SELECT value FROM meta WHERE key='instance'").fetchone()
        if row:
            kept: str = row[0]
            return kept
        value = uuid.uuid4().hex
        self.db.execute("INSERT OR IGNORE INTO meta VALUES ('instance', ?)", (value,))
        first: str = self.db.execute("SELECT value FROM meta WHERE key='instance'").fetchone()[0]
        return first

    # ------------------------------------------------------------------ jobs

    @staticmethod
    def _job(row: sqlite3.Row) -> JobRow:
        d = dict(row)
        d["request"] = json.loads(d["request"])
        return JobRow(**d)

    def _one(self, query: str, args: tuple[str | int, ...]) -> JobRow | None:
        row = self.db.execute(query, args).fetchone()
        return None if row is None else self._job(row)

    def job(self, job_id: str) -> JobRow | None:
        return self._one("SELECT * FROM jobs WHERE job_id=?", (job_id,))

    def recorded(self, job_id: str) -> JobRow:
        """A job the caller has just written (reserved or filed, with no await since): it is
        there."""
        job = self.job(job_id)
        assert job is not None, f"job {job_id} is not recorded"
        return job

    def job_for_issue(self, repo: str, issue: int) -> JobRow | None:
        return self._one("SELECT * FROM jobs WHERE repo=? AND issue=?", (repo.lower(), issue))

    def unfiled(self) -> list[JobRow]:
        rows = self.db.execute("SELECT * FROM jobs WHERE issue IS NULL ORDER BY reserved_at")
        return [self._job(r) for r in rows]

    def reserve(self, job_id: str, repo: str, digest: str, origin: str, request: dict[str, Any],
                callback_url: str | None, now: float | None = None) -> JobRow:
        """Record a job before anything is written to GitHub (so a crash after the
        reservation is finished on restart); the existing row if there is one."""
        now = time.time() if now is None else now
        self.db.execute(
            "INSERT OR IGNORE INTO jobs (job_id, repo, digest, origin, request, callback_url,"
            " reserved_at, updated) VALUES (?,?,?,?,?,?,?,?)",
            (job_id, repo.lower(), digest, origin, json.dumps(request, sort_keys=True),
             callback_url, now, now))
        return self.recorded(job_id)

    def forget(self, job_id: str) -> None:
        """Drop a job that never got an issue here (another monitor holds it differently)."""
        self.db.execute("DELETE FROM jobs WHERE job_id=? AND issue IS NULL", (job_id,))

    def filed(self, job_id: str, issue: int, url: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        self.db.execute("UPDATE jobs SET issue=?, url=?, filed_at=?, updated=?,"
                        " status=CASE status WHEN 'reserving' THEN 'queued' ELSE status END"
                        " WHERE job_id=?", (issue, url, now, now, job_id))

    def adopt(self, job_id: str, repo: str, digest: str, origin: str, request: dict[str, Any],
              callback_url: str | None, issue: int, url: str) -> JobRow:
        """A job another monitor filed, replayed here: remember it (and its callback)."""
        now = time.time()
        self.reserve(job_id, repo, digest, origin, request, callback_url, now)
        self.filed(job_id, issue, url, now)
        return self.recorded(job_id)

    def cancel_requested(self, job_id: str, now: float | None = None) -> None:
        self.db.execute("UPDATE jobs SET cancel_requested=?, updated=? WHERE job_id=?",
                        (time.time() if now is None else now, time.time(), job_id))

    # ------------------------------------------------------------------ events

    def seen_once(self, key: str) -> bool:
        """True the first time ``key`` is seen (and remembers it)."""
        cur = self.db.execute("INSERT OR IGNORE INTO seen VALUES (?)", (key,))
        return cur.rowcount == 1

    def add_event(self, job: JobRow, key: str, event: str, delivery_id: str, body: bytes,
                  deliver: bool, now: float, job_update: dict[str, Any]) -> bool:
        """Queue an event (False: this job already had it) and update the job, atomically."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            cur = self.db.execute(
                "INSERT OR IGNORE INTO events (job_id, key, event, delivery_id, body, state,"
                " next_at, created, observed) VALUES (?,?,?,?,?,?,?,?,?)",
                (job.job_id, key, event, delivery_id, body, "pending" if deliver else "none",
                 now, now, now))
            if cur.rowcount != 1:
                return False
            if job_update:
                sets = ", ".join(f"{k}=?" for k in job_update)
                self.db.execute(f"UPDATE jobs SET {sets}, updated=? WHERE job_id=?",
                                (*job_update.values(), now, job.job_id))
        return True

    def events(self, job_id: str) -> list[EventRow]:
        rows = self.db.execute("SELECT * FROM events WHERE job_id=? ORDER BY seq", (job_id,))
        return [EventRow(**dict(r)) for r in rows]

    def heads(self) -> list[tuple[EventRow, str]]:
        """The first undelivered event of each job that has one, with its callback URL."""
        rows = self.db.execute(
            "SELECT e.*, j.callback_url AS url FROM events e JOIN jobs j USING (job_id)"
            " WHERE e.seq IN (SELECT MIN(seq) FROM events WHERE state='pending'"
            " GROUP BY job_id) ORDER BY e.next_at")
        out = []
        for r in rows:
            d = dict(r)
            url = d.pop("url")
            out.append((EventRow(**d), url))
        return out

    def delivered(self, seq: int, now: float) -> None:
        self.db.execute("UPDATE events SET state='delivered', delivered_at=?, tries=tries+1,"
                        " last_error=NULL WHERE seq=?", (now, seq))

    def failed(self, seq: int, next_at: float, error: str) -> None:
        self.db.execute("UPDATE events SET tries=tries+1, next_at=?, last_error=? WHERE seq=?",
                        (next_at, error[:500], seq))

    def dropped(self, seq: int, error: str) -> None:
        self.db.execute("UPDATE events SET state='dropped', tries=tries+1, last_error=?"
                        " WHERE seq=?", (error[:500], seq))
