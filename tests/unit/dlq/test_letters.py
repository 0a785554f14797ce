"""Reading a dead letter: event and error type, attempts, permanence, redrive marks."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from consumers.messages import MAX_ATTRIBUTES, REDRIVE_MARK, ReceivedMessage, dead_letter_attributes
from dlq.letters import (
    MAX_RECEIVE_COUNT_EXCEEDED,
    attempts_of,
    error_type_of,
    event_type_of,
    is_permanent_error_type,
    policy_attempts,
)
from dlq.ports import DeadMessage, RedriveOptions, RedriveResult
from dlq.sqs import redriven_attributes
from tests.factories import post_created, sns_notification


@pytest.mark.parametrize(
    "error_type",
    [
        "MalformedMessage",
        "MessageTooLarge",
        "UnsupportedSchemaVersion",
        "InvalidEvent",
        "PermanentError",
        "InvalidDocument",
        "DocumentRejected",
    ],
)
def test_permanent_failures_are_recognised(error_type: str) -> None:
    assert is_permanent_error_type(error_type)


@pytest.mark.parametrize(
    "error_type",
    [MAX_RECEIVE_COUNT_EXCEEDED, "TransientError", "DependencyUnavailable", "ConnectionError"],
)
def test_transient_and_crash_failures_are_redrivable(error_type: str) -> None:
    assert not is_permanent_error_type(error_type)


def test_event_type_comes_from_a_raw_or_sns_wrapped_body_when_no_attribute_names_it() -> None:
    # GIVEN one envelope as a raw body and as an SNS notification, with no attributes
    envelope = post_created()
    # WHEN their event type is read THEN the envelope's is found in both
    assert event_type_of({}, envelope.to_json()) == "PostCreated"
    assert event_type_of({}, sns_notification(envelope)) == "PostCreated"
    # AND an attribute wins over the body, and an unreadable body is unknown
    assert event_type_of({"eventType": "X"}, envelope.to_json()) == "X"
    assert event_type_of({}, "{not json") == "unknown"
    assert event_type_of({}, orjson.dumps({"Type": "Notification", "Message": "?"})) == "unknown"


def test_sns_wrapper_attributes_name_the_event_when_its_message_cannot() -> None:
    wrapped = orjson.loads(sns_notification(post_created()))
    wrapped["Message"] = "truncated {"
    assert event_type_of({}, orjson.dumps(wrapped)) == "PostCreated"


def test_no_error_type_means_the_redrive_policy_moved_it() -> None:
    assert error_type_of({}) == MAX_RECEIVE_COUNT_EXCEEDED
    assert error_type_of({"errorType": "InvalidEvent"}) == "InvalidEvent"


def test_attempts_shown_are_the_workers_not_the_dead_letters_receive_count() -> None:
    # GIVEN what the worker recorded, a policy-moved message, and a hand-made one
    assert attempts_of({"errorType": "E", "attempts": "3"}, moved_after="4") == "3"
    assert attempts_of({}, moved_after=policy_attempts(5)) == "5"
    assert attempts_of({}, moved_after=policy_attempts(None)) == "≥4"
    assert attempts_of({"errorType": "E"}, moved_after="4") == "?"


def test_dead_letter_attributes_name_the_source_message_within_the_sqs_limit() -> None:
    # GIVEN a received message already carrying ten attributes
    raw = {
        "MessageId": "source-1",
        "ReceiptHandle": "r",
        "Body": "{}",
        "Attributes": {"ApproximateReceiveCount": "2"},
        "MessageAttributes": {
            f"own{i}": {"DataType": "String", "StringValue": "v"} for i in range(10)
        },
    }
    message = ReceivedMessage.from_sqs(raw)
    # WHEN dead-lettered
    got = dead_letter_attributes(
        message, error_type="E", reason="r", source_queue="q", failed_at=datetime.now(UTC)
    )
    # THEN the six failure attributes are there, with the source id, and ten in all
    assert got["sourceMessageId"]["StringValue"] == "source-1"
    assert len(got) == MAX_ATTRIBUTES and sum(k.startswith("own") for k in got) == 4


def test_redrive_attributes_drop_the_failure_and_carry_a_fresh_mark() -> None:
    # GIVEN a dead letter that was redriven once before
    string = {"DataType": "String", "StringValue": "v"}
    attributes = {
        "eventType": string,
        "errorType": string,
        "sourceMessageId": string,
        REDRIVE_MARK: {"DataType": "String", "StringValue": "old"},
    }
    # WHEN it is redriven again
    got = redriven_attributes(attributes, "2026-11-29T10:00:00.000Z")
    # THEN only the producer's attributes and the new mark remain
    assert set(got) == {"eventType", REDRIVE_MARK}
    assert got[REDRIVE_MARK]["StringValue"] == "2026-11-29T10:00:00.000Z"


def test_redrive_mark_fits_even_beside_ten_attributes() -> None:
    many = {f"a{i}": {"DataType": "String", "StringValue": "v"} for i in range(10)}
    got = redriven_attributes(many, "t")
    assert len(got) == MAX_ATTRIBUTES and REDRIVE_MARK in got


def _dead(error_type: str | None, event_type: str = "PostCreated") -> DeadMessage:
    attributes = {"eventType": event_type, **({"errorType": error_type} if error_type else {})}
    return DeadMessage("m", "{}", attributes, "1", None)


def test_redrive_leaves_permanent_failures_unless_asked_and_counts_every_type() -> None:
    # GIVEN a malformed, a transient and a policy-moved dead letter, and one of another type
    letters = [_dead("MalformedMessage"), _dead("TransientError"), _dead(None), _dead("X", "Y")]
    # WHEN considered for a PostCreated redrive, without and with --include-permanent
    careful, everything = RedriveResult("t"), RedriveResult("t")
    options = RedriveOptions(event_type="PostCreated")
    sent = [careful.consider(m, options) for m in letters]
    wide = RedriveOptions(event_type="PostCreated", include_permanent=True)
    [everything.consider(m, wide) for m in letters]
    # THEN the malformed one stays the first time only, the other type is filtered out
    assert sent == [False, True, True, False]
    assert (careful.matched, careful.permanent, careful.skipped) == (2, 1, 1)
    assert (everything.matched, everything.permanent) == (3, 0)
    assert careful.by_error_type == {
        "MalformedMessage": 1,
        "TransientError": 1,
        MAX_RECEIVE_COUNT_EXCEEDED: 1,
    }


def test_error_type_filter_selects_policy_moved_messages() -> None:
    options = RedriveOptions(error_type=MAX_RECEIVE_COUNT_EXCEEDED)
    assert options.selects(_dead(None)) and not options.selects(_dead("TransientError"))


def test_a_dead_letter_is_known_by_its_own_id_and_its_source_id() -> None:
    message = DeadMessage("dlq-1", "{}", {"sourceMessageId": "src-1"}, "1", None)
    assert message.known_as("dlq-1") and message.known_as("src-1")
    assert not message.known_as("other")
