"""Search classification compares content: an older version with equal content is no drift."""

from __future__ import annotations

import dataclasses
import uuid

from reconcile.search import classify
from transforms.search_document import ProfileData, UserSearchDocument, to_search_document

Doc = UserSearchDocument

USER = uuid.UUID(int=7)


def doc(version: int, headline: str = "Engineer", visibility: str = "public") -> Doc:
    return to_search_document(
        ProfileData(USER, "Ada", headline, "Berlin", visibility, version, skills=["Go"])
    )


def test_an_older_version_with_the_expected_content_is_consistent() -> None:
    # GIVEN the live upsert skipped an unchanged re-index, keeping version 3
    expected, stored = doc(9), doc(3)
    # THEN it is not stale
    assert classify(expected, stored) is None


def test_other_content_is_stale_whatever_the_version() -> None:
    assert classify(doc(9), doc(3, "Old headline")) == "stale"
    assert classify(doc(9), doc(9, "Old headline")) == "stale"


def test_a_newer_stored_version_is_left_alone() -> None:
    assert classify(doc(9), doc(12, "Newer")) is None


def test_a_private_profile_with_a_restricted_field_stored_is_a_privacy_leak() -> None:
    expected = doc(9, visibility="private")
    leaked = dataclasses.replace(expected, headline="Secret")
    assert classify(expected, leaked) == "privacy"


def test_no_document_is_missing() -> None:
    assert classify(doc(9), None) == "missing"
