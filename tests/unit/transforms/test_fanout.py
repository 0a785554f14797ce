"""The fan-out plan: who gets a post, in which batches."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transforms.fanout import PackedIds, batch_digest, plan_fanout

POST = uuid.UUID(int=1)
AUTHOR = uuid.UUID(int=2)


def ids(n: int, start: int = 100) -> list[uuid.UUID]:
    return [uuid.UUID(int=start + i) for i in range(n)]


def test_recipients_are_deduplicated_and_sorted() -> None:
    # GIVEN connections listed twice, in both directions, out of order
    people = ids(5)
    connections = [*reversed(people), *people]

    # WHEN the plan is made
    plan = plan_fanout(POST, AUTHOR, connections, batch_size=10)

    # THEN each recipient appears once, in sorted order
    assert [r for b in plan.batches for r in b.recipients] == sorted(people)


def test_author_never_receives_own_post() -> None:
    plan = plan_fanout(POST, AUTHOR, [AUTHOR, *ids(3)], batch_size=10)

    assert AUTHOR not in {r for b in plan.batches for r in b.recipients}
    assert plan.recipient_count == 3


def test_batches_are_cut_to_batch_size() -> None:
    plan = plan_fanout(POST, AUTHOR, ids(2501), batch_size=1000)

    assert [len(b.recipients) for b in plan.batches] == [1000, 1000, 501]


def test_no_connections_means_no_batches() -> None:
    plan = plan_fanout(POST, AUTHOR, [AUTHOR], batch_size=1000)

    assert plan.batches == ()
    assert plan.recipient_count == 0


def test_digests_are_stable_across_input_order() -> None:
    # GIVEN the same connections in two different orders
    people = ids(30)

    # WHEN planned twice
    first = plan_fanout(POST, AUTHOR, people, batch_size=7)
    second = plan_fanout(POST, AUTHOR, list(reversed(people)), batch_size=7)

    # THEN the batches and their digests are identical, and digests differ between batches
    assert first == second
    digests = [b.digest for b in first.batches]
    assert len(set(digests)) == len(digests)
    assert all(len(d) == 16 for d in digests)


def test_batch_digest_ignores_member_order() -> None:
    people = ids(4)

    assert batch_digest(people) == batch_digest(reversed(people))
    assert batch_digest(people) == plan_fanout(POST, AUTHOR, people, 10).batches[0].digest
    assert batch_digest(people) != batch_digest(people[:3])


def test_batch_size_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        plan_fanout(POST, AUTHOR, ids(1), batch_size=0)


@given(
    connections=st.lists(st.integers(min_value=1, max_value=500), max_size=300),
    batch_size=st.integers(min_value=1, max_value=50),
)
def test_every_recipient_is_in_exactly_one_batch(connections: list[int], batch_size: int) -> None:
    # GIVEN arbitrary connection lists (duplicates, the author among them)
    people = [uuid.UUID(int=i) for i in connections]

    # WHEN planned
    plan = plan_fanout(POST, AUTHOR, people, batch_size)

    # THEN every connection but the author is in exactly one batch, none over size
    flat = [r for b in plan.batches for r in b.recipients]
    assert sorted(flat) == sorted(set(people) - {AUTHOR})
    assert all(1 <= len(b.recipients) <= batch_size for b in plan.batches)


def test_packed_connections_plan_the_same_batches_as_uuids() -> None:
    # GIVEN 2,500 connections (one repeated, the author among them), as UUIDs and packed
    people = [uuid.uuid4() for _ in range(2500)]
    connections = [*people, people[7], AUTHOR]
    packed = PackedIds(b"".join(p.bytes for p in connections))
    # WHEN both are planned
    from_uuids = plan_fanout(POST, AUTHOR, connections, 1000)
    from_packed = plan_fanout(POST, AUTHOR, packed, 1000)
    # THEN the batches hold the same recipients in the same order, with the same digests
    assert [b.digest for b in from_packed.batches] == [b.digest for b in from_uuids.batches]
    assert [list(b.recipients) for b in from_packed.batches] == [
        list(b.recipients) for b in from_uuids.batches
    ]
    assert from_packed.batches[0].digest == batch_digest(from_packed.batches[0].recipients)
    assert from_packed.recipient_count == 2500
