"""The adaptive pace's live signal: the backlog of the live queue, read from SQS (moto)."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

from prometheus_client import REGISTRY

from config.reconcile import START_RATE, live_backlog, reconcile_pacer
from config.settings import Settings
from consumers.publish import send_raw
from consumers.topology import ensure_topology
from contracts.pacing import AdaptivePacer
from tests.settings import SettingsFactory


async def test_the_backlog_is_the_live_queues_waiting_messages(
    settings: Settings, sqs: Any, sns: Any
) -> None:
    # GIVEN 25 messages waiting in the search pipeline's queue, none in the feed's
    topology = await ensure_topology(sqs, sns, settings)
    for n in range(25):
        await send_raw(sqs, topology.queue_url(settings.search_queue), f'{{"n": {n}}}')
    async with AsyncExitStack() as stack:
        search = live_backlog(stack, settings, "search")
        feed = live_backlog(stack, settings, "feed")
        assert search is not None and feed is not None
        # WHEN the pace reads them THEN it sees each queue's own backlog
        assert await search() == 25
        assert await feed() == 0


async def test_on_kafka_the_pace_has_no_queue_to_read(settings_factory: SettingsFactory) -> None:
    async with AsyncExitStack() as stack:
        assert live_backlog(stack, settings_factory(event_transport="kafka"), "search") is None


async def test_an_adaptive_run_starts_at_its_start_rate_under_the_ceiling(
    settings: Settings,
) -> None:
    async with AsyncExitStack() as stack:
        fixed = await reconcile_pacer(stack, settings, "search", pace="fixed", max_rate=100)
        roomy = await reconcile_pacer(stack, settings, "search", pace="adaptive", max_rate=5000)
        capped = await reconcile_pacer(stack, settings, "feed", pace="adaptive", max_rate=150)
    assert fixed is None
    assert isinstance(roomy, AdaptivePacer) and roomy.rate == START_RATE
    assert isinstance(capped, AdaptivePacer) and capped.rate == 150
    gauge = REGISTRY.get_sample_value("socialpipe_reconcile_rate", {"reconciler": "feed"})
    assert gauge == 150
