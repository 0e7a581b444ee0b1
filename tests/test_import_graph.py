"""The package's modules import each other without cycles.

Every ``import`` counts, at module level and inside functions (a lazy import still ties two
modules together, and a cycle through one breaks as soon as it moves up); only those under
``if TYPE_CHECKING:`` are left out, as they never run. ``from package import submodule`` is an
edge to the submodule; the package's ``__init__`` that Python runs first is not counted (it runs
for every submodule import, so counting it would flag every package that re-exports its
modules).
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

import timelapse_d

PACKAGE = Path(timelapse_d.__file__).parent


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    files = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


def _is_type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return isinstance(test, ast.Name | ast.Attribute) and ast.unparse(test).endswith(
        "TYPE_CHECKING"
    )


def imported_names(path: Path, module: str) -> set[str]:
    """Dotted names a module imports (relative imports resolved), TYPE_CHECKING ones left out."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    stack: list[ast.AST] = [ast.parse(path.read_text(encoding="utf-8"))]
    while stack:
        node = stack.pop()
        if _is_type_checking(node):
            stack += node.orelse  # type: ignore[attr-defined]
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            names |= {f"{base}.{alias.name}" for alias in node.names}
        stack += ast.iter_child_nodes(node)
    return names


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (a name imported from a module counts as
    that module unless it is a submodule)."""
    files = module_files()
    graph: dict[str, set[str]] = {module: set() for module in files}
    for module, path in files.items():
        for name in imported_names(path, module):
            while name and name not in files:
                name = name.rpartition(".")[0]
            if name and name != module:
                graph[module].add(name)
    return graph


def test_imports_at_every_level_count_but_type_checking_ones(tmp_path: Path) -> None:
    source = tmp_path / "pkg" / "sub" / "mod.py"
    source.parent.mkdir(parents=True)
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "from . import sibling\n"
        "from ..other import name\n"
        "if TYPE_CHECKING:\n"
        "    import hidden\n"
        "else:\n"
        "    import shown\n"
        "def f():\n"
        "    import lazy.mod\n"
    )
    names = imported_names(source, "pkg.sub.mod")
    assert {"pkg.sub.sibling", "pkg.other.name", "shown", "lazy.mod"} <= names
    assert "hidden" not in names


def test_a_cycle_is_found() -> None:
    with pytest.raises(graphlib.CycleError):
        graphlib.TopologicalSorter({"a": {"b"}, "b": {"c"}, "c": {"a"}}).prepare()


def test_no_import_cycles() -> None:
    graph = import_graph()
    assert "timelapse_d.flow.raft" in graph["timelapse_d.weights"]  # a function-level import
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        pytest.fail(f"import cycle: {' -> '.join(exc.args[1])}")


def test_synthetic_source_and_precompute_do_not_import_each_other() -> None:
    """Truth fields live in synth/, the field shard formats in shards/: precompute may use the
    synthetic truth, the generator never imports precompute."""
    edges = [
        (a, b)
        for a, targets in import_graph().items()
        for b in targets
        if a.startswith("timelapse_d.synth") and b.startswith("timelapse_d.precompute")
    ]
    assert edges == []


def test_shards_sit_below_the_stages_that_write_and_read_them() -> None:
    """The shard formats import no stage, no precompute backend, no model and no generator."""
    above = ("stages", "precompute", "synth", "fgla", "pipeline", "publish", "cli")
    edges = [
        (a, b)
        for a, targets in import_graph().items()
        for b in targets
        if a.startswith("timelapse_d.shards") and b.removeprefix("timelapse_d.").startswith(above)
    ]
    assert edges == []
