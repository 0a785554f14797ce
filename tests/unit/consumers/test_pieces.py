"""Pure pieces of the consumer runtime: backoff, chunking, attributes, classification.

Classification lives in `contracts.failures` (what a client error means) and
`consumers.classify` (the one outcome it becomes).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

import asyncpg
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from hypothesis import given
from hypothesis import strategies as st
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from consumers.backoff import visibility_backoff
from consumers.classify import classify
from consumers.messages import (
    ERROR_MESSAGE_LIMIT,
    MAX_ATTRIBUTES,
    ReceivedMessage,
    dead_letter_attributes,
)
from contracts.errors import DependencyDown, InvalidEvent, TransientError
from contracts.failures import POSTGRES, REDIS, UnexpectedError, boundary, is_transient, translate
from contracts.outcomes import DeadLetter, Retry
from contracts.wire import chunked, string_attributes
from pipelines.relay.sns import publish_entries
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
        (_client_error(500, "InternalError"), True),
        (_client_error(503, "ServiceUnavailable"), True),
        (_client_error(400, "ThrottlingException"), True),
        (_client_error(400, "AccessDenied"), False),
        (RedisTimeoutError("slow"), True),
        (asyncpg.exceptions.SerializationError("conflict"), True),
        (asyncpg.exceptions.DataError("bad value"), False),
        (InvalidEvent("bad"), False),
        (KeyError("k"), False),
    ],
)
def test_transient_failures_are_known_by_type(exc: BaseException, transient: bool) -> None:
    # GIVEN an exception WHEN asked whether a retry soon may help
    # THEN transient ones are, permanent and unknown ones are not
    assert is_transient(exc) is transient


def test_an_unreachable_aws_endpoint_is_retried_in_process() -> None:
    # GIVEN botocore failing to reach its endpoint WHEN classified
    outcome = classify(EndpointConnectionError(endpoint_url="http://x"))
    # THEN it is retried, in process too
    assert isinstance(outcome, Retry)
    assert outcome.in_process
    assert outcome.stack and "EndpointConnectionError" in outcome.stack


def test_a_throttled_or_failing_aws_call_is_a_plain_transient_retry() -> None:
    # GIVEN a 500 and a throttling ClientError WHEN classified
    for exc in (_client_error(500, "InternalError"), _client_error(400, "ThrottlingException")):
        outcome = classify(exc)
        # THEN each is retried in process, with no outage named
        assert isinstance(outcome, Retry)
        assert (outcome.error_type, outcome.in_process, outcome.outage) == (
            "ClientError",
            True,
            None,
        )


def test_a_client_error_that_is_not_transient_is_left_to_the_queue() -> None:
    # GIVEN a 400 that is not throttling (likely our bug)
    exc = _client_error(400, "AccessDenied")
    # WHEN translated THEN it is unexpected, neither transient nor permanent
    assert isinstance(translate(exc, operation="Publishing"), UnexpectedError)
    # AND classified it is retried only by the queue's redelivery, not in process
    outcome = classify(exc)
    assert isinstance(outcome, Retry)
    assert (outcome.error_type, outcome.in_process, outcome.outage) == ("ClientError", False, None)


def test_a_redis_connection_error_is_an_outage_of_redis() -> None:
    # GIVEN redis failing to connect WHEN classified
    outcome = classify(RedisConnectionError("Error 111 connecting to localhost:6379."))
    # THEN it is a retry naming Redis as the dependency that is down
    assert isinstance(outcome, Retry)
    assert outcome.outage == REDIS
    assert outcome.error_type == "DependencyDown"
    assert "Error 111" in outcome.reason


def test_a_postgres_data_error_is_dead_lettered() -> None:
    # GIVEN PostgreSQL refusing a value WHEN classified
    outcome = classify(asyncpg.exceptions.DataError("invalid input syntax for type uuid"))
    # THEN no retry can help: dead letter with the client's class name and its message
    assert isinstance(outcome, DeadLetter)
    assert outcome.error_type == "DataError"
    assert "invalid input syntax" in outcome.reason
    assert outcome.stack and "DataError" in outcome.stack


def test_our_own_errors_keep_their_kind_and_type() -> None:
    # GIVEN our errors: a permanent one with a custom type, a transient and an outage
    permanent = classify(InvalidEvent("x", error_type="UnknownEventType"))
    transient = classify(TransientError("Writing failed: slow"))
    down = classify(DependencyDown(POSTGRES, "Reading failed: refused"))
    # WHEN classified THEN each keeps its type, message and kind
    assert isinstance(permanent, DeadLetter)
    assert (permanent.error_type, permanent.reason) == ("UnknownEventType", "x")
    assert transient == Retry("TransientError", "Writing failed: slow", stack=transient.stack)
    assert isinstance(down, Retry) and down.outage == POSTGRES


def test_translate_names_the_operation_and_keeps_the_first_line_of_the_cause() -> None:
    # GIVEN a refused socket while loading profiles, with a two-line message
    exc = ConnectionRefusedError("Connect call failed\nsecond line")
    # WHEN translated for the operation, naming PostgreSQL as who was called
    error = translate(exc, operation="Loading profiles", dependency=POSTGRES)
    # THEN the message starts with the operation, and PostgreSQL is down
    assert error.message == "Loading profiles failed: Connect call failed"
    assert isinstance(error, DependencyDown) and error.dependency == POSTGRES
    # AND an exception without a message is named by its class
    assert translate(KeyError(), operation="Loading profiles").message == (
        "Loading profiles failed: KeyError"
    )


def test_translate_leaves_our_own_errors_alone() -> None:
    # GIVEN an error already translated at an adapter's boundary
    ours = TransientError("Pushing failed: slow")
    # WHEN translated again (by the classifier) THEN it is the very same error
    assert translate(ours, operation="Handling the event") is ours


def test_boundary_raises_our_type_with_the_client_error_as_cause() -> None:
    # GIVEN a client call inside a boundary that fails with a timeout
    cause = TimeoutError("timed out")
    # WHEN it escapes THEN it is our transient error naming the operation, chained
    with pytest.raises(TransientError) as raised, boundary("Reading feeds", dependency=REDIS):
        raise cause
    assert not isinstance(raised.value, DependencyDown)
    assert raised.value.message == "Reading feeds failed: timed out"
    assert raised.value.__cause__ is cause
