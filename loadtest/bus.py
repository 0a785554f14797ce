"""The event bus of a load run, SNS/SQS or Kafka, as the runner needs it.

The runner asks three things of it. How much work waits: on SQS the queue
depth (visible plus in-flight messages per queue); on Kafka the consumer lag
(end offset minus committed offset, summed over the partitions of the events
and retry topics, per consumer group). How many events were dead-lettered.
And, before the load starts, whether the workers are ready to consume: on
Kafka every consumer group must have settled with all its members, each with
partitions assigned, so no group join or rebalance falls into the run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any, Final, Protocol

import aiohttp
from aiokafka.admin import AIOKafkaAdminClient

from config.clients import open_sns, open_sqs
from config.settings import Settings
from consumers.kafka.lag import LagProbe
from consumers.kafka.topics import ensure_topics, open_admin, retry_topic
from consumers.topology import Topology, ensure_topology, routes
from dlq.kafka import KafkaDeadLetters

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

JOIN_POLL_SECONDS: Final = 0.2
# On top of one rebalance timeout per member: a join can last that long on tansu.
JOIN_TIMEOUT_SECONDS: Final = 60.0
STABLE: Final = "Stable"


class BusError(Exception):
    """The bus is not fit for the run; the message is one sentence."""


class Bus(Protocol):
    """What the runner needs of the event bus."""

    transport: str
    # The SNS topic the direct drivers publish to; None on Kafka.
    topic_arn: str | None

    async def backlog(self) -> dict[str, int]:
        """Work waiting per queue (SQS) or per consumer group (Kafka)."""
        ...

    async def dead_letters(self) -> dict[str, int]:
        """Dead letters per pipeline queue."""
        ...

    async def wait_joined(self, ready_urls: Sequence[str]) -> None:
        """Return once the workers consume; raise `BusError` when they do not in time."""
        ...


async def queue_depths(sqs: SQSClient, urls: Mapping[str, str]) -> dict[str, int]:
    """Visible plus in-flight messages per queue."""
    depths: dict[str, int] = {}
    for name, url in urls.items():
        got = await sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )
        depths[name] = sum(int(v) for v in got.get("Attributes", {}).values())
    return depths


class SqsBus:
    """The SNS topic and the SQS queues with their dead-letter queues."""

    transport = "sqs"

    def __init__(self, sqs: SQSClient, topology: Topology) -> None:
        self._sqs = sqs
        self._topology = topology
        self.topic_arn: str | None = topology.topic_arn

    async def backlog(self) -> dict[str, int]:
        return await queue_depths(self._sqs, self._topology.queue_urls)

    async def dead_letters(self) -> dict[str, int]:
        return await queue_depths(self._sqs, self._topology.dlq_urls)

    async def wait_joined(self, ready_urls: Sequence[str]) -> None:
        """An SQS worker receives as soon as it polls: nothing to wait for."""


class KafkaBus:
    """The events topic, and per pipeline its consumer group, retry and dead-letter topics."""

    transport = "kafka"
    topic_arn: str | None = None

    def __init__(
        self,
        settings: Settings,
        admin: AIOKafkaAdminClient,
        members: Mapping[str, int],
        lag: Mapping[str, LagProbe],
        dead: KafkaDeadLetters,
    ) -> None:
        self._settings = settings
        self._admin = admin
        self._members = dict(members)
        self._lag = dict(lag)
        self._dead = dead

    async def backlog(self) -> dict[str, int]:
        return {group: sum((await probe.lag()).values()) for group, probe in self._lag.items()}

    async def dead_letters(self) -> dict[str, int]:
        return {queue: await self._dead.count(queue) for queue in routes(self._settings)}

    async def wait_joined(self, ready_urls: Sequence[str]) -> None:
        """Every group Stable with its members, and every worker with partitions (`/readyz`).

        A worker beyond the partition count gets none and is never ready, so the
        ready check is left out then; the group's membership still counts it.
        """
        most = max(self._members.values(), default=0)
        urls = list(ready_urls) if most <= self._settings.kafka_partitions else []
        timeout = JOIN_TIMEOUT_SECONDS + most * self._settings.kafka_rebalance_timeout_seconds
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            # One group per request: tansu garbles a DescribeGroups answer naming several.
            described = [
                r for g in self._members for r in await self._admin.describe_consumer_groups([g])
            ]
            waiting = unsettled(group_states(described), self._members)
            if not waiting and await all_ready(urls):
                return
            if asyncio.get_running_loop().time() > deadline:
                group = waiting[0] if waiting else "every"
                raise BusError(
                    f"The {group} consumer group did not settle with all its workers"
                    f" within {timeout:.0f} s."
                )
            await asyncio.sleep(JOIN_POLL_SECONDS)


async def all_ready(urls: Sequence[str]) -> bool:
    """Whether every URL answers 200 (a worker's `/readyz`: consuming)."""
    if not urls:
        return True
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        for url in urls:
            try:
                async with session.get(url) as response:
                    if response.status != 200:
                        return False
            except (aiohttp.ClientError, TimeoutError):
                return False
    return True


def group_states(responses: Iterable[Any]) -> dict[str, tuple[str, int]]:
    """Per group in DescribeGroups responses: its state and how many members it has."""
    states: dict[str, tuple[str, int]] = {}
    for response in responses:
        for entry in response.groups:
            error_code, group, state, members = entry[0], entry[1], entry[2], entry[5]
            states[group] = (state if error_code == 0 else f"error {error_code}", len(members))
    return states


def unsettled(states: Mapping[str, tuple[str, int]], wanted: Mapping[str, int]) -> list[str]:
    """The groups not yet Stable with at least the members they should have."""
    return [
        group
        for group, members in wanted.items()
        if states.get(group, ("Unknown", 0))[0] != STABLE or states[group][1] < members
    ]


async def open_bus(stack: AsyncExitStack, settings: Settings, members: Mapping[str, int]) -> Bus:
    """Create the topology of `settings.event_transport` and open what watching it needs.

    `members` names the consumer groups (pipeline queues) that have workers, with
    how many each; their lag is what the run watches on Kafka.
    """
    if settings.event_transport == "kafka":
        return await _open_kafka(stack, settings, members)
    sqs = await open_sqs(stack, settings, pool=16)
    sns = await open_sns(stack, settings, pool=16)
    return SqsBus(sqs, await ensure_topology(sqs, sns, settings))


async def _open_kafka(
    stack: AsyncExitStack, settings: Settings, members: Mapping[str, int]
) -> KafkaBus:
    # The same topics as `socialpipe queues create` makes with EVENT_TRANSPORT=kafka.
    await ensure_topics(settings)
    admin = await open_admin(settings)
    stack.push_async_callback(admin.close)
    probes: dict[str, LagProbe] = {}
    for group in members:
        topics = [settings.events_topic, retry_topic(group)]
        probe = LagProbe(settings.kafka_bootstrap_servers, group, topics)
        await probe.start()
        stack.push_async_callback(probe.close)
        probes[group] = probe
    dead = KafkaDeadLetters(settings.kafka_bootstrap_servers)
    stack.push_async_callback(dead.close)
    return KafkaBus(settings, admin, members, probes, dead)
