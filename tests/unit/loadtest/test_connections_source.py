"""A run with `--connections-source grpc` starts the Connections Service and points the
feed workers it starts at it."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from config.settings import Settings
from loadtest.demo import DemoOptions
from loadtest.harness import LoadOptions, build_group, run_settings
from loadtest.processes import settings_env


def group_of(settings: Settings, options: LoadOptions) -> list[str]:
    harness: Any = SimpleNamespace(settings=settings)
    group = build_group(harness, options)
    assert group is not None
    return [child.name for child in group.children]


def test_grpc_run_starts_the_service_and_tells_the_feed_workers_where(tmp_path: Path) -> None:
    # GIVEN a run that reads connections through the Connections Service
    options = LoadOptions(connections_source="grpc", out_dir=tmp_path)
    settings = run_settings(Settings(), options, bus={})
    # THEN its workers are told to call it on a loopback address
    env = settings_env(settings)
    assert env["CONNECTIONS_SOURCE"] == "grpc"
    assert env["CONNECTIONS_SERVICE_ADDR"].startswith("127.0.0.1:")
    # AND the service is one of the processes the run starts
    assert group_of(settings, options)[0] == "connections-service"


def test_default_run_reads_postgres_and_starts_no_service(tmp_path: Path) -> None:
    options = LoadOptions(out_dir=tmp_path)
    settings = run_settings(Settings(), options, bus={})
    assert settings.connections_source == "postgres"
    assert "connections-service" not in group_of(settings, options)


def test_the_demo_runs_the_service_in_its_chain() -> None:
    assert DemoOptions().load_options().connections_source == "grpc"
