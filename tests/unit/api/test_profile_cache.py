"""The profile cache's entry format and its off switch: no Redis needed."""

from __future__ import annotations

import uuid
from datetime import date

import pytest

from api.profile_cache import decode_profile, encode_profile
from config.api import profile_cache
from tests.settings import SettingsFactory
from transforms.entities import Education, Profile, Skill, WorkExperience


def full_profile() -> Profile:
    return Profile(
        uuid.uuid4(),
        "Ada Lovelace",
        "Engineer",
        None,
        "private",
        (WorkExperience(uuid.uuid4(), "Acme", "CTO", date(2020, 1, 1), None),),
        (Education(uuid.uuid4(), "MIT", None, None, date(2012, 6, 30)),),
        (Skill(uuid.uuid4(), "Go"), Skill(uuid.uuid4(), "Rust")),
    )


def test_an_entry_reads_back_as_the_profile_it_was_made_from() -> None:
    profile = full_profile()
    assert decode_profile(encode_profile(profile)) == profile


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"{}", b'{"f": 99}', b'{"f": 1, "id": "nope"}', b"[1, 2]"],
)
def test_an_entry_of_another_shape_is_refused_with_a_reason(raw: bytes) -> None:
    with pytest.raises(ValueError, match="Not a cached profile"):
        decode_profile(raw)


def test_no_entries_means_no_cache(settings_factory: SettingsFactory) -> None:
    assert profile_cache(settings_factory(profile_cache_max_entries=0), redis=None) is None
