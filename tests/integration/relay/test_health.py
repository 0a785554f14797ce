"""`socialpipe relay` serves /healthz, /readyz and /metrics through the shared health server."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
import httpx
import pytest

from config.relay import run_relay
from config.settings import Settings
from consumers.topology import ensure_topology
from contracts.errors import TransientError
from pipelines.relay.ports import PublishResult
from pipelines.relay.relay import OutboxRelay, RelayOptions, RelayStuck
from store import outbox
from store.outbox import OutboxRow
from tests.factories import post_created
from tests.settings import PortFactory


async def get_until(url: str, status: int, deadline: float = 10.0) -> httpx.Response:
    """Poll `url` until it answers `status`; return that response."""
    end = time.monotonic() + deadline
    last: object = None
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < end:
            try:
                response = await client.get(url)
                if response.status_code == status:
                    return response
                last = response
            except httpx.TransportError as exc:
                last = exc
            await asyncio.sleep(0.05)
    raise AssertionError(f"{url} never answered {status}; last: {last!r}")


async def test_running_relay_serves_health_readiness_and_its_lag_metric(
    db: asyncpg.Pool, settings: Settings, port_factory: PortFactory, sqs: Any, sns: Any
) -> None:
    # GIVEN the topic (made by the set-up step), a pending event and a relay on a free port
    await ensure_topology(sqs, sns, settings)
    async with db.acquire() as conn:
        author = uuid.uuid4()
        await outbox.enqueue(conn, post_created(author_id=author), author)
    port = port_factory()
    cfg = settings.model_copy(update={"metrics_port": port, "metrics_host": "127.0.0.1"})
    stop = asyncio.Event()
    task = asyncio.create_task(run_relay(cfg, options=RelayOptions(poll_interval=0.2), stop=stop))
    try:
        base = f"http://127.0.0.1:{port}"
        # WHEN the probes and the scraper ask
        health = await get_until(f"{base}/healthz", 200)
        ready = await get_until(f"{base}/readyz", 200)
        metrics = await get_until(f"{base}/metrics", 200)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    # THEN it is alive, ready once a cycle published the event, and exposes the lag gauge
    assert health.text == "ok\n" and ready.text == "ready\n"
    assert "socialpipe_outbox_lag_seconds" in metrics.text
    assert "socialpipe_outbox_published_total" in metrics.text
    async with db.acquire() as conn:
        assert await outbox.pending_count(conn) == 0


class DownBus:
    async def publish(self, rows: Sequence[OutboxRow]) -> PublishResult:
        raise TransientError("SNS is down.")


class UpBus:
    async def publish(self, rows: Sequence[OutboxRow]) -> PublishResult:
        return PublishResult()


async def test_readiness_follows_whether_the_bus_accepts(db: asyncpg.Pool) -> None:
    # GIVEN a pending event
    async with db.acquire() as conn:
        author = uuid.uuid4()
        await outbox.enqueue(conn, post_created(author_id=author), author)
    options = RelayOptions(
        inprocess_retries=0, backoff_base=0.001, backoff_max=0.002, burst_max_failures=2
    )
    down = OutboxRelay(db, DownBus(), options)
    up = OutboxRelay(db, UpBus(), options)
    assert not down.ready  # nothing has been tried yet
    # WHEN one relay's bus refuses everything and another's accepts
    with pytest.raises(RelayStuck):
        await down.run(asyncio.Event(), burst=True)
    await up.run(asyncio.Event(), burst=True)
    # THEN only the second is ready
    assert (down.ready, up.ready) == (False, True)
