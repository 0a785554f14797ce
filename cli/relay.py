"""`socialpipe relay`: publish the transactional outbox to the events topic."""

from __future__ import annotations

import typer

from cli.common import fail, run, settings
from config.relay import run_relay
from config.startup import said
from consumers.kafka.topics import KafkaUnavailable
from pipelines.relay.relay import RelayOptions, RelayStuck


def relay(
    burst: bool = typer.Option(False, "--burst", help="Exit 0 once nothing is pending."),
    batch_size: int = typer.Option(100, "--batch-size", min=1, max=1000, help="Rows per cycle."),
    poll_interval: float = typer.Option(
        5.0, "--poll-interval", min=0.1, help="Fallback poll in seconds (LISTEN wakes sooner)."
    ),
) -> None:
    """Publish pending outbox rows to the SNS topic, waking on LISTEN/NOTIFY."""
    cfg = settings()
    options = RelayOptions(
        batch_size=batch_size,
        poll_interval=poll_interval,
        inprocess_retries=cfg.inprocess_retries,
        inprocess_retry_base=cfg.inprocess_retry_base_seconds,
        max_attempts=cfg.outbox_max_attempts,
    )
    try:
        run(run_relay(cfg, burst=burst, options=options))
    except RelayStuck as exc:
        fail(str(exc))
    except KafkaUnavailable as exc:
        fail(said(f"{exc}.", serviceName="relay"))
