"""The worker's wiring: one builder per pipeline, and consumer options taken from the settings."""

from __future__ import annotations

from dataclasses import asdict

from config.worker import PIPELINE_BUILDERS, PIPELINES, consumer_options, pipeline_queue
from tests.settings import SettingsFactory


def test_every_pipeline_has_a_builder_and_a_queue(settings_factory: SettingsFactory) -> None:
    # GIVEN the default settings WHEN each pipeline is looked up THEN it has both
    settings = settings_factory()
    assert set(PIPELINES) == set(PIPELINE_BUILDERS) == {"feed", "search", "notifications"}
    assert [pipeline_queue(settings, p) for p in PIPELINES] == [
        settings.feed_queue,
        settings.search_queue,
        settings.notifications_queue,
    ]


def test_consumer_options_carry_the_settings_values(settings_factory: SettingsFactory) -> None:
    # GIVEN settings with non-default consumer knobs
    settings = settings_factory(pollers=5, max_receive_count=7, kafka_partitions=3)
    # WHEN the options are built THEN every field has the setting of the same name
    options = asdict(consumer_options(settings))
    assert options == {name: getattr(settings, name) for name in options}
    assert options["pollers"] == 5
    assert options["max_receive_count"] == 7
    assert options["kafka_partitions"] == 3
