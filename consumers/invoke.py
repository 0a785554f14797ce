"""Calling a handler: the one layer that retries in process.

Each envelope ends with one outcome. Exceptions that escape the handler are
classified once (`consumers.classify`); transient failures are retried here, up
to `attempts` calls with exponential backoff and full jitter, and no other
layer of a worker retries: adapters call their client once. An outage closes
the dependency gate and ends the in-process retries at once, since the
dependency will not answer a retry in a few milliseconds either.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager

import structlog

from consumers.classify import classify
from consumers.gate import DependencyGate
from consumers.tracing import handling
from contracts.events import Envelope
from contracts.metrics import HANDLER_DURATION
from contracts.outcomes import EventHandler, Outcome, Retry

log = structlog.get_logger("consumers.invoke")


def worth_retrying(outcome: Outcome | None) -> bool:
    return outcome is None or (
        isinstance(outcome, Retry) and outcome.in_process and outcome.outage is None
    )


class HandlerInvoker:
    """Runs one chunk through a handler and returns one outcome per envelope."""

    def __init__(
        self,
        handler: EventHandler,
        *,
        queue_name: str,
        gate: DependencyGate,
        attempts: int,
        retry_base: float,
    ) -> None:
        self._handler = handler
        self._queue_name = queue_name
        self._gate = gate
        self._attempts = max(1, attempts)
        self._retry_base = retry_base
        self._retry_cap = retry_base * 2**attempts

    async def run(self, envelopes: Sequence[Envelope]) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(envelopes)
        # A plain loop, not a retry library's object per chunk: this runs once per
        # message on a busy worker, and building that object cost more than the loop.
        for attempt in range(1, self._attempts + 1):
            again = await self._attempt(envelopes, outcomes)
            if not again or attempt == self._attempts:
                break
            await asyncio.sleep(self._pause(attempt))
        return [
            o if o is not None else Retry("NoOutcome", "The handler gave no outcome.")
            for o in outcomes
        ]

    def _pause(self, attempt: int) -> float:
        """Exponential backoff with full jitter: uniform in [0, base * 2^(attempt-1)], capped."""
        return random.uniform(0, min(self._retry_cap, self._retry_base * 2 ** (attempt - 1)))

    async def _attempt(
        self, envelopes: Sequence[Envelope], outcomes: list[Outcome | None]
    ) -> list[int]:
        """Call the handler for the envelopes still failing; return those worth another call."""
        pending = [i for i, o in enumerate(outcomes) if worth_retrying(o)]
        results = await self._call([envelopes[i] for i in pending])
        for i, outcome in zip(pending, results, strict=True):
            outcomes[i] = outcome
        again = [i for i in pending if worth_retrying(outcomes[i])]
        return again if self._gate.ready else []

    async def _call(self, envelopes: Sequence[Envelope]) -> list[Outcome]:
        started = time.perf_counter()
        try:
            with _correlation(envelopes), handling(self._queue_name, envelopes):
                outcomes = list(await self._handler.handle(envelopes))
        except Exception as exc:  # every failure becomes an outcome, never a dead worker
            outcomes = [classify(exc)] * len(envelopes)
        finally:
            HANDLER_DURATION.labels(self._queue_name).observe(time.perf_counter() - started)
        if len(outcomes) != len(envelopes):
            reason = f"handler returned {len(outcomes)} outcomes for {len(envelopes)} events"
            return [Retry("HandlerContractError", reason, in_process=False)] * len(envelopes)
        for outcome in outcomes:
            if isinstance(outcome, Retry) and outcome.outage is not None:
                self._gate.mark_down(outcome.outage, outcome.reason)
        return outcomes


def _correlation(envelopes: Sequence[Envelope]) -> AbstractContextManager[None]:
    if len(envelopes) == 1:
        env = envelopes[0]
        return structlog.contextvars.bound_contextvars(
            correlationId=env.correlation_id or str(env.event_id)
        )
    return structlog.contextvars.bound_contextvars(
        correlationIds=[e.correlation_id or str(e.event_id) for e in envelopes[:10]]
    )
