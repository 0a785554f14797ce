"""Calling a handler: exceptions become per-envelope verdicts, transient ones are
retried in-process with tenacity before the runtime falls back to visibility backoff."""

from __future__ import annotations

import time
import traceback
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

import structlog
from tenacity import AsyncRetrying, retry_if_result, stop_after_attempt, wait_random_exponential

from config.settings import Settings
from consumers.backoff import describe, error_type_of, is_transient
from contracts.errors import PermanentError
from contracts.events import Envelope
from contracts.metrics import HANDLER_DURATION
from contracts.outcomes import Ack, DeadLetter, EventHandler, Outcome, Retry


@dataclass(frozen=True, slots=True)
class Failed:
    """Why an envelope did not succeed, and what may be done about it."""

    error_type: str
    reason: str
    permanent: bool = False
    # Unknown exceptions are likely bugs: hammering them in-process does not help.
    retry_in_process: bool = True
    delay: float | None = None
    stack: str | None = None


Verdict = Ack | Failed


def from_outcome(outcome: Outcome) -> Verdict:
    if isinstance(outcome, Retry):
        return Failed(outcome.error_type, outcome.reason, delay=outcome.delay)
    if isinstance(outcome, DeadLetter):
        return Failed(outcome.error_type, outcome.reason, permanent=True)
    return outcome


def from_exception(exc: BaseException) -> Failed:
    stack = "".join(traceback.format_exception(exc))
    error_type, reason = error_type_of(exc), describe(exc)
    if isinstance(exc, PermanentError):
        return Failed(error_type, reason, permanent=True, stack=stack)
    return Failed(error_type, reason, retry_in_process=is_transient(exc), stack=stack)


def needs_retry(verdict: Verdict | None) -> bool:
    return verdict is None or (
        isinstance(verdict, Failed) and not verdict.permanent and verdict.retry_in_process
    )


class HandlerInvoker:
    """Runs one chunk through a handler and returns one verdict per envelope."""

    def __init__(self, handler: EventHandler, settings: Settings, *, queue_name: str) -> None:
        self._handler = handler
        self._queue_name = queue_name
        self._attempts = settings.inprocess_retries + 1
        base = settings.inprocess_retry_base_seconds
        self._wait = wait_random_exponential(multiplier=base, max=base * 2**self._attempts)

    async def run(self, envelopes: Sequence[Envelope]) -> list[Verdict]:
        verdicts: list[Verdict | None] = [None] * len(envelopes)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            wait=self._wait,
            retry=retry_if_result(bool),
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else [],
        )
        await retrying(self._attempt, envelopes, verdicts)
        return [v if v is not None else Failed("Unknown", "no outcome") for v in verdicts]

    async def _attempt(
        self, envelopes: Sequence[Envelope], verdicts: list[Verdict | None]
    ) -> list[int]:
        """Call the handler for the envelopes still failing; return those still worth a retry."""
        pending = [i for i, v in enumerate(verdicts) if needs_retry(v)]
        results = await self._call([envelopes[i] for i in pending])
        for i, verdict in zip(pending, results, strict=True):
            verdicts[i] = verdict
        return [i for i in pending if needs_retry(verdicts[i])]

    async def _call(self, envelopes: Sequence[Envelope]) -> list[Verdict]:
        started = time.perf_counter()
        try:
            with _correlation(envelopes):
                outcomes = await self._handler.handle(envelopes)
        except Exception as exc:  # every failure becomes a verdict, never a dead worker
            return [from_exception(exc)] * len(envelopes)
        finally:
            HANDLER_DURATION.labels(self._queue_name).observe(time.perf_counter() - started)
        if len(outcomes) != len(envelopes):
            reason = f"handler returned {len(outcomes)} outcomes for {len(envelopes)} events"
            return [Failed("HandlerContractError", reason, retry_in_process=False)] * len(envelopes)
        return [from_outcome(o) for o in outcomes]


def _correlation(envelopes: Sequence[Envelope]) -> AbstractContextManager[None]:
    if len(envelopes) == 1:
        env = envelopes[0]
        return structlog.contextvars.bound_contextvars(
            correlationId=env.correlation_id or str(env.event_id)
        )
    return structlog.contextvars.bound_contextvars(
        correlationIds=[e.correlation_id or str(e.event_id) for e in envelopes[:10]]
    )
