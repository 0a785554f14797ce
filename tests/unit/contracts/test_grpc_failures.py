"""gRPC statuses in the one failure policy: UNAVAILABLE an outage, DEADLINE_EXCEEDED
transient, a status the server chose permanent, INTERNAL unexpected."""

from __future__ import annotations

import grpc
import pytest

from contracts.errors import DependencyDown, PermanentError, TransientError
from contracts.failures import CONNECTIONS_SERVICE, UnexpectedError, is_transient, translate

OPERATION = "Reading the connections of user u from the Connections Service"


def rpc_error(code: grpc.StatusCode, details: str = "why") -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


def test_unavailable_is_an_outage_of_the_named_dependency() -> None:
    error = translate(
        rpc_error(grpc.StatusCode.UNAVAILABLE, "connection refused"),
        operation=OPERATION,
        dependency=CONNECTIONS_SERVICE,
    )
    assert isinstance(error, DependencyDown)
    assert error.dependency == CONNECTIONS_SERVICE
    assert error.message == f"{OPERATION} failed: UNAVAILABLE: connection refused"


def test_deadline_exceeded_is_transient_not_an_outage() -> None:
    error = translate(rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED), operation=OPERATION)
    assert type(error) is TransientError
    assert error.error_type == "DeadlineExceeded"


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.NOT_FOUND,
    ],
)
def test_a_status_the_server_chose_is_permanent_and_never_retried(code: grpc.StatusCode) -> None:
    error = translate(rpc_error(code), operation=OPERATION)
    assert isinstance(error, PermanentError)
    assert not is_transient(rpc_error(code))


def test_internal_is_unexpected() -> None:
    error = translate(rpc_error(grpc.StatusCode.INTERNAL), operation=OPERATION)
    assert isinstance(error, UnexpectedError)
    assert error.error_type == "Internal"
