"""structlog JSON logs: every line carries `serviceName`; handlers bind `correlationId`."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO, cast

import orjson
import structlog

_SECRET_KEYS = frozenset(
    {
        "password",
        "password_hash",
        "passwordHash",
        "mfa_secret",
        "mfaSecret",
        "token",
        "aws_secret_access_key",
    }
)


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in _SECRET_KEYS & event.keys():
        event[key] = "[redacted]"
    return event


class _CurrentStderr:
    """Writes to whatever `sys.stderr` is at write time, not at configure time, so a
    replaced or closed stream (test capture, a daemonised process) is never held."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(service_name: str, level: str = "INFO", stream: Any = None) -> None:
    """Route structlog and stdlib logging to one JSON-lines stream (stderr by default)."""
    out = cast(TextIO, stream or _CurrentStderr())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
            _redact,
            structlog.processors.dict_tracebacks,
            structlog.processors.EventRenamer("message"),
            structlog.processors.JSONRenderer(serializer=lambda o, **_: orjson.dumps(o).decode()),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(serviceName=service_name)
    logging.basicConfig(level=logging.WARNING, stream=out, format="%(message)s", force=True)
