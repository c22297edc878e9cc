"""The Guardian's budgets: how much one check may cost before the command is refused.

Every limit a hostile command could push (length, syntax nodes, depth, nesting, words,
commands, variable alternatives, CPU time) is here; ``Budget`` is raised where one runs out and
``bzzz/exec/guardian/checker.py`` turns it into a refusal.
"""

from __future__ import annotations

from ...errors import ExecError
import time

MAX_COMMAND = 16 * 1024
MAX_NODES = 20_000        # syntax nodes over every parse of one check (nested text included)
MAX_DEPTH = 160           # depth of the syntax tree
MAX_NESTING = 6           # sh -c 'sh -c ...', eval, scripts written then run
MAX_WORDS = 2048          # words of one simple command after expansion
MAX_SIMPLE = 500          # simple commands checked (nested ones included)
MAX_ALTERNATIVES = 8      # values a variable may have (for loops, branches)
MAX_VALUE = 4096          # longest variable value tracked
MAX_NESTED_TEXT = 4 * MAX_COMMAND
TIME_BUDGET = 0.030       # CPU seconds of one check; past it the command is refused
PARSE_BUDGET = 0.010      # CPU seconds tree-sitter may take over one parse
# The budgets count the checking thread's own CPU time, not the wall clock: a loaded machine
# (many agents on few cores) must not turn an ordinary command into a refusal.
cpu = time.thread_time


class Budget(ExecError):
    """A budget (nodes, depth, nesting, time) ran out: the command is refused."""
