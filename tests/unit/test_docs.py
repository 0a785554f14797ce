"""The documentation travels with the code: every reference resolves from a clone.

- No file cites a document or requirement id that is not in the repository.
- Every `docs/….md` path named in the code (docstrings, comments, manifests)
  exists, and so does the heading its `#anchor` points to.
- Every stop of the "life of an event" pages (`path/file.py: Class.method`)
  names a file that exists and defines that function, class or method.
"""

from __future__ import annotations

import ast
import re
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
LIFE_PAGES = ("life-of-a-post-created.md", "life-of-a-profile-update.md")
SKIPPED_DIRS = frozenset(
    {".venv", ".git", ".mypy_cache", ".ruff_cache", ".hypothesis", ".pytest_cache"}
    | {"node_modules", "out", ".run", "__pycache__"}
)
TEXT_SUFFIXES = frozenset(
    {".py", ".md", ".yaml", ".yml", ".lua", ".sql", ".toml", ".json", ".mjs", ".cfg", ".txt"}
)
TEXT_NAMES = frozenset({"Makefile", "Dockerfile", "run"})

# Assembled from pieces so that this file does not match its own patterns.
_SECTION = "\u00a7"
UNRESOLVABLE = re.compile(
    "|".join(
        (
            "DESIGN" + r"(?:\.md|\s*" + _SECTION + ")",
            "MAP" + r"-0\d",
            r"\bseed\s+(?:PST|" + _SECTION + r"|\d+\.\d)",
            "VAL" + r"-[A-Z]+-\d",
            "STYLE" + r"(?:\.md|\s*" + _SECTION + ")",
        )
    )
)
DOC_PATH = re.compile(r"docs/([\w.-]+\.md)(#[\w-]+)?")
MD_LINK = re.compile(r"\]\(([\w.-]+\.md)(#[\w-]+)?\)")
# `path/to/file.py: Name.method`, or a bare `path/to/file.lua` (then only the file must exist).
STOP = re.compile(r"`([\w/.-]+\.(?:py|lua|sql))(?::\s*([\w.]+))?`")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*$", re.MULTILINE)


def _listed_files() -> list[Path] | None:
    """Tracked and untracked-but-not-ignored files, as a clone would have them."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return [ROOT / name for name in out.decode().split("\0") if name]


def _walked_files() -> Iterator[Path]:
    for path in ROOT.rglob("*"):
        parts = path.relative_to(ROOT).parts
        if any(p in SKIPPED_DIRS or p.endswith("-data") for p in parts):
            continue
        if path.is_file():
            yield path


def repository_text_files() -> list[Path]:
    listed = _listed_files()
    files = listed if listed is not None else list(_walked_files())
    return sorted(
        f
        for f in files
        if f.is_file()
        and not any(p in SKIPPED_DIRS for p in f.relative_to(ROOT).parts)
        and (f.suffix in TEXT_SUFFIXES or f.name in TEXT_NAMES)
    )


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces → '-'."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@cache
def anchors(doc: Path) -> frozenset[str]:
    return frozenset(slug(h) for h in HEADING.findall(read(doc)))


def unresolvable_references() -> list[str]:
    found = []
    for path in repository_text_files():
        for number, line in enumerate(read(path).splitlines(), 1):
            if UNRESOLVABLE.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    return found


def broken_doc_links() -> list[str]:
    broken = []
    for path in repository_text_files():
        text = read(path)
        targets = [(DOCS / name, anchor) for name, anchor in DOC_PATH.findall(text)]
        if path.parent == DOCS or path == ROOT / "README.md":
            base = path.parent
            targets += [(base / name, anchor) for name, anchor in MD_LINK.findall(text)]
        for target, anchor in targets:
            where = f"{path.relative_to(ROOT)} → {target.relative_to(ROOT)}{anchor}"
            if not target.is_file():
                broken.append(f"{where}: no such file")
            elif anchor and anchor[1:] not in anchors(target):
                broken.append(f"{where}: no such heading")
    return broken


def stops(page: Path) -> list[tuple[str, str | None]]:
    return [(file, name or None) for file, name in STOP.findall(read(page))]


def _python_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    definitions = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    for node in tree.body:
        if isinstance(node, definitions):
            names.add(node.name)
        if isinstance(node, ast.ClassDef):
            for inner in node.body:
                if isinstance(inner, definitions):
                    names.add(f"{node.name}.{inner.name}")
    return names


@cache
def defined_names(path: Path) -> frozenset[str]:
    return frozenset(_python_names(ast.parse(read(path), filename=str(path))))


def stop_problem(file: str, name: str | None) -> str | None:
    path = ROOT / file
    if not path.is_file():
        return f"{file}: no such file"
    if name is None:
        return None
    if path.suffix == ".py":
        return None if name in defined_names(path) else f"{file}: defines no {name}"
    return None if name in read(path) else f"{file}: does not mention {name}"


def test_no_file_cites_a_document_the_repository_does_not_contain() -> None:
    assert unresolvable_references() == []


def test_every_docs_path_named_in_the_repository_exists() -> None:
    assert broken_doc_links() == []


@pytest.mark.parametrize("page", LIFE_PAGES)
def test_every_stop_of_a_life_of_page_names_an_existing_definition(page: str) -> None:
    found = stops(DOCS / page)
    assert len(found) >= 15, f"{page} names only {len(found)} stops"
    problems = [p for file, name in found if (p := stop_problem(file, name)) is not None]
    assert problems == []


def test_the_checks_see_what_they_look_for(tmp_path: Path) -> None:
    assert UNRESOLVABLE.search("See DESIGN " + _SECTION + "3.2.")
    assert UNRESOLVABLE.search("(seed " + "PST-001)")
    assert UNRESOLVABLE.search("(seed " + "8.1.10)")
    assert not UNRESOLVABLE.search("the seed's SLOs, seed=7, --seed 3")
    assert slug("Life of a `PostCreated`: 1. stop") == "life-of-a-postcreated-1-stop"
    module = tmp_path / "m.py"
    module.write_text("class A:\n    async def b(self): ...\ndef c(): ...\n")
    assert defined_names(module) == {"A", "A.b", "c"}
    page = tmp_path / "page.md"
    page.write_text("### 1. `store/outbox.py: enqueue`\nsee `pipelines/feed/fanout.lua`\n")
    assert stops(page) == [("store/outbox.py", "enqueue"), ("pipelines/feed/fanout.lua", None)]
    assert stop_problem("store/outbox.py", "no_such_function") is not None
    assert stop_problem("no/such/file.py", "x") is not None
