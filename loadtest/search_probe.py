"""Profile update → searchable: polls the search index for each user's document version.

An update counts as visible once the index holds the user's document at the
version the update produced, or a newer one (an index write is versioned, so a
later update of the same user also proves this one's content was passed by).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

import asyncpg

from loadtest.latency import Clock, poll_until
from pipelines.search.ports import SearchIndex


class VersionSource(Protocol):
    """Reads the indexed document versions of many users at once."""

    async def versions(self, users: Iterable[uuid.UUID]) -> Mapping[uuid.UUID, int]:
        """Each user's indexed version; users without a document are left out."""
        ...


class PostgresVersions:
    """The PostgreSQL search backend, read in one query per round."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def versions(self, users: Iterable[uuid.UUID]) -> Mapping[uuid.UUID, int]:
        rows = await self.pool.fetch(
            "SELECT user_id, version FROM search_documents"
            " WHERE user_id = ANY($1::uuid[]) AND NOT deleted",
            list(users),
        )
        return {r["user_id"]: int(r["version"]) for r in rows}


class IndexVersions:
    """Any `SearchIndex` (OpenSearch): one `get` per user, a bounded number at once."""

    def __init__(self, index: SearchIndex, parallel: int = 16) -> None:
        self.index = index
        self.gate = asyncio.Semaphore(parallel)

    async def versions(self, users: Iterable[uuid.UUID]) -> Mapping[uuid.UUID, int]:
        async def one(user: uuid.UUID) -> tuple[uuid.UUID, int | None]:
            async with self.gate:
                doc = await self.index.get(user)
            return user, (doc.version if doc else None)

        found = await asyncio.gather(*(one(u) for u in set(users)))
        return {u: v for u, v in found if v is not None}


@dataclass
class _Update:
    user: uuid.UUID
    version: int
    occurred_at: float


class SearchProbe:
    """Watches profile updates until the index holds the version they produced."""

    def __init__(
        self, source: VersionSource, *, interval: float = 0.02, clock: Clock = time.time
    ) -> None:
        self.source = source
        self.interval = interval
        self.clock = clock
        self.pending: list[_Update] = []
        self.latencies: list[float] = []
        self.samples: list[tuple[float, float]] = []
        self.watched = 0

    def watch(self, user: uuid.UUID, version: int, occurred_at: float) -> None:
        self.watched += 1
        self.pending.append(_Update(user, version, occurred_at))

    async def poll_once(self) -> None:
        """One round: record every pending update whose version (or a newer one) is indexed."""
        if not self.pending:
            return
        indexed = await self.source.versions({u.user for u in self.pending})
        now = self.clock()
        still: list[_Update] = []
        for update in self.pending:
            if indexed.get(update.user, -1) >= update.version:
                self.latencies.append(now - update.occurred_at)
                self.samples.append((update.occurred_at, now - update.occurred_at))
            else:
                still.append(update)
        self.pending = still

    async def run(self, stop: asyncio.Event) -> None:
        await poll_until(stop, self.poll_once, self.interval)

    async def drain(self, deadline_seconds: float) -> int:
        end = time.monotonic() + deadline_seconds
        while self.pending and time.monotonic() < end:
            await self.poll_once()
            await asyncio.sleep(self.interval)
        return len(self.pending)
