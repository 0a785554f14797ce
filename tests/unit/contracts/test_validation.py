"""Every validation rule with its exact message, at its boundaries."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts import validation as v
from contracts.validation import ValidationFailed

TODAY = date(2026, 11, 29)
GOOD_PASSWORD = "Aa1!aaaaaaaa"  # exactly 12 characters


def failure(fn: object, *args: object) -> tuple[str, str]:
    with pytest.raises(ValidationFailed) as info:
        fn(*args)  # type: ignore[operator]
    return info.value.message, info.value.field


def test_password_of_exactly_twelve_characters_with_all_classes_passes() -> None:
    assert len(GOOD_PASSWORD) == 12
    v.check_password(GOOD_PASSWORD)


@pytest.mark.parametrize(
    "password",
    [
        "Aa1!aaaaaaa",  # 11 characters
        "aa1!aaaaaaaa",  # no upper
        "AA1!AAAAAAAA",  # no lower
        "Aa!!aaaaaaaa",  # no digit
        "Aa1aaaaaaaaa",  # no special
        "Aa1 aaaaaaaa",  # a space is not a special character
        "",
    ],
)
def test_weak_password_is_refused_with_the_complexity_message(password: str) -> None:
    assert failure(v.check_password, password) == (
        "Password does not meet complexity requirements.",
        "password",
    )


@pytest.mark.parametrize("email", ["a@b.co", "First.Last+tag@example.org", " x@sub.example.com "])
def test_valid_email_is_accepted_and_normalised(email: str) -> None:
    assert v.check_email(email) == email.strip().lower()


@pytest.mark.parametrize(
    "email", ["", "plain", "a@b", "a@@b.com", "a b@c.com", "a@-b.com", "a@b..com", "@b.com"]
)
def test_invalid_email_is_refused_with_the_email_message(email: str) -> None:
    assert failure(v.check_email, email) == ("Please provide a valid email address.", "email")


def test_full_name_of_exactly_100_characters_passes_and_101_fails() -> None:
    assert v.check_full_name("x" * 100) == "x" * 100
    assert failure(v.check_full_name, "x" * 101) == (
        "Full name cannot exceed 100 characters.",
        "fullName",
    )


def test_post_text_of_exactly_3000_characters_passes_and_3001_fails() -> None:
    assert v.check_post_text("p" * 3000) == "p" * 3000
    assert failure(v.check_post_text, "p" * 3001) == (
        "Post text cannot exceed 3000 characters.",
        "textContent",
    )


def test_blank_post_is_refused() -> None:
    assert failure(v.check_post_text, "   ")[0] == "Post text cannot be empty."


def test_end_date_equal_to_start_passes_and_before_start_fails() -> None:
    v.check_date_range(date(2020, 1, 1), date(2020, 1, 1))
    v.check_date_range(date(2020, 1, 1), None)
    assert failure(v.check_date_range, date(2020, 1, 2), date(2020, 1, 1)) == (
        "End date cannot be before start date.",
        "endDate",
    )


def test_sixteenth_birthday_today_is_old_enough_and_the_day_before_is_not() -> None:
    v.check_date_of_birth(date(2010, 11, 29), TODAY)
    assert failure(v.check_date_of_birth, date(2010, 11, 30), TODAY) == (
        "You must be at least 16 years old to register.",
        "dateOfBirth",
    )


def test_leap_day_birthday_turns_sixteen_on_the_first_of_march() -> None:
    assert v.age_on(date(2008, 2, 29), date(2024, 2, 28)) == 15
    assert v.age_on(date(2008, 2, 29), date(2024, 2, 29)) == 16
    assert v.age_on(date(2009, 2, 28), date(2025, 3, 1)) == 16


def test_registration_reports_email_before_password_before_birth_date() -> None:
    young = date(2020, 1, 1)
    assert failure(v.check_registration, "bad", "weak", young, "N", TODAY)[1] == "email"
    assert failure(v.check_registration, "a@b.co", "weak", young, "N", TODAY)[1] == "password"
    assert (
        failure(v.check_registration, "a@b.co", GOOD_PASSWORD, young, "N", TODAY)[1]
        == "dateOfBirth"
    )
    assert v.check_registration(" A@B.co", GOOD_PASSWORD, date(2000, 1, 1), " N ", TODAY) == (
        "a@b.co",
        "N",
    )


@given(st.text(max_size=40))
def test_password_rule_matches_its_definition(password: str) -> None:
    expected = (
        len(password) >= 12
        and any(c.isupper() for c in password)
        and any(c.islower() for c in password)
        and any(c.isdigit() for c in password)
        and any(not c.isalnum() and not c.isspace() for c in password)
    )
    try:
        v.check_password(password)
        accepted = True
    except ValidationFailed:
        accepted = False
    assert accepted == expected


@given(st.dates(min_value=date(1900, 1, 1), max_value=date(2030, 12, 31)))
def test_age_is_never_negative_for_past_birth_dates_and_grows_on_birthdays(dob: date) -> None:
    if dob <= TODAY:
        assert v.age_on(dob, TODAY) >= 0
    assert v.age_on(dob, dob) == 0


@pytest.mark.parametrize("text", ["a\x00b", "\x00", "half \ud800 pair"])
def test_text_postgresql_cannot_store_is_refused_with_its_field(text: str) -> None:
    assert failure(v.check_storable_text, text, "headline") == (v.UNSTORABLE_TEXT, "headline")


@given(st.text())
def test_any_text_without_nul_is_storable(text: str) -> None:
    clean = text.replace("\x00", "")
    assert v.check_storable_text(clean, "x") == clean
