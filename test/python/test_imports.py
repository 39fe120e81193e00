"""The nfhm package's layers, read from its source: rpc -> methods -> core, and no import circle.

Every import statement counts, at module level or inside a function (including those under
TYPE_CHECKING), relative or absolute.
"""

from __future__ import annotations

import ast
from pathlib import Path

import nfhm

PACKAGE_DIR = Path(nfhm.__file__).parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE_DIR.rglob("*.py")}


def imported(name: str, path: Path, modules: set[str]) -> set[str]:
    """The nfhm modules that `name`'s source imports: for ``from P import x``, P.x when that is a
    module, else P."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                targets.add(submodule if submodule in modules else source)
    return {t for t in targets if t in modules}


def import_graph() -> dict[str, set[str]]:
    modules = package_modules()
    return {name: imported(name, path, set(modules)) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as [a, b, ..., a], or None."""
    done: set[str] = set()
    stack: list[str] = []
    on_stack: set[str] = set()

    def visit(node: str) -> list[str] | None:
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target in on_stack:
                return stack[stack.index(target) :] + [target]
            if target not in done and (cycle := visit(target)):
                return cycle
        stack.pop()
        on_stack.discard(node)
        done.add(node)
        return None

    for node in sorted(graph):
        if node not in done and (cycle := visit(node)):
            return cycle
    return None


def layer(module: str) -> str:
    return module.split(".")[1] if module.count(".") else "nfhm"


def test_the_walk_sees_relative_absolute_and_function_level_imports() -> None:
    graph = import_graph()
    assert "nfhm.core.openclip_tower" in graph["nfhm.core.model"]  # inside load()
    assert "nfhm.core.world" in graph["nfhm.methods.embed"]  # from ..core.world import ...
    assert "nfhm.core.train_session" in graph["nfhm.methods.state"]  # under TYPE_CHECKING
    assert {"nfhm.methods.data", "nfhm.methods.train"} <= graph["nfhm.methods"]  # from . import data


def test_no_import_circle() -> None:
    assert find_cycle(import_graph()) is None


def test_a_circle_would_be_found() -> None:
    graph = import_graph()
    graph["nfhm.core.atomic"] = graph["nfhm.core.atomic"] | {"nfhm.core.shards"}  # shards -> table_files -> atomic
    cycle = find_cycle(graph)  # where the walk enters the circle depends on what imports it
    assert cycle is not None and cycle[0] == cycle[-1]
    assert set(cycle) == {"nfhm.core.atomic", "nfhm.core.shards", "nfhm.core.table_files"}


def test_imports_point_one_way_rpc_methods_core() -> None:
    # api (the notebook API) sits beside methods, above core, and needs no RPC.
    allowed = {
        "core": {"core", "nfhm"},
        "methods": {"methods", "core", "nfhm"},
        "rpc": {"rpc", "methods", "core", "nfhm"},
        "api": {"core", "nfhm"},
    }
    wrong = [
        f"{source} imports {target}"
        for source, targets in import_graph().items()
        if layer(source) in allowed
        for target in targets
        if layer(target) not in allowed[layer(source)]
    ]
    assert wrong == []
