"""Prometheus metric names, defined once (alert rules and dashboards use them)."""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS: Final = (
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    1.5,
    2.0,
    3.0,
    5.0,
    7.5,
    10.0,
    30.0,
    60.0,
)

MESSAGES_RECEIVED = Counter(
    "socialpipe_messages_received_total", "Messages received from a queue.", ["queue"]
)
MESSAGES_ACKED = Counter(
    "socialpipe_messages_acked_total", "Messages handled and deleted.", ["queue"]
)
MESSAGES_RETRIED = Counter(
    "socialpipe_messages_retried_total",
    "Messages released for a later retry.",
    ["queue", "error_type"],
)
MESSAGES_DEAD_LETTERED = Counter(
    "socialpipe_messages_dead_lettered_total",
    "Messages moved to the dead-letter queue.",
    ["queue", "error_type"],
)
HANDLER_DURATION = Histogram(
    "socialpipe_handler_duration_seconds",
    "Time a handler call took.",
    ["queue"],
    buckets=LATENCY_BUCKETS,
)
END_TO_END_LATENCY = Histogram(
    "socialpipe_end_to_end_latency_seconds",
    "From the envelope's occurredAt to the read model written.",
    ["pipeline", "event_type"],
    buckets=LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge("socialpipe_in_flight_messages", "Messages being handled.", ["queue"])
FANOUT_TARGETS_WRITTEN = Counter(
    "socialpipe_fanout_targets_written_total", "Feeds that received a post id."
)
FANOUT_TARGETS_SKIPPED = Counter(
    "socialpipe_fanout_targets_skipped_total", "Feeds that already held the post id."
)
FANOUT_TARGETS_FAILED = Counter(
    "socialpipe_fanout_targets_failed_total", "Feeds a push to failed (retried later)."
)
BREAKER_STATE = Gauge(
    "socialpipe_circuit_breaker_state",
    "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
    ["breaker"],
)
DLQ_DEPTH = Gauge(
    "socialpipe_dlq_depth", "ApproximateNumberOfMessages of a dead-letter queue.", ["queue"]
)
OUTBOX_LAG = Gauge(
    "socialpipe_outbox_lag_seconds", "Age of the oldest unpublished outbox row (0 when none)."
)
OUTBOX_PUBLISHED = Counter(
    "socialpipe_outbox_published_total", "Outbox events published to the topic.", ["event_type"]
)
OUTBOX_PUBLISH_FAILURES = Counter(
    "socialpipe_outbox_publish_failures_total", "Outbox events whose publish attempt failed."
)
OUTBOX_PARKED = Counter(
    "socialpipe_outbox_parked_total",
    "Outbox events parked after the bus refused them too often.",
    ["event_type"],
)
OUTBOX_PARKED_EVENTS = Gauge(
    "socialpipe_outbox_parked_events", "Outbox events parked and waiting for an operator."
)
NOTIFICATIONS_CREATED = Counter(
    "socialpipe_notifications_created_total", "Notification rows written.", ["kind"]
)
CONSUMER_LAG = Gauge(
    "socialpipe_consumer_lag",
    "Kafka records not yet committed by a consumer group (replaces queue depth on Kafka).",
    ["group", "topic", "partition"],
)
DEPENDENCY_UP = Gauge(
    "socialpipe_dependency_up",
    "1 while a worker's dependency answers its probe, 0 while the worker pauses for it.",
    ["queue", "dependency"],
)
MESSAGES_REQUEUED = Counter(
    "socialpipe_messages_requeued_total",
    "Messages sent back to their own queue with a fresh receive budget during an outage.",
    ["queue", "dependency"],
)
REPLICA_READS = Counter(
    "socialpipe_replica_reads_total",
    "Entities read with DATABASE_READ_URL set, by where the read was finally served:"
    " replica, replica_after_wait (it had lagged) or primary_fallback.",
    ["pipeline", "outcome"],
)
BUILD_INFO = Gauge(
    "socialpipe_build_info",
    "Always 1; the labels name the running release (package version, source commit).",
    ["version", "commit"],
)
# The Connections Service (`socialpipe connections-service`): one series per gRPC method,
# named as gRPC does (`/socialpipe.connections.v1.Connections/AreConnected`); `code` is
# the status code's name (OK, INVALID_ARGUMENT, UNAVAILABLE, CANCELLED, ...).
GRPC_RPC_DURATION = Histogram(
    "socialpipe_grpc_server_handling_seconds",
    "Time the Connections Service took to answer one call, the whole stream for a stream.",
    ["method"],
    buckets=(0.001, 0.0025, 0.005, *LATENCY_BUCKETS),
)
GRPC_RPC_HANDLED = Counter(
    "socialpipe_grpc_server_handled_total",
    "Calls the Connections Service finished, by method and status code.",
    ["method", "code"],
)
GRPC_CLIENT_CALLS = Counter(
    "socialpipe_grpc_client_calls_total",
    "Calls a client (the feed worker) made to the Connections Service, by method and status code.",
    ["method", "code"],
)
# `socialpipe reconcile … --pace adaptive`: the pace it settled on, units (users or
# rows) per second; it falls while the live pipeline it shares resources with is busy.
RECONCILE_RATE = Gauge(
    "socialpipe_reconcile_rate",
    "The adaptive pace of a reconcile run, units per second.",
    ["reconciler"],
)
# The API's profile cache (docs/profile-cache.md): reads served from Redis or not,
# entries dropped by a profile change or for room, and Redis calls that failed (the
# read then went to PostgreSQL; `operation` is read, store, begin_change or end_change).
PROFILE_CACHE_HITS = Counter(
    "socialpipe_profile_cache_hits_total", "Profile reads the API served from the cache."
)
PROFILE_CACHE_MISSES = Counter(
    "socialpipe_profile_cache_misses_total",
    "Profile reads the API had to load from PostgreSQL (Redis failures included).",
)
PROFILE_CACHE_INVALIDATIONS = Counter(
    "socialpipe_profile_cache_invalidations_total",
    "Cached profiles dropped because their profile, work history, education or skills changed.",
)
PROFILE_CACHE_EVICTIONS = Counter(
    "socialpipe_profile_cache_evictions_total",
    "Cached profiles dropped to keep a shard within PROFILE_CACHE_MAX_ENTRIES.",
)
PROFILE_CACHE_ERRORS = Counter(
    "socialpipe_profile_cache_errors_total",
    "Profile cache calls Redis failed, by operation.",
    ["operation"],
)
# The API's GraphQL operations: `operation` is the root field (or `several`, `none`),
# `status` the HTTP status class (2xx, 4xx, 5xx).
API_OPERATIONS = Counter(
    "socialpipe_api_operations_total",
    "GraphQL operations the API answered, by root field and HTTP status class.",
    ["operation", "status"],
)
API_OPERATION_DURATION = Histogram(
    "socialpipe_api_operation_duration_seconds",
    "Time the API took to run one GraphQL operation, by root field.",
    ["operation"],
    buckets=LATENCY_BUCKETS,
)
