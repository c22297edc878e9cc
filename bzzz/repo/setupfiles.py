"""The repository's own setup, as steps to run before a task (a core: no I/O).

Where it comes from (docs/repository-files.md), the first one present on the base branch:

1. ``.bzzz/setup.sh``: Bzzz's own, run with bash.
2. ``.github/workflows/copilot-setup-steps.yml``: the ``run`` steps of its job
   ``copilot-setup-steps``, in order (a step's ``env`` and ``working-directory`` are kept;
   ``uses:`` steps are actions, which Bzzz does not run: listed as skipped).
3. ``.devcontainer/devcontainer.json`` (JSON with comments and trailing commas):
   ``postCreateCommand`` (a string, an argument list, or an object of parallel commands,
   run one after the other here). Its ``image`` is the image of the container sandbox
   whichever source gives the steps.

The others present are listed as not run: they usually say the same thing, and installing
twice costs a task. ``.bzzz.toml`` may say ``[setup] required = true`` (a failed setup then
fails the task before the executor) and ``test = "…"`` (read by the caller).

The cache key (:func:`cache_key`) is a digest of what a setup's result depends on: the
repository, the sandbox kind and image, the setup sources' text, and the blob ids of the
lockfiles of the checkout's commit, at its root or up to three directories below it outside
vendored directories (git's blob id is a hash of the content).
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field

import yaml

__all__ = ["COPILOT_SETUP", "DEVCONTAINER", "LOCKFILES", "MAX_SETUP_FILE", "REPO_SETTINGS",
           "SETUP_SH", "SETUP_SOURCES", "RepoSettings", "SetupPlan", "Step", "cache_key",
           "is_lockfile", "parse_copilot", "parse_devcontainer", "parse_settings", "plan",
           "strip_jsonc"]

SETUP_SH = ".bzzz/setup.sh"
COPILOT_SETUP = ".github/workflows/copilot-setup-steps.yml"
DEVCONTAINER = ".devcontainer/devcontainer.json"
SETUP_SOURCES = (SETUP_SH, COPILOT_SETUP, DEVCONTAINER)
REPO_SETTINGS = ".bzzz.toml"
MAX_SETUP_FILE = 64 * 1024  # bytes of a setup source read (a larger one is not used)
MAX_STEPS = 50
LOCKFILES = ("package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml",
             "poetry.lock", "uv.lock", "Pipfile.lock", "Cargo.lock", "go.sum",
             "Gemfile.lock", "composer.lock")
_REQUIREMENTS = re.compile(r"^requirements[\w.-]*\.txt$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
KEY_VERSION = "bzzz-setup-1"


def is_lockfile(name: str) -> bool:
    return name in LOCKFILES or bool(_REQUIREMENTS.match(name))


@dataclass(frozen=True)
class Step:
    name: str
    source: str  # the file it comes from
    script: str  # bash


@dataclass
class SetupPlan:
    steps: list[Step] = field(default_factory=list)
    image: str | None = None  # devcontainer's image (the container sandbox only)
    source: str | None = None  # the file the steps come from
    notes: list[str] = field(default_factory=list)  # skipped steps, sources not run, errors

    @property
    def empty(self) -> bool:
        return not self.steps


@dataclass(frozen=True)
class RepoSettings:
    """``.bzzz.toml`` beyond ``[task] egress`` (which the gateway's allow.py reads)."""

    setup_required: bool = False
    test: str | None = None  # #23: a command run after the executor
    error: str | None = None  # why the file was not understood (then: the defaults)


def parse_settings(text: str | None) -> RepoSettings:
    if not text:
        return RepoSettings()
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return RepoSettings(error=f"{REPO_SETTINGS}: {exc}")
    setup = doc.get("setup", {})
    required = setup.get("required", False) if isinstance(setup, dict) else False
    test = doc.get("test")
    if not isinstance(required, bool):
        return RepoSettings(error=f"{REPO_SETTINGS}: [setup] required must be true or false")
    if test is not None and (not isinstance(test, str) or len(test) > 4096):
        return RepoSettings(required, error=f"{REPO_SETTINGS}: test must be a command (text)")
    return RepoSettings(required, test.strip() if isinstance(test, str) and test.strip()
                        else None)


# ------------------------------------------------------------------ GitHub's setup steps


def _env_lines(env: object, where: str, notes: list[str]) -> str:
    if env is None:
        return ""
    if not isinstance(env, dict):
        notes.append(f"{where}: env is not a mapping (ignored)")
        return ""
    out = []
    for k, v in list(env.items())[:100]:
        if not isinstance(k, str) or not _ENV_NAME.match(k) or isinstance(v, (dict, list)):
            notes.append(f"{where}: env {str(k)[:40]!r} ignored")
            continue
        value = "" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
        out.append(f"export {k}={shlex.quote(value)}\n")
    return "".join(out)


def _workdir(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    parts = [p for p in value.strip().split("/") if p not in ("", ".")]
    if not parts or ".." in parts or value.strip().startswith("/"):
        return None
    return "/".join(parts)


def parse_copilot(text: str) -> tuple[list[Step], list[str]]:
    """The ``run`` steps of the job ``copilot-setup-steps``; notes on what is skipped."""
    notes: list[str] = []
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return [], [f"`{COPILOT_SETUP}` is not YAML ({str(exc).splitlines()[0][:120]})"]
    jobs = doc.get("jobs") if isinstance(doc, dict) else None
    job = jobs.get("copilot-setup-steps") if isinstance(jobs, dict) else None
    if not isinstance(job, dict) or not isinstance(job.get("steps"), list):
        return [], [f"`{COPILOT_SETUP}` has no job `copilot-setup-steps` with steps"]
    job_env = _env_lines(job.get("env"), "the job", notes)
    steps: list[Step] = []
    for i, raw in enumerate(job["steps"][:MAX_STEPS], 1):
        if not isinstance(raw, dict):
            notes.append(f"step {i} is not a mapping (skipped)")
            continue
        name = str(raw.get("name") or raw.get("id") or f"step {i}")[:100]
        if "uses" in raw:
            notes.append(f"step {name!r} (`uses: {str(raw['uses'])[:80]}`): an action, "
                         "not run by Bzzz")
            continue
        run = raw.get("run")
        if not isinstance(run, str) or not run.strip():
            notes.append(f"step {name!r}: no `run` (skipped)")
            continue
        if "${{" in run:
            notes.append(f"step {name!r}: `${{{{ … }}}}` expressions are not evaluated")
        script = job_env + _env_lines(raw.get("env"), f"step {name!r}", notes)
        if "working-directory" in raw:
            wd = _workdir(raw.get("working-directory"))
            if wd is None:
                notes.append(f"step {name!r}: working-directory outside the checkout (skipped)")
                continue
            script += f"cd -- {shlex.quote(wd)}\n"
        steps.append(Step(name, COPILOT_SETUP, script + run))
    if len(job["steps"]) > MAX_STEPS:
        notes.append(f"only the first {MAX_STEPS} steps are read")
    return steps, notes


# ------------------------------------------------------------------ devcontainers


def strip_jsonc(text: str) -> str:
    """JSON with comments (``//``, ``/* */``) and trailing commas, as plain JSON."""
    out: list[str] = []
    i, n, in_str = 0, len(text), False
    while i < n:
        c = text[i]
        if in_str:
            out.append(c)
            if c == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 2
                continue
            if c == '"':
                in_str = False
        elif c == '"':
            in_str = True
            out.append(c)
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
            continue
        else:
            out.append(c)
        i += 1
    return re.sub(r",(\s*[}\]])", r"\1", "".join(out))


def _command(value: object) -> str | None:
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return shlex.join(value)
    return None


def parse_devcontainer(text: str) -> tuple[str | None, list[Step], list[str]]:
    """``image`` and the ``postCreateCommand`` steps; notes on what is not understood."""
    try:
        doc = json.loads(strip_jsonc(text))
    except ValueError as exc:
        return None, [], [f"`{DEVCONTAINER}` is not JSON ({str(exc)[:120]})"]
    if not isinstance(doc, dict):
        return None, [], [f"`{DEVCONTAINER}` is not an object"]
    notes: list[str] = []
    image = doc.get("image")
    if image is not None and (not isinstance(image, str) or not re.match(
            r"^[\w][\w.:/@-]{0,255}$", image)):
        notes.append(f"`{DEVCONTAINER}`: image {str(image)[:60]!r} is not an image name")
        image = None
    if "build" in doc or "dockerComposeFile" in doc:
        notes.append(f"`{DEVCONTAINER}`: build and dockerComposeFile are not used")
    raw = doc.get("postCreateCommand")
    steps: list[Step] = []
    if isinstance(raw, dict):
        for k, v in list(raw.items())[:MAX_STEPS]:
            cmd = _command(v)
            if cmd is not None:
                steps.append(Step(f"postCreateCommand {k}"[:100], DEVCONTAINER, cmd))
    elif raw is not None:
        cmd = _command(raw)
        if cmd is None:
            notes.append(f"`{DEVCONTAINER}`: postCreateCommand is not a command")
        else:
            steps.append(Step("postCreateCommand", DEVCONTAINER, cmd))
    return image if isinstance(image, str) else None, steps, notes


# ------------------------------------------------------------------ the plan


def plan(files: Mapping[str, str | None]) -> SetupPlan:
    """The steps to run, from the setup sources' text (None or absent: not there, or too
    large to be read: then ``files`` holds None and a note says so)."""
    out = SetupPlan()
    present = [s for s in SETUP_SOURCES if s in files]
    dc_steps: list[Step] = []
    for src in present:
        if files[src] is None:
            out.notes.append(f"`{src}` is not read (larger than {MAX_SETUP_FILE:,} bytes, "
                             "or not a file)")
    if files.get(DEVCONTAINER):
        image, dc_steps, notes = parse_devcontainer(files[DEVCONTAINER] or "")
        out.image = image
        out.notes += notes
    for src in present:
        text = files[src]
        if text is None or out.steps:
            if text is not None and out.steps:
                out.notes.append(f"`{src}`: not run, `{out.source}` gives the setup")
            continue
        if src == SETUP_SH:
            out.steps = [Step("setup.sh", SETUP_SH, text)]
        elif src == COPILOT_SETUP:
            steps, notes = parse_copilot(text)
            out.steps, out.notes = steps, out.notes + notes
        else:
            out.steps = dc_steps
        out.source = src if out.steps else None
    return out


def cache_key(repo: str, sandbox: str, plan: SetupPlan, sources: Mapping[str, str | None],
              lockfiles: Mapping[str, str]) -> str:
    """A digest of everything a setup's result depends on (see the module's docstring)."""
    h = hashlib.sha256()
    parts: list[str] = [KEY_VERSION, repo.lower(), sandbox, plan.image or ""]
    for src in SETUP_SOURCES:
        parts.append(f"{src}\0{sources.get(src) or ''}")
    parts += [f"{p}\0{sha}" for p, sha in sorted(lockfiles.items())]
    for p in parts:
        h.update(p.encode("utf-8", "surrogateescape"))
        h.update(b"\0\1")
    return h.hexdigest()[:32]
