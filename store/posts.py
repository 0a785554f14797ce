"""Posts and comments."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from transforms.entities import FeedPost


async def create_post(conn: Any, author_id: uuid.UUID, text: str) -> tuple[uuid.UUID, datetime]:
    row = await conn.fetchrow(
        "INSERT INTO posts (author_id, text_content) VALUES ($1, $2) RETURNING id, created_at",
        author_id,
        text,
    )
    return row["id"], row["created_at"]


async def post_author(conn: Any, post_id: uuid.UUID) -> uuid.UUID | None:
    author: uuid.UUID | None = await conn.fetchval(
        "SELECT author_id FROM posts WHERE id = $1", post_id
    )
    return author


async def create_comment(
    conn: Any, post_id: uuid.UUID, author_id: uuid.UUID, text: str
) -> tuple[uuid.UUID, datetime]:
    row = await conn.fetchrow(
        "INSERT INTO comments (post_id, author_id, text_content) VALUES ($1, $2, $3)"
        " RETURNING id, created_at",
        post_id,
        author_id,
        text,
    )
    return row["id"], row["created_at"]


async def hydrate_posts(conn: Any, post_ids: Sequence[uuid.UUID]) -> list[FeedPost]:
    """The posts of `post_ids` in that order, in one query; deleted posts are skipped."""
    if not post_ids:
        return []
    rows = await conn.fetch(
        "SELECT p.id, p.author_id, COALESCE(up.full_name, '') AS author_name, p.text_content,"
        " p.created_at FROM unnest($1::uuid[]) WITH ORDINALITY AS want(id, pos)"
        " JOIN posts p ON p.id = want.id"
        " LEFT JOIN user_profiles up ON up.user_id = p.author_id ORDER BY want.pos",
        list(post_ids),
    )
    return [FeedPost(**dict(r)) for r in rows]
