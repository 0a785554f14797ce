"""Profile aggregation for search: the four profile tables of a batch in one query."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import asyncpg

from store.replica import ReadRouter


@dataclass(frozen=True, slots=True)
class ProfileRow:
    """One user's profile with its child rows, as the search transform reads it."""

    user_id: uuid.UUID
    full_name: str | None
    headline: str | None
    location: str | None
    visibility: str | None
    version: int | None
    companies: Sequence[str]
    job_titles: Sequence[str]
    schools: Sequence[str]
    skills: Sequence[str]


@dataclass(frozen=True, slots=True)
class ProfileBatch:
    """Profiles found, and the users that have none (deleted) with a tombstone version."""

    profiles: list[ProfileRow]
    gone: dict[uuid.UUID, int]


# Child rows are folded with LATERAL array_agg so the batch costs one round trip
# and one plan, whatever its size. Current jobs come first. A user without a
# profile takes a fresh number from the profile version sequence: it is larger
# than every version the user ever had, so its tombstone outranks any older read.
_SELECT = """
SELECT ids.id AS user_id, p.full_name, p.headline, p.location, p.visibility, p.version,
       coalesce(w.companies, '{}') AS companies, coalesce(w.titles, '{}') AS job_titles,
       coalesce(e.schools, '{}') AS schools, coalesce(s.skills, '{}') AS skills,
       CASE WHEN p.user_id IS NULL THEN {gone} END AS gone_version
  FROM unnest($1::uuid[]) AS ids(id)
  LEFT JOIN user_profiles p ON p.user_id = ids.id
  LEFT JOIN LATERAL (
       SELECT array_agg(company_name ORDER BY end_date IS NULL DESC, start_date DESC NULLS LAST, id)
                  AS companies,
              array_agg(title ORDER BY end_date IS NULL DESC, start_date DESC NULLS LAST, id)
                  AS titles
         FROM work_experiences WHERE user_id = p.user_id) w ON true
  LEFT JOIN LATERAL (
       SELECT array_agg(school_name ORDER BY start_date DESC NULLS LAST, id) AS schools
         FROM educations WHERE user_id = p.user_id) e ON true
  LEFT JOIN LATERAL (
       SELECT array_agg(skill_name ORDER BY id) AS skills
         FROM skills WHERE user_id = p.user_id) s ON true
"""

_WITH_TOMBSTONES = _SELECT.replace("{gone}", "nextval('profile_version_seq')")
# A hot standby cannot advance a sequence: a replica only says who is absent (0).
_READ_ONLY = _SELECT.replace("{gone}", "0")

_KEYSET = """
SELECT user_id FROM user_profiles WHERE user_id > $1 ORDER BY user_id LIMIT $2
"""


async def load_profiles(
    conn: asyncpg.Pool | asyncpg.Connection,
    ids: Sequence[uuid.UUID],
    *,
    tombstones: bool = True,
) -> ProfileBatch:
    """Aggregate the profiles of `ids` in one query (no per-user round trips).

    `user_profiles.user_id` references `users` with ON DELETE CASCADE, so a
    missing profile row covers both a deleted user and a user without profile.
    `tombstones=False` reads without writing (a replica): absent users get 0.
    """
    rows = await conn.fetch(_WITH_TOMBSTONES if tombstones else _READ_ONLY, list(ids))
    profiles: list[ProfileRow] = []
    gone: dict[uuid.UUID, int] = {}
    for r in rows:
        if r["gone_version"] is not None:
            gone[r["user_id"]] = r["gone_version"]
            continue
        profiles.append(
            ProfileRow(
                user_id=r["user_id"],
                full_name=r["full_name"],
                headline=r["headline"],
                location=r["location"],
                visibility=r["visibility"],
                version=r["version"],
                companies=r["companies"],
                job_titles=r["job_titles"],
                schools=r["schools"],
                skills=r["skills"],
            )
        )
    return ProfileBatch(profiles, gone)


async def profile_ids_after(
    conn: asyncpg.Pool | asyncpg.Connection, after: uuid.UUID | None, limit: int
) -> list[uuid.UUID]:
    """The next keyset page of user ids that have a profile, in id order."""
    rows = await conn.fetch(_KEYSET, after or uuid.UUID(int=0), limit)
    return [r["user_id"] for r in rows]


async def count_profiles(conn: asyncpg.Pool | asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM user_profiles"))


_TOMBSTONE_VERSIONS = """
SELECT id, nextval('profile_version_seq') AS version FROM unnest($1::uuid[]) AS ids(id)
"""


async def tombstone_versions(
    conn: asyncpg.Pool | asyncpg.Connection, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """Fresh versions for deleted users, larger than any version they had (primary only)."""
    rows = await conn.fetch(_TOMBSTONE_VERSIONS, list(ids))
    return {r["id"]: r["version"] for r in rows}


class RoutedProfileLoader:
    """Loads profiles from a replica, from the primary what the replica lacks or has too old.

    Called with the versions the events name (`min_versions`): a profile the
    replica does not have, or has below that version, is not replayed yet, so
    the router waits for the replica, then reads the primary. A user the primary
    lacks too is deleted: its tombstone version comes from the primary's sequence.
    """

    def __init__(self, router: ReadRouter[asyncpg.Pool]) -> None:
        self._router = router

    async def __call__(
        self, ids: Sequence[uuid.UUID], min_versions: Mapping[uuid.UUID, int] | None = None
    ) -> ProfileBatch:
        wanted = min_versions or {}

        def fresh(user_id: uuid.UUID, row: ProfileRow | None) -> bool:
            return row is not None and (row.version or 0) >= wanted.get(user_id, 0)

        found = await self._router.read(ids, _profiles_by_id, fresh)
        absent = [i for i in ids if i not in found]
        gone = await tombstone_versions(self._router.primary, absent) if absent else {}
        return ProfileBatch([found[i] for i in ids if i in found], gone)


async def _profiles_by_id(pool: asyncpg.Pool, ids: list[uuid.UUID]) -> dict[uuid.UUID, ProfileRow]:
    batch = await load_profiles(pool, ids, tombstones=False)
    return {p.user_id: p for p in batch.profiles}
