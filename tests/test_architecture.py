"""The shape of the core, checked from its source (``ast``), not by importing it.

Two rules of docs/design.md: no import cycle among zcio's modules, and no import inside a
function except the adapter registry's lazy load (``zcio._adapters``). ``TYPE_CHECKING``
blocks are imports too: a cycle hidden there is still a cycle for a reader.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "zcio"
#: Functions allowed to import: module name -> function names.
LAZY_IMPORTS = {"zcio._adapters": {"_adapter"}}


def _module_name(path: Path, root: Path = SRC) -> str:
    parts = ["zcio", *path.relative_to(root).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules(root: Path = SRC) -> dict[str, tuple[Path, ast.Module]]:
    return {
        _module_name(path, root): (path, ast.parse(path.read_text(), str(path)))
        for path in sorted(root.rglob("*.py"))
    }


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    """The zcio modules an ``from ... import ...`` names (a package's submodules included)."""
    if node.level:
        base = module.split(".")
        if not is_package:
            base.pop()
        base = base[: len(base) - (node.level - 1)]
        target = ".".join([*base, node.module] if node.module else base)
    else:
        target = node.module or ""
    if not target.startswith("zcio"):
        return []
    return [target] + [f"{target}.{alias.name}" for alias in node.names]


def _imports(module: str, path: Path, tree: ast.Module, known: set[str]) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("zcio")]
        elif isinstance(node, ast.ImportFrom):
            names = _resolve(module, path.name == "__init__.py", node)
        else:
            continue
        out.update(n for n in names if n in known and n != module)
    return out


def import_graph(root: Path = SRC) -> dict[str, set[str]]:
    """zcio module -> the zcio modules it imports (anywhere in it)."""
    modules = _modules(root)
    known = set(modules)
    return {name: _imports(name, path, tree, known) for name, (path, tree) in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the list of modules around it; None if there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt.startswith(node + "."):
                continue  # a package importing its own submodule is not a cycle
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def function_imports(root: Path = SRC) -> Iterator[str]:
    """``module:line function`` for every import inside a function, the allowed ones aside."""
    for name, (_path, tree) in _modules(root).items():
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if func.name in LAZY_IMPORTS.get(name, ()):
                continue
            for node in ast.walk(func):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    yield f"{name}:{node.lineno} in {func.name}()"


def test_no_import_cycle_among_zcio_modules() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or ())


def test_no_import_inside_a_function_but_the_registry() -> None:
    found = sorted(set(function_imports()))
    assert not found, "imports inside functions: " + ", ".join(found)


def test_the_registry_still_has_its_lazy_load() -> None:
    """The allowance above names a function that exists (so it cannot go stale silently)."""
    modules = _modules()
    for module, functions in LAZY_IMPORTS.items():
        _path, tree = modules[module]
        defined = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        assert functions <= defined


def test_the_checks_can_fail(tmp_path: Path) -> None:
    """A tree with a cycle through a function-level import fails both checks."""
    pkg = tmp_path / "zcio"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "_a.py").write_text("from ._b import thing\n")
    (pkg / "_b.py").write_text("def thing():\n    from ._a import thing\n    return thing\n")
    assert find_cycle(import_graph(pkg)) == ["zcio._a", "zcio._b", "zcio._a"]
    assert list(function_imports(pkg)) == ["zcio._b:2 in thing()"]


@pytest.mark.parametrize("library", ["trio", "asyncio"])
def test_loop_libraries_are_imported_by_their_adapter_only(library: str) -> None:
    """``import trio`` (``import asyncio``) appears in one module of the core: its adapter."""
    importers = sorted(
        name
        for name, (_path, tree) in _modules().items()
        for node in ast.walk(tree)
        if isinstance(node, ast.Import) and any(a.name == library for a in node.names)
    )
    assert importers == [f"zcio._adapters._{library}"]
