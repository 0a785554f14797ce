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
from tests.conftest import free_port
from tests.factories import post_created, profile_updated
from tests.integration.consumers.helpers import depth


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
    # THEN body, reason and receive count are printed
    assert code == 0 and message_id in out and "errorType" in out and "eventId" in out
    # WHEN the PostCreated ones are redriven (dry run first)
    dry = await socialpipe(
        settings, "dlq", "redrive", "feed", "--filter", "eventType=PostCreated", "--dry-run"
    )
    assert dry[0] == 0 and "2 message(s) would be redriven" in dry[1]
    code, out, _ = await socialpipe(
        settings, "dlq", "redrive", "feed", "--filter", "eventType=PostCreated", "--rate", "50"
    )
    # THEN two moved and one stays
    assert code == 0 and "redrove 2 message(s)" in out
    assert await depth(sqs, url) == 1
    # WHEN purge is asked without --yes, then with it
    refused = await socialpipe(settings, "dlq", "purge", "feed")
    done = await socialpipe(settings, "dlq", "purge", "feed", "--yes")
    # THEN the first is a usage error that deletes nothing, the second empties the DLQ
    assert refused[0] == 2 and "--yes" in refused[2]
    assert done[0] == 0 and await depth(sqs, url) == 0


async def test_operator_errors_are_one_sentence(settings: Settings, sqs: Any, sns: Any) -> None:
    await ensure_topology(sqs, sns, settings)
    unknown = await socialpipe(settings, "dlq", "list", "orders")
    missing = await socialpipe(settings, "dlq", "show", "feed", "no-such-message")
    bad_filter = await socialpipe(settings, "dlq", "redrive", "feed", "--filter", "type=X")
    unreachable = await socialpipe(
        settings, "dlq", "list", "feed", AWS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}"
    )
    assert unknown[0] == 1 and "Unknown queue 'orders'" in unknown[2]
    assert missing[0] == 1 and "no message no-such-message" in missing[2]
    assert bad_filter[0] == 2 and "eventType=TYPE" in bad_filter[2]
    assert unreachable[0] == 1 and "cannot reach" in unreachable[2]
    for _, _, err in (unknown, missing, bad_filter, unreachable):
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
