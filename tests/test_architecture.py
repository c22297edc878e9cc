"""The shape of the code (docs/architecture.md): no import cycle between modules, lazy
imports included, and none of the arrows that must never exist."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "bzzz"
PRODUCT = {"agent", "cli", "claim", "exec", "help", "p2p", "hyperlog", "monitor", "schedule",
           "repo", "gateway"}
FORBIDDEN = [  # (from package, to package, why)
    ("claim", "devhub", "the product never depends on the test server"),
    ("help", "claim", "help is matched on capabilities (p2p), not on claiming"),
    *[("devhub", p, "devhub shares only bzzz/github/'s helpers") for p in sorted(PRODUCT)],
    *[("gateway", p, "the gateway stands alone: every sandbox and executor may use it")
      for p in sorted(PRODUCT - {"gateway"})],
    *[(p, "testing", "the product never depends on test helpers")
      for p in sorted(PRODUCT | {"github", "devhub"})],
]


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in ROOT.rglob("*.py")}


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _type_only(tree: ast.Module) -> set[int]:
    """Ids of the import nodes under ``if TYPE_CHECKING:`` (annotations, not imports)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            out |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the bzzz modules it imports, at any depth of its body (lazy imports in
    functions included; imports for type checking only are not imports)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text())
        skip = _type_only(tree)
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, is_package, node)
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    targets.add(sub if sub in modules else base)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_no_import_cycle_lazy_imports_included():
    graph = import_graph()
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_forbidden_arrow():
    bad = []
    for module, targets in import_graph().items():
        for target in targets:
            for src, dst, why in FORBIDDEN:
                if _package(module) == src and _package(target) == dst:
                    bad.append(f"{module} -> {target}: {why}")
    assert not bad, "\n".join(sorted(bad))


def test_the_graph_sees_lazy_imports():
    """The check would catch a cycle hidden by an import inside a function."""
    graph = import_graph()
    assert "bzzz.github.client" in graph["bzzz.claim.service"]
    assert any(t.startswith("bzzz.") for t in graph["bzzz.cli"])  # cli imports lazily
