"""The packages' layering: each imports only the packages its row allows, and none form a cycle.

The layering: docs/architecture.md#packages-and-layering. Imports are read from
the AST of every module, those inside functions included, so a lazy import
cannot hide a cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES: tuple[str, ...] = ("api", "cli", "config", "consumers", "contracts", "dlq")
PACKAGES += ("loadtest", "pipelines", "reconcile", "store", "transforms", "connections_service")
ANYTHING = frozenset(PACKAGES)

# What each package may import besides itself. Where a row allows more than the
# design's first table, the comment says why.
ALLOWED: Mapping[str, frozenset[str]] = {
    "contracts": frozenset(),
    "transforms": frozenset({"contracts"}),
    # The entity and fan-out shapes the repositories return are defined by transforms.
    "store": frozenset({"contracts", "transforms"}),
    # Not config: the runtimes take `ConsumerOptions` and name what they read of
    # the settings as protocols, since config composes them and imports them.
    "consumers": frozenset({"contracts"}),
    # store: the relay's outbox rows and the search loader's profile reads are the
    # PostgreSQL adapters beside the pipelines that own them.
    # connections_service: the feed worker's gRPC connection source calls it through
    # its typed client.
    "pipelines": frozenset({"contracts", "transforms", "store", "connections_service"}),
    # The gRPC Connections Service answers from PostgreSQL (store) with our failure
    # types and metrics (contracts).
    "connections_service": frozenset({"contracts", "transforms", "store"}),
    "dlq": frozenset({"contracts", "consumers"}),
    # pipelines: reconciliation repairs through the pipelines' own ports and
    # adapters (the search index); store: it reads PostgreSQL as the source of truth.
    "reconcile": frozenset({"contracts", "transforms", "pipelines", "store"}),
    "api": frozenset({"contracts", "transforms", "store"}),
    "config": ANYTHING,
    "cli": ANYTHING,
    "loadtest": ANYTHING,
}


def imported_packages(path: Path) -> set[str]:
    """Our packages that `path` imports anywhere in its body."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names & set(PACKAGES)


def package_imports(root: Path, package: str) -> set[str]:
    """The other packages that any module of `package` imports."""
    found: set[str] = set()
    for path in sorted((root / package).rglob("*.py")):
        found |= imported_packages(path)
    return found - {package}


def package_graph(root: Path) -> dict[str, set[str]]:
    return {package: package_imports(root, package) for package in PACKAGES}


def cycles(graph: Mapping[str, set[str]]) -> list[tuple[str, ...]]:
    """Every simple cycle once, starting at its alphabetically first package."""
    found: list[tuple[str, ...]] = []

    def walk(path: tuple[str, ...]) -> None:
        for successor in sorted(graph.get(path[-1], ())):
            if successor == path[0]:
                found.append(path)
            elif successor > path[0] and successor not in path:
                walk((*path, successor))

    for start in sorted(graph):
        walk((start,))
    return found


def described(found: list[tuple[str, ...]]) -> str:
    return "; ".join(" -> ".join((*cycle, cycle[0])) for cycle in found)


def test_no_import_cycle_between_packages() -> None:
    found = cycles(package_graph(ROOT))
    assert not found, f"import cycles between packages: {described(found)}"


def test_the_cycle_check_sees_a_cycle_through_a_lazy_import(tmp_path: Path) -> None:
    # GIVEN config importing consumers inside a function, and consumers importing config
    for package in PACKAGES:
        (tmp_path / package).mkdir()
    (tmp_path / "config" / "worker.py").write_text(
        "def run() -> None:\n    from consumers.runtime import SqsConsumer\n"
    )
    (tmp_path / "consumers" / "runtime.py").write_text("from config.settings import Settings\n")
    # WHEN the graph is built THEN the cycle is found and named
    found = cycles(package_graph(tmp_path))
    assert found == [("config", "consumers")]
    assert described(found) == "config -> consumers -> config"


@pytest.mark.parametrize("package", PACKAGES)
def test_package_imports_only_what_its_row_allows(package: str) -> None:
    forbidden = {
        str(path.relative_to(ROOT)): imported_packages(path) - ALLOWED[package] - {package}
        for path in sorted((ROOT / package).rglob("*.py"))
    }
    assert not {path: names for path, names in forbidden.items() if names}


def test_the_rule_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text("from pipelines.search.ports import SearchIndex\nimport config.api\n")
    assert imported_packages(module) - ALLOWED["api"] == {"pipelines", "config"}


def test_every_package_has_a_row() -> None:
    assert set(ALLOWED) == set(PACKAGES)
