"""Calling a handler: the one layer that retries in process.

Each envelope ends with one outcome. Exceptions that escape the handler are
classified once (`consumers.classify`); transient failures are retried here, up
to `attempts` calls with exponential backoff and full jitter, and no other
layer of a worker retries: adapters call their client once. An outage closes
the dependency gate and ends the in-process retries at once, since the
dependency will not answer a retry in a few milliseconds either.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import AbstractContextManager

import structlog
from tenacity import AsyncRetrying, retry_if_result, stop_after_attempt, wait_random_exponential

from consumers.classify import classify
from consumers.gate import DependencyGate
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
        self._wait = wait_random_exponential(multiplier=retry_base, max=retry_base * 2**attempts)

    async def run(self, envelopes: Sequence[Envelope]) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(envelopes)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            wait=self._wait,
            retry=retry_if_result(bool),
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else [],
        )
        await retrying(self._attempt, envelopes, outcomes)
        return [
            o if o is not None else Retry("NoOutcome", "The handler gave no outcome.")
            for o in outcomes
        ]

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
            with _correlation(envelopes):
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
