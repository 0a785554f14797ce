"""Topic names and idempotent topic creation for the Kafka transport.

The events topic carries every event, keyed by aggregate id; each pipeline's
consumer group (named after its queue) reads it and keeps only the event types
it subscribes to, as the SNS filter policies do on SQS. Per pipeline there is
a retry topic (same partitioning, so a retried event keeps its key's
partition) and a dead-letter topic with one partition, so operators read dead
letters in the order they died.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from consumers.topology import QueueNames, routes
from contracts.keys import dlq_name

DLQ_PARTITIONS: Final = 1
TOPIC_ALREADY_EXISTS: Final = 36
# In-memory and single-broker deployments are the only ones this creates topics for;
# a multi-broker site pre-creates topics with its own replication policy.
REPLICATION: Final = 1


class BrokerAddress(Protocol):
    """Where the broker is; the process settings have it."""

    @property
    def kafka_bootstrap_servers(self) -> str: ...


class TopicSettings(BrokerAddress, QueueNames, Protocol):
    """What the declared topics are derived from."""

    @property
    def events_topic(self) -> str: ...
    @property
    def kafka_partitions(self) -> int: ...


class KafkaUnavailable(Exception):
    """The broker cannot be reached or refused to create a topic."""


def retry_topic(queue: str) -> str:
    """Retry topic of a pipeline's consumer group: `<queue>-retry`."""
    return f"{queue}-retry"


def dlq_topic(queue: str) -> str:
    """Dead-letter topic of a pipeline's consumer group: `<queue>-dlq`, as on SQS."""
    return dlq_name(queue)


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    created: bool = False


def declared_topics(settings: TopicSettings) -> list[TopicSpec]:
    """Every topic the transport needs, with its partition count."""
    specs = [TopicSpec(settings.events_topic, settings.kafka_partitions)]
    for queue in routes(settings):
        specs.append(TopicSpec(retry_topic(queue), settings.kafka_partitions))
        specs.append(TopicSpec(dlq_topic(queue), DLQ_PARTITIONS))
    return specs


async def open_admin(settings: BrokerAddress) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers, request_timeout_ms=10_000
    )
    try:
        await admin.start()
    except (KafkaError, OSError) as exc:
        await admin.close()
        raise KafkaUnavailable(
            f"cannot reach Kafka at {settings.kafka_bootstrap_servers} ({exc})"
        ) from None
    return admin


async def ensure_topics(settings: TopicSettings) -> list[TopicSpec]:
    """Create the missing topics; existing ones are left as they are. Idempotent."""
    admin = await open_admin(settings)
    try:
        existing = set(await admin.list_topics())
        wanted = declared_topics(settings)
        missing = [s for s in wanted if s.name not in existing]
        await _create(admin, missing)
    except KafkaError as exc:
        raise KafkaUnavailable(f"Kafka refused to create topics ({exc})") from None
    finally:
        await admin.close()
    created = {s.name for s in missing}
    return [TopicSpec(s.name, s.partitions, s.name in created) for s in wanted]


async def _create(admin: AIOKafkaAdminClient, specs: Sequence[TopicSpec]) -> None:
    if not specs:
        return
    response = await admin.create_topics(
        [NewTopic(s.name, s.partitions, REPLICATION) for s in specs]
    )
    for error in response.topic_errors:
        name, code = error[0], error[1]
        if code not in (0, TOPIC_ALREADY_EXISTS):
            message = error[2] if len(error) > 2 else ""
            raise KafkaUnavailable(f"Kafka refused to create topic {name!r} ({code} {message})")
