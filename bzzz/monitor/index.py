"""The monitor's index of what it replicated: SQLite from the standard library.

Every verified decision of every agent's log becomes a row (``entries``: by log and
sequence, by task, by type; the text of each in a contentless FTS5 table), each task a row
(``tasks``: its state from the decisions and GitHub's labels, who holds it, its PR), each
log a row (``logs``: how far it is indexed). The page and the API answer from here, never
by rereading logs. Entries arrive in batches (one transaction each), so indexing keeps up
with replication; a restarted monitor resumes each log where its index stops.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .state import HOLDING, STATES, decision_state, label_state, newer

SCHEMA = """
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS logs (
    key TEXT PRIMARY KEY, peer_id TEXT, node_id TEXT, indexed INTEGER NOT NULL DEFAULT 0,
    version TEXT, capabilities TEXT, started REAL);
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY, key TEXT NOT NULL, seq INTEGER NOT NULL, ts REAL, type TEXT,
    repo TEXT, issue INTEGER, data TEXT, UNIQUE (key, seq));
CREATE INDEX IF NOT EXISTS entries_task ON entries (repo, issue, ts);
CREATE INDEX IF NOT EXISTS entries_type ON entries (type);
CREATE VIRTUAL TABLE IF NOT EXISTS entries_fts USING fts5 (text, content='');
CREATE TABLE IF NOT EXISTS tasks (
    repo TEXT NOT NULL, issue INTEGER NOT NULL, title TEXT, state TEXT NOT NULL,
    state_ts REAL NOT NULL, state_src INTEGER NOT NULL, agent TEXT, node TEXT,
    attempt INTEGER NOT NULL DEFAULT 0, updated REAL NOT NULL, pr INTEGER, pr_url TEXT,
    issue_url TEXT, had_pr INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (repo, issue));
CREATE INDEX IF NOT EXISTS tasks_updated ON tasks (updated);
"""
HELP_OUTCOMES = {"help_handed_over": "handed_over", "help_unanswered": "unanswered",
                 "help_exhausted": "exhausted"}
CONFLICT_TYPES = ("contention_lost",)
MAX_TEXT = 4096  # characters of an entry's text indexed for search


def _text(entry: dict[str, Any]) -> str:
    parts = []
    for key, value in entry.items():
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, (int, float)) and key in ("issue", "pr", "exit_code"):
            parts.append(str(value))
        elif isinstance(value, list):
            parts.extend(str(v) for v in value if isinstance(v, (str, int)))
    return " ".join(parts)[:MAX_TEXT]


@dataclass
class Task:
    repo: str
    issue: int
    title: str | None = None
    state: str = "waiting"
    state_ts: float = 0.0
    state_src: int = 0
    agent: str | None = None
    node: str | None = None
    attempt: int = 0
    updated: float = 0.0
    pr: int | None = None
    pr_url: str | None = None
    issue_url: str | None = None
    had_pr: bool = False

    def row(self) -> tuple:
        return (self.repo, self.issue, self.title, self.state, self.state_ts, self.state_src,
                self.agent, self.node, self.attempt, self.updated, self.pr, self.pr_url,
                self.issue_url, int(self.had_pr))

    def doc(self) -> dict[str, Any]:
        return {"repo": self.repo, "issue": self.issue, "title": self.title,
                "state": self.state, "agent": self.agent, "node": self.node,
                "attempt": self.attempt, "updated": self.updated,
                "issue_url": self.issue_url, "pr": self.pr, "pr_url": self.pr_url}


@dataclass
class Indexed:
    """One decision just indexed (what the live page is told)."""
    key: str
    peer_id: str
    node_id: str
    seq: int
    ts: float
    type: str
    repo: str | None
    issue: int | None

    def doc(self) -> dict[str, Any]:
        return {"peer_id": self.peer_id, "node_id": self.node_id, "seq": self.seq,
                "ts": self.ts, "type": self.type, "repo": self.repo, "issue": self.issue}


@dataclass
class LogInfo:
    key: str
    peer_id: str = ""
    node_id: str = ""
    indexed: int = 0
    version: str | None = None
    capabilities: list[str] = field(default_factory=list)
    started: float | None = None


class Index:
    def __init__(self, path: str | Path, clock=time.time) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.executescript(SCHEMA)
        self.clock = clock
        self.logs: dict[str, LogInfo] = {}
        for row in self.db.execute("SELECT key, peer_id, node_id, indexed, version, "
                                   "capabilities, started FROM logs"):
            self.logs[row[0]] = LogInfo(row[0], row[1] or "", row[2] or "", row[3], row[4],
                                        json.loads(row[5] or "[]"), row[6])
        self.tasks: dict[tuple[str, int], Task] = {}
        for row in self.db.execute("SELECT * FROM tasks"):
            t = Task(*row[:13], had_pr=bool(row[13]))
            self.tasks[(t.repo, t.issue)] = t
        self.types: Counter = Counter(dict(self.db.execute(
            "SELECT type, count(*) FROM entries GROUP BY type").fetchall()))
        self.total = sum(self.types.values())

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------------ writing

    def log_info(self, key: str) -> LogInfo:
        info = self.logs.get(key)
        if info is None:
            info = self.logs[key] = LogInfo(key)
        return info

    def add(self, key: str, peer_id: str, node_id: str, start: int,
            entries: Iterable[dict[str, Any] | None]) -> list[Indexed]:
        """Index the decisions at ``start``, ``start + 1``… of log ``key`` (None for a block
        that is not a decision: it still counts as indexed). Blocks already indexed are
        skipped, so replaying a range is harmless."""
        info = self.log_info(key)
        if peer_id:
            info.peer_id = peer_id
        if node_id:
            info.node_id = node_id
        rows, fts, out, touched = [], [], [], {}
        seq = start - 1
        for seq, entry in enumerate(entries, start):
            if seq < info.indexed or entry is None:
                continue
            kind = str(entry.get("type"))[:64]
            ts = entry.get("ts") if isinstance(entry.get("ts"), (int, float)) else 0.0
            repo = entry.get("repo") if isinstance(entry.get("repo"), str) else None
            issue = entry.get("issue") if isinstance(entry.get("issue"), int) else None
            data = json.dumps(entry, default=str, ensure_ascii=False)
            rows.append((key, seq, ts, kind, repo, issue, data))
            fts.append(_text(entry))
            self.types[kind] += 1
            if kind == "started":
                info.version = str(entry.get("version") or "") or info.version
                caps = entry.get("capabilities")
                info.capabilities = [str(c) for c in caps] if isinstance(caps, list) else []
                info.started = float(ts)
            if repo is not None and issue is not None:
                t = self._apply(repo, issue, entry, kind, float(ts), info)
                touched[(repo, issue)] = t
            out.append(Indexed(key, info.peer_id, info.node_id or str(entry.get("node") or ""),
                               seq, float(ts), kind, repo, issue))
        if seq + 1 <= info.indexed and not rows:
            return out
        info.indexed = max(info.indexed, seq + 1)
        db = self.db
        db.execute("BEGIN")
        try:
            if rows:
                first = db.execute("SELECT coalesce(max(id), 0) FROM entries").fetchone()[0] + 1
                db.executemany("INSERT OR IGNORE INTO entries (id, key, seq, ts, type, repo, "
                               "issue, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                               [(first + i, *r) for i, r in enumerate(rows)])
                db.executemany("INSERT INTO entries_fts (rowid, text) VALUES (?, ?)",
                               [(first + i, text) for i, text in enumerate(fts)])
            if touched:
                db.executemany("INSERT OR REPLACE INTO tasks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, "
                               "?, ?, ?, ?, ?)", [t.row() for t in touched.values()])
            db.execute("INSERT OR REPLACE INTO logs VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (key, info.peer_id, info.node_id, info.indexed, info.version,
                        json.dumps(info.capabilities), info.started))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self.total += len(rows)
        return out

    def _task(self, repo: str, issue: int) -> Task:
        t = self.tasks.get((repo, issue))
        if t is None:
            t = self.tasks[(repo, issue)] = Task(repo, issue)
        return t

    def _apply(self, repo: str, issue: int, entry: dict, kind: str, ts: float,
               info: LogInfo) -> Task:
        t = self._task(repo, issue)
        if kind in ("claimed", "taken_over"):
            t.had_pr = False
            gen = entry.get("generation")
            t.attempt = gen if isinstance(gen, int) else t.attempt + 1
            if isinstance(entry.get("title"), str) and not t.title:
                t.title = entry["title"][:300]
        if kind in ("pull_request", "result") and isinstance(entry.get("pr"), int):
            t.pr = entry["pr"]
            t.had_pr = True
            t.pr_url = entry.get("pr_url") if isinstance(entry.get("pr_url"), str) else t.pr_url
        state = decision_state(entry, t.had_pr)
        if state is not None and newer((state, ts, 1), (t.state, t.state_ts, t.state_src)):
            t.state, t.state_ts, t.state_src = state, ts, 1
            if kind in HOLDING:
                t.agent, t.node = info.peer_id or None, info.node_id or entry.get("node")
            elif state == "waiting":
                t.agent = t.node = None  # nobody holds it; a finished task keeps its doer
        t.updated = max(t.updated, ts)
        return t

    def observe_issue(self, repo: str, issue: int, title: str, labels: list[str], open_: bool,
                      updated: float, url: str | None) -> bool:
        """What a GitHub poll saw of a task issue; True when it changed the task."""
        t = self._task(repo, issue)
        before = t.row()
        t.title = title[:300] if title else t.title
        t.issue_url = url or t.issue_url
        state = label_state(labels, open_)
        if newer((state, updated, 0), (t.state, t.state_ts, t.state_src)) or t.state_ts == 0:
            if not (state == "claimed" and t.state == "running"):
                t.state, t.state_ts, t.state_src = state, updated, 0
            if state == "waiting":
                t.agent = t.node = None
        t.updated = max(t.updated, updated)
        if t.row() == before:
            return False
        self.db.execute("INSERT OR REPLACE INTO tasks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                        "?, ?, ?)", t.row())
        return True

    # ------------------------------------------------------------------ reading

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in STATES}
        for t in self.tasks.values():
            if t.state in out:
                out[t.state] += 1
        return out

    def holding(self) -> dict[str, list[dict]]:
        """peer id -> the tasks it holds now."""
        out: dict[str, list[dict]] = {}
        for t in self.tasks.values():
            if t.agent and t.state in ("claimed", "running"):
                out.setdefault(t.agent, []).append({"repo": t.repo, "issue": t.issue})
        return out

    def task_list(self, repo: str | None = None, state: str | None = None,
                  agent: str | None = None, limit: int = 100, offset: int = 0) -> dict:
        picked = [t for t in self.tasks.values()
                  if (repo is None or t.repo == repo) and (state is None or t.state == state)
                  and (agent is None or agent in (t.agent, t.node))]
        picked.sort(key=lambda t: (t.updated, t.repo, t.issue), reverse=True)
        return {"total": len(picked), "tasks": [t.doc() for t in picked[offset:offset + limit]]}

    def task(self, repo: str, issue: int) -> dict | None:
        t = self.tasks.get((repo, issue))
        if t is None:
            return None
        names = {k: (i.peer_id, i.node_id) for k, i in self.logs.items()}
        timeline = []
        for key, seq, ts, kind, data in self.db.execute(
                "SELECT key, seq, ts, type, data FROM entries WHERE repo = ? AND issue = ? "
                "ORDER BY ts, key, seq LIMIT 5000", (repo, issue)):
            peer, node = names.get(key, ("", ""))
            timeline.append({"ts": ts, "peer_id": peer, "node_id": node, "seq": seq,
                             "type": kind, "data": json.loads(data)})
        return {"task": t.doc(), "timeline": timeline}

    def log_entries(self, key: str, q: str | None = None, kind: str | None = None,
                    before: int | None = None, limit: int = 200) -> list[dict]:
        sql = "SELECT seq, ts, type, data FROM entries WHERE key = ?"
        args: list[Any] = [key]
        if kind:
            sql += " AND type = ?"
            args.append(kind)
        if before is not None:
            sql += " AND seq < ?"
            args.append(before)
        if q:
            phrase = '"' + q.replace('"', '""') + '"'
            sql += " AND id IN (SELECT rowid FROM entries_fts WHERE entries_fts MATCH ?)"
            args.append(phrase)
        sql += " ORDER BY seq DESC LIMIT ?"
        args.append(max(1, min(limit, 1000)))
        return [{"seq": s, "ts": ts, "type": k, "data": json.loads(d)}
                for s, ts, k, d in self.db.execute(sql, args)]

    def log_types(self, key: str) -> list[str]:
        return [r[0] for r in self.db.execute(
            "SELECT DISTINCT type FROM entries WHERE key = ? ORDER BY type", (key,))]

    def recent(self, limit: int = 50) -> list[dict]:
        names = {k: (i.peer_id, i.node_id) for k, i in self.logs.items()}
        out = []
        for key, seq, ts, kind, repo, issue in self.db.execute(
                "SELECT key, seq, ts, type, repo, issue FROM entries ORDER BY id DESC LIMIT ?",
                (limit,)):
            peer, node = names.get(key, ("", ""))
            out.append({"peer_id": peer, "node_id": node, "seq": seq, "ts": ts, "type": kind,
                        "repo": repo, "issue": issue})
        return out

    def help_outcomes(self) -> dict[str, int]:
        return {name: self.types.get(kind, 0) for kind, name in HELP_OUTCOMES.items()}

    def claim_conflicts(self) -> int:
        return sum(self.types.get(k, 0) for k in CONFLICT_TYPES)
