"""The walk: the syntax tree visited iteratively (an explicit stack, never recursion), each
kind of node handled by a method that pushes its children with what they need to know about
their surroundings (``Ctx``, in ``state.py``), and the variables and directories restored where bash would
restore them (subshells, pipelines, background jobs, functions).

``Walk`` is a part of ``bzzz/exec/guardian/checker.py``'s checker; a simple command, once its
children are walked, goes to ``bzzz/exec/guardian/commands.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Unpack

from tree_sitter import Node

from .budgets import MAX_ALTERNATIVES, MAX_DEPTH, MAX_WORDS, Budget, cpu
from .catalog import ENV_FORBIDDEN, NOOP_BUILTINS
from .marks import UNK, UNQUOTE
from .state import (COMMAND, NODE, RESTORE, Ctx, CtxFlags, Snapshot, StackItem,
                    State)
from .syntax import node_bytes, node_str


_LEAF_HANDLED = {"heredoc_body"}
_ENDLESS_WHILE = (b"true", b":", b"[ 1 ]", b"((1))", b"/bin/true")
_ENDLESS_UNTIL = (b"false", b"/bin/false", b"! true")


class Walk(State):
    """The iterative walk and its node handlers (a part of the checker)."""

    def snapshot(self) -> Snapshot:
        return (self.cwds, self.oldcwds, self.dirstack, dict(self.vars))

    def restore(self, snap: Snapshot) -> None:
        self.cwds, self.oldcwds, self.dirstack, self.vars = snap

    def run(self, root: Node, ctx: Ctx) -> None:
        stack = self.stack
        stack.append((NODE, root, ctx))
        handlers = HANDLERS
        visited = 0
        while stack:
            entry = stack.pop()
            visited += 1
            if visited & 63 == 0 and cpu() > self.deadline:
                raise Budget("the check took too long (the command is too complex)")
            if entry[0] == RESTORE:
                self.restore(entry[1])
                continue
            kind, item, ctx = entry
            if kind == COMMAND:
                self.command(item, ctx)
                continue
            if ctx.depth > MAX_DEPTH:
                raise Budget("nested too deeply (over %d levels)" % MAX_DEPTH)
            handler = handlers.get(item.type)
            if handler is None:
                self.push_children(item, ctx)
            else:
                handler(self, item, ctx)

    def push_children(self, node: Node, ctx: Ctx, **kw: Unpack[CtxFlags]) -> None:
        kids = node.children
        if not kids:
            return
        child_ctx = ctx.but(depth=ctx.depth + 1, **kw)
        stack = self.stack
        items: list[StackItem] = []
        n = len(kids)
        for i, c in enumerate(kids):
            if not c.is_named or (c.child_count == 0 and c.type not in _LEAF_HANDLED):
                continue
            if i + 1 < n and kids[i + 1].type == "&":
                if ctx.endless:
                    self.refuse("fork bomb (an endless loop starting background jobs)")
                items.append((RESTORE, self.snapshot(), None))
                items.append((NODE, c, child_ctx.but(spawn=True)))
            else:
                items.append((NODE, c, child_ctx))
        stack.extend(reversed(items))

    # ------------------------------------------------------------------ node handlers

    def on_command(self, node: Node, ctx: Ctx) -> None:
        if node.child_count > MAX_WORDS:
            raise Budget("too many words in one command")
        if ctx.incmd:
            ctx = ctx.but(incmd=False)
        self.stack.append((COMMAND, node, ctx))
        self.stack.append((RESTORE, self.snapshot(), None))
        self.push_children(node, ctx, incmd=True, spawn=False, up=None)

    def on_list(self, node: Node, ctx: Ctx) -> None:
        kids = [c for c in node.children if c.is_named]
        items: list[StackItem] = []
        for k, c in enumerate(kids):
            items.append((NODE, c, ctx.but(depth=ctx.depth + 1, cond=ctx.cond or k > 0)))
        self.stack.extend(reversed(items))

    def on_pipeline(self, node: Node, ctx: Ctx) -> None:
        stages = [c for c in node.children if c.is_named]
        items: list[StackItem] = [(NODE, s, ctx.but(depth=ctx.depth + 1, spawn=True,
                                   up=tuple(stages[max(0, k - 16):k]) if k else None))
                 for k, s in enumerate(stages)]
        self.stack.append((RESTORE, self.snapshot(), None))
        self.stack.extend(reversed(items))

    def on_subshell(self, node: Node, ctx: Ctx) -> None:
        self.stack.append((RESTORE, self.snapshot(), None))
        self.push_children(node, ctx, up=None if node.type != "subshell" else ctx.up)

    def on_process_substitution(self, node: Node, ctx: Ctx) -> None:
        up: tuple[Node, ...] | None = None
        if node.children and node.children[0].type == ">(":
            p, hops = node.parent, 0
            while p is not None and p.type != "command" and hops < 8:
                p, hops = p.parent, hops + 1
            up = (p,) if p is not None else None
        self.stack.append((RESTORE, self.snapshot(), None))
        self.push_children(node, ctx, up=up, incmd=False, spawn=True)

    def on_branch(self, node: Node, ctx: Ctx) -> None:
        self.push_children(node, ctx, cond=True)

    def on_while(self, node: Node, ctx: Ctx) -> None:
        kw = node.children[0].type if node.children else "while"
        cond = node.child_by_field_name("condition")
        endless = False
        if cond is not None:
            text = node_bytes(cond).strip().rstrip(b";").strip()
            endless = (kw == "while" and text in _ENDLESS_WHILE) or \
                (kw == "until" and text in _ENDLESS_UNTIL)
        self.push_children(node, ctx, cond=True, loop=True, endless=endless or ctx.endless)

    def on_c_for(self, node: Node, ctx: Ctx) -> None:
        endless = re.match(rb"for\s*\(\([^;]*;\s*;", node_bytes(node)) is not None
        self.push_children(node, ctx, cond=True, loop=True, endless=endless or ctx.endless)

    def on_for(self, node: Node, ctx: Ctx) -> None:
        var = node.child_by_field_name("variable")
        values: list[str] = []
        has_in = any(c.type == "in" for c in node.children)
        if has_in:
            for c in node.children_by_field_name("value"):
                values.extend(self.fields(c))
        name = node_str(var) if var is not None else ""
        if name:
            if not has_in or not values or len(values) > MAX_ALTERNATIVES:
                self.vars[name] = UNK if has_in is False or len(values) > MAX_ALTERNATIVES \
                    else ""
            else:
                vals = tuple(dict.fromkeys(v.translate(UNQUOTE) for v in values))
                self.vars[name] = vals if len(vals) > 1 else vals[0]
        self.push_children(node, ctx, cond=True, loop=True)

    def on_function(self, node: Node, ctx: Ctx) -> None:
        name_node = node.child_by_field_name("name")
        name = node_str(name_node) if name_node is not None else "?"
        self.functions.setdefault(name, [])
        self.stack.append((RESTORE, self.snapshot(), None))
        self.push_children(node, ctx, func=name, cond=True, spawn=False, loop=False,
                           endless=False, up=None)

    def on_assignment(self, node: Node, ctx: Ctx) -> None:
        if not ctx.incmd:
            self.assignment(node, ctx)
        self.push_children(node, ctx)

    def on_declaration(self, node: Node, ctx: Ctx) -> None:
        kw = node.children[0].type if node.children else ""
        for c in node.children:
            if c.type == "variable_assignment":
                self.assignment(c, ctx.but(cond=ctx.cond or kw == "local" and
                                           ctx.func is not None))
            elif c.type == "variable_name":
                name = node_str(c)
                if name in ENV_FORBIDDEN:
                    self.refuse(f"sets {name} ({ENV_FORBIDDEN[name]})")
        if self.policy.allow is not None and kw not in NOOP_BUILTINS:
            self.refuse(f"{kw} is not on the allow list")
        self.push_children(node, ctx, incmd=True)

    def on_unset(self, node: Node, ctx: Ctx) -> None:
        for c in node.named_children:
            if c.type == "variable_name":
                self.vars[node_str(c)] = ""
        self.push_children(node, ctx, incmd=True)

    def on_file_redirect(self, node: Node, ctx: Ctx) -> None:
        op: str | None = None
        dest = node.child_by_field_name("destination")
        for c in node.children:
            if not c.is_named and op is None:
                op = c.type
        if dest is not None and op is not None:
            fields = self.fields(dest)
            target = fields[0] if fields else ""
            if op in (">", ">>", ">|", "&>", "&>>") or (op == ">&" and dest.type != "number"
                                                         and target != "-"):
                self.check_write(target, "redirection")
            elif op in ("<", "<&") and dest.type != "number":
                self.check_read(target, "redirection")
        self.push_children(node, ctx)

    def on_heredoc_body(self, node: Node, ctx: Ctx) -> None:
        self.push_children(node, ctx)


HANDLERS: dict[str, Callable[[Walk, Node, Ctx], None]] = {
    "command": Walk.on_command, "list": Walk.on_list, "pipeline": Walk.on_pipeline,
    "subshell": Walk.on_subshell, "command_substitution": Walk.on_subshell,
    "process_substitution": Walk.on_process_substitution,
    "if_statement": Walk.on_branch, "elif_clause": Walk.on_branch,
    "else_clause": Walk.on_branch, "case_statement": Walk.on_branch,
    "case_item": Walk.on_branch, "while_statement": Walk.on_while,
    "c_style_for_statement": Walk.on_c_for, "for_statement": Walk.on_for,
    "function_definition": Walk.on_function, "variable_assignment": Walk.on_assignment,
    "declaration_command": Walk.on_declaration, "unset_command": Walk.on_unset,
    "file_redirect": Walk.on_file_redirect, "heredoc_body": Walk.on_heredoc_body,
}
