"""`socialpipe search` and `socialpipe index rebuild` as an operator runs them."""

from __future__ import annotations

import asyncio
import os
import sys

import asyncpg
import orjson

from pipelines.search.handler import SearchHandler, pool_loader
from pipelines.search.postgres import PostgresSearchIndex
from pipelines.search.rebuild import drop_previous_table
from tests.factories import profile_updated
from tests.integration.pipelines.search.profiles import add_user
from tests.settings import make_settings


async def socialpipe(*args: str, **env: str) -> tuple[int, str, str]:
    cfg = make_settings()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from cli.main import main; main()",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "DATABASE_URL": cfg.database_url, "SEARCH_BACKEND": "postgres", **env},
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def index_people(db: asyncpg.Pool) -> None:
    public = await add_user(
        db,
        "Radia Perlman",
        headline="Network protocol designer",
        jobs=(("DEC", "Engineer"),),
        skills=("Spanning Tree",),
    )
    private = await add_user(
        db,
        "Radia Private",
        headline="Hidden headline",
        visibility="private",
        jobs=(("Secret Corp", "Spy"),),
        skills=("Cryptography",),
    )
    await SearchHandler(pool_loader(db), PostgresSearchIndex(db)).handle(
        [profile_updated(user_id=public), profile_updated(user_id=private)]
    )


async def test_search_json_shows_private_profiles_by_name_and_skills_only(
    db: asyncpg.Pool,
) -> None:
    await index_people(db)
    code, out, _ = await socialpipe("search", "radia", "--json")
    assert code == 0
    hits = {h["fullName"]: h for h in orjson.loads(out)}
    assert set(hits) == {"Radia Perlman", "Radia Private"}
    assert hits["Radia Perlman"]["companies"] == ["DEC"]
    assert hits["Radia Private"]["headline"] is None
    assert hits["Radia Private"]["companies"] == []
    assert hits["Radia Private"]["skills"] == ["Cryptography"]


async def test_search_table_filters_by_skill_and_company(db: asyncpg.Pool) -> None:
    await index_people(db)
    code, out, _ = await socialpipe("search", "--skill", "spanning tree", "--company", "dec")
    assert code == 0
    assert "Radia Perlman" in out and "Radia Private" not in out
    assert "Network protocol designer" in out


async def test_index_rebuild_reports_counts_and_keeps_the_old_table(db: asyncpg.Pool) -> None:
    await index_people(db)
    code, out, err = await socialpipe("index", "rebuild", "--batch-size", "1")
    assert code == 0, err
    assert "indexed 2 of 2 profiles" in out and "search_documents_previous" in out
    code, out, _ = await socialpipe("index", "drop-previous")
    assert code == 0 and "search_documents_previous" in out
    assert not await drop_previous_table(db)


async def test_unreachable_database_is_one_sentence_and_exit_1(db: asyncpg.Pool) -> None:
    code, _, err = await socialpipe(
        "search", "x", DATABASE_URL="postgresql://postgres@127.0.0.1:1/none"
    )
    assert code == 1
    assert err.startswith("socialpipe: ") and len(err.strip().splitlines()) == 1
