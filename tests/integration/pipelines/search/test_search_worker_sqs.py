"""The search worker end to end over moto's SNS/SQS and real PostgreSQL."""

from __future__ import annotations

from typing import Any

import asyncpg

from config.settings import Settings
from config.worker import run_worker
from consumers.publish import send_raw
from consumers.topology import ensure_topology
from pipelines.relay.sns import publish_events
from pipelines.search.ports import SearchQuery
from pipelines.search.postgres import PostgresSearchIndex
from tests.factories import profile_updated
from tests.integration.consumers.helpers import attrs, drain
from tests.integration.pipelines.search.profiles import add_user


async def test_profile_update_published_to_sns_becomes_searchable(
    db: asyncpg.Pool, settings: Settings, sqs: Any, sns: Any
) -> None:
    # GIVEN the topology and a profile whose update event is published
    topology = await ensure_topology(sqs, sns, settings)
    uid = await add_user(db, "Annie Easley", headline="Rocket scientist", skills=("Centaur",))
    await publish_events(sns, topology.topic_arn, [profile_updated(user_id=uid)])
    # WHEN the search worker drains its queue
    assert await run_worker(settings, "search", burst=True, concurrency=4) == 0
    # THEN the person is found by a headline word
    hits = await PostgresSearchIndex(db).search(SearchQuery(text="rocket"))
    assert [h.user_id for h in hits] == [uid]


async def test_poison_events_go_to_the_dlq_with_reasons_and_the_rest_is_indexed(
    db: asyncpg.Pool, settings: Settings, sqs: Any, sns: Any
) -> None:
    # GIVEN a queue holding good updates, a nameless profile's update and a malformed body
    topology = await ensure_topology(sqs, sns, settings)
    good = [await add_user(db, f"Good Person {i}") for i in range(5)]
    nameless = await add_user(db, "")
    await publish_events(
        sns, topology.topic_arn, [profile_updated(user_id=u) for u in [*good, nameless]]
    )
    await send_raw(sqs, topology.queue_url(settings.search_queue), "{not json")
    # WHEN the worker drains it
    assert await run_worker(settings, "search", burst=True, concurrency=4) == 0
    # THEN both poison messages are dead-lettered with their reasons
    dead = await drain(sqs, topology.dlq_url(settings.search_queue))
    reasons = {attrs(m)["errorType"]: attrs(m)["errorMessage"] for m in dead}
    assert set(reasons) == {"InvalidDocument", "MalformedMessage"}
    assert "fullName" in reasons["InvalidDocument"]
    # AND every good profile was indexed, the nameless one was not
    index = PostgresSearchIndex(db)
    assert {h.user_id for h in await index.search(SearchQuery(text="good person"))} == set(good)
    assert await index.get(nameless) is None
    assert await drain(sqs, topology.queue_url(settings.search_queue)) == []
