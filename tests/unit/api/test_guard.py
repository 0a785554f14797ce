"""The string-argument guard walks lists and input objects and names the field."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from api.guard import check_argument
from contracts.validation import UNSTORABLE_TEXT, ValidationFailed


@dataclass
class ProfileInput:
    full_name: str | None
    skill_names: list[str]


def test_clean_nested_arguments_pass() -> None:
    check_argument(ProfileInput("Ada", ["Rust", "Go"]), "input")
    check_argument(["a", "b"], "skills")
    check_argument(42, "first")


@pytest.mark.parametrize(
    ("value", "field"),
    [
        (ProfileInput("A\x00da", []), "fullName"),
        (ProfileInput("Ada", ["ok", "bad\x00"]), "skillNames"),
        ({"headline": "ok", "location": "\ud800"}, "location"),
        (["fine", "\ud800"], "outer"),
    ],
)
def test_nul_or_lone_surrogate_anywhere_is_refused_naming_the_field(
    value: object, field: str
) -> None:
    with pytest.raises(ValidationFailed) as info:
        check_argument(value, "outer")
    assert (info.value.message, info.value.field) == (UNSTORABLE_TEXT, field)
