"""The ``llm`` executor: the block is a prompt, a local model's answer is the result.

```` ```bzzz llm model=llama3 temperature=0.2 max_tokens=800 files=src/app.py,README.md ````

- **Endpoints** are configured (``[[llm]] url=, models=``) or discovered (Ollama's
  ``/api/tags``, an OpenAI-compatible ``/v1/models``); each model is announced as
  ``llm:<model>`` (and ``ollama:<model>`` for Ollama), which ``needs:llm:<model>`` and
  ``model=`` match. A node without the model fails the task as a need a peer can meet (the
  help request carries ``llm:<model>``).
- **Prompt**: the issue's title and body, the block, the feedback so far, and the files
  named by ``files=`` from the checkout, within the model's context size: what does not fit
  is left out and the result says which. The system prompt ends with the repository's own
  instructions (``Job.repo_instructions``: docs/repository-files.md), within a third of
  the context.
- **Answer**: streamed (progress shows its last lines); it becomes ``summary.md`` (the
  result comment), and a unified diff in it is applied to the checkout with ``git apply``,
  so it ends as a pull request like any change. The model's own question (an answer that
  is only ``QUESTION: …``) is asked of a person the same way a task asks.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx
import trio

from ..redact import redact
from .executor import Job, Outcome
from .llm import (Answer, Endpoint, LLMError, context_length, estimate_tokens, probe,
                  root_url, stream_chat)
from .shell import Result

DEFAULT_SYSTEM = ("You are a careful software engineer working in a repository. Answer the "
                  "task. To change files, answer with a unified diff (paths relative to the "
                  "repository root, a/ and b/ prefixes) in a ```diff block. If you cannot "
                  "go on without a person's decision, answer only: QUESTION: <your question>.")
MAX_FILE = 256 * 1024
_DIFF_BLOCK = re.compile(r"```(?:diff|patch)[^\n]*\n(?P<diff>.*?)\n```", re.S)
_QUESTION = re.compile(r"^\s*QUESTION:\s*(?P<q>.+)$", re.S)


def system_prompt(job: Job, room: int) -> tuple[str, list[str]]:
    """The system prompt: the task's own (``system=``) or the default, then the
    repository's instructions (bzzz/repo/instructions.py), cut to about ``room`` tokens;
    and what was cut, for the summary."""
    system = job.options.get("system") or DEFAULT_SYSTEM
    extra = job.repo_instructions.strip()
    if not extra:
        return system, []
    cut: list[str] = []
    if estimate_tokens(extra) > room:
        keep = max(0, room * 4 - 40)
        cut.append(f"the repository's instructions past their first {keep:,} characters "
                   f"(of {len(extra):,}: over a third of the model's context)")
        extra = extra[:keep] + "\n… (cut)"
    return f"{system}\n\n{extra}", cut


def extract_diff(answer: str) -> str | None:
    """The unified diff in an answer: fenced ```diff blocks, or the answer itself when it
    is one."""
    blocks = [m["diff"] for m in _DIFF_BLOCK.finditer(answer)]
    text = "\n".join(blocks) if blocks else answer
    if re.search(r"^--- (a/|/dev/null)", text, re.M) and re.search(r"^\+\+\+ (b/|/dev/null)",
                                                                     text, re.M) \
            and re.search(r"^@@ ", text, re.M):
        start = re.search(r"^(diff --git |--- )", text, re.M)
        return text[start.start():].rstrip("\n") + "\n" if start else None
    return None


class Git(Protocol):
    """What applying a diff needs of ``bzzz.repo.git.Git``."""

    async def run(self, args: Sequence[str], *, what: str, cwd: Path | None = None,
                  check: bool = True, config: Sequence[tuple[str, str]] = ()
                  ) -> subprocess.CompletedProcess[bytes]: ...


class LLMExecutor:
    name = "llm"

    def __init__(self, endpoints: Sequence[Endpoint], *, connect_timeout: float = 10.0,
                 first_token_timeout: float = 120.0, default_context: int = 4096,
                 git: Git | None = None) -> None:
        self.configured = list(endpoints)
        self.endpoints: list[Endpoint] = []
        self.connect_timeout = connect_timeout
        self.first_token_timeout = first_token_timeout
        self.default_context = default_context
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(None, connect=connect_timeout))
        self.git = git  # bzzz.repo.git.Git, to apply diffs
        self.down: dict[str, str] = {}

    async def refresh(self) -> list[str]:
        """Probe every endpoint; returns the capabilities to announce."""
        found = []
        for ep in self.configured:
            try:
                found.append(await probe(self.http, ep, self.connect_timeout))
                self.down.pop(ep.url, None)
            except LLMError as exc:
                self.down[ep.url] = str(exc)
        self.endpoints = found
        return self.capabilities()

    def capabilities(self) -> list[str]:
        caps = []
        for ep in self.endpoints:
            for m in ep.models:
                caps.append(f"llm:{m}")
                if ep.kind == "ollama":
                    caps.append(f"ollama:{m}")
        return list(dict.fromkeys(caps + (["llm"] if caps else [])))

    def endpoint_for(self, model: str | None) -> tuple[Endpoint, str] | None:
        for ep in self.endpoints:
            if model is None and ep.models:
                return ep, ep.models[0]
            if model in ep.models:
                return ep, model
        return None

    async def aclose(self) -> None:
        await self.http.aclose()

    def _prompt(self, job: Job, budget: int) -> tuple[str, list[str]]:
        parts = [f"# {job.title}\n\n{job.body.strip()}"]
        if job.code and job.code.strip() and job.code.strip() not in job.body:
            parts.append(f"## The task\n\n{job.code.strip()}")
        if job.feedback.strip():
            parts.append(f"## Feedback so far (oldest first)\n\n{job.feedback.strip()}")
        used = sum(estimate_tokens(p) for p in parts)
        left_out = []
        for name in [f.strip() for f in job.options.get("files", "").split(",") if f.strip()]:
            text = self._read_file(job.workspace, name)
            if text is None:
                left_out.append(f"{name} (not in the checkout)")
                continue
            cost = estimate_tokens(text) + 20
            if used + cost > budget:
                left_out.append(f"{name} (about {cost} tokens: over the context size)")
                continue
            used += cost
            parts.append(f"## File {name}\n\n```\n{text}\n```")
        return "\n\n".join(parts), left_out

    @staticmethod
    def _read_file(ws: Path, name: str) -> str | None:
        root = ws.resolve()
        try:
            path = (root / name).resolve()
            path.relative_to(root)  # no way out of the checkout (.., links)
            if not path.is_file() or path.stat().st_size > MAX_FILE:
                return None
            return path.read_text(errors="replace")
        except (OSError, ValueError):
            return None

    async def run(self, job: Job) -> Outcome:
        start = trio.current_time()
        model = job.options.get("model")
        found = self.endpoint_for(model)
        if found is None:
            why = f"model {model} is not served here" if model else "no model is served here"
            return _failed(job, start, why, [f"llm:{model}" if model else "llm"])
        ep, model = found
        try:
            temperature, max_tokens = _sampling(job.options)
        except ValueError:
            return _failed(job, start, "temperature= and max_tokens= must be numbers", [])
        context = (await context_length(self.http, ep, model)) or ep.context or self.default_context
        budget = max(256, context - (max_tokens or 512) - 200)
        system, cut = system_prompt(job, budget // 3)
        budget -= estimate_tokens(system) - estimate_tokens(DEFAULT_SYSTEM)
        prompt, left_out = self._prompt(job, budget)
        left_out += cut
        if estimate_tokens(prompt) > budget:
            return _failed(job, start, f"the issue and feedback need about "
                           f"{estimate_tokens(prompt)} tokens; {model}'s context is {context}", [])
        seen = _Streamed()
        try:
            answer = await stream_chat(
                self.http, ep, model, [{"role": "user", "content": prompt}], system=system,
                temperature=temperature, max_tokens=max_tokens,
                connect_timeout=self.connect_timeout,
                first_token_timeout=min(self.first_token_timeout, job.timeout),
                total_timeout=job.timeout, on_delta=_progress(job, seen, model, root_url(ep.url)))
        except LLMError as exc:
            return _failed(job, start, f"{model} at {ep.name or 'its endpoint'}: {exc}",
                           [f"llm:{model}"] if exc.helpable else [],
                           status="timeout" if exc.kind == "timeout" else "failed")
        # the server's own counts replace the one-per-piece estimate made while it streamed
        job.meter(model, answer.prompt_tokens or 0,
                  (answer.tokens if answer.tokens is not None else seen.pieces) - seen.pieces,
                  root_url(ep.url))
        await self._record(job, answer.text, _notes(left_out, answer.finish_reason, max_tokens))
        return Outcome(_result(job, start, model, answer, seen.first_at))

    async def _record(self, job: Job, text: str, notes: list[str]) -> None:
        """The answer into the job's output: a question it asks, or its summary (after its
        change, if any, is applied to the workspace)."""
        q = _QUESTION.match(text)
        if q:
            (job.output_dir / "question.md").write_text(q["q"].strip() + "\n")
        else:
            applied = await self._apply(job, text, notes)
            summary = text.strip() if not applied else (
                f"Applied the model's change ({applied}).\n\n" + text.strip())
            (job.output_dir / "summary.md").write_text(
                summary + ("\n\n" + " ".join(notes) if notes else "") + "\n")

    async def _apply(self, job: Job, text: str, notes: list[str]) -> str | None:
        diff = extract_diff(text)
        if diff is None or self.git is None or not (job.workspace / ".git").exists():
            return None
        patch = job.output_dir.parent / (job.output_dir.name + ".patch")
        patch.write_text(diff)
        try:
            # the checkout is the task user's; its .git was made by the agent and no task
            # code ran in it, so git may read it
            proc = await self.git.run(["apply", "--whitespace=nowarn", "--recount", str(patch)],
                                      what="apply", cwd=job.workspace, check=False,
                                      config=[("safe.directory", str(job.workspace.resolve()))])
        finally:
            patch.unlink(missing_ok=True)
        if proc.returncode != 0:
            notes.append("The diff in the answer did not apply: "
                         + redact(proc.stderr.decode(errors="replace").strip())[-400:])
            return None
        files = len(re.findall(r"^\+\+\+ ", diff, re.M))
        return f"{files} file{'s' if files != 1 else ''}"


def _failed(job: Job, start: float, why: str, missing: list[str],
            status: str = "failed") -> Outcome:
    text = f"bzzz: llm: {why}\n"
    result = Result(status, None, round(trio.current_time() - start, 3), text,
                    len(text), False, None, str(job.workspace), {"executor": "llm",
                                                                 "note": why})
    return Outcome(result, missing, why)


def _sampling(options: Mapping[str, str]) -> tuple[float | None, int | None]:
    """A job's temperature= and max_tokens= (None when not given); ValueError if not numbers."""
    temperature = float(options["temperature"]) if "temperature" in options else None
    max_tokens = int(options["max_tokens"]) if "max_tokens" in options else None
    return temperature, max_tokens


@dataclass
class _Streamed:
    first_at: float | None = None  # wall-clock time of the first piece
    pieces: int = 0  # pieces so far: what the meter was told (one token a piece)


def _progress(job: Job, seen: _Streamed, model: str, root: str) -> Callable[[str], None]:
    """The stream's text as the job's progress (every eighth piece, its last 2000
    characters); each piece told to the job's meter, so a budget sees the answer grow."""
    pieces: list[str] = []

    def delta(text: str) -> None:
        if seen.first_at is None:
            seen.first_at = time.time()
        seen.pieces += 1
        job.meter(model, 0, 1, root)
        pieces.append(text)
        if len(pieces) % 8 == 0:
            job.progress("".join(pieces)[-2000:])

    return delta


def _notes(left_out: list[str], finish_reason: str | None, max_tokens: int | None) -> list[str]:
    """What the summary says besides the answer: what the prompt left out, a cut answer."""
    notes = []
    if left_out:
        notes.append("Left out of the prompt: " + ", ".join(left_out) + ".")
    if finish_reason == "length":
        notes.append(f"The answer stopped at max_tokens ({max_tokens}).")
    return notes


def _result(job: Job, start: float, model: str, answer: Answer,
            first_at: float | None) -> Result:
    text = answer.text
    dur = round(trio.current_time() - start, 3)
    tail = text[-64 * 1024:]
    return Result("succeeded", 0, dur, tail, len(text.encode()), len(tail) < len(text),
                  None, str(job.workspace),
                  {"executor": "llm", "model": model, "tokens": answer.tokens,
                   "first_token_s": answer.first_token_s,
                   "first_token_at": first_at})
