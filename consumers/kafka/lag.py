"""Consumer lag per partition: what queue depth is on SQS (metrics, burst exit, KEDA)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from aiokafka import AIOKafkaConsumer, TopicPartition

from contracts.metrics import CONSUMER_LAG

REQUEST_TIMEOUT_MS: Final = 10_000


class LagProbe:
    """Reads a group's committed offsets and the topics' end offsets, without joining it."""

    def __init__(self, bootstrap: str, group: str, topics: Sequence[str]) -> None:
        self._group = group
        self._topics = tuple(topics)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group,
            enable_auto_commit=False,
            request_timeout_ms=REQUEST_TIMEOUT_MS,
        )

    async def start(self) -> None:
        await self._consumer.start()

    async def close(self) -> None:
        await self._consumer.stop()

    async def partitions(self) -> list[TopicPartition]:
        found: list[TopicPartition] = []
        for topic in self._topics:
            ids = self._consumer.partitions_for_topic(topic)
            if ids is None:
                await self._consumer._client.force_metadata_update()
                ids = self._consumer.partitions_for_topic(topic) or set()
            found.extend(TopicPartition(topic, p) for p in sorted(ids))
        return found

    async def lag(self) -> dict[TopicPartition, int]:
        """End offset minus committed offset (0 committed when the group never committed)."""
        tps = await self.partitions()
        if not tps:
            return {}
        ends = await self._consumer.end_offsets(tps)
        lags: dict[TopicPartition, int] = {}
        for tp in tps:
            committed = await self._consumer.committed(tp)
            lags[tp] = max(0, ends[tp] - (committed or 0))
        return lags

    async def refresh(self) -> int:
        """Update the lag gauges; returns the total lag."""
        lags = await self.lag()
        for tp, value in lags.items():
            CONSUMER_LAG.labels(self._group, tp.topic, str(tp.partition)).set(value)
        return sum(lags.values())
