"""Reversible SQL migrations: `NNNN_name.up.sql` / `NNNN_name.down.sql` beside this file.

Each migration runs in its own transaction together with its bookkeeping row,
so a failed migration leaves the schema as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import asyncpg

from store.db import ensure_database

_TABLE = "schema_migrations"


@dataclass(frozen=True)
class Migration:
    revision: int
    name: str
    up: str
    down: str


class MigrationError(Exception):
    """A migration could not be applied or reverted; the message says which."""


def available() -> list[Migration]:
    """All migrations shipped with the package, ordered by revision."""
    folder = resources.files("store") / "migrations"
    found: dict[int, dict[str, str]] = {}
    for entry in folder.iterdir():
        stem, _, kind = entry.name.removesuffix(".sql").rpartition(".")
        if kind not in ("up", "down") or not entry.name.endswith(".sql"):
            continue
        rev, _, name = stem.partition("_")
        found.setdefault(int(rev), {"name": name})[kind] = entry.read_text()
    return [
        Migration(rev, parts["name"], parts["up"], parts.get("down", ""))
        for rev, parts in sorted(found.items())
    ]


async def _applied(conn: asyncpg.Connection) -> set[int]:
    await conn.execute(
        f"CREATE TABLE IF NOT EXISTS {_TABLE} (revision integer PRIMARY KEY, name text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )
    rows = await conn.fetch(f"SELECT revision FROM {_TABLE}")
    return {r["revision"] for r in rows}


async def upgrade(url: str) -> list[Migration]:
    """Create the database if needed and apply every pending migration. Returns those applied."""
    await ensure_database(url)
    conn = await asyncpg.connect(url)
    try:
        # One migrator at a time, even with several pods starting together.
        await conn.execute("SELECT pg_advisory_lock(7405001)")
        done = await _applied(conn)
        applied = []
        for m in available():
            if m.revision in done:
                continue
            async with conn.transaction():
                await _run(conn, m, m.up, "apply")
                await conn.execute(f"INSERT INTO {_TABLE} VALUES ($1, $2)", m.revision, m.name)
            applied.append(m)
        return applied
    finally:
        await conn.close()


async def downgrade(url: str, to: int = 0) -> list[Migration]:
    """Revert applied migrations above revision `to`, newest first. Returns those reverted."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SELECT pg_advisory_lock(7405001)")
        done = await _applied(conn)
        reverted = []
        for m in reversed(available()):
            if m.revision <= to or m.revision not in done:
                continue
            async with conn.transaction():
                await _run(conn, m, m.down, "revert")
                await conn.execute(f"DELETE FROM {_TABLE} WHERE revision = $1", m.revision)
            reverted.append(m)
        return reverted
    finally:
        await conn.close()


async def _run(conn: asyncpg.Connection, m: Migration, sql: str, verb: str) -> None:
    try:
        await conn.execute(sql)
    except asyncpg.PostgresError as exc:
        raise MigrationError(
            f"Could not {verb} migration {m.revision:04d}_{m.name}: {exc}"
        ) from None
