"""`socialpipe dlq list|show|redrive|purge QUEUE …`: dead-letter tools (docs/dead-letters.md)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import TypeVar

import orjson
import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from cli.common import fail, is_tty, run, settings
from config.dlq import DeadLettersUnavailable, open_dead_letters
from config.settings import Settings
from consumers.topology import UnknownQueue
from contracts.keys import dlq_name
from dlq.letters import is_permanent_error_type
from dlq.ports import (
    DeadLetters,
    DeadLettersMissing,
    DeadMessage,
    RedriveOptions,
    RedriveResult,
    sent_time,
)
from dlq.queues import resolve_queue
from dlq.summary import Summary, format_age, summarise

app = typer.Typer(
    help="Inspect, redrive and purge dead letters (QUEUE: feed, search, notifications "
    "or a queue name).",
    no_args_is_help=True,
)

T = TypeVar("T")
QUEUE_ARG = typer.Argument(..., help="feed, search, notifications, or a queue name.")


def _call(action: Callable[[DeadLetters, str], Awaitable[T]], queue: str) -> T:
    """Resolve the queue, open the transport, run `action`; failures become one sentence."""
    cfg = settings()
    try:
        source = resolve_queue(cfg, queue)
        return run(_with_dead_letters(cfg, source, action))
    except (UnknownQueue, DeadLettersUnavailable, DeadLettersMissing) as exc:
        fail(str(exc))
    except ClientError as exc:
        fail(f"SQS refused the request: {exc.response.get('Error', {}).get('Message', exc)}.")
    except BotoCoreError as exc:
        fail(f"cannot reach SQS at {cfg.aws_endpoint_url or 'AWS'} ({exc}).")


async def _with_dead_letters(
    cfg: Settings, source: str, action: Callable[[DeadLetters, str], Awaitable[T]]
) -> T:
    async with AsyncExitStack() as stack:
        return await action(await open_dead_letters(stack, cfg), source)


@app.command("list")
def list_(
    queue: str = QUEUE_ARG,
    limit: int = typer.Option(
        1000, "--limit", min=1, max=100_000, help="Inspect at most this many."
    ),
    examples: int = typer.Option(3, "--examples", min=0, max=50, help="Examples to show."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """How many dead letters, the oldest one's age, counts by event and error type, examples.

    Nothing is consumed: messages are received with a short visibility timeout and
    released at once.
    """

    async def action(dead: DeadLetters, source: str) -> Summary:
        peek = await dead.peek(source, limit=limit)
        return summarise(peek, now=datetime.now(UTC), examples=examples)

    summary = _call(action, queue)
    if as_json:
        typer.echo(orjson.dumps(summary.as_json()).decode())
        return
    _print_summary(dlq_name(resolve_queue(settings(), queue)), summary)


def _print_summary(name: str, summary: Summary) -> None:
    console = Console()
    partial = "" if summary.complete else f" (first {summary.seen} inspected)"
    console.print(
        f"[bold]{name}[/bold]: {summary.depth} message(s){partial}, "
        f"oldest {format_age(summary.oldest_age_seconds)} old"
    )
    if not summary.seen:
        return
    for title, counts in (
        ("eventType", summary.by_event_type),
        ("errorType", summary.by_error_type),
    ):
        table = Table(title=f"by {title}")
        table.add_column(title)
        table.add_column("count", justify="right")
        for key, count in counts.items():
            table.add_row(key, str(count))
        console.print(table)
    table = Table(title="examples")
    for column in ("messageId", "eventType", "errorType", "attempts", "errorMessage"):
        table.add_column(column, overflow="fold")
    for m in summary.examples:
        table.add_row(m.message_id, m.event_type, m.error_type, m.attempts, m.error_message[:160])
    console.print(table)


@app.command("show")
def show(
    queue: str = QUEUE_ARG,
    message_id: str = typer.Argument(
        ...,
        help="The message id `dlq list` shows, or the messageId of the worker's"
        " 'message dead-lettered' log line.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """One dead letter: body, attributes, failure reason and attempts (not consumed).

    Attempts are the deliveries the workers saw; looking does not change them.
    """

    async def action(dead: DeadLetters, source: str) -> DeadMessage | None:
        return await dead.get(source, message_id)

    message = _call(action, queue)
    if message is None:
        fail(f"no message {message_id} in the dead-letter queue of {queue}.")
    data = _shown(message)
    if as_json:
        typer.echo(orjson.dumps(data).decode())
        return
    console = Console()
    for key, value in data.items():
        if key not in ("attributes", "body"):
            console.print(f"[bold]{key}[/bold]: {escape(str(value))}", highlight=False)
    console.print("[bold]attributes[/bold]:")
    for key, value in message.attributes.items():
        console.print(f"  {key} = {value}", highlight=False, markup=False)
    console.print("[bold]body[/bold]:")
    console.print(message.body, highlight=False, markup=False, soft_wrap=True)


def _shown(message: DeadMessage) -> dict[str, object]:
    return {
        "messageId": message.message_id,
        "sourceMessageId": message.source_message_id or "-",
        "attempts": message.attempts,
        "sentAt": sent_time(message.sent_at),
        "eventType": message.event_type,
        "errorType": message.error_type,
        "permanent": message.permanent,
        "errorMessage": message.error_message,
        "attributes": dict(message.attributes),
        "body": message.body,
    }


FILTER_KEYS = ("eventType", "errorType")


def _parse_filters(values: list[str] | None) -> dict[str, str]:
    """`--filter eventType=T` / `--filter errorType=E`, each at most once."""
    chosen: dict[str, str] = {}
    for value in values or []:
        key, sep, wanted = value.partition("=")
        if key not in FILTER_KEYS or not sep or not wanted or key in chosen:
            fail(
                "--filter takes eventType=TYPE or errorType=TYPE, once each,"
                " e.g. --filter eventType=PostCreated.",
                code=2,
            )
        chosen[key] = wanted
    return chosen


@app.command("redrive")
def redrive(
    queue: str = QUEUE_ARG,
    max_messages: int | None = typer.Option(None, "--max", min=1, help="Move at most N messages."),
    rate: float | None = typer.Option(None, "--rate", min=0.1, help="At most R messages/s."),
    filters: list[str] | None = typer.Option(
        None,
        "--filter",
        help="Only messages of this type, as eventType=TYPE or errorType=TYPE (repeatable).",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Count what would move; move nothing."),
    include_permanent: bool = typer.Option(
        False,
        "--include-permanent",
        help="Also resend permanent failures (malformed, invalid...), e.g. after a fix.",
    ),
) -> None:
    """Send dead letters back to their source queue, through the same pipeline.

    Permanent failures stay dead-lettered unless --include-permanent is given. Every
    message sent is marked `redrivenAt`. Uses SQS's message-move task when the
    endpoint has it and it would do the same; otherwise receive → send → delete in
    batches. Safe to interrupt and run again: a message may arrive twice, none is lost.
    """
    chosen = _parse_filters(filters)
    options = RedriveOptions(
        max_messages,
        rate,
        chosen.get("eventType"),
        dry_run,
        error_type=chosen.get("errorType"),
        include_permanent=include_permanent,
    )

    async def action(dead: DeadLetters, source: str) -> RedriveResult:
        with _progress_bar() as bar:
            task = bar.add_task("redrive", total=None)
            return await dead.redrive(
                source, options, lambda done, total: bar.update(task, completed=done, total=total)
            )

    result = _call(action, queue)
    for note in result.notes:
        typer.echo(note, err=True)
    _print_breakdown(result, include_permanent=include_permanent)
    if dry_run:
        typer.echo(f"dry run: {result.matched} message(s) would be redriven to {queue}.")
    else:
        typer.echo(
            f"redrove {result.moved} message(s) to {resolve_queue(settings(), queue)}"
            f" ({result.method}; {result.skipped} left by the filter)."
        )
    if result.permanent:
        typer.echo(
            f"{result.permanent} permanent failure(s) left in the dead-letter queue;"
            " add --include-permanent to redrive them too."
        )
    if not dry_run and result.moved < result.matched:
        unsent = result.matched - result.moved
        fail(f"{unsent} message(s) could not be sent; they stay dead-lettered.")


def _print_breakdown(result: RedriveResult, *, include_permanent: bool) -> None:
    """The selected messages by errorType, and whether each type is a permanent failure."""
    if not result.by_error_type:
        return
    table = Table(title="by errorType")
    table.add_column("errorType")
    table.add_column("count", justify="right")
    table.add_column("permanent?")
    for error_type, count in result.by_error_type.most_common():
        permanent = is_permanent_error_type(error_type)
        kept = " (left)" if permanent and not include_permanent else ""
        table.add_row(error_type, str(count), f"yes{kept}" if permanent else "no")
    Console(width=100).print(table)


def _progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not is_tty(),
        transient=False,
    )


@app.command("purge")
def purge(
    queue: str = QUEUE_ARG,
    yes: bool = typer.Option(False, "--yes", help="Confirm: the messages are gone for good."),
) -> None:
    """Delete every dead letter of QUEUE (asks for --yes)."""
    if not yes:
        fail(f"purge deletes every dead letter of {queue} for good; add --yes to confirm.", code=2)

    async def action(dead: DeadLetters, source: str) -> int:
        return await dead.purge(source)

    count = _call(action, queue)
    typer.echo(f"purged about {count} message(s) from the dead-letter queue of {queue}.")
