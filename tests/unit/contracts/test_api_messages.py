"""The API's messages: every template formats with its documented placeholders, to
exactly the sentences the API has always answered."""

from __future__ import annotations

import string

import pytest

from contracts import api_messages as m

# Each template's placeholders, as the module's comments document them.
PLACEHOLDERS: dict[str, frozenset[str]] = {
    "TOO_MANY_ATTEMPTS": frozenset({"seconds"}),
    "INVALID_ID": frozenset({"field"}),
    "BODY_TOO_LARGE": frozenset({"max_bytes"}),
    "QUERY_TOO_LONG": frozenset({"max_chars"}),
    "BODY_TOO_DEEP": frozenset({"max_depth"}),
    "QUERY_TOO_DEEP": frozenset({"max_depth"}),
    "INTROSPECTION_TOO_DEEP": frozenset({"max_lists"}),
    "OPERATION_TOO_COSTLY": frozenset(
        {"cost", "max_cost", "login_cost", "mutation_cost", "query_cost"}
    ),
    "PAGE_SIZE_OUT_OF_RANGE": frozenset({"field", "max"}),
    "SEARCH_TEXT_TOO_LONG": frozenset({"max_chars"}),
    "SEARCH_TOO_MANY_WORDS": frozenset({"max_words"}),
    "SEARCH_TOO_MANY_FILTERS": frozenset({"max_filters", "name"}),
    "SEARCH_FILTER_TOO_LONG": frozenset({"name", "max_chars"}),
}

MESSAGES: dict[str, str] = {
    name: value
    for name, value in vars(m).items()
    if name.isupper() and not name.startswith("_") and isinstance(value, str)
}


def placeholders(template: str) -> frozenset[str]:
    return frozenset(
        field for _, field, _, _ in string.Formatter().parse(template) if field is not None
    )


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_each_message_has_exactly_its_documented_placeholders(name: str) -> None:
    assert placeholders(MESSAGES[name]) == PLACEHOLDERS.get(name, frozenset())


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_each_message_formats_with_its_documented_names(name: str) -> None:
    values = {field: "x" for field in PLACEHOLDERS.get(name, frozenset())}
    formatted = MESSAGES[name].format(**values)
    assert "{" not in formatted
    assert "}" not in formatted


def test_every_documented_template_exists() -> None:
    assert set(PLACEHOLDERS) <= set(MESSAGES)


@pytest.mark.parametrize(
    ("formatted", "expected"),
    [
        (
            m.TOO_MANY_ATTEMPTS.format(seconds=3),
            "Too many attempts: try again in 3 seconds.",
        ),
        (m.INVALID_ID.format(field="userId"), "userId is not a valid id."),
        (
            m.BODY_TOO_LARGE.format(max_bytes=131072),
            "The request body exceeds 131072 bytes.",
        ),
        (m.QUERY_TOO_LONG.format(max_chars=20000), "The query exceeds 20000 characters."),
        (
            m.BODY_TOO_DEEP.format(max_depth=16),
            "The request body nests deeper than 16 levels.",
        ),
        (
            m.QUERY_TOO_DEEP.format(max_depth=15),
            "The query is nested deeper than 15 levels.",
        ),
        (
            m.INTROSPECTION_TOO_DEEP.format(max_lists=3),
            "Introspection may nest at most 3 lists (types, fields, args).",
        ),
        (
            m.OPERATION_TOO_COSTLY.format(
                cost=60, max_cost=20, login_cost=20, mutation_cost=4, query_cost=1
            ),
            "The operation costs 60; at most 20 is allowed (register and login cost 20,"
            " searchUsers and other mutations 4, other fields 1).",
        ),
        (
            m.PAGE_SIZE_OUT_OF_RANGE.format(field="first", max=100),
            "first must be between 1 and 100.",
        ),
        (
            m.SEARCH_TEXT_TOO_LONG.format(max_chars=100),
            "Search text cannot exceed 100 characters.",
        ),
        (
            m.SEARCH_TOO_MANY_WORDS.format(max_words=10),
            "Search text cannot exceed 10 words.",
        ),
        (
            m.SEARCH_TOO_MANY_FILTERS.format(max_filters=10, name="skills"),
            "At most 10 skills can be searched at once.",
        ),
        (
            m.SEARCH_FILTER_TOO_LONG.format(name="companies", max_chars=100),
            "Each of companies cannot exceed 100 characters.",
        ),
    ],
)
def test_templates_format_to_the_exact_sentences(formatted: str, expected: str) -> None:
    assert formatted == expected


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (m.AUTH_HEADER_MALFORMED, "The Authorization header must be 'Bearer <token>'."),
        (m.INTERNAL, "Internal server error."),
        (m.NO_SUCH_USER, "No such user."),
        (m.SKILL_NAME_REQUIRED, "Skill name cannot be empty."),
        (m.CONTENT_LENGTH_NOT_A_NUMBER, "The Content-Length header is not a number."),
        (m.OPERATION_NAME_NOT_A_STRING, "operationName must be a string or null."),
    ],
)
def test_fixed_messages_keep_their_exact_text(message: str, expected: str) -> None:
    assert message == expected
