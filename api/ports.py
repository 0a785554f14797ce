"""What the API needs from beyond its layer, as small protocols.

The layering (docs/architecture.md#packages-and-layering) lets `api/` import only
`store/`, `transforms/` and `contracts/`; the
search index and the notification counters belong to pipelines, so the
composition root (`config/api.py`) adapts them to these ports and injects them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


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
