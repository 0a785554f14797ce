"""`socialpipe dlq …` as an operator runs it, against moto."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import orjson

from config.settings import Settings
from consumers.publish import send_raw
from consumers.topology import ensure_topology
from tests.factories import post_created, profile_updated, sns_notification
from tests.integration.consumers.helpers import attrs, depth, drain
from tests.settings import PortFactory


async def socialpipe(settings: Settings, *args: str, **env: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from cli.main import main; main()",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={
            **os.environ,
            "AWS_ENDPOINT_URL": settings.aws_endpoint_url or "",
            "DATABASE_URL": settings.database_url,
            **env,
        },
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def seed_dead_letters(settings: Settings, sqs: Any, sns: Any) -> str:
    topo = await ensure_topology(sqs, sns, settings)
    url = topo.dlq_url(settings.feed_queue)
    for i, env in enumerate([post_created(), post_created(), profile_updated()]):
        failure = {
            "errorType": "MalformedMessage" if i else "FanoutIncomplete",
            "errorMessage": "x",
        }
        await send_raw(sqs, url, env.to_json(), {**env.attributes(), **failure})
    return url


async def test_list_shows_counts_by_type_and_consumes_nothing(
    settings: Settings, sqs: Any, sns: Any
) -> None:
    # GIVEN three dead letters on the feed DLQ
    url = await seed_dead_letters(settings, sqs, sns)
    # WHEN an operator lists them as a table and as JSON
    code, out, err = await socialpipe(settings, "dlq", "list", "feed")
    jcode, jout, _ = await socialpipe(settings, "dlq", "list", "feed-fanout", "--json")
    # THEN both name the counts by event and error type
    assert code == 0, err
    assert "feed-fanout-dlq" in out and "3 message(s)" in out and "PostCreated" in out
    data = orjson.loads(jout)
    assert jcode == 0
    assert data["byEventType"] == {"PostCreated": 2, "UserProfileUpdated": 1}
    assert data["byErrorType"] == {"MalformedMessage": 2, "FanoutIncomplete": 1}
    # AND the messages are all still there
    assert await depth(sqs, url) == 3


async def test_show_then_redrive_then_purge(settings: Settings, sqs: Any, sns: Any) -> None:
    # GIVEN three dead letters
    url = await seed_dead_letters(settings, sqs, sns)
    listed = orjson.loads((await socialpipe(settings, "dlq", "list", "feed", "--json"))[1])
    message_id = listed["examples"][0]["messageId"]
    # WHEN one is shown
    code, out, _ = await socialpipe(settings, "dlq", "show", "feed", message_id)
    # THEN body, reason and attempts are printed
    assert code == 0 and message_id in out and "errorType" in out and "eventId" in out
    assert "attempts" in out
    # WHEN the PostCreated ones are redriven (dry run first)
    dry = await socialpipe(
        settings, "dlq", "redrive", "feed", "--filter", "eventType=PostCreated", "--dry-run"
    )
    assert dry[0] == 0 and "1 message(s) would be redriven" in dry[1]
    code, out, _ = await socialpipe(
        settings, "dlq", "redrive", "feed", "--filter", "eventType=PostCreated", "--rate", "50"
    )
    # THEN the transient one moved, the malformed one and the other event type stay
    assert code == 0 and "redrove 1 message(s)" in out
    assert "1 permanent failure(s) left" in out
    assert await depth(sqs, url) == 2
    # WHEN purge is asked without --yes, then with it
    refused = await socialpipe(settings, "dlq", "purge", "feed")
    done = await socialpipe(settings, "dlq", "purge", "feed", "--yes")
    # THEN the first is a usage error that deletes nothing, the second empties the DLQ
    assert refused[0] == 2 and "--yes" in refused[2]
    assert done[0] == 0 and await depth(sqs, url) == 0


async def test_dead_letters_without_failure_attributes_are_named_from_their_body(
    settings: Settings, sqs: Any, sns: Any
) -> None:
    # GIVEN a raw and an SNS-wrapped post in the DLQ with no attributes, as the queue's
    # redrive policy leaves a message a worker died on
    topo = await ensure_topology(sqs, sns, settings)
    url = topo.dlq_url(settings.feed_queue)
    await send_raw(sqs, url, post_created().to_json())
    await send_raw(sqs, url, sns_notification(post_created()))
    # WHEN an operator lists them
    code, out, err = await socialpipe(settings, "dlq", "list", "feed", "--json")
    # THEN they count as PostCreated that exceeded maxReceiveCount, after 4 attempts
    assert code == 0, err
    listed = orjson.loads(out)
    assert listed["byEventType"] == {"PostCreated": 2}
    assert listed["byErrorType"] == {"maxReceiveCountExceeded": 2}
    assert {e["attempts"] for e in listed["examples"]} == {"4"}
    # WHEN one is shown twice
    message_id = listed["examples"][0]["messageId"]
    shows = [await socialpipe(settings, "dlq", "show", "feed", message_id, "--json") for _ in "ab"]
    # THEN both show the same attempts and the event type from the body
    first, second = (orjson.loads(out) for _, out, _ in shows)
    assert first["attempts"] == second["attempts"] == "4"
    assert first["eventType"] == "PostCreated" and first["errorType"] == "maxReceiveCountExceeded"
    # AND a redrive filtered by event type or by error type selects both
    for selector in ("eventType=PostCreated", "errorType=maxReceiveCountExceeded"):
        args = ("dlq", "redrive", "feed", "--filter", selector, "--dry-run")
        dry = await socialpipe(settings, *args)
        assert dry[0] == 0 and "2 message(s) would be redriven" in dry[1], dry


async def test_show_finds_a_dead_letter_by_the_id_in_the_workers_log_line(
    settings: Settings, sqs: Any, sns: Any
) -> None:
    # GIVEN a dead letter whose source message had id src-1 (as the worker logged it)
    topo = await ensure_topology(sqs, sns, settings)
    envelope = post_created()
    failure = {"errorType": "InvalidEvent", "attempts": "1", "sourceMessageId": "src-1"}
    attributes = {**envelope.attributes(), **failure}
    dead_id = await send_raw(sqs, topo.dlq_url(settings.feed_queue), envelope.to_json(), attributes)
    # WHEN the operator shows src-1
    code, out, err = await socialpipe(settings, "dlq", "show", "feed", "src-1", "--json")
    # THEN the dead letter is found, with its own id beside the source's
    assert code == 0, err
    shown = orjson.loads(out)
    assert (shown["messageId"], shown["sourceMessageId"]) == (dead_id, "src-1")


async def test_redrive_breaks_down_by_error_type_and_resends_only_what_can_succeed(
    settings: Settings, sqs: Any, sns: Any
) -> None:
    # GIVEN a malformed and a transient dead letter
    topo = await ensure_topology(sqs, sns, settings)
    for error_type in ("MalformedMessage", "TransientError"):
        env = post_created()
        attributes = {**env.attributes(), "errorType": error_type, "attempts": "4"}
        await send_raw(sqs, topo.dlq_url(settings.feed_queue), env.to_json(), attributes)
    # WHEN they are redriven without --include-permanent
    code, out, err = await socialpipe(settings, "dlq", "redrive", "feed")
    # THEN a table names each error type, its count and whether it is permanent
    assert code == 0, err
    assert _row(out, "MalformedMessage")[1:] == ["1", "yes (left)"]
    assert _row(out, "TransientError")[1:] == ["1", "no"]
    # AND the transient one went back marked, the malformed one stays, and the output
    # says how to include it
    assert "redrove 1 message(s)" in out and "--include-permanent" in out
    [resent] = await drain(sqs, topo.queue_url(settings.feed_queue))
    assert "redrivenAt" in attrs(resent) and "errorType" not in attrs(resent)
    assert await depth(sqs, topo.dlq_url(settings.feed_queue)) == 1
    code, out, _ = await socialpipe(settings, "dlq", "redrive", "feed", "--include-permanent")
    assert code == 0 and "redrove 1 message(s)" in out
    assert await depth(sqs, topo.dlq_url(settings.feed_queue)) == 0


def _row(table: str, first_cell: str) -> list[str]:
    """The cells of the printed table row that starts with `first_cell`."""
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("│|").split("│")]
        if cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r} in:\n{table}")


async def test_operator_errors_are_one_sentence(
    settings: Settings, sqs: Any, sns: Any, port_factory: PortFactory
) -> None:
    await ensure_topology(sqs, sns, settings)
    unknown = await socialpipe(settings, "dlq", "list", "orders")
    missing = await socialpipe(settings, "dlq", "show", "feed", "no-such-message")
    bad_filter = await socialpipe(settings, "dlq", "redrive", "feed", "--filter", "type=X")
    unreachable = await socialpipe(
        settings, "dlq", "list", "feed", AWS_ENDPOINT_URL=f"http://127.0.0.1:{port_factory()}"
    )
    assert unknown[0] == 1 and "Unknown queue 'orders'" in unknown[2]
    assert missing[0] == 1 and "no message no-such-message" in missing[2]
    assert bad_filter[0] == 2 and "eventType=TYPE or errorType=TYPE" in bad_filter[2]
    assert unreachable[0] == 1 and "cannot reach" in unreachable[2]
    for _, _, err in (unknown, missing, bad_filter, unreachable):
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
