"""`transport`: the same scenario over SNS/SQS (moto) and over Kafka (tansu).

Each test gets settings for one transport with its topology created: the SNS
topic and SQS queues, or fresh Kafka topics and consumer-group names.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx
import pytest
import redis.asyncio as redis_asyncio
from argon2 import PasswordHasher

from config.api import build_api
from config.clients import open_sns, open_sqs
from config.settings import Settings
from consumers.kafka.topics import ensure_topics
from consumers.topology import ensure_topology
from pipelines.search.postgres import PostgresSearchIndex
from tests.integration.api.client import SECRET, Api
from tests.settings import SettingsFactory


@pytest.fixture(params=["sqs", "kafka"])
async def transport(
    request: pytest.FixtureRequest, database_url: str, settings_factory: SettingsFactory
) -> Settings:
    """Settings for one transport, its topics/queues created."""
    if request.param == "sqs":
        cfg = settings_factory(aws_endpoint_url=request.getfixturevalue("aws"))
        async with AsyncExitStack() as stack:
            await ensure_topology(await open_sqs(stack, cfg), await open_sns(stack, cfg), cfg)
    else:
        kafka_settings: SettingsFactory = request.getfixturevalue("kafka_settings_factory")
        cfg = kafka_settings()
        await ensure_topics(cfg)
    return cfg.model_copy(update={"api_token_secret": SECRET})


@pytest.fixture
async def api_over(
    transport: Settings, db: object, redis_client: redis_asyncio.Redis
) -> AsyncIterator[Api]:
    """The GraphQL API writing the outbox that the transport's relay will publish."""
    async with AsyncExitStack() as stack:
        app = await build_api(
            stack,
            transport,
            pool=db,
            redis=redis_client,
            search=PostgresSearchIndex(db),
            hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
        )
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")
        async with client:
            yield Api(client)
