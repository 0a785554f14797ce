"""Secrets reach no event written to the outbox and no log line.

The rule: docs/architecture.md#secrets-and-privacy.

A user registers, gets an MFA secret, logs in (rightly and wrongly), edits
every part of the profile and fails validation; the relay then publishes the
outbox. Every outbox body and every captured JSON log line is scanned for the
password, the stored argon2 hash, the MFA secret and the secret field names.
"""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import Sequence

import asyncpg

from config.logging import configure_logging
from pipelines.relay.ports import PublishResult
from pipelines.relay.relay import OutboxRelay, RelayOptions
from store.outbox import OutboxRow
from tests.integration.api.client import GOOD_PASSWORD, Api

MFA_SECRET = "JBSWY3DPEHPK3PXP-mfa-secret"
WRONG_PASSWORD = "Wrong-pass-123!"
SECRET_NAMES = ("passwordHash", "password_hash", "mfaSecret", "mfa_secret")


class AcceptingPublisher:
    async def publish(self, rows: Sequence[OutboxRow]) -> PublishResult:
        return PublishResult()


async def edit_everything(api: Api, token: str) -> None:
    await api.ok(
        'mutation { updateProfile(input: {fullName: "Ada B", headline: "Engineer",'
        ' location: "Turin", visibility: PRIVATE}) { visibility } }',
        token=token,
    )
    await api.ok(
        'mutation { addWorkExperience(input: {companyName: "Acme", title: "CTO",'
        ' startDate: "2020-01-01", endDate: "2021-01-01"}) { id } }',
        token=token,
    )
    await api.ok(
        'mutation { addEducation(input: {schoolName: "MIT", degree: "BSc"}) { id } }', token=token
    )
    skill = await api.ok('mutation { addSkill(skillName: "Rust") { id } }', token=token)
    await api.ok(
        "mutation($s: ID!) { removeSkill(skillId: $s) }", {"s": skill["addSkill"]["id"]}, token
    )


async def test_no_secret_reaches_an_outbox_event_or_a_log_line(api: Api, db: asyncpg.Pool) -> None:
    # GIVEN JSON logs captured at DEBUG and a registered user with an MFA secret
    stream = io.StringIO()
    configure_logging("api", "DEBUG", stream=stream)
    token, user_id = await api.register("secret@example.com", "Ada Secret")
    await db.execute(
        "UPDATE users SET mfa_secret = $1 WHERE id = $2", MFA_SECRET, uuid.UUID(user_id)
    )
    password_hash = await db.fetchval(
        "SELECT password_hash FROM users WHERE id = $1", uuid.UUID(user_id)
    )
    # WHEN they log in rightly and wrongly, edit every part of the profile, fail a
    # registration check, and the relay publishes the outbox
    login = 'mutation($p: String!) { login(email: "secret@example.com", password: $p) { token } }'
    await api.ok(login, {"p": GOOD_PASSWORD})
    assert (await api.call(login, {"p": WRONG_PASSWORD}))[0] == 401
    await edit_everything(api, token)
    status, _ = await api.call(
        "mutation($i: RegisterInput!) { register(input: $i) { token } }",
        {
            "i": {
                "email": "bad@example.com",
                "password": "weak" + WRONG_PASSWORD[:3],
                "fullName": "X",
                "dateOfBirth": "1990-01-01",
            }
        },
    )
    assert status == 400
    relay = OutboxRelay(db, AcceptingPublisher(), RelayOptions(poll_interval=0.1))
    await relay.run(asyncio.Event(), burst=True)
    # THEN the outbox holds every profile event, none carrying a secret
    bodies = [r["body"] for r in await db.fetch("SELECT body FROM outbox ORDER BY id")]
    assert len(bodies) == 6  # register + update + experience + education + add/remove skill
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0
    logs = stream.getvalue()
    assert logs.count('"graphql operation"') >= 9 and '"outbox published"' in logs
    assert password_hash.startswith("$argon2id$")
    forbidden = (GOOD_PASSWORD, WRONG_PASSWORD, password_hash, "$argon2", MFA_SECRET, *SECRET_NAMES)
    for text in [*bodies, logs]:
        leaked = [secret for secret in forbidden if secret in text]
        assert leaked == [], (leaked, text[:500])
