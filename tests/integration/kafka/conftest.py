"""Kafka tests: fresh topic and group names per test on the session's tansu broker."""

from __future__ import annotations

import pytest

from config.settings import Settings
from consumers.kafka.topics import ensure_topics
from tests.settings import SettingsFactory


@pytest.fixture
async def kafka_settings(kafka_settings_factory: SettingsFactory, database_url: str) -> Settings:
    cfg = kafka_settings_factory()
    await ensure_topics(cfg)
    return cfg
