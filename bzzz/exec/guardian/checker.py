"""The checker: the state of one check and the judgement of one command.

``Checker`` is put together from one part an idea: the walk (``walk.py``), words and
variables (``words.py``), paths and directories (``paths.py``), simple commands
(``commands.py``), nested text (``nested.py``) and interpreters (``interpreters.py``), all in
``bzzz/exec/guardian/``. The parts share the state ``Checker.__init__`` sets up, and call
one another, through ``State`` (``state.py``); ``judge`` screens the text, parses it, walks
it and looks for fork bombs.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping

from tree_sitter import Tree

from . import syntax
from .budgets import MAX_NODES, Budget, cpu
from .commands import Commands
from .forkbombs import self_starting
from .interpreters import Interpreters
from .marks import HOME_DIR
from .nested import Nested
from .paths import WRITABLE_PLACES, Paths
from .state import Ctx
from .text import text_problem
from .verdict import Policy, Verdict
from .walk import Walk
from .words import Words


class Checker(Walk, Words, Paths, Commands, Nested, Interpreters):
    def __init__(self, policy: Policy, workspace: str,
                 places: Mapping[str, str] | None = None) -> None:
        self.policy = policy
        ws = posixpath.normpath(workspace if workspace.startswith("/") else "/" + workspace)
        self.ws = ws
        self.ws_comps = tuple(c for c in ws.split("/") if c)
        # variables naming directories of the task (BZZZ_OUTPUT): known values, and writable
        self.places = {k: posixpath.normpath(v) for k, v in (places or {}).items()
                       if isinstance(v, str) and v.startswith("/")}
        self.place_comps = [tuple(c for c in v.split("/") if c) for k, v in self.places.items()
                            if k in WRITABLE_PLACES]
        self.home_comps = tuple(c for c in HOME_DIR.split("/") if c)
        # what the verdict says
        self.reasons = []
        self.notes = []
        self.commands = []
        # what bash would know at this point of the walk
        self.cwds = frozenset([ws])   # None inside: somewhere unknowable
        self.oldcwds = frozenset([None])
        self.dirstack = ()
        self.vars = {}
        self.links = {}       # symlinks and hard links made
        self.programs = {}    # copies of programs: path -> program
        self.files = {}       # written: (text|opaque|download, s)
        self.functions = {}
        self.hashed = {}
        self.procsubs = []
        # the walk and its budgets
        self.trees = []
        self.stack = []
        self.nodes = 0
        self.error_line = 0
        self.simples = 0
        self.nested_chars = 0
        self.deadline = cpu() + policy.time_budget

    def refuse(self, reason: str) -> None:
        if len(self.reasons) < 64:
            self.reasons.append(reason)

    def parse(self, text: str) -> Tree | None:
        """The syntax tree of ``text``, or None where bash syntax is broken (the parse stops
        at the first error; it is cut off past the time budget)."""
        tree, error_line = syntax.parse(text, self.deadline)
        if tree is None:
            self.error_line = error_line
            return None
        self.trees.append(tree)
        self.nodes += tree.root_node.descendant_count
        if self.nodes > MAX_NODES:
            raise Budget("too complex to check (over %d syntax nodes)" % MAX_NODES)
        return tree

    def fork_bombs(self) -> None:
        """A function that reaches itself through calls, one of them in a pipeline or the
        background."""
        for f in self_starting(self.functions):
            self.refuse(f"fork bomb (the function {f} starts itself in a pipeline or "
                        f"the background)")


def judge(command: str, workspace: str, policy: Policy,
          places: Mapping[str, str] | None = None) -> Verdict:
    """The verdict on a command already known to be a non-empty string of allowed length."""
    problem = text_problem(command)
    if problem:
        return Verdict(False, [problem])
    checker = Checker(policy, workspace, places)
    try:
        tree = checker.parse(command)
        if tree is None:
            line = checker.error_line
            return Verdict(False, ["cannot parse the command as bash (a syntax error%s)" %
                                   (f" near line {line}" if line else "")])
        checker.run(tree.root_node, Ctx())
        checker.fork_bombs()
    except Budget as exc:
        checker.refuse(str(exc))
    reasons = list(dict.fromkeys(checker.reasons))
    return Verdict(not reasons, reasons, checker.commands[:256],
                   list(dict.fromkeys(checker.notes)))
