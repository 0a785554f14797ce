"""Topology and publishing against the moto server."""

from __future__ import annotations

import json
from typing import Any

import pytest

from config.settings import Settings
from consumers.publish import send_raw
from consumers.topology import UnknownQueue, ensure_topology, queue_url
from contracts.events import decode_body
from pipelines.relay.sns import publish_events
from tests.factories import comment_created, connection_accepted, post_created, profile_updated


async def _drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while True:
        resp = await sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0,
            MessageAttributeNames=["All"],
        )
        msgs = resp.get("Messages", [])
        if not msgs:
            return got
        got.extend(msgs)


async def test_topology_is_idempotent_and_configures_queues(
    sqs: Any, sns: Any, settings: Settings
) -> None:
    # GIVEN the topology created once
    first = await ensure_topology(sqs, sns, settings)
    # WHEN it is created again
    second = await ensure_topology(sqs, sns, settings)
    # THEN nothing is duplicated and the queues carry the declared attributes
    assert first.topic_arn == second.topic_arn
    assert first.queue_urls == second.queue_urls
    subs = await sns.list_subscriptions_by_topic(TopicArn=first.topic_arn)
    assert len(subs["Subscriptions"]) == 3
    attrs = (
        await sqs.get_queue_attributes(
            QueueUrl=first.queue_url("feed-fanout"), AttributeNames=["All"]
        )
    )["Attributes"]
    redrive = json.loads(attrs["RedrivePolicy"])
    assert int(redrive["maxReceiveCount"]) == 4
    assert redrive["deadLetterTargetArn"].endswith(":feed-fanout-dlq")
    assert attrs["MaximumMessageSize"] == "1048576"
    assert attrs["VisibilityTimeout"] == str(settings.visibility_timeout)
    dlq = (
        await sqs.get_queue_attributes(
            QueueUrl=first.dlq_url("feed-fanout"), AttributeNames=["All"]
        )
    )["Attributes"]
    assert int(dlq["MessageRetentionPeriod"]) > int(attrs["MessageRetentionPeriod"])
    for sub in second.subscriptions:
        sub_attrs = (await sns.get_subscription_attributes(SubscriptionArn=sub.arn))["Attributes"]
        assert sub_attrs["RawMessageDelivery"] == "true"


async def test_filter_policies_route_events_by_type(sqs: Any, sns: Any, settings: Settings) -> None:
    # GIVEN the topology
    topo = await ensure_topology(sqs, sns, settings)
    post, profile, accepted, comment = (
        post_created(),
        profile_updated(),
        connection_accepted(),
        comment_created(),
    )
    # WHEN one event of several types is published through SNS
    count = await publish_events(sns, topo.topic_arn, [post, profile, accepted, comment])
    # THEN each queue holds exactly the types its filter policy names, as raw envelopes
    assert count == 4

    async def ids(queue: str) -> set[str]:
        return {
            str(decode_body(m["Body"]).event_id) for m in await _drain(sqs, topo.queue_url(queue))
        }

    assert await ids("feed-fanout") == {str(post.event_id), str(accepted.event_id)}
    assert await ids("search-indexing") == {str(profile.event_id)}
    assert await ids("notifications") == {str(accepted.event_id), str(comment.event_id)}


async def test_published_messages_carry_envelope_attributes(
    sqs: Any, sns: Any, settings: Settings
) -> None:
    # GIVEN the topology and a post event with a correlation id
    topo = await ensure_topology(sqs, sns, settings)
    env = post_created(correlation_id="req-42")
    # WHEN it is published
    await publish_events(sns, topo.topic_arn, [env])
    # THEN the raw SQS message mirrors the envelope in its attributes
    (msg,) = await _drain(sqs, topo.queue_url("feed-fanout"))
    attrs = {k: v["StringValue"] for k, v in msg["MessageAttributes"].items()}
    assert attrs == {"eventType": "PostCreated", "schemaVersion": "1.0", "correlationId": "req-42"}


async def test_publish_splits_into_batches_of_ten(sqs: Any, sns: Any, settings: Settings) -> None:
    # GIVEN 23 events
    topo = await ensure_topology(sqs, sns, settings)
    events = [post_created() for _ in range(23)]
    # WHEN they are published
    count = await publish_events(sns, topo.topic_arn, events)
    # THEN all of them arrive
    got = await _drain(sqs, topo.queue_url("feed-fanout"))
    assert count == 23
    assert {decode_body(m["Body"]).event_id for m in got} == {e.event_id for e in events}


async def test_queue_url_names_an_unknown_queue(sqs: Any, settings: Settings) -> None:
    # GIVEN no queues WHEN an unknown queue is looked up THEN the error names it
    with pytest.raises(UnknownQueue, match="'nope' does not exist"):
        await queue_url(sqs, "nope")


async def test_oversize_body_is_accepted_by_the_source_queue(
    sqs: Any, sns: Any, settings: Settings
) -> None:
    # GIVEN the topology WHEN a 300 KiB body is sent THEN the queue takes it (to dead-letter later)
    topo = await ensure_topology(sqs, sns, settings)
    url = await queue_url(sqs, "feed-fanout")
    assert url == topo.queue_url("feed-fanout")
    await send_raw(sqs, url, "x" * (300 * 1024))
    (msg,) = await _drain(sqs, url)
    assert len(msg["Body"]) == 300 * 1024
