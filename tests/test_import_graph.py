"""mriviewer's modules import each other without cycles.

The graph is built statically (``ast``) from every ``import`` and ``from ... import`` of a
mriviewer module anywhere in a module's file: at module level, inside functions (lazy imports
count: a lazy import only hides a cycle until the function runs) and ``importlib.import_module``
with a literal name. An import names the deepest mriviewer module it reaches (``from a.b import
c`` is ``a.b.c`` when that is a module, else ``a.b``); a submodule is not counted as importing
its parent package (Python runs the package's ``__init__`` first, which is not a cycle).
"""

from __future__ import annotations

import ast
from pathlib import Path

import mriviewer

PACKAGE = Path(mriviewer.__file__).parent


def _modules() -> dict[str, tuple[Path, bool]]:
    """``{dotted name: (file, is package)}`` of every module of the installed package."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ["mriviewer", *path.relative_to(PACKAGE).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        out[".".join(parts)] = (path, is_package)
    return out


def _imported_names(tree: ast.AST, package: str) -> list[str]:
    """Every dotted name an import statement anywhere in ``tree`` may load."""
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.append(module)
            names += [f"{module}.{alias.name}" for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.append(node.args[0].value)
    return names


def import_graph() -> dict[str, set[str]]:
    """``{module: modules it imports}`` over mriviewer's modules."""
    modules = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, (path, is_package) in modules.items():
        package = name if is_package else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets = {
            resolve(t) for t in _imported_names(tree, package) if t.split(".")[0] == "mriviewer"
        }
        graph[name] = {t for t in targets if t is not None and t != name}
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    out.append(sorted(component))
    return out


def _cycle_in(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """One import path around a component, for the failure message."""
    members = set(component)
    path = [component[0]]
    while True:
        step = sorted(graph[path[-1]] & members)
        following = next((m for m in step if m not in path), None)
        if following is None:
            back = next(m for m in step if m in path)
            return [*path[path.index(back) :], back]
        path.append(following)


def test_the_graph_sees_lazy_and_relative_imports():
    tree = ast.parse(
        "from . import b\nfrom .c import d\ndef f():\n    import mriviewer.x.y\n"
        "importlib.import_module('mriviewer.z')\n"
    )
    assert _imported_names(tree, "mriviewer.pkg") == [
        "mriviewer.pkg",
        "mriviewer.pkg.b",
        "mriviewer.pkg.c",
        "mriviewer.pkg.c.d",
        "mriviewer.x.y",
        "mriviewer.z",
    ]
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    cycles = [c for c in strongly_connected(graph) if len(c) > 1]
    assert cycles == [["a", "b", "c"]]
    assert _cycle_in(cycles[0], graph) == ["a", "b", "c", "a"]


def test_graph_knows_the_core_modules():
    graph = import_graph()
    assert "mriviewer.core.training.trainer" in graph
    assert "mriviewer.core.checkpoints" in graph["mriviewer.core.training.trainer"]
    assert "mriviewer.core.training.trainer" in graph["mriviewer.core.pruning.pun_at"]


def test_no_import_cycles():
    graph = import_graph()
    cycles = [c for c in strongly_connected(graph) if len(c) > 1]
    assert not cycles, "import cycles: " + "; ".join(
        " -> ".join(_cycle_in(c, graph)) for c in cycles
    )


def test_training_reaches_pruning_only_through_its_callback():
    """Pruning builds on training; training names only the [prune] table's settings (config
    checks) and the pruning callback (lazily, for a run whose config has a [prune] table)."""
    graph = import_graph()
    allowed = {"mriviewer.core.pruning.settings", "mriviewer.core.pruning.hook"}
    training = [m for m in graph if m.startswith("mriviewer.core.training")]
    for module in training:
        pruning = {m for m in graph[module] if m.startswith("mriviewer.core.pruning")}
        assert pruning <= allowed, (module, pruning)
