"""The `socialpipe` command."""

from __future__ import annotations

import typer

from cli import migrate

app = typer.Typer(
    name="socialpipe",
    help="Event pipelines of a professional social network: workers, operator tools, demo.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(migrate.app, name="migrate")


def main() -> None:
    app()
