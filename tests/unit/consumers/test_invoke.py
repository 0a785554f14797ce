"""Handler invocation: per-envelope verdicts and in-process retries of only what failed."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from consumers.invoke import Failed, HandlerInvoker
from contracts.errors import InvalidEvent, TransientError
from contracts.events import Envelope, new_envelope
from contracts.outcomes import ACK, Ack, DeadLetter, Outcome, Retry
from tests.conftest import make_settings
from tests.factories import post_created

SETTINGS = make_settings(inprocess_retries=3, inprocess_retry_base_seconds=0.0)


class _Handler:
    name = "unit"
    max_batch = 10

    def __init__(self, script: dict[int, list[Outcome | Exception]]) -> None:
        self.script = script
        self.calls: list[int] = []

    async def handle(self, events: Sequence[Envelope]) -> Sequence[Outcome]:
        self.calls.append(len(events))
        outcomes: list[Outcome] = []
        for env in events:
            step = self.script[env.event_id.int].pop(0)
            if isinstance(step, Exception):
                raise step
            outcomes.append(step)
        return outcomes

    async def wait_ready(self) -> None:
        return None


def _events(n: int) -> list[Envelope]:
    # Event ids 0..n-1 so the script can address each envelope by position.
    return [new_envelope(post_created().payload, event_id=uuid.UUID(int=i)) for i in range(n)]


async def test_only_still_failing_envelopes_are_retried() -> None:
    # GIVEN three envelopes: one acks, one needs two retries, one is dead-lettered
    handler = _Handler(
        {
            0: [ACK],
            1: [Retry("Busy", "try again"), Retry("Busy", "try again"), ACK],
            2: [DeadLetter("Invalid", "bad")],
        }
    )
    # WHEN invoked
    verdicts = await HandlerInvoker(handler, SETTINGS, queue_name="q").run(_events(3))
    # THEN each has its verdict and retries re-sent only the failing envelope
    assert isinstance(verdicts[0], Ack)
    assert isinstance(verdicts[1], Ack)
    assert verdicts[2] == Failed("Invalid", "bad", permanent=True)
    assert handler.calls == [3, 1, 1]


async def test_transient_exception_exhausts_in_process_retries() -> None:
    # GIVEN a handler that always raises a transient error
    handler = _Handler({0: [TransientError("down")] * 4})
    # WHEN invoked THEN it was tried 1 + 3 times and the verdict is a retryable failure
    (verdict,) = await HandlerInvoker(handler, SETTINGS, queue_name="q").run(_events(1))
    assert isinstance(verdict, Failed)
    assert not verdict.permanent
    assert verdict.error_type == "TransientError"
    assert verdict.stack and "TransientError" in verdict.stack
    assert handler.calls == [1, 1, 1, 1]


async def test_permanent_and_unknown_exceptions_are_not_retried_in_process() -> None:
    # GIVEN one handler raising a permanent error and one raising an unknown one
    permanent = _Handler({0: [InvalidEvent("missing postId")]})
    unknown = _Handler({0: [ZeroDivisionError("bug")]})
    # WHEN invoked
    (p,) = await HandlerInvoker(permanent, SETTINGS, queue_name="q").run(_events(1))
    (u,) = await HandlerInvoker(unknown, SETTINGS, queue_name="q").run(_events(1))
    # THEN each was called once: permanent → DLQ, unknown → visibility retry by class name
    assert isinstance(p, Failed) and p.permanent and p.error_type == "InvalidEvent"
    assert isinstance(u, Failed) and not u.permanent and u.error_type == "ZeroDivisionError"
    assert permanent.calls == [1] and unknown.calls == [1]


async def test_wrong_number_of_outcomes_is_a_failure_for_every_envelope() -> None:
    # GIVEN a handler that returns fewer outcomes than envelopes
    class Short(_Handler):
        async def handle(self, events: Sequence[Envelope]) -> Sequence[Outcome]:
            return [ACK]

    # WHEN invoked THEN every envelope fails with a contract error
    verdicts = await HandlerInvoker(Short({}), SETTINGS, queue_name="q").run(_events(2))
    assert all(isinstance(v, Failed) and v.error_type == "HandlerContractError" for v in verdicts)
