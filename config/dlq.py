"""Composition root of `socialpipe dlq`: the `DeadLetters` of the configured transport."""

from __future__ import annotations

from contextlib import AsyncExitStack

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from config.clients import aws_client_kwargs, open_sqs
from config.settings import Settings
from dlq.ports import DeadLetters
from dlq.sqs import SqsDeadLetters


class DeadLettersUnavailable(Exception):
    """The configured transport has no dead-letter tools in this build."""


async def open_dead_letters(stack: AsyncExitStack, settings: Settings) -> DeadLetters:
    """The `DeadLetters` for `EVENT_TRANSPORT`, its clients closed with `stack`."""
    if settings.event_transport == "kafka":
        from dlq.kafka import KafkaDeadLetters

        dead = KafkaDeadLetters(settings.kafka_bootstrap_servers)
        stack.push_async_callback(dead.close)
        return dead
    if settings.event_transport != "sqs":
        raise DeadLettersUnavailable(
            f"Dead-letter tools for EVENT_TRANSPORT={settings.event_transport} are not"
            " available in this build."
        )
    sqs = await open_sqs(stack, settings, pool=4)
    # The capability probe must fail fast: a retrying client repeats an emulator's 500s.
    kwargs = aws_client_kwargs(settings, pool=1)
    kwargs["config"] = kwargs["config"].merge(AioConfig(retries={"max_attempts": 1}))
    probe = await stack.enter_async_context(get_session().create_client("sqs", **kwargs))
    return SqsDeadLetters(sqs, probe=probe)
