"""The `socialpipe` command itself: its version and its shell completion."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

from typer.testing import CliRunner

from cli.main import app

SCRIPT = Path(sys.executable).parent / "socialpipe"


def test_version_prints_the_installed_version() -> None:
    # GIVEN the installed package WHEN asked for --version THEN it prints it and exits 0
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"socialpipe {metadata.version('socialpipe')}"


def complete(words: str, cword: int) -> list[str]:
    """What bash completion offers for `words`, from the installed console script."""
    env = {"_SOCIALPIPE_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    done = subprocess.run(
        [str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.split()


def test_bash_completion_offers_commands_and_pipelines() -> None:
    # GIVEN a partly typed command WHEN bash asks for completions THEN the right words come
    assert complete("socialpipe wor", 1) == ["worker"]
    assert complete("socialpipe worker ", 2) == ["feed", "search", "notifications"]


def test_completion_can_be_shown_for_installation() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert "--install-completion" in result.stdout and "--version" in result.stdout
