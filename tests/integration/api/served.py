"""`socialpipe api`'s app served by uvicorn on a free loopback port, once per session.

Clients that speak real HTTP (schemathesis, gql) need a server, not an ASGI
transport. The app is built by `config.api.build_api` over the session's test
database and Redis, in a thread with its own event loop (its asyncpg pool and
Redis client live on that loop). Tests register their own users: the `db`
fixture empties the tables between tests, the server keeps running.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from argon2 import PasswordHasher

from config.api import build_api
from config.settings import Settings
from tests.integration.api.client import SECRET
from tests.settings import free_port, make_settings


@dataclass(frozen=True)
class Served:
    """A running API: its base URL and the settings it was built with."""

    url: str
    settings: Settings


class ServedApi(threading.Thread):
    """`socialpipe api`'s app under uvicorn, in a thread with its own loop."""

    def __init__(self, settings: Settings, port: int) -> None:
        super().__init__(daemon=True, name="served-api")
        self.settings = settings
        self.port = port
        self.server: uvicorn.Server | None = None
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # surfaced by the fixture, never swallowed
            self.failure = exc

    async def _serve(self) -> None:
        async with AsyncExitStack() as stack:
            app = await build_api(
                stack,
                self.settings,
                hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
            )
            config = uvicorn.Config(
                app,
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
                access_log=False,
                lifespan="off",
            )
            self.server = uvicorn.Server(config)
            await self.server.serve()

    def wait_started(self, deadline: float = 20.0) -> None:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if self.failure is not None:
                raise self.failure
            if self.server is not None and self.server.started:
                return
            time.sleep(0.05)
        raise TimeoutError("The API did not start in time.")

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
        self.join(timeout=10)


def serve(**overrides: Any) -> Iterator[Served]:
    settings = make_settings(api_token_secret=SECRET, search_backend="postgres", **overrides)
    server = ServedApi(settings, free_port())
    server.start()
    try:
        server.wait_started()
        yield Served(f"http://127.0.0.1:{server.port}", settings)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def served_api(database_url: str) -> Iterator[Served]:
    """The API with its production defaults (introspection off), for the session."""
    yield from serve()
