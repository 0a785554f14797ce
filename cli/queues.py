"""`socialpipe queues create`."""

from __future__ import annotations

from contextlib import AsyncExitStack

import typer
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from cli.common import fail, run, settings
from config.clients import open_sns, open_sqs
from config.settings import Settings
from consumers.kafka.topics import KafkaUnavailable, ensure_topics
from consumers.topology import Topology, ensure_topology

app = typer.Typer(help="Manage the SNS topic and SQS queues.", no_args_is_help=True)


async def _create(cfg: Settings) -> Topology:
    async with AsyncExitStack() as stack:
        sqs = await open_sqs(stack, cfg)
        sns = await open_sns(stack, cfg)
        return await ensure_topology(sqs, sns, cfg)


@app.command()
def create() -> None:
    """Idempotently create the topic, the queues, their DLQs and filtered subscriptions.

    With EVENT_TRANSPORT=kafka: the events topic (partitioned by aggregate key), and a
    retry and a dead-letter topic per pipeline.
    """
    cfg = settings()
    if cfg.event_transport == "kafka":
        _create_kafka(cfg)
        return
    where = cfg.aws_endpoint_url or f"AWS ({cfg.aws_region})"
    try:
        topo = run(_create(cfg))
    except NoCredentialsError:
        fail("no AWS credentials were found; set AWS_ENDPOINT_URL for a local emulator.")
    except ClientError as exc:
        fail(f"{where} refused the request: {exc.response.get('Error', {}).get('Message', exc)}.")
    except BotoCoreError as exc:
        fail(f"cannot reach SQS/SNS at {where} ({exc}).")
    _report(topo, cfg)


def _report(topo: Topology, cfg: Settings) -> None:
    typer.echo(f"topic {cfg.events_topic}: {topo.topic_arn}")
    for name, url in topo.queue_urls.items():
        typer.echo(f"queue {name}: {url}")
        typer.echo(
            f"  dead letters: {topo.dlq_urls[name]} (after {cfg.max_receive_count} receives)"
        )
    for sub in topo.subscriptions:
        typer.echo(
            f"subscription {sub.queue} <- {', '.join(sub.event_types)} (raw delivery): {sub.arn}"
        )


def _create_kafka(cfg: Settings) -> None:
    """EVENT_TRANSPORT=kafka: the events topic, and a retry and dead-letter topic per pipeline."""
    try:
        specs = run(ensure_topics(cfg))
    except KafkaUnavailable as exc:
        fail(f"{exc}.")
    for spec in specs:
        state = "created" if spec.created else "exists"
        typer.echo(f"topic {spec.name}: {spec.partitions} partitions ({state})")
