"""The Guardian: a guardrail that explains why an obviously harmful task command will not run.

It is *not* the security boundary: commands run inside an OS sandbox, and the sandbox is what
stops a determined attacker. The Guardian refuses the obvious before anything starts, and says
why, in words a person can read on the issue. ``check`` is a core (no I/O, no clock except its
own time budget) and never raises; ``check_async`` runs it off the event loop under a deadline.

How it reads a command: with a real bash grammar (tree-sitter-bash), walked iteratively (an
explicit stack, never recursion) under budgets (syntax nodes, depth, nesting, time). It follows
what bash would do, statically:

- words are expanded the way bash does where the value is known: quoting and escapes
  (``r''m``, ``\\rm``, ``"/bin/rm"``, ``$'\\x72m'``), variables assigned in the command
  (``x=rm; $x``), ``${x:-rm}``, ``${IFS}`` word splitting, brace expansion ``{a,b}``, ``~``,
  ``$PWD``, ``for`` lists, ``$(pwd)``/``$(nproc)``/``$(mktemp)``; globs are judged by where
  they point (``rm -rf *`` after ``cd build`` is inside the workspace, ``/*`` and ``.*`` are
  not);
- the inner commands of ``$(...)``, backticks, ``<(...)``/``>(...)``, here-documents into a
  shell, ``sh -c``/``bash -c`` strings (with ``$1``...), ``eval`` of static text, ``trap``,
  ``alias``, ``find -exec``, ``xargs``, ``watch``, ``flock -c``, ``env -S``, wrappers
  (``env``, ``nohup``, ``timeout``, ``command``, ``exec``, ``nice``, ``busybox``...) are
  checked as commands too;
- ``cd``/``pushd`` move the directory relative paths are judged from (in subshells and branches
  too: a ``cd`` that only may happen widens the set of places); symbolic links and copies made
  by the command (``ln -s / x``, ``cp /bin/rm x``) are followed; a file the command writes
  with known text and then runs is checked as a script, one it downloads and runs is refused.

Refused: hidden or look-alike characters (zero-width, bidi controls, control characters,
compatibility forms, non-ASCII program names), text that is not valid Unicode; privilege
escalation (sudo, su, doas, setuid bits, chown to root, privileged containers...); disk and
filesystem tools (mkfs, fdisk, dd to a device, mount...); recursive deletion outside the
workspace (``/``, ``~``, ``/*``, ``..``); fork bombs (by structure: a function that starts itself
in a pipeline or in the background, directly or through others; an endless loop that starts
background jobs); a download piped (or process-substituted, or saved) into a shell or an
interpreter; writes outside the workspace (``/tmp``, ``/var/tmp``, ``/dev/shm`` and ``/dev/null``
aside) by redirection or by tools (cp, mv, tee, chmod, sed -i, tar -C, curl -o...); reading
secrets (``/run/secrets``, ``/proc/*/environ``, ``~/.ssh``...); killing every process, init or
the agent (``$PPID``); stopping the machine; changing the kernel, firewall, services or
packages; program names only known at run time (``$(...) -rf /``, a variable from elsewhere).
In allow-list mode only the listed programs (and builtins that run nothing) may run at all,
and the rules still apply.

What it cannot see (the sandbox's job): what a program does once it runs (make recipes, npm
scripts, ``./ci.sh``, a sourced file), code given to interpreters (``python -c``, ``perl -e``,
``node -e``, awk: scanned only for obvious patterns: shell-outs whose string literals are then
checked, deletes and writes of literal paths outside, code built at run time), values only
known at run time (command output, files read, ``read``; a run-time part of a path is assumed
not to climb out with ``..``), aliases and functions brought in by a sourced file, bash
features that build code from data (arithmetic on array subscripts, ``declare``/``printf -v``
tricks), behaviour that depends on the environment the sandbox gives (PATH shims, HOME: ``~`` is
always treated as outside the workspace), and anything tree-sitter-bash parses differently
from bash (a command it cannot parse is refused).

The package, one idea a module (all in ``bzzz/exec/guardian/``): ``text.py`` screens the
characters, ``syntax.py`` parses, ``walk.py`` visits the tree, ``words.py`` and
``expansions.py`` expand words, ``paths.py`` says where paths point, ``commands.py`` takes a
simple command apart, ``wrappers.py`` peels wrappers off it, ``programs.py`` holds the rules
by program and ``catalog.py`` the programs known by name, ``nested.py`` checks the text a
command runs as bash, ``interpreters.py`` the code it gives an interpreter,
``forkbombs.py`` finds functions that start themselves; ``checker.py`` puts them together
(``state.py``: what the parts share), ``budgets.py`` and ``verdict.py`` hold the limits and
the answer, ``marks.py`` how a resolved word is written.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Mapping

import trio

from .budgets import (MAX_ALTERNATIVES, MAX_COMMAND, MAX_DEPTH, MAX_NESTED_TEXT, MAX_NESTING,
                      MAX_NODES, MAX_SIMPLE, MAX_VALUE, MAX_WORDS, PARSE_BUDGET, TIME_BUDGET)
from .checker import judge as _check
from .verdict import Policy, Verdict

__all__ = ["CHECK_THREADS", "MAX_ALTERNATIVES", "MAX_COMMAND", "MAX_DEPTH", "MAX_NESTED_TEXT",
           "MAX_NESTING", "MAX_NODES", "MAX_SIMPLE", "MAX_VALUE", "MAX_WORDS", "PARSE_BUDGET",
           "TIME_BUDGET", "Policy", "Verdict", "check", "check_async"]

log = logging.getLogger("bzzz.guardian")


def check(command: str, workspace: str, policy: Policy | None = None,
          places: Mapping[str, str] | None = None) -> Verdict:
    """Decide whether ``command`` may run in ``workspace``. Never raises. ``places``: the
    task's own directories by variable (``BZZZ_OUTPUT`` is writable like the workspace,
    ``BZZZ_FEEDBACK`` a known file)."""
    try:
        policy = policy or Policy()
        if not isinstance(command, str) or not command.strip():
            return Verdict(False, ["no command"])
        if len(command) > policy.max_length:
            return Verdict(False, [f"command longer than {policy.max_length} characters"])
        if not isinstance(workspace, str) or posixpath.normpath("/" + workspace.lstrip("/")) == "/":
            return Verdict(False, ["no workspace to judge the command in (it is /)"])
        return _check(command, workspace, policy, places)
    except Exception as exc:  # the Guardian refuses what it cannot judge, and says so
        log.debug("the check of a command failed", exc_info=True)
        return Verdict(False, [f"the Guardian could not check this command "
                               f"({type(exc).__name__}: {str(exc)[:200]})"])


_limiter: trio.lowlevel.RunVar[trio.CapacityLimiter] = trio.lowlevel.RunVar("guardian_limiter")
CHECK_THREADS = 4


def _get_limiter() -> trio.CapacityLimiter:
    try:
        return _limiter.get()
    except LookupError:
        limiter = trio.CapacityLimiter(CHECK_THREADS)
        _limiter.set(limiter)
        return limiter


async def check_async(command: str, workspace: str, policy: Policy | None = None, *,
                      deadline: float = 10.0, places: Mapping[str, str] | None = None) -> Verdict:
    """``check`` off the event loop (a worker thread behind a small limiter). The check's own
    budgets (CPU time) refuse a command that is too complex; ``deadline`` (wall seconds) is
    only a backstop for a machine so loaded that the thread cannot run at all: past it the
    command is refused and the thread abandoned."""
    with trio.move_on_after(deadline):
        # (the ignore: trio-typing's stubs, which py-libp2p installs, shadow trio's own types
        # and predate abandon_on_cancel)
        return await trio.to_thread.run_sync(  # type: ignore[call-arg]  # stale trio stubs
            check, command, workspace, policy, places, abandon_on_cancel=True,
            limiter=_get_limiter())
    return Verdict(False, [f"the check took too long (over {deadline:g} s)"])
