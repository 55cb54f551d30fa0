"""The import graph of the live_matview package, read from its source with ``ast``.

``python -m tests.import_graph`` prints it, stage by stage; ``tests/test_layers.py``
holds it to the layering rules of docs/architecture.md.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "live_matview"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE

#: Stages from the bottom up. A module may import its own stage and those below it.
STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("leaves", ("_compat", "conf", "exceptions", "signals", "models", "embedded")),
    ("views", ("views",)),
    ("schema", ("schema",)),
    ("capture", ("capture",)),
    ("refresh", ("refresh",)),
    (
        "public face and tools",
        (
            "__init__",
            "admin",
            "apps",
            "base_model",
            "checks",
            "middleware",
            "migrate_hooks",
            "processor",
            "status",
            "sync_catch_up",
            "tasks",
            "management",
            "migrations",
            "testing",
        ),
    ),
]


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name inside the package, e.g. "refresh.full"
    imported: str
    line: int
    in_function: bool
    type_checking: bool


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def stage_of(module: str) -> int:
    head = module.split(".")[0]
    for rank, (_name, members) in enumerate(STAGES):
        if head in members:
            return rank
    raise LookupError(f"{PACKAGE}.{module} belongs to no stage: add it to STAGES.")


def _resolve(importer: str, is_package: bool, level: int, module: str | None) -> str:
    base = importer.split(".") if importer != "__init__" else []
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, module] if module else base)


def _known(name: str, modules: set[str]) -> str | None:
    """The package module ``name`` refers to (a module, or the package of a name)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def imports() -> list[Import]:
    found: list[Import] = []
    known = modules()
    names = set(known)
    for importer, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        is_package = path.name == "__init__.py"
        for node, in_function, type_checking in _walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = _resolve(importer, is_package, node.level, node.module)
                elif node.module and node.module.split(".")[0] == PACKAGE:
                    base = node.module.partition(".")[2]
                else:
                    continue
                for alias in node.names:  # "from . import ddl" imports a module
                    full = f"{base}.{alias.name}" if base else alias.name
                    targets.append(full if full in names else base)
            else:
                targets = [
                    alias.name.partition(".")[2]
                    for alias in node.names
                    if alias.name.split(".")[0] == PACKAGE
                ]
            for target in targets:
                resolved = _known(target, names) if target else "__init__"
                if resolved is not None and resolved != importer:
                    found.append(
                        Import(importer, resolved, node.lineno, in_function, type_checking)
                    )
    return found


def _walk(tree: ast.AST):
    """(import node, inside a function?, under ``if TYPE_CHECKING``?) for every import."""
    stack: list[tuple[ast.AST, bool, bool]] = [(tree, False, False)]
    while stack:
        node, in_function, type_checking = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child, in_function, type_checking
                continue
            child_in_function = in_function or isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef
            )
            child_type_checking = type_checking or (
                isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test)
            )
            stack.append((child, child_in_function, child_type_checking))


def find_cycle(edges: list[Import]) -> list[str] | None:
    """A cycle among the modules, if any (every import counts, local ones too)."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.importer, set()).add(edge.imported)
    state: dict[str, int] = {}  # 1 = on the path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def main() -> int:
    edges = imports()
    print("Stages, bottom up (a module imports only its own stage and those below):")
    for rank, (name, members) in enumerate(STAGES):
        print(f"  {rank} {name}: {', '.join(members)}")
    print()
    between: dict[tuple[str, str], int] = {}
    for edge in edges:
        key = (edge.importer.split(".")[0], edge.imported.split(".")[0])
        if key[0] != key[1]:
            between[key] = between.get(key, 0) + 1
    print("Imports between top-level modules and sub-packages (count):")
    for (importer, imported), count in sorted(between.items()):
        arrow = "->" if stage_of(importer) >= stage_of(imported) else "-> UPWARD"
        print(f"  {importer:<16} {arrow} {imported} ({count})")
    print()
    print("Imports inside functions:")
    for importer, line, imported in sorted(
        {(e.importer, e.line, e.imported) for e in edges if e.in_function}
    ):
        print(f"  {importer}:{line} -> {imported}")
    cycle = find_cycle(edges)
    print()
    print("Cycle: " + (" -> ".join(cycle) if cycle else "none"))
    return 1 if cycle else 0


if __name__ == "__main__":
    sys.exit(main())
