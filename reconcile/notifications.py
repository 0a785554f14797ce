"""Notification reconciliation: rows from the source tables, counters from the rows.

Users are keyset-scanned in batches. For each batch:

* missing rows — the notifications the source tables call for (a pending
  connection tells its addressee, an accepted one its requester, a comment on
  someone else's post the post's author) that have no row, matched by
  (kind, source_id), the key the live worker shares through migration 0005.
  They are inserted unread at the source's time; a row the worker writes
  meanwhile makes the insert a no-op, and vice versa.
* counters fixed — `notif:unread:{userId}` disagreeing with the user's unread
  rows (read_at null); a missing counter means 0. A counter is set only if it
  still holds the value read before the rows were counted, so an increment
  by the worker meanwhile is never overwritten (that counter waits for the
  next run). A dry run compares the counters with what the rows would be
  after the missing ones were inserted, so both runs report the same drift.

Rows are never deleted: a notification whose source went away (a declined
request, a deleted comment) is history the user has seen, not drift.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import asyncpg

from contracts.keys import unread_notifications_key
from contracts.pacing import Pacer, RateLimiter
from reconcile.batches import Batch, check_limits, run_batches
from reconcile.redis_client import AnyRedis, get_many
from reconcile.report import ReconcileReport
from store.notifications import (
    SourcedNotification,
    insert_notifications,
    missing_notifications,
    unread_counts,
)

_USERS_AFTER = "SELECT id FROM users WHERE id > $1 ORDER BY id LIMIT $2"

# Set the counter only if it still holds what was read (ARGV[1], '' for none).
_SET_IF_UNCHANGED: Final = """
if (redis.call('GET', KEYS[1]) or '') == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0
"""


@dataclass(frozen=True, slots=True)
class NotificationReconcileOptions:
    batch_size: int = 1000
    parallelism: int = 4
    max_rate: float | None = None
    dry_run: bool = False

    def __post_init__(self) -> None:
        check_limits(self.batch_size, self.parallelism)


class NotificationReconciler:
    """Finds and repairs missing notification rows and wrong unread counters."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        client: AnyRedis,
        options: NotificationReconcileOptions | None = None,
        *,
        pacer: Pacer | None = None,
    ) -> None:
        self._pool = pool
        self._redis = client
        self._options = options or NotificationReconcileOptions()
        # The adaptive pace, when the composition root made one; else a fixed --max-rate.
        self._limiter = pacer or RateLimiter(self._options.max_rate)
        self._set_if_unchanged: Any = client.register_script(_SET_IF_UNCHANGED)

    async def run(self) -> ReconcileReport:
        """Check every user; repair unless it is a dry run."""
        opts = self._options
        report = ReconcileReport("notifications", dry_run=opts.dry_run)
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
        after = uuid.UUID(int=0)
        while rows := await self._pool.fetch(_USERS_AFTER, after, self._options.batch_size):
            page = [r["id"] for r in rows]
            yield page
            after = page[-1]

    async def check_users(self, users: Batch) -> ReconcileReport:
        """Complete the rows of one batch of users, then put their counters right."""
        report = ReconcileReport("notifications", dry_run=self._options.dry_run)
        report.checked = len(users)
        # Counters first: the compare-and-set below must compare with a value
        # read before the rows were counted.
        counters = await self._counters(users)
        missing = await missing_notifications(self._pool, users)
        report.missing = len(missing)
        if not self._options.dry_run:
            report.repaired += await insert_notifications(self._pool, missing)
        unread = await unread_counts(self._pool, users)
        if self._options.dry_run:
            unread = _with_missing(unread, missing)
        wrong = {u: n for u, n in unread.items() if _value(counters[u]) != n}
        report.counters = len(wrong)
        if wrong and not self._options.dry_run:
            await self._fix(wrong, counters, report)
        return report

    async def _counters(self, users: Batch) -> dict[uuid.UUID, str | None]:
        raw = await get_many(self._redis, [unread_notifications_key(u) for u in users])
        return {u: _text(v) for u, v in zip(users, raw, strict=True)}

    async def _fix(
        self,
        wrong: Mapping[uuid.UUID, int],
        counters: Mapping[uuid.UUID, str | None],
        report: ReconcileReport,
    ) -> None:
        for user, unread in wrong.items():
            key = unread_notifications_key(user)
            args = [counters[user] or "", unread]
            if await self._set_if_unchanged(keys=[key], args=args):
                report.repaired += 1
            else:
                report.failed += 1
                report.failures.append(
                    f"{user}: the unread counter changed while it was fixed; the next run"
                    " checks it again"
                )


def _with_missing(
    unread: Mapping[uuid.UUID, int], missing: Sequence[SourcedNotification]
) -> dict[uuid.UUID, int]:
    """The unread counts once the missing rows (inserted unread) were there."""
    after = dict(unread)
    for row in missing:
        after[row.user_id] = after.get(row.user_id, 0) + 1
    return after


def _value(counter: str | None) -> int:
    """A counter's number; a missing counter is 0, an unreadable one never matches."""
    try:
        return int(counter or 0)
    except ValueError:
        return -1


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value
