"""Passwords (argon2id) and signed, expiring bearer tokens (HS256 JWT)."""

from __future__ import annotations

import asyncio
import os
import secrets
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from api.errors import SignInBusy, Unauthenticated
from contracts.api_messages import TOKEN_INVALID

_ALGORITHM = "HS256"
T = TypeVar("T")


class Passwords:
    """argon2id hashing off the event loop, a bounded number at a time.

    A check takes ~0.1 s of CPU with the default parameters, so at most
    `concurrency` run at once, on threads of their own (not the loop's default
    executor), and the rest of the API keeps a share of the CPU however many
    sign-ins arrive. At most `max_waiting` more wait for a slot; beyond that a
    sign-in is refused at once with `SignInBusy` (503 and Retry-After) instead of
    queueing without end. docs/api-abuse.md has the figures.
    """

    def __init__(
        self,
        hasher: PasswordHasher | None = None,
        *,
        concurrency: int | None = None,
        max_waiting: int = 32,
    ) -> None:
        self._hasher = hasher or PasswordHasher()
        slots = concurrency or default_hash_concurrency()
        self._slots = asyncio.Semaphore(slots)
        self._threads = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="argon2")
        self._max_waiting = max_waiting
        self._waiting = 0
        # Verifying against a real hash when the email is unknown keeps both paths
        # equally slow, so response times do not reveal which emails exist.
        self._decoy = self._hasher.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        return await self._run(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        def check() -> bool:
            try:
                return self._hasher.verify(password_hash or self._decoy, password)
            except (VerificationError, InvalidHashError):
                return False

        ok = await self._run(check)
        return ok and password_hash is not None

    async def _run(self, work: Callable[..., T], *args: Any) -> T:
        if self._waiting >= self._max_waiting:
            raise SignInBusy()
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._threads, work, *args)
        finally:
            self._slots.release()


def default_hash_concurrency() -> int:
    """Half the CPUs (at least one): an argon2 check with parallelism 4 keeps a core
    busy by itself, and the other half is left to everything else."""
    return max(1, (os.cpu_count() or 2) // 2)


class Tokens:
    """Issues and verifies bearer tokens naming a user id."""

    def __init__(self, secret: str | None, ttl_seconds: int) -> None:
        self._secret = secret or secrets.token_urlsafe(48)
        self._ttl = timedelta(seconds=ttl_seconds)

    def issue(self, user_id: uuid.UUID, now: datetime | None = None) -> str:
        issued = now or datetime.now(UTC)
        claims = {"sub": str(user_id), "iat": issued, "exp": issued + self._ttl}
        return jwt.encode(claims, self._secret, algorithm=_ALGORITHM)

    def verify(self, token: str) -> uuid.UUID:
        try:
            claims = jwt.decode(
                token, self._secret, algorithms=[_ALGORITHM], options={"require": ["exp", "sub"]}
            )
            return uuid.UUID(str(claims["sub"]))
        except (jwt.PyJWTError, ValueError):
            raise Unauthenticated(TOKEN_INVALID) from None
