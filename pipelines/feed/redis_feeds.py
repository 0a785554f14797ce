"""The Redis `FeedStore`: one EVALSHA of `fanout.lua` per batch.

The command is packed by hand: recipients become pre-encoded RESP bulk strings
joined once, instead of passing thousands of arguments through the client's
generic encoder. That client-side cost matters because at ~3 µs per feed on
the server, packing must stay well under it to keep Redis busy.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from importlib import resources
from typing import Any, Final

import redis.asyncio as redis
from redis.exceptions import NoScriptError

from contracts.failures import REDIS, boundary
from contracts.keys import FEED_PREFIX, careful_until_key, fanout_marker_key, feed_key
from pipelines.feed.ports import BatchResult
from transforms.fanout import PackedIds

SCRIPT: Final = resources.files("pipelines.feed").joinpath("fanout.lua").read_bytes()


def bulk(value: bytes) -> bytes:
    """One RESP bulk string."""
    return b"$%d\r\n%b\r\n" % (len(value), value)


# Feeds at least this long may overshoot their max length a little (`trim_slack`).
SLACK_FROM_LENGTH: Final = 256
SLACK_DIVISOR: Final = 16


def trim_slack(max_length: int) -> int:
    """How far past `max_length` a feed may grow before a push trims it back.

    Trimming on every push of a full feed (LPUSH then RPOP) cost 2.5x a push to
    a fresh feed; letting it grow by 1/16 and trimming back to `max_length` once
    per that many pushes amortises the trim (bench/README.md has the figures).
    Readers never see the overshoot: every read of a feed stops at `max_length`
    (`head`, the API's pages, `reconcile feeds`). A feed therefore holds at most
    `max_length + trim_slack(max_length)` entries: 850 for the default 800.
    Short feeds (tests, small deployments) are trimmed exactly.
    """
    return max_length // SLACK_DIVISOR if max_length >= SLACK_FROM_LENGTH else 0


_UUID_TEXT = 36
# Positions of the 32 hex digits inside the 36-character canonical form.
_HEX_POSITIONS: Final = tuple(i for i in range(_UUID_TEXT) if i not in (8, 13, 18, 23))
_KEY_HEAD: Final = b"$%d\r\n%b" % (len(FEED_PREFIX) + _UUID_TEXT, FEED_PREFIX.encode())
_KEY_RECORD: Final = _KEY_HEAD + b"-" * _UUID_TEXT + b"\r\n"


def feed_keys_resp(recipients: Sequence[uuid.UUID]) -> bytes:
    """The feed keys of `recipients` as consecutive RESP bulk strings.

    Every record has the same layout, so instead of formatting each UUID
    (about 1 µs apiece in Python, more than Redis spends pushing to the feed)
    the hex digits of all ids are written into a template with 32 strided
    slice assignments, about 0.15 µs per key.
    """
    out = bytearray(_KEY_RECORD * len(recipients))
    raw = (
        recipients.packed
        if isinstance(recipients, PackedIds)
        else b"".join([r.bytes for r in recipients])
    )
    digits = raw.hex().encode()
    stride, start = len(_KEY_RECORD), len(_KEY_HEAD)
    for j, pos in enumerate(_HEX_POSITIONS):
        out[start + pos :: stride] = digits[j::32]
    return bytes(out)


class RedisFeedStore:
    """Feeds as Redis lists, pushed, de-duplicated and trimmed by a Lua script."""

    def __init__(self, client: redis.Redis, *, max_length: int, marker_ttl: int) -> None:
        self._client = client
        self._length = max_length
        self._max_length = str(max_length).encode()
        self._trim_at = str(max_length + trim_slack(max_length)).encode()
        self._marker_ttl = str(marker_ttl).encode()
        self._sha: bytes | None = None

    async def push_batch(
        self,
        post_id: uuid.UUID,
        recipients: Sequence[uuid.UUID],
        *,
        digest: str,
        owner: str,
        careful: bool,
    ) -> BatchResult:
        """See `FeedStore.push_batch`."""
        if not recipients:
            return BatchResult(written=0, skipped=0)
        feeds = feed_keys_resp(recipients)
        head = [fanout_marker_key(post_id).encode()]
        tail = [
            str(post_id).encode(),
            digest.encode(),
            owner.encode(),
            b"1" if careful else b"0",
            self._max_length,
            self._marker_ttl,
            self._trim_at,
        ]
        with boundary(
            f"Pushing post {post_id} to {len(recipients)} feeds in Redis", dependency=REDIS
        ):
            reply = await self._evalsha(len(recipients) + 1, head, feeds, tail)
        return _result(reply, recipients)

    async def careful_until(self) -> float:
        """Until when (UNIX seconds) every fan-out must check feeds before pushing.

        Set by `socialpipe reconcile feeds` while and just after it rewrites feeds:
        a post it already wrote must not be pushed a second time by a first delivery.
        """
        with boundary("Reading the careful-until mark from Redis", dependency=REDIS):
            raw = await self._client.get(careful_until_key())
        try:
            return float(raw) if raw is not None else 0.0
        except ValueError:
            return 0.0

    async def head(self, user_id: uuid.UUID, count: int) -> list[uuid.UUID]:
        """See `FeedStore.head`."""
        raw = await self._client.lrange(feed_key(user_id), 0, min(count, self._length) - 1)
        return [uuid.UUID(v.decode() if isinstance(v, bytes) else v) for v in raw]

    async def _evalsha(
        self, numkeys: int, head: list[bytes], feeds: bytes, tail: list[bytes]
    ) -> Any:
        if self._sha is None:
            await self._load()
        try:
            return await self._send(numkeys, head, feeds, tail)
        except NoScriptError:
            # Redis restarted or SCRIPT FLUSH ran: load again, once.
            await self._load()
            return await self._send(numkeys, head, feeds, tail)

    async def _load(self) -> None:
        sha = await self._client.script_load(SCRIPT)
        self._sha = sha.encode() if isinstance(sha, str) else sha

    async def _send(self, numkeys: int, head: list[bytes], feeds: bytes, tail: list[bytes]) -> Any:
        assert self._sha is not None
        argc = 3 + numkeys + len(tail)
        packed = b"".join(
            [
                b"*%d\r\n$7\r\nEVALSHA\r\n" % argc,
                bulk(self._sha),
                bulk(str(numkeys).encode()),
                *[bulk(k) for k in head],
                feeds,
                *[bulk(a) for a in tail],
            ]
        )
        pool = self._client.connection_pool
        conn = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            await conn.send_packed_command(packed)
            return await conn.read_response()
        finally:
            await pool.release(conn)


def _result(reply: list[int], recipients: Sequence[uuid.UUID]) -> BatchResult:
    status, written, skipped, *failed = reply
    if status == 1:
        return BatchResult(written=0, skipped=0, already_done=True)
    return BatchResult(
        written=written,
        skipped=skipped,
        failed=tuple(recipients[i - 1] for i in failed),
    )
