"""The SQS dead-letter tools against moto (which has no message-move API) and the real pipeline."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

import asyncpg
import pytest

from config.settings import Settings
from config.worker import run_worker
from consumers.messages import REDRIVE_MARK
from consumers.publish import send_raw
from consumers.topology import Topology, ensure_topology
from contracts.metrics import DLQ_DEPTH
from dlq.depth import refresh_once, refreshing_dlq_depth
from dlq.ports import RedriveOptions
from dlq.sqs import SqsDeadLetters
from pipelines.relay.sns import publish_events
from pipelines.search.postgres import PostgresSearchIndex
from tests.factories import post_created, profile_updated
from tests.integration.consumers.helpers import attrs, depth, drain, wait_until
from tests.integration.pipelines.search.profiles import add_user


async def _dead_letter(
    sqs: Any,
    topo: Topology,
    queue: str,
    envelopes: list[Any],
    error_types: Sequence[str] = ("TransientError", "DependencyUnavailable"),
) -> None:
    """Put envelopes on a DLQ as the settler does: original attributes plus the failure."""
    for i, env in enumerate(envelopes):
        await send_raw(
            sqs,
            topo.dlq_url(queue),
            env.to_json(),
            {
                **env.attributes(),
                "errorType": error_types[i % len(error_types)],
                "errorMessage": f"broken {i}",
                "failedAt": "2026-11-29T10:00:00.000Z",
                "attempts": "1",
                "sourceQueue": queue,
            },
        )


async def test_poison_updates_are_listed_then_redriven_through_the_pipeline_once_fixed(
    db: asyncpg.Pool, settings: Settings, sqs: Any, sns: Any
) -> None:
    # GIVEN profiles without a name, whose updates the search worker dead-letters
    topo = await ensure_topology(sqs, sns, settings)
    nameless = [await add_user(db, "") for _ in range(3)]
    await publish_events(sns, topo.topic_arn, [profile_updated(user_id=u) for u in nameless])
    assert await run_worker(settings, "search", burst=True, concurrency=4) == 0
    dead = SqsDeadLetters(sqs)
    # WHEN an operator lists the dead letters
    peek = await dead.peek(settings.search_queue, limit=100)
    # THEN they are grouped by event and error type, and still there afterwards
    assert {m.event_type for m in peek.messages} == {"UserProfileUpdated"}
    assert {m.error_type for m in peek.messages} == {"InvalidDocument"}
    assert len(peek.messages) == 3 and peek.complete
    assert await depth(sqs, topo.dlq_url(settings.search_queue)) == 3
    # WHEN the cause is fixed and the permanent failures are redriven, then the worker runs
    await db.execute("UPDATE user_profiles SET full_name = 'Fixed Name'")
    result = await dead.redrive(settings.search_queue, RedriveOptions(include_permanent=True))
    assert result.moved == 3 and result.method == "receive-send-delete"
    assert await run_worker(settings, "search", burst=True, concurrency=4) == 0
    # THEN every profile is indexed and both queues are empty
    index = PostgresSearchIndex(db)
    assert all([await index.get(u) is not None for u in nameless])
    assert await depth(sqs, topo.dlq_url(settings.search_queue)) == 0
    assert await depth(sqs, topo.queue_url(settings.search_queue)) == 0


async def test_redrive_keeps_original_attributes_and_drops_the_failure_description(
    settings: Settings, sqs: Any, sns: Any
) -> None:
    # GIVEN one dead letter with the producer's attributes and the failure description
    topo = await ensure_topology(sqs, sns, settings)
    envelope = post_created()
    await _dead_letter(sqs, topo, settings.feed_queue, [envelope])
    # WHEN it is redriven
    await SqsDeadLetters(sqs).redrive(settings.feed_queue, RedriveOptions())
    # THEN the source queue holds the same body with the original attributes and the mark
    [message] = await drain(sqs, topo.queue_url(settings.feed_queue))
    assert message["Body"] == envelope.to_json().decode()
    got = attrs(message)
    assert datetime.fromisoformat(got.pop(REDRIVE_MARK)).tzinfo is not None
    assert got == envelope.attributes()


class _DeleteInterrupted:
    """An SQS client whose first DeleteMessageBatch is interrupted (after the send succeeded)."""

    def __init__(self, sqs: Any) -> None:
        self._sqs = sqs
        self.interrupted = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sqs, name)

    async def delete_message_batch(self, **kwargs: Any) -> Any:
        if not self.interrupted:
            self.interrupted = True
            raise KeyboardInterrupt
        return await self._sqs.delete_message_batch(**kwargs)


async def test_interrupted_redrive_run_again_loses_no_message(
    settings: Settings, sqs: Any, sns: Any
) -> None:
    # GIVEN 25 dead letters
    topo = await ensure_topology(sqs, sns, settings)
    envelopes = [post_created() for _ in range(25)]
    await _dead_letter(sqs, topo, settings.feed_queue, envelopes)
    dlq_url = topo.dlq_url(settings.feed_queue)
    # WHEN a redrive is interrupted between sending its first batch and deleting it
    flaky = _DeleteInterrupted(sqs)
    with pytest.raises(KeyboardInterrupt):
        await SqsDeadLetters(cast(Any, flaky), redrive_visibility=1).redrive(
            settings.feed_queue, RedriveOptions()
        )
    # AND, once the interrupted batch is visible again, it is run again
    await _wait_visible(sqs, dlq_url, 25)
    second = await SqsDeadLetters(sqs).redrive(settings.feed_queue, RedriveOptions())
    # THEN every event reached the source queue, the first batch twice, and the DLQ is empty
    arrived = [m["Body"] for m in await drain(sqs, topo.queue_url(settings.feed_queue))]
    assert {e.to_json().decode() for e in envelopes} == set(arrived)
    assert second.moved == 25 and len(arrived) == 35
    assert await depth(sqs, dlq_url) == 0


async def _wait_visible(sqs: Any, url: str, count: int) -> None:
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        got = await sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
        )
        if int(got["Attributes"]["ApproximateNumberOfMessages"]) == count:
            return
        assert asyncio.get_running_loop().time() < deadline, "messages never became visible"
        await asyncio.sleep(0.1)


async def test_filter_moves_only_that_event_type_and_releases_the_rest(
    settings: Settings, sqs: Any, sns: Any
) -> None:
    # GIVEN dead letters of two event types on the notifications DLQ
    topo = await ensure_topology(sqs, sns, settings)
    posts = [post_created() for _ in range(4)]
    profiles = [profile_updated() for _ in range(3)]
    await _dead_letter(sqs, topo, settings.feed_queue, [*posts, *profiles])
    # WHEN only PostCreated is redriven
    result = await SqsDeadLetters(sqs).redrive(
        settings.feed_queue, RedriveOptions(event_type="PostCreated")
    )
    # THEN four moved, three stayed and are visible again at once
    assert (result.moved, result.skipped) == (4, 3)
    moved = await drain(sqs, topo.queue_url(settings.feed_queue))
    assert {attrs(m)["eventType"] for m in moved} == {"PostCreated"}
    left = await drain(sqs, topo.dlq_url(settings.feed_queue))
    assert len(left) == 3 and {attrs(m)["eventType"] for m in left} == {"UserProfileUpdated"}


async def test_dry_run_and_max_move_nothing_or_only_n(
    settings: Settings, sqs: Any, sns: Any
) -> None:
    # GIVEN 12 dead letters
    topo = await ensure_topology(sqs, sns, settings)
    await _dead_letter(sqs, topo, settings.feed_queue, [post_created() for _ in range(12)])
    dead = SqsDeadLetters(sqs)
    # WHEN a dry run counts them
    dry = await dead.redrive(settings.feed_queue, RedriveOptions(dry_run=True))
    # THEN it saw all 12 and moved none
    assert (dry.matched, dry.moved) == (12, 0)
    assert await depth(sqs, topo.queue_url(settings.feed_queue)) == 0
    # WHEN at most 5 are redriven
    some = await dead.redrive(settings.feed_queue, RedriveOptions(max_messages=5))
    # THEN exactly 5 moved and 7 are still dead letters
    assert some.moved == 5
    assert await depth(sqs, topo.queue_url(settings.feed_queue)) == 5
    assert len(await drain(sqs, topo.dlq_url(settings.feed_queue))) == 7


async def test_peek_and_get_do_not_consume(settings: Settings, sqs: Any, sns: Any) -> None:
    # GIVEN three dead letters
    topo = await ensure_topology(sqs, sns, settings)
    await _dead_letter(sqs, topo, settings.feed_queue, [post_created() for _ in range(3)])
    dead = SqsDeadLetters(sqs)
    # WHEN they are listed and one is shown
    peek = await dead.peek(settings.feed_queue, limit=10)
    shown = await dead.get(settings.feed_queue, peek.messages[1].message_id)
    # THEN the one shown carries its failure and all three are visible again at once
    assert shown is not None and shown.error_message.startswith("broken")
    assert shown.attempts == "1"
    assert shown.attributes["sourceQueue"] == settings.feed_queue
    assert await dead.get(settings.feed_queue, "no-such-id") is None
    assert len(await drain(sqs, topo.dlq_url(settings.feed_queue))) == 3


async def test_purge_empties_the_dlq_only(settings: Settings, sqs: Any, sns: Any) -> None:
    topo = await ensure_topology(sqs, sns, settings)
    await _dead_letter(sqs, topo, settings.feed_queue, [post_created() for _ in range(2)])
    await send_raw(sqs, topo.queue_url(settings.feed_queue), "live")
    assert await SqsDeadLetters(sqs).purge(settings.feed_queue) == 2
    assert await depth(sqs, topo.dlq_url(settings.feed_queue)) == 0
    assert await depth(sqs, topo.queue_url(settings.feed_queue)) == 1


async def test_worker_publishes_its_dlq_depth(settings: Settings, sqs: Any, sns: Any) -> None:
    # GIVEN two dead letters on the feed DLQ
    topo = await ensure_topology(sqs, sns, settings)
    await _dead_letter(sqs, topo, settings.feed_queue, [post_created() for _ in range(2)])
    gauge = DLQ_DEPTH.labels(f"{settings.feed_queue}-dlq")
    gauge.set(-1)
    # WHEN the refresher runs
    async with refreshing_dlq_depth(
        sqs, dlq_url=topo.dlq_url(settings.feed_queue), dlq=f"{settings.feed_queue}-dlq", every=0.05
    ):
        await wait_until(lambda: gauge._value.get() == 2)
        # THEN it follows the queue as it empties
        await sqs.purge_queue(QueueUrl=topo.dlq_url(settings.feed_queue))
        await wait_until(lambda: gauge._value.get() == 0)
    assert await refresh_once(sqs, dlq_url=topo.dlq_url(settings.feed_queue), dlq="x") == 0
