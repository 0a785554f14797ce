"""`ConsumerOptions`: the settings the consumer runtimes read, and nothing else.

`config.worker.consumer_options` builds one from the process settings; the
runtimes (SQS and Kafka), the settler, the heartbeat and the invoker take it
instead of the global settings, so a test or a tool can run a consumer with
exactly the knobs it names.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ConsumerOptions:
    """Polling, settling, retry and shutdown knobs, plus the Kafka app's connection."""

    # SQS polling and visibility
    pollers: int
    receive_wait_seconds: int
    visibility_timeout: int
    # Settling: dead-letter bound and the backoff between deliveries
    max_receive_count: int
    retry_base_seconds: float
    retry_max_seconds: float
    # The invoker's in-process retries
    inprocess_retries: int
    inprocess_retry_base_seconds: float
    shutdown_grace_seconds: float
    # Kafka transport
    events_topic: str
    kafka_bootstrap_servers: str
    kafka_partitions: int
    kafka_rebalance_timeout_seconds: float
    kafka_commit_interval_seconds: float
