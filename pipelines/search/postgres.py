"""PostgreSQL full-text backend of the `SearchIndex` port (the embedded default).

Documents live in `search_documents` (migration 0002): a weighted tsvector
(name A, headline and titles B, companies, skills and schools C, location D)
with a GIN index, trigram matching on the name for typos, and normalised
skill/company arrays for exact filters.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any, Final

import asyncpg

from contracts.failures import POSTGRES, boundary
from pipelines.search.bulk import chunked
from pipelines.search.ports import SearchHit, SearchQuery, Tombstone, WriteReport
from transforms.search_document import UserSearchDocument, normalise

TABLE: Final = "search_documents"
SEP: Final = "\x1f"  # never in a value: the transform collapses all whitespace, \x1f included


def _upsert_sql(table: str, *, repair: bool = False) -> str:
    # The CTE reads the prior stamps in the same snapshot as the upsert, so the
    # report can tell "older than what is stored" from "same content". A repair
    # (reconciliation) also replaces an equal version, whatever the stored hash says.
    newer = "excluded.version >= d.version" if repair else "excluded.version > d.version"
    changed = (
        "true" if repair else "(d.deleted OR d.content_hash IS DISTINCT FROM excluded.content_hash)"
    )
    older = "i.version < p.version" if repair else "i.version <= p.version"
    return f"""
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::int8[], $3::bytea[], $4::text[], $5::text[], $6::text[],
                         $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
                         $13::text[], $14::text[])
           AS t(user_id, version, content_hash, full_name, headline, location, visibility,
                companies, job_titles, schools, skills, companies_norm, skills_norm, name_norm)
), prior AS (
    SELECT d.user_id, d.version FROM {table} d JOIN input USING (user_id)
), up AS (
    INSERT INTO {table} AS d (user_id, version, content_hash, deleted, full_name, headline,
                              location, visibility, companies, job_titles, schools, skills,
                              companies_norm, skills_norm, name_norm, indexed_at)
    SELECT user_id, version, content_hash, false, full_name, headline, location, visibility,
           string_to_array(companies, E'\\x1f'), string_to_array(job_titles, E'\\x1f'),
           string_to_array(schools, E'\\x1f'), string_to_array(skills, E'\\x1f'),
           string_to_array(companies_norm, E'\\x1f'), string_to_array(skills_norm, E'\\x1f'),
           name_norm, clock_timestamp()
      FROM input
    ON CONFLICT (user_id) DO UPDATE SET
        version = excluded.version, content_hash = excluded.content_hash, deleted = false,
        full_name = excluded.full_name, headline = excluded.headline,
        location = excluded.location, visibility = excluded.visibility,
        companies = excluded.companies, job_titles = excluded.job_titles,
        schools = excluded.schools, skills = excluded.skills,
        companies_norm = excluded.companies_norm, skills_norm = excluded.skills_norm,
        name_norm = excluded.name_norm, indexed_at = excluded.indexed_at
    WHERE {newer}
      AND {changed}
    RETURNING 1
)
SELECT (SELECT count(*) FROM up) AS written,
       (SELECT count(*) FROM input i JOIN prior p USING (user_id)
         WHERE {older}) AS stale
"""


def _delete_sql(table: str) -> str:
    # A tombstone keeps the version at which the user disappeared, so a worker
    # still holding an older read cannot resurrect the document.
    return f"""
WITH up AS (
    INSERT INTO {table} AS d (user_id, version, deleted, indexed_at)
    SELECT u, v, true, clock_timestamp() FROM unnest($1::uuid[], $2::int8[]) AS t(u, v)
    ON CONFLICT (user_id) DO UPDATE SET
        version = excluded.version, deleted = true, content_hash = NULL, full_name = NULL,
        headline = NULL, location = NULL, visibility = NULL, companies = '{{}}',
        job_titles = '{{}}', schools = '{{}}', skills = '{{}}', companies_norm = '{{}}',
        skills_norm = '{{}}', name_norm = '', indexed_at = excluded.indexed_at
    WHERE excluded.version > d.version AND NOT d.deleted
    RETURNING xmax = 0 AS inserted
)
SELECT count(*) FILTER (WHERE NOT inserted) AS deleted FROM up
"""


def _search_sql(table: str, *, with_text: bool) -> str:
    text_match = "(search_vector @@ q.tsq OR q.words <% name_norm)" if with_text else "true"
    rank = "ts_rank(search_vector, q.tsq, 1) + word_similarity(q.words, name_norm)"
    if not with_text:
        rank = "0"
    return f"""
SELECT user_id, full_name, headline, companies, skills, visibility, ({rank})::float8 AS score
  FROM {table}, (SELECT to_tsquery('simple', $1) AS tsq, $2::text AS words) q
 WHERE NOT deleted AND {text_match}
   AND skills_norm @> $3::text[] AND companies_norm @> $4::text[]
 ORDER BY score DESC, full_name, user_id
 LIMIT $5
"""


def tsquery_terms(text: str) -> str:
    """Every word as a prefix term, all required: `ali eng` → `ali:* & eng:*`."""
    words = re.findall(r"\w+", normalise(text))
    return " & ".join(f"{w}:*" for w in words)


def _columns(docs: Sequence[UserSearchDocument]) -> list[list[Any]]:
    return [
        [d.user_id for d in docs],
        [d.version for d in docs],
        [d.content_hash for d in docs],
        [d.full_name for d in docs],
        [d.headline for d in docs],
        [d.location for d in docs],
        [d.visibility for d in docs],
        [SEP.join(d.companies) for d in docs],
        [SEP.join(d.job_titles) for d in docs],
        [SEP.join(d.schools) for d in docs],
        [SEP.join(d.skills) for d in docs],
        [SEP.join(d.companies_norm) for d in docs],
        [SEP.join(d.skills_norm) for d in docs],
        [normalise(d.full_name) for d in docs],
    ]


def _doc_size(doc: UserSearchDocument) -> int:
    parts = (doc.full_name, doc.headline or "", doc.location or "")
    lists = (*doc.companies, *doc.job_titles, *doc.schools, *doc.skills)
    return 64 + sum(len(p) for p in parts) + sum(len(v) + 1 for v in lists)


class PostgresSearchIndex:
    """`SearchIndex` over a PostgreSQL table (by default `search_documents`)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        table: str = TABLE,
        max_count: int = 2000,
        max_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        self.pool = pool
        self.table = table
        self.max_count = max_count
        self.max_bytes = max_bytes

    async def write(
        self, docs: Sequence[UserSearchDocument], tombstones: Sequence[Tombstone] = ()
    ) -> WriteReport:
        report = WriteReport()
        for chunk in chunked(
            docs, max_count=self.max_count, max_bytes=self.max_bytes, size_of=_doc_size
        ):
            report.add(await self._retry(self._upsert, chunk))
        for start in range(0, len(tombstones), self.max_count):
            report.add(await self._retry(self._delete, tombstones[start : start + self.max_count]))
        return report

    async def _retry(self, op: Any, chunk: Sequence[Any]) -> WriteReport:
        # One call: the runtime's invoker is the one layer that retries.
        with boundary(f"Writing {len(chunk)} search documents to PostgreSQL", dependency=POSTGRES):
            result: WriteReport = await op(chunk)
        return result

    async def _upsert(
        self, docs: Sequence[UserSearchDocument], *, repair: bool = False
    ) -> WriteReport:
        row = await self.pool.fetchrow(_upsert_sql(self.table, repair=repair), *_columns(docs))
        assert row is not None
        written, stale = int(row["written"]), int(row["stale"])
        return WriteReport(written=written, stale=stale, unchanged=len(docs) - written - stale)

    async def _delete(self, tombstones: Sequence[Tombstone]) -> WriteReport:
        deleted = await self.pool.fetchval(
            _delete_sql(self.table),
            [t.user_id for t in tombstones],
            [t.version for t in tombstones],
        )
        return WriteReport(deleted=int(deleted))

    async def get(self, user_id: uuid.UUID) -> UserSearchDocument | None:
        row = await self.pool.fetchrow(
            f"SELECT * FROM {self.table} WHERE user_id = $1 AND NOT deleted", user_id
        )
        return None if row is None else _document(row)

    async def get_many(self, user_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, UserSearchDocument]:
        rows = await self.pool.fetch(
            f"SELECT * FROM {self.table} WHERE user_id = ANY($1::uuid[]) AND NOT deleted",
            list(user_ids),
        )
        return {r["user_id"]: _document(r) for r in rows}

    async def scan_ids(self, page_size: int) -> AsyncIterator[list[uuid.UUID]]:
        after = uuid.UUID(int=0)
        while True:
            rows = await self.pool.fetch(
                f"SELECT user_id FROM {self.table} WHERE user_id > $1 AND NOT deleted"
                " ORDER BY user_id LIMIT $2",
                after,
                page_size,
            )
            if not rows:
                return
            page = [r["user_id"] for r in rows]
            yield page
            after = page[-1]

    async def repair(self, docs: Sequence[UserSearchDocument]) -> WriteReport:
        report = WriteReport()
        for chunk in chunked(
            docs, max_count=self.max_count, max_bytes=self.max_bytes, size_of=_doc_size
        ):
            report.add(await self._retry(functools.partial(self._upsert, repair=True), chunk))
        return report

    async def search(self, query: SearchQuery) -> list[SearchHit]:
        terms = tsquery_terms(query.text)
        rows = await self.pool.fetch(
            _search_sql(self.table, with_text=bool(terms)),
            terms,
            normalise(query.text),
            [normalise(s) for s in query.skills],
            [normalise(c) for c in query.companies],
            query.limit,
        )
        return [_hit(r) for r in rows]

    async def ping(self) -> None:
        await self.pool.fetchval(f"SELECT 1 FROM {self.table} LIMIT 1")


def _document(row: asyncpg.Record) -> UserSearchDocument:
    return UserSearchDocument(
        user_id=row["user_id"],
        full_name=row["full_name"],
        visibility=row["visibility"],
        version=row["version"],
        headline=row["headline"],
        location=row["location"],
        companies=tuple(row["companies"]),
        job_titles=tuple(row["job_titles"]),
        schools=tuple(row["schools"]),
        skills=tuple(row["skills"]),
        content_hash=bytes(row["content_hash"] or b""),
    )


def _hit(row: asyncpg.Record) -> SearchHit:
    return SearchHit(
        user_id=row["user_id"],
        full_name=row["full_name"],
        headline=row["headline"],
        companies=tuple(row["companies"]),
        skills=tuple(row["skills"]),
        visibility=row["visibility"],
        score=float(row["score"]),
    )
