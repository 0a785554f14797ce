"""The search pipeline on real PostgreSQL: handler → aggregation → transform → index."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg
import pytest

from contracts.outcomes import ACK, DeadLetter
from pipelines.search.handler import SearchHandler, pool_loader
from pipelines.search.ports import SearchQuery, Tombstone, WriteReport
from pipelines.search.postgres import PostgresSearchIndex
from store.profiles import load_profiles
from tests.factories import profile_updated
from tests.integration.pipelines.search.profiles import add_user
from transforms.search_document import UserSearchDocument, to_search_document


class CountingIndex(PostgresSearchIndex):
    """The real backend, remembering what each write call carried."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__(pool)
        self.written_docs: list[list[UserSearchDocument]] = []

    async def write(
        self, docs: Sequence[UserSearchDocument], tombstones: Sequence[Tombstone] = ()
    ) -> WriteReport:
        self.written_docs.append(list(docs))
        return await super().write(docs, tombstones)


@pytest.fixture
def index(db: asyncpg.Pool) -> CountingIndex:
    return CountingIndex(db)


@pytest.fixture
def handler(db: asyncpg.Pool, index: CountingIndex) -> SearchHandler:
    return SearchHandler(pool_loader(db), index)


async def names(
    index: PostgresSearchIndex,
    text: str = "",
    skills: tuple[str, ...] = (),
    companies: tuple[str, ...] = (),
) -> set[str]:
    hits = await index.search(SearchQuery(text=text, skills=skills, companies=companies))
    return {h.full_name for h in hits}


async def test_updated_profile_is_searchable_by_name_company_skill_and_headline(
    db: asyncpg.Pool, handler: SearchHandler, index: CountingIndex
) -> None:
    # GIVEN a public profile with a job and skills
    uid = await add_user(
        db,
        "Margaret Hamilton",
        headline="Flight software lead",
        jobs=(("MIT Instrumentation Lab", "Director"),),
        skills=("Apollo Guidance", "Fortran"),
    )
    await add_user(db, "Someone Else", headline="Baker", skills=("Bread",))
    # WHEN its update event is handled
    outcomes = await handler.handle([profile_updated(user_id=uid)])
    # THEN it is found by name (also by prefix and with a typo), company, skill and headline word
    assert outcomes == [ACK]
    assert await names(index, "margaret") == {"Margaret Hamilton"}
    assert await names(index, "marg hamil") == {"Margaret Hamilton"}
    assert await names(index, "Margret Hamilton") == {"Margaret Hamilton"}
    assert await names(index, "instrumentation") == {"Margaret Hamilton"}
    assert await names(index, "fortran") == {"Margaret Hamilton"}
    assert await names(index, "software") == {"Margaret Hamilton"}
    assert await names(index, "", skills=("apollo guidance",)) == {"Margaret Hamilton"}
    assert await names(index, "", companies=("MIT  instrumentation lab",)) == {"Margaret Hamilton"}
    assert await names(index, "", skills=("Bread",)) == set()


async def test_name_outranks_headline_match(
    db: asyncpg.Pool, handler: SearchHandler, index: PostgresSearchIndex
) -> None:
    a = await add_user(db, "Rust Cohle", headline="Detective")
    b = await add_user(db, "Marty Hart", headline="Rust enthusiast")
    await handler.handle([profile_updated(user_id=a), profile_updated(user_id=b)])
    hits = await index.search(SearchQuery(text="rust"))
    assert [h.full_name for h in hits] == ["Rust Cohle", "Marty Hart"]


async def test_private_profile_is_found_only_by_name_and_skills(
    db: asyncpg.Pool, handler: SearchHandler, index: PostgresSearchIndex
) -> None:
    # GIVEN a private profile with headline, location and a job
    uid = await add_user(
        db,
        "Hedy Lamarr",
        headline="Inventor",
        location="Vienna",
        visibility="private",
        jobs=(("MGM", "Actress"),),
        skills=("Frequency hopping",),
    )
    # WHEN it is indexed
    await handler.handle([profile_updated(user_id=uid)])
    # THEN headline, location and company do not find it; name and skill do
    assert await names(index, "inventor") == set()
    assert await names(index, "vienna") == set()
    assert await names(index, "mgm") == set()
    assert await names(index, "", companies=("MGM",)) == set()
    assert await names(index, "hedy") == {"Hedy Lamarr"}
    assert await names(index, "hopping") == {"Hedy Lamarr"}
    doc = await index.get(uid)
    assert doc is not None
    assert (doc.headline, doc.location, doc.companies, doc.job_titles) == (None, None, (), ())


async def test_switching_to_private_removes_restricted_fields_at_once(
    db: asyncpg.Pool, handler: SearchHandler, index: PostgresSearchIndex
) -> None:
    uid = await add_user(db, "Alan Turing", headline="Codebreaker", jobs=(("GCHQ", "Analyst"),))
    await handler.handle([profile_updated(user_id=uid)])
    assert await names(index, "codebreaker") == {"Alan Turing"}
    # WHEN the profile turns private and its update is handled
    await db.execute("UPDATE user_profiles SET visibility = 'private' WHERE user_id = $1", uid)
    await handler.handle([profile_updated(user_id=uid)])
    # THEN the headline and company no longer match and are gone from the row
    assert await names(index, "codebreaker") == set()
    assert await names(index, "gchq") == set()
    row = await db.fetchrow(
        "SELECT headline, location, companies, job_titles FROM search_documents WHERE user_id = $1",
        uid,
    )
    assert row is not None and tuple(row) == (None, None, [], [])


async def test_older_document_written_last_does_not_regress(
    db: asyncpg.Pool, handler: SearchHandler, index: PostgresSearchIndex
) -> None:
    # GIVEN a document built from an old read, and the profile changed since
    uid = await add_user(db, "Katherine Johnson", headline="Mathematician")
    old = to_search_document((await load_profiles(db, [uid])).profiles[0])
    await db.execute("UPDATE user_profiles SET headline = 'NASA' WHERE user_id = $1", uid)
    await handler.handle([profile_updated(user_id=uid)])
    # WHEN the old document arrives last (an older event processed late)
    report = await index.write([old])
    # THEN it is counted stale and the newer document stays
    assert report.stale == 1 and report.written == 0
    doc = await index.get(uid)
    assert doc is not None and doc.headline == "NASA"


async def test_hundred_updates_of_one_user_in_one_batch_are_one_write(
    db: asyncpg.Pool, handler: SearchHandler, index: CountingIndex
) -> None:
    uid = await add_user(db, "Barbara Liskov")
    outcomes = await handler.handle([profile_updated(user_id=uid) for _ in range(100)])
    assert outcomes == [ACK] * 100
    assert [[d.user_id for d in docs] for docs in index.written_docs] == [[uid]]
    assert handler.last_result is not None and handler.last_result.report.written == 1


async def test_unchanged_document_is_not_rewritten(
    db: asyncpg.Pool, handler: SearchHandler
) -> None:
    uid = await add_user(db, "Frances Allen", skills=("Optimisation",))
    await handler.handle([profile_updated(user_id=uid)])
    before = await db.fetchval("SELECT xmin::text FROM search_documents WHERE user_id = $1", uid)
    # WHEN the version grows but nothing searchable changed
    await db.execute("UPDATE user_profiles SET updated_at = now() WHERE user_id = $1", uid)
    await handler.handle([profile_updated(user_id=uid)])
    # THEN the row was not rewritten
    after = await db.fetchval("SELECT xmin::text FROM search_documents WHERE user_id = $1", uid)
    assert before == after
    assert handler.last_result is not None and handler.last_result.report.unchanged == 1


async def test_deleted_user_has_no_document_and_a_late_old_read_cannot_revive_it(
    db: asyncpg.Pool, handler: SearchHandler, index: PostgresSearchIndex
) -> None:
    uid = await add_user(db, "Edsger Dijkstra")
    await handler.handle([profile_updated(user_id=uid)])
    old = to_search_document((await load_profiles(db, [uid])).profiles[0])
    # WHEN the user is deleted and its event handled
    await db.execute("DELETE FROM users WHERE id = $1", uid)
    assert await handler.handle([profile_updated(user_id=uid)]) == [ACK]
    # THEN there is no document, and a write from an older read is stale
    assert await index.get(uid) is None
    assert await names(index, "dijkstra") == set()
    assert (await index.write([old])).stale == 1
    assert await index.get(uid) is None


async def test_document_missing_a_required_field_dead_letters_only_that_user(
    db: asyncpg.Pool, handler: SearchHandler, index: PostgresSearchIndex
) -> None:
    # GIVEN a batch where one profile has no name
    good = await add_user(db, "John Backus")
    bad = await add_user(db, "   ")
    events = [
        profile_updated(user_id=bad),
        profile_updated(user_id=good),
        profile_updated(user_id=bad),
    ]
    # WHEN the batch is handled
    outcomes = await handler.handle(events)
    # THEN the nameless user's events are dead-lettered with the reason; the other lands
    assert outcomes[1] == ACK
    assert isinstance(outcomes[0], DeadLetter) and outcomes[0] == outcomes[2]
    assert outcomes[0].error_type == "InvalidDocument"
    assert "fullName" in outcomes[0].reason
    assert await index.get(good) is not None
    assert await index.get(bad) is None


async def test_aggregation_reads_a_whole_batch_with_child_rows(db: asyncpg.Pool) -> None:
    a = await add_user(
        db, "A", jobs=(("X Corp", "CTO"), ("Y Inc", "Dev")), skills=("Go",), schools=("ETH",)
    )
    b = await add_user(db, "B")
    missing = uuid.uuid4()
    batch = await load_profiles(db, [a, b, missing])
    by_id = {p.user_id: p for p in batch.profiles}
    assert set(by_id) == {a, b}
    assert sorted(by_id[a].companies) == ["X Corp", "Y Inc"]
    assert list(by_id[a].schools) == ["ETH"] and list(by_id[b].skills) == []
    assert set(batch.gone) == {missing}
    assert batch.gone[missing] > max(p.version or 0 for p in batch.profiles)
