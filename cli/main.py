"""The `socialpipe` command."""

from __future__ import annotations

from importlib import metadata

import typer

from cli import api as api_cmd
from cli import connections_service as connections_service_cmd
from cli import demo as demo_cmd
from cli import dlq as dlq_cmd
from cli import loadtest as loadtest_cmd
from cli import migrate
from cli import queues as queues_cmd
from cli import reconcile as reconcile_cmd
from cli import relay as relay_cmd
from cli import search as search_cmd
from cli import worker as worker_cmd
from config.logging import configure_logging

app = typer.Typer(
    name="socialpipe",
    help="Event pipelines of a professional social network: workers, operator tools, demo.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # --install-completion / --show-completion for bash, zsh, fish and PowerShell.
    add_completion=True,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"socialpipe {installed_version()}")
        raise typer.Exit()


def installed_version() -> str:
    """The installed package's version ("unknown" in a source tree never installed)."""
    try:
        return metadata.version("socialpipe")
    except metadata.PackageNotFoundError:
        return "unknown"


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Event pipelines of a professional social network: workers, operator tools, demo."""


app.add_typer(migrate.app, name="migrate")
app.add_typer(queues_cmd.app, name="queues")
app.command("worker")(worker_cmd.worker)
app.command("relay")(relay_cmd.relay)
app.command("api")(api_cmd.api)
app.command("connections-service")(connections_service_cmd.connections_service)
app.command("demo")(demo_cmd.demo)
app.command("loadtest")(loadtest_cmd.loadtest)
app.command("search")(search_cmd.search)
app.add_typer(search_cmd.index_app, name="index")
app.add_typer(dlq_cmd.app, name="dlq")
app.add_typer(reconcile_cmd.app, name="reconcile")


def main() -> None:
    # JSON from the first line on: a library's warning or an uncaught exception in any
    # command is one log line. Commands that run a process reconfigure with its name
    # and LOG_LEVEL once their settings are read.
    configure_logging("socialpipe", "WARNING")
    app()
