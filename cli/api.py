"""`socialpipe api`: serve the GraphQL API."""

from __future__ import annotations

import typer

from cli.common import run, settings
from config.api import serve_api


def api(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port to listen on."),
) -> None:
    """Serve GraphQL at /graphql (plus /healthz and /metrics)."""
    run(serve_api(settings(), host, port))
