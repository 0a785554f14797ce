"""What one request may cost the API, and the rules that enforce it.

The values and the reason for each are in docs/api-limits.md. Parse-time limits
(tokens) and validation rules (depth, aliases, cost, introspection) reject a
query before any resolver runs; `ResolverGate` bounds how many resolvers run at
once, per request and for the whole process, so one client's aliases cannot
take every database or Redis connection; the argument checks bound page sizes
and search input.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

from graphql import (
    ASTValidationRule,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLResolveInfo,
    InlineFragmentNode,
    NoSchemaIntrospectionCustomRule,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
)
from strawberry.extensions import (
    AddValidationRules,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.extensions.max_aliases import create_validator as aliases_rule

from api.errors import ApiError, BadRequest
from contracts.api_messages import (
    BUSY,
    INTROSPECTION_TOO_DEEP,
    OPERATION_TOO_COSTLY,
    PAGE_SIZE_OUT_OF_RANGE,
    QUERY_TOO_DEEP,
    SEARCH_FILTER_TOO_LONG,
    SEARCH_TEXT_TOO_LONG,
    SEARCH_TOO_MANY_FILTERS,
    SEARCH_TOO_MANY_WORDS,
    SLOW_DOWN,
)


@dataclass(frozen=True, slots=True)
class ApiLimits:
    """The limits of one API process (docs/api-limits.md gives the reasons)."""

    max_body_bytes: int = 131_072
    max_query_chars: int = 20_000
    max_json_depth: int = 16
    max_tokens: int = 1_000
    max_depth: int = 15
    max_aliases: int = 10
    max_cost: int = 20
    max_page_size: int = 100
    max_search_chars: int = 100
    max_search_words: int = 10
    max_search_filters: int = 10
    max_filter_chars: int = 100
    resolvers_per_request: int = 4
    max_concurrent_resolvers: int = 16
    busy_wait_seconds: float = 2.0
    concurrent_searches: int = 2
    search_share: float = 0.25
    search_wait_seconds: float = 2.0
    search_timeout_seconds: float = 2.0
    introspection: bool = False


# The cost of each root field: what it makes the process and its stores do.
# register and login hash a password (argon2), so one of them is a whole request.
FIELD_COST: Final[Mapping[str, int]] = {"register": 20, "login": 20, "searchUsers": 4}
MUTATION_COST: Final = 4
QUERY_COST: Final = 1
INTROSPECTION_COST: Final[Mapping[str, int]] = {"__schema": 10, "__type": 2, "__typename": 0}


class Busy(ApiError):
    """The process is at its resolver limit and a slot did not free up in time."""

    status = 503
    code = "SERVICE_UNAVAILABLE"
    retry_after = 1


class SlowDown(ApiError):
    """One user's searches are over their share of the search time."""

    status = 429
    code = "TOO_MANY_REQUESTS"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


DOCUMENTS_CACHED: Final = 64


# -- validation rules --------------------------------------------------------


def _fragments(context: ValidationContext) -> dict[str, FragmentDefinitionNode]:
    return {
        d.name.value: d
        for d in context.document.definitions
        if isinstance(d, FragmentDefinitionNode)
    }


def _operations(context: ValidationContext) -> list[OperationDefinitionNode]:
    return [d for d in context.document.definitions if isinstance(d, OperationDefinitionNode)]


def _fields(
    selections: SelectionSetNode | None, fragments: Mapping[str, FragmentDefinitionNode]
) -> Iterator[FieldNode]:
    """The fields of one selection set, fragments expanded once each.

    A fragment spread twice at one level selects the same fields (GraphQL merges
    them), so expanding it once is both right and safe from fragment bombs; a
    spread of an unknown fragment or a cycle is left to the standard rules.
    """
    expanded: set[str] = set()
    pending = [selections]
    while pending:
        current = pending.pop()
        for node in current.selections if current else ():
            if isinstance(node, FieldNode):
                yield node
            elif isinstance(node, InlineFragmentNode):
                pending.append(node.selection_set)
            elif isinstance(node, FragmentSpreadNode) and node.name.value not in expanded:
                expanded.add(node.name.value)
                fragment = fragments.get(node.name.value)
                pending.append(fragment.selection_set if fragment else None)


# Introspection's types are recursive (a type's fields have types with fields...),
# so depth alone does not bound its answer; the nesting of its lists does. The
# standard introspection query nests three: types, their fields, their args.
INTROSPECTION_LISTS: Final = frozenset(
    {"types", "fields", "inputFields", "interfaces", "possibleTypes", "enumValues", "args"}
)
MAX_INTROSPECTION_LISTS: Final = 3


def nesting_of(
    selections: SelectionSetNode | None,
    fragments: Mapping[str, FragmentDefinitionNode],
    levels: int,
    counted: Callable[[FieldNode], bool] = lambda _: True,
) -> int:
    """The most `counted` fields on one path, looking at most `levels` fields deep.

    Every field counted gives the depth; introspection's lists alone give their nesting.
    """
    if levels <= 0:
        return 0
    return max(
        (
            counted(f) + nesting_of(f.selection_set, fragments, levels - 1, counted)
            for f in _fields(selections, fragments)
        ),
        default=0,
    )


def is_introspection_list(field: FieldNode) -> bool:
    return field.name.value in INTROSPECTION_LISTS


def cost_of(
    operation: OperationDefinitionNode, fragments: Mapping[str, FragmentDefinitionNode]
) -> int:
    base = MUTATION_COST if operation.operation.value == "mutation" else QUERY_COST
    return sum(
        INTROSPECTION_COST.get(name, FIELD_COST.get(name, base))
        for name in (f.name.value for f in _fields(operation.selection_set, fragments))
    )


def _depth_rule(max_depth: int) -> type[ValidationRule]:
    class DepthRule(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            fragments = _fragments(context)
            for operation in _operations(context):
                selections = operation.selection_set
                if nesting_of(selections, fragments, max_depth + 1) > max_depth:
                    context.report_error(GraphQLError(QUERY_TOO_DEEP.format(max_depth=max_depth)))
                elif (
                    nesting_of(selections, fragments, max_depth, is_introspection_list)
                    > MAX_INTROSPECTION_LISTS
                ):
                    context.report_error(
                        GraphQLError(
                            INTROSPECTION_TOO_DEEP.format(max_lists=MAX_INTROSPECTION_LISTS)
                        )
                    )

    return DepthRule


def _cost_rule(max_cost: int) -> type[ValidationRule]:
    class CostRule(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            fragments = _fragments(context)
            for operation in _operations(context):
                cost = cost_of(operation, fragments)
                if cost > max_cost:
                    context.report_error(
                        GraphQLError(
                            OPERATION_TOO_COSTLY.format(
                                cost=cost,
                                max_cost=max_cost,
                                login_cost=FIELD_COST["login"],
                                mutation_cost=MUTATION_COST,
                                query_cost=QUERY_COST,
                            )
                        )
                    )

    return CostRule


def validation_extensions(limits: ApiLimits) -> list[Callable[[], SchemaExtension]]:
    """Schema extension factories for the parse and validation limits."""
    rules: list[type[ASTValidationRule]] = [
        _depth_rule(limits.max_depth),
        aliases_rule(limits.max_aliases),
        _cost_rule(limits.max_cost),
    ]
    if not limits.introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    # Parsed and validated documents are kept for the operations seen most
    # recently: clients repeat a few operations, and a client that keeps being
    # refused (a 429, say) then costs little more than its JSON. Bounded, since a
    # document of 1,000 tokens takes about 400 KB as a tree.
    return [
        partial(MaxTokensLimiter, limits.max_tokens),
        partial(ParserCache, maxsize=DOCUMENTS_CACHED),
        partial(AddValidationRules, rules),
        partial(ValidationCache, maxsize=DOCUMENTS_CACHED),
    ]


# -- bounded concurrency -------------------------------------------------------


# Root fields whose work is heavy enough that one request runs them one at a time.
HEAVY_FIELDS: Final = frozenset({"searchUsers"})


class ResolverSlots:
    """Resolver slots: a few per request, and a process-wide number below the pools.

    A request's heavy fields (`HEAVY_FIELDS`) take turns, so one client's
    aliases use at most one of the process's search slots (`IndexPeopleSearch`).
    """

    def __init__(self, shared: asyncio.Semaphore, per_request: int, wait: float) -> None:
        self._shared = shared
        self._mine = asyncio.Semaphore(per_request)
        self._heavy = asyncio.Semaphore(1)
        self._wait = wait

    async def run(self, name: str, resolve: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        turn = self._heavy if name in HEAVY_FIELDS else contextlib.nullcontext()
        async with self._mine, turn:
            try:
                await asyncio.wait_for(self._shared.acquire(), self._wait)
            except TimeoutError:
                raise Busy(BUSY) from None
            try:
                result = resolve(*args, **kwargs)
                return await result if inspect.isawaitable(result) else result
            finally:
                self._shared.release()


class ResolverGate(SchemaExtension):
    """Runs every root resolver in one of the request's `ResolverSlots`.

    Only root fields reach PostgreSQL, Redis or the search index: the fields
    below them are plain data, so gating the roots bounds every connection use.
    """

    def resolve(
        self,
        _next: Callable[..., Any],
        root: Any,
        info: GraphQLResolveInfo[Any],
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        slots = getattr(info.context, "slots", None)
        if info.path.prev is not None or slots is None:
            return _next(root, info, *args, **kwargs)
        return slots.run(info.field_name, _next, root, info, *args, **kwargs)


class SearchShares:
    """Each user's searches get at most `share` of one search slot's time.

    After a search that took `t` seconds, the same user's next one starts no
    sooner than `t / share` after this one started, so a client sending
    searches back to back (aliases or a loop) is paced to a quarter of a
    database core, while someone searching now and then never waits. A wait
    longer than `max_wait` answers 429 with `Retry-After` instead. Kept in the
    process: it shares the process's search slots, not the cluster's.
    """

    def __init__(self, share: float, max_wait: float) -> None:
        self._share = share
        self._max_wait = max_wait
        self._next: dict[uuid.UUID, float] = {}

    @contextlib.asynccontextmanager
    async def turn(self, user: uuid.UUID) -> AsyncIterator[None]:
        wait = self._next.get(user, 0.0) - time.monotonic()
        if wait > self._max_wait:
            raise SlowDown(SLOW_DOWN, math.ceil(wait))
        if wait > 0:
            await asyncio.sleep(wait)
        started = time.monotonic()
        try:
            yield
        finally:
            self._next[user] = started + (time.monotonic() - started) / self._share
            self._forget_old(started)

    def _forget_old(self, now: float) -> None:
        if len(self._next) > 10_000:
            self._next = {u: t for u, t in self._next.items() if t > now}


# -- argument limits -------------------------------------------------------------


def check_page_size(first: int, limits: ApiLimits, field: str = "first") -> int:
    if not 1 <= first <= limits.max_page_size:
        raise BadRequest(
            PAGE_SIZE_OUT_OF_RANGE.format(field=field, max=limits.max_page_size), field
        )
    return first


def check_search(
    text: str, skills: Sequence[str], companies: Sequence[str], limits: ApiLimits
) -> None:
    """Search input small enough that one query stays cheap for PostgreSQL."""
    if len(text) > limits.max_search_chars:
        raise BadRequest(SEARCH_TEXT_TOO_LONG.format(max_chars=limits.max_search_chars), "query")
    if len(text.split()) > limits.max_search_words:
        raise BadRequest(SEARCH_TOO_MANY_WORDS.format(max_words=limits.max_search_words), "query")
    for name, values in (("skills", skills), ("companies", companies)):
        if len(values) > limits.max_search_filters:
            raise BadRequest(
                SEARCH_TOO_MANY_FILTERS.format(max_filters=limits.max_search_filters, name=name),
                name,
            )
        if any(len(v) > limits.max_filter_chars for v in values):
            raise BadRequest(
                SEARCH_FILTER_TOO_LONG.format(name=name, max_chars=limits.max_filter_chars), name
            )
