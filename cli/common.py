"""Shared plumbing for commands: one event loop, errors as one sentence on stderr."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Coroutine
from typing import Any, NoReturn, TypeVar

import typer
import uvloop

from config.logging import loop_exception_handler, redact_url
from config.settings import Settings, SettingsError, load_settings
from config.startup import StartupError
from contracts.errors import PipelineError

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
    """Run a coroutine on uvloop, turning expected failures into exit code 1.

    Ctrl-C cancels the coroutine (its cleanup runs) and exits 130, 128 + SIGINT
    as shells report an interrupted command, after one "interrupted." line.

    Failures inside task groups arrive wrapped in an `ExceptionGroup`; the first
    expected failure inside it is reported, anything else propagates unchanged.
    A start-up failure (a dependency or a port) is reported by what it names.
    """
    try:
        return uvloop.run(_logging_loop_errors(coro))
    except KeyboardInterrupt:
        typer.echo("socialpipe: interrupted.", err=True)
        raise typer.Exit(130) from None
    except (StartupError, TimeoutError, OSError, PipelineError, BaseExceptionGroup) as exc:
        message = explain(exc)
        if message is None:
            raise
        fail(message)


def explain(exc: BaseException) -> str | None:
    """One sentence for an expected failure, or None for a bug that should surface."""
    if isinstance(exc, BaseExceptionGroup):
        return next(filter(None, (explain(e) for e in exc.exceptions)), None)
    if isinstance(exc, StartupError):
        return exc.sentence
    if isinstance(exc, PipelineError):
        return exc.message.rstrip(".") + "."
    if isinstance(exc, TimeoutError) and not str(exc):
        return "a call to a service timed out."
    if isinstance(exc, OSError):
        # Past start-up the dependency is not known here; the OS error names the address.
        detail = redact_url(str(exc) or type(exc).__name__)
        if isinstance(exc, (ConnectionError, TimeoutError, socket.gaierror)):
            return f"a connection failed ({detail})."
        return detail.rstrip(".") + "."
    return None


async def _logging_loop_errors(coro: Coroutine[Any, Any, T]) -> T:
    """Await `coro` with the loop's unhandled errors logged as JSON, not printed."""
    asyncio.get_running_loop().set_exception_handler(loop_exception_handler)
    return await coro


def is_tty() -> bool:
    return sys.stderr.isatty()
