"""The Redis Cluster `FeedStore`: per node, one pipeline of single-feed scripts per batch.

Why not `fanout.lua`: a script may only touch keys of one hash slot, and every
`feed:{userId}` key (and the post's `fanout:{postId}` marker) hashes to a slot
of its own. So a batch here is three steps:

1. claim: one script on the marker (`CLAIM`) says whether the batch is done
   already and whether this attempt must check feeds first, with exactly the
   owner / `shared` rules of `fanout.lua`;
2. push: recipients are grouped by the node that owns their slot, and each
   node gets ONE pipeline of `cluster_push.lua` calls (LPOS if careful, LPUSH,
   trim), all nodes at once: one round trip per node per batch;
3. mark done: one call on the marker, only when every feed was served.

A reply that says the feed's slot is elsewhere or unavailable (MOVED or ASK
during a resharding, TRYAGAIN or CLUSTERDOWN during a failover, NOSCRIPT on a
node that just took over) or a node that could not be reached sends just those
feeds round again, a few times with a short pause, after which they are
reported as failed (`BatchResult.failed`) like a feed holding the wrong type:
the rest of the post is served, and the handler's next attempt writes only
what is missing. A retried feed is always checked first, since a lost reply
does not say whether the push happened.

The trade-off: a batch is no longer atomic across its feeds. A crash mid-batch
leaves some feeds written and the batch not marked done; the redelivery is a
second owner, so it checks every feed and writes only the missing ones. One
race is new: a first owner pushes without checking, so a second owner checking
the same feeds meanwhile could push a feed the first owner pushes a moment
later. The first owner therefore holds a lease per batch on the marker
(`lease:<digest>`) while its unchecked pushes may be in flight; a second owner
waits until no lease is held (released when the round ends, or expired after
`UNCHECKED_LEASE_MS` if its holder died) before pushing, and a first owner
that could not send within `SEND_GUARD_SECONDS` of its claim checks instead.
The lease outlasts the guard plus the client's socket timeout. A redelivery
comes after the visibility timeout, so in practice only a truly concurrent
delivery ever waits. An attempt that fails because Redis refused it or could
not be reached (a failover's CLUSTERDOWN, a dead master) has nothing left in
flight, so it gives its lease up as soon as the marker's node answers again,
and its redelivery need not wait the lease out; after a timeout or a
cancellation its pushes may still land, and the lease stays until it expires.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import hashlib
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Final

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MaxConnectionsError,
    MovedError,
    NoScriptError,
    RedisClusterException,
    RedisError,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from contracts.failures import REDIS, boundary
from contracts.keys import FEED_PREFIX, careful_until_key, fanout_marker_key, feed_key
from pipelines.feed.ports import BatchResult
from pipelines.feed.redis_feeds import bulk, feed_keys_resp, trim_slack
from store.redis_cluster import connection_permit
from transforms.fanout import PackedIds

PUSH_SCRIPT: Final = resources.files("pipelines.feed").joinpath("cluster_push.lua").read_bytes()
# Redis 7 and newer: one call per node for every feed of a batch on that node.
PUSH_MANY_SCRIPT: Final = (
    resources.files("pipelines.feed").joinpath("cluster_push_many.lua").read_bytes()
)

# Returns {done, careful, ms to wait for another owner's unchecked pushes, the lease
# this attempt took (its expiry in ms, as a string: Lua numbers lose digits), or ''}.
# KEYS[1] marker; ARGV: digest, owner, "1" to force careful, marker ttl (s), lease (ms).
CLAIM: Final = """
local marker, digest, owner = KEYS[1], ARGV[1], ARGV[2]
if redis.call('HEXISTS', marker, digest) == 1 then return {1, 0, 0, ''} end
local careful = ARGV[3] == '1'
local current = redis.call('HGET', marker, 'owner')
if not current then
  redis.call('HSET', marker, 'owner', owner)
elseif current ~= owner then
  redis.call('HSET', marker, 'shared', '1')
  careful = true
elseif redis.call('HEXISTS', marker, 'shared') == 1 then
  careful = true
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wait, lease = 0, ''
if not careful then
  lease = string.format('%d', now + tonumber(ARGV[5]))
  redis.call('HSET', marker, 'lease:' .. digest, lease)
elseif current and current ~= owner then
  local fields = redis.call('HGETALL', marker)
  for i = 1, #fields, 2 do
    if string.sub(fields[i], 1, 6) == 'lease:' then
      wait = math.max(wait, tonumber(fields[i + 1]) - now)
    end
  end
end
redis.call('EXPIRE', marker, tonumber(ARGV[4]))
return {0, careful and 1 or 0, wait, lease}
"""

# Gives up a lease an attempt no longer needs, if it is still that attempt's.
# KEYS[1] marker; ARGV: digest, the lease as CLAIM returned it.
RELEASE: Final = """
if redis.call('HGET', KEYS[1], 'lease:' .. ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], 'lease:' .. ARGV[1])
end
return 0
"""

# Ends an attempt at a batch: its lease goes, and the digest is marked done if asked.
# KEYS[1] marker; ARGV: digest, marker ttl (s), "1" to mark the batch done.
FINISH: Final = """
redis.call('HDEL', KEYS[1], 'lease:' .. ARGV[1])
if ARGV[3] == '1' then redis.call('HSET', KEYS[1], ARGV[1], '1') end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""

UNCHECKED_LEASE_MS: Final = 15_000
SEND_GUARD_SECONDS: Final = 5.0
LEASE_POLL_SECONDS: Final = 0.05
RELEASE_PAUSE_MAX_SECONDS: Final = 0.5
ATTEMPTS: Final = 5
FIRST_PAUSE_SECONDS: Final = 0.05

# Replies that mean "not run here, try again": nothing was written.
_RETRYABLE: Final = (MovedError, AskError, TryAgainError, ClusterDownError, NoScriptError)
# A node that could not be reached: its feeds' outcome is unknown.
_UNREACHABLE: Final = (
    RedisConnectionError,
    RedisTimeoutError,
    MaxConnectionsError,
    SlotNotCoveredError,
)


@dataclass(slots=True)
class _Round:
    """What the pushes of one batch did so far."""

    written: int = 0
    skipped: int = 0
    failed: list[int] = field(default_factory=list)
    retry: list[int] = field(default_factory=list)
    asks: dict[int, ClusterNode] = field(default_factory=dict)
    unreachable: BaseException | None = None
    # A pipeline timed out: its pushes may still run on a node that is alive.
    in_doubt: bool = False


class ClusterFeedStore:
    """Feeds as Redis lists on a cluster, pushed per node in one pipeline per batch."""

    def __init__(
        self,
        client: RedisCluster,
        *,
        max_length: int,
        marker_ttl: int,
        attempts: int = ATTEMPTS,
        first_pause: float = FIRST_PAUSE_SECONDS,
    ) -> None:
        self._client = client
        self._max_length = max_length
        # The scripts' max length and trim threshold, packed once.
        trim_at = max_length + trim_slack(max_length)
        self._lengths = bulk(b"%d" % max_length) + bulk(b"%d" % trim_at)
        self._marker_ttl = marker_ttl
        self._attempts = attempts
        self._first_pause = first_pause
        self._claim = client.register_script(CLAIM)
        self._finish = client.register_script(FINISH)
        self._release = client.register_script(RELEASE)
        self._releases: set[asyncio.Task[None]] = set()
        self._loading = asyncio.Lock()
        self._sha: bytes | None = None
        # None until loaded; b"" when the servers refuse it (before Redis 7).
        self._many_sha: bytes | None = None

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
        with boundary(
            f"Pushing post {post_id} to {len(recipients)} feeds in Redis", dependency=REDIS
        ):
            return await self._push(post_id, recipients, digest, owner, careful)

    async def careful_until(self) -> float:
        """See `RedisFeedStore.careful_until`."""
        with boundary("Reading the careful-until mark from Redis", dependency=REDIS):
            raw = await self._client.get(careful_until_key())
        try:
            return float(raw) if raw is not None else 0.0
        except ValueError:
            return 0.0

    async def head(self, user_id: uuid.UUID, count: int) -> list[uuid.UUID]:
        """See `FeedStore.head`."""
        raw = await self._client.lrange(feed_key(user_id), 0, min(count, self._max_length) - 1)
        return [uuid.UUID(v.decode() if isinstance(v, bytes) else v) for v in raw]

    async def _push(
        self,
        post_id: uuid.UUID,
        recipients: Sequence[uuid.UUID],
        digest: str,
        owner: str,
        careful: bool,
    ) -> BatchResult:
        marker = fanout_marker_key(post_id)
        claimed = await self._claim_marker(marker, digest, owner, careful)
        if claimed is None:
            return BatchResult(written=0, skipped=0, already_done=True)
        careful = claimed.careful or time.monotonic() - claimed.at > SEND_GUARD_SECONDS
        state = _Round()
        try:
            await self._push_all(str(post_id).encode(), recipients, careful, state)
            # Careful attempts hold no lease: with a failed feed there is nothing to record.
            if not state.failed or not claimed.careful:
                done = "0" if state.failed else "1"
                await self._finish(keys=[marker], args=[digest, self._marker_ttl, done])
        except (RedisError, *_UNREACHABLE):
            if claimed.lease and not state.in_doubt:
                self._release_when_back(marker, digest, claimed.lease)
            raise
        return BatchResult(
            written=state.written,
            skipped=state.skipped,
            failed=tuple(recipients[i] for i in state.failed),
        )

    async def _claim_marker(
        self, marker: str, digest: str, owner: str, careful: bool
    ) -> _Claim | None:
        """Claim the batch; None when it is done. Waits out another owner's lease."""
        while True:
            args = [digest, owner, "1" if careful else "0", self._marker_ttl, UNCHECKED_LEASE_MS]
            done, checked, wait_ms, lease = await self._claim(keys=[marker], args=args)
            if done:
                return None
            if not wait_ms:
                return _Claim(careful=bool(checked), at=time.monotonic(), lease=lease)
            # Another owner's unchecked pushes may still land: check after them, not among
            # them. Asked again soon, since the lease usually ends with the round, early.
            await asyncio.sleep(min(wait_ms / 1000, LEASE_POLL_SECONDS))

    def _release_when_back(self, marker: str, digest: str, lease: bytes) -> None:
        """Give the batch's lease up as soon as the marker's node answers again.

        The attempt failed with Redis refusing or unreachable (a failover's
        CLUSTERDOWN, a dead master), so none of its unchecked pushes is still on its
        way: a redelivery need not wait the lease out. Not after a timeout
        (`_Round.in_doubt`) or a cancellation, whose pushes may still land.
        """
        task = asyncio.create_task(self._release_until_expiry(marker, digest, lease))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def _release_until_expiry(self, marker: str, digest: str, lease: bytes) -> None:
        deadline = time.monotonic() + UNCHECKED_LEASE_MS / 1000
        pause = self._first_pause
        while time.monotonic() < deadline:
            try:
                await self._release(keys=[marker], args=[digest, lease])
                return
            except (RedisError, RedisClusterException):
                await self._refresh()
            await asyncio.sleep(pause)
            pause = min(pause * 2, RELEASE_PAUSE_MAX_SECONDS)

    async def _push_all(
        self, post: bytes, recipients: Sequence[uuid.UUID], careful: bool, state: _Round
    ) -> None:
        await self._client.initialize()
        if self._sha is None or self._many_sha is None:
            async with self._loading:  # a burst of first fan-outs loads the scripts once
                if self._sha is None:
                    self._sha = await self._load_everywhere()
                if self._many_sha is None:
                    self._many_sha = await self._load_many_everywhere()
        keys = _split_keys(feed_keys_resp(recipients), len(recipients))
        pending, asks = list(range(len(recipients))), dict[int, ClusterNode]()
        pause = self._first_pause
        for attempt in range(self._attempts):
            if attempt:
                await asyncio.sleep(pause)
                pause *= 2
                careful = True  # a lost reply does not say whether the push happened
            state.retry, state.asks, state.unreachable = [], {}, None
            # Only the first round takes the one-call-per-node path: a feed it could
            # not write goes round again alone, where the cluster redirects it.
            await self._round(post, keys, pending, asks, careful, state, whole=attempt == 0)
            pending, asks = state.retry, state.asks
            if not pending:
                return
        if state.unreachable is not None and not (state.written or state.skipped):
            raise state.unreachable  # nothing answers: an outage, not a few failed feeds
        state.failed.extend(pending)

    async def _round(
        self,
        post: bytes,
        keys: list[bytes],
        pending: list[int],
        asks: dict[int, ClusterNode],
        careful: bool,
        state: _Round,
        *,
        whole: bool = False,
    ) -> None:
        groups: dict[tuple[ClusterNode, bool], list[int]] = defaultdict(list)
        slots = self._client.nodes_manager.slots_cache
        for i, slot in zip(pending, _slots(keys, pending), strict=True):
            ask = asks.get(i)
            if ask is not None:
                groups[ask, True].append(i)
                continue
            # The slot's primary, as `NodesManager.get_node_from_slot` answers it for
            # writes; about a third of the client's time per feed went to that call.
            owners = slots.get(slot)
            if not owners:
                state.retry.append(i)
                state.unreachable = SlotNotCoveredError(f"Slot {slot} is not covered.")
                continue
            groups[owners[0], False].append(i)
        calls = [
            self._node_whole(node, post, keys, items, careful, state)
            if whole and not asking and self._many_sha and len(items) > 1
            else self._node_round(node, asking, post, keys, items, careful, state)
            for (node, asking), items in groups.items()
        ]
        await asyncio.gather(*calls)

    async def _node_whole(
        self,
        node: ClusterNode,
        post: bytes,
        keys: list[bytes],
        items: list[int],
        careful: bool,
        state: _Round,
    ) -> None:
        """Every feed of `items` (all on `node`) in one script call: one reply to read."""
        assert self._many_sha
        head = b"*%d\r\n$7\r\nEVALSHA\r\n" % (8 + len(items)) + bulk(self._many_sha)
        args = bulk(post) + bulk(b"1" if careful else b"0") + self._lengths
        packed = b"".join([head, b"$1\r\n1\r\n", keys[items[0]], args, *(keys[i] for i in items)])
        try:
            (reply,) = await _exchange(self._client, node, packed, 1, False)
        except _UNREACHABLE as exc:
            state.retry.extend(items)
            state.unreachable = exc
            state.in_doubt |= isinstance(exc, RedisTimeoutError)
            await self._refresh()
            return
        if isinstance(reply, NoScriptError):
            await self._on_node(node, "SCRIPT", "LOAD", PUSH_MANY_SCRIPT)
        replies = reply if isinstance(reply, list) else [reply] * len(items)
        written, skipped = replies.count(1), replies.count(0)
        if written + skipped == len(items):
            # The usual reply: every feed served. Counted without a call per feed.
            state.written += written
            state.skipped += skipped
            return
        for i, element in zip(items, replies, strict=True):
            if isinstance(element, ResponseError) and not isinstance(element, _RETRYABLE):
                # A feed this node would not take in the script (its slot is migrating
                # away, or a script error): nothing was written; redirected alone next.
                state.retry.append(i)
            else:
                await self._record(i, element, node, state)

    async def _node_round(
        self,
        node: ClusterNode,
        asking: bool,
        post: bytes,
        keys: list[bytes],
        items: list[int],
        careful: bool,
        state: _Round,
    ) -> None:
        assert self._sha is not None
        head = b"*8\r\n$7\r\nEVALSHA\r\n" + bulk(self._sha) + b"$1\r\n1\r\n"
        tail = bulk(post) + bulk(b"1" if careful else b"0") + self._lengths
        prefix = b"*1\r\n$6\r\nASKING\r\n" + head if asking else head
        packed = b"".join([b"".join((prefix, keys[i], tail)) for i in items])
        try:
            replies = await _exchange(self._client, node, packed, len(items), asking)
        except _UNREACHABLE as exc:
            state.retry.extend(items)
            state.unreachable = exc
            state.in_doubt |= isinstance(exc, RedisTimeoutError)
            await self._refresh()
            return
        for i, reply in zip(items, replies, strict=True):
            await self._record(i, reply, node, state)

    async def _record(self, i: int, reply: Any, node: ClusterNode, state: _Round) -> None:
        if reply == 1:
            state.written += 1
        elif reply == 0:
            state.skipped += 1
        elif isinstance(reply, MovedError):
            await self._client.nodes_manager.move_slot(reply)
            state.retry.append(i)
        elif isinstance(reply, AskError):
            target = self._client.get_node(reply.host, reply.port)
            if target is not None:
                state.asks[i] = target
            state.retry.append(i)
        elif isinstance(reply, NoScriptError):
            await self._load_on(node)
            state.retry.append(i)
        elif isinstance(reply, _RETRYABLE):
            if isinstance(reply, ClusterDownError):
                await self._refresh()
            state.retry.append(i)
        else:
            state.failed.append(i)  # -1: the key holds another type; or another error

    async def _refresh(self) -> None:
        """Re-read the slot map: a failover or resharding moved slots."""
        # No node answering now is fine: the next round tries again.
        with contextlib.suppress(RedisError, RedisClusterException):
            await self._client.nodes_manager.initialize()

    async def _load_everywhere(self) -> bytes:
        sha = b""
        for node in self._client.get_primaries():
            sha = await self._load_on(node)
        return sha

    async def _load_many_everywhere(self) -> bytes:
        try:
            for node in self._client.get_primaries():
                await self._on_node(node, "SCRIPT", "LOAD", PUSH_MANY_SCRIPT)
        except ResponseError:
            return b""  # script flags need Redis 7: one script call per feed instead
        return _sha1(PUSH_MANY_SCRIPT)

    async def _on_node(self, node: ClusterNode, *args: Any) -> Any:
        """A command on `node`, holding a connection permit like every other use."""
        async with connection_permit(self._client):
            return await node.execute_command(*args)

    async def _load_on(self, node: ClusterNode) -> bytes:
        raw = await self._on_node(node, "SCRIPT", "LOAD", PUSH_SCRIPT)
        return raw.encode() if isinstance(raw, str) else bytes(raw)


@dataclass(frozen=True, slots=True)
class _Claim:
    careful: bool
    at: float
    lease: bytes  # empty when this attempt holds none


_KEY_RECORD_LENGTH: Final = len(feed_keys_resp([uuid.UUID(int=0)]))
# Where the key itself starts inside its RESP record (after `$<len>\r\n`).
_KEY_START: Final = feed_keys_resp([uuid.UUID(int=0)]).index(b"\r\n") + 2


def _sha1(script: bytes) -> bytes:
    return hashlib.sha1(script).hexdigest().encode()


# Feed keys carry no hash tag, so a key's slot is the CRC16 of the whole key.
_UNTAGGED: Final = "{" not in FEED_PREFIX


def _slots(keys: list[bytes], indexes: Iterable[int]) -> list[int]:
    """The hash slot of each of `keys[i]` for i in `indexes` (`redis.crc.key_slot`'s answer)."""
    if not _UNTAGGED:
        return [key_slot(keys[i][_KEY_START:-2]) for i in indexes]
    crc = binascii.crc_hqx
    return [crc(keys[i][_KEY_START:-2], 0) & (REDIS_CLUSTER_HASH_SLOTS - 1) for i in indexes]


def slot_ordered(ids: Sequence[uuid.UUID]) -> PackedIds:
    """`ids`, distinct, sorted by the hash slot of their feed key, then by id.

    What the connection cache holds on a cluster (config/feed.py): a fan-out
    plan cuts its batches in this order (`PackedIds.by_slot`), so a batch of
    1,000 out of 100,000 recipients spans about 160 of the 16,384 slots and
    nearly always goes to one master: one script call per batch instead of one
    per master. The order is a pure function of the set of ids, so a redelivery
    plans the same batches with the same digests. It costs 0.7 to 1.5 µs per id
    (key text, CRC16, sort; `bench.fanout --cluster` prints it), paid when the
    list is read from its source and cached, not per post.
    """
    if isinstance(ids, PackedIds) and ids.ordered:
        chunks = ids.chunks()
    else:
        raw = ids if isinstance(ids, PackedIds) else PackedIds(b"".join(i.bytes for i in ids))
        chunks = sorted(set(raw.chunks()))
    keys = _split_keys(feed_keys_resp(PackedIds(b"".join(chunks))), len(chunks))
    slots = _slots(keys, range(len(keys)))
    # Stable: ids of one slot keep their id order.
    order = sorted(range(len(chunks)), key=slots.__getitem__)
    return PackedIds(b"".join([chunks[i] for i in order]), by_slot=True)


def _split_keys(packed: bytes, count: int) -> list[bytes]:
    """The RESP records of `feed_keys_resp`, one per recipient (they are all the same length)."""
    n = _KEY_RECORD_LENGTH
    return [packed[i * n : (i + 1) * n] for i in range(count)]


async def _exchange(
    client: RedisCluster, node: ClusterNode, packed: bytes, count: int, asking: bool
) -> list[Any]:
    """Send one pipeline to `node` and read `count` replies (errors as values).

    It holds one of the client's connection permits meanwhile, so a burst of
    fan-outs waits for a connection instead of exhausting the node's pool.
    """
    async with connection_permit(client):
        return await _exchange_on(node, packed, count, asking)


async def _exchange_on(node: ClusterNode, packed: bytes, count: int, asking: bool) -> list[Any]:
    conn = node.acquire_connection()
    try:
        await node.disconnect_if_needed(conn)
        await conn.send_packed_command(packed)
        replies: list[Any] = []
        for _ in range(count):
            if asking:
                await _reply(conn)
            replies.append(await _reply(conn))
        return replies
    except BaseException:
        # A half-read pipeline leaves replies on the socket: never reuse it.
        await conn.disconnect()
        raise
    finally:
        node.release(conn)


async def _reply(conn: Any) -> Any:
    try:
        return await conn.read_response()
    except ResponseError as exc:
        return exc
