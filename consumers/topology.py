"""The SNS topic, SQS queues, dead-letter queues and subscriptions (docs/architecture.md#the-shape).

`ensure_topology` converges whatever exists towards the declared shape, so it is
safe to run on every deploy: queues are created by name and then have their
attributes set, subscriptions are found by endpoint before one is added.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Protocol

from botocore.exceptions import ClientError

from contracts.keys import dlq_name

if TYPE_CHECKING:
    from types_aiobotocore_sns import SNSClient
    from types_aiobotocore_sqs import SQSClient
    from types_aiobotocore_sqs.literals import QueueAttributeNameType

    QueueAttributes = dict[QueueAttributeNameType, str]

# A body above SQS's 256 KiB still has to arrive so it can be dead-lettered with a
# reason instead of being refused at send time; 1 MiB is the SQS maximum.
MAX_MESSAGE_SIZE: Final = 1_048_576
SOURCE_RETENTION_SECONDS: Final = 4 * 24 * 3600
# Longer than the source's retention so an operator always has time to redrive.
DLQ_RETENTION_SECONDS: Final = 14 * 24 * 3600


class QueueNames(Protocol):
    """The source queues' names; the process settings have them."""

    @property
    def feed_queue(self) -> str: ...
    @property
    def search_queue(self) -> str: ...
    @property
    def notifications_queue(self) -> str: ...


class TopologySettings(QueueNames, Protocol):
    """What `ensure_topology` reads beyond the queue names."""

    @property
    def events_topic(self) -> str: ...
    @property
    def max_receive_count(self) -> int: ...
    @property
    def visibility_timeout(self) -> int: ...


class UnknownQueue(LookupError):
    """A queue name that does not exist on the endpoint."""


@dataclass(frozen=True, slots=True)
class Subscription:
    queue: str
    arn: str
    event_types: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Topology:
    """What `ensure_topology` found or created."""

    topic_arn: str
    queue_urls: dict[str, str]
    dlq_urls: dict[str, str]
    queue_arns: dict[str, str] = field(default_factory=dict)
    subscriptions: tuple[Subscription, ...] = ()

    def queue_url(self, name: str) -> str:
        try:
            return self.queue_urls[name]
        except KeyError:
            raise UnknownQueue(f"Queue {name!r} is not part of the topology.") from None

    def dlq_url(self, name: str) -> str:
        try:
            return self.dlq_urls[name]
        except KeyError:
            raise UnknownQueue(f"Queue {name!r} has no dead-letter queue here.") from None


def routes(settings: QueueNames) -> dict[str, tuple[str, ...]]:
    """Which event types each source queue subscribes to (its filter policy)."""
    return {
        settings.feed_queue: ("PostCreated", "ConnectionAccepted"),
        settings.search_queue: ("UserProfileUpdated",),
        settings.notifications_queue: (
            "ConnectionRequested",
            "ConnectionAccepted",
            "CommentCreated",
        ),
    }


def filter_policy(event_types: tuple[str, ...]) -> str:
    return json.dumps({"eventType": sorted(event_types)})


def queue_policy(queue_arn: str, topic_arn: str) -> str:
    """Allow only our topic to send to the queue."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AllowTopic",
                    "Effect": "Allow",
                    "Principal": {"Service": "sns.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
                }
            ],
        }
    )


async def ensure_topology(sqs: SQSClient, sns: SNSClient, settings: TopologySettings) -> Topology:
    """Create or converge the topic, queues, DLQs and subscriptions; idempotent."""
    topic_arn = (await sns.create_topic(Name=settings.events_topic))["TopicArn"]
    queue_urls: dict[str, str] = {}
    dlq_urls: dict[str, str] = {}
    queue_arns: dict[str, str] = {}
    subs: list[Subscription] = []
    existing = await _subscriptions_by_endpoint(sns, topic_arn)
    for name, event_types in routes(settings).items():
        dlq_url, dlq_arn = await _ensure_queue(sqs, dlq_name(name), _dlq_attributes())
        url, arn = await _ensure_queue(sqs, name, _source_attributes(settings, dlq_arn))
        await sqs.set_queue_attributes(
            QueueUrl=url, Attributes={"Policy": queue_policy(arn, topic_arn)}
        )
        sub_arn = existing.get(arn) or await _subscribe(sns, topic_arn, arn)
        await _set_subscription_attributes(sns, sub_arn, event_types)
        queue_urls[name], dlq_urls[name], queue_arns[name] = url, dlq_url, arn
        subs.append(Subscription(queue=name, arn=sub_arn, event_types=event_types))
    return Topology(topic_arn, queue_urls, dlq_urls, queue_arns, tuple(subs))


def _dlq_attributes() -> QueueAttributes:
    return {
        "MessageRetentionPeriod": str(DLQ_RETENTION_SECONDS),
        "MaximumMessageSize": str(MAX_MESSAGE_SIZE),
    }


def _source_attributes(settings: TopologySettings, dlq_arn: str) -> QueueAttributes:
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": settings.max_receive_count}
    return {
        "MessageRetentionPeriod": str(SOURCE_RETENTION_SECONDS),
        "MaximumMessageSize": str(MAX_MESSAGE_SIZE),
        "VisibilityTimeout": str(settings.visibility_timeout),
        "RedrivePolicy": json.dumps(redrive),
    }


async def _ensure_queue(sqs: SQSClient, name: str, attributes: QueueAttributes) -> tuple[str, str]:
    # Create by name only, then set attributes: CreateQueue refuses an existing
    # queue whose attributes differ, and we want changed settings to converge.
    url = (await sqs.create_queue(QueueName=name))["QueueUrl"]
    await sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    got = await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return url, got["Attributes"]["QueueArn"]


async def _subscriptions_by_endpoint(sns: SNSClient, topic_arn: str) -> dict[str, str]:
    found: dict[str, str] = {}
    paginator = sns.get_paginator("list_subscriptions_by_topic")
    async for page in paginator.paginate(TopicArn=topic_arn):
        for sub in page.get("Subscriptions", []):
            if sub.get("Protocol") == "sqs" and "Endpoint" in sub and "SubscriptionArn" in sub:
                found[sub["Endpoint"]] = sub["SubscriptionArn"]
    return found


async def _subscribe(sns: SNSClient, topic_arn: str, queue_arn: str) -> str:
    result = await sns.subscribe(
        TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, ReturnSubscriptionArn=True
    )
    return result["SubscriptionArn"]


async def _set_subscription_attributes(
    sns: SNSClient, sub_arn: str, event_types: tuple[str, ...]
) -> None:
    await sns.set_subscription_attributes(
        SubscriptionArn=sub_arn, AttributeName="RawMessageDelivery", AttributeValue="true"
    )
    await sns.set_subscription_attributes(
        SubscriptionArn=sub_arn,
        AttributeName="FilterPolicy",
        AttributeValue=filter_policy(event_types),
    )


async def queue_url(sqs: SQSClient, name: str) -> str:
    """The URL of an existing queue, or `UnknownQueue` naming it."""
    try:
        return (await sqs.get_queue_url(QueueName=name))["QueueUrl"]
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if "NonExistentQueue" in code or code == "QueueDoesNotExist":
            raise UnknownQueue(
                f"Queue {name!r} does not exist; run `socialpipe queues create` first."
            ) from None
        raise
