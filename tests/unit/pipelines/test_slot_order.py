"""Connection lists in Redis Cluster slot order, and the plans cut from them."""

from __future__ import annotations

import random
import uuid

from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

from contracts.keys import feed_key
from pipelines.feed.cluster_feeds import slot_ordered
from transforms.fanout import PackedIds, plan_fanout, spread

POST = uuid.UUID(int=10**30)


def by_slot_then_id(ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """The order by the definition: redis-py's slot of each feed key, then the id."""
    return sorted(set(ids), key=lambda u: (key_slot(feed_key(u).encode()), u.bytes))


@given(st.lists(st.integers(min_value=0, max_value=2**128 - 1), max_size=200))
def test_slot_order_is_the_distinct_ids_by_feed_slot_then_id(ints: list[int]) -> None:
    # GIVEN ids in any order, some repeated
    ids = [uuid.UUID(int=i) for i in ints + ints[:5]]
    # WHEN put in slot order
    arranged = slot_ordered(ids)
    # THEN each id is there once, ordered by its feed key's slot and then by id
    assert list(arranged) == by_slot_then_id(ids)
    assert arranged.by_slot and not arranged.ordered


def test_slot_order_does_not_depend_on_the_input_order_or_form() -> None:
    # GIVEN the same connections as UUIDs in two orders and as sorted packed ids
    ids = [uuid.uuid4() for _ in range(3000)]
    shuffled = random.sample(ids, len(ids))
    packed = PackedIds(b"".join(sorted(u.bytes for u in ids)), ordered=True)
    # WHEN each is put in slot order THEN the bytes are the same
    assert slot_ordered(ids).packed == slot_ordered(shuffled).packed == slot_ordered(packed).packed


def test_a_plan_of_slot_ordered_ids_cuts_them_in_that_order_and_spreads_the_batches() -> None:
    # GIVEN 1,050 connections in slot order, the author among them
    ids = [uuid.uuid4() for _ in range(1050)]
    arranged = slot_ordered(ids)
    author = ids[17]
    # WHEN planned in batches of 100
    plan = plan_fanout(POST, author, arranged, 100)
    # THEN the batches are the slot order's consecutive slices (without the author),
    # taken in spread order, each with a digest of its own
    expected = [u for u in by_slot_then_id(ids) if u != author]
    cut = [expected[i : i + 100] for i in range(0, len(expected), 100)]
    assert [list(b.recipients) for b in plan.batches] == list(spread(cut))
    assert len({b.digest for b in plan.batches}) == len(plan.batches) == 11
    # AND a second plan of the same list (a redelivery) has the same digests
    again = plan_fanout(POST, author, slot_ordered(list(reversed(ids))), 100)
    assert [b.digest for b in again.batches] == [b.digest for b in plan.batches]


def test_batches_of_slot_ordered_ids_each_span_a_narrow_band_of_slots() -> None:
    # GIVEN 20,000 connections in slot order, planned in batches of 1,000
    arranged = slot_ordered([uuid.uuid4() for _ in range(20_000)])
    plan = plan_fanout(POST, uuid.uuid4(), arranged, 1000)
    # THEN each batch spans about a twentieth of the 16,384 slots (a third would be
    # one master of three), where batches in id order span nearly all of them
    for batch in plan.batches:
        slots = [key_slot(feed_key(u).encode()) for u in batch.recipients]
        assert max(slots) - min(slots) < 16_384 // 10


def test_spread_takes_positions_in_bit_reversed_order() -> None:
    assert spread(range(8)) == (0, 4, 2, 6, 1, 5, 3, 7)
    assert spread([]) == ()
    assert spread(["only"]) == ("only",)
    for n in range(1, 70):
        order = spread(range(n))
        assert sorted(order) == list(range(n))
        # the first two batches in flight lie in different halves of the slot space
        if n > 1:
            assert (order[0] < n / 2) != (order[1] < n / 2)
