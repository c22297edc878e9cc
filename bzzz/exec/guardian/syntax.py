"""Bash syntax trees from tree-sitter-bash, one parser a thread, under a CPU budget.

The parse stops at the first error (a command that is not valid bash is refused) and is cut
off past its budget (``PARSE_BUDGET``, and never past the check's own deadline).
"""

from __future__ import annotations

import threading

import tree_sitter_bash
from tree_sitter import Language, Node, Parser, Tree

from ...errors import ExecError
from .budgets import PARSE_BUDGET, Budget, cpu

_LANGUAGE = Language(tree_sitter_bash.language())
_local = threading.local()


def _parser() -> Parser:
    parser: Parser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = Parser(_LANGUAGE)
    return parser


def node_bytes(node: Node) -> bytes:
    """The source text of a node: a tree parsed here keeps its text, so it is always there."""
    data = node.text
    if data is None:  # only a tree parsed without its text has none: never one of ours
        raise ExecError("a syntax node without its text")
    return data


def node_str(node: Node) -> str:
    """The source text of a node as a string (lone surrogates kept, as they were given)."""
    return node_bytes(node).decode("utf-8", "surrogatepass")


def parse(text: str, deadline: float) -> tuple[Tree | None, int]:
    """(the syntax tree of ``text``, 0), or (None, the line of the first error, 0 if unknown)
    where bash syntax is broken. Raises ``Budget`` past the parse budget."""
    data = text.encode("utf-8", "surrogatepass")
    limit = min(deadline, cpu() + PARSE_BUDGET)
    state = [0, False]

    def progress(offset: int, has_error: bool) -> bool:
        if has_error:
            state[0] = offset
            return True
        if cpu() > limit:
            state[1] = True
            return True
        return False

    parser = _parser()
    try:
        tree = parser.parse(lambda offset, _point: data[offset:], progress_callback=progress)
    except ValueError:
        parser.reset()
        if state[1]:
            raise Budget("too complex to parse quickly") from None
        return None, data[:state[0]].count(b"\n") + 1
    if tree.root_node.has_error:
        return None, 0
    return tree, 0
