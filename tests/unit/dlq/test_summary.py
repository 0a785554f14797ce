"""Grouping dead letters for `dlq list`, and naming queues."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from consumers.topology import UnknownQueue
from dlq.ports import DeadMessage, Peek
from dlq.queues import resolve_queue
from dlq.summary import format_age, summarise
from tests.settings import SettingsFactory

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def dead(i: int, event: str, error: str, minutes_ago: int) -> DeadMessage:
    return DeadMessage(
        message_id=f"m{i}",
        body="{}",
        attributes={"eventType": event, "errorType": error, "errorMessage": f"why {i}"},
        attempts="1",
        sent_at=NOW - timedelta(minutes=minutes_ago),
    )


def test_summary_counts_by_event_and_error_type_and_ages_the_oldest() -> None:
    # GIVEN five dead letters of two event types and two error types
    messages = (
        dead(1, "PostCreated", "MalformedMessage", 5),
        dead(2, "PostCreated", "MalformedMessage", 90),
        dead(3, "UserProfileUpdated", "InvalidDocument", 30),
        dead(4, "PostCreated", "FanoutIncomplete", 1),
        dead(5, "PostCreated", "MalformedMessage", 2),
    )
    # WHEN they are summarised
    summary = summarise(Peek(messages, depth=5, complete=True), now=NOW, examples=3)
    # THEN counts are grouped, most frequent first, and the oldest is 90 minutes old
    assert summary.by_event_type == {"PostCreated": 4, "UserProfileUpdated": 1}
    assert next(iter(summary.by_error_type.items())) == ("MalformedMessage", 3)
    assert summary.oldest_age_seconds == 90 * 60
    # AND the examples show each error type once before repeating one
    assert {m.error_type for m in summary.examples} == {
        "MalformedMessage",
        "InvalidDocument",
        "FanoutIncomplete",
    }
    assert summary.as_json()["examples"][0] == {  # type: ignore[index]
        "messageId": "m2",
        "eventType": "PostCreated",
        "errorType": "MalformedMessage",
        "errorMessage": "why 2",
        "attempts": "1",
    }


def test_empty_queue_has_no_age() -> None:
    summary = summarise(Peek((), depth=0, complete=True), now=NOW)
    assert (summary.seen, summary.oldest_age_seconds, format_age(None)) == (0, None, "-")


def test_message_without_attributes_counts_as_moved_by_the_redrive_policy() -> None:
    # GIVEN a dead letter with no attributes and a body that is not an envelope
    bare = DeadMessage("m", "x", {}, "4", None)
    # WHEN summarised THEN its error type is the redrive policy's, its event type unknown
    summary = summarise(Peek((bare,), depth=7, complete=False), now=NOW)
    assert summary.by_error_type == {"maxReceiveCountExceeded": 1} and summary.depth == 7
    assert summary.by_event_type == {"unknown": 1}


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(42, "42 s"), (600, "10 min"), (3 * 3600, "3.0 h"), (86_400 * 3, "3.0 d")],
)
def test_ages_read_naturally(seconds: float, shown: str) -> None:
    assert format_age(seconds) == shown


@pytest.mark.parametrize(
    ("name", "queue"),
    [
        ("feed", "feed-fanout"),
        ("search-indexing", "search-indexing"),
        ("notifications-dlq", "notifications"),
    ],
)
def test_queue_accepts_pipeline_queue_or_dlq_names(
    name: str, queue: str, settings_factory: SettingsFactory
) -> None:
    assert resolve_queue(settings_factory(), name) == queue


def test_unknown_queue_is_refused_with_the_known_names(settings_factory: SettingsFactory) -> None:
    with pytest.raises(UnknownQueue, match=r"Unknown queue 'orders'.*feed-fanout"):
        resolve_queue(settings_factory(), "orders")
