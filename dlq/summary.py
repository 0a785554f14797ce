"""Grouping dead letters for `dlq list` (pure)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from dlq.ports import DeadMessage, Peek


@dataclass(frozen=True, slots=True)
class Summary:
    """Counts by event type and error type, the oldest message's age, a few examples."""

    depth: int
    seen: int
    complete: bool
    oldest_age_seconds: float | None
    by_event_type: dict[str, int]
    by_error_type: dict[str, int]
    examples: tuple[DeadMessage, ...]

    def as_json(self) -> dict[str, object]:
        return {
            "depth": self.depth,
            "seen": self.seen,
            "complete": self.complete,
            "oldestAgeSeconds": self.oldest_age_seconds,
            "byEventType": self.by_event_type,
            "byErrorType": self.by_error_type,
            "examples": [
                {
                    "messageId": m.message_id,
                    "eventType": m.event_type,
                    "errorType": m.error_type,
                    "errorMessage": m.error_message,
                    "attempts": m.attempts,
                }
                for m in self.examples
            ],
        }


def summarise(peek: Peek, *, now: datetime, examples: int = 3) -> Summary:
    """Group what `peek` saw; examples are one per error type first, oldest first."""
    messages = sorted(peek.messages, key=_sent_key)
    sent = [m.sent_at for m in messages if m.sent_at is not None]
    oldest = (now - min(sent)).total_seconds() if sent else None
    return Summary(
        depth=max(peek.depth, len(messages)),
        seen=len(messages),
        complete=peek.complete,
        oldest_age_seconds=oldest,
        by_event_type=_counts(m.event_type for m in messages),
        by_error_type=_counts(m.error_type for m in messages),
        examples=_examples(messages, examples),
    )


def _counts(values: Iterable[str]) -> dict[str, int]:
    return dict(Counter(values).most_common())


def _sent_key(message: DeadMessage) -> tuple[bool, datetime | None]:
    return (message.sent_at is None, message.sent_at)


def _examples(messages: Sequence[DeadMessage], limit: int) -> tuple[DeadMessage, ...]:
    chosen: list[DeadMessage] = []
    seen_types: set[str] = set()
    for message in messages:
        if message.error_type not in seen_types:
            seen_types.add(message.error_type)
            chosen.append(message)
    chosen += [m for m in messages if m not in chosen]
    return tuple(chosen[:limit])


def format_age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} d"
