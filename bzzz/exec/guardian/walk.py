"""The walk: the syntax tree visited iteratively (an explicit stack, never recursion), each
kind of node handled by a method that pushes its children with what they need to know about
their surroundings (``Ctx``), and the variables and directories restored where bash would
restore them (subshells, pipelines, background jobs, functions).

``Walk`` is a part of ``bzzz/exec/guardian/checker.py``'s checker; a simple command, once its
children are walked, goes to ``bzzz/exec/guardian/commands.py``.
"""

from __future__ import annotations

import re

from .budgets import MAX_ALTERNATIVES, MAX_DEPTH, MAX_WORDS, Budget, cpu
from .catalog import ENV_FORBIDDEN, NOOP_BUILTINS
from .marks import UNK, UNQUOTE


class Ctx:
    """Where a node sits: what the walk needs to know about its surroundings."""

    __slots__ = ("depth", "nest", "cond", "spawn", "func", "loop", "endless", "up", "incmd")

    def __init__(self, depth=0, nest=0, cond=False, spawn=False, func=None, loop=False,
                 endless=False, up=None, incmd=False):
        self.depth, self.nest, self.cond, self.spawn = depth, nest, cond, spawn
        self.func, self.loop, self.endless, self.up, self.incmd = func, loop, endless, up, incmd

    def but(self, **kw) -> "Ctx":
        new = Ctx(self.depth, self.nest, self.cond, self.spawn, self.func, self.loop,
                  self.endless, self.up, self.incmd)
        for k, v in kw.items():
            setattr(new, k, v)
        return new


# what the stack holds: a node to visit, a snapshot to restore, a simple command to check
NODE, RESTORE, COMMAND = 0, 1, 2
_LEAF_HANDLED = {"heredoc_body"}
_ENDLESS_WHILE = (b"true", b":", b"[ 1 ]", b"((1))", b"/bin/true")
_ENDLESS_UNTIL = (b"false", b"/bin/false", b"! true")


class Walk:
    """The iterative walk and its node handlers (a part of the checker)."""

    def snapshot(self):
        return (self.cwds, self.oldcwds, self.dirstack, dict(self.vars))

    def restore(self, snap) -> None:
        self.cwds, self.oldcwds, self.dirstack, self.vars = snap

    def run(self, root, ctx: Ctx) -> None:
        stack = self.stack
        stack.append((NODE, root, ctx))
        handlers = HANDLERS
        visited = 0
        while stack:
            kind, item, ctx = stack.pop()
            visited += 1
            if visited & 63 == 0 and cpu() > self.deadline:
                raise Budget("the check took too long (the command is too complex)")
            if kind == RESTORE:
                self.restore(item)
                continue
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

    def push_children(self, node, ctx: Ctx, **kw) -> None:
        kids = node.children
        if not kids:
            return
        child_ctx = ctx.but(depth=ctx.depth + 1, **kw)
        stack = self.stack
        items = []
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

    def on_command(self, node, ctx: Ctx) -> None:
        if node.child_count > MAX_WORDS:
            raise Budget("too many words in one command")
        if ctx.incmd:
            ctx = ctx.but(incmd=False)
        self.stack.append((COMMAND, node, ctx))
        self.stack.append((RESTORE, self.snapshot(), None))
        self.push_children(node, ctx, incmd=True, spawn=False, up=None)

    def on_list(self, node, ctx: Ctx) -> None:
        kids = [c for c in node.children if c.is_named]
        items = []
        for k, c in enumerate(kids):
            items.append((NODE, c, ctx.but(depth=ctx.depth + 1, cond=ctx.cond or k > 0)))
        self.stack.extend(reversed(items))

    def on_pipeline(self, node, ctx: Ctx) -> None:
        stages = [c for c in node.children if c.is_named]
        items = [(NODE, s, ctx.but(depth=ctx.depth + 1, spawn=True,
                                   up=tuple(stages[max(0, k - 16):k]) if k else None))
                 for k, s in enumerate(stages)]
        self.stack.append((RESTORE, self.snapshot(), None))
        self.stack.extend(reversed(items))

    def on_subshell(self, node, ctx: Ctx) -> None:
        self.stack.append((RESTORE, self.snapshot(), None))
        self.push_children(node, ctx, up=None if node.type != "subshell" else ctx.up)

    def on_process_substitution(self, node, ctx: Ctx) -> None:
        up = None
        if node.children and node.children[0].type == ">(":
            p, hops = node.parent, 0
            while p is not None and p.type != "command" and hops < 8:
                p, hops = p.parent, hops + 1
            up = (p,) if p is not None else None
        self.stack.append((RESTORE, self.snapshot(), None))
        self.push_children(node, ctx, up=up, incmd=False, spawn=True)

    def on_branch(self, node, ctx: Ctx) -> None:
        self.push_children(node, ctx, cond=True)

    def on_while(self, node, ctx: Ctx) -> None:
        kw = node.children[0].type if node.children else "while"
        cond = node.child_by_field_name("condition")
        endless = False
        if cond is not None:
            text = cond.text.strip().rstrip(b";").strip()
            endless = (kw == "while" and text in _ENDLESS_WHILE) or \
                (kw == "until" and text in _ENDLESS_UNTIL)
        self.push_children(node, ctx, cond=True, loop=True, endless=endless or ctx.endless)

    def on_c_for(self, node, ctx: Ctx) -> None:
        endless = re.match(rb"for\s*\(\([^;]*;\s*;", node.text) is not None
        self.push_children(node, ctx, cond=True, loop=True, endless=endless or ctx.endless)

    def on_for(self, node, ctx: Ctx) -> None:
        var = node.child_by_field_name("variable")
        values = []
        has_in = any(c.type == "in" for c in node.children)
        if has_in:
            for c in node.children_by_field_name("value"):
                values.extend(self.fields(c))
        name = var.text.decode("utf-8", "surrogatepass") if var is not None else ""
        if name:
            if not has_in or not values or len(values) > MAX_ALTERNATIVES:
                self.vars[name] = UNK if has_in is False or len(values) > MAX_ALTERNATIVES \
                    else ""
            else:
                vals = tuple(dict.fromkeys(v.translate(UNQUOTE) for v in values))
                self.vars[name] = vals if len(vals) > 1 else vals[0]
        self.push_children(node, ctx, cond=True, loop=True)

    def on_function(self, node, ctx: Ctx) -> None:
        name_node = node.child_by_field_name("name")
        name = name_node.text.decode("utf-8", "surrogatepass") if name_node is not None else "?"
        self.functions.setdefault(name, [])
        self.stack.append((RESTORE, self.snapshot(), None))
        self.push_children(node, ctx, func=name, cond=True, spawn=False, loop=False,
                           endless=False, up=None)

    def on_assignment(self, node, ctx: Ctx) -> None:
        if not ctx.incmd:
            self.assignment(node, ctx)
        self.push_children(node, ctx)

    def on_declaration(self, node, ctx: Ctx) -> None:
        kw = node.children[0].type if node.children else ""
        for c in node.children:
            if c.type == "variable_assignment":
                self.assignment(c, ctx.but(cond=ctx.cond or kw == "local" and
                                           ctx.func is not None))
            elif c.type == "variable_name":
                name = c.text.decode("utf-8", "surrogatepass")
                if name in ENV_FORBIDDEN:
                    self.refuse(f"sets {name} ({ENV_FORBIDDEN[name]})")
        if self.policy.allow is not None and kw not in NOOP_BUILTINS:
            self.refuse(f"{kw} is not on the allow list")
        self.push_children(node, ctx, incmd=True)

    def on_unset(self, node, ctx: Ctx) -> None:
        for c in node.named_children:
            if c.type == "variable_name":
                self.vars[c.text.decode("utf-8", "surrogatepass")] = ""
        self.push_children(node, ctx, incmd=True)

    def on_file_redirect(self, node, ctx: Ctx) -> None:
        op = None
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

    def on_heredoc_body(self, node, ctx: Ctx) -> None:
        self.push_children(node, ctx)


HANDLERS = {
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
