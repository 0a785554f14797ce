"""How envelopes travel on SNS and SQS: string message attributes and batch-sized slices.

The relay publishes with these attributes and the consumers send and settle in
batches of these slices; both import them from here, so neither imports the other.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def chunked(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most `size` items."""
    if size < 1:
        raise ValueError("chunk size must be at least 1")
    for start in range(0, len(items), size):
        yield items[start : start + size]


def string_attributes(values: Mapping[str, str]) -> dict[str, Any]:
    """SNS/SQS message attributes of type String (empty values are not allowed)."""
    return {k: {"DataType": "String", "StringValue": v} for k, v in values.items() if v}
