"""structlog JSON logs: every line carries `serviceName`; handlers bind `correlationId`.

With tracing on (docs/tracing.md), a line written inside a span also carries its
`traceId` and `spanId`, so a trace and its log lines find each other.

Every line a process writes to its log stream is one JSON object, whoever wrote
it: our structlog loggers, and through a `ProcessorFormatter` on the stdlib root
logger the libraries (asyncpg, botocore, redis, uvicorn, faust, aiokafka,
opensearch, asyncio's "Task exception was never retrieved"). An exception is
rendered into one `stackTrace` string field; uncaught exceptions, in the main
thread, other threads and the event loop, are logged the same way instead of
printed as a plain traceback.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import threading
import traceback
from collections.abc import MutableMapping
from types import TracebackType
from typing import Any, Final, TextIO, cast

import orjson
import structlog
from structlog.typing import Processor

from contracts import tracing

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
# Library chatter below this level stays out of the log even when ours is DEBUG.
_LIBRARY_LEVEL: Final = logging.WARNING
_HANDLER_NAME: Final = "socialpipe-json"
_USERINFO: Final = re.compile(r"(?<=://)[^/@\s]+@")

log = structlog.get_logger("config.logging")


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in _SECRET_KEYS & event.keys():
        event[key] = "[redacted]"
    return event


def redact_url(text: str) -> str:
    """`text` with the user and password of every URL in it removed."""
    return _USERINFO.sub("", text)


def _redact_urls(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Drop `user:password@` from URLs in string fields (a DSN in an error message)."""
    for key, value in event.items():
        if isinstance(value, str) and "@" in value:
            event[key] = redact_url(value)
    return event


def _exc_tuple(exc_info: Any) -> tuple[Any, BaseException, TracebackType | None] | None:
    if isinstance(exc_info, BaseException):
        return type(exc_info), exc_info, exc_info.__traceback__
    if isinstance(exc_info, tuple):
        return cast(tuple[Any, BaseException, TracebackType | None], exc_info)
    info = sys.exc_info()
    return None if info[1] is None else cast(tuple[Any, BaseException, TracebackType | None], info)


def _stack_trace(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Render `exc_info` into `stackTrace` (one string field, so one line of JSON)."""
    exc_info = event.pop("exc_info", None)
    if not exc_info:
        return event
    resolved = _exc_tuple(exc_info)
    if resolved is None:
        return event
    _, exc, _tb = resolved
    event.setdefault("errorType", type(exc).__name__)
    event.setdefault("errorMessage", str(exc))
    event["stackTrace"] = "".join(traceback.format_exception(*resolved))
    return event


def _trace_ids(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """`traceId` and `spanId` of the current span, when tracing is on (docs/tracing.md)."""
    ids = tracing.current_ids()
    if ids is not None:
        event.setdefault("traceId", ids[0])
        event.setdefault("spanId", ids[1])
    return event


def _render(_: Any, __: str, event: MutableMapping[str, Any]) -> str:
    # `default=repr`: a library's extra field (a socket, a task) must not break its line.
    return orjson.dumps(event, default=repr).decode()


def _shared_processors() -> list[Processor]:
    """What every line goes through, ours and the libraries', up to the renderer."""
    return [
        structlog.contextvars.merge_contextvars,
        _trace_ids,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        _redact,
        _stack_trace,
        _redact_urls,
        structlog.processors.EventRenamer("message"),
    ]


class _CurrentStderr:
    """Writes to whatever `sys.stderr` is at write time, not at configure time, so a
    replaced or closed stream (test capture, a daemonised process) is never held."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def json_handler(stream: Any, level: int = logging.NOTSET) -> logging.Handler:
    """A stdlib handler that renders every record as one JSON line on `stream`."""
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *_shared_processors()],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, _render],
    )
    handler = logging.StreamHandler(stream)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    handler.setLevel(level)
    return handler


def _route_stdlib(out: Any, level: int) -> None:
    """Make the root logger's one handler ours; libraries' own handlers give way to it."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(json_handler(out))
    root.setLevel(max(level, _LIBRARY_LEVEL))
    # uvicorn's default config, once applied in this process, leaves plain-text handlers
    # on its loggers and stops them propagating; the API itself starts uvicorn without it.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        named = logging.getLogger(name)
        named.handlers.clear()
        named.propagate = True
    logging.captureWarnings(True)


def configure_logging(service_name: str, level: str = "INFO", stream: Any = None) -> None:
    """Route structlog and stdlib logging to one JSON-lines stream (stderr by default)."""
    out = cast(TextIO, stream or _CurrentStderr())
    numeric = logging.getLevelName(level)
    structlog.configure(
        processors=[*_shared_processors(), _render],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(serviceName=service_name)
    _route_stdlib(out, numeric)
    install_exception_hooks()


def _log_uncaught(
    kind: str, exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    log.critical(kind, exc_info=(exc_type, exc, tb))


def _excepthook(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    _log_uncaught("uncaught exception", exc_type, exc, tb)


def _thread_excepthook(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None or issubclass(args.exc_type, SystemExit):
        return
    thread = args.thread.name if args.thread else "?"
    log.critical(
        "uncaught exception in a thread",
        thread=thread,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )


def loop_exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The event loop's handler: what asyncio would print, as one JSON line."""
    message = context.get("message") or "unhandled exception in the event loop"
    exc = context.get("exception")
    extra = {k: repr(v) for k, v in context.items() if k not in ("message", "exception")}
    log.error(message, exc_info=exc if isinstance(exc, BaseException) else None, **extra)


def install_exception_hooks() -> None:
    """Route uncaught exceptions (main thread, threads, running event loop) to the log."""
    sys.excepthook = _excepthook
    threading.excepthook = _thread_excepthook
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return  # no loop yet: `cli.common.run` installs the handler on the one it starts
    loop.set_exception_handler(loop_exception_handler)
