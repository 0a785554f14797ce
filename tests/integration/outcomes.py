"""Handling events the way a worker does: through the runtime's invoker.

Handlers let failures escape; the invoker classifies them (`consumers.classify`)
and retries transient ones in process. Tests that assert the outcome a failure
ends in go through here instead of calling `handler.handle` directly.
"""

from __future__ import annotations

from collections.abc import Sequence

from consumers.gate import DependencyGate
from consumers.invoke import HandlerInvoker
from contracts.events import Envelope
from contracts.outcomes import EventHandler, Outcome


async def outcomes_of(
    handler: EventHandler, events: Sequence[Envelope], *, attempts: int = 1
) -> list[Outcome]:
    """One outcome per event, as the runtime would settle them.

    `attempts` is how many calls the invoker may make for a transient failure
    (no backoff between them). The gate is closed again afterwards, so an outage
    leaves no probe running.
    """
    gate = DependencyGate(handler.dependencies, queue="test")
    invoker = HandlerInvoker(
        handler, queue_name="test", gate=gate, attempts=attempts, retry_base=0.0
    )
    try:
        return await invoker.run(events)
    finally:
        await gate.close()
