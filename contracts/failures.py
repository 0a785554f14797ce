"""What the clients' exceptions mean: the one place that knows it.

Adapters call `translate` (or use `boundary`) where they call their client, so
the error they raise names the operation and carries its kind; the consumer
runtime's classifier calls the same `translate` for whatever escapes
untranslated. A client error is one of:

- an *outage* (`DependencyDown`): the dependency does not answer at all —
  connection refused or reset, a closed connection, a server shutting down or
  still loading its data;
- *transient* (`TransientError`): it answered, but a retry may succeed —
  timeouts, 5xx, throttling, serialization failures, deadlocks, too many
  connections;
- *permanent* (`PermanentError`): the request itself is wrong — a data or
  constraint error reported by PostgreSQL;
- anything else is *unexpected* (`UnexpectedError`): likely a bug; only the
  queue's redelivery retries it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

import asyncpg
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from redis import exceptions as redis_errors

from contracts.errors import (
    DependencyDown,
    PermanentError,
    PipelineError,
    TransientError,
    failed_operation,
)

POSTGRES: Final = "PostgreSQL"
REDIS: Final = "Redis"
SEARCH_INDEX: Final = "search index"
EVENT_BUS: Final = "event bus"
CONNECTIONS_SERVICE: Final = "Connections Service"

THROTTLING_CODES: Final = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "SlowDown",
        "RequestLimitExceeded",
    }
)
_RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})

_PG_OUTAGE: Final = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
)
_PG_TRANSIENT: Final = (
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.QueryCanceledError,
    asyncpg.exceptions.LockNotAvailableError,
)
_PG_PERMANENT: Final = (
    asyncpg.exceptions.DataError,
    asyncpg.exceptions.IntegrityConstraintViolationError,
)
# A connection the peer closed or refused, whoever the peer was.
_SOCKET_OUTAGE: Final = (ConnectionRefusedError, ConnectionResetError, BrokenPipeError)


class UnexpectedError(PipelineError):
    """Neither known transient nor known permanent: probably a bug."""

    error_type = "UnexpectedError"


def translate(
    exc: BaseException, *, operation: str, dependency: str | None = None
) -> PipelineError:
    """`exc` as one of our failure types, its message naming `operation`.

    `dependency` is who was being called, for errors that do not say it
    themselves (a refused socket); our own errors pass through unchanged.
    """
    if isinstance(exc, PipelineError):
        return exc
    reason = failed_operation(operation, _grpc_status(exc) or exc)
    down = _outage_of(exc, dependency)
    if down is not None:
        return DependencyDown(down, reason)
    if is_transient(exc):
        return TransientError(reason, error_type=_error_type(exc))
    if isinstance(exc, _PG_PERMANENT) or _is_grpc_refusal(exc):
        return PermanentError(reason, error_type=_error_type(exc))
    return UnexpectedError(reason, error_type=_error_type(exc))


@contextmanager
def boundary(operation: str, *, dependency: str) -> Iterator[None]:
    """Re-raise any client error inside as our own type (see `translate`)."""
    try:
        yield
    except Exception as exc:
        raise translate(exc, operation=operation, dependency=dependency) from exc


def _outage_of(exc: BaseException, dependency: str | None) -> str | None:
    """The dependency that is down, if `exc` says one is."""
    if isinstance(exc, redis_errors.ConnectionError):  # BusyLoadingError included
        return REDIS
    if isinstance(exc, _PG_OUTAGE):
        return POSTGRES
    if _is_opensearch_connection_error(exc):
        return SEARCH_INDEX
    if _grpc_code(exc) == "UNAVAILABLE":
        return dependency or "a gRPC service"
    if isinstance(exc, _SOCKET_OUTAGE) or (
        isinstance(exc, OSError) and not isinstance(exc, TimeoutError) and dependency
    ):
        return dependency or "a dependency"
    return None


def is_transient(exc: BaseException) -> bool:
    """Whether retrying soon may help: I/O trouble, timeouts, 5xx, throttling."""
    if isinstance(exc, PermanentError):
        return False
    if isinstance(exc, TransientError | ConnectionError | OSError | TimeoutError):
        return True
    if isinstance(exc, redis_errors.TimeoutError | redis_errors.ConnectionError):
        return True
    if isinstance(exc, (*_PG_OUTAGE, *_PG_TRANSIENT, asyncpg.InterfaceError)):
        return True
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        return True
    if isinstance(exc, ClientError):
        return _client_error_is_transient(exc)
    if _grpc_code(exc) in _GRPC_RETRYABLE:
        return True
    return _is_opensearch_transient(exc)


def _client_error_is_transient(exc: ClientError) -> bool:
    response = exc.response or {}
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    code = str(response.get("Error", {}).get("Code", ""))
    return status >= 500 or status == 429 or code in THROTTLING_CODES


def _is_opensearch_connection_error(exc: BaseException) -> bool:
    # Imported only when such an error is met: most processes never load the client.
    if not type(exc).__module__.startswith("opensearchpy"):
        return False
    from opensearchpy import ConnectionError as OpenSearchConnectionError
    from opensearchpy import ConnectionTimeout

    return isinstance(exc, OpenSearchConnectionError) and not isinstance(exc, ConnectionTimeout)


def _is_opensearch_transient(exc: BaseException) -> bool:
    if not type(exc).__module__.startswith("opensearchpy"):
        return False
    from opensearchpy import ConnectionError as OpenSearchConnectionError
    from opensearchpy import TransportError

    if isinstance(exc, OpenSearchConnectionError):
        return True
    return isinstance(exc, TransportError) and exc.status_code in _RETRY_STATUSES


# gRPC: only these two are worth a retry (UNAVAILABLE is also an outage, above); a
# status the server chose (INVALID_ARGUMENT, FAILED_PRECONDITION, ...) is permanent,
# and INTERNAL/UNKNOWN are unexpected (only the queue's redelivery retries them).
_GRPC_RETRYABLE: Final = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED"})
_GRPC_PERMANENT: Final = frozenset(
    {"INVALID_ARGUMENT", "FAILED_PRECONDITION", "NOT_FOUND", "OUT_OF_RANGE", "UNIMPLEMENTED"}
    | {"PERMISSION_DENIED", "UNAUTHENTICATED", "ALREADY_EXISTS"}
)


def _grpc_code(exc: BaseException) -> str | None:
    """The status code's name of a failed gRPC call, else None (grpc loaded only if met)."""
    if not type(exc).__module__.startswith("grpc"):
        return None
    import grpc

    if isinstance(exc, grpc.RpcError) and callable(getattr(exc, "code", None)):
        code = exc.code()
        return code.name if isinstance(code, grpc.StatusCode) else None
    return None


def _is_grpc_refusal(exc: BaseException) -> bool:
    return _grpc_code(exc) in _GRPC_PERMANENT


def _error_type(exc: BaseException) -> str:
    """`DeadlineExceeded` for a gRPC status, else the exception's class name."""
    code = _grpc_code(exc)
    if code is None:
        return type(exc).__name__
    return "".join(part.capitalize() for part in code.split("_"))


def _grpc_status(exc: BaseException) -> Exception | None:
    """A failed gRPC call as one line, `UNAVAILABLE: <details>` (its str() spans several)."""
    code = _grpc_code(exc)
    if code is None:
        return None
    details = getattr(exc, "details", None)
    text = details() if callable(details) else None
    return Exception(f"{code}: {text}" if text else code)
