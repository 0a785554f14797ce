"""Fakes of the search pipeline's ports, shared by unit tests."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from pipelines.search.ports import SearchHit, SearchQuery, Tombstone, WriteReport
from store.profiles import ProfileBatch, ProfileRow
from transforms.search_document import UserSearchDocument, normalise


@dataclass
class FakeSearchIndex:
    """In-memory `SearchIndex` with the port's version and content-hash rules."""

    docs: dict[uuid.UUID, UserSearchDocument] = field(default_factory=dict)
    tombstones: dict[uuid.UUID, int] = field(default_factory=dict)
    write_calls: list[tuple[list[UserSearchDocument], list[Tombstone]]] = field(
        default_factory=list
    )
    fail_with: BaseException | None = None

    async def write(
        self, docs: Sequence[UserSearchDocument], tombstones: Sequence[Tombstone] = ()
    ) -> WriteReport:
        if self.fail_with is not None:
            raise self.fail_with
        self.write_calls.append((list(docs), list(tombstones)))
        report = WriteReport()
        for doc in docs:
            self._upsert(doc, report)
        for stone in tombstones:
            if stone.version > self._version(stone.user_id) and stone.user_id in self.docs:
                del self.docs[stone.user_id]
                report.deleted += 1
            self.tombstones[stone.user_id] = max(stone.version, self._version(stone.user_id))
        return report

    def _version(self, user_id: uuid.UUID) -> int:
        doc = self.docs.get(user_id)
        return doc.version if doc else self.tombstones.get(user_id, 0)

    def _upsert(self, doc: UserSearchDocument, report: WriteReport) -> None:
        current = self.docs.get(doc.user_id)
        if doc.version <= self._version(doc.user_id):
            report.stale += 1
        elif current is not None and current.content_hash == doc.content_hash:
            report.unchanged += 1
        else:
            self.docs[doc.user_id] = doc
            report.written += 1

    async def get(self, user_id: uuid.UUID) -> UserSearchDocument | None:
        return self.docs.get(user_id)

    async def search(self, query: SearchQuery) -> list[SearchHit]:
        words = normalise(query.text).split()
        hits = []
        for d in self.docs.values():
            text = normalise(" ".join([d.full_name, d.headline or "", *d.companies, *d.skills]))
            if all(w in text for w in words):
                hits.append(
                    SearchHit(
                        d.user_id, d.full_name, d.headline, d.companies, d.skills, d.visibility, 1.0
                    )
                )
        return hits[: query.limit]

    async def ping(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with


@dataclass
class FakeProfiles:
    """A `ProfileLoader` over in-memory rows; counts its calls (one per batch expected)."""

    rows: dict[uuid.UUID, ProfileRow] = field(default_factory=dict)
    calls: list[list[uuid.UUID]] = field(default_factory=list)
    next_version: int = 1_000_000

    async def __call__(self, ids: Sequence[uuid.UUID]) -> ProfileBatch:
        self.calls.append(list(ids))
        found = [self.rows[i] for i in ids if i in self.rows]
        gone = {}
        for i in ids:
            if i not in self.rows:
                self.next_version += 1
                gone[i] = self.next_version
        return ProfileBatch(found, gone)

    def put(self, **fields: object) -> ProfileRow:
        values: dict[str, object] = {
            "user_id": uuid.uuid4(),
            "full_name": "Ada Lovelace",
            "headline": "Analyst",
            "location": "London",
            "visibility": "public",
            "version": 1,
            "companies": ["Analytical Engines"],
            "job_titles": ["Programmer"],
            "schools": [],
            "skills": ["Mathematics"],
        }
        values.update(fields)
        row = ProfileRow(**values)  # type: ignore[arg-type]
        self.rows[row.user_id] = row
        return row
