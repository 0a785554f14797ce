"""Private profiles through `searchUsers`, indexed by the real search handler.

The API writes profile changes and their events; the `UserProfileUpdated`
envelopes in the outbox are handed to the search pipeline built by
`config.search.build_search_handler` (PostgreSQL full-text backend), and the
API then answers `searchUsers` from that same index.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import asyncpg
import pytest

from config.search import build_search_handler
from config.settings import Settings
from contracts.events import decode_body
from contracts.outcomes import Ack
from tests.integration.api.client import Api
from tests.settings import SettingsFactory


@pytest.fixture
def search_settings(settings_factory: SettingsFactory) -> Settings:
    return settings_factory(search_backend="postgres")


SEARCH = """query($q: String!, $s: [String!], $c: [String!]) {
  searchUsers(query: $q, skills: $s, companies: $c) { userId fullName headline } }"""


async def index_outbox(db: asyncpg.Pool, settings: Settings) -> None:
    """Run every profile event written so far through the search pipeline."""
    rows = await db.fetch(
        "SELECT body FROM outbox WHERE event_type = 'UserProfileUpdated' ORDER BY id"
    )
    envelopes = [decode_body(r["body"]) for r in rows]
    async with AsyncExitStack() as stack:
        handler = await build_search_handler(stack, settings, pool=db)
        for start in range(0, len(envelopes), handler.max_batch):
            outcomes = await handler.handle(envelopes[start : start + handler.max_batch])
            assert all(isinstance(o, Ack) for o in outcomes), outcomes


async def make_profile(api: Api, email: str, name: str, visibility: str) -> tuple[str, str]:
    token, user_id = await api.register(email, name)
    await api.ok(
        'mutation($v: Visibility) { updateProfile(input: {headline: "Quantum wrangler",'
        ' location: "Reykjavik", visibility: $v}) { visibility } }',
        {"v": visibility},
        token,
    )
    await api.ok(
        'mutation { addWorkExperience(input: {companyName: "Zephyrcorp", title: "Wrangler"})'
        " { id } }",
        token=token,
    )
    await api.ok('mutation { addSkill(skillName: "Haskell") { id } }', token=token)
    return token, user_id


async def search(
    api: Api, token: str, text: str = "", skills: Any = None, companies: Any = None
) -> dict[str, Any]:
    data = await api.ok(SEARCH, {"q": text, "s": skills, "c": companies}, token)
    return {hit["userId"]: hit for hit in data["searchUsers"]}


async def test_private_profile_is_found_by_name_and_skill_but_not_by_its_hidden_details(
    api: Api, db: asyncpg.Pool, search_settings: Settings
) -> None:
    # GIVEN a private and a public profile with the same headline, location, company and
    # skill, both indexed by the search pipeline, and a stranger searching
    _, private_id = await make_profile(api, "priv@example.com", "Priya Hidden", "PRIVATE")
    _, public_id = await make_profile(api, "pub@example.com", "Paul Open", "PUBLIC")
    stranger, _ = await api.register("stranger@example.com", "Sam Stranger")
    await index_outbox(db, search_settings)
    # WHEN the stranger searches by each hidden detail
    by_headline = await search(api, stranger, "Quantum wrangler")
    by_location = await search(api, stranger, "Reykjavik")
    by_company_text = await search(api, stranger, "Zephyrcorp")
    by_company_filter = await search(api, stranger, companies=["Zephyrcorp"])
    # THEN only the public profile is found (so the search itself works)
    for hits in (by_headline, by_location, by_company_text, by_company_filter):
        assert public_id in hits and private_id not in hits, hits
    assert by_headline[public_id]["headline"] == "Quantum wrangler"


async def test_private_profile_found_by_name_or_skill_shows_no_headline(
    api: Api, db: asyncpg.Pool, search_settings: Settings
) -> None:
    # GIVEN an indexed private profile
    owner, private_id = await make_profile(api, "priv2@example.com", "Priya Hidden", "PRIVATE")
    stranger, _ = await api.register("stranger2@example.com", "Sam Stranger")
    await index_outbox(db, search_settings)
    # WHEN a stranger (and the owner) search by name and by skill
    by_name = await search(api, stranger, "Priya")
    by_skill = await search(api, stranger, skills=["Haskell"])
    own = await search(api, owner, "Priya")
    # THEN it is found, with name only: the headline is shown to nobody through search
    expected = {"userId": private_id, "fullName": "Priya Hidden", "headline": None}
    assert by_name[private_id] == expected
    assert by_skill[private_id] == expected
    assert own[private_id] == expected


async def test_profile_turned_private_drops_its_details_from_the_index(
    api: Api, db: asyncpg.Pool, search_settings: Settings
) -> None:
    # GIVEN a public profile found by its company
    owner, user_id = await make_profile(api, "flip@example.com", "Flo Flip", "PUBLIC")
    stranger, _ = await api.register("stranger3@example.com", "Sam Stranger")
    await index_outbox(db, search_settings)
    assert user_id in await search(api, stranger, companies=["Zephyrcorp"])
    # WHEN it turns private and the change is indexed
    await api.ok(
        "mutation { updateProfile(input: {visibility: PRIVATE}) { visibility } }", token=owner
    )
    await index_outbox(db, search_settings)
    # THEN the company and headline no longer find it, the name still does
    assert user_id not in await search(api, stranger, companies=["Zephyrcorp"])
    assert user_id not in await search(api, stranger, "Quantum wrangler")
    assert (await search(api, stranger, "Flo"))[user_id]["headline"] is None
