"""Feed reconciliation (DESIGN §7): `feed:{userId}` vs the posts of accepted connections.

The expected feed of a user is the newest `FEED_MAX_LENGTH` posts of their
accepted connections, newest first (one LATERAL query per batch of users).
Repair keeps every entry that is still valid — expected, or a post of a
current connection that is newer than what we read — drops entries of
deleted posts and removed connections, adds what is missing at its place by
`created_at`, and trims. `--rebuild` writes exactly the expected feed.

Either way the write is one atomic script per feed that keeps entries pushed
by the live pipeline after our snapshot at the head, so a concurrent fan-out
is never undone.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from reconcile.batches import Batch, check_limits, run_batches
from reconcile.feed_store import RedisFeedRewriter
from reconcile.pacing import RateLimiter
from reconcile.report import ReconcileReport

_EXPECTED = """
SELECT u.id AS user_id, f.id AS post_id, f.created_at
  FROM unnest($1::uuid[]) AS u(id)
 CROSS JOIN LATERAL (
       SELECT p.id, p.created_at FROM posts p
        WHERE p.author_id IN (
              SELECT c.addressee_id FROM connections c
               WHERE c.requester_id = u.id AND c.status = 'accepted'
              UNION
              SELECT c.requester_id FROM connections c
               WHERE c.addressee_id = u.id AND c.status = 'accepted')
        ORDER BY p.created_at DESC, p.id DESC
        LIMIT $2) f
"""

# Entries a feed holds beyond the expected ones that are still valid: posts that
# exist, by someone the feed's owner is connected to (posted after our read).
_STILL_VALID = """
SELECT f.user_id, f.post_id, p.created_at
  FROM unnest($1::uuid[], $2::uuid[]) AS f(user_id, post_id)
  JOIN posts p ON p.id = f.post_id
 WHERE EXISTS (SELECT 1 FROM connections c
                WHERE c.status = 'accepted'
                  AND ((c.requester_id = f.user_id AND c.addressee_id = p.author_id)
                    OR (c.addressee_id = f.user_id AND c.requester_id = p.author_id)))
"""

_USERS_AFTER = "SELECT id FROM users WHERE id > $1 ORDER BY id LIMIT $2"

Entry = tuple[datetime, uuid.UUID]


@dataclass(frozen=True, slots=True)
class FeedReconcileOptions:
    max_length: int = 800
    batch_size: int = 1000
    parallelism: int = 4
    max_rate: float | None = None
    dry_run: bool = False
    rebuild: bool = False
    user_ids: tuple[uuid.UUID, ...] = ()

    def __post_init__(self) -> None:
        check_limits(self.batch_size, self.parallelism)


@dataclass(frozen=True, slots=True)
class FeedPlan:
    """What one feed needs: its final entries and why it differs from the snapshot."""

    final: list[str]
    missing: int
    orphaned: int
    reordered: bool

    @property
    def drift(self) -> int:
        return self.missing + self.orphaned + int(self.reordered)


def plan_feed(
    snapshot: Sequence[str],
    expected: Sequence[Entry],
    still_valid: Sequence[Entry],
    max_length: int,
) -> FeedPlan:
    """Pure: the final feed (newest first, trimmed) and the drift it repairs."""
    entries = {str(post): (at, post) for at, post in [*expected, *still_valid]}
    final = [str(p) for _, p in sorted(entries.values(), reverse=True)][:max_length]
    held = set(snapshot)
    missing = sum(1 for _, p in expected if str(p) not in held)
    orphaned = len(held - entries.keys())
    reordered = not missing and not orphaned and list(snapshot) != final
    return FeedPlan(final, missing, orphaned, reordered)


class FeedReconciler:
    """Finds and repairs drift between PostgreSQL (posts, connections) and Redis feeds."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        feeds: RedisFeedRewriter,
        options: FeedReconcileOptions | None = None,
    ) -> None:
        self._pool = pool
        self._feeds = feeds
        self._options = options or FeedReconcileOptions()
        self._limiter = RateLimiter(self._options.max_rate)

    async def run(self) -> ReconcileReport:
        """Check every user (or the given ones); repair unless it is a dry run."""
        opts = self._options
        report = ReconcileReport("feeds", dry_run=opts.dry_run)
        started = time.perf_counter()
        await run_batches(
            self._pages(),
            self.check_users,
            report,
            parallelism=opts.parallelism,
            limiter=self._limiter,
        )
        report.duration = time.perf_counter() - started
        return report

    async def _pages(self) -> AsyncIterator[Batch]:
        size = self._options.batch_size
        if self._options.user_ids:
            ids = self._options.user_ids
            for start in range(0, len(ids), size):
                yield ids[start : start + size]
            return
        after = uuid.UUID(int=0)
        while rows := await self._pool.fetch(_USERS_AFTER, after, size):
            page = [r["id"] for r in rows]
            yield page
            after = page[-1]

    async def check_users(self, users: Batch) -> ReconcileReport:
        """Snapshot, compare and repair the feeds of one batch of users."""
        opts = self._options
        report = ReconcileReport("feeds", dry_run=opts.dry_run, checked=len(users))
        # Snapshot first: anything pushed after it is kept by the rewrite script.
        snapshots = await self._feeds.snapshot(users)
        expected = await self._expected(users)
        valid = {} if opts.rebuild else await self._still_valid(users, snapshots, expected)
        for user, snapshot in zip(users, snapshots, strict=True):
            plan = plan_feed(snapshot, expected[user], valid.get(user, ()), opts.max_length)
            report.missing += plan.missing
            report.orphaned += plan.orphaned
            report.stale += int(plan.reordered)
            if opts.dry_run or (plan.drift == 0 and not opts.rebuild):
                continue
            await self._feeds.rewrite(user, snapshot, plan.final)
            report.repaired += plan.drift
        return report

    async def _expected(self, users: Batch) -> dict[uuid.UUID, list[Entry]]:
        rows = await self._pool.fetch(_EXPECTED, list(users), self._options.max_length)
        expected: dict[uuid.UUID, list[Entry]] = {u: [] for u in users}
        for r in rows:
            expected[r["user_id"]].append((r["created_at"], r["post_id"]))
        return expected

    async def _still_valid(
        self,
        users: Batch,
        snapshots: Sequence[Sequence[str]],
        expected: dict[uuid.UUID, list[Entry]],
    ) -> dict[uuid.UUID, list[Entry]]:
        owners: list[uuid.UUID] = []
        posts: list[uuid.UUID] = []
        for user, snapshot in zip(users, snapshots, strict=True):
            known = {str(p) for _, p in expected[user]}
            for entry in snapshot:
                post = _uuid(entry)
                if entry not in known and post is not None:
                    owners.append(user)
                    posts.append(post)
        valid: dict[uuid.UUID, list[Entry]] = defaultdict(list)
        if posts:
            for r in await self._pool.fetch(_STILL_VALID, owners, posts):
                valid[r["user_id"]].append((r["created_at"], r["post_id"]))
        return valid


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None
