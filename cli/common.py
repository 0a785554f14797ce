"""Shared plumbing for commands: one event loop, errors as one sentence on stderr."""

from __future__ import annotations

import sys
from collections.abc import Coroutine
from typing import Any, NoReturn, TypeVar

import typer
import uvloop

from config.settings import Settings, SettingsError, load_settings

T = TypeVar("T")


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one clear sentence to stderr and exit."""
    typer.echo(f"socialpipe: {message}", err=True)
    raise typer.Exit(code)


def settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        fail(str(exc))


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on uvloop, turning expected failures into exit code 1."""
    try:
        return uvloop.run(coro)
    except KeyboardInterrupt:
        typer.echo("socialpipe: interrupted.", err=True)
        raise typer.Exit(130) from None
    except (TimeoutError, OSError) as exc:
        fail(f"cannot reach a service ({exc}).")


def is_tty() -> bool:
    return sys.stderr.isatty()
