"""What the parts of the checker share: the state ``Checker.__init__`` sets up
(``bzzz/exec/guardian/checker.py``) and the methods one part calls on another, as the
abstract base ``State`` every part derives from; the rule tables (``programs.py``,
``wrappers.py``) take the checker as a ``State``. Also the small types the parts pass
around: a path's components, a variable's value, the working directories, a snapshot of
what bash knows, a command's redirections (``IO``), where a node sits (``Ctx``), the walk's
stack entries and where a path points (``Where``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Final, Literal, TypedDict, Unpack

from tree_sitter import Node, Tree

from .verdict import Policy

Comps = tuple[str, ...]          # an absolute path, split at "/"
Value = str | tuple[str, ...]    # a variable: its value, or the values it may have
Cwds = frozenset[str | None]     # the directories the command may be in (None: unknowable)
# what a subshell, pipeline or nested text restores: (cwds, oldcwds, dirstack, vars)
Snapshot = tuple[Cwds, Cwds, tuple[Cwds, ...], dict[str, Value]]


class IO(TypedDict, total=False):
    """A command's redirections, as far as the checks need them."""

    stdin: tuple[Literal["text", "file"], str]  # the text given, or the file read
    stdout: tuple[str, bool]                    # (where it goes, appended)


class CtxFlags(TypedDict, total=False):
    """What a node passes on to its children (``Ctx.but``, ``Walk.push_children``)."""

    nest: int
    cond: bool
    spawn: bool
    func: str | None
    loop: bool
    endless: bool
    up: tuple[Node, ...] | None
    incmd: bool


class CtxChange(CtxFlags, total=False):
    depth: int


class Ctx:
    """Where a node sits: what the walk needs to know about its surroundings."""

    __slots__ = ("depth", "nest", "cond", "spawn", "func", "loop", "endless", "up", "incmd")

    def __init__(self, depth: int = 0, nest: int = 0, cond: bool = False, spawn: bool = False,
                 func: str | None = None, loop: bool = False, endless: bool = False,
                 up: tuple[Node, ...] | None = None, incmd: bool = False) -> None:
        self.depth, self.nest, self.cond, self.spawn = depth, nest, cond, spawn
        self.func, self.loop, self.endless, self.up, self.incmd = func, loop, endless, up, incmd

    def but(self, **kw: Unpack[CtxChange]) -> Ctx:
        new = Ctx(self.depth, self.nest, self.cond, self.spawn, self.func, self.loop,
                  self.endless, self.up, self.incmd)
        for k, v in kw.items():
            setattr(new, k, v)
        return new


# what the walk's stack holds: a node to visit, a snapshot to restore, a simple command to
# check (``bzzz/exec/guardian/walk.py``)
NODE: Final = 0
RESTORE: Final = 1
COMMAND: Final = 2
StackItem = (tuple[Literal[0], Node, Ctx] | tuple[Literal[1], Snapshot, None]
             | tuple[Literal[2], Node, Ctx])


class Where:
    """Where a path points: kind is ws, scratch, scratchroot, home, device, safe, fd, tcp,
    outside or unknown (``bzzz/exec/guardian/paths.py``)."""

    __slots__ = ("kind", "comps", "path")

    def __init__(self, kind: str, comps: Comps | None) -> None:
        self.kind, self.comps = kind, comps
        self.path = "/" + "/".join(comps) if comps is not None else None


class State(ABC):
    """The checker as each of its parts sees it (``Checker`` implements every method)."""

    policy: Policy
    ws: str
    ws_comps: Comps
    places: dict[str, str]
    place_comps: list[Comps]
    home_comps: Comps
    # what the verdict says
    reasons: list[str]
    notes: list[str]
    commands: list[list[str]]
    # what bash would know at this point of the walk
    cwds: Cwds
    oldcwds: Cwds
    dirstack: tuple[Cwds, ...]
    vars: dict[str, Value]
    links: dict[Comps, Comps | None]       # symlinks and hard links made
    programs: dict[Comps, str]             # copies of programs: path -> program
    files: dict[Comps, tuple[str, str]]    # written: (text|opaque|download, s)
    functions: dict[str, list[tuple[str, bool]]]
    hashed: dict[str, str]
    procsubs: list[Node]
    # the walk and its budgets
    trees: list[Tree]
    stack: list[StackItem]
    nodes: int
    error_line: int
    simples: int
    nested_chars: int
    deadline: float

    # the checker (checker.py)
    @abstractmethod
    def refuse(self, reason: str) -> None: ...

    @abstractmethod
    def parse(self, text: str) -> Tree | None: ...

    # the walk (walk.py)
    @abstractmethod
    def snapshot(self) -> Snapshot: ...

    # words (words.py)
    @abstractmethod
    def fields(self, node: Node, assignment: bool = False) -> list[str]: ...

    @abstractmethod
    def assignment(self, node: Node, ctx: Ctx) -> None: ...

    @abstractmethod
    def heredoc_text(self, r: Node) -> str: ...

    # paths (paths.py)
    @abstractmethod
    def where(self, path: str, follow_last: bool = True) -> Where: ...

    @abstractmethod
    def where_abs(self, path: str, follow_last: bool) -> Where: ...

    @abstractmethod
    def secret(self, path: str) -> str | None: ...

    @abstractmethod
    def check_write(self, path: str, who: str, follow_last: bool = True) -> None: ...

    @abstractmethod
    def check_read(self, path: str, who: str) -> None: ...

    @abstractmethod
    def abs_comps(self, path: str) -> Comps | None: ...

    @abstractmethod
    def cd_to(self, target: str, ctx: Ctx) -> None: ...

    # simple commands (commands.py)
    @abstractmethod
    def command(self, node: Node, ctx: Ctx) -> None: ...

    @abstractmethod
    def simple(self, argv: list[str], io: IO, ctx: Ctx) -> None: ...

    # nested text (nested.py)
    @abstractmethod
    def nested(self, text: str, ctx: Ctx, label: str, positional: list[str] | None = None,
               strict: bool = True, script: bool = False) -> None: ...

    @abstractmethod
    def shell_code(self, code: str, ctx: Ctx, label: str,
                   positional: list[str] | None = None) -> None: ...

    @abstractmethod
    def run_file(self, comps: Comps, word: str, ctx: Ctx, lang: str) -> None: ...

    @abstractmethod
    def shell(self, name: str, args: list[str], io: IO, ctx: Ctx) -> None: ...

    @abstractmethod
    def script_arg(self, name: str, script: str, ctx: Ctx, lang: str,
                   positional: list[str] | None = None, io: IO | None = None) -> None: ...

    @abstractmethod
    def script_stdin(self, name: str, io: IO, ctx: Ctx, lang: str) -> None: ...

    @abstractmethod
    def stage_programs(self, stages: list[Node]) -> list[tuple[str, list[str] | None]]: ...

    # interpreters (interpreters.py)
    @abstractmethod
    def interpreter(self, name: str, lang: str, code_opts: str, value_opts: str,
                    args: list[str], io: IO, ctx: Ctx) -> None: ...

    @abstractmethod
    def scan_code(self, lang: str, code: str, ctx: Ctx, who: str) -> None: ...
