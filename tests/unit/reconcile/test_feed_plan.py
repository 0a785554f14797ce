"""The pure feed plan: final entries newest first, and what drift they repair."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from reconcile.feeds import plan_feed

T0 = datetime(2026, 11, 1, tzinfo=UTC)
P = [uuid.UUID(int=i + 1) for i in range(6)]


def at(i: int) -> datetime:
    return T0 + timedelta(minutes=i)


def test_missing_entries_take_their_place_by_creation_time() -> None:
    expected = [(at(3), P[3]), (at(2), P[2]), (at(1), P[1])]
    plan = plan_feed([str(P[3]), str(P[1])], expected, [], max_length=10)
    assert plan.final == [str(P[3]), str(P[2]), str(P[1])]
    assert (plan.missing, plan.orphaned, plan.reordered) == (1, 0, False)


def test_entries_of_deleted_posts_are_dropped_and_newer_valid_ones_kept() -> None:
    expected = [(at(2), P[2])]
    newer = [(at(5), P[5])]
    plan = plan_feed([str(P[5]), str(P[4]), str(P[2])], expected, newer, max_length=10)
    assert plan.final == [str(P[5]), str(P[2])]
    assert (plan.missing, plan.orphaned) == (0, 1)


def test_right_entries_in_the_wrong_order_are_one_stale_feed() -> None:
    expected = [(at(2), P[2]), (at(1), P[1])]
    plan = plan_feed([str(P[1]), str(P[2])], expected, [], max_length=10)
    assert plan.reordered and plan.drift == 1 and plan.final == [str(P[2]), str(P[1])]


def test_consistent_feed_needs_nothing_and_final_is_trimmed() -> None:
    expected = [(at(i), P[i]) for i in (3, 2, 1)]
    assert plan_feed([str(P[3]), str(P[2]), str(P[1])], expected, [], 10).drift == 0
    assert plan_feed([], expected, [], 2).final == [str(P[3]), str(P[2])]
