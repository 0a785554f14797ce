"""Post → fan-out plan (DESIGN §5): who receives a post, in which batches.

Pure: no I/O, no asyncio. The plan is deterministic for a given post and set
of connections, so a redelivered event produces the same batches with the
same digests, which is what lets distribution skip batches already done.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

DIGEST_BYTES = 8


@dataclass(frozen=True, slots=True)
class FanoutBatch:
    """Recipients served by one atomic round trip, and the batch's stable digest."""

    recipients: tuple[uuid.UUID, ...]
    digest: str


@dataclass(frozen=True, slots=True)
class FanoutPlan:
    """Every recipient of a post exactly once, split into batches."""

    post_id: uuid.UUID
    author_id: uuid.UUID
    batches: tuple[FanoutBatch, ...]

    @property
    def recipient_count(self) -> int:
        return sum(len(b.recipients) for b in self.batches)


def batch_digest(recipients: Iterable[uuid.UUID]) -> str:
    """A short hex digest of the sorted member ids: equal sets give equal digests."""
    h = hashlib.blake2b(digest_size=DIGEST_BYTES)
    for member in sorted(recipients):
        h.update(member.bytes)
    return h.hexdigest()


def plan_fanout(
    post_id: uuid.UUID,
    author_id: uuid.UUID,
    connections: Iterable[uuid.UUID],
    batch_size: int,
) -> FanoutPlan:
    """Recipients deduplicated, the author excluded, sorted, cut into `batch_size` batches."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    recipients = sorted(set(connections) - {author_id})
    batches = tuple(
        _batch(tuple(recipients[start : start + batch_size]))
        for start in range(0, len(recipients), batch_size)
    )
    return FanoutPlan(post_id=post_id, author_id=author_id, batches=batches)


def _batch(members: tuple[uuid.UUID, ...]) -> FanoutBatch:
    # Members are already sorted, so hashing them in order equals batch_digest().
    h = hashlib.blake2b(b"".join(m.bytes for m in members), digest_size=DIGEST_BYTES)
    return FanoutBatch(recipients=members, digest=h.hexdigest())
