"""Bulk helpers shared by the backends: chunking by count and bytes, jittered retries."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryError,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from contracts.errors import TransientError

T = TypeVar("T")


def chunked(
    items: Sequence[T], *, max_count: int, max_bytes: int, size_of: Callable[[T], int]
) -> Iterator[list[T]]:
    """Consecutive chunks of at most `max_count` items and about `max_bytes` bytes.

    An item larger than `max_bytes` still travels, alone in its chunk.
    """
    chunk: list[T] = []
    size = 0
    for item in items:
        item_size = size_of(item)
        if chunk and (len(chunk) >= max_count or size + item_size > max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += item_size
    if chunk:
        yield chunk


async def with_retries(
    operation: Callable[[], Awaitable[T]],
    *,
    is_transient: Callable[[BaseException], bool],
    attempts: int = 4,
    base: float = 0.05,
    cap: float = 2.0,
) -> T:
    """Run `operation`, retrying transient failures with full-jitter exponential backoff.

    When the retries run out the failure becomes a `TransientError`, so the
    message is retried later through the queue instead of here.
    """
    retrying = AsyncRetrying(
        retry=retry_if_exception(is_transient),
        wait=wait_random_exponential(multiplier=base, max=cap),
        stop=stop_after_attempt(attempts),
        reraise=False,
    )
    try:
        async for attempt in retrying:
            with attempt:
                return await operation()
    except RetryError as exc:
        last = exc.last_attempt.exception()
        raise TransientError(f"Search index write kept failing: {last}.") from last
    raise AssertionError("unreachable")  # pragma: no cover
