"""Passwords (argon2id) and signed, expiring bearer tokens (HS256 JWT)."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from datetime import UTC, datetime, timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from api.errors import TOKEN_INVALID, Unauthenticated

_ALGORITHM = "HS256"


class Passwords:
    """argon2id hashing off the event loop (a hash takes tens of milliseconds)."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        # Verifying against a real hash when the email is unknown keeps both paths
        # equally slow, so response times do not reveal which emails exist.
        self._decoy = self._hasher.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        def check() -> bool:
            try:
                return self._hasher.verify(password_hash or self._decoy, password)
            except (VerificationError, InvalidHashError):
                return False

        ok = await asyncio.to_thread(check)
        return ok and password_hash is not None


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
