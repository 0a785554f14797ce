"""Load drivers: turn due ticks into posts and profile updates, and tell the probes.

Two ways in. `Direct*` drivers write the source rows and publish the events
themselves (rows by COPY/UPDATE, events through an `EventSink`: SNS
PublishBatch or keyed Kafka records), so the driver is cheap enough to offer
20x the seed's load on a small machine. `Api*` drivers go through the GraphQL
API over HTTP with bearer tokens, so the whole chain runs: API → outbox →
relay → SNS/SQS or Kafka → worker → read model.

Every driver measures from the tick's scheduled time, which is the event's
`occurredAt` for direct drivers and the moment the request was due for API
drivers (so API time counts against the latency too).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import aiohttp
import asyncpg

from contracts.events import Envelope, PostCreated, UserProfileUpdated, new_envelope
from contracts.keys import feed_key
from loadtest.graph import SocialGraph
from loadtest.latency import FeedProbe, OpenLoop, Tick, fanout_batches, probe_targets
from loadtest.search_probe import SearchProbe
from loadtest.sinks import EventSink, Keyed

BATCH = 10
_HEADLINES = ("Engineer", "Staff Engineer", "Engineering Manager", "Architect", "Consultant")


@dataclass
class DriverStats:
    """What one driver offered and what went wrong while offering it."""

    sent: int = 0
    errors: int = 0
    first_error: str | None = None
    # Wall-clock lag between a tick falling due and its request starting.
    max_lag: float = 0.0
    # Where a batch's wall time goes: the database write, then the publishes.
    batches: int = 0
    db_seconds: float = 0.0
    publish_seconds: float = 0.0

    def timed(self, began: float, written: float) -> None:
        self.batches += 1
        self.db_seconds += written - began
        self.publish_seconds += time.monotonic() - written

    def mean_ms(self) -> dict[str, float]:
        n = max(1, self.batches)
        return {
            "batches": self.batches,
            "db_ms_per_batch": round(1000 * self.db_seconds / n, 1),
            "publish_ms_per_batch": round(1000 * self.publish_seconds / n, 1),
        }

    def failed(self, count: int, exc: BaseException) -> None:
        self.errors += count
        if self.first_error is None:
            self.first_error = f"{type(exc).__name__}: {exc}"[:300]


class Driver(Protocol):
    stats: DriverStats

    async def send(self, ticks: Sequence[Tick]) -> None:
        """Offer one event per tick; errors are counted, never raised."""
        ...


class AuthorPicker:
    """Uniform authors, except that `hub_share` of posts come from the biggest hubs."""

    def __init__(self, graph: SocialGraph, hub_share: float, seed: int, hubs: int = 3) -> None:
        self.users = graph.users
        self.hubs = sorted(graph.users, key=graph.degree, reverse=True)[:hubs]
        self.hub_share = hub_share
        self.rng = random.Random(seed)

    def pick(self) -> uuid.UUID:
        if self.hubs and self.rng.random() < self.hub_share:
            return self.rng.choice(self.hubs)
        return self.rng.choice(self.users)


def _at(tick: Tick) -> datetime:
    return datetime.fromtimestamp(tick.scheduled_at, UTC)


@dataclass(frozen=True)
class PostScript:
    """Which author writes post i, and the feeds that prove each author's posts visible.

    Worked out once in the process that holds the graph, so a driver process
    needs neither the graph nor the per-post sort of big fan-outs.
    """

    authors: tuple[uuid.UUID, ...]
    feeds: dict[uuid.UUID, tuple[str, ...]]
    # Fan-out batches of each author's posts, so the probe can tell a trimmed post.
    batches: dict[uuid.UUID, int] = field(default_factory=dict)

    @classmethod
    def plan(
        cls, graph: SocialGraph, picker: AuthorPicker, posts: int, batch_size: int
    ) -> PostScript:
        authors = tuple(picker.pick() for _ in range(posts))
        feeds = {
            a: tuple(feed_key(t) for t in probe_targets(graph.targets(a), batch_size))
            for a in set(authors)
        }
        batches = {a: fanout_batches(len(set(graph.targets(a))), batch_size) for a in feeds}
        return cls(authors, feeds, batches)


@dataclass
class DirectPosts:
    """Posts as COPY into `posts` plus PostCreated on the bus, keyed by author."""

    pool: asyncpg.Pool
    sink: EventSink
    script: PostScript
    probe: FeedProbe
    stats: DriverStats = field(default_factory=DriverStats)

    async def send(self, ticks: Sequence[Tick]) -> None:
        rows, watch = [], []
        events: list[Keyed] = []
        for tick in ticks:
            author = self.script.authors[tick.index % len(self.script.authors)]
            post_id, at = uuid.uuid4(), _at(tick)
            rows.append((post_id, author, f"Load post {tick.index}", at))
            payload = PostCreated(post_id=post_id, author_id=author, created_at=at)
            events.append((new_envelope(payload, producer="loadtest", occurred_at=at), author))
            watch.append((post_id, tick.scheduled_at, author))
        try:
            began = time.monotonic()
            await self.pool.copy_records_to_table(
                "posts", records=rows, columns=["id", "author_id", "text_content", "created_at"]
            )
            written = time.monotonic()
            await self.sink.publish(events)
            self.stats.timed(began, written)
        except Exception as exc:  # counted and reported; the run goes on
            self.stats.failed(len(ticks), exc)
            return
        for post_id, occurred, author in watch:
            feeds, batches = self.script.feeds[author], self.script.batches.get(author)
            self.probe.watch_feeds(post_id, occurred, feeds, batches=batches)
        self.stats.sent += len(ticks)


_UPDATE_SQL = """
UPDATE user_profiles AS p SET headline = u.headline, updated_at = u.at
  FROM unnest($1::uuid[], $2::text[], $3::timestamptz[]) AS u(user_id, headline, at)
 WHERE p.user_id = u.user_id
RETURNING p.user_id, p.version, p.updated_at
"""


@dataclass
class DirectProfiles:
    """Profile edits as one UPDATE per batch plus UserProfileUpdated with the new version."""

    pool: asyncpg.Pool
    sink: EventSink
    users: Sequence[uuid.UUID]
    probe: SearchProbe
    rng: random.Random
    stats: DriverStats = field(default_factory=DriverStats)

    async def send(self, ticks: Sequence[Tick]) -> None:
        # One user at most once per statement: UPDATE … FROM picks an arbitrary row otherwise.
        chosen: dict[uuid.UUID, Tick] = {}
        wanted = min(len(ticks), len(self.users))
        while len(chosen) < wanted:
            chosen.setdefault(self.rng.choice(self.users), ticks[len(chosen)])
        # One lock order for every statement: concurrent batches sharing a user would
        # otherwise deadlock now and then (one batch in 700 at 20x).
        users = sorted(chosen, key=lambda u: u.int)
        headlines = [f"{self.rng.choice(_HEADLINES)} #{chosen[u].index}" for u in users]
        ats = [_at(chosen[u]) for u in users]
        try:
            began = time.monotonic()
            rows = await self.pool.fetch(_UPDATE_SQL, users, headlines, ats)
            written = time.monotonic()
            events = [(_profile_updated(r, chosen[r["user_id"]]), r["user_id"]) for r in rows]
            await self.sink.publish(events)
            self.stats.timed(began, written)
        except Exception as exc:  # counted and reported; the run goes on
            self.stats.failed(len(ticks), exc)
            return
        for r in rows:
            self.probe.watch(r["user_id"], int(r["version"]), chosen[r["user_id"]].scheduled_at)
        self.stats.sent += len(rows)


def _profile_updated(row: asyncpg.Record, tick: Tick) -> Envelope:
    payload = UserProfileUpdated(
        user_id=row["user_id"], updated_at=row["updated_at"], version=row["version"]
    )
    return new_envelope(payload, producer="loadtest", occurred_at=_at(tick))


class GraphQLError(Exception):
    """The API answered with errors."""


class GraphQL:
    """A minimal GraphQL-over-HTTP client with one bearer token per user."""

    def __init__(self, session: aiohttp.ClientSession, url: str, tokens: Mapping[uuid.UUID, str]):
        self.session, self.url, self.tokens = session, url, tokens

    async def call(self, user: uuid.UUID, query: str, variables: dict[str, Any]) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        body = {"query": query, "variables": variables}
        async with self.session.post(self.url, json=body, headers=headers) as response:
            data = await response.json(content_type=None)
        if data.get("errors"):
            raise GraphQLError(str(data["errors"][0].get("message", data["errors"][0])))
        return data["data"]


CREATE_POST = "mutation($t: String!) { createPost(textContent: $t) { id } }"
UPDATE_PROFILE = (
    "mutation($h: String!) { updateProfile(input: {headline: $h}) { userId headline } }"
)


@dataclass
class ApiPosts:
    """Posts through `createPost`, one request per tick, as their authors."""

    api: GraphQL
    graph: SocialGraph
    authors: AuthorPicker
    probe: FeedProbe
    stats: DriverStats = field(default_factory=DriverStats)

    async def send(self, ticks: Sequence[Tick]) -> None:
        await asyncio.gather(*(self._one(t) for t in ticks))

    async def _one(self, tick: Tick) -> None:
        author = self.authors.pick()
        try:
            got = await self.api.call(author, CREATE_POST, {"t": f"Demo post {tick.index}"})
        except Exception as exc:  # counted and reported; the run goes on
            self.stats.failed(1, exc)
            return
        self.probe.watch(
            uuid.UUID(got["createPost"]["id"]), tick.scheduled_at, self.graph.targets(author)
        )
        self.stats.sent += 1


@dataclass
class ApiProfiles:
    """Headline edits through `updateProfile`; the version they produced is read back."""

    api: GraphQL
    pool: asyncpg.Pool
    users: Sequence[uuid.UUID]
    probe: SearchProbe
    rng: random.Random
    stats: DriverStats = field(default_factory=DriverStats)

    async def send(self, ticks: Sequence[Tick]) -> None:
        await asyncio.gather(*(self._one(t) for t in ticks))

    async def _one(self, tick: Tick) -> None:
        user = self.rng.choice(self.users)
        try:
            headline = f"{self.rng.choice(_HEADLINES)} {tick.index}"
            await self.api.call(user, UPDATE_PROFILE, {"h": headline})
            version = await self.pool.fetchval(
                "SELECT version FROM user_profiles WHERE user_id = $1", user
            )
        except Exception as exc:  # counted and reported; the run goes on
            self.stats.failed(1, exc)
            return
        self.probe.watch(user, int(version), tick.scheduled_at)
        self.stats.sent += 1


async def pump(
    driver: Driver, loop: OpenLoop, senders: int, batch: int = BATCH, linger: float = 0.0
) -> None:
    """Run the open-loop schedule into batches that `senders` tasks hand to the driver.

    One collector cuts the ticks into batches: a batch goes out when it holds
    `batch` ticks or `linger` seconds after its first tick fell due, so a driver
    with many senders still sends full batches (one UPDATE and one PublishBatch
    per 10 events), and one that falls behind catches up with fewer round trips.
    """
    ticks: asyncio.Queue[Tick | None] = asyncio.Queue()
    batches: asyncio.Queue[list[Tick] | None] = asyncio.Queue(maxsize=senders)
    tasks = [asyncio.create_task(_sender(driver, batches)) for _ in range(senders)]
    collector = asyncio.create_task(_collect(ticks, batches, batch, linger))
    try:
        await loop.run(ticks)
        await collector
        for _ in tasks:
            await batches.put(None)
        await asyncio.gather(*tasks)
    finally:
        for task in [collector, *tasks]:
            task.cancel()
        await asyncio.gather(collector, *tasks, return_exceptions=True)


async def _collect(
    ticks: asyncio.Queue[Tick | None],
    batches: asyncio.Queue[list[Tick] | None],
    size: int,
    linger: float,
) -> None:
    while (first := await ticks.get()) is not None:
        batch, ended = [first], False
        while len(batch) < size:
            wait = first.scheduled_at + linger - time.time()
            if wait <= 0 and ticks.empty():
                break
            try:
                nxt = (
                    ticks.get_nowait()
                    if not ticks.empty()
                    else await asyncio.wait_for(ticks.get(), wait)
                )
            except TimeoutError:
                break
            if nxt is None:
                ended = True
                break
            batch.append(nxt)
        await batches.put(batch)
        if ended:
            return


async def _sender(driver: Driver, batches: asyncio.Queue[list[Tick] | None]) -> None:
    while (batch := await batches.get()) is not None:
        driver.stats.max_lag = max(driver.stats.max_lag, time.time() - batch[0].scheduled_at)
        await driver.send(batch)
