from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from transforms.search_document import (
    PRIVATE_FIELDS,
    ProfileData,
    content_hash,
    missing_fields,
    normalise,
    to_search_document,
)

USER = uuid.UUID("00000000-0000-0000-0000-000000000001")


def profile(**fields: object) -> ProfileData:
    values: dict[str, object] = {
        "user_id": USER,
        "full_name": "Grace Hopper",
        "headline": "Rear admiral, compiler pioneer",
        "location": "Arlington",
        "visibility": "public",
        "version": 7,
        "companies": ["US Navy", "Remington Rand", "us  navy"],
        "job_titles": ["Officer", "Senior Mathematician"],
        "schools": ["Yale"],
        "skills": ["COBOL", "cobol", "Compilers "],
    }
    values.update(fields)
    return ProfileData(**values)  # type: ignore[arg-type]


def test_companies_and_skills_are_distinct_by_matching_form_but_keep_their_spelling() -> None:
    # GIVEN a profile whose companies and skills repeat in other cases and spacing
    # WHEN it is transformed
    doc = to_search_document(profile())
    # THEN each appears once, spelled as first entered
    assert doc.companies == ("US Navy", "Remington Rand")
    assert doc.skills == ("COBOL", "Compilers")
    assert doc.skills_norm == ["cobol", "compilers"]


def test_public_document_carries_every_contract_field() -> None:
    source = to_search_document(profile()).source()
    assert source["userId"] == str(USER)
    assert source["headline"] == "Rear admiral, compiler pioneer"
    assert source["location"] == "Arlington"
    assert source["jobTitles"] == ["Officer", "Senior Mathematician"]
    assert source["version"] == 7


def test_private_document_carries_only_name_skills_and_stamps() -> None:
    # GIVEN a private profile with a full work history
    doc = to_search_document(profile(visibility="private"))
    # THEN the restricted fields are absent from the document itself
    assert set(doc.source()) == PRIVATE_FIELDS
    assert doc.headline is None and doc.location is None
    assert doc.companies == () and doc.job_titles == () and doc.schools == ()
    assert doc.skills == ("COBOL", "Compilers")


def test_missing_name_is_reported_as_a_missing_required_field() -> None:
    doc = to_search_document(profile(full_name="   "))
    assert missing_fields(doc) == ["fullName"]


def test_unknown_visibility_and_missing_version_are_reported() -> None:
    doc = to_search_document(profile(visibility=None, version=None))
    assert missing_fields(doc) == ["visibility", "version"]


def test_content_hash_ignores_the_version_but_not_the_content() -> None:
    a = to_search_document(profile(version=1))
    b = to_search_document(profile(version=2))
    c = to_search_document(profile(version=2, headline="Admiral"))
    assert a.content_hash == b.content_hash == content_hash(b)
    assert c.content_hash != b.content_hash


def test_normalise_casefolds_and_collapses_whitespace() -> None:
    assert normalise("  Straße\tMÜNCHEN  ") == "strasse münchen"


texts = st.text(max_size=30)
profiles = st.builds(
    ProfileData,
    user_id=st.uuids(),
    full_name=st.one_of(st.none(), texts),
    headline=st.one_of(st.none(), texts),
    location=st.one_of(st.none(), texts),
    visibility=st.sampled_from(["public", "private"]),
    version=st.integers(min_value=1, max_value=2**62),
    companies=st.lists(texts, max_size=5),
    job_titles=st.lists(texts, max_size=5),
    schools=st.lists(texts, max_size=3),
    skills=st.lists(texts, max_size=8),
)


@given(profiles)
def test_any_named_profile_becomes_a_valid_document(p: ProfileData) -> None:
    doc = to_search_document(p)
    named = bool((p.full_name or "").split())
    assert (missing_fields(doc) == []) == named
    assert len({normalise(s) for s in doc.skills}) == len(doc.skills)
    assert all(s.strip() and "\x1f" not in s for s in doc.skills + doc.companies)


@given(profiles.filter(lambda p: p.visibility == "private"))
def test_private_profile_never_yields_a_restricted_field(p: ProfileData) -> None:
    doc = to_search_document(p)
    assert set(doc.source()) <= PRIVATE_FIELDS
    assert (doc.headline, doc.location, doc.companies, doc.job_titles) == (None, None, (), ())
