"""`socialpipe reconcile search|feeds|notifications` as an operator or a CronJob runs it."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

import asyncpg
import orjson
import redis.asyncio as redis_asyncio

from contracts.keys import feed_key, unread_notifications_key
from pipelines.search.handler import SearchHandler, pool_loader
from pipelines.search.postgres import PostgresSearchIndex
from tests.factories import profile_updated
from tests.integration.pipelines.feed.helpers import add_users, connect, feed
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
        env={
            **os.environ,
            "DATABASE_URL": cfg.database_url,
            "REDIS_URL": cfg.redis_url,
            "SEARCH_BACKEND": "postgres",
            **env,
        },
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_search_dry_run_reports_then_repair_writes_json_then_nothing_left(
    db: asyncpg.Pool, tmp_path: Path
) -> None:
    # GIVEN three indexed people, one of whose documents was lost, and one orphan
    people = [await add_user(db, f"Person {i}") for i in range(3)]
    await SearchHandler(pool_loader(db), PostgresSearchIndex(db)).handle(
        [profile_updated(user_id=u) for u in people]
    )
    await db.execute("DELETE FROM search_documents WHERE user_id = $1", people[0])
    await db.execute(
        "INSERT INTO search_documents (user_id, version, full_name, visibility)"
        " VALUES ($1, 1, 'Ghost', 'public')",
        uuid.uuid4(),
    )
    # WHEN a dry run, then a repair, then another run are made
    dry = await socialpipe("reconcile", "search", "--dry-run", "--json", "-")
    report_file = tmp_path / "report.json"
    code, out, err = await socialpipe(
        "reconcile", "search", "--batch-size", "2", "--json", str(report_file)
    )
    again = await socialpipe("reconcile", "search", "--json", "-")
    # THEN the dry run names the drift and exits 0
    assert dry[0] == 0 and "drift found" in dry[2]
    dry_json = orjson.loads(dry[1])
    assert (dry_json["missing"], dry_json["orphaned"], dry_json["repaired"]) == (1, 1, 0)
    # AND the repair prints a table, writes the JSON report and exits 0
    assert code == 0, err
    assert "missing" in out and "users/s" in out
    written = orjson.loads(report_file.read_text())
    assert written["repaired"] == 2 and written["consistent"] and written["checked"] == 3
    assert {"durationSeconds", "usersPerSecond", "stale", "privacy"} <= set(written)
    # AND the next run finds nothing
    assert again[0] == 0 and orjson.loads(again[1])["repaired"] == 0


async def test_feeds_rebuild_for_one_user(
    db: asyncpg.Pool, redis_client: redis_asyncio.Redis
) -> None:
    # GIVEN a user connected to an author of two posts, with an empty feed
    reader, author = await add_users(db, 2)
    await connect(db, author, [reader])
    first = await db.fetchval(
        "INSERT INTO posts (author_id, created_at) VALUES ($1, now() - interval '1 hour')"
        " RETURNING id",
        author,
    )
    second = await db.fetchval("INSERT INTO posts (author_id) VALUES ($1) RETURNING id", author)
    await redis_client.delete(feed_key(reader))
    # WHEN that user's feed is rebuilt
    code, _, err = await socialpipe("reconcile", "feeds", "--user-id", str(reader), "--rebuild")
    # THEN it holds both posts, newest first
    assert code == 0, err
    assert await feed(redis_client, reader) == [str(second), str(first)]


async def test_feeds_dry_run_prints_each_drift_count_then_repair_leaves_none(
    db: asyncpg.Pool, redis_client: redis_asyncio.Redis
) -> None:
    # GIVEN a reader of two posts whose feed holds them in processing order, one of
    # them twice, plus an id of no post
    reader, author = await add_users(db, 2)
    await connect(db, author, [reader])
    first = await db.fetchval(
        "INSERT INTO posts (author_id, created_at) VALUES ($1, now() - interval '1 hour')"
        " RETURNING id",
        author,
    )
    second = await db.fetchval("INSERT INTO posts (author_id) VALUES ($1) RETURNING id", author)
    await redis_client.rpush(feed_key(reader), str(uuid.uuid4()), str(first), str(second))
    await redis_client.rpush(feed_key(reader), str(first))
    # WHEN a dry run, then a repair, then a dry run are made
    dry = await socialpipe("reconcile", "feeds", "--dry-run")
    fixed = await socialpipe("reconcile", "feeds", "--json", "-")
    again = await socialpipe("reconcile", "feeds", "--dry-run", "--json", "-")
    # THEN the dry run's table names each count, the order being no drift
    assert dry[0] == 0 and "drift found" in dry[2]
    table = {line.split()[1]: line.split()[-2] for line in dry[1].splitlines() if "│" in line[:3]}
    assert {k: table.get(k) for k in ("checked", "missing", "extra", "duplicate", "phantom")} == {
        "checked": "2",
        "missing": "0",
        "extra": "0",
        "duplicate": "1",
        "phantom": "1",
    }
    # AND the repair fixes both, the feed newest first, and the mark for the workers is set
    assert fixed[0] == 0, fixed[2]
    assert orjson.loads(fixed[1])["repaired"] == 2
    assert await feed(redis_client, reader) == [str(second), str(first)]
    assert await redis_client.get("fanout:careful-until") is not None
    assert again[0] == 0 and orjson.loads(again[1])["drift"] == 0


async def test_notifications_reconcile_writes_missing_rows_and_counters(
    db: asyncpg.Pool, redis_client: redis_asyncio.Redis
) -> None:
    # GIVEN a pending connection request whose event was never handled
    requester, addressee = await add_users(db, 2)
    await db.execute(
        "INSERT INTO connections (requester_id, addressee_id) VALUES ($1, $2)",
        requester,
        addressee,
    )
    # WHEN a dry run, a repair and another run are made
    dry = await socialpipe("reconcile", "notifications", "--dry-run", "--json", "-")
    fixed = await socialpipe("reconcile", "notifications", "--batch-size", "1")
    again = await socialpipe("reconcile", "notifications", "--json", "-")
    # THEN the dry run reports one missing row and one wrong counter
    assert dry[0] == 0
    assert (orjson.loads(dry[1])["missing"], orjson.loads(dry[1])["counters"]) == (1, 1)
    # AND the repair prints its table, writes the row and sets the counter
    assert fixed[0] == 0, fixed[2]
    assert "missing rows" in fixed[1] and "counters fixed" in fixed[1]
    assert await db.fetchval("SELECT count(*) FROM notifications WHERE user_id = $1", addressee)
    assert await redis_client.get(unread_notifications_key(addressee)) == b"1"
    assert again[0] == 0 and orjson.loads(again[1])["repaired"] == 0


async def test_bad_options_are_usage_errors() -> None:
    too_big = await socialpipe("reconcile", "search", "--batch-size", "5001")
    bad_user = await socialpipe("reconcile", "feeds", "--user-id", "not-a-uuid")
    assert too_big[0] == 2 and "5000" in too_big[2]
    assert bad_user[0] == 2 and "UUID" in bad_user[2]
