"""Feed reconciliation: `feed:{userId}` vs the posts of accepted connections.

Operators' guide: docs/reconciliation.md.

Feeds are compared by MEMBERSHIP. Order is not drift: the live fan-out pushes
each post when it is processed (LPUSH), and posts are processed in whatever
order the queue delivers them, so a correct feed is often not in `created_at`
order. Each entry of a feed is classified:

* duplicate — the same post id a second (third…) time in the feed;
* phantom   — an id whose post does not exist in PostgreSQL (deleted, or not an id);
* extra     — a post that exists but that the rule does not expect: its author is
  not (or no longer) an accepted connection of the feed's owner, or it is older
  than the expected window of a feed that is not full;
* missing   — an expected post that the feed does not hold.

Expected membership is the newest `FEED_MAX_LENGTH` posts of the owner's
accepted connections (one LATERAL query per batch of users). The cap makes the
boundary of a full feed fuzzy: the live trim drops the entry pushed *first*,
not the post created first, so a feed whose posts were processed out of order
may hold a post of a connection older than the window's oldest post (it was
pushed later) and lack an expected post in exchange (it was pushed earlier and
trimmed). The rule:

* a feed holding `FEED_MAX_LENGTH` entries or more is full; in a full feed an
  entry that is a post of a connection is never extra, whatever its age;
* an expected post absent from a full feed is not missing when the feed holds,
  in its place, such an older post created less than `push_skew` before it:
  for the absent post to have been pushed first, it must have waited at least
  that long for its fan-out. Each older post stands in for one absent post.

So processing out of order within `push_skew` is not drift, while a post lost
well after the posts a full feed holds, or from a feed that is not full, is.

A feed with drift is rewritten to its expected entries, newest first (or every
feed with `--rebuild`), by one atomic script per feed that keeps entries pushed
by the live pipeline after our snapshot at the head, so a concurrent fan-out is
never undone. The expected feed passes the check, so a second run finds
nothing. While a real run rewrites feeds it holds the careful-until mark (see
`reconcile/careful.py`) so that the workers de-duplicate every push meanwhile.

Users and expected posts may be scanned on a replica; the posts a feed holds
beyond those are looked up on the primary, so a post the replica has not
replayed yet is never taken for a phantom.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import asyncpg

from contracts.keys import careful_until_key
from contracts.pacing import Pacer, RateLimiter
from reconcile.batches import Batch, check_limits, run_batches
from reconcile.careful import CarefulUntil
from reconcile.feed_store import RedisFeedRewriter
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

# What PostgreSQL knows of the entries a feed holds beyond the expected ones:
# the post exists (else it is phantom), when it was created, and whether its
# author is an accepted connection of the feed's owner.
_HELD_POSTS = """
SELECT f.user_id, f.post_id, p.created_at,
       EXISTS (SELECT 1 FROM connections c
                WHERE c.status = 'accepted'
                  AND ((c.requester_id = f.user_id AND c.addressee_id = p.author_id)
                    OR (c.addressee_id = f.user_id AND c.requester_id = p.author_id)))
           AS connected
  FROM unnest($1::uuid[], $2::uuid[]) AS f(user_id, post_id)
  JOIN posts p ON p.id = f.post_id
"""

_USERS_AFTER = "SELECT id FROM users WHERE id > $1 ORDER BY id LIMIT $2"

Entry = tuple[datetime, uuid.UUID]

# How much later than its creation a post may plausibly be pushed (queue delay,
# retries with backoff): the bound on "slightly out of order" in a full feed.
DEFAULT_PUSH_SKEW: Final = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class FeedReconcileOptions:
    max_length: int = 800
    batch_size: int = 1000
    parallelism: int = 4
    max_rate: float | None = None
    dry_run: bool = False
    rebuild: bool = False
    user_ids: tuple[uuid.UUID, ...] = ()
    push_skew: timedelta = DEFAULT_PUSH_SKEW

    def __post_init__(self) -> None:
        check_limits(self.batch_size, self.parallelism)


@dataclass(frozen=True, slots=True)
class HeldPost:
    """An entry of a feed that is not expected, as PostgreSQL knows its post."""

    created_at: datetime
    connected: bool


@dataclass(frozen=True, slots=True)
class FeedPlan:
    """What one feed needs: its final entries and the drift found in the snapshot."""

    final: list[str]
    missing: int = 0
    extra: int = 0
    duplicate: int = 0
    phantom: int = 0

    @property
    def drift(self) -> int:
        return self.missing + self.extra + self.duplicate + self.phantom


def plan_feed(
    snapshot: Sequence[str],
    expected: Sequence[Entry],
    held: Mapping[str, HeldPost],
    max_length: int,
    push_skew: timedelta = DEFAULT_PUSH_SKEW,
) -> FeedPlan:
    """Pure: classify a feed's entries (see the module docstring) and its final entries.

    `expected` is newest first; `held` describes the snapshot's entries that are
    not expected and whose post exists (absent ones are phantom).
    """
    final = [str(p) for _, p in expected]
    wanted = set(final)
    distinct = list(dict.fromkeys(snapshot))
    full = len(snapshot) >= max_length
    cutoff = expected[-1][0] if len(expected) >= max_length else None
    extra = phantom = 0
    older: list[datetime] = []
    for entry in distinct:
        if entry in wanted:
            continue
        post = held.get(entry)
        if post is None:
            phantom += 1
        elif not post.connected or (cutoff is not None and post.created_at <= cutoff and not full):
            extra += 1
        elif cutoff is not None and post.created_at <= cutoff:
            older.append(post.created_at)
        # else: newer than the window's oldest post, so created after we read it.
    present = set(distinct)
    absent = [at for at, p in reversed(expected) if str(p) not in present]
    missing = len(absent) - _stand_ins(absent, sorted(older), push_skew)
    return FeedPlan(final, missing, extra, len(snapshot) - len(distinct), phantom)


def _stand_ins(absent: Sequence[datetime], older: Sequence[datetime], skew: timedelta) -> int:
    """How many absent posts (oldest first) an older held post can stand in for.

    An older post created at `o` stands in for an absent one created at `a` when
    `a - o < skew`. Going through the absent posts oldest first and giving each
    the oldest older post still in reach pairs as many as possible.
    """
    paired = j = 0
    for at in absent:
        while j < len(older) and at - older[j] >= skew:
            j += 1
        if j == len(older):
            break
        paired += 1
        j += 1
    return paired


class FeedReconciler:
    """Finds and repairs drift between PostgreSQL (posts, connections) and Redis feeds."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        feeds: RedisFeedRewriter,
        options: FeedReconcileOptions | None = None,
        *,
        careful: CarefulUntil | None = None,
        primary: asyncpg.Pool | None = None,
        pacer: Pacer | None = None,
    ) -> None:
        self._pool = pool
        # A replica may lag: a post the scan did not expect is looked up here.
        self._primary = primary or pool
        self._feeds = feeds
        self._options = options or FeedReconcileOptions()
        # The adaptive pace, when the composition root made one; else a fixed --max-rate.
        self._limiter = pacer or RateLimiter(self._options.max_rate)
        self._careful = careful or CarefulUntil(feeds.client, careful_until_key())

    async def run(self) -> ReconcileReport:
        """Check every user (or the given ones); repair unless it is a dry run."""
        opts = self._options
        report = ReconcileReport("feeds", dry_run=opts.dry_run)
        started = time.perf_counter()
        async with self._careful_window():
            await run_batches(
                self._pages(),
                self.check_users,
                report,
                parallelism=opts.parallelism,
                limiter=self._limiter,
            )
        report.duration = time.perf_counter() - started
        return report

    def _careful_window(self) -> AbstractAsyncContextManager[None]:
        # A dry run writes no feed, so the workers have nothing to be careful about.
        if self._options.dry_run:
            return contextlib.nullcontext()
        return self._careful.held()

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
        # Snapshot first: every post it holds was committed before the expected
        # posts are read, and anything pushed after it is kept by the rewrite.
        snapshots = await self._feeds.snapshot(users)
        expected = await self._expected(users)
        held = await self._held(users, snapshots, expected)
        for user, snapshot in zip(users, snapshots, strict=True):
            plan = plan_feed(
                snapshot, expected[user], held.get(user, {}), opts.max_length, opts.push_skew
            )
            _count(report, plan)
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

    async def _held(
        self,
        users: Batch,
        snapshots: Sequence[Sequence[str]],
        expected: Mapping[uuid.UUID, list[Entry]],
    ) -> dict[uuid.UUID, dict[str, HeldPost]]:
        owners: list[uuid.UUID] = []
        posts: list[uuid.UUID] = []
        for user, snapshot in zip(users, snapshots, strict=True):
            known = {str(p) for _, p in expected[user]}
            for entry in set(snapshot) - known:
                post = _uuid(entry)
                if post is not None:
                    owners.append(user)
                    posts.append(post)
        held: dict[uuid.UUID, dict[str, HeldPost]] = {}
        if posts:
            for r in await self._primary.fetch(_HELD_POSTS, owners, posts):
                found = HeldPost(r["created_at"], r["connected"])
                held.setdefault(r["user_id"], {})[str(r["post_id"])] = found
        return held


def _count(report: ReconcileReport, plan: FeedPlan) -> None:
    report.missing += plan.missing
    report.extra += plan.extra
    report.duplicate += plan.duplicate
    report.phantom += plan.phantom


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None
