"""One createPost makes one trace: API request → outbox → relay publish → receive → handler → Redis.

The API, the relay and the feed worker run in this process over moto's SNS/SQS,
as in tests/e2e/test_chain.py, with the SDK's in-memory exporter collecting spans.
"""

from __future__ import annotations

import asyncio
import itertools
from contextlib import AsyncExitStack
from typing import Any

import asyncpg
import httpx
import redis.asyncio as redis_asyncio
from argon2 import PasswordHasher
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from config.api import build_api
from config.relay import build_relay
from config.settings import Settings
from config.worker import run_worker
from consumers.topology import ensure_topology
from contracts.keys import feed_key
from contracts.tracing import CORRELATION_ATTRIBUTE
from pipelines.relay.relay import RelayOptions
from pipelines.search.postgres import PostgresSearchIndex
from tests.integration.api.client import SECRET, Api

CORRELATION = "trace-chain-correlation"
CHAIN = (
    ("POST /graphql", SpanKind.SERVER),
    ("outbox write", SpanKind.INTERNAL),
    ("relay publish", SpanKind.PRODUCER),
    ("receive feed-fanout", SpanKind.CONSUMER),
    ("handle PostCreated", SpanKind.INTERNAL),
    ("redis push_batch", SpanKind.CLIENT),
)


async def deliver_to_feeds(settings: Settings) -> None:
    async with AsyncExitStack() as stack:
        relay = await build_relay(stack, settings, options=RelayOptions(poll_interval=0.2))
        await relay.run(asyncio.Event(), burst=True)
    assert await run_worker(settings, "feed", burst=True, concurrency=4) == 0


def by_name(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, f"{name}: {[s.name for s in spans]}"
    return found[0]


async def test_one_create_post_is_one_trace_from_request_to_redis_write(
    db: asyncpg.Pool,
    redis_client: redis_asyncio.Redis,
    settings: Settings,
    sqs: Any,
    sns: Any,
    spans: InMemorySpanExporter,
) -> None:
    await ensure_topology(sqs, sns, settings)
    cfg = settings.model_copy(update={"api_token_secret": SECRET})
    async with AsyncExitStack() as stack:
        app = await build_api(
            stack,
            cfg,
            pool=db,
            redis=redis_client,
            search=PostgresSearchIndex(db),
            hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            api = Api(client)
            # GIVEN A and B connected, their connection events delivered
            a, a_id = await api.register("a@trace.example", "Alice A")
            b, b_id = await api.register("b@trace.example", "Bob B")
            await api.connect(a, b, b_id)
            await deliver_to_feeds(cfg)
            spans.clear()
            # WHEN B posts, and the relay and the feed worker deliver it
            response = await client.post(
                "/graphql",
                json={"query": 'mutation { createPost(textContent: "traced") { id } }'},
                headers={"Authorization": f"Bearer {b}", "X-Correlation-ID": CORRELATION},
            )
            assert response.status_code == 200, response.text
            post_id = response.json()["data"]["createPost"]["id"]
            await deliver_to_feeds(cfg)
    assert await redis_client.lrange(feed_key(a_id), 0, -1) == [post_id.encode()]
    finished = list(spans.get_finished_spans())
    request = by_name(finished, "POST /graphql")
    trace_id = request.context.trace_id
    in_trace = [s for s in finished if s.context.trace_id == trace_id]
    # THEN the chain's spans are one trace, each the child of the one before
    chain = [by_name(in_trace, name) for name, _ in CHAIN]
    assert [s.kind for s in chain] == [kind for _, kind in CHAIN]
    assert request.parent is None
    for parent, child in itertools.pairwise(chain):
        assert child.parent is not None, child.name
        assert child.parent.span_id == parent.context.span_id, (parent.name, child.name)
    # AND every span of the trace names the request's correlation id
    assert {s.attributes.get(CORRELATION_ATTRIBUTE) for s in in_trace if s.attributes} == {
        CORRELATION
    }
    assert all(s.attributes and CORRELATION_ATTRIBUTE in s.attributes for s in in_trace)
