"""Pure pieces of the consumer runtime: backoff, chunking, attributes, classification."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from hypothesis import given
from hypothesis import strategies as st

from consumers.backoff import error_type_of, is_transient, visibility_backoff
from consumers.messages import (
    ERROR_MESSAGE_LIMIT,
    MAX_ATTRIBUTES,
    ReceivedMessage,
    dead_letter_attributes,
)
from consumers.publish import chunked, publish_entries, string_attributes
from contracts.errors import InvalidEvent, TransientError
from tests.factories import post_created, sqs_message


@given(count=st.integers(min_value=1, max_value=1000), seed=st.integers())
def test_visibility_backoff_stays_within_its_exponential_ceiling(count: int, seed: int) -> None:
    # GIVEN any receive count WHEN the backoff is drawn THEN it lies in [0, ceil(ceiling)]
    delay = visibility_backoff(count, base=2.0, cap=300.0, rng=random.Random(seed))
    ceiling = min(300.0, 2.0 * 2 ** (count - 1))
    assert 0 <= delay <= int(ceiling) + 1
    assert isinstance(delay, int)


def test_visibility_backoff_grows_with_the_receive_count() -> None:
    # GIVEN many draws per receive count WHEN averaged THEN later receives wait longer
    rng = random.Random(7)

    def mean(count: int) -> float:
        return (
            sum(visibility_backoff(count, base=2.0, cap=300.0, rng=rng) for _ in range(500)) / 500
        )

    assert mean(1) < mean(3) < mean(6)
    assert max(visibility_backoff(50, base=2.0, cap=300.0, rng=rng) for _ in range(200)) <= 300


def test_chunked_splits_into_bounded_consecutive_slices() -> None:
    # GIVEN 23 items WHEN chunked by 10 THEN 10, 10, 3 in order
    parts = list(chunked(list(range(23)), 10))
    assert [len(p) for p in parts] == [10, 10, 3]
    assert [x for p in parts for x in p] == list(range(23))
    with pytest.raises(ValueError, match="at least 1"):
        list(chunked([1], 0))


def test_publish_entries_mirror_the_envelope_attributes() -> None:
    # GIVEN an envelope WHEN turned into a batch entry THEN body and attributes mirror it
    env = post_created(correlation_id="abc")
    (entry,) = publish_entries([env])
    assert entry["Id"] == "0"
    assert entry["Message"] == env.to_json().decode()
    assert entry["MessageAttributes"]["correlationId"] == {
        "DataType": "String",
        "StringValue": "abc",
    }
    assert string_attributes({"empty": ""}) == {}


def test_received_message_keeps_ids_and_receive_count() -> None:
    # GIVEN a raw SQS message received for the third time
    raw = sqs_message(body="{not json", receive_count=3, attributes={"correlationId": "c-1"})
    # WHEN parsed THEN it keeps its ids and count whatever the body holds
    msg = ReceivedMessage.from_sqs(raw)
    assert msg.receive_count == 3
    assert msg.receipt_handle == raw["ReceiptHandle"]
    assert msg.correlation_id == "c-1"


def test_dead_letter_attributes_describe_the_failure_and_keep_the_originals() -> None:
    # GIVEN a message with its envelope attributes and a very long reason
    env = post_created(correlation_id="corr")
    msg = ReceivedMessage.from_sqs(sqs_message(body=env, receive_count=4))
    # WHEN dead-letter attributes are built
    got = dead_letter_attributes(
        msg,
        error_type="InvalidEvent",
        reason="x" * 5000,
        source_queue="feed-fanout",
        failed_at=datetime(2026, 11, 29, 10, 0, tzinfo=UTC),
    )
    # THEN they carry the failure, the originals, and fit SQS's limits
    values = {k: v["StringValue"] for k, v in got.items()}
    assert values["errorType"] == "InvalidEvent"
    assert len(values["errorMessage"]) == ERROR_MESSAGE_LIMIT
    assert values["failedAt"] == "2026-11-29T10:00:00.000Z"
    assert values["attempts"] == "4"
    assert values["sourceQueue"] == "feed-fanout"
    assert values["correlationId"] == "corr"
    assert values["eventType"] == "PostCreated"
    assert len(got) <= MAX_ATTRIBUTES


def test_dead_letter_attributes_drop_extra_originals_beyond_the_sqs_limit() -> None:
    # GIVEN a message already carrying ten attributes
    many = {f"a{i}": "v" for i in range(10)}
    msg = ReceivedMessage.from_sqs(sqs_message(body="{}", attributes=many))
    # WHEN dead-lettered THEN ours are all kept and the total stays at ten
    got = dead_letter_attributes(
        msg, error_type="E", reason="r", source_queue="q", failed_at=datetime.now(UTC)
    )
    assert len(got) == MAX_ATTRIBUTES
    assert {"errorType", "errorMessage", "failedAt", "attempts", "sourceQueue"} <= got.keys()


def _client_error(status: int, code: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "Op",
    )


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (TransientError("t"), True),
        (ConnectionResetError(), True),
        (TimeoutError(), True),
        (EndpointConnectionError(endpoint_url="http://x"), True),
        (_client_error(503, "ServiceUnavailable"), True),
        (_client_error(400, "ThrottlingException"), True),
        (_client_error(400, "AccessDenied"), False),
        (InvalidEvent("bad"), False),
        (KeyError("k"), False),
    ],
)
def test_failures_are_classified_by_type(exc: BaseException, transient: bool) -> None:
    # GIVEN an exception WHEN classified THEN transient ones are retried soon
    assert is_transient(exc) is transient


def test_error_type_prefers_our_name_over_the_class_name() -> None:
    # GIVEN our error with a custom type and a foreign one
    # WHEN named THEN ours keeps its type and the foreign one its class name
    assert error_type_of(InvalidEvent("x", error_type="UnknownEventType")) == "UnknownEventType"
    assert error_type_of(KeyError("x")) == "KeyError"
