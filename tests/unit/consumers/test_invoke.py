"""Handler invocation: one outcome per envelope, and the one layer that retries in process.

Transient failures are retried here, only for the envelopes still failing; an
outage closes the dependency gate and ends the retries at once; failures not
known to be transient are left to the queue's redelivery.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence

import pytest

from consumers.gate import DependencyGate
from consumers.invoke import HandlerInvoker
from contracts.errors import DependencyDown, InvalidEvent, TransientError
from contracts.events import Envelope
from contracts.failures import POSTGRES, REDIS
from contracts.outcomes import ACK, DeadLetter, Outcome, Retry
from tests.factories import post_created
from tests.fakes import ScriptedHandler, Step

ATTEMPTS = 4


def _handler(script: Mapping[int, Sequence[Step]]) -> ScriptedHandler:
    """A handler playing `script`, keyed by each envelope's position in `_events`."""
    return ScriptedHandler.scripted({uuid.UUID(int=i): steps for i, steps in script.items()})


class _Dependency:
    """A probe that fails while `up` is False."""

    def __init__(self) -> None:
        self.up = False

    async def __call__(self) -> None:
        if not self.up:
            raise ConnectionRefusedError("still down")


@pytest.fixture
def redis() -> _Dependency:
    return _Dependency()


@pytest.fixture
async def gate(redis: _Dependency) -> AsyncIterator[DependencyGate]:
    gate = DependencyGate({REDIS: redis}, queue="q", recovery_pause=(0.01, 0.01))
    yield gate
    await gate.close()


def _invoker(handler: ScriptedHandler, gate: DependencyGate) -> HandlerInvoker:
    return HandlerInvoker(handler, queue_name="q", gate=gate, attempts=ATTEMPTS, retry_base=0.0)


def _events(n: int) -> list[Envelope]:
    # Event ids 0..n-1 so the script can address each envelope by position.
    return [post_created(event_id=uuid.UUID(int=i)) for i in range(n)]


async def test_only_still_failing_envelopes_are_retried(gate: DependencyGate) -> None:
    # GIVEN three envelopes: one acks, one needs two retries, one is dead-lettered
    handler = _handler(
        {
            0: [ACK],
            1: [Retry("Busy", "try again"), Retry("Busy", "try again"), ACK],
            2: [DeadLetter("Invalid", "bad")],
        }
    )
    # WHEN invoked
    outcomes = await _invoker(handler, gate).run(_events(3))
    # THEN each has its outcome and retries re-sent only the failing envelope
    assert outcomes == [ACK, ACK, DeadLetter("Invalid", "bad")]
    assert handler.batch_sizes == [3, 1, 1]
    assert gate.ready


async def test_a_persistent_transient_exception_is_called_attempts_times(
    gate: DependencyGate,
) -> None:
    # GIVEN a handler that always raises a transient error
    handler = _handler({0: [TransientError("Pushing failed: slow")] * ATTEMPTS})
    # WHEN invoked with 4 attempts
    (outcome,) = await _invoker(handler, gate).run(_events(1))
    # THEN it was called 4 times and the outcome is a retry for the queue, with its stack
    assert handler.batch_sizes == [1] * ATTEMPTS
    assert isinstance(outcome, Retry)
    assert (outcome.error_type, outcome.reason) == ("TransientError", "Pushing failed: slow")
    assert outcome.outage is None
    assert outcome.stack and "TransientError" in outcome.stack
    assert gate.ready


async def test_permanent_and_unknown_exceptions_are_not_retried_in_process(
    gate: DependencyGate,
) -> None:
    # GIVEN one handler raising a permanent error and one raising an unknown one
    permanent = _handler({0: [InvalidEvent("missing postId")]})
    unknown = _handler({0: [ZeroDivisionError("bug")]})
    # WHEN invoked
    (p,) = await _invoker(permanent, gate).run(_events(1))
    (u,) = await _invoker(unknown, gate).run(_events(1))
    # THEN each was called once: permanent → dead letter, unknown → the queue's retry
    assert isinstance(p, DeadLetter) and p.error_type == "InvalidEvent"
    assert isinstance(u, Retry) and u.error_type == "ZeroDivisionError" and not u.in_process
    assert u.reason == "Handling the event failed: bug"
    assert permanent.batch_sizes == [1] and unknown.batch_sizes == [1]


async def test_a_retry_not_meant_for_in_process_is_not_retried(gate: DependencyGate) -> None:
    # GIVEN a handler returning a retry for the queue only
    only_queue = Retry("Suspicious", "left to redelivery", in_process=False)
    handler = _handler({0: [only_queue]})
    # WHEN invoked THEN it was called once and its retry is the outcome
    assert await _invoker(handler, gate).run(_events(1)) == [only_queue]
    assert handler.batch_sizes == [1]


async def test_an_outage_is_not_retried_in_process_and_closes_the_gate(
    gate: DependencyGate, redis: _Dependency
) -> None:
    # GIVEN a handler whose dependency is down (raised by its adapter), with retries to spare
    down = DependencyDown(REDIS, "Pushing post failed: Connection refused")
    handler = _handler({0: [down, ACK, ACK]})
    # WHEN invoked
    (outcome,) = await _invoker(handler, gate).run(_events(1))
    # THEN it was called once, the outcome is an outage retry naming Redis,
    # and the gate is closed while Redis does not answer
    assert handler.batch_sizes == [1]
    assert isinstance(outcome, Retry) and outcome.outage == REDIS
    assert outcome.reason == "Pushing post failed: Connection refused"
    assert not gate.ready
    assert set(gate.down) == {REDIS}
    # AND once Redis answers its probe again, the gate opens by itself
    redis.up = True
    await asyncio.wait_for(gate.wait_open(), timeout=2)
    assert gate.ready


async def test_an_outage_returned_by_the_handler_ends_the_retries_of_the_whole_chunk(
    gate: DependencyGate,
) -> None:
    # GIVEN two envelopes: one fails on an outage, the other on a transient error
    outage = Retry("DependencyDown", "Saving failed: refused", outage=POSTGRES)
    handler = _handler(
        {0: [outage, ACK], 1: [Retry("TransientError", "Writing failed: slow"), ACK]}
    )
    # WHEN invoked
    outcomes = await _invoker(handler, gate).run(_events(2))
    # THEN neither was called again: the gate closed (for a dependency the gate
    # has no probe of, every probed one must answer first), and each keeps its
    # failure for the queue
    assert handler.batch_sizes == [2]
    assert outcomes == [outage, Retry("TransientError", "Writing failed: slow")]
    assert not gate.ready
    assert set(gate.down) == {REDIS}


async def test_wrong_number_of_outcomes_is_a_failure_for_every_envelope(
    gate: DependencyGate,
) -> None:
    # GIVEN a handler that returns fewer outcomes than envelopes
    class Short(ScriptedHandler):
        async def handle(self, events: Sequence[Envelope]) -> Sequence[Outcome]:
            self.batch_sizes.append(len(events))
            return [ACK]

    handler = Short(max_batch=10)
    # WHEN invoked THEN every envelope fails with a contract error, left to the queue
    outcomes = await _invoker(handler, gate).run(_events(2))
    assert all(
        isinstance(o, Retry) and o.error_type == "HandlerContractError" and not o.in_process
        for o in outcomes
    )
    assert handler.batch_sizes == [2]
