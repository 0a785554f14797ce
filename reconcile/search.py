"""Search index reconciliation: expected documents from PostgreSQL vs the index.

Operators' guide: docs/reconciliation.md.

Users are keyset-scanned in batches; each batch is loaded with the pipeline's
own aggregation query and transform (`load_profiles`, `build_documents`), the
stored documents are read in one call, and each user is classified:

* missing  — no document although the profile exists;
* privacy  — the profile is private and the stored document carries a
  restricted field (headline, location, work history, education) or says public;
* stale    — the stored content differs from the expected document (the
  content hash is recomputed from what is stored, not trusted);
* orphaned — a document whose user has no profile (found by scanning the
  index's ids), deleted with a tombstone.

Content decides, not the version: the live upsert skips a document whose
content hash is unchanged and keeps the stored (older) version, so after an
edit that changed nothing searchable the index legitimately holds an older
version with the expected content. A stored version newer than the one read
is not drift either: the pipeline indexed a later change while we read.
Repairs go through the same port with the repair rule (an equal version may
replace), so a concurrent newer write always wins.

Scans may read a replica (`pool`); an orphan found there is confirmed on the
primary before its document is deleted, since a replica that lags does not
have the newest profiles yet.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass

import asyncpg

from contracts.pacing import Pacer, RateLimiter
from pipelines.search.handler import build_documents
from pipelines.search.ports import AuditableSearchIndex, Tombstone
from reconcile.batches import Batch, check_limits, run_batches
from reconcile.report import ReconcileReport
from store.profiles import load_profiles, profile_ids_after
from transforms.search_document import UserSearchDocument, content_hash

_WITHOUT_PROFILE = """
SELECT id FROM unnest($1::uuid[]) AS ids(id)
 WHERE NOT EXISTS (SELECT 1 FROM user_profiles p WHERE p.user_id = ids.id)
"""


@dataclass(frozen=True, slots=True)
class SearchReconcileOptions:
    batch_size: int = 1000
    parallelism: int = 4
    max_rate: float | None = None
    dry_run: bool = False

    def __post_init__(self) -> None:
        check_limits(self.batch_size, self.parallelism)


def classify(expected: UserSearchDocument, stored: UserSearchDocument | None) -> str | None:
    """`missing`, `privacy`, `stale` or None (consistent) for one user."""
    if stored is None:
        return "missing"
    if stored.version > expected.version:
        return None
    if expected.visibility == "private" and leaks(stored):
        return "privacy"
    if content_hash(stored) != expected.content_hash:
        return "stale"
    return None


def leaks(stored: UserSearchDocument) -> bool:
    """Whether a private profile's stored document shows more than it may."""
    restricted = (stored.headline, stored.location, stored.companies, stored.job_titles)
    return stored.visibility != "private" or any(restricted) or bool(stored.schools)


class SearchReconciler:
    """Finds and repairs drift between PostgreSQL profiles and a search index."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        index: AuditableSearchIndex,
        options: SearchReconcileOptions | None = None,
        *,
        primary: asyncpg.Pool | None = None,
        pacer: Pacer | None = None,
    ) -> None:
        self._pool = pool
        self._primary = primary or pool
        self._index = index
        self._options = options or SearchReconcileOptions()
        # The adaptive pace, when the composition root made one; else a fixed --max-rate.
        self._limiter = pacer or RateLimiter(self._options.max_rate)

    async def run(self) -> ReconcileReport:
        """Scan every user, then every indexed id; repair unless it is a dry run."""
        opts = self._options
        report = ReconcileReport("search", dry_run=opts.dry_run)
        started = time.perf_counter()
        await run_batches(
            self._user_pages(),
            self.check_users,
            report,
            parallelism=opts.parallelism,
            limiter=self._limiter,
        )
        await self._check_all_orphans(report)
        report.duration = time.perf_counter() - started
        return report

    async def _check_all_orphans(self, report: ReconcileReport) -> None:
        pages = self._index.scan_ids(self._options.batch_size)
        try:
            await run_batches(
                pages,
                self.check_orphans,
                report,
                parallelism=self._options.parallelism,
                limiter=self._limiter,
            )
        finally:
            # A scan may hold server-side state (an OpenSearch point in time) that a
            # failed run must release now, not whenever the generator is collected.
            if isinstance(pages, AsyncGenerator):
                await pages.aclose()

    async def _user_pages(self) -> AsyncIterator[Batch]:
        after: uuid.UUID | None = None
        while ids := await profile_ids_after(self._pool, after, self._options.batch_size):
            yield ids
            after = ids[-1]

    async def check_users(self, ids: Batch) -> ReconcileReport:
        """Classify and repair one batch of users with a profile."""
        report = ReconcileReport("search", dry_run=self._options.dry_run, checked=len(ids))
        # No tombstones here: the scan may run on a read-only replica.
        batch = await load_profiles(self._pool, ids, tombstones=False)
        expected, invalid = build_documents(batch.profiles)
        report.invalid = len(invalid)
        # In id order, whatever order the rows came in: one batch, one request body.
        stored = await self._index.get_many(sorted(d.user_id for d in expected))
        to_repair: list[UserSearchDocument] = []
        for doc in expected:
            verdict = classify(doc, stored.get(doc.user_id))
            if verdict is not None:
                setattr(report, verdict, getattr(report, verdict) + 1)
                to_repair.append(doc)
        if to_repair and not self._options.dry_run:
            await self._repair(to_repair, report)
        return report

    async def _repair(self, docs: Sequence[UserSearchDocument], report: ReconcileReport) -> None:
        written = await self._index.repair(docs)
        # A stale verdict here means the pipeline wrote a newer version meanwhile: fine.
        report.repaired += written.written + written.stale
        report.failed += len(written.failed)
        report.failures += [f"{uid}: {why}" for uid, why in list(written.failed.items())[:5]]

    async def check_orphans(self, ids: Batch) -> ReconcileReport:
        """Delete the documents of one page of indexed ids whose user has no profile."""
        report = ReconcileReport("search", dry_run=self._options.dry_run)
        orphans = await self._without_profile(self._pool, ids)
        if orphans and self._primary is not self._pool:
            orphans = await self._without_profile(self._primary, orphans)
        report.orphaned = len(orphans)
        if orphans and not self._options.dry_run:
            # The pipeline's own tombstone versions: fresher than any version the user had.
            gone = (await load_profiles(self._primary, orphans)).gone
            stones = [Tombstone(uid, version) for uid, version in gone.items()]
            deleted = await self._index.write((), stones)
            report.repaired += len(stones) - len(deleted.failed)
            report.failed += len(deleted.failed)
        return report

    @staticmethod
    async def _without_profile(pool: asyncpg.Pool, ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
        return [r["id"] for r in await pool.fetch(_WITHOUT_PROFILE, list(ids))]
