"""Hive-compatible jobs (a core, no I/O): the ``POST /enqueue`` body parsed and validated, the
issue it becomes, the reservation commit that makes filing exactly-once, and which agent
decisions are job events (shared/CONTRACT.md, "Monitor and bridges").

A job is filed as one ``bzzz`` issue by the monitor's GitHub identity; the job id travels in a
hidden marker (``<!-- bzzz:job:<jobId> -->``, as ``bzzz task create --job-id`` writes it) and
the digest of the normalised request in another, so any monitor can tell a replay (same
digest) from a conflicting request (409) from the issue alone.
"""

from __future__ import annotations

from ..kinds import Decision
from ..errors import InputError
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, overload
from urllib.parse import urlsplit

from ..github.markers import find_markers, marker
from ..claim.task import PRIORITIES, TASK_LABEL

TASKS = ("agent", "shell", "llm")
# Hive's own client names its shell kind "script"; it is the same thing
TASK_ALIASES = {"script": "shell"}
MAX_INSTRUCTIONS = 64 * 1024
MAX_NEEDS = 16
# the same ids as ``bzzz task create --job-id`` (bzzz/follow.py)
JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}")
REPO = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}/[A-Za-z0-9_.][A-Za-z0-9_.-]{0,99}")
BRANCH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/-]{0,199}")
NEED = re.compile(r"[a-z0-9][a-z0-9:._-]{0,63}")
MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9:._/-]{0,127}")
TOKEN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_URL = 2048
JOB_REF = "refs/bzzz/jobs/{h}"
EVENTS = ("claimed", "needs_input", "pull_request", "done", "failed", "cancelled")
# the job's status once an event happened (GET /jobs/<jobId>)
STATUS_AFTER = {"claimed": "running", "needs_input": "needs_input", "pull_request": "review",
                "done": "done", "failed": "failed", "cancelled": "cancelled"}


class JobError(InputError, ValueError):
    """A request that is not a job: ``field`` names what is wrong (400)."""

    def __init__(self, field_name: str, message: str, **extra: Any) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message
        self.extra = extra

    def doc(self) -> dict[str, Any]:
        return {"error": str(self), "field": self.field, **self.extra}


@dataclass(frozen=True)
class JobRequest:
    job_id: str
    repo: str
    task: str
    instructions: str
    branch: str | None = None
    base: str | None = None
    priority: str | None = None
    needs: tuple[str, ...] = ()
    callback_url: str | None = None
    title: str | None = None
    model: str | None = None

    def normalised(self) -> dict[str, Any]:
        d = asdict(self)
        d["needs"] = list(self.needs)
        return d

    @property
    def digest(self) -> str:
        """sha256 of the normalised request: equal for a replay, whatever its key order or
        spacing; different when any field differs (409)."""
        return hashlib.sha256(json.dumps(self.normalised(), sort_keys=True,
                                         separators=(",", ":")).encode()).hexdigest()

    @classmethod
    def from_normalised(cls, d: Mapping[str, Any]) -> "JobRequest":
        return cls(**{**d, "needs": tuple(d.get("needs") or ())})


@overload
def _text(doc: Mapping[str, Any], name: str, required: Literal[True]) -> str: ...


@overload
def _text(doc: Mapping[str, Any], name: str, required: bool = False) -> str | None: ...


def _text(doc: Mapping[str, Any], name: str, required: bool = False) -> str | None:
    value = doc.get(name)
    if value is None:
        if required:
            raise JobError(name, "missing")
        return None
    if not isinstance(value, str):
        raise JobError(name, f"must be a string, not {type(value).__name__}")
    value = value.strip()
    if required and not value:
        raise JobError(name, "must not be empty")
    return value or None


def parse_repo(value: str) -> str:
    """``owner/name``, or a repository URL (Hive's client sends one) reduced to it."""
    if "://" in value:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise JobError("repo", "must be owner/name or an http(s) repository URL")
        path = parts.path.strip("/")
        value = path[:-4] if path.endswith(".git") else path
    if not REPO.fullmatch(value) or ".." in value:
        raise JobError("repo", "must be owner/name")
    return value


def check_callback_url(value: str) -> str:
    """A user-given URL we will POST to: http(s) only, a host, no credentials in it."""
    if len(value) > MAX_URL:
        raise JobError("callbackUrl", f"longer than {MAX_URL} characters")
    try:
        parts = urlsplit(value)
        port = parts.port  # raises on a bad port
    except ValueError as exc:
        raise JobError("callbackUrl", "not a URL") from exc
    if parts.scheme not in ("http", "https"):
        raise JobError("callbackUrl", "only http and https callbacks are sent")
    if not parts.hostname:
        raise JobError("callbackUrl", "has no host")
    if parts.username or parts.password:
        raise JobError("callbackUrl", "must not carry credentials (the body is signed instead)")
    del port
    return value


def _branch(doc: Mapping[str, Any], name: str) -> str | None:
    value = _text(doc, name)
    if value is None:
        return None
    if not BRANCH.fullmatch(value) or ".." in value or value.endswith(("/", ".lock", ".")) \
            or "//" in value:
        raise JobError(name, "is not a branch name")
    return value


def parse_job(doc: Any, default_repo: str | None = None,
              callbacks: bool = True) -> JobRequest:
    """A JobRequest from the decoded JSON body; JobError naming the field otherwise. Fields
    this bridge does not know (Hive's ``metadata``, ``githubToken``) are ignored and never
    stored or posted anywhere."""
    if not isinstance(doc, dict):
        raise JobError("body", "must be a JSON object")
    job_id = _text(doc, "jobId", required=True)
    if not JOB_ID.fullmatch(job_id):
        raise JobError("jobId", "1 to 128 letters, digits and . _ : / - (starting with a "
                       "letter or digit)")
    repo = _text(doc, "repo")
    if repo is None:
        if default_repo is None:
            raise JobError("repo", "missing (and this monitor has no monitor.enqueue_repo)")
        repo = default_repo
    repo = parse_repo(repo)
    task = _text(doc, "task", required=True).lower()
    task = TASK_ALIASES.get(task, task)
    if task not in TASKS:
        raise JobError("task", f"unknown task kind {task[:40]!r}; one of {', '.join(TASKS)}",
                       allowed=list(TASKS))
    instructions = doc.get("instructions")
    if not isinstance(instructions, str):
        raise JobError("instructions", "missing" if instructions is None else "must be a string")
    if not instructions.strip():
        raise JobError("instructions", "must not be empty")
    if len(instructions.encode()) > MAX_INSTRUCTIONS:
        raise JobError("instructions", f"longer than {MAX_INSTRUCTIONS} bytes")
    priority = _text(doc, "priority")
    if priority is not None:
        priority = priority.lower()
        if priority not in PRIORITIES:
            raise JobError("priority", f"one of {', '.join(PRIORITIES)}", allowed=list(PRIORITIES))
    needs_doc = doc.get("needs", [])
    if isinstance(needs_doc, str):
        needs_doc = [n for n in needs_doc.split(",") if n.strip()]
    if not isinstance(needs_doc, list) or not all(isinstance(n, str) for n in needs_doc):
        raise JobError("needs", "must be a list of capability names")
    needs = tuple(dict.fromkeys(n.strip().lower() for n in needs_doc))
    if len(needs) > MAX_NEEDS or not all(NEED.fullmatch(n) for n in needs):
        raise JobError("needs", f"at most {MAX_NEEDS} capability names such as shell or "
                       "ollama:llama3")
    callback = _text(doc, "callbackUrl")
    if callback is not None:
        if not callbacks:
            raise JobError("callbackUrl", "callbacks are off on this monitor "
                           "(monitor.callback_secret_file is not set)")
        callback = check_callback_url(callback)
    title = _text(doc, "title")
    if title is not None and len(title) > 256:
        raise JobError("title", "longer than 256 characters")
    model = _text(doc, "model")
    if model is not None and (task != "llm" or not MODEL.fullmatch(model)):
        raise JobError("model", "only for task llm, a model name")
    return JobRequest(job_id, repo, task, instructions, _branch(doc, "branch"),
                      _branch(doc, "base"), priority, needs, callback, title, model)


# ---------------------------------------------------------------------- the issue


def _fence(text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def issue_title(job: JobRequest) -> str:
    if job.title:
        return job.title
    for line in job.instructions.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return line[:72] + ("…" if len(line) > 72 else "")
    return f"Job {job.job_id}"


def spec_line(job: JobRequest) -> str:
    """The block's info string: ``bzzz <executor> [base=] [branch=] [model=]``. Hive's
    ``base`` is where the work starts (the task spec's ``base=``); a ``branch`` alone is
    where to start too. ``branch=`` is kept in the spec as the job asked for it (today's
    agents push to their own ``bzzz/<issue>-<slug>`` branch)."""
    words = ["bzzz", job.task]
    start = job.base or job.branch
    if start:
        words.append(f"base={start}")
    if job.branch:
        words.append(f"branch={job.branch}")
    if job.model:
        words.append(f"model={job.model}")
    return " ".join(words)


def issue_body(job: JobRequest, origin: str) -> str:
    fence = _fence(job.instructions)
    code = job.instructions.rstrip("\n")
    return (f"Job `{job.job_id}`, enqueued by **{origin}** through the Hive bridge.\n\n"
            f"{fence}{spec_line(job)}\n{code}\n{fence}\n\n"
            f"{marker('job', job.job_id)}\n{marker('job-digest', job.digest)}\n"
            f"{marker('job-origin', origin)}\n")


def issue_labels(job: JobRequest) -> list[str]:
    labels = [TASK_LABEL]
    if job.priority:
        labels.append(f"priority:{job.priority}")
    labels += [f"needs:{n}" for n in job.needs]
    return labels


def job_of_issue(body: str | None) -> tuple[str, str | None] | None:
    """(job id, request digest or None) from an issue body's markers, or None."""
    found = find_markers(body or "")
    ids = [k for kind, k in found if kind == "job"]
    if not ids:
        return None
    digests = [k for kind, k in found if kind == "job-digest"]
    return ids[0], (digests[0] if digests else None)


# ---------------------------------------------------------------------- the reservation


def job_ref(job_id: str) -> str:
    return JOB_REF.format(h=hashlib.sha256(job_id.encode()).hexdigest()[:40])


@dataclass(frozen=True)
class Reservation:
    job_id: str
    digest: str
    origin: str
    filer: str  # the monitor instance that reserved (or took over) the job
    at: float  # when it did


def reservation_message(r: Reservation, takeover: bool = False) -> str:
    head = "bzzz job takeover" if takeover else "bzzz job"
    return (f"{head}\n\nBzzz-Job: {r.job_id}\nBzzz-Job-Digest: {r.digest}\n"
            f"Bzzz-Origin: {r.origin}\nBzzz-Filer: {r.filer}\nBzzz-At: {r.at:.3f}\n")


def parse_reservation(message: str) -> Reservation | None:
    values: dict[str, str] = {}
    for line in (message or "").splitlines():
        key, sep, value = line.partition(": ")
        if sep and key.startswith("Bzzz-"):
            values[key] = value.strip()
    try:
        return Reservation(values["Bzzz-Job"], values["Bzzz-Job-Digest"],
                           values.get("Bzzz-Origin", "?"), values["Bzzz-Filer"],
                           float(values["Bzzz-At"]))
    except (KeyError, ValueError):
        return None


# ---------------------------------------------------------------------- events


@dataclass(frozen=True)
class Event:
    name: str  # one of EVENTS
    key: str  # what makes it unique within the job (two logs saying the same: sent once)
    pr: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def event_of(entry: Mapping[str, Any], attempt: int) -> Event | None:
    """The job event an agent's decision is, if any. ``attempt`` is the job's attempt so far
    (the caller counts claims); a claim starts attempt + 1."""
    kind = entry.get("type")
    if kind in (Decision.CLAIMED, Decision.TAKEN_OVER):
        return Event("claimed", f"claimed:{attempt + 1}")
    if kind in (Decision.NEEDS_INPUT, Decision.ASKED):
        return Event("needs_input", f"needs_input:{attempt}")
    if kind == Decision.PULL_REQUEST:
        pr = entry.get("pr")
        pr = pr if isinstance(pr, int) and not isinstance(pr, bool) else None
        extra = {"branch": entry["branch"]} if isinstance(entry.get("branch"), str) else {}
        return Event("pull_request", f"pull_request:{pr}", pr, extra)
    if kind == Decision.REPORTED:
        status = entry.get("status")
        if status == "succeeded":
            return Event("done", f"done:{attempt}", extra={"status": status})
        if status == "cancelled":
            return Event("cancelled", f"cancelled:{attempt}")
        return Event("failed", f"failed:{attempt}", extra={"status": str(status)})
    if kind == Decision.CANCELLED and str(entry.get("reason", "")).startswith("cancelled by"):
        return Event("cancelled", f"cancelled:{attempt}")
    if kind == Decision.COMMAND and entry.get("verb") == "cancel" and entry.get("acting"):
        return Event("cancelled", f"cancelled:{attempt}")
    return None


def delivery_id(job_id: str, key: str) -> str:
    """The same for the same event of the same job on every monitor: receivers de-duplicate
    on it."""
    return hashlib.sha256(f"{job_id}\0{key}".encode()).hexdigest()[:32]


def sign(secret: bytes, body: bytes) -> str:
    """``X-Bzzz-Signature-256``'s value, as GitHub signs webhooks."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, header: str | None) -> bool:
    return bool(header) and hmac.compare_digest(sign(secret, body), header or "")
