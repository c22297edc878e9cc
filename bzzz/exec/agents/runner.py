"""The ``agent`` executor with presets: a coding-agent CLI run in the sandbox on the task's
checkout, judged by what it says rather than by its exit status.

For each task: the preset the task needs (``needs:agent:<name>``), else the node's first;
the CLI's HOME is a directory of the task's output directory (so nothing of the CLI's own
lands in the checkout, and it goes when the task's directories go); the files the preset
writes there (a configuration naming the gateway's model route); the instructions (the
block or the issue, the feedback so far, and the repository's instructions unless the
preset gives them to the CLI its own way) in ``$BZZZ_INSTRUCTIONS``, given as the CLI expects. The CLI's
installation is shown read-only in the sandbox. Its output is read line by line as it
comes: a person sees what it does (the progress comment), and a refused key stops it at
once instead of after its retries.

The run failed when the CLI's verdict says so (the key refused, a limit, an edit that never
applied, an error result), when it exits non-zero, or when it changed nothing in the
checkout. Its last message becomes the task's ``summary.md`` unless the task wrote one.

What a person follows while it runs is the job's progress: the transcript's steps as
bzzz/exec/agents/checklist.py keeps them (bounded), reported as each line comes and once
more, final, when the CLI has ended. The result says which preset, model and model route
ran, and how many turns the CLI took; the gateway adds the tokens and cost it counted.

A review round resumes the CLI's session where the preset can (``session_paths``) and this
node kept it (bzzz/exec/agents/sessions.py): the same task, preset and model, after a round
that succeeded here. Its files go into the new HOME (moved to the new checkout's name where
the CLI files sessions by checkout), the CLI is asked to resume it, and the instructions are
the feedback given since that round (all of it when it does not continue what that round
had). The transcript's first line says ``↩ resumed session …``. A CLI that does not know the
session runs again at once, afresh with the whole instructions, as every round did before.
After a run that succeeded its session is kept for the next round; after one that failed it
is forgotten.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import trio

from ...redact import redact
from ..executor import INSTRUCTIONS, Job, Outcome, instructions
from ..sandbox import Sandbox
from ..shell import Result, task_env
from . import Installed
from .base import Parser, Setup, Verdict
from .checklist import Checklist
from .sessions import SessionError, SessionStore, Stored, valid_session

__all__ = ["PresetExecutor", "fingerprint", "resumed_instructions"]

log = logging.getLogger("bzzz.exec")

HOME = ".agent-home"
SUMMARY = "summary.md"
MAX_ENTRIES = 200_000
TRANSCRIPT = 400  # lines kept for the result
MAX_LINE = 16 << 20  # bytes of one line of the CLI's output read whole
REDACT_WHOLE = 1 << 16  # characters of a line redacted before it is parsed
Fingerprint = dict[str, tuple[int, int, int]]


def resumed_instructions(job: Job, new_feedback: str) -> str:
    """What a resumed CLI is asked: the task's title, and what people said since the round
    it resumes (the session holds the task and what it did), then the repository's own
    instructions as :func:`bzzz.exec.executor.instructions` gives them."""
    text = (f"# {job.title}\n\nA new round of this task, which you worked on earlier in this "
            "session; your work so far is in the checkout. Address what people said since "
            f"(oldest first):\n\n{new_feedback.strip()}\n")
    if job.repo_instructions.strip():
        text += f"\n---\n\n{job.repo_instructions.strip()}\n"
    return text


def _left_over(rel: str, patterns: Sequence[str]) -> bool:
    """Whether ``rel`` or a directory above it matches one of the preset's globs."""
    parts = rel.split("/")
    heads = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    return any(fnmatch.fnmatchcase(h, p) for h in heads for p in patterns)


def fingerprint(root: Path, leftovers: Sequence[str] = ()) -> Fingerprint:
    """Each file's (mode, size, mtime) under ``root``, ``.git`` and the leftovers aside: two
    that differ mean the checkout changed."""
    out: Fingerprint = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        if not rel_dir and ".git" in dirnames:
            dirnames.remove(".git")
        dirnames[:] = [d for d in dirnames if not _left_over(rel_dir + d, leftovers)]
        for name in filenames:
            rel = rel_dir + name
            if _left_over(rel, leftovers):
                continue
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            out[rel] = (stat.S_IFMT(st.st_mode) | (st.st_mode & 0o111), st.st_size,
                        st.st_mtime_ns)
            if len(out) > MAX_ENTRIES:
                return out
    return out


class PresetExecutor:
    """``agent``: the node's coding-agent presets (bzzz/exec/agents/__init__.py resolve)."""

    name = "agent"

    def __init__(self, presets: Mapping[str, Installed], sandbox: Sandbox, *,
                 max_turns: int = 30, env: Mapping[str, str] | None = None,
                 max_output: int = 64 * 1024, sessions: SessionStore | None = None,
                 image: str | None = None) -> None:
        if not presets:
            raise ValueError("no agent preset to run")
        self.presets = dict(presets)
        self.sandbox = sandbox
        self.image = image  # the container sandbox's image for the CLI (None: its default)
        self.max_turns = max_turns
        self.env = {k.upper(): v for k, v in (env or {}).items()}
        self.max_output = max_output
        self.sessions = sessions  # where sessions are kept between rounds (None: nowhere)

    def choose(self, job: Job) -> Installed:
        """The preset the task asks for (``needs:agent:<name>``), else the first."""
        for need in sorted(job.needs):
            kind, _, name = need.partition(":")
            if kind == "agent" and name in self.presets:
                return self.presets[name]
        return next(iter(self.presets.values()))

    def _home(self, job: Job, files: Mapping[str, str]) -> Path:
        home = job.output_dir / HOME
        home.mkdir(mode=0o755, exist_ok=True)
        made = [home]
        for rel, text in files.items():
            path = home / rel
            for parent in reversed(path.relative_to(home).parents[:-1]):
                (home / parent).mkdir(mode=0o755, exist_ok=True)
                made.append(home / parent)
            path.write_text(text)
            path.chmod(0o644)
            made.append(path)
        owner = self.sandbox.owner
        if owner is not None:
            for p in made:
                os.chown(p, *owner)
        return home

    def _argv(self, agent: Installed, args: list[str], stdin: bool) -> list[str]:
        if not stdin:
            return [str(agent.executable), *args]
        return ["/bin/sh", "-c", 'exec "$@" < "$BZZZ_INSTRUCTIONS"', "bzzz-agent",
                str(agent.executable), *args]

    async def run(self, job: Job) -> Outcome:
        agent = self.choose(job)
        stored = await self._restore(job, agent)
        outcome, verdict = await self._once(job, agent, stored)
        if stored is not None and verdict.unknown_session:
            note = (f"↩ session {stored.session[:40]} is unknown to {agent.name}: "
                    "started afresh")
            outcome, verdict = await self._once(job, agent, None, note=note)
            outcome.result.extra["session"]["unknown"] = stored.session
        await self._keep(job, agent, outcome, verdict)
        return outcome

    async def _once(self, job: Job, agent: Installed, stored: Stored | None, *,
                    note: str = "") -> tuple[Outcome, Verdict]:
        """One run of the CLI (``stored``: resuming that session)."""
        preset = agent.preset
        prompt = job.feedback_file.parent / INSTRUCTIONS
        home = job.output_dir / HOME
        setup = Setup(agent.model, agent.base_url, home.resolve() if home.exists() else home,
                      job.workspace.resolve(), prompt, self.max_turns,
                      getattr(job, "repo_instructions", "") or "",
                      resume=stored.session if stored is not None else None)
        inv = preset.invocation(setup)
        self._home(job, inv.files)
        asked = replace(job, repo_instructions="") if inv.repo_instructions_given else job
        new = stored.new_feedback(job.feedback) if stored is not None else None
        prompt.write_text(resumed_instructions(asked, new) if new and new.strip()
                          else instructions(asked))
        prompt.chmod(0o644)
        path = os.pathsep.join([str(agent.executable.parent), "/usr/local/bin", "/usr/bin",
                                "/bin"])
        env = task_env(str(job.workspace.resolve()), {
            **self.env, **job.env, "BZZZ_INSTRUCTIONS": str(prompt), **inv.env,
            "HOME": str(home.resolve()), "PATH": path, "BZZZ_AGENT": preset.name})
        read_only = [*job.read_only, *([agent.install_root] if agent.install_root else [])]
        before = await trio.to_thread.run_sync(fingerprint, job.workspace, preset.leftovers)
        parser, steps = preset.parser(), Checklist()
        if stored is not None:
            note = (f"↩ resumed session {stored.session[:40]} ({agent.name}, this task's "
                    "last round on this node)")
        first = [note] if note else []
        for line in first:
            steps.feed(line)
        out, lines = await self._watch(job, agent, env, read_only, parser, steps,
                                       self._argv(agent, inv.argv, inv.stdin))
        verdict = parser.finish()
        after = await trio.to_thread.run_sync(fingerprint, job.workspace, preset.leftovers)
        outcome = self._outcome(job, agent, out, verdict, first + lines,
                                changed=before != after)
        outcome.result.extra["session"] = {
            "resumed": stored.session if stored is not None else None}
        if outcome.reason is not None:
            steps.feed(f"[bzzz] {agent.name} failed: {outcome.reason}")
        elif steps.ended is None:
            steps.ended = "finished"
        job.progress("\n".join(steps.lines()))  # the checklist's final state
        return outcome, verdict

    async def _restore(self, job: Job, agent: Installed) -> Stored | None:
        """The task's kept session with this preset and model, its files in the task's
        HOME (None: none kept, or it could not be restored: the round starts afresh)."""
        preset, store = agent.preset, self.sessions
        if store is None or not preset.session_paths:
            return None
        stored = await trio.to_thread.run_sync(store.load, job.repo, job.issue, preset.name,
                                               agent.model)
        if stored is None:
            return None
        self._home(job, {})
        renames = preset.relocate(stored.cwd, str(job.workspace.resolve()))
        try:
            await trio.to_thread.run_sync(store.restore, stored, job.output_dir / HOME,
                                          renames, self.sandbox.owner)
        except (SessionError, OSError) as exc:
            log.warning("a kept session was not restored: the round starts afresh", extra={
                "task": job.task_id, "agent": preset.name, "error": str(exc)})
            return None
        return stored

    async def _keep(self, job: Job, agent: Installed, outcome: Outcome,
                    verdict: Verdict) -> None:
        """After a run that succeeded, its session for the next round; after one that
        failed, none."""
        preset, store, result = agent.preset, self.sessions, outcome.result
        if store is None or not preset.session_paths:
            return
        session = valid_session(verdict.session)
        if outcome.reason is not None or result.status != "succeeded" or session is None:
            await trio.to_thread.run_sync(store.forget, job.repo, job.issue, preset.name)
            return
        given, digest = SessionStore.given(job.feedback)
        kept = Stored(job.repo, job.issue, preset.name, agent.model, session,
                      str(job.workspace.resolve()), given, digest, 0.0, 0, 0)
        try:
            done = await trio.to_thread.run_sync(store.save, kept, job.output_dir / HOME,
                                                 preset.session_paths)
        except SessionError as exc:
            log.warning("the session was not kept: the next round starts afresh", extra={
                "task": job.task_id, "agent": preset.name, "error": str(exc)})
            result.extra["session"]["kept"] = False
            return
        result.extra["session"].update(kept=True, id=session, bytes=done.bytes)

    async def _watch(self, job: Job, agent: Installed, env: dict[str, str],
                     read_only: list[Path], parser: Parser, steps: Checklist,
                     argv: list[str]) -> tuple[Result | None, list[str]]:
        """Run the CLI, reading its lines as they come; stopped at once when its verdict
        is final (a refused key). None: it was stopped so."""
        lines: list[str] = []
        pending = bytearray()
        stop = trio.CancelScope()

        here = str(job.workspace.resolve()) + "/"

        def take(line: bytes) -> None:  # paths in the checkout shown relative to it
            text = line.decode("utf-8", "replace")
            # secrets out before the parser cuts lines short (a cut one would escape the
            # redactor later); a huge line (a file the CLI read) is only ever shown cut
            text = redact(text) if len(text) <= REDACT_WHOLE else text
            shown = [redact(s.replace(here, "")) for s in parser.feed(text)]
            if shown:
                lines.extend(shown)
                del lines[:-TRANSCRIPT]
                for s in shown:
                    steps.feed(s)
                job.progress("\n".join(steps.lines()))
            if parser.verdict.fatal:
                stop.cancel()

        def seen(chunk: bytes) -> None:
            pending.extend(chunk)
            while (i := pending.find(b"\n")) >= 0:
                line = bytes(pending[:i])
                del pending[:i + 1]
                take(line)
            if len(pending) > MAX_LINE:  # no line at all: shown cut, never held whole
                take(bytes(pending[:1024]))
                pending.clear()

        result: Result | None = None
        with stop:
            out = await self.sandbox.run(argv, job.workspace, env, timeout=job.timeout,
                                         max_output=self.max_output, kill_grace=2.0,
                                         task_id=job.task_id, output_dir=job.output_dir,
                                         read_only=read_only, on_output=seen,
                                         image=self.image)
            result = Result(out.status, out.exit_code, out.duration, out.output,
                            out.output_bytes, out.truncated, None, str(job.workspace),
                            {"note": out.note} if out.note else {})
        if pending:
            take(bytes(pending))
        return result, lines

    def _outcome(self, job: Job, agent: Installed, out: Result | None, verdict: Verdict,
                 lines: list[str], *, changed: bool) -> Outcome:
        result = out or Result("failed", workspace=str(job.workspace))
        reason = verdict.failure
        if reason is None and result.status == "failed":
            reason = f"exit status {result.exit_code}"
        elif reason is None and result.status == "succeeded" and not changed:
            reason = "it made no change"
        if reason is not None and result.status in ("succeeded", "failed"):
            result.status = "failed"
        elif result.status == "timeout":
            reason = "timed out"
        transcript = "\n".join(lines)
        if reason is not None:
            transcript += f"\n[bzzz] {agent.name} failed: {reason}"
        result.output = transcript.strip()[-self.max_output:]
        result.extra.update({
            "sandbox": self.sandbox.kind, "executor": "agent", "agent": agent.name,
            "model": agent.model, "route": agent.route, "turns": verdict.turns,
            "edits": verdict.edits,
            "leftovers": list(agent.preset.leftovers)})
        if verdict.message.strip() and not (job.output_dir / SUMMARY).exists():
            (job.output_dir / SUMMARY).write_text(verdict.message.strip() + "\n")
        return Outcome(result, [], reason)
