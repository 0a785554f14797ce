"""Tests share helpers as fixtures or plain modules, never by importing a conftest.

pytest loads conftest files itself; importing one as a module runs it a second
time under another name and hides which fixtures a test really uses.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def conftest_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.endswith("conftest"):
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.endswith("conftest")]
    return found


def test_no_test_module_imports_a_conftest() -> None:
    # GIVEN every module under tests/ WHEN their imports are read THEN none names a conftest
    offenders = {
        str(p.relative_to(TESTS)): names
        for p in sorted(TESTS.rglob("*.py"))
        if (names := conftest_imports(p))
    }
    assert offenders == {}


def test_the_check_sees_a_conftest_import(tmp_path: Path) -> None:
    module = tmp_path / "test_x.py"
    module.write_text("from tests.conftest import make_settings\nimport tests.api.conftest\n")
    assert conftest_imports(module) == ["tests.conftest", "tests.api.conftest"]
