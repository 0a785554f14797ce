"""Validation rules with their exact user-facing messages, defined once.

Listed in docs/architecture.md#validation-rules.

The API answers these messages verbatim; outside tests compare them as strings,
so the message constants are a contract.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Final

PASSWORD_COMPLEXITY: Final = "Password does not meet complexity requirements."
INVALID_EMAIL: Final = "Please provide a valid email address."
FULL_NAME_TOO_LONG: Final = "Full name cannot exceed 100 characters."
FULL_NAME_REQUIRED: Final = "Full name is required."
POST_TEXT_TOO_LONG: Final = "Post text cannot exceed 3000 characters."
POST_TEXT_REQUIRED: Final = "Post text cannot be empty."
COMMENT_TEXT_TOO_LONG: Final = "Comment text cannot exceed 3000 characters."
COMMENT_TEXT_REQUIRED: Final = "Comment text cannot be empty."
MESSAGE_BODY_INVALID: Final = "Message body must be between 1 and 5000 characters."
END_BEFORE_START: Final = "End date cannot be before start date."
TOO_YOUNG: Final = "You must be at least 16 years old to register."
CONNECTION_PENDING: Final = "A connection request between you and this user is already pending."
ALREADY_CONNECTED: Final = "You are already connected with this user."
SELF_CONNECTION: Final = "You cannot connect with yourself."
EMAIL_TAKEN: Final = "An account with this email address already exists."
TEXT_FIELD_TOO_LONG: Final = "{field} cannot exceed {limit} characters."
UNSTORABLE_TEXT: Final = "Text cannot contain NUL characters or unpaired surrogates."

PASSWORD_MIN_LENGTH: Final = 12
PASSWORD_MAX_LENGTH: Final = 1024
FULL_NAME_MAX: Final = 100
POST_TEXT_MAX: Final = 3000
COMMENT_TEXT_MAX: Final = 3000
MESSAGE_BODY_MAX: Final = 5000
MINIMUM_AGE: Final = 16
EMAIL_MAX: Final = 254

# Pragmatic, not RFC 5322: one @, no spaces, a dot in the domain, no empty labels.
_EMAIL = re.compile(r"^[^@\s]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,}$")


class ValidationFailed(ValueError):
    """One rule failed: `message` is the user-facing sentence, `field` the input it concerns."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def check_email(email: str) -> str:
    """The email, trimmed and lower-cased, or `ValidationFailed`."""
    value = email.strip().lower()
    if len(value) > EMAIL_MAX or not _EMAIL.match(value):
        raise ValidationFailed(INVALID_EMAIL, "email")
    return value


def check_password(password: str) -> None:
    """At least 12 characters with an upper, a lower, a digit and a special character."""
    ok = (
        PASSWORD_MIN_LENGTH <= len(password) <= PASSWORD_MAX_LENGTH
        and any(c.isupper() for c in password)
        and any(c.islower() for c in password)
        and any(c.isdigit() for c in password)
        and any(not c.isalnum() and not c.isspace() for c in password)
    )
    if not ok:
        raise ValidationFailed(PASSWORD_COMPLEXITY, "password")


def age_on(date_of_birth: date, today: date) -> int:
    """Whole years lived on `today` (the birthday itself counts)."""
    before_birthday = (today.month, today.day) < (date_of_birth.month, date_of_birth.day)
    return today.year - date_of_birth.year - int(before_birthday)


def check_date_of_birth(date_of_birth: date, today: date) -> None:
    if age_on(date_of_birth, today) < MINIMUM_AGE:
        raise ValidationFailed(TOO_YOUNG, "dateOfBirth")


def check_full_name(full_name: str) -> str:
    value = full_name.strip()
    if not value:
        raise ValidationFailed(FULL_NAME_REQUIRED, "fullName")
    if len(value) > FULL_NAME_MAX:
        raise ValidationFailed(FULL_NAME_TOO_LONG, "fullName")
    return value


def check_post_text(text: str) -> str:
    if not text.strip():
        raise ValidationFailed(POST_TEXT_REQUIRED, "textContent")
    if len(text) > POST_TEXT_MAX:
        raise ValidationFailed(POST_TEXT_TOO_LONG, "textContent")
    return text


def check_comment_text(text: str) -> str:
    if not text.strip():
        raise ValidationFailed(COMMENT_TEXT_REQUIRED, "textContent")
    if len(text) > COMMENT_TEXT_MAX:
        raise ValidationFailed(COMMENT_TEXT_TOO_LONG, "textContent")
    return text


def check_message_body(body: str) -> str:
    if not body.strip() or len(body) > MESSAGE_BODY_MAX:
        raise ValidationFailed(MESSAGE_BODY_INVALID, "body")
    return body


def check_date_range(start: date | None, end: date | None) -> None:
    """An end date, when both are given, is not before the start date."""
    if start is not None and end is not None and end < start:
        raise ValidationFailed(END_BEFORE_START, "endDate")


def check_text_length(value: str | None, field: str, label: str, limit: int) -> str | None:
    """Free-text profile fields (headline, location, company…) with a generic limit."""
    if value is not None and len(value) > limit:
        raise ValidationFailed(TEXT_FIELD_TOO_LONG.format(field=label, limit=limit), field)
    return value


def check_storable_text(value: str, field: str) -> str:
    """Text PostgreSQL can store: JSON lets NUL and lone surrogates through, `text` refuses both."""
    if "\x00" in value:
        raise ValidationFailed(UNSTORABLE_TEXT, field)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationFailed(UNSTORABLE_TEXT, field) from None
    return value


def check_registration(
    email: str, password: str, date_of_birth: date, full_name: str, today: date
) -> tuple[str, str]:
    """Registration checks in the seed's order (email, password, date of birth, then the
    name), stopping at the first failure. Returns the normalised email and full name."""
    normalised = check_email(email)
    check_password(password)
    check_date_of_birth(date_of_birth, today)
    return normalised, check_full_name(full_name)
