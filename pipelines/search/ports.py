"""The `SearchIndex` port: what the search pipeline needs of an index backend."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from transforms.search_document import UserSearchDocument


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A user that no longer exists, with the version at which it disappeared."""

    user_id: uuid.UUID
    version: int


@dataclass(slots=True)
class WriteReport:
    """What a bulk write did. `failed` maps a user id to why its document was refused."""

    written: int = 0
    unchanged: int = 0
    stale: int = 0
    deleted: int = 0
    failed: dict[uuid.UUID, str] = field(default_factory=dict)
    # Refused for now (throttled, 5xx per item): retried for just these users.
    throttled: dict[uuid.UUID, str] = field(default_factory=dict)

    def add(self, other: WriteReport) -> None:
        self.written += other.written
        self.unchanged += other.unchanged
        self.stale += other.stale
        self.deleted += other.deleted
        self.failed.update(other.failed)
        self.throttled.update(other.throttled)


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """Free text (name, headline, titles, companies, skills) plus exact filters."""

    text: str = ""
    skills: tuple[str, ...] = ()
    companies: tuple[str, ...] = ()
    limit: int = 20


@dataclass(frozen=True, slots=True)
class SearchHit:
    user_id: uuid.UUID
    full_name: str
    headline: str | None
    companies: tuple[str, ...]
    skills: tuple[str, ...]
    visibility: str
    score: float


class SearchIndex(Protocol):
    """A people-search index holding one `UserSearchDocument` per user.

    Writes are idempotent and versioned: a document or tombstone only replaces
    what the index holds when its version is greater, and a document whose
    content hash equals the stored one is not rewritten.
    """

    async def write(
        self, docs: Sequence[UserSearchDocument], tombstones: Sequence[Tombstone] = ()
    ) -> WriteReport:
        """Upsert `docs` and delete the users of `tombstones`, in bulk."""
        ...

    async def get(self, user_id: uuid.UUID) -> UserSearchDocument | None:
        """The stored document of a user, or None when there is none (or a tombstone)."""
        ...

    async def search(self, query: SearchQuery) -> list[SearchHit]:
        """Best matches first."""
        ...

    async def ping(self) -> None:
        """Return when the backend answers; raise otherwise."""
        ...


class AuditableSearchIndex(SearchIndex, Protocol):
    """What reconciliation needs beyond the pipeline's port: bulk reads, an id scan,
    and a repair write.

    `repair` differs from `write` only in the version rule: a document whose
    version *equals* the stored one still replaces it, so content that drifted
    under an unchanged version (a hand edit, a planted field) can be put right,
    while anything the pipeline wrote with a newer version is left alone.
    """

    async def get_many(self, user_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, UserSearchDocument]:
        """The stored documents of `user_ids` (absent ones and tombstones left out)."""
        ...

    def scan_ids(self, page_size: int) -> AsyncIterator[list[uuid.UUID]]:
        """Every stored document's id, in pages of at most `page_size`, ascending."""
        ...

    async def repair(self, docs: Sequence[UserSearchDocument]) -> WriteReport:
        """Upsert `docs` where their version is greater than *or equal to* the stored one."""
        ...
