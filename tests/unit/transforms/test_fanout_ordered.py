"""Plans of ids a source guarantees sorted and distinct (`PackedIds(..., ordered=True)`)."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from transforms.fanout import PackedIds, plan_fanout

POST = uuid.UUID(int=10**30)


def plans_agree(people: list[uuid.UUID], author: uuid.UUID, batch_size: int) -> None:
    ordered = sorted(set(people), key=lambda u: u.bytes)
    packed = b"".join(p.bytes for p in ordered)
    fast = plan_fanout(POST, author, PackedIds(packed, ordered=True), batch_size)
    slow = plan_fanout(POST, author, PackedIds(packed), batch_size)
    assert [b.digest for b in fast.batches] == [b.digest for b in slow.batches]
    assert [list(b.recipients) for b in fast.batches] == [list(b.recipients) for b in slow.batches]


@given(
    people=st.lists(st.integers(min_value=0, max_value=2**128 - 1), max_size=120),
    author_at=st.integers(min_value=-1, max_value=119),
    batch_size=st.integers(min_value=1, max_value=40),
)
def test_ordered_ids_plan_the_same_batches_and_digests(
    people: list[int], author_at: int, batch_size: int
) -> None:
    # GIVEN sorted, distinct ids, the author among them or not
    ids = [uuid.UUID(int=i) for i in people]
    author = ids[author_at] if 0 <= author_at < len(ids) else uuid.UUID(int=7)
    # WHEN planned through the ordered path and the sorting path THEN the plans are equal
    plans_agree(ids, author, batch_size)


def test_the_authors_bytes_across_two_ids_are_not_taken_for_the_author() -> None:
    # GIVEN two ids whose concatenation holds the author's 16 bytes at offset 8
    author = uuid.UUID(bytes=bytes(range(16)))
    first = uuid.UUID(bytes=bytes(8) + author.bytes[:8])
    second = uuid.UUID(bytes=author.bytes[8:] + bytes([255]) * 8)
    packed = PackedIds(first.bytes + second.bytes, ordered=True)
    # WHEN planned
    plan = plan_fanout(POST, author, packed, 10)
    # THEN both ids still receive the post
    assert list(plan.batches[0].recipients) == [first, second]
    plans_agree([first, second], author, 10)
