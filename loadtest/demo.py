"""`socialpipe demo`: the whole system on embedded defaults, a minute of load through the API.

The demo is a load run in API mode with the seed's rates and SLOs: a moto
server (Python only) as SQS/SNS, the API, the relay, the three workers and the
Connections Service (the feed worker reads connection lists through it) as
child processes, a small heavy-tailed graph, posts and profile updates sent as
GraphQL mutations with bearer tokens. Afterwards, while everything still runs,
it reads three example feeds and one people search back through the API.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from config.settings import Settings
from loadtest.graph import GraphShape
from loadtest.report import LoadReport
from loadtest.runner import Harness, LoadOptions, Progress, run_loadtest

SEED_FEED_P95 = 2.0
SEED_SEARCH_P95 = 5.0

FEED_QUERY = "{ feed(first: 3) { items { textContent author { fullName } } } }"
SEARCH_QUERY = "query($q: String!) { searchUsers(query: $q, first: 3) { fullName headline } }"


@dataclass(frozen=True)
class DemoOptions:
    duration: float = 60.0
    users: int = 300
    posts_per_minute: float = 1000.0
    profile_updates_per_second: float = 50.0
    seed: int = 7
    database: str = "socialpipe_demo"
    emulator: str = "moto"
    out_dir: Path = Path("out/demo")
    search_text: str = "Engineer"
    connections_source: Literal["postgres", "grpc"] = "grpc"

    def load_options(self) -> LoadOptions:
        return LoadOptions(
            users=self.users,
            shape=GraphShape(),
            posts_per_minute=self.posts_per_minute,
            profile_updates_per_second=self.profile_updates_per_second,
            duration=self.duration,
            warmup=0.0,
            workers=1,
            notifications_workers=1,
            emulator="fauxqs" if self.emulator == "fauxqs" else "moto",
            mode="api",
            slo_feed_p95=SEED_FEED_P95,
            slo_search_p95=SEED_SEARCH_P95,
            database=self.database,
            seed=self.seed,
            drain_seconds=30.0,
            out_dir=self.out_dir,
            senders=8,
            connections_source=self.connections_source,
        )


def example_users(h: Harness) -> list[uuid.UUID]:
    """The most connected user, one in the middle and one with few connections."""
    ranked = sorted(h.graph.users, key=h.graph.degree, reverse=True)
    return [ranked[0], ranked[len(ranked) // 2], ranked[-1]]


async def showcase(h: Harness, search_text: str) -> list[str]:
    """Three feeds and one search, read back through the API as real users would."""
    if h.api is None:
        return []
    lines: list[str] = []
    for user in example_users(h):
        data: Any = await h.api.call(user, FEED_QUERY, {})
        items = data["feed"]["items"]
        degree = h.graph.degree(user)
        lines.append(f"feed of a user with {degree} connection{'s' if degree != 1 else ''}:")
        lines.extend(f"  - {i['author']['fullName']}: {i['textContent']}" for i in items)
        if not items:
            lines.append("  (empty: none of their connections posted)")
    searcher = h.graph.users[0]
    hits: Any = await h.api.call(searcher, SEARCH_QUERY, {"q": search_text})
    lines.append(f'search "{search_text}":')
    lines.extend(f"  - {x['fullName']} — {x['headline']}" for x in hits["searchUsers"])
    if not hits["searchUsers"]:
        lines.append("  (no match)")
    return lines


async def run_demo(
    base: Settings, options: DemoOptions, progress: Progress | None = None
) -> LoadReport:
    """Run the demo and return its report; everything started is stopped on exit."""

    async def epilogue(h: Harness) -> list[str]:
        return await showcase(h, options.search_text)

    return await run_loadtest(base, options.load_options(), progress=progress, epilogue=epilogue)
