"""The direct drivers' event sink: the relay's Kafka publisher, keyed by aggregate."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from contracts.errors import TransientError
from contracts.events import Envelope, decode_body
from loadtest.sinks import PublisherSink
from pipelines.relay.kafka import KafkaPublisher
from tests.factories import post_created, profile_updated


class RecordingProducer:
    """Takes every send; the sends listed in `failing` (by position) fail on delivery."""

    def __init__(self, failing: frozenset[int] = frozenset()) -> None:
        self.sent: list[dict[str, Any]] = []
        self.failing = failing

    async def send(self, topic: str, *, value: bytes, key: bytes, headers: Any) -> Any:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if len(self.sent) in self.failing:
            future.set_exception(ConnectionError("broker went away"))
        else:
            future.set_result(None)
        self.sent.append({"topic": topic, "value": value, "key": key, "headers": dict(headers)})
        return future


def _post(author: uuid.UUID) -> Envelope:
    return post_created(author_id=author, producer="loadtest")


def _profile(user: uuid.UUID) -> Envelope:
    return profile_updated(user_id=user, version=2, producer="loadtest")


async def test_events_become_records_keyed_by_aggregate_with_envelope_headers() -> None:
    # GIVEN a post by one author and a profile update of another user
    author, user = uuid.uuid4(), uuid.uuid4()
    post, profile = _post(author), _profile(user)
    producer = RecordingProducer()
    sink = PublisherSink(KafkaPublisher(producer, "social-events"))
    # WHEN the driver publishes them through the Kafka sink
    await sink.publish([(post, author), (profile, user)])
    # THEN each is one record on the events topic, keyed by its aggregate
    assert [r["topic"] for r in producer.sent] == ["social-events", "social-events"]
    assert [r["key"] for r in producer.sent] == [str(author).encode(), str(user).encode()]
    assert [decode_body(r["value"]).event_id for r in producer.sent] == [
        post.event_id,
        profile.event_id,
    ]
    # AND the headers mirror the envelope, as the relay's records do
    assert producer.sent[0]["headers"]["eventType"] == b"PostCreated"
    assert producer.sent[1]["headers"]["eventType"] == b"UserProfileUpdated"


async def test_an_event_the_bus_did_not_take_fails_the_whole_batch() -> None:
    # GIVEN a broker that loses the second of three records
    users = [uuid.uuid4() for _ in range(3)]
    sink = PublisherSink(KafkaPublisher(RecordingProducer(failing=frozenset({1})), "events"))
    # WHEN the batch is published THEN the driver learns it, to count it as errors
    with pytest.raises(TransientError, match="1 of 3 event"):
        await sink.publish([(_profile(u), u) for u in users])
