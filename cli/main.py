"""The `socialpipe` command."""

from __future__ import annotations

import typer

from cli import demo as demo_cmd
from cli import migrate
from cli import relay as relay_cmd

app = typer.Typer(
    name="socialpipe",
    help="Event pipelines of a professional social network: workers, operator tools, demo.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(migrate.app, name="migrate")
app.command("relay")(relay_cmd.relay)
app.command("demo")(demo_cmd.demo)


def main() -> None:
    app()
