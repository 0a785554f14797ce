"""What the API needs from beyond its layer, as small protocols.

The layering (docs/architecture.md#packages-and-layering) lets `api/` import only
`store/`, `transforms/` and `contracts/`; the
search index and the notification counters belong to pipelines, so the
composition root (`config/api.py`) adapts them to these ports and injects them.
The profile cache is a port too, so the services' rules around it are tested
over an in-memory one (`tests/api_fakes.py`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from transforms.entities import Profile


@dataclass(frozen=True, slots=True)
class PeopleHit:
    """One person found; `headline` is whatever the index holds (None for private profiles)."""

    user_id: uuid.UUID
    full_name: str
    headline: str | None
    visibility: str


class PeopleSearch(Protocol):
    """People search by free text plus exact skill and company filters."""

    async def search_people(
        self, text: str, skills: Sequence[str], companies: Sequence[str], limit: int
    ) -> Sequence[PeopleHit]:
        """Best matches first, at most `limit`."""
        ...


class UnreadCounters(Protocol):
    """The unread-notification counter the notifications pipeline keeps."""

    async def unread(self, user_id: uuid.UUID) -> int:
        """How many notifications `user_id` has not read."""
        ...

    async def reset(self, user_id: uuid.UUID, unread: int = 0) -> None:
        """Set the counter, e.g. after marking notifications read."""
        ...


@dataclass(frozen=True, slots=True)
class CachedProfile:
    """What the cache answered for one profile.

    `profile` is the whole profile (privacy is applied after, per viewer), None on a
    miss. `ticket` is what `store` needs to cache a profile read after this answer;
    None when nothing may be cached now (a change of that profile is in flight).
    """

    profile: Profile | None
    ticket: bytes | None


class ProfileCache(Protocol):
    """Whole profiles by user id, dropped whenever one changes (docs/profile-cache.md).

    Adapters raise `contracts.errors.PipelineError` kinds; the services' policy
    (`api.profile_cache.FailSafeProfileCache`) decides what a failure means.
    """

    async def read(self, user_id: uuid.UUID) -> CachedProfile:
        """The cached profile, or a miss with the ticket to store a fresh read under."""
        ...

    async def store(self, profile: Profile, ticket: bytes) -> bool:
        """Cache `profile` unless it changed since `ticket` was given; whether it was."""
        ...

    async def begin_change(self, user_id: uuid.UUID) -> None:
        """Drop the entry and cache nothing for the user until `end_change`."""
        ...

    async def end_change(self, user_id: uuid.UUID) -> None:
        """After the change committed (or rolled back): drop the entry again, refuse
        every ticket given before, and cache again."""
        ...
