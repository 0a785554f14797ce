"""Search indexing: coalesce → aggregate → transform → check → bulk write.

Stop by stop: docs/life-of-a-profile-update.md.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import asyncpg
import structlog

from contracts.events import Envelope, UserProfileUpdated, utcnow
from contracts.failures import POSTGRES, SEARCH_INDEX, boundary
from contracts.metrics import END_TO_END_LATENCY
from contracts.outcomes import ACK, DeadLetter, Outcome, Probe, Retry
from pipelines.search.ports import SearchIndex, Tombstone, WriteReport
from store.profiles import ProfileBatch, load_profiles
from transforms.search_document import (
    ProfileSource,
    UserSearchDocument,
    missing_fields,
    to_search_document,
)

log = structlog.get_logger("pipelines.search")


@dataclass(slots=True)
class IndexResult:
    """One indexing pass over a set of users: the write report and the refused users."""

    report: WriteReport = field(default_factory=WriteReport)
    invalid: dict[uuid.UUID, str] = field(default_factory=dict)


def build_documents(
    profiles: Sequence[ProfileSource],
) -> tuple[list[UserSearchDocument], dict[uuid.UUID, str]]:
    """Transform and check; a document missing a required field is refused alone."""
    docs: list[UserSearchDocument] = []
    invalid: dict[uuid.UUID, str] = {}
    for profile in profiles:
        doc = to_search_document(profile)
        missing = missing_fields(doc)
        if missing:
            invalid[doc.user_id] = (
                f"Search document of user {doc.user_id} lacks required field(s): "
                f"{', '.join(missing)}."
            )
        else:
            docs.append(doc)
    return docs, invalid


ProfileLoader = Callable[[Sequence[uuid.UUID]], Awaitable[ProfileBatch]]


class VersionedLoader(Protocol):
    """A loader told the profile versions the events name (a replica may lag behind them)."""

    def __call__(
        self, ids: Sequence[uuid.UUID], min_versions: Mapping[uuid.UUID, int]
    ) -> Awaitable[ProfileBatch]: ...


def pool_loader(pool: asyncpg.Pool) -> ProfileLoader:
    """Load profiles from PostgreSQL, one aggregation query per call."""
    return functools.partial(load_profiles, pool)


async def index_users(
    load: ProfileLoader, index: SearchIndex, user_ids: Sequence[uuid.UUID]
) -> IndexResult:
    """The indexing stage for a set of users, shared by the worker, rebuilds and the bench."""
    with boundary(f"Loading {len(user_ids)} profiles from PostgreSQL", dependency=POSTGRES):
        batch = await load(user_ids)
    docs, invalid = build_documents(batch.profiles)
    tombstones = [Tombstone(uid, version) for uid, version in batch.gone.items()]
    report = await index.write(docs, tombstones)
    return IndexResult(report, invalid)


class SearchHandler:
    """`EventHandler` of the `search-indexing` queue."""

    name = "search"
    max_batch = 100

    def __init__(
        self,
        load: ProfileLoader,
        index: SearchIndex,
        *,
        dependencies: Mapping[str, Probe] | None = None,
        versioned: VersionedLoader | None = None,
    ) -> None:
        self.load = load
        self._versioned = versioned
        self.index = index
        self.dependencies: Mapping[str, Probe] = (
            dict(dependencies) if dependencies is not None else {SEARCH_INDEX: index.ping}
        )
        self.last_result: IndexResult | None = None

    async def handle(self, events: Sequence[Envelope]) -> Sequence[Outcome]:
        """One outcome per envelope; a burst of updates of one user is one write."""
        outcomes: list[Outcome | None] = [None] * len(events)
        by_user: dict[uuid.UUID, list[int]] = {}
        for i, envelope in enumerate(events):
            payload = envelope.payload
            if isinstance(payload, UserProfileUpdated):
                by_user.setdefault(payload.user_id, []).append(i)
            else:
                outcomes[i] = DeadLetter(
                    "InvalidEvent", f"search-indexing does not handle {envelope.event_type} events."
                )
        if by_user:
            # Failures of the whole batch escape: the runtime classifies them once.
            result = await index_users(self._loader(events), self.index, list(by_user))
            self.last_result = result
            for user_id, positions in by_user.items():
                outcome = self._outcome(result, user_id)
                for i in positions:
                    outcomes[i] = outcome
            self._observe(events, outcomes)
        return [o if o is not None else ACK for o in outcomes]

    def _loader(self, events: Sequence[Envelope]) -> ProfileLoader:
        """The batch's loader: a versioned one learns the newest version each user's events name."""
        versioned = self._versioned
        if versioned is None:
            return self.load
        wanted: dict[uuid.UUID, int] = {}
        for envelope in events:
            payload = envelope.payload
            if isinstance(payload, UserProfileUpdated) and payload.version is not None:
                wanted[payload.user_id] = max(payload.version, wanted.get(payload.user_id, 0))

        async def load(ids: Sequence[uuid.UUID]) -> ProfileBatch:
            return await versioned(ids, wanted)

        return load

    @staticmethod
    def _outcome(result: IndexResult, user_id: uuid.UUID) -> Outcome:
        reason = result.invalid.get(user_id)
        if reason is not None:
            return DeadLetter("InvalidDocument", reason)
        refused = result.report.failed.get(user_id)
        if refused is not None:
            return DeadLetter("DocumentRejected", refused)
        throttled = result.report.throttled.get(user_id)
        if throttled is not None:
            return Retry("DocumentThrottled", throttled)
        return ACK

    @staticmethod
    def _observe(events: Sequence[Envelope], outcomes: Sequence[Outcome | None]) -> None:
        now = utcnow()
        for envelope, outcome in zip(events, outcomes, strict=True):
            if outcome is ACK:
                seconds = max(0.0, (now - envelope.occurred_at).total_seconds())
                END_TO_END_LATENCY.labels("search", envelope.event_type).observe(seconds)

    async def wait_ready(self) -> None:
        """Nothing of its own to wait for: the runtime's gate probes the dependencies."""
        return None
