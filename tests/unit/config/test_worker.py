"""The worker's wiring: one builder per pipeline, and consumer options taken from the settings."""

from __future__ import annotations

from dataclasses import asdict

from config.worker import PIPELINE_BUILDERS, PIPELINES, consumer_options, pipeline_queue
from tests.conftest import make_settings


def test_every_pipeline_has_a_builder_and_a_queue() -> None:
    # GIVEN the default settings WHEN each pipeline is looked up THEN it has both
    settings = make_settings()
    assert set(PIPELINES) == set(PIPELINE_BUILDERS) == {"feed", "search", "notifications"}
    assert [pipeline_queue(settings, p) for p in PIPELINES] == [
        settings.feed_queue,
        settings.search_queue,
        settings.notifications_queue,
    ]


def test_consumer_options_carry_the_settings_values() -> None:
    # GIVEN settings with non-default consumer knobs
    settings = make_settings(pollers=5, max_receive_count=7, kafka_partitions=3)
    # WHEN the options are built THEN every field has the setting of the same name
    options = asdict(consumer_options(settings))
    assert options == {name: getattr(settings, name) for name in options}
    assert options["pollers"] == 5
    assert options["max_receive_count"] == 7
    assert options["kafka_partitions"] == 3
