"""The one typed settings object (docs/architecture.md#environment).

Nothing else reads the environment.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")) or len(value.split()) != 1:
        raise ValueError(f"expected an http(s):// URL, e.g. http://otel:4318, got {value!r}")
    return value


class Settings(BaseSettings):
    """Process configuration, validated at start-up.

    The first block is the contract; the rest are tuning knobs with defaults an
    operator rarely needs to touch. Durations are seconds.
    """

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    database_url: str = "postgresql://postgres@127.0.0.1:5432/socialpipe"
    # A streaming replica for the workers' and reconcilers' reads; unset = DATABASE_URL.
    database_read_url: str | None = None
    redis_url: str = "redis://127.0.0.1:6379/0"
    aws_endpoint_url: str | None = None
    aws_region: str = "us-east-1"
    events_topic: str = "social-events"
    feed_queue: str = "feed-fanout"
    search_queue: str = "search-indexing"
    notifications_queue: str = "notifications"
    search_backend: Literal["postgres", "opensearch"] = "postgres"
    opensearch_url: str = "http://127.0.0.1:9200"
    feed_max_length: int = Field(default=800, ge=1, le=100_000)
    fanout_batch_size: int = Field(default=1000, ge=1, le=5000)
    fanout_parallelism: int = Field(default=4, ge=1, le=64)
    metrics_port: int = Field(default=9100, ge=0, le=65535)
    # All interfaces, so a pod's probes and scraper reach it; tests bind loopback.
    metrics_host: str = "0.0.0.0"
    # The source commit the image was built from (the Dockerfile sets it from VCS_REF);
    # a label of socialpipe_build_info.
    build_commit: str = "unknown"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Tracing (docs/tracing.md): spans go over OTLP/HTTP to this collector URL (e.g.
    # http://otel-collector:4318); unset, tracing is off. Of the traces a process
    # starts, this share is kept (a trace begun upstream keeps the upstream choice).
    otel_exporter_otlp_endpoint: Annotated[str, AfterValidator(_http_url)] | None = None
    trace_sample_ratio: float = Field(default=1.0, ge=0, le=1)
    event_transport: Literal["sqs", "kafka"] = "sqs"
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # Kafka transport knobs: partitions of the events topic (keys spread over them),
    # how long a group join may take, and how often settled offsets are committed.
    kafka_partitions: int = Field(default=12, ge=1, le=1000)
    kafka_rebalance_timeout_seconds: float = Field(default=10.0, gt=0, le=600)
    kafka_commit_interval_seconds: float = Field(default=1.0, gt=0, le=60)

    # Credentials only matter against an emulator; on AWS the default chain applies.
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None

    visibility_timeout: int = Field(default=30, ge=1, le=43_200)
    max_receive_count: int = Field(default=4, ge=1, le=1000)
    retry_base_seconds: float = Field(default=2.0, gt=0)
    retry_max_seconds: float = Field(default=300.0, gt=0)
    inprocess_retries: int = Field(default=3, ge=0, le=10)
    inprocess_retry_base_seconds: float = Field(default=0.05, ge=0)
    pollers: int = Field(default=2, ge=1, le=32)
    receive_wait_seconds: int = Field(default=20, ge=0, le=20)
    shutdown_grace_seconds: float = Field(default=25.0, gt=0)
    connections_cache_ttl: int = Field(default=300, ge=1)
    connections_stale_ttl: int = Field(default=86_400, ge=1)
    fanout_marker_ttl: int = Field(default=86_400, ge=3600)
    breaker_failure_rate: float = Field(default=0.5, gt=0, le=1)
    breaker_window_seconds: float = Field(default=60.0, gt=0)
    breaker_min_calls: int = Field(default=10, ge=1)
    breaker_call_timeout: float = Field(default=2.0, gt=0)
    breaker_open_seconds: float = Field(default=30.0, gt=0)
    # API bearer tokens: HMAC secret (unset = a random one per process) and lifetime.
    api_token_secret: str | None = Field(default=None, min_length=32)
    # At most a day: a token cannot be revoked, so a stolen one must not outlive that.
    api_token_ttl_seconds: int = Field(default=3600, ge=60, le=86_400)
    # The public API's limits (docs/api-limits.md): schema introspection, request body
    # size, resolvers running at once (process-wide, below the pools) and search time.
    api_introspection: bool = False
    api_max_body_bytes: int = Field(default=131_072, ge=4096, le=4 * 1024 * 1024)
    api_max_concurrent_resolvers: int = Field(default=16, ge=1, le=1000)
    api_search_timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    # Sign-in and registration limits (docs/api-abuse.md): logins per client address
    # per 5 minutes, wrong passwords per account per 15 minutes, registrations per
    # address per hour; password checks at once (0: half the CPUs).
    api_logins_per_address: int = Field(default=30, ge=1, le=100_000)
    api_login_failures_per_account: int = Field(default=10, ge=1, le=10_000)
    api_registrations_per_address: int = Field(default=10, ge=1, le=100_000)
    api_password_checks_at_once: int = Field(default=0, ge=0, le=256)
    # The API's profile cache (docs/profile-cache.md): how long an entry lives and how
    # many entries at most (0 turns the cache off).
    profile_cache_ttl_seconds: int = Field(default=300, ge=1, le=86_400)
    profile_cache_max_entries: int = Field(default=100_000, ge=0, le=10_000_000)
    # Outbox rows the event bus refuses this many times are parked instead of retried.
    outbox_max_attempts: int = Field(default=10, ge=1, le=1000)
    # The Connections Service (docs/connections-service.md): where `socialpipe
    # connections-service` listens and the feed worker calls it (`host:port`), and where
    # the feed worker reads an author's connections from: PostgreSQL or that service.
    connections_service_addr: str = "127.0.0.1:50051"
    connections_source: Literal["postgres", "grpc"] = "postgres"

    @field_validator("connections_service_addr")
    @classmethod
    def _host_and_port(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or int(port) > 65535:
            raise ValueError(f"expected host:port, e.g. 127.0.0.1:50051, got {value!r}")
        return value


class SettingsError(Exception):
    """Raised with one readable sentence when the environment is invalid."""


def load_settings(**overrides: object) -> Settings:
    """Read the environment (plus `overrides`), turning validation errors into one sentence."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "configuration"
        # A validator's own sentence, without pydantic's "Value error, " in front.
        message = str(first["msg"]).removeprefix("Value error, ")
        raise SettingsError(f"Invalid {name}: {message}.") from None
