"""`socialpipe queues create` and `socialpipe worker` end to end."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

from typer.testing import CliRunner

from cli.main import app
from config.settings import Settings
from config.worker import PipelineUnavailable, build_handler, run_worker
from consumers.topology import ensure_topology
from pipelines.relay.sns import publish_events
from tests.factories import post_created
from tests.fakes import ScriptedHandler
from tests.integration.consumers.helpers import depth, http_get
from tests.settings import PortFactory, SettingsFactory


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "AWS_ENDPOINT_URL": settings.aws_endpoint_url or "",
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "LOG_LEVEL": "WARNING",
        **extra,
    }


def test_queues_create_prints_the_topology_and_is_idempotent(settings: Settings) -> None:
    # GIVEN an empty emulator
    runner = CliRunner()
    # WHEN `queues create` runs twice
    first = runner.invoke(app, ["queues", "create"], env=_env(settings))
    second = runner.invoke(app, ["queues", "create"], env=_env(settings))
    # THEN both succeed and name the topic, each queue, its DLQ and its subscription
    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    assert first.output == second.output
    for name in ("feed-fanout", "search-indexing", "notifications"):
        assert f"queue {name}: " in first.output
        assert f"{name}-dlq" in first.output
    assert "subscription feed-fanout <- PostCreated, ConnectionAccepted" in first.output
    assert "topic social-events: arn:aws:sns:" in first.output


def test_queues_create_says_when_the_endpoint_is_unreachable(
    settings: Settings, port_factory: PortFactory
) -> None:
    # GIVEN an endpoint nobody listens on
    dead = f"http://127.0.0.1:{port_factory()}"
    # WHEN `queues create` runs THEN it fails with one sentence and exit code 1
    result = CliRunner().invoke(
        app, ["queues", "create"], env=_env(settings, AWS_ENDPOINT_URL=dead)
    )
    assert result.exit_code == 1
    assert "cannot reach SQS/SNS" in result.output
    assert "Traceback" not in result.output


async def test_burst_worker_drains_the_queue_and_returns_zero(
    sqs: Any,
    sns: Any,
    settings: Settings,
    settings_factory: SettingsFactory,
    port_factory: PortFactory,
) -> None:
    # GIVEN posts published through SNS
    topo = await ensure_topology(sqs, sns, settings)
    events = [post_created() for _ in range(5)]
    await publish_events(sns, topo.topic_arn, events)
    handler = ScriptedHandler()
    # WHEN a burst worker runs with its health server on
    cfg = settings_factory(
        aws_endpoint_url=settings.aws_endpoint_url, metrics_port=port_factory(), pollers=1
    )
    code = await asyncio.wait_for(
        run_worker(cfg, "feed", burst=True, concurrency=None, handler=handler), 30
    )
    # THEN it exits 0 with every event handled and the queue empty
    assert code == 0
    assert sorted(handler.done) == sorted(e.event_id for e in events)
    assert await depth(sqs, topo.queue_url("feed-fanout")) == 0


async def test_a_missing_pipeline_module_is_reported_clearly(settings: Settings) -> None:
    # GIVEN a pipeline whose composition module does not exist
    from contextlib import AsyncExitStack

    # WHEN its handler is built THEN the error says so in one sentence
    async with AsyncExitStack() as stack:
        try:
            await build_handler(stack, settings, "nonexistent")
        except PipelineUnavailable as exc:
            assert str(exc) == "The nonexistent pipeline is not available in this build."
        else:
            raise AssertionError("expected PipelineUnavailable")


async def test_worker_process_is_ready_then_exits_zero_on_sigterm(
    sqs: Any, sns: Any, settings: Settings, port_factory: PortFactory
) -> None:
    # GIVEN the topology and a notifications worker process with its health server
    await ensure_topology(sqs, sns, settings)
    port = port_factory()
    env = _env(settings, METRICS_PORT=str(port), METRICS_HOST="127.0.0.1", RECEIVE_WAIT_SECONDS="1")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from cli.main import main; main()",
        "worker",
        "notifications",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        ready = await _became_ready(port)
        # WHEN it receives SIGTERM
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    stderr = (await proc.stderr.read()).decode() if proc.stderr else ""
    # THEN it had become ready and exits 0
    assert ready, stderr
    assert code == 0, stderr


async def _became_ready(port: int) -> bool:
    deadline = asyncio.get_running_loop().time() + 30
    while asyncio.get_running_loop().time() < deadline:
        if (await http_get(port, "/readyz"))[0] == 200:
            return True
        await asyncio.sleep(0.1)
    return False


def test_worker_says_when_its_queue_does_not_exist(settings: Settings) -> None:
    # GIVEN an emulator without queues
    # WHEN a worker starts THEN it fails with one sentence pointing at `queues create`
    result = CliRunner().invoke(
        app, ["worker", "notifications", "--burst"], env=_env(settings, METRICS_PORT="0")
    )
    assert result.exit_code == 1
    assert "run `socialpipe queues create` first" in result.output
    assert "Traceback" not in result.output
