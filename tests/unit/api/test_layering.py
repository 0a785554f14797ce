"""`api/` imports only `store/`, `transforms/`, `contracts/` (and itself).

The layering: docs/architecture.md#packages-and-layering.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
OURS = {"api", "cli", "config", "consumers", "contracts", "dlq", "loadtest", "pipelines"}
OURS |= {"reconcile", "store", "transforms"}
ALLOWED = {"api", "store", "transforms", "contracts"}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names & OURS


@pytest.mark.parametrize("path", sorted((ROOT / "api").glob("*.py")), ids=lambda p: p.name)
def test_api_module_imports_only_the_layers_design_allows(path: Path) -> None:
    assert imported_packages(path) <= ALLOWED, imported_packages(path) - ALLOWED


def test_the_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text("from pipelines.search.ports import SearchIndex\nimport config.api\n")
    assert imported_packages(module) - ALLOWED == {"pipelines", "config"}
