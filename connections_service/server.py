"""The gRPC server: the Connections service, the standard health-checking protocol
(`grpc.health.v1.Health`) and server reflection, on one port.

Health answers SERVING for the whole server ("") and for the Connections
service once the server listens, and NOT_SERVING from the moment it starts to
shut down, so a load balancer stops sending new calls while the calls in
flight finish (`stop` waits up to its grace period for them).
"""

from __future__ import annotations

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from connections_service.proto import connections_pb2_grpc as pb_grpc
from connections_service.service import SERVICE_NAME, ConnectionReads, ConnectionsServicer

log = structlog.get_logger(__name__)

HEALTH_SERVICE_NAME = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
# Every service a client can discover (the reflection service lists itself too).
REFLECTED_SERVICES = (SERVICE_NAME, HEALTH_SERVICE_NAME, reflection.SERVICE_NAME)


class AddressUnavailable(Exception):
    """The address the service is told to listen on cannot be bound."""

    def __init__(self, address: str) -> None:
        super().__init__(f"cannot listen on the Connections Service address {address}")
        self.address = address


class ConnectionsServer:
    """One `grpc.aio` server on `address` (`host:port`; port 0 picks a free one)."""

    def __init__(self, reads: ConnectionReads, *, address: str) -> None:
        self._address = address
        # No SO_REUSEPORT: a second server on a port in use must fail, not share it.
        self._server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        self._health = health.aio.HealthServicer()
        # The generated registration function carries no annotations (grpcio-tools).
        servicer = ConnectionsServicer(reads)
        pb_grpc.add_ConnectionsServicer_to_server(servicer, self._server)  # type: ignore[no-untyped-call]
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        reflection.enable_server_reflection(REFLECTED_SERVICES, self._server)
        self.port = 0
        self.serving = False

    async def start(self) -> None:
        """Listen and report SERVING, or raise `AddressUnavailable`."""
        try:
            self.port = self._server.add_insecure_port(self._address)
        except RuntimeError:  # grpcio refuses an address it cannot bind this way
            raise AddressUnavailable(self._address) from None
        if self.port == 0:
            raise AddressUnavailable(self._address)
        await self._server.start()
        for service in ("", SERVICE_NAME):
            await self._health.set(service, health_pb2.HealthCheckResponse.SERVING)
        self.serving = True
        log.info("connections service listening", address=self._address, port=self.port)

    async def stop(self, grace: float) -> None:
        """NOT_SERVING at once, then refuse new calls and let those in flight finish
        within `grace` seconds (cancelled after it)."""
        self.serving = False
        await self._health.enter_graceful_shutdown()
        log.info("connections service draining", graceSeconds=grace)
        await self._server.stop(grace)
        log.info("connections service stopped")
