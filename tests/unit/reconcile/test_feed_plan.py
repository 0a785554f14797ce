"""The pure feed plan: membership drift of one feed, and the expected final entries."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from reconcile.feeds import HeldPost, plan_feed

T0 = datetime(2026, 11, 1, tzinfo=UTC)
P = [uuid.UUID(int=i + 1) for i in range(12)]
S = [str(p) for p in P]


def at(i: int) -> datetime:
    return T0 + timedelta(minutes=i)


def newest(*indexes: int) -> list[tuple[datetime, uuid.UUID]]:
    return [(at(i), P[i]) for i in sorted(indexes, reverse=True)]


def connected(*indexes: int) -> dict[str, HeldPost]:
    return {S[i]: HeldPost(at(i), connected=True) for i in indexes}


def test_expected_entries_in_another_order_are_no_drift() -> None:
    # GIVEN a feed holding exactly the expected posts, in processing order
    plan = plan_feed([S[1], S[3], S[2]], newest(3, 2, 1), {}, max_length=10)
    # THEN nothing drifts, and the final feed is newest first
    assert plan.drift == 0
    assert plan.final == [S[3], S[2], S[1]]


def test_an_absent_expected_post_is_missing() -> None:
    plan = plan_feed([S[3], S[1]], newest(3, 2, 1), {}, max_length=10)
    assert (plan.missing, plan.drift) == (1, 1)


def test_a_post_twice_is_one_duplicate() -> None:
    plan = plan_feed([S[2], S[1], S[2]], newest(2, 1), {}, max_length=10)
    assert (plan.duplicate, plan.drift) == (1, 1)


def test_an_id_without_a_post_is_phantom() -> None:
    # GIVEN a deleted post's id and garbage (neither known to PostgreSQL)
    plan = plan_feed([S[2], S[9], "not-a-post", S[1]], newest(2, 1), {}, max_length=10)
    assert (plan.phantom, plan.extra, plan.missing) == (2, 0, 0)


def test_a_post_of_someone_not_connected_is_extra() -> None:
    held = {S[9]: HeldPost(at(9), connected=False)}
    plan = plan_feed([S[9], S[2], S[1]], newest(2, 1), held, max_length=10)
    assert (plan.extra, plan.phantom, plan.drift) == (1, 0, 1)


def test_a_full_feed_may_trade_an_expected_post_for_a_slightly_older_one() -> None:
    # GIVEN posts 1..6 of connections processed as 4,1,2,3,6,5 into feeds of 5:
    # post 4 was pushed first and trimmed, post 1 pushed later stays
    feed = [S[5], S[6], S[3], S[2], S[1]]
    # WHEN the feed is planned against the newest five (6..2)
    plan = plan_feed(feed, newest(6, 5, 4, 3, 2), connected(1), max_length=5)
    # THEN that is no drift
    assert plan.drift == 0


def test_an_older_post_stands_in_only_within_the_push_skew() -> None:
    # GIVEN a full feed lacking post 10 and holding post 1, nine minutes older
    feed = [S[9], S[8], S[7], S[6], S[1]]
    expected = newest(10, 9, 8, 7, 6)
    # WHEN the skew allows ten minutes, THEN nothing is missing
    assert plan_feed(feed, expected, connected(1), 5, timedelta(minutes=10)).drift == 0
    # WHEN it allows five, THEN post 10 is missing, and post 1 is still not extra
    plan = plan_feed(feed, expected, connected(1), 5, timedelta(minutes=5))
    assert (plan.missing, plan.extra) == (1, 0)


def test_an_older_post_in_a_feed_that_is_not_full_is_extra() -> None:
    # GIVEN a feed of four under a cap of five holding post 1, older than the window
    plan = plan_feed([S[6], S[5], S[4], S[1]], newest(6, 5, 4, 3, 2), connected(1), 5)
    # THEN post 1 is extra and the two absent expected posts are missing
    assert (plan.extra, plan.missing) == (1, 2)


def test_a_full_feed_with_a_duplicate_misses_the_post_it_pushed_out() -> None:
    # GIVEN a full feed of three whose duplicate pushed out the oldest expected post
    plan = plan_feed([S[3], S[3], S[2]], newest(3, 2, 1), {}, max_length=3)
    # THEN one duplicate and one missing post, and the final feed is the expected one
    assert (plan.duplicate, plan.missing) == (1, 1)
    assert plan.final == [S[3], S[2], S[1]]
