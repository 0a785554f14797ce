"""Feeds as reconciliation reads and rewrites them: snapshots, and an atomic rewrite script."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from importlib import resources
from typing import Final

from contracts.keys import feed_key
from reconcile.redis_client import AnyRedis

SCRIPT: Final = resources.files("reconcile").joinpath("feed_rewrite.lua").read_text()


class RedisFeedRewriter:
    """Reads feeds in bulk and rewrites one feed atomically (see `feed_rewrite.lua`)."""

    def __init__(self, client: AnyRedis, *, max_length: int) -> None:
        self._client = client
        self._max_length = max_length
        self._script = client.register_script(SCRIPT)

    @property
    def client(self) -> AnyRedis:
        """The Redis client the feeds live on (the careful-until mark lives there too)."""
        return self._client

    async def snapshot(self, users: Sequence[uuid.UUID]) -> list[list[str]]:
        """Each user's feed as readers see it (its first `max_length` entries, newest
        first; a fan-out may leave a few more for a while), in one round trip."""
        async with self._client.pipeline(transaction=False) as pipe:
            for user in users:
                pipe.lrange(feed_key(user), 0, self._max_length - 1)
            raw = await pipe.execute()
        return [[_text(v) for v in entries] for entries in raw]

    async def rewrite(self, user: uuid.UUID, snapshot: Sequence[str], final: Sequence[str]) -> bool:
        """Make the feed `final` (plus anything pushed since `snapshot`); True if it changed."""
        args: list[str | int] = [self._max_length, len(snapshot), *snapshot, *final]
        changed = await self._script(keys=[feed_key(user)], args=args)
        return bool(changed)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
