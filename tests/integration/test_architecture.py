"""The hexagon's boundaries: import-linter's contracts (pyproject.toml) and no import cycle between
modules, both read off the code by grimp, which resolves every import by its path."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import grimp

from tests.support.paths import ROOT

PACKAGES = ("domain", "adapters", "app")


def test_every_import_contract_is_kept() -> None:
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint_imports)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    report = " ".join(result.stdout.split())  # lint-imports wraps long contract names
    for contract in contracts:
        assert f"{contract['name']} KEPT" in report, f"contract not checked: {contract['name']}"


def module_cycles(graph: grimp.ImportGraph) -> set[tuple[str, ...]]:
    """Each cycle through a direct import A -> B: the shortest chain from B back to A."""
    cycles = set()
    for importer in graph.modules:
        for imported in graph.find_modules_directly_imported_by(importer):
            chain = graph.find_shortest_chain(importer=imported, imported=importer)
            if chain:
                cycles.add((importer, *chain))
    return cycles


def test_no_module_imports_itself_through_others() -> None:
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    assert module_cycles(graph) == set()


def test_the_cycle_finder_sees_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for module in ("a", "b", "c"):
        graph.add_module(module)
    graph.add_import(importer="a", imported="b")
    graph.add_import(importer="b", imported="c")
    assert module_cycles(graph) == set()
    graph.add_import(importer="c", imported="a")
    assert ("a", "b", "c", "a") in module_cycles(graph)
