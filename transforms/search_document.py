"""Profile rows → `UserSearchDocument`. Pure: no I/O, no asyncio.

The document and its rules: docs/architecture.md#search-document.

Privacy is decided here, once: a private profile's document is built from the
name, the skills and the stamps only, so no backend can ever store (and no
query ever match) its headline, location, work history or education.
"""

from __future__ import annotations

import hashlib
import unicodedata
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

import orjson

Visibility = Literal["public", "private"]

REQUIRED_FIELDS: Final = ("userId", "fullName", "visibility", "version")
PRIVATE_FIELDS: Final = frozenset({"userId", "fullName", "skills", "visibility", "version"})


class ProfileSource(Protocol):
    """What the transform reads of one user: the profile row and its child rows."""

    @property
    def user_id(self) -> uuid.UUID: ...
    @property
    def full_name(self) -> str | None: ...
    @property
    def headline(self) -> str | None: ...
    @property
    def location(self) -> str | None: ...
    @property
    def visibility(self) -> str | None: ...
    @property
    def version(self) -> int | None: ...
    @property
    def companies(self) -> Sequence[str]: ...
    @property
    def job_titles(self) -> Sequence[str]: ...
    @property
    def schools(self) -> Sequence[str]: ...
    @property
    def skills(self) -> Sequence[str]: ...


@dataclass(frozen=True, slots=True)
class ProfileData:
    """A plain `ProfileSource`, for callers that build profiles by hand."""

    user_id: uuid.UUID
    full_name: str | None
    headline: str | None = None
    location: str | None = None
    visibility: str | None = "public"
    version: int | None = 1
    companies: Sequence[str] = ()
    job_titles: Sequence[str] = ()
    schools: Sequence[str] = ()
    skills: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class UserSearchDocument:
    """One user's entry in the search index; `user_id` is the document id."""

    user_id: uuid.UUID
    full_name: str
    visibility: str
    version: int
    headline: str | None = None
    location: str | None = None
    companies: tuple[str, ...] = ()
    job_titles: tuple[str, ...] = ()
    schools: tuple[str, ...] = ()
    skills: tuple[str, ...] = ()
    content_hash: bytes = field(default=b"", compare=False)

    @property
    def skills_norm(self) -> list[str]:
        return [normalise(s) for s in self.skills]

    @property
    def companies_norm(self) -> list[str]:
        return [normalise(c) for c in self.companies]

    def source(self) -> dict[str, Any]:
        """The stored form with contract field names; private documents omit restricted ones."""
        return document_source(self)


def normalise(text: str) -> str:
    """The matching form of a term: NFKC, casefolded, inner whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def distinct(values: Iterable[str | None]) -> tuple[str, ...]:
    """Distinct by matching form, keeping the first spelling as entered (trimmed)."""
    seen: set[str] = set()
    kept: list[str] = []
    for value in values:
        display = " ".join((value or "").split())
        key = normalise(display)
        if key and key not in seen:
            seen.add(key)
            kept.append(display)
    return tuple(kept)


def _clean(value: str | None) -> str | None:
    cleaned = " ".join((value or "").split())
    return cleaned or None


def to_search_document(profile: ProfileSource) -> UserSearchDocument:
    """Build the document of one profile; restricted fields only when it is public."""
    public = profile.visibility == "public"
    doc = UserSearchDocument(
        user_id=profile.user_id,
        full_name=_clean(profile.full_name) or "",
        visibility=profile.visibility or "",
        version=profile.version or 0,
        headline=_clean(profile.headline) if public else None,
        location=_clean(profile.location) if public else None,
        companies=distinct(profile.companies) if public else (),
        job_titles=distinct(profile.job_titles) if public else (),
        schools=distinct(profile.schools) if public else (),
        skills=distinct(profile.skills),
    )
    return _with_hash(doc)


def missing_fields(doc: UserSearchDocument) -> list[str]:
    """Required fields (docs/architecture.md#search-document) empty after the transform."""
    present = {
        "userId": True,
        "fullName": bool(doc.full_name),
        "visibility": doc.visibility in ("public", "private"),
        "version": doc.version > 0,
    }
    return [name for name in REQUIRED_FIELDS if not present[name]]


def document_source(doc: UserSearchDocument) -> dict[str, Any]:
    data: dict[str, Any] = {
        "userId": str(doc.user_id),
        "fullName": doc.full_name,
        "headline": doc.headline,
        "location": doc.location,
        "companies": list(doc.companies),
        "jobTitles": list(doc.job_titles),
        "schools": list(doc.schools),
        "skills": list(doc.skills),
        "visibility": doc.visibility,
        "version": doc.version,
    }
    if doc.visibility != "public":
        data = {k: v for k, v in data.items() if k in PRIVATE_FIELDS}
    return data


def content_hash(doc: UserSearchDocument) -> bytes:
    """Digest of everything searchable (not the version): equal hash, nothing to rewrite."""
    body = document_source(doc)
    body.pop("version")
    return hashlib.blake2b(orjson.dumps(body, option=orjson.OPT_SORT_KEYS), digest_size=16).digest()


def _with_hash(doc: UserSearchDocument) -> UserSearchDocument:
    object.__setattr__(doc, "content_hash", content_hash(doc))
    return doc
