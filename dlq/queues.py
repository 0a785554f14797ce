"""Which source queue an operator means: `feed`, `search`, `notifications`, or a queue name."""

from __future__ import annotations

from consumers.topology import QueueNames, UnknownQueue
from contracts.keys import dlq_name


def source_queues(settings: QueueNames) -> dict[str, str]:
    """Short pipeline names → source queue names."""
    return {
        "feed": settings.feed_queue,
        "search": settings.search_queue,
        "notifications": settings.notifications_queue,
    }


def resolve_queue(settings: QueueNames, name: str) -> str:
    """The source queue named by `name` (a pipeline, a source queue or its DLQ)."""
    queues = source_queues(settings)
    if name in queues:
        return queues[name]
    for queue in queues.values():
        if name in (queue, dlq_name(queue)):
            return queue
    known = ", ".join([*queues, *queues.values()])
    raise UnknownQueue(f"Unknown queue {name!r}; use one of: {known}.")
