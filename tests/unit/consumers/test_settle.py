"""Applying outcomes: which queue call each one makes, and the level of its log line."""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from consumers.deleter import BatchDeleter
from consumers.delivery import REQUEUE_MARK
from consumers.messages import ReceivedMessage
from consumers.settle import SettleOptions, Settler
from contracts.outcomes import DeadLetter, Outcome, Retry
from tests.factories import sqs_message

OPTIONS = SettleOptions(max_receive_count=4, retry_base_seconds=1.0, retry_max_seconds=300.0)


class _RecordingSqs:
    """Records the SQS calls a settler makes; sends return a fresh message id."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def send_message(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("send_message", kwargs))
        return {"MessageId": f"copy-{len(self.calls)}"}

    async def delete_message(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("delete_message", kwargs))
        return {}

    async def change_message_visibility(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("change_message_visibility", kwargs))
        return {}


def _settler(sqs: _RecordingSqs) -> Settler:
    deleter = BatchDeleter(sqs, queue_url="q-url", queue_name="q")  # type: ignore[arg-type]
    return Settler(
        sqs,  # type: ignore[arg-type]
        queue_name="q",
        queue_url="q-url",
        dlq_url="dlq-url",
        options=OPTIONS,
        deleter=deleter,
    )


async def _settle(outcome: Outcome, receive_count: int) -> tuple[_RecordingSqs, list[Any]]:
    sqs = _RecordingSqs()
    message = ReceivedMessage.from_sqs(sqs_message(receive_count=receive_count))
    with capture_logs() as logs:
        await _settler(sqs).settle(message, outcome)
    return sqs, logs


async def test_a_retry_is_logged_at_warning_and_sets_a_visibility_backoff() -> None:
    # GIVEN a transient failure on the first receive WHEN settled
    sqs, logs = await _settle(Retry("TransientError", "Loading profiles failed: timeout"), 1)
    # THEN the message is made visible later, and the line is a WARNING
    assert [name for name, _ in sqs.calls] == ["change_message_visibility"]
    (line,) = logs
    assert line["log_level"] == "warning"
    assert line["event"] == "message will be retried"
    assert line["errorMessage"] == "Loading profiles failed: timeout"


@pytest.mark.parametrize(
    ("outcome", "receive_count"),
    [
        (DeadLetter("InvalidEvent", "payload.postId is required"), 1),
        (Retry("TransientError", "Pushing post failed: timeout"), 4),
    ],
    ids=["permanent", "last-receive"],
)
async def test_a_dead_letter_is_logged_at_error_with_the_id_dlq_show_finds(
    outcome: Outcome, receive_count: int
) -> None:
    # GIVEN a permanent failure, or a transient one on the last allowed receive
    # WHEN settled
    sqs, logs = await _settle(outcome, receive_count)
    # THEN it is sent to the DLQ and deleted, and the line is an ERROR naming both ids
    assert [name for name, _ in sqs.calls] == ["send_message", "delete_message"]
    assert sqs.calls[0][1]["QueueUrl"] == "dlq-url"
    (line,) = logs
    assert line["log_level"] == "error"
    assert line["event"] == "message dead-lettered"
    assert line["deadLetterMessageId"] == "copy-1"
    assert line["messageId"] != line["deadLetterMessageId"]


async def test_an_outage_on_the_last_receive_requeues_instead_of_dead_lettering() -> None:
    # GIVEN an outage failure on the last allowed receive WHEN settled
    outage = Retry("DependencyDown", "Redis is down", outage="Redis")
    sqs, logs = await _settle(outage, 4)
    # THEN a marked copy goes back to the same queue and the original is deleted
    assert [name for name, _ in sqs.calls] == ["send_message", "delete_message"]
    sent = sqs.calls[0][1]
    assert sent["QueueUrl"] == "q-url"
    assert REQUEUE_MARK in sent["MessageAttributes"]
    assert len(sent["MessageAttributes"]) <= 10
    # AND nothing is logged as a dead letter
    (line,) = logs
    assert line["log_level"] == "warning"
    assert line["event"] == "message requeued during an outage"


async def test_an_outage_before_the_last_receive_comes_back_within_ten_seconds() -> None:
    # GIVEN an outage failure on the third receive (full backoff could be 4 s to 300 s)
    outage = Retry("DependencyDown", "PostgreSQL is down", outage="PostgreSQL")
    for _ in range(50):
        sqs, _ = await _settle(outage, 3)
        # THEN the backoff is capped, so work resumes soon after the dependency does
        ((name, call),) = sqs.calls
        assert name == "change_message_visibility"
        assert call["VisibilityTimeout"] <= 10
