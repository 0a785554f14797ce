"""Valid variable values built from the schema, for tests that generate requests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    get_nullable_type,
)


def valid_value(type_: GraphQLInputType, scalars: Mapping[str, Any]) -> Any:
    """A valid JSON value of `type_`, with only its required parts filled in and its
    scalars taken from `scalars` (by scalar name)."""
    named = get_nullable_type(type_)
    if isinstance(named, GraphQLList):
        return [valid_value(named.of_type, scalars)]
    if isinstance(named, GraphQLEnumType):
        return next(iter(named.values))
    if isinstance(named, GraphQLInputObjectType):
        return {
            name: valid_value(f.type, scalars)
            for name, f in named.fields.items()
            if isinstance(f.type, GraphQLNonNull)
        }
    assert isinstance(named, GraphQLScalarType), named
    return scalars[named.name]
