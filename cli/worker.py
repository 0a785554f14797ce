"""`socialpipe worker feed|search|notifications`."""

from __future__ import annotations

from enum import StrEnum

import typer
from botocore.exceptions import BotoCoreError, ClientError

from cli.common import fail, run, settings
from config.startup import said
from config.worker import PipelineUnavailable, run_worker
from consumers.kafka.topics import KafkaUnavailable
from consumers.topology import UnknownQueue


class Pipeline(StrEnum):
    feed = "feed"
    search = "search"
    notifications = "notifications"


def worker(
    pipeline: Pipeline = typer.Argument(
        ...,
        help="feed: post fan-out to Redis feeds; search: people-search indexing; "
        "notifications: notification rows and unread counters.",
        show_default=False,
    ),
    burst: bool = typer.Option(
        False, "--burst", help="Exit 0 once the queue is empty and all in-flight work is settled."
    ),
    concurrency: int | None = typer.Option(
        None,
        "--concurrency",
        min=1,
        max=1000,
        help="Messages handled at once (default: 16, or two handler batches if larger).",
    ),
) -> None:
    """Run one pipeline's SQS consumer until SIGTERM/SIGINT, then drain and exit 0.

    Serves /metrics, /healthz and /readyz on METRICS_PORT (0 disables).
    """
    cfg = settings()
    service = f"worker-{pipeline.value}"  # the process's name in its log lines
    try:
        code = run(run_worker(cfg, pipeline.value, burst=burst, concurrency=concurrency))
    # Each also logged as one JSON line, as the start-up failures of config/startup.py are.
    except (PipelineUnavailable, UnknownQueue) as exc:
        fail(said(str(exc), serviceName=service))
    except KafkaUnavailable as exc:
        fail(said(f"{exc}.", serviceName=service))
    except ClientError as exc:
        reason = exc.response.get("Error", {}).get("Message", exc)
        fail(said(f"SQS refused the request: {reason}.", serviceName=service))
    except BotoCoreError as exc:
        fail(
            said(
                f"cannot reach SQS at {cfg.aws_endpoint_url or 'AWS'} ({exc}).", serviceName=service
            )
        )
    raise typer.Exit(code)
