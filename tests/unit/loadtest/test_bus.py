"""The run's bus: which consumer groups it waits for, and when they count as joined."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from config.settings import Settings
from loadtest.bus import group_states, unsettled
from loadtest.harness import LoadOptions, bus_endpoint, consumer_groups, run_settings


def _described(*groups: tuple[int, str, str, int]) -> list[SimpleNamespace]:
    """DescribeGroups responses: (error code, group, state, member count) per group."""
    entries = [
        (code, group, state, "consumer", "", [(f"m{i}", "", "", b"", b"") for i in range(n)])
        for code, group, state, n in groups
    ]
    return [SimpleNamespace(groups=entries)]


def test_a_group_counts_as_joined_once_stable_with_all_its_members() -> None:
    # GIVEN feed settled with 2 members, search still rebalancing, notifications short of one
    states = group_states(
        _described(
            (0, "feed-fanout", "Stable", 2),
            (0, "search-indexing", "PreparingRebalance", 2),
            (0, "notifications", "Stable", 0),
        )
    )
    wanted = {"feed-fanout": 2, "search-indexing": 2, "notifications": 1}
    # WHEN the runner asks which groups it still waits for
    # THEN the rebalancing one and the one missing a member
    assert unsettled(states, wanted) == ["search-indexing", "notifications"]
    # AND a group the broker has not described yet is waited for too
    assert unsettled(states, {"feed-fanout": 2, "other": 1}) == ["other"]


def test_a_group_the_broker_reports_an_error_for_is_not_joined() -> None:
    states = group_states(_described((16, "feed-fanout", "Stable", 1)))
    assert states == {"feed-fanout": ("error 16", 1)}
    assert unsettled(states, {"feed-fanout": 1}) == ["feed-fanout"]


def test_groups_are_the_pipelines_that_have_workers() -> None:
    settings = Settings()
    # GIVEN three workers per pipeline in direct mode: no notifications worker, no such group
    assert consumer_groups(settings, LoadOptions(workers=3)) == {
        "feed-fanout": 3,
        "search-indexing": 3,
    }
    # AND through the API one notifications worker runs too; attached runs need one each
    api = LoadOptions(workers=2, notifications_workers=1, mode="api")
    assert consumer_groups(settings, api)["notifications"] == 1
    assert set(consumer_groups(settings, LoadOptions(attach=True, workers=5)).values()) == {1}


def test_an_attached_kafka_run_uses_the_configured_broker(tmp_path: Path) -> None:
    # GIVEN KAFKA_BOOTSTRAP_SERVERS pointing at a running broker
    base = Settings(kafka_bootstrap_servers="10.0.0.5:9092", aws_endpoint_url="http://sqs:4566")
    for options in (
        LoadOptions(transport="kafka", attach=True, out_dir=tmp_path),
        LoadOptions(transport="kafka", broker="none", out_dir=tmp_path),
    ):
        # WHEN the run sets up its bus
        with bus_endpoint(options) as bus:
            settings = run_settings(base, options, bus)
        # THEN nothing was started: workers and drivers use that broker over Kafka
        assert bus == {}
        assert settings.event_transport == "kafka"
        assert settings.kafka_bootstrap_servers == "10.0.0.5:9092"
    assert not (tmp_path / "logs").exists()
