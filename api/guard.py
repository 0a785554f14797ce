"""A schema-wide guard on string arguments, so no resolver can forget it.

JSON strings may carry NUL and unpaired surrogates; PostgreSQL `text` refuses
both with an error that would otherwise surface as a 500 from wherever the
string first reaches the database (found by the fuzz run).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from graphql import GraphQLResolveInfo
from strawberry.extensions import SchemaExtension
from strawberry.utils.str_converters import to_camel_case

from api.errors import BadRequest
from contracts.validation import ValidationFailed, check_storable_text


class RejectUnstorableText(SchemaExtension):
    """Answers 400 for any string argument, at any depth, PostgreSQL could not store."""

    def resolve(
        self,
        _next: Callable[..., Any],
        root: Any,
        info: GraphQLResolveInfo[Any],
        *args: str,
        **kwargs: Any,
    ) -> Any:
        try:
            for name, value in kwargs.items():
                check_argument(value, to_camel_case(name))
        except ValidationFailed as exc:
            raise BadRequest.from_validation(exc) from None
        return _next(root, info, *args, **kwargs)


def check_argument(value: object, field: str) -> None:
    """Check every string inside `value` (lists and input objects, as dicts or dataclasses)."""
    if isinstance(value, str):
        check_storable_text(value, field)
    elif isinstance(value, list | tuple):
        for item in value:
            check_argument(item, field)
    elif isinstance(value, Mapping):
        # graphql-core hands resolvers input objects as dicts keyed by their GraphQL names.
        for key, item in value.items():
            check_argument(item, str(key))
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            check_argument(getattr(value, f.name), to_camel_case(f.name))
