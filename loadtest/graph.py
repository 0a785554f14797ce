"""A realistic social graph for load tests and the demo, seeded into PostgreSQL in bulk.

Connection counts are heavy-tailed, as in real professional networks: most
people have a handful of connections, a few have very many. Degrees are drawn
from a lognormal distribution and joined with the configuration model; `hubs`
users are then connected to a large share of everyone, so the fan-out path for
big authors is always exercised. Everything is deterministic for a given seed.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg

_FIRST = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Margaret", "Ken", "Radia", "Tim")
_LAST = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Hamilton", "Thompson")
_TITLES = ("Engineer", "Designer", "Analyst", "Recruiter", "Product Manager", "Data Scientist")
_CITIES = ("Berlin", "Lisbon", "Toronto", "Nairobi", "Seoul", "Austin", "Warsaw", "Lyon")


@dataclass(frozen=True)
class GraphShape:
    """How the degree distribution looks; the defaults give a median near 6.

    `hub_degrees`, when set, gives each hub an absolute number of connections
    (capped at everyone else) instead of `hub_share` of the graph.
    """

    median_degree: float = 6.0
    sigma: float = 1.0
    hubs: int = 1
    hub_share: float = 0.5
    hub_degrees: tuple[int, ...] = ()


# What `socialpipe loadtest` uses by default: median ~150 connections, p99 ~3,000
# (lognormal: p99 / median = exp(2.326 sigma)), and three authors with 10k-30k.
LOADTEST_SHAPE = GraphShape(
    median_degree=150.0, sigma=1.36, hubs=3, hub_degrees=(10_000, 20_000, 30_000)
)


@dataclass(frozen=True)
class SocialGraph:
    """Users and their accepted connections (symmetric adjacency)."""

    users: tuple[uuid.UUID, ...]
    adjacency: dict[uuid.UUID, tuple[uuid.UUID, ...]]
    edges: tuple[tuple[uuid.UUID, uuid.UUID], ...] = field(repr=False)

    def degree(self, user: uuid.UUID) -> int:
        return len(self.adjacency.get(user, ()))

    def targets(self, author: uuid.UUID) -> tuple[uuid.UUID, ...]:
        """Whose feeds a post by `author` must reach: their connections."""
        return self.adjacency.get(author, ())

    def degrees(self) -> list[int]:
        return [self.degree(u) for u in self.users]


def deterministic_uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def draw_degrees(n: int, shape: GraphShape, rng: random.Random) -> list[int]:
    """Lognormal degrees in [1, n-1]."""
    mu = math.log(shape.median_degree)
    return [max(1, min(n - 1, round(rng.lognormvariate(mu, shape.sigma)))) for _ in range(n)]


def pair_stubs(degrees: Sequence[int], rng: random.Random) -> set[tuple[int, int]]:
    """The configuration model: shuffle degree stubs and pair them, dropping loops and repeats."""
    stubs = [i for i, d in enumerate(degrees) for _ in range(d)]
    rng.shuffle(stubs)
    pairs: set[tuple[int, int]] = set()
    for a, b in zip(stubs[::2], stubs[1::2], strict=False):
        if a != b:
            pairs.add((min(a, b), max(a, b)))
    return pairs


def hub_pairs(n: int, shape: GraphShape, rng: random.Random) -> set[tuple[int, int]]:
    """Connect the first `hubs` users to `hub_share` of everyone."""
    pairs: set[tuple[int, int]] = set()
    for hub in range(min(shape.hubs, n)):
        wanted = shape.hub_degrees[hub] if hub < len(shape.hub_degrees) else None
        reach = min(n - 1, wanted if wanted is not None else round(shape.hub_share * (n - 1)))
        others = [i for i in range(n) if i != hub]
        for other in rng.sample(others, reach):
            pairs.add((min(hub, other), max(hub, other)))
    return pairs


def build_graph(users: int, *, seed: int = 7, shape: GraphShape | None = None) -> SocialGraph:
    """A heavy-tailed graph of `users` people; the same seed gives the same graph."""
    if users < 2:
        raise ValueError("A social graph needs at least 2 users.")
    shape = shape or GraphShape()
    rng = random.Random(seed)
    ids = tuple(deterministic_uuid(rng) for _ in range(users))
    pairs = pair_stubs(draw_degrees(users, shape, rng), rng) | hub_pairs(users, shape, rng)
    neighbours: dict[uuid.UUID, list[uuid.UUID]] = {u: [] for u in ids}
    edges = []
    for a, b in sorted(pairs):
        neighbours[ids[a]].append(ids[b])
        neighbours[ids[b]].append(ids[a])
        edges.append((ids[a], ids[b]))
    adjacency = {u: tuple(sorted(v)) for u, v in neighbours.items()}
    return SocialGraph(users=ids, adjacency=adjacency, edges=tuple(edges))


# --- seeding PostgreSQL ------------------------------------------------------------------


@dataclass(frozen=True)
class SeedReport:
    users: int
    connections: int


SEEDED_TABLES = ("users", "user_profiles", "connections")


def user_rows(graph: SocialGraph, now: datetime) -> Iterator[tuple[object, ...]]:
    for i, user in enumerate(graph.users):
        yield (user, f"user{i}.{user.hex[:8]}@example.com", None, now)


def profile_rows(graph: SocialGraph, now: datetime) -> Iterator[tuple[object, ...]]:
    for i, user in enumerate(graph.users):
        name = f"{_FIRST[i % len(_FIRST)]} {_LAST[(i // len(_FIRST)) % len(_LAST)]}"
        headline = _TITLES[i % len(_TITLES)]
        location = _CITIES[i % len(_CITIES)]
        yield (user, name, headline, location, "public", now)


def connection_rows(graph: SocialGraph, now: datetime) -> Iterator[tuple[object, ...]]:
    rng = random.Random(len(graph.edges))
    for a, b in graph.edges:
        requester, addressee = (a, b) if rng.random() < 0.5 else (b, a)
        yield (deterministic_uuid(rng), requester, addressee, "accepted", now)


async def seed_graph(pool: asyncpg.Pool, graph: SocialGraph) -> SeedReport:
    """Insert users, profiles and accepted connections with COPY, in one transaction; vacuum.

    The graph's users must not exist yet (callers reset the tables first).
    """
    now = datetime.now(UTC)
    async with pool.acquire() as conn, conn.transaction():
        await conn.copy_records_to_table(
            "users",
            records=user_rows(graph, now),
            columns=["id", "email", "password_hash", "created_at"],
        )
        await conn.copy_records_to_table(
            "user_profiles",
            records=profile_rows(graph, now),
            columns=["user_id", "full_name", "headline", "location", "visibility", "updated_at"],
        )
        await conn.copy_records_to_table(
            "connections",
            records=connection_rows(graph, now),
            columns=["id", "requester_id", "addressee_id", "status", "created_at"],
        )
    async with pool.acquire() as conn:
        # As autovacuum would soon: without a visibility map every connection read
        # visits the heap for each row, about three times the CPU of an index-only scan.
        await conn.execute("VACUUM (ANALYZE) users, user_profiles, connections")
    return SeedReport(users=len(graph.users), connections=len(graph.edges))


async def reset_tables(pool: asyncpg.Pool) -> None:
    """Empty the domain tables a demo or load test writes (never used on real data)."""
    async with pool.acquire() as conn:
        await conn.execute("TRUNCATE users, posts, connections, outbox RESTART IDENTITY CASCADE")
        await conn.execute("TRUNCATE search_documents")


async def holds_graph(pool: asyncpg.Pool, graph: SocialGraph) -> bool:
    """Whether the tables already hold exactly this graph (same users and connection count)."""
    async with pool.acquire() as conn:
        users = await conn.fetchval("SELECT count(*) FROM users")
        if users != len(graph.users):
            return False
        edges = await conn.fetchval("SELECT count(*) FROM connections WHERE status = 'accepted'")
        first_and_last = await conn.fetchval(
            "SELECT count(*) FROM users WHERE id = ANY($1::uuid[])",
            [graph.users[0], graph.users[-1]],
        )
    return bool(edges == len(graph.edges) and first_and_last == 2)


async def reset_activity(pool: asyncpg.Pool) -> None:
    """Forget what an earlier run wrote on top of a seeded graph: posts, outbox, search index."""
    async with pool.acquire() as conn:
        await conn.execute("TRUNCATE posts, outbox, notifications RESTART IDENTITY CASCADE")
        await conn.execute("TRUNCATE search_documents")
