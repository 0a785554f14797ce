"""The API's user-facing error messages, defined once.

Every sentence the API answers a client with (in a GraphQL error's `message`,
or in the error body of a request refused before GraphQL runs) is here, except
the validation rules' messages, which live with their rules in
`contracts/validation.py`.

Outside tests compare these messages as strings, so the texts are a contract.
A template names its placeholders for `str.format`; the comment above each
group lists them.
"""

from __future__ import annotations

from typing import Final

# Authentication and sign-in. TOO_MANY_ATTEMPTS: {seconds}.
AUTH_REQUIRED: Final = "Authentication required: send an Authorization: Bearer token."
AUTH_HEADER_MALFORMED: Final = "The Authorization header must be 'Bearer <token>'."
TOKEN_INVALID: Final = "The bearer token is invalid or has expired."
BAD_CREDENTIALS: Final = "Invalid email or password."
ACCOUNT_GONE: Final = "The account of this token no longer exists."
TOO_MANY_ATTEMPTS: Final = "Too many attempts: try again in {seconds} seconds."
PASSWORD_CHECKS_BUSY: Final = "Too many sign-ins at once: try again in a moment."

# Someone else's data, or a step the viewer may not take.
NOT_YOUR_DATA: Final = "You can only change your own data."
ONLY_ADDRESSEE: Final = "Only the addressee can respond to a connection request."
NOT_PENDING: Final = "This connection request is no longer pending."
ONLY_CONNECTIONS: Final = "You can only message your connections."
ONLY_CONNECTIONS_COMMENT: Final = (
    "You can only comment on your own posts and your connections' posts."
)

# Arguments that name nothing, or are not well formed. INVALID_ID: {field}.
NO_SUCH_USER: Final = "No such user."
NO_SUCH_SKILL: Final = "No such skill."
NO_SUCH_CONNECTION_REQUEST: Final = "No such connection request."
NO_SUCH_POST: Final = "No such post."
SKILL_NAME_REQUIRED: Final = "Skill name cannot be empty."
BAD_CURSOR: Final = "The feed cursor is not valid."
INVALID_ID: Final = "{field} is not a valid id."

# The server, not the request: a defect (its message masked), or a moment's overload.
INTERNAL: Final = "Internal server error."
BUSY: Final = "The server is busy; retry in a moment."
SEARCH_TOO_SLOW: Final = "The search took too long; retry in a moment or narrow it."
SLOW_DOWN: Final = "Too many searches at once; retry after the time Retry-After gives."
PROFILE_CHANGES_PAUSED: Final = "Profile changes are paused for a moment: try again shortly."

# Request bodies refused before GraphQL runs (api/http.py).
# BODY_TOO_LARGE: {max_bytes}; QUERY_TOO_LONG: {max_chars}; BODY_TOO_DEEP: {max_depth}.
BODY_TOO_LARGE: Final = "The request body exceeds {max_bytes} bytes."
CONTENT_LENGTH_NOT_A_NUMBER: Final = "The Content-Length header is not a number."
BODY_NOT_JSON: Final = "The request body is not valid JSON."
BODY_NOT_AN_OBJECT: Final = "The request body must be a JSON object."
QUERY_TOO_LONG: Final = "The query exceeds {max_chars} characters."
OPERATION_NAME_NOT_A_STRING: Final = "operationName must be a string or null."
BODY_TOO_DEEP: Final = "The request body nests deeper than {max_depth} levels."

# Queries refused by the validation limits (api/limits.py). QUERY_TOO_DEEP:
# {max_depth}; INTROSPECTION_TOO_DEEP: {max_lists}; OPERATION_TOO_COSTLY: {cost},
# {max_cost}, {login_cost}, {mutation_cost}, {query_cost}.
QUERY_TOO_DEEP: Final = "The query is nested deeper than {max_depth} levels."
INTROSPECTION_TOO_DEEP: Final = (
    "Introspection may nest at most {max_lists} lists (types, fields, args)."
)
OPERATION_TOO_COSTLY: Final = (
    "The operation costs {cost}; at most {max_cost} is allowed"
    " (register and login cost {login_cost}, searchUsers"
    " and other mutations {mutation_cost}, other fields {query_cost})."
)

# Arguments over the API's limits (api/limits.py). PAGE_SIZE_OUT_OF_RANGE: {field},
# {max}; SEARCH_TEXT_TOO_LONG: {max_chars}; SEARCH_TOO_MANY_WORDS: {max_words};
# SEARCH_TOO_MANY_FILTERS: {max_filters}, {name}; SEARCH_FILTER_TOO_LONG: {name}, {max_chars}.
PAGE_SIZE_OUT_OF_RANGE: Final = "{field} must be between 1 and {max}."
SEARCH_TEXT_TOO_LONG: Final = "Search text cannot exceed {max_chars} characters."
SEARCH_TOO_MANY_WORDS: Final = "Search text cannot exceed {max_words} words."
SEARCH_TOO_MANY_FILTERS: Final = "At most {max_filters} {name} can be searched at once."
SEARCH_FILTER_TOO_LONG: Final = "Each of {name} cannot exceed {max_chars} characters."
