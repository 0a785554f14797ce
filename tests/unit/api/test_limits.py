"""The API's limits and media types as plain functions (docs/api-limits.md)."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from graphql import FragmentDefinitionNode, OperationDefinitionNode, parse

from api.http import RequestRejected, nesting_of, parse_body, preferred_media_type
from api.limits import (
    Busy,
    ResolverSlots,
    SearchShares,
    SlowDown,
    cost_of,
    is_introspection_list,
)
from api.limits import nesting_of as field_nesting
from config.settings import SettingsError, load_settings
from contracts.api_messages import BUSY

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, JSON),
        ("", JSON),
        ("*/*", JSON),
        ("text/html", JSON),
        (JSON, JSON),
        (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE}, {JSON};q=0.9", GRAPHQL_RESPONSE),
        (f"{JSON}, {GRAPHQL_RESPONSE}", GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE};q=0.5, {JSON}", JSON),
        (f"{GRAPHQL_RESPONSE};q=0", JSON),
        (f"{GRAPHQL_RESPONSE};q=nonsense, {JSON}", JSON),
    ],
)
def test_the_preferred_media_type_follows_accept(accept: str | None, chosen: str) -> None:
    assert preferred_media_type(accept) == chosen


def test_json_nesting_is_counted_up_to_the_stop() -> None:
    assert nesting_of({"a": 1}, 10) == 1
    assert nesting_of({"a": [[{"b": []}]]}, 10) == 5
    assert nesting_of([[[[[[]]]]]], 3) == 3
    assert nesting_of("flat", 3) == 0


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{", 400),
        (b"[1]", 400),
        (b'{"query": "{ a }", "v": ' + b"[" * 17 + b"]" * 17 + b"}", 400),
        (b'{"query": "' + b"x" * 101 + b'"}', 400),
        (b'{"query": "{ a }", "operationName": []}', 400),
        (b"[" * 100_000 + b"]" * 100_000, 400),
    ],
)
def test_a_body_that_is_not_a_small_json_object_is_rejected(body: bytes, status: int) -> None:
    with pytest.raises(RequestRejected) as caught:
        parse_body(body, max_depth=16, max_query_chars=100)
    assert caught.value.status == status


def test_a_good_body_is_returned_as_parsed() -> None:
    body = b'{"query": "{ a }", "variables": {"x": [1, {"y": 2}]}, "operationName": null}'
    assert parse_body(body, max_depth=16, max_query_chars=100)["variables"] == {"x": [1, {"y": 2}]}


def _operation(text: str) -> tuple[OperationDefinitionNode, dict[str, FragmentDefinitionNode]]:
    document = parse(text)
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    operation = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
    return operation, fragments


@pytest.mark.parametrize(
    ("text", "cost"),
    [
        ("{ me { id } }", 1),
        ("{ a: me { id } b: profile(userId: 1) { fullName } searchUsers { userId } }", 6),
        ('mutation { createPost(textContent: "x") { id } addSkill(skillName: "y") { id } }', 8),
        ('mutation { login(email: "a", password: "b") { token } }', 20),
        ("{ __typename __schema { types { name } } }", 10),
        (
            "{ ...F } fragment F on Query { me { id } ...G }"
            " fragment G on Query { feed { nextCursor } }",
            2,
        ),
    ],
)
def test_the_cost_of_an_operation_weighs_its_root_fields(text: str, cost: int) -> None:
    operation, fragments = _operation(text)
    assert cost_of(operation, fragments) == cost


def test_a_fragment_spread_many_times_is_expanded_once() -> None:
    # GIVEN a "fragment bomb": each fragment spreads the next one twice, 30 deep
    chain = " ".join(f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(30))
    operation, fragments = _operation(
        f"{{ ...F0 }} {chain} fragment F30 on Query {{ me {{ id }} }}"
    )
    # THEN the cost counts one field, found without expanding 2^30 paths
    assert cost_of(operation, fragments) == 1


def test_nesting_counts_fields_or_only_introspection_lists() -> None:
    operation, fragments = _operation(
        "{ __schema { types { fields { type { ofType { name } } args { name } } } } }"
    )
    assert field_nesting(operation.selection_set, fragments, 100) == 6
    assert field_nesting(operation.selection_set, fragments, 3) == 3
    assert field_nesting(operation.selection_set, fragments, 100, is_introspection_list) == 3


async def test_a_request_waits_briefly_for_a_shared_slot_then_is_told_the_server_is_busy() -> None:
    # GIVEN a process whose only shared slot is taken
    shared = asyncio.Semaphore(1)
    await shared.acquire()
    slots = ResolverSlots(shared, per_request=4, wait=0.05)

    async def resolver() -> str:
        return "ran"

    # WHEN a resolver asks for a slot
    with pytest.raises(Busy) as caught:
        await slots.run("me", resolver)
    # THEN it is refused with 503 once the wait is over; a freed slot lets it run
    assert (caught.value.status, caught.value.message) == (503, BUSY)
    shared.release()
    assert await slots.run("me", resolver) == "ran"


async def test_a_users_searches_are_paced_to_their_share_and_others_are_not() -> None:
    # GIVEN searches that get a tenth of the search time, waiting at most 0.1 s
    shares = SearchShares(share=0.1, max_wait=0.1)
    busy, idle = uuid.uuid4(), uuid.uuid4()
    # WHEN one user's search works for 0.05 s (its next may start 0.5 s after it began)
    async with shares.turn(busy):
        await asyncio.sleep(0.05)  # the search's own work
    # THEN that user's next search is refused with 429 and when to retry
    with pytest.raises(SlowDown) as caught:
        async with shares.turn(busy):
            pass
    assert (caught.value.status, caught.value.code) == (429, "TOO_MANY_REQUESTS")
    assert caught.value.retry_after == 1
    # AND another user searches at once
    started = time.monotonic()
    async with shares.turn(idle):
        pass
    assert time.monotonic() - started < 0.05


def test_a_token_lifetime_over_a_day_stops_the_process_with_one_sentence() -> None:
    with pytest.raises(SettingsError, match=r"^Invalid API_TOKEN_TTL_SECONDS: .*86400"):
        load_settings(api_token_ttl_seconds=86_401)
    assert load_settings(api_token_ttl_seconds=86_400).api_token_ttl_seconds == 86_400
