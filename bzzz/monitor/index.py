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
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..kinds import Decision
from ..hyperlog.entries import decode
from .state import HOLDING, SETTLED, STATES, decision_state, label_state, newer, overruled
from .trust import CLAIMS, COMMAND, Trust

SCHEMA = """
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA cache_size = -1024;
CREATE TABLE IF NOT EXISTS logs (
    key TEXT PRIMARY KEY, no INTEGER NOT NULL UNIQUE, peer_id TEXT, node_id TEXT,
    indexed INTEGER NOT NULL DEFAULT 0, version TEXT, capabilities TEXT, started REAL);
-- id = log number << 32 | sequence: one log's entries are one range of the table
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY, ts REAL, type TEXT, repo TEXT, issue INTEGER, block BLOB);
CREATE INDEX IF NOT EXISTS entries_task ON entries (repo, issue, ts) WHERE repo IS NOT NULL;
-- the text of entries that carry some (results, questions, errors), for the log viewer
CREATE VIRTUAL TABLE IF NOT EXISTS entries_fts USING fts5 (text, content='');
CREATE TABLE IF NOT EXISTS type_counts (type TEXT PRIMARY KEY, n INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    repo TEXT NOT NULL, issue INTEGER NOT NULL, title TEXT, state TEXT NOT NULL,
    state_ts REAL NOT NULL, state_src INTEGER NOT NULL, agent TEXT, node TEXT,
    attempt INTEGER NOT NULL DEFAULT 0, updated REAL NOT NULL, pr INTEGER, pr_url TEXT,
    issue_url TEXT, had_pr INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (repo, issue));
-- whether a log's latest claim of a task counted (bzzz/monitor/trust.py): the log's other
-- decisions about that task count only then
CREATE TABLE IF NOT EXISTS holds (
    key TEXT NOT NULL, repo TEXT NOT NULL, issue INTEGER NOT NULL, ok INTEGER NOT NULL,
    PRIMARY KEY (key, repo, issue));
"""
SEQ_BITS = 32
# the fields whose text is searchable (the rest is structure: type, repo, numbers)
TEXT_KINDS = {"result", "asked", "needs_input", "attempt_failed", "attempt_crashed",
              "checkout_failed", "claim_abandoned", "report_failed", "guardian_refused",
              "github_unavailable", "llm_answer", "cancelled", "help_declined", "claimed",
              "task_filed", "input_timed_out", "help_exhausted", "commit"}
TEXT_FIELDS = ("output", "question", "error", "reason", "title", "summary", "message")
HELP_OUTCOMES = {"help_handed_over": "handed_over", "help_unanswered": "unanswered",
                 "help_exhausted": "exhausted"}
CONFLICT_TYPES = ("contention_lost",)
# the decisions job callbacks are made of (bzzz/monitor/jobs.py event_of)
OBSERVED = {"claimed", "taken_over", "needs_input", "asked", "pull_request", "reported",
            "cancelled", "command"}
LIVE = 100  # indexed decisions of one batch announced to live subscribers (the newest)
RECENT = 200  # indexed decisions kept for the mesh document's "recent"
MAX_TEXT = 4096  # characters of an entry's text indexed for search


def _text(entry: dict[str, Any]) -> str:
    parts = [entry[k] for k in TEXT_FIELDS if isinstance(entry.get(k), str)]
    return " ".join(parts)[:MAX_TEXT]


# a task's row in the ``tasks`` table, in its columns' order
TaskRow = tuple[str, int, str | None, str, float, int, str | None, str | None, int, float,
                int | None, str | None, str | None, int]
# an entry's row in the ``entries`` table: id, ts, type, repo, issue, block
EntryRow = tuple[int, float, str, str | None, int | None, bytes]
# the holds of claims: (log key, repo lowered, issue) -> whether the log's latest claim counted
Hold = tuple[str, str, int]
# told of every decision about a task that counts: (peer id, node id, entry)
OnEntry = Callable[[str, str, Mapping[str, Any]], object]


def _row(block: bytes) -> dict[str, Any]:
    return decode(block) or {"type": "(not a decision)"}


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
    # GitHub's latest word on the task: (state, time); not stored (the next poll tells again)
    github: tuple[str, float] | None = None

    def row(self) -> TaskRow:
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
    no: int = 0
    peer_id: str = ""
    node_id: str = ""
    indexed: int = 0
    version: str | None = None
    capabilities: list[str] = field(default_factory=list)
    started: float | None = None


class Index:
    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.executescript(SCHEMA)
        self.clock = clock
        self.logs: dict[str, LogInfo] = {}
        for row in self.db.execute("SELECT key, no, peer_id, node_id, indexed, version, "
                                   "capabilities, started FROM logs"):
            self.logs[row[0]] = LogInfo(row[0], row[1], row[2] or "", row[3] or "", row[4],
                                        row[5], json.loads(row[6] or "[]"), row[7])
        self.tasks: dict[tuple[str, int], Task] = {}
        for row in self.db.execute("SELECT * FROM tasks"):
            t = Task(*row[:13])
            t.had_pr = bool(row[13])
            self.tasks[(t.repo, t.issue)] = t
        self.holds: dict[Hold, bool] = {
            (k, r, i): bool(ok) for k, r, i, ok in self.db.execute("SELECT * FROM holds")}
        self.types: Counter[str] = Counter(dict(self.db.execute(
            "SELECT type, n FROM type_counts").fetchall()))
        self.total = sum(self.types.values())
        self._recent: deque[Indexed] = deque(maxlen=RECENT)
        # told of every decision about a task as it is indexed: (peer id, node id, entry)
        self.on_entry: OnEntry | None = None

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------------ writing

    def log_info(self, key: str) -> LogInfo:
        info = self.logs.get(key)
        if info is None:
            no = 1 + max((i.no for i in self.logs.values()), default=0)
            info = self.logs[key] = LogInfo(key, no)
        return info

    def _by_no(self) -> dict[int, LogInfo]:
        return {i.no: i for i in self.logs.values()}

    def add(self, key: str, peer_id: str, node_id: str, start: int,
            blocks: Iterable[bytes], trust: Trust | None = None,
            entries: Sequence[dict[str, Any] | None] | None = None) -> list[Indexed]:
        """Index the blocks at ``start``, ``start + 1``… of log ``key`` (a block that is not
        a decision still counts as indexed). Blocks already indexed are skipped, so
        replaying a range is harmless. One transaction.

        With ``trust``, a decision about a task changes the task (and is told to
        ``on_entry``) only when it counts (bzzz/monitor/trust.py); every decision is indexed
        all the same. ``entries``: the blocks already decoded, one per block."""
        info = self.log_info(key)
        if peer_id:
            info.peer_id = peer_id
        if node_id:
            info.node_id = node_id
        rows: list[EntryRow] = []
        fts: list[tuple[int, str]] = []
        found: list[tuple[int, float, str, str | None, int | None, Any]] = []
        touched: dict[tuple[str, int], Task] = {}
        holds: dict[Hold, bool] = {}
        kinds: Counter[str] = Counter()
        base = info.no << SEQ_BITS
        seq = start - 1
        for seq, block in enumerate(blocks, start):
            if seq < info.indexed:
                continue
            entry = entries[seq - start] if entries is not None else decode(block)
            if entry is None:
                continue
            kind = str(entry.get("type"))[:64]
            ts = entry.get("ts")
            ts = float(ts) if isinstance(ts, (int, float)) else 0.0
            repo = entry.get("repo") if isinstance(entry.get("repo"), str) else None
            issue = entry.get("issue") if isinstance(entry.get("issue"), int) else None
            rows.append((base | seq, ts, kind, repo, issue, bytes(block)))
            if kind in TEXT_KINDS:
                text = _text(entry)
                if text:
                    fts.append((base | seq, text))
            kinds[kind] += 1
            if kind == Decision.STARTED:
                _note_start(info, entry, ts)
            if repo is not None and issue is not None and (
                    trust is None or self._counts(info, repo, issue, kind, entry, trust, holds)):
                task, applied = self._apply(repo, issue, entry, kind, ts, info)
                touched[(repo, issue)] = task
                if self.on_entry is not None and kind in OBSERVED and applied:
                    self.on_entry(info.peer_id, info.node_id, entry)
            found.append((seq, ts, kind, repo, issue, entry.get("node")))
        # what the live page is told: a backlog's last decisions, not thousands of them
        out = [Indexed(key, info.peer_id, info.node_id or str(node or ""), seq_, ts_, kind_,
                       repo_, issue_) for seq_, ts_, kind_, repo_, issue_, node in found[-LIVE:]]
        if seq + 1 <= info.indexed:
            return out
        info.indexed = seq + 1
        self._store(key, info, rows, fts, holds, touched, kinds)
        self.holds.update(holds)
        self.types.update(kinds)
        self.total += len(rows)
        self._recent.extend(out[-RECENT:])
        return out

    def _store(self, key: str, info: LogInfo, rows: list[EntryRow], fts: list[tuple[int, str]],
               holds: dict[Hold, bool], touched: dict[tuple[str, int], Task],
               kinds: Counter[str]) -> None:
        """One transaction: the entries, their text, holds, the tasks touched, the counts
        per type and the log's row; all or nothing."""
        db = self.db
        db.execute("BEGIN")
        try:
            db.executemany("INSERT OR IGNORE INTO entries VALUES (?, ?, ?, ?, ?, ?)", rows)
            if fts:
                db.executemany("INSERT INTO entries_fts (rowid, text) VALUES (?, ?)", fts)
            if holds:
                db.executemany("INSERT OR REPLACE INTO holds VALUES (?, ?, ?, ?)",
                               [(*k, int(ok)) for k, ok in holds.items()])
            if touched:
                db.executemany("INSERT OR REPLACE INTO tasks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, "
                               "?, ?, ?, ?, ?)", [t.row() for t in touched.values()])
            db.executemany("INSERT INTO type_counts VALUES (?, ?) ON CONFLICT (type) "
                           "DO UPDATE SET n = n + excluded.n", list(kinds.items()))
            db.execute("INSERT OR REPLACE INTO logs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (key, info.no, info.peer_id, info.node_id, info.indexed, info.version,
                        json.dumps(info.capabilities), info.started))
            db.execute("COMMIT")
        except BaseException:  # all or nothing, whatever stopped it (a cancellation too)
            db.execute("ROLLBACK")
            raise

    def _task(self, repo: str, issue: int) -> Task:
        t = self.tasks.get((repo, issue))
        if t is None:
            t = self.tasks[(repo, issue)] = Task(repo, issue)
        return t

    def _counts(self, info: LogInfo, repo: str, issue: int, kind: str, entry: dict[str, Any],
                trust: Trust, holds: dict[Hold, bool]) -> bool:
        """Whether a decision about a task may change it (bzzz/monitor/trust.py)."""
        if not trust.timely(entry):
            trust.refuse("future")
            return False
        hold = (info.key, repo.lower(), issue)
        if kind in CLAIMS:
            ok = holds[hold] = trust.verdict(info.peer_id, entry)
        elif kind == COMMAND:
            ok = trust.verdict(info.peer_id, entry)
        else:
            ok = holds.get(hold, self.holds.get(hold, False))
        if not ok:
            trust.refuse("command" if kind == COMMAND else "no_claim")
        return ok

    def _apply(self, repo: str, issue: int, entry: dict[str, Any], kind: str, ts: float,
               info: LogInfo) -> tuple[Task, bool]:
        """Fold a decision into its task; (the task, False when GitHub's settled state
        contradicts the decision and it was not applied)."""
        t = self._task(repo, issue)
        state = decision_state(entry, t.had_pr)
        if state is not None and overruled(state, ts, kind, t.github):
            t.updated = max(t.updated, ts)
            return t, False
        if kind in (Decision.CLAIMED, Decision.TAKEN_OVER):
            t.had_pr = False
            gen = entry.get("generation")
            t.attempt = gen if isinstance(gen, int) else t.attempt + 1
            if isinstance(entry.get("title"), str) and not t.title:
                t.title = entry["title"][:300]
        if kind in (Decision.PULL_REQUEST, Decision.RESULT) and isinstance(entry.get("pr"), int):
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
        return t, True

    def observe_issue(self, repo: str, issue: int, title: str, labels: list[str], open_: bool,
                      updated: float, url: str | None) -> bool:
        """What a GitHub poll saw of a task issue; True when it changed the task."""
        t = self._task(repo, issue)
        before = t.row()
        t.title = title[:300] if title else t.title
        t.issue_url = url or t.issue_url
        state = label_state(labels, open_)
        t.github = (state, updated)
        # GitHub's settled word wins over the logs whatever their times say
        settled = state in SETTLED and state != t.state
        if settled or newer((state, updated, 0), (t.state, t.state_ts, t.state_src)) \
                or t.state_ts == 0:
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

    def holding(self) -> dict[str, list[dict[str, Any]]]:
        """peer id -> the tasks it holds now."""
        out: dict[str, list[dict[str, Any]]] = {}
        for t in self.tasks.values():
            if t.agent and t.state in ("claimed", "running"):
                out.setdefault(t.agent, []).append({"repo": t.repo, "issue": t.issue})
        return out

    def task_list(self, repo: str | None = None, state: str | None = None,
                  agent: str | None = None, limit: int = 100, offset: int = 0
                  ) -> dict[str, Any]:
        picked = [t for t in self.tasks.values()
                  if (repo is None or t.repo == repo) and (state is None or t.state == state)
                  and (agent is None or agent in (t.agent, t.node))]
        picked.sort(key=lambda t: (t.updated, t.repo, t.issue), reverse=True)
        return {"total": len(picked), "tasks": [t.doc() for t in picked[offset:offset + limit]]}

    def task(self, repo: str, issue: int) -> dict[str, Any] | None:
        t = self.tasks.get((repo, issue))
        if t is None:
            return None
        names = self._by_no()
        timeline = []
        for rowid, ts, kind, block in self.db.execute(
                "SELECT id, ts, type, block FROM entries WHERE repo = ? AND issue = ? "
                "ORDER BY ts, id LIMIT 5000", (repo, issue)):
            info = names.get(rowid >> SEQ_BITS)
            timeline.append({"ts": ts, "peer_id": info.peer_id if info else "",
                             "node_id": info.node_id if info else "",
                             "seq": rowid & ((1 << SEQ_BITS) - 1), "type": kind,
                             "data": _row(block)})
        return {"task": t.doc(), "timeline": timeline}

    def log_entries(self, key: str, q: str | None = None, kind: str | None = None,
                    before: int | None = None, limit: int = 200) -> list[dict[str, Any]]:
        info = self.logs.get(key)
        if info is None:
            return []
        base = info.no << SEQ_BITS
        hi = base + (before if before is not None else (1 << SEQ_BITS))
        sql = "SELECT id, ts, type, block FROM entries WHERE id >= ? AND id < ?"
        args: list[Any] = [base, hi]
        if kind:
            sql += " AND type = ?"
            args.append(kind)
        if q:
            phrase = '"' + q.replace('"', '""') + '"'
            sql += (" AND (type = ? OR id IN (SELECT rowid FROM entries_fts WHERE "
                    "entries_fts MATCH ? AND rowid >= ? AND rowid < ?))")
            args += [q, phrase, base, hi]
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(max(1, min(limit, 1000)))
        return [{"seq": rowid - base, "ts": ts, "type": k, "data": _row(block)}
                for rowid, ts, k, block in self.db.execute(sql, args)]

    def log_types(self, key: str) -> list[str]:
        info = self.logs.get(key)
        if info is None:
            return []
        base = info.no << SEQ_BITS
        return [r[0] for r in self.db.execute(
            "SELECT DISTINCT type FROM (SELECT type FROM entries WHERE id >= ? AND id < ? "
            "ORDER BY id DESC LIMIT 20000) ORDER BY type", (base, base + (1 << SEQ_BITS)))]

    def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest decisions indexed, newest first."""
        return [i.doc() for i in list(self._recent)[::-1][:limit]]

    def help_outcomes(self) -> dict[str, int]:
        return {name: self.types.get(kind, 0) for kind, name in HELP_OUTCOMES.items()}

    def claim_conflicts(self) -> int:
        return sum(self.types.get(k, 0) for k in CONFLICT_TYPES)


def _note_start(info: LogInfo, entry: dict[str, Any], ts: float) -> None:
    """A ``started`` entry: the node's version, capabilities and start time."""
    info.version = str(entry.get("version") or "") or info.version
    caps = entry.get("capabilities")
    info.capabilities = [str(c) for c in caps] if isinstance(caps, list) else []
    info.started = ts
