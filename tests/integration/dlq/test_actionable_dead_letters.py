"""Dead letters an operator can act on, over SQS (moto): what moved them, how often the
workers tried, which worker log line they belong to, and what redrive may resend."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from config.settings import Settings
from consumers.messages import REDRIVE_MARK, ReceivedMessage, dead_letter_attributes
from consumers.publish import send_raw
from consumers.topology import Topology, ensure_topology
from dlq.letters import MAX_RECEIVE_COUNT_EXCEEDED
from dlq.ports import RedriveOptions
from dlq.sqs import SqsDeadLetters
from tests.factories import post_created, profile_updated, sns_notification
from tests.integration.consumers.helpers import attrs, depth, drain
from tests.settings import SettingsFactory

FAILURE_KEYS = {"errorType", "errorMessage", "failedAt", "attempts", "sourceQueue"}


@pytest.fixture
def settings(aws: str, database_url: str, settings_factory: SettingsFactory) -> Settings:
    """Queues whose redrive policy moves a message on its second receive."""
    return settings_factory(aws_endpoint_url=aws, max_receive_count=1)


@pytest.fixture
async def topo(sqs: Any, sns: Any, settings: Settings) -> Topology:
    return await ensure_topology(sqs, sns, settings)


async def _moved_by_policy(sqs: Any, topo: Topology, queue: str, bodies: list[bytes]) -> None:
    """Send bodies without attributes and receive them, unsettled, until the redrive
    policy has moved every one to the DLQ (a worker dying on each, as it were)."""
    for body in bodies:
        await send_raw(sqs, topo.queue_url(queue), body)
    deadline = asyncio.get_running_loop().time() + 15
    while await depth(sqs, topo.dlq_url(queue)) < len(bodies):
        assert asyncio.get_running_loop().time() < deadline, "the redrive policy never moved them"
        await sqs.receive_message(
            QueueUrl=topo.queue_url(queue), MaxNumberOfMessages=10, VisibilityTimeout=0
        )


async def _failed(sqs: Any, topo: Topology, queue: str, error_type: str, envelope: Any) -> None:
    """A dead letter as a worker writes it."""
    failure = {"errorType": error_type, "errorMessage": "why", "attempts": "1"}
    attributes = {**envelope.attributes(), **failure}
    await send_raw(sqs, topo.dlq_url(queue), envelope.to_json(), attributes)


async def test_policy_moved_messages_show_their_event_type_and_max_receive_count_exceeded(
    sqs: Any, settings: Settings, topo: Topology
) -> None:
    # GIVEN a raw and an SNS-wrapped post and a raw profile update that the queue's
    # redrive policy moved, so they carry no failure attributes
    queue = settings.feed_queue
    bodies = [
        post_created().to_json(),
        sns_notification(post_created()),
        profile_updated().to_json(),
    ]
    await _moved_by_policy(sqs, topo, queue, bodies)
    # WHEN an operator lists them
    peek = await SqsDeadLetters(sqs).peek(queue, limit=10)
    # THEN each is named by the event in its body, as exceeding maxReceiveCount, after
    # the policy's one attempt
    assert sorted(m.event_type for m in peek.messages) == [
        "PostCreated",
        "PostCreated",
        "UserProfileUpdated",
    ]
    assert {m.error_type for m in peek.messages} == {MAX_RECEIVE_COUNT_EXCEEDED}
    assert {m.attempts for m in peek.messages} == {"1"}


async def test_looking_at_a_dead_letter_twice_does_not_change_its_attempts(
    sqs: Any, settings: Settings, topo: Topology
) -> None:
    # GIVEN one policy-moved dead letter and one a worker wrote after three attempts
    queue = settings.feed_queue
    await _moved_by_policy(sqs, topo, queue, [post_created().to_json()])
    envelope = post_created()
    await send_raw(
        sqs,
        topo.dlq_url(queue),
        envelope.to_json(),
        {**envelope.attributes(), "errorType": "TransientError", "attempts": "3"},
    )
    dead = SqsDeadLetters(sqs)
    ids = [m.message_id for m in (await dead.peek(queue, limit=10)).messages]
    # WHEN each is shown twice
    first = [await dead.get(queue, i) for i in ids]
    second = [await dead.get(queue, i) for i in ids]
    # THEN the attempts shown are the same both times, though SQS counted every look
    assert sorted(m.attempts for m in first if m) == sorted(m.attempts for m in second if m)
    assert sorted(m.attempts for m in second if m) == ["1", "3"]
    [raw, *_] = await drain(sqs, topo.dlq_url(queue))
    assert int(raw["Attributes"]["ApproximateReceiveCount"]) >= 3


async def test_show_finds_a_dead_letter_by_the_source_message_id_the_worker_logged(
    sqs: Any, settings: Settings, topo: Topology
) -> None:
    # GIVEN a message a worker received and dead-lettered, as the settler does
    queue = settings.feed_queue
    envelope = post_created()
    await send_raw(sqs, topo.queue_url(queue), envelope.to_json(), envelope.attributes())
    [raw] = (
        await sqs.receive_message(
            QueueUrl=topo.queue_url(queue), AttributeNames=["All"], MessageAttributeNames=["All"]
        )
    )["Messages"]
    received = ReceivedMessage.from_sqs(raw)
    attributes = dead_letter_attributes(
        received,
        error_type="InvalidEvent",
        reason="author unknown",
        source_queue=queue,
        failed_at=datetime.now(UTC),
    )
    sent = await sqs.send_message(
        QueueUrl=topo.dlq_url(queue), MessageBody=received.body, MessageAttributes=attributes
    )
    # WHEN the operator looks it up by the source id, then by the dead letter's own id
    dead = SqsDeadLetters(sqs)
    by_source = await dead.get(queue, received.message_id)
    by_own = await dead.get(queue, sent["MessageId"])
    # THEN both find the same dead letter, and nothing was consumed
    assert by_source is not None and by_own is not None
    assert by_source.message_id == by_own.message_id == sent["MessageId"]
    assert by_source.source_message_id == received.message_id
    assert by_source.error_message == "author unknown"
    assert len(await drain(sqs, topo.dlq_url(queue))) == 1


async def test_event_type_filter_selects_policy_moved_messages_and_marks_them_redriven(
    sqs: Any, settings: Settings, topo: Topology
) -> None:
    # GIVEN policy-moved posts (raw and SNS-wrapped) and a policy-moved profile update
    queue = settings.feed_queue
    bodies = [
        post_created().to_json(),
        sns_notification(post_created()),
        profile_updated().to_json(),
    ]
    await _moved_by_policy(sqs, topo, queue, bodies)
    # WHEN the PostCreated dead letters are redriven
    result = await SqsDeadLetters(sqs).redrive(queue, RedriveOptions(event_type="PostCreated"))
    # THEN both posts went back, each marked as a redelivery, and the profile update stayed
    assert (result.moved, result.skipped) == (2, 1)
    assert result.by_error_type == {MAX_RECEIVE_COUNT_EXCEEDED: 2}
    resent = await drain(sqs, topo.queue_url(queue))
    assert len(resent) == 2 and all(REDRIVE_MARK in attrs(m) for m in resent)
    [left] = await drain(sqs, topo.dlq_url(queue))
    assert b"UserProfileUpdated" in left["Body"].encode()


async def test_redrive_leaves_permanent_failures_unless_they_are_included(
    sqs: Any, settings: Settings, topo: Topology
) -> None:
    # GIVEN a malformed message and a transient failure in the DLQ
    queue = settings.feed_queue
    malformed, flaky = post_created(), post_created()
    await _failed(sqs, topo, queue, "MalformedMessage", malformed)
    await _failed(sqs, topo, queue, "TransientError", flaky)
    dead = SqsDeadLetters(sqs)
    # WHEN redriven without --include-permanent
    result = await dead.redrive(queue, RedriveOptions())
    # THEN only the transient one went back, marked and without its failure attributes
    assert (result.moved, result.permanent) == (1, 1)
    assert result.by_error_type == {"MalformedMessage": 1, "TransientError": 1}
    [resent] = await drain(sqs, topo.queue_url(queue))
    assert str(flaky.event_id) in resent["Body"]
    assert REDRIVE_MARK in attrs(resent) and not FAILURE_KEYS & attrs(resent).keys()
    # AND the malformed one is still dead-lettered, until it is asked for
    [kept] = (await dead.peek(queue, limit=10)).messages
    assert kept.error_type == "MalformedMessage" and kept.permanent
    forced = await dead.redrive(queue, RedriveOptions(include_permanent=True))
    assert (forced.moved, forced.permanent) == (1, 0)
    assert await depth(sqs, topo.dlq_url(queue)) == 0


class _MoveCapable:
    """moto behind a message-move API that records the tasks it is asked to start."""

    def __init__(self, sqs: Any) -> None:
        self._sqs = sqs
        self.started: list[dict[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sqs, name)

    async def list_message_move_tasks(self, **_: Any) -> dict[str, Any]:
        return {"Results": [{"Status": "COMPLETED", "ApproximateNumberOfMessagesMoved": 0}]}

    async def start_message_move_task(self, **request: Any) -> dict[str, Any]:
        self.started.append(request)
        return {"TaskHandle": "t"}


async def test_move_task_is_used_only_when_every_dead_letter_carries_its_error_type(
    sqs: Any, settings: Settings, topo: Topology
) -> None:
    # GIVEN an endpoint with the move API, and a DLQ holding a policy-moved message
    queue = settings.feed_queue
    capable = _MoveCapable(sqs)
    await _moved_by_policy(sqs, topo, queue, [post_created().to_json()])
    await _failed(sqs, topo, queue, "TransientError", post_created())
    # WHEN everything is redriven
    mixed = await SqsDeadLetters(cast(Any, capable)).redrive(queue, RedriveOptions())
    # THEN receive-send-delete marked both, and no move task was started
    assert mixed.method == "receive-send-delete" and mixed.moved == 2
    assert not capable.started and any("redrivenAt" in n for n in mixed.notes)
    # WHEN only worker-written transient failures are left to redrive
    await _failed(sqs, topo, queue, "TransientError", post_created())
    marked = await SqsDeadLetters(cast(Any, capable)).redrive(queue, RedriveOptions())
    # THEN the move task does it
    assert marked.method == "move-task" and len(capable.started) == 1
