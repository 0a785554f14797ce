"""One createPost makes one trace: API request → outbox → relay publish → receive → handler → Redis.

The API, the relay and the feed worker run in this process over moto's SNS/SQS
and over Kafka (tansu), with the SDK's in-memory exporter collecting spans.
"""

from __future__ import annotations

import asyncio
import itertools
from contextlib import AsyncExitStack

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from config.relay import build_relay
from config.settings import Settings
from config.worker import run_worker
from contracts.tracing import CORRELATION_ATTRIBUTE
from pipelines.relay.relay import RelayOptions
from tests.integration.api.client import Api

CORRELATION = "trace-chain-correlation"


def chain_of(queue: str) -> tuple[tuple[str, SpanKind], ...]:
    return (
        ("POST /graphql", SpanKind.SERVER),
        ("outbox write", SpanKind.INTERNAL),
        ("relay publish", SpanKind.PRODUCER),
        (f"receive {queue}", SpanKind.CONSUMER),
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
    spans: InMemorySpanExporter, transport: Settings, api_over: Api
) -> None:
    # GIVEN A and B connected, their connection events delivered
    a, _ = await api_over.register("a@trace.example", "Alice A")
    b, b_id = await api_over.register("b@trace.example", "Bob B")
    await api_over.connect(a, b, b_id)
    await deliver_to_feeds(transport)
    spans.clear()
    # WHEN B posts, and the relay and the feed worker deliver it
    response = await api_over.client.post(
        "/graphql",
        json={"query": 'mutation { createPost(textContent: "traced") { id } }'},
        headers={"Authorization": f"Bearer {b}", "X-Correlation-ID": CORRELATION},
    )
    assert response.status_code == 200, response.text
    post_id = response.json()["data"]["createPost"]["id"]
    await deliver_to_feeds(transport)
    feed_a = await api_over.ok("{ feed { items { id } } }", token=a)
    assert [i["id"] for i in feed_a["feed"]["items"]] == [post_id]
    (request,) = [
        s
        for s in spans.get_finished_spans()
        if s.kind is SpanKind.SERVER
        and (s.attributes or {}).get(CORRELATION_ATTRIBUTE) == CORRELATION
    ]
    in_trace = [
        s for s in spans.get_finished_spans() if s.context.trace_id == request.context.trace_id
    ]
    # THEN the chain's spans are one trace, each the child of the one before
    expected = chain_of(transport.feed_queue)
    chain = [by_name(in_trace, name) for name, _ in expected]
    assert [s.kind for s in chain] == [kind for _, kind in expected]
    assert request.parent is None
    for parent, child in itertools.pairwise(chain):
        assert child.parent is not None, child.name
        assert child.parent.span_id == parent.context.span_id, (parent.name, child.name)
    # AND every span of the trace names the request's correlation id
    assert {(s.attributes or {}).get(CORRELATION_ATTRIBUTE) for s in in_trace} == {CORRELATION}
