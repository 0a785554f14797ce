"""The feed worker's combined read: is this post its author's, and who are their connections."""

from __future__ import annotations

import uuid

import asyncpg

from store.connections import PgConnectionSource
from tests.integration.pipelines.feed.helpers import add_users, connect, create_post, post_id
from transforms.fanout import PackedIds


async def test_a_post_of_its_author_comes_with_every_connection_over_several_pages(
    db: asyncpg.Pool,
) -> None:
    # GIVEN an author with 25 connections and one of their posts
    author, *others = await add_users(db, 26)
    await connect(db, author, others)
    post = uuid.UUID(post_id(await create_post(db, author)))

    # WHEN the post and the connections are read at once, with pages of 7
    found = await PgConnectionSource(db, page_size=7).post_connections(post, author)

    # THEN the list equals the plain read: sorted, once each, still packed
    assert isinstance(found, PackedIds)
    assert found == sorted(others)
    assert found == await PgConnectionSource(db, page_size=7).accepted_connections(author)


async def test_a_missing_post_or_another_authors_post_reads_as_none(db: asyncpg.Pool) -> None:
    # GIVEN an author with connections, and a post written by someone else
    author, other, friend = await add_users(db, 3)
    await connect(db, author, [friend])
    others_post = uuid.UUID(post_id(await create_post(db, other)))
    source = PgConnectionSource(db)

    # WHEN the author's connections are asked for with a post id that is not theirs
    # THEN there is no list, for an unknown id as for another author's post
    assert await source.post_connections(uuid.uuid4(), author) is None
    assert await source.post_connections(others_post, author) is None


async def test_a_post_of_an_author_without_connections_is_an_empty_list(
    db: asyncpg.Pool,
) -> None:
    # GIVEN a post by an author nobody is connected to
    (author,) = await add_users(db, 1)
    post = uuid.UUID(post_id(await create_post(db, author)))

    # WHEN read at once
    found = await PgConnectionSource(db).post_connections(post, author)

    # THEN the post is there and the list is empty (not None)
    assert found is not None
    assert list(found) == []
