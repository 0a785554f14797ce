"""Fakes shared by the tests, written once."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence

from redis.exceptions import ConnectionError as RedisConnectionError

from contracts.events import Envelope
from contracts.outcomes import ACK, Outcome, Probe
from pipelines.feed.breaker import CircuitBreaker
from pipelines.feed.ports import BatchResult, CachedConnections, FeedStore

Behaviour = Callable[[Envelope, int], Awaitable[Outcome]]
Step = Outcome | Exception


async def always_ack(_: Envelope, __: int) -> Outcome:
    return ACK


def playing(script: Mapping[uuid.UUID, Sequence[Step]]) -> Behaviour:
    """A behaviour that plays each event's steps, one per call: an outcome is
    returned, an exception raised (failing the whole batch, as a handler's would)."""

    async def play(envelope: Envelope, call: int) -> Outcome:
        step = script[envelope.event_id][call - 1]
        if isinstance(step, Exception):
            raise step
        return step

    return play


class ScriptedHandler:
    """Implements `EventHandler`; `behaviour(envelope, call_number)` decides each outcome.

    `calls` counts the calls per event id, `batch_sizes` the events per `handle`.
    """

    name = "test"

    def __init__(self, behaviour: Behaviour = always_ack, *, max_batch: int = 1) -> None:
        self.max_batch = max_batch
        self.dependencies: dict[str, Probe] = {}
        self._behaviour = behaviour
        self.calls: Counter[uuid.UUID] = Counter()
        self.started: list[uuid.UUID] = []
        self.done: list[uuid.UUID] = []
        self.batch_sizes: list[int] = []

    @classmethod
    def scripted(
        cls, script: Mapping[uuid.UUID, Sequence[Step]], *, max_batch: int = 10
    ) -> ScriptedHandler:
        """A handler playing `script`: the steps of each event id, in call order."""
        return cls(playing(script), max_batch=max_batch)

    async def handle(self, events: Sequence[Envelope]) -> Sequence[Outcome]:
        self.batch_sizes.append(len(events))
        outcomes = []
        for env in events:
            self.calls[env.event_id] += 1
            self.started.append(env.event_id)
            outcomes.append(await self._behaviour(env, self.calls[env.event_id]))
            self.done.append(env.event_id)
        return outcomes

    async def wait_ready(self) -> None:
        return None


class FakeClock:
    """A monotonic clock tests move by hand; call it like `time.monotonic`."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def connections_breaker() -> CircuitBreaker:
    """The connection reads' breaker with small thresholds (opens after 2 calls at
    50 % failures, for 30 s), on a `FakeClock`."""
    return CircuitBreaker(
        "connections",
        failure_rate=0.5,
        window_seconds=60,
        min_calls=2,
        call_timeout=2,
        open_seconds=30,
        clock=FakeClock(),
    )


class SourceDown(ConnectionError):
    """The failure a `FakeConnectionSource` raises when told to fail."""


class FakeConnectionSource:
    """An in-memory `ConnectionSource` with failure and latency injection.

    `fail_next` calls raise `SourceDown` (all calls while `down` is set);
    `delay` seconds are awaited before answering, to provoke timeouts;
    `during_read` runs after the answer is taken, before it is returned, to
    stage a change racing with the read.
    """

    def __init__(self) -> None:
        self._graph: dict[uuid.UUID, set[uuid.UUID]] = defaultdict(set)
        self.calls = 0
        self.fail_next = 0
        self.down = False
        self.delay = 0.0
        self.during_read: Callable[[], Awaitable[None]] | None = None
        # Every post exists unless named here.
        self.missing_posts: set[uuid.UUID] = set()

    def connect(self, a: uuid.UUID, *others: uuid.UUID) -> None:
        for b in others:
            self._graph[a].add(b)
            self._graph[b].add(a)

    async def post_exists(self, post_id: uuid.UUID, author_id: uuid.UUID) -> bool:
        return post_id not in self.missing_posts

    async def accepted_connections(self, user_id: uuid.UUID) -> list[uuid.UUID]:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.down or self.fail_next > 0:
            self.fail_next = max(0, self.fail_next - 1)
            raise SourceDown(f"connection source unavailable for {user_id}")
        answer = sorted(self._graph[user_id])
        if self.during_read is not None:
            await self.during_read()
        return answer


class FakeConnectionCache:
    """An in-memory `ConnectionCache` with the Redis adapter's semantics.

    `fresh` and `stale` hold the two copies; `generations` counts invalidations,
    and a store whose generation changed since its read is refused.
    """

    def __init__(self) -> None:
        self.fresh: dict[uuid.UUID, list[uuid.UUID]] = {}
        self.stale: dict[uuid.UUID, list[uuid.UUID]] = {}
        self.generations: dict[uuid.UUID, int] = defaultdict(int)

    def put(self, user_id: uuid.UUID, connections: Sequence[uuid.UUID]) -> None:
        """Cache both copies of a list, as a read from the source would have."""
        self.fresh[user_id] = list(connections)
        self.stale[user_id] = list(connections)

    async def read(self, user_id: uuid.UUID) -> CachedConnections:
        return CachedConnections(self.fresh.get(user_id), self._generation(user_id))

    async def store_if_unchanged(
        self, user_id: uuid.UUID, connections: Sequence[uuid.UUID], generation: bytes
    ) -> bool:
        if generation != self._generation(user_id):
            return False
        self.put(user_id, connections)
        return True

    async def invalidate(self, *user_ids: uuid.UUID) -> None:
        for user in user_ids:
            self.fresh.pop(user, None)
            self.generations[user] += 1

    async def read_stale(self, user_id: uuid.UUID) -> list[uuid.UUID] | None:
        return self.stale.get(user_id)

    def _generation(self, user_id: uuid.UUID) -> bytes:
        return str(self.generations[user_id]).encode()


class FlakyFeedStore:
    """Wraps a `FeedStore`; the first `failures` pushes raise Redis's ConnectionError."""

    def __init__(self, inner: FeedStore, failures: int) -> None:
        self._inner = inner
        self.failures = failures
        self.calls = 0

    async def push_batch(
        self,
        post_id: uuid.UUID,
        recipients: Sequence[uuid.UUID],
        *,
        digest: str,
        owner: str,
        careful: bool,
    ) -> BatchResult:
        self.calls += 1
        if self.failures > 0:
            self.failures -= 1
            raise RedisConnectionError("Connection reset by peer (injected).")
        return await self._inner.push_batch(
            post_id, recipients, digest=digest, owner=owner, careful=careful
        )

    async def head(self, user_id: uuid.UUID, count: int) -> list[uuid.UUID]:
        return await self._inner.head(user_id, count)

    async def careful_until(self) -> float:
        return await self._inner.careful_until()


class FakeFeedStore:
    """An in-memory `FeedStore` recording concurrency and each push's `careful` flag;
    `broken` feeds fail every push."""

    def __init__(self, *, pause: float = 0.0) -> None:
        self.feeds: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
        self.broken: set[uuid.UUID] = set()
        self.done: set[tuple[uuid.UUID, str]] = set()
        self.calls: list[tuple[str, int]] = []
        self.careful: list[bool] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.careful_mark = 0.0
        self._pause = pause

    async def push_batch(
        self,
        post_id: uuid.UUID,
        recipients: Sequence[uuid.UUID],
        *,
        digest: str,
        owner: str,
        careful: bool,
    ) -> BatchResult:
        self.calls.append((digest, len(recipients)))
        self.careful.append(careful)
        if (post_id, digest) in self.done:
            return BatchResult(written=0, skipped=0, already_done=True)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self._pause)
            return self._push(post_id, recipients, digest)
        finally:
            self.in_flight -= 1

    def _push(
        self, post_id: uuid.UUID, recipients: Sequence[uuid.UUID], digest: str
    ) -> BatchResult:
        failed = tuple(r for r in recipients if r in self.broken)
        written = skipped = 0
        for r in recipients:
            if r in self.broken:
                continue
            if post_id in self.feeds[r]:
                skipped += 1
            else:
                self.feeds[r].insert(0, post_id)
                written += 1
        if not failed:
            self.done.add((post_id, digest))
        return BatchResult(written=written, skipped=skipped, failed=failed)

    async def head(self, user_id: uuid.UUID, count: int) -> list[uuid.UUID]:
        return self.feeds[user_id][:count]

    async def careful_until(self) -> float:
        return self.careful_mark
