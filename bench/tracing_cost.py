"""What tracing adds to one consumed message, off (the default) and on.

Per message, the SQS and Kafka runtimes enter `consumers.tracing.received`
and `handling` around the handler call, and every log line goes through the
`traceId` processor of `config.logging`. This times exactly those calls on one
decoded message, against an empty `with nullcontext()` as the floor, with
tracing off and with tracing on (the SDK recording into an exporter that drops
everything, so the export itself is not counted; a handler that writes Redis
once adds one port span, timed too):

    python -m bench.tracing_cost --rounds 200000

The figures are nanoseconds per message (best of `--repeat` timings, since
timings only ever get slower by noise), beside the feed worker's CPU per event
from `bench.worker_cpu` (1.33 ms in bench/README.md) to say what share they are.
"""

from __future__ import annotations

import argparse
import json
import timeit
from collections.abc import Callable, Sequence
from contextlib import nullcontext, suppress
from typing import Any

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from config.logging import _trace_ids
from config.settings import load_settings
from config.tracing import start_tracing, stop_tracing, traced
from consumers.messages import ReceivedMessage
from consumers.tracing import handling, received
from contracts.events import PostCreated, new_envelope, utcnow

FEED_WORKER_CPU_NS_PER_EVENT = 1_330_000  # bench/README.md, feed, after the load-test fixes


class Dropping(SpanExporter):
    """Takes every span and keeps none: the SDK's recording cost without an export."""

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


class Store:
    async def push_batch(self) -> None:
        return None


def message() -> tuple[ReceivedMessage, Any]:
    envelope = new_envelope(
        PostCreated.model_validate(
            {
                "postId": "0b6a3c5e-2f1d-4d39-9a64-8c0b1e5d7f21",
                "authorId": "1b6a3c5e-2f1d-4d39-9a64-8c0b1e5d7f21",
                "createdAt": utcnow(),
            }
        )
    )
    attributes = {
        k: {"DataType": "String", "StringValue": v} for k, v in envelope.attributes().items()
    }
    raw = {"MessageId": "m", "ReceiptHandle": "r", "Body": "", "MessageAttributes": attributes}
    return ReceivedMessage.from_sqs(raw), envelope


def best_ns(call: Callable[[], object], rounds: int, repeat: int) -> float:
    return min(timeit.repeat(call, number=rounds, repeat=repeat)) / rounds * 1e9


def measure(rounds: int, repeat: int) -> dict[str, float]:
    msg, envelope = message()
    decoded = [(msg, envelope)]
    envelopes = [envelope]
    event: dict[str, Any] = {"event": "x"}

    def floor() -> None:
        with nullcontext(), nullcontext():
            pass

    def helpers() -> None:
        with received("feed-fanout", decoded), handling("feed-fanout", envelopes):
            pass

    def log_line() -> None:
        _trace_ids(None, "info", event)

    store = traced(Store(), "redis", "push_batch")

    def with_write() -> None:
        with received("feed-fanout", decoded), handling("feed-fanout", envelopes):
            coroutine = store.push_batch()
            with suppress(StopIteration):  # the fake write finishes at once
                coroutine.send(None)

    results = {
        "floor_ns": best_ns(floor, rounds, repeat),
        "off_helpers_ns": best_ns(helpers, rounds, repeat),
        "off_log_line_ns": best_ns(log_line, rounds, repeat),
    }
    provider = start_tracing(load_settings(), "bench", exporter=Dropping())
    try:
        store = traced(Store(), "redis", "push_batch")
        results["on_helpers_ns"] = best_ns(helpers, rounds // 10, repeat)
        results["on_helpers_and_one_write_ns"] = best_ns(with_write, rounds // 10, repeat)
    finally:
        stop_tracing(provider)
    off_added = results["off_helpers_ns"] - results["floor_ns"] + results["off_log_line_ns"]
    results["off_added_ns_per_message"] = off_added
    results["off_share_of_feed_worker_cpu"] = off_added / FEED_WORKER_CPU_NS_PER_EVENT
    results["on_share_of_feed_worker_cpu"] = (
        results["on_helpers_and_one_write_ns"] / FEED_WORKER_CPU_NS_PER_EVENT
    )
    return results


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200_000, help="calls per timing")
    parser.add_argument("--repeat", type=int, default=5, help="timings; the best is kept")
    args = parser.parse_args(argv)
    results = measure(args.rounds, args.repeat)
    for name, value in results.items():
        print(f"{name:36} {value:.6f}" if "share" in name else f"{name:36} {value:9.0f}")
    print(json.dumps({k: round(v, 6) for k, v in results.items()}))


if __name__ == "__main__":
    main()
