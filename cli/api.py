"""`socialpipe api`: serve the GraphQL API."""

from __future__ import annotations

import typer

from cli.common import run, settings
from config.api import serve_api


def api(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port to listen on."),
) -> None:
    """Serve GraphQL at /graphql (plus /healthz and /readyz) until SIGTERM or Ctrl-C.

    Metrics are served on METRICS_PORT's own server (with /healthz and /readyz),
    never on the API port. Requests are bounded (body, depth, aliases, tokens,
    cost, page sizes, search input; docs/api-limits.md): API_MAX_BODY_BYTES,
    API_MAX_CONCURRENT_RESOLVERS, API_SEARCH_TIMEOUT_SECONDS, and
    API_INTROSPECTION=true to allow schema introspection (off by default).
    """
    run(serve_api(settings(), host, port))
