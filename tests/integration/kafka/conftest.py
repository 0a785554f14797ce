"""Kafka tests: fresh topic and group names per test on the session's tansu broker."""

from __future__ import annotations

import uuid

import pytest

from config.settings import Settings
from consumers.kafka.topics import ensure_topics
from tests.conftest import make_settings


def kafka_test_settings(bootstrap: str, **overrides: object) -> Settings:
    uid = uuid.uuid4().hex[:8]
    values: dict[str, object] = {
        "event_transport": "kafka",
        "kafka_bootstrap_servers": bootstrap,
        "events_topic": f"events-{uid}",
        "feed_queue": f"feed-{uid}",
        "search_queue": f"search-{uid}",
        "notifications_queue": f"notifications-{uid}",
        "kafka_partitions": 4,
        "kafka_rebalance_timeout_seconds": 1.0,
        "kafka_commit_interval_seconds": 0.2,
    }
    values.update(overrides)
    return make_settings(**values)


@pytest.fixture
async def kafka_settings(kafka_bootstrap: str, database_url: str) -> Settings:
    cfg = kafka_test_settings(kafka_bootstrap)
    await ensure_topics(cfg)
    return cfg
