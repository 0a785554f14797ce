"""Bulk helpers shared by the backends: chunking by count and bytes.

The backends call their client once per chunk: retries belong to the consumer
runtime's invoker, the one layer that retries in process."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

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
