"""A private PostgreSQL primary and a streaming replica of it, on loopback ports.

The primary is an `outage.servers.StoppablePostgres` made ready for streaming
replication; the replica is a `pg_basebackup -R` copy of it, started on a port
of its own, run by the same (non-root) user, replaying the primary's WAL.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg

from tests.outage.servers import LOOPBACK, ServerError, StoppablePostgres

CATCH_UP_SECONDS = 15.0


class ReplicationPrimary(StoppablePostgres):
    """A primary whose WAL a replica can stream (wal_level, senders, a replication hba line)."""

    def start(self) -> None:
        if not (self.data / "PG_VERSION").exists():
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                      "-E", "UTF8", "--locale=C", "--no-sync")  # fmt: skip
            self._allow_replication()
        super().start()

    def _allow_replication(self) -> None:
        # initdb's defaults already allow streaming from loopback; saying so here
        # keeps the tests independent of those defaults.
        hba = self.data / "pg_hba.conf"
        line = f"host replication all {LOOPBACK}/32 trust"
        if line.split() not in [entry.split() for entry in hba.read_text().splitlines()]:
            with hba.open("a") as out:
                out.write(line + "\n")
        with (self.data / "postgresql.auto.conf").open("a") as out:
            out.write("wal_level = 'replica'\nmax_wal_senders = 4\n")


class StreamingReplica(StoppablePostgres):
    """A hot standby of `primary`, created by `pg_basebackup -R` on its first start."""

    def __init__(self, primary: StoppablePostgres) -> None:
        super().__init__(primary.bin_dir)
        self.primary = primary

    def start(self) -> None:
        if not (self.data / "PG_VERSION").exists():
            self._run("pg_basebackup", "-R", "-D", str(self.data), "-h", LOOPBACK,
                      "-p", str(self.primary.port), "-U", "postgres",
                      "-X", "stream", "--checkpoint=fast", "--no-sync")  # fmt: skip
            self._tune(self.data / "postgresql.auto.conf")
        super().start()

    @staticmethod
    def _tune(conf: Path) -> None:
        # A replayed TRUNCATE waits for standby queries it conflicts with; between
        # tests nothing should make it wait the default 30 s.
        with conf.open("a") as out:
            out.write("max_standby_streaming_delay = '1s'\nhot_standby = on\n")


async def wait_for_replay(
    primary: asyncpg.Pool, replica: asyncpg.Pool, within: float = CATCH_UP_SECONDS
) -> float:
    """Wait until the replica has replayed everything the primary wrote; returns the seconds."""
    started = time.monotonic()
    target = await primary.fetchval("SELECT pg_current_wal_lsn()::text")
    while not await replica.fetchval(
        "SELECT coalesce(pg_last_wal_replay_lsn() >= $1::text::pg_lsn, false)", target
    ):
        if time.monotonic() - started > within:
            raise ServerError(f"the replica did not replay up to {target} in {within} s")
        await asyncio.sleep(0.01)
    return time.monotonic() - started
