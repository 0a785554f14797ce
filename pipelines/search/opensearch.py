"""OpenSearch backend of the `SearchIndex` port (opensearch-py's async client).

Layout: an index template for `users_v*` with explicit mappings; the live
index `users_v<N>` is read through the alias `users` and written through the
alias `users_write` (the two differ only while a rebuild runs, see
`pipelines/search/rebuild.py`). Writes are bulk requests with external
versions, so OpenSearch itself refuses an older version (409, counted as
stale). No write forces a refresh: documents become searchable with the
index's refresh interval.

Reconciliation (`AuditableSearchIndex`) reads and repairs the write target,
the index it can put right: `get_many` is one realtime `mget`; `scan_ids`
pages through a point in time (PIT) with `search_after`, sorted by the unique
`userId` keyword, so the scan is consistent while repairs and deletions land
and its order is the ascending id order the port promises (`_shard_doc`
exists only from OpenSearch 3.3 and does not give id order); `repair`
indexes with `version_type=external_gte`, the equal-version rule.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack
from typing import Any, Final, Literal

import orjson
import structlog
from opensearchpy import AsyncOpenSearch, NotFoundError, TransportError

from contracts.failures import SEARCH_INDEX, boundary
from pipelines.search.bulk import chunked
from pipelines.search.ports import SearchHit, SearchQuery, Tombstone, WriteReport
from transforms.search_document import UserSearchDocument, normalise

READ_ALIAS: Final = "users"
WRITE_ALIAS: Final = "users_write"
TEMPLATE_NAME: Final = "users"
INDEX_PREFIX: Final = "users_v"
# Each page request extends the PIT by this much; it only has to outlast the
# gap between two pages, which a rate-limited run can stretch to many seconds.
PIT_KEEP_ALIVE: Final = "5m"

VersionType = Literal["external", "external_gte"]

log = structlog.get_logger("pipelines.search")

_TEXT_WITH_KEYWORD: Final = {
    "type": "text",
    "fields": {"keyword": {"type": "keyword", "normalizer": "folded", "ignore_above": 256}},
}

# Explicit mappings: `dynamic: strict` refuses a document with an unknown field
# instead of guessing a type for it.
TEMPLATE_BODY: Final[dict[str, Any]] = {
    "index_patterns": [f"{INDEX_PREFIX}*"],
    "priority": 100,
    "template": {
        "settings": {
            "number_of_shards": 1,
            "refresh_interval": "1s",
            # External-version tombstones must outlive a rebuild's backfill, or a
            # backfilled older read could bring a deleted user back.
            "gc_deletes": "6h",
            "analysis": {
                "normalizer": {
                    "folded": {"type": "custom", "filter": ["lowercase", "asciifolding"]}
                }
            },
        },
        "mappings": {
            "dynamic": "strict",
            "properties": {
                "userId": {"type": "keyword"},
                "fullName": {
                    "type": "text",
                    "fields": {
                        "keyword": {"type": "keyword", "normalizer": "folded"},
                        "prefix": {"type": "search_as_you_type"},
                    },
                },
                "headline": {"type": "text"},
                "location": {"type": "text"},
                "companies": _TEXT_WITH_KEYWORD,
                "jobTitles": _TEXT_WITH_KEYWORD,
                "schools": _TEXT_WITH_KEYWORD,
                "skills": _TEXT_WITH_KEYWORD,
                "visibility": {"type": "keyword"},
                "version": {"type": "long"},
                "contentHash": {"type": "keyword", "index": False, "doc_values": False},
            },
        },
    },
}

_RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})


def index_name(generation: int) -> str:
    return f"{INDEX_PREFIX}{generation}"


def generation_of(name: str) -> int:
    return int(name.removeprefix(INDEX_PREFIX))


def document_body(doc: UserSearchDocument) -> dict[str, Any]:
    return {**doc.source(), "contentHash": doc.content_hash.hex()}


def bulk_lines(
    index: str,
    docs: Sequence[UserSearchDocument],
    tombstones: Sequence[Tombstone],
    *,
    version_type: VersionType = "external",
) -> list[bytes]:
    """The NDJSON lines of one bulk request: action metadata, then source for indexing.

    `external` replaces only a smaller stored version (the pipeline's rule);
    `external_gte` also an equal one (the repair rule). Tombstones are always
    `external`: a deletion must be strictly newer than what it removes.
    """
    lines: list[bytes] = []
    for doc in docs:
        meta = {"_index": index, "_id": str(doc.user_id), "version": doc.version}
        lines.append(orjson.dumps({"index": {**meta, "version_type": version_type}}))
        lines.append(orjson.dumps(document_body(doc)))
    for stone in tombstones:
        meta = {"_index": index, "_id": str(stone.user_id), "version": stone.version}
        lines.append(orjson.dumps({"delete": {**meta, "version_type": "external"}}))
    return lines


def scan_body(pit_id: str, page_size: int, after: list[Any] | None) -> dict[str, Any]:
    """One page of a PIT scan: ids only, ascending by `userId`, after the last sort values."""
    body: dict[str, Any] = {
        "size": page_size,
        "_source": False,
        "track_total_hits": False,
        "query": {"match_all": {}},
        "sort": [{"userId": "asc"}],
        "pit": {"id": pit_id, "keep_alive": PIT_KEEP_ALIVE},
    }
    if after is not None:
        body["search_after"] = after
    return body


def search_body(query: SearchQuery) -> dict[str, Any]:
    """Free text over name (boosted, fuzzy, prefix), headline/titles, companies/skills."""
    filters: list[dict[str, Any]] = [
        {"term": {"skills.keyword": normalise(s)}} for s in query.skills
    ] + [{"term": {"companies.keyword": normalise(c)}} for c in query.companies]
    must: list[dict[str, Any]] = []
    if query.text.strip():
        must.append(
            {
                "bool": {
                    "should": [
                        {
                            "multi_match": {
                                "query": query.text,
                                "fields": [
                                    "fullName^4",
                                    "headline^2",
                                    "jobTitles^2",
                                    "companies",
                                    "skills",
                                    "schools",
                                    "location^0.5",
                                ],
                                "operator": "and",
                                "fuzziness": "AUTO",
                            }
                        },
                        {
                            "multi_match": {
                                "query": query.text,
                                "type": "bool_prefix",
                                "fields": [
                                    "fullName.prefix",
                                    "fullName.prefix._2gram",
                                    "fullName.prefix._3gram",
                                ],
                                "boost": 3,
                            }
                        },
                    ],
                    "minimum_should_match": 1,
                }
            }
        )
    return {
        "size": query.limit,
        "query": {"bool": {"must": must or [{"match_all": {}}], "filter": filters}},
        "_source": ["userId", "fullName", "headline", "companies", "skills", "visibility"],
    }


class OpenSearchIndex:
    """`SearchIndex` over OpenSearch; `write_target` is an alias or a concrete index."""

    def __init__(
        self,
        client: AsyncOpenSearch,
        *,
        read_target: str = READ_ALIAS,
        write_target: str = WRITE_ALIAS,
        max_count: int = 500,
        max_bytes: int = 5 * 1024 * 1024,
    ) -> None:
        self.client = client
        self.read_target = read_target
        self.write_target = write_target
        self.max_count = max_count
        self.max_bytes = max_bytes

    async def ensure(self) -> None:
        """Install the template and, on an empty cluster, `users_v1` behind both aliases."""
        await self.client.indices.put_index_template(name=TEMPLATE_NAME, body=TEMPLATE_BODY)
        if await self.client.indices.exists_alias(name=READ_ALIAS):
            return
        first = index_name(1)
        await self.client.indices.create(index=first)
        await self.client.indices.update_aliases(
            body={
                "actions": [
                    {"add": {"index": first, "alias": READ_ALIAS}},
                    {"add": {"index": first, "alias": WRITE_ALIAS}},
                ]
            }
        )

    async def write(
        self, docs: Sequence[UserSearchDocument], tombstones: Sequence[Tombstone] = ()
    ) -> WriteReport:
        report = WriteReport()
        stored = await self._stored_hashes([d.user_id for d in docs]) if docs else {}
        changed = [d for d in docs if stored.get(d.user_id) != d.content_hash.hex()]
        report.unchanged = len(docs) - len(changed)
        for chunk in chunked(
            changed, max_count=self.max_count, max_bytes=self.max_bytes, size_of=_doc_size
        ):
            report.add(await self._bulk(chunk, ()))
        for start in range(0, len(tombstones), self.max_count):
            report.add(await self._bulk((), tombstones[start : start + self.max_count]))
        return report

    async def _stored_hashes(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
        response = await self._call(
            lambda: self.client.mget(
                index=self.write_target,
                body={"ids": [str(i) for i in ids]},
                params={"_source_includes": "contentHash"},
            )
        )
        return {
            uuid.UUID(d["_id"]): d["_source"].get("contentHash", "")
            for d in response["docs"]
            if d.get("found")
        }

    async def _bulk(
        self,
        docs: Sequence[UserSearchDocument],
        tombstones: Sequence[Tombstone],
        *,
        version_type: VersionType = "external",
    ) -> WriteReport:
        report = WriteReport()
        lines = bulk_lines(self.write_target, docs, tombstones, version_type=version_type)
        body = b"\n".join(lines).decode() + "\n"
        response = await self._call(functools.partial(self.client.bulk, body=body))
        # Throttled items are the runtime's to retry, for just their users.
        _tally(response, report)
        return report

    async def _call(self, op: Any) -> Any:
        # One call: the runtime's invoker is the one layer that retries.
        with boundary("Calling OpenSearch", dependency=SEARCH_INDEX):
            return await op()

    async def get_many(self, user_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, UserSearchDocument]:
        """The stored documents of `user_ids`, by one realtime `mget` on the write target."""
        if not user_ids:
            return {}
        body = {"ids": [str(i) for i in user_ids]}
        response = await self._call(
            functools.partial(self.client.mget, index=self.write_target, body=body)
        )
        return {
            uuid.UUID(d["_id"]): _document(d["_source"]) for d in response["docs"] if d.get("found")
        }

    async def scan_ids(self, page_size: int) -> AsyncIterator[list[uuid.UUID]]:
        """Every document id of the write target, ascending, through a point in time.

        One refresh first, so the PIT sees every write acknowledged before the
        scan (deletions included). The PIT is deleted however the scan ends:
        exhausted, failed, or closed early by its consumer.
        """
        await self._call(functools.partial(self.client.indices.refresh, index=self.write_target))
        created = await self._call(
            functools.partial(
                self.client.create_pit,
                index=self.write_target,
                keep_alive=PIT_KEEP_ALIVE,
                # A partial PIT would silently leave whole shards out of the scan.
                allow_partial_pit_creation=False,
            )
        )
        pit_id: str = created["pit_id"]
        try:
            after: list[Any] | None = None
            while True:
                body = scan_body(pit_id, page_size, after)
                response = await self._call(functools.partial(self.client.search, body=body))
                pit_id = response.get("pit_id", pit_id)
                hits = response["hits"]["hits"]
                if hits:
                    yield [uuid.UUID(h["_id"]) for h in hits]
                if len(hits) < page_size:
                    return
                after = hits[-1]["sort"]
        finally:
            await self._delete_pit(pit_id)

    async def _delete_pit(self, pit_id: str) -> None:
        try:
            await self.client.delete_pit(body={"pit_id": [pit_id]})
        except (TransportError, OSError, TimeoutError) as exc:
            # It expires with its keep-alive anyway; a failed delete must not
            # replace the outcome of the scan itself.
            log.warning("pit_delete_failed", error=str(exc))

    async def repair(self, docs: Sequence[UserSearchDocument]) -> WriteReport:
        """Index `docs` with `external_gte`: an equal stored version is replaced too.

        No content-hash skip: the reconciler sends only documents it found drifted.
        A 409 means the pipeline stored a newer version meanwhile (counted stale).
        """
        report = WriteReport()
        for chunk in chunked(
            docs, max_count=self.max_count, max_bytes=self.max_bytes, size_of=_doc_size
        ):
            report.add(await self._bulk(chunk, (), version_type="external_gte"))
        return report

    async def get(self, user_id: uuid.UUID) -> UserSearchDocument | None:
        try:
            found = await self.client.get(index=self.read_target, id=str(user_id))
        except NotFoundError:
            return None
        return _document(found["_source"])

    async def search(self, query: SearchQuery) -> list[SearchHit]:
        response = await self.client.search(index=self.read_target, body=search_body(query))
        return [_hit(h) for h in response["hits"]["hits"]]

    async def ping(self) -> None:
        await self.client.cluster.health(params={"timeout": "5s"})


def _tally(response: dict[str, Any], report: WriteReport) -> None:
    """Count each bulk item's result into `report`."""
    for item in response.get("items", []):
        action, result = next(iter(item.items()))
        user_id, status = uuid.UUID(result["_id"]), int(result["status"])
        if status in _RETRY_STATUSES:
            report.throttled[user_id] = f"OpenSearch could not take the document now ({status})"
        elif status == 409:
            report.stale += 1
        elif action == "delete" and status in (200, 404):
            # 404: nothing was indexed, yet the external-version tombstone is recorded.
            report.deleted += status == 200
        elif status in (200, 201):
            report.written += 1
        else:
            error = result.get("error", {})
            reason = error.get("reason", "") if isinstance(error, dict) else str(error)
            report.failed[user_id] = f"OpenSearch refused the document ({status}): {reason}"


def _doc_size(doc: UserSearchDocument) -> int:
    return len(orjson.dumps(document_body(doc))) + 128


def _document(source: dict[str, Any]) -> UserSearchDocument:
    return UserSearchDocument(
        user_id=uuid.UUID(source["userId"]),
        full_name=source["fullName"],
        visibility=source["visibility"],
        version=int(source["version"]),
        headline=source.get("headline"),
        location=source.get("location"),
        companies=tuple(source.get("companies", ())),
        job_titles=tuple(source.get("jobTitles", ())),
        schools=tuple(source.get("schools", ())),
        skills=tuple(source.get("skills", ())),
        content_hash=bytes.fromhex(source.get("contentHash", "")),
    )


def _hit(hit: dict[str, Any]) -> SearchHit:
    source = hit["_source"]
    return SearchHit(
        user_id=uuid.UUID(source["userId"]),
        full_name=source["fullName"],
        headline=source.get("headline"),
        companies=tuple(source.get("companies", ())),
        skills=tuple(source.get("skills", ())),
        visibility=source["visibility"],
        score=float(hit.get("_score") or 0.0),
    )


async def open_opensearch_index(stack: AsyncExitStack, url: str) -> OpenSearchIndex:
    """A client for `url` (closed with `stack`) and the index over it, template installed."""
    client = AsyncOpenSearch(hosts=[url], max_retries=0, timeout=30)
    stack.push_async_callback(client.close)
    index = OpenSearchIndex(client)
    await index.ensure()
    return index
