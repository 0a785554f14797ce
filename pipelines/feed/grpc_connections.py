"""The Connections Service as the feed worker's `ConnectionReader` (`CONNECTIONS_SOURCE=grpc`).

One `ListConnectionIds` call per read, bounded by the client's deadline; the
chunks arrive packed and stay packed (`PackedIds`), as the PostgreSQL source's
pages do. Failures are translated at this boundary naming the Connections
Service (docs/failure-policy.md): UNAVAILABLE is its outage, DEADLINE_EXCEEDED
transient, a status the service chose permanent. The cache, the breaker and
the stale fallback around it are `ConnectionLookup`'s (`pipelines/feed/enrichment.py`).
"""

from __future__ import annotations

import uuid

from connections_service.client import ConnectionsClient
from contracts.errors import DependencyDown
from contracts.failures import CONNECTIONS_SERVICE, boundary
from transforms.fanout import PackedIds


class GrpcConnectionSource:
    """Reads accepted connections from the Connections Service."""

    def __init__(self, client: ConnectionsClient) -> None:
        self._client = client

    async def accepted_connections(self, user_id: uuid.UUID) -> PackedIds:
        """Every user joined to `user_id` by an accepted connection, sorted, once each."""
        operation = f"Reading the connections of user {user_id} from the Connections Service"
        with boundary(operation, dependency=CONNECTIONS_SERVICE):
            return PackedIds(await self._client.connection_ids(user_id))

    async def probe(self) -> None:
        """Answers while the service's health check says SERVING (the worker's gate
        probes it while the service is marked down)."""
        with boundary("Checking the Connections Service's health", dependency=CONNECTIONS_SERVICE):
            serving = await self._client.serving()
        if not serving:
            raise DependencyDown(CONNECTIONS_SERVICE, "The Connections Service is not SERVING.")
