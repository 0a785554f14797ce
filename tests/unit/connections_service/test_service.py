"""The servicer's boundary: request fields parsed with the field named, our failure
types as status codes."""

from __future__ import annotations

import grpc
import pytest

from connections_service.service import InvalidArgument, _status_of, parse_user_id
from contracts.errors import DependencyDown, PermanentError, TransientError
from contracts.failures import POSTGRES


def test_malformed_user_id_names_the_field() -> None:
    with pytest.raises(InvalidArgument, match=r"^other_user_id must be a UUID, got 'x'\.$"):
        parse_user_id("x", "other_user_id")


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (InvalidArgument("user_id must be a UUID"), grpc.StatusCode.INVALID_ARGUMENT),
        (DependencyDown(POSTGRES, "PostgreSQL is down"), grpc.StatusCode.UNAVAILABLE),
        (TransientError("timed out"), grpc.StatusCode.UNAVAILABLE),
        (PermanentError("bad row"), grpc.StatusCode.FAILED_PRECONDITION),
        (RuntimeError("bug"), grpc.StatusCode.INTERNAL),
    ],
)
def test_failures_become_status_codes(exc: Exception, code: grpc.StatusCode) -> None:
    assert _status_of(exc)[0] is code


def test_internal_errors_do_not_leak_their_text() -> None:
    assert "secret" not in _status_of(RuntimeError("secret"))[1]
